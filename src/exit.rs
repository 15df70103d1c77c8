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
pub struct Failure {
    pub code: Code,
    pub message: String,
    pub hint: Option<String>,
    /// The whole chain of causes, shown with `--verbose`.
    pub detail: Option<String>,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            hint: None,
            detail: None,
        }
    }

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

/// Prints `error: ...` and `hint: ...`, and returns the exit code.
pub fn report(error: &anyhow::Error) -> i32 {
    match error.downcast_ref::<Failure>() {
        Some(failure) => {
            // An empty message: the output already said it all (`check`).
            if failure.message.is_empty() {
                return failure.code as i32;
            }
            eprintln!("error: {}", failure.message);
            if let Some(hint) = &failure.hint {
                eprintln!("hint: {hint}");
            }
            if let Some(detail) = &failure.detail {
                eprintln!("detail: {detail}");
            }
            failure.code as i32
        }
        None => {
            eprintln!("error: {error:#}");
            Code::Failed as i32
        }
    }
}
