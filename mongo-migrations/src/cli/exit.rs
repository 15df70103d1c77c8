//! Exit codes, and failures that carry one with a hint.

use std::fmt;

/// The process exit codes, documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A migration, the build or the server failed.
    Failed = 1,
    /// Bad arguments, bad configuration, or bad files in the crate.
    Usage = 2,
    /// Another runner holds the lock.
    Locked = 3,
    /// The database needs attention: failed, running, unknown or edited migrations.
    Blocked = 4,
    /// Bad URI or unreachable server.
    Connection = 5,
    /// `check`: nothing is wrong, but migrations are pending.
    Pending = 6,
    /// Stopped by Ctrl-C or SIGTERM, as shells report a SIGINT.
    Interrupted = 130,
}

/// An error with an exit code and a hint for the user.
#[derive(Debug)]
#[non_exhaustive]
pub struct Failure {
    /// The exit code.
    pub code: Code,
    /// What went wrong, on one line.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The whole chain of causes, shown with `--verbose`.
    pub detail: Option<String>,
}

impl Failure {
    /// A failure without a hint.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            hint: None,
            detail: None,
        }
    }

    /// With what to do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// The failure, exit code and hint for an error of the runtime, as it
    /// crossed the harness protocol (`detail` only with `--verbose`).
    pub fn from_reply(e: crate::harness::ErrorReply, verbose: bool) -> Self {
        use crate::harness::ErrorKind;
        let code = match e.kind {
            ErrorKind::Connection => Code::Connection,
            ErrorKind::Configuration | ErrorKind::Usage => Code::Usage,
            ErrorKind::Locked => Code::Locked,
            ErrorKind::Blocked => Code::Blocked,
            // Failed, and a kind newer than this CLI: the message says what happened.
            _ => Code::Failed,
        };
        // The runtime writes every hint (`harness::hint`).
        let mut failure = Failure::new(code, e.message);
        failure.hint = e.hint;
        if verbose {
            failure.detail = e.detail;
        }
        failure
    }

    /// The failure for an error of the runtime in this process.
    pub fn from_error(e: &crate::Error, verbose: bool) -> Self {
        Failure::from_reply(crate::harness::ErrorReply::from(e), verbose)
    }

    /// Prints `error: ...`, `hint: ...` (and `detail: ...`) on stderr, and
    /// returns the exit code.
    pub fn report(&self) -> u8 {
        // An empty message: the output already said it all (`check`).
        if !self.message.is_empty() {
            let red = anstyle::Style::new()
                .bold()
                .fg_color(Some(anstyle::AnsiColor::Red.into()));
            let cyan = anstyle::Style::new()
                .bold()
                .fg_color(Some(anstyle::AnsiColor::Cyan.into()));
            anstream::eprintln!("{red}error{red:#}: {}", self.message);
            if let Some(hint) = &self.hint {
                anstream::eprintln!("{cyan}hint{cyan:#}: {hint}");
            }
            if let Some(detail) = &self.detail {
                anstream::eprintln!("detail: {detail}");
            }
        }
        self.code as u8
    }
}
