//! Exit codes: the runtime's failures (shared with migration binaries), and
//! any other error as a failure of code 1.

pub use mongo_migrations::cli::{Code, Failure};

/// Prints `error: ...` and `hint: ...` on stderr, and returns the exit code.
pub fn report(error: &anyhow::Error) -> i32 {
    match error.downcast_ref::<Failure>() {
        Some(failure) => failure.report().into(),
        None => Failure::new(Code::Failed, format!("{error:#}")).report().into(),
    }
}
