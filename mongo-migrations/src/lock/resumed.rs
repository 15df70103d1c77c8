//! A SIGCONT seen directly: a process that was stopped (SIGSTOP, a VM
//! freeze) proves its lock before it starts anything.

use std::sync::Arc;

/// Set by the SIGCONT handler itself, before the process's threads go on: a
/// process that was stopped proves its lock before it starts anything.
#[derive(Debug)]
pub(super) struct Resumed {
    flag: Arc<std::sync::atomic::AtomicBool>,
    #[cfg(unix)]
    id: Option<signal_hook::SigId>,
}

impl Resumed {
    pub(super) fn watch() -> Self {
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        Resumed {
            #[cfg(unix)]
            id: signal_hook::flag::register(signal_hook::consts::SIGCONT, flag.clone()).ok(),
            flag,
        }
    }

    /// Whether the process was resumed since the last call.
    pub(super) fn take(&self) -> bool {
        self.flag.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Resumed {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(id) = self.id.take() {
            signal_hook::low_level::unregister(id);
        }
    }
}
