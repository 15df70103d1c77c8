//! Ctrl-C and SIGTERM in the harness: the first stops the run after the
//! migration in progress, the second aborts.

use crate::StopHandle;

/// Exit status after a second Ctrl-C, as shells report a SIGINT.
pub const ABORTED: u8 = 130;

/// The first Ctrl-C (or SIGTERM) lets the migration in progress finish and be
/// recorded, then the run stops and releases the lock. A second one aborts
/// at once: the lock then expires on its own, and the migration is left
/// `running` for `resolve`.
pub(crate) async fn stop_on_signal(mut signals: Signals, stop: StopHandle) {
    signals.next().await;
    stop.stop();
    // A migration binary draws its walk's bar in this process: cleared,
    // and not drawn again over (or after) the lines below.
    crate::stop::interrupted();
    // On a line of its own: a progress line may be open.
    eprintln!(
        "\nmongo-migrate: stopping after the migration in progress (a walk in batches stops after its batch in flight); press Ctrl-C again to abort"
    );
    signals.next().await;
    eprintln!("mongo-migrate: aborted");
    std::process::exit(ABORTED.into());
}

/// SIGINT and SIGTERM on Unix, Ctrl-C elsewhere.
#[cfg(unix)]
pub(crate) struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    pub(crate) fn new() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
        }
    }

    /// Waits for the next signal; never returns if none can be watched.
    async fn next(&mut self) {
        async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
            match signal {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            Some(()) = recv(&mut self.interrupt) => {}
            Some(()) = recv(&mut self.terminate) => {}
            else => std::future::pending().await,
        }
    }
}

#[cfg(not(unix))]
pub(crate) struct Signals;

#[cfg(not(unix))]
impl Signals {
    pub(crate) fn new() -> Self {
        Signals
    }

    async fn next(&mut self) {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
