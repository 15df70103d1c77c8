//! Standard output for the command-line tools (the CLI and a crate's
//! migration binary): a closed pipe (`status --json | head`) ends the
//! printing, never the process with a panic as `println!` does, and never a
//! run in progress, which goes on and ends as it would have.

use std::fmt;
use std::io::{ErrorKind, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout has failed: nothing more is written to it.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `args` and a newline to stdout; see the module documentation. An
/// error other than a closed pipe (a full disk) is said once on stderr.
pub fn print_line(args: fmt::Arguments<'_>) {
    #[cfg(test)]
    if capture::line(args) {
        return;
    }
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = written {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != ErrorKind::BrokenPipe {
            let _ = writeln!(std::io::stderr(), "warning: cannot write to stdout: {e}");
        }
    }
}

/// `println!` through [`print_line`].
#[doc(hidden)]
#[macro_export]
macro_rules! outln {
    () => {
        $crate::cli::stdout::print_line(::std::format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::stdout::print_line(::std::format_args!($($arg)*))
    };
}

/// In unit tests, what a printing function writes, whole, without a
/// process: every line this thread prints while [`capture::printed`] runs.
#[cfg(test)]
pub(crate) mod capture {
    use std::cell::RefCell;
    use std::fmt::Write as _;

    thread_local! {
        static CAPTURED: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Takes the line if this thread captures; whether it did.
    pub(super) fn line(args: std::fmt::Arguments<'_>) -> bool {
        CAPTURED.with(|c| match c.borrow_mut().as_mut() {
            Some(out) => {
                let _ = writeln!(out, "{args}");
                true
            }
            None => false,
        })
    }

    /// The lines `f` prints, as one text.
    pub(crate) fn printed(f: impl FnOnce()) -> String {
        CAPTURED.with(|c| *c.borrow_mut() = Some(String::new()));
        f();
        CAPTURED.with(|c| c.borrow_mut().take().unwrap_or_default())
    }
}
