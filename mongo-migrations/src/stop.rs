//! Stopping a run between migrations, for Ctrl-C and shutdown signals.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Asks a running `up` or `down` to stop once the migration in progress is
/// done and recorded: a migration is never cut off halfway, and the lock is
/// released as on any other exit. Clones share the request.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// A handle not yet stopped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests the stop; the run ends before its next migration.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What this process does on its first Ctrl-C before the harness says it
/// stops: a migration binary clears its progress bar (set by the CLI front,
/// so that the signal handler below it needs no knowledge of the terminal).
static ON_INTERRUPT: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets what the first Ctrl-C does first (once per process).
#[cfg(feature = "cli")]
pub(crate) fn on_interrupt(hook: fn()) {
    let _ = ON_INTERRUPT.set(hook);
}

/// Runs the hook [`on_interrupt`] set, if any.
pub(crate) fn interrupted() {
    if let Some(hook) = ON_INTERRUPT.get() {
        hook();
    }
}
