//! The migration lock: one document, taken atomically, expiring by the
//! server's clock, refreshed by a heartbeat, with a fencing generation.
//!
//! The lock alone cannot stop a runner that lost it from writing: tracking
//! writes go to other documents. What stops it is the fence (see
//! `tracking.rs`). The lock document names the versions its holder may
//! write (`plan`, set when the lock is taken), and keeps the plans of
//! earlier holders that nobody has fenced yet (`unfenced`): whoever takes
//! the lock next, or force-unlock, fences all of them before anything else.
//!
//! - [`info`]: the lock document as read, and who holds it;
//! - [`store`]: the lock document's writes (acquire, refresh, release);
//! - [`guard`]: a run's hold on the lock and its heartbeat;
//! - [`proof`]: the rules for when the lock is proved before work starts;
//! - [`resumed`]: a SIGCONT, seen directly.
//!
//! No file uses one that uses it: `info` and `resumed` hold data; `store`
//! uses `info` and returns data; `guard` uses those three and builds itself
//! (`LockGuard::acquire`); `proof` adds its rules to the guard's handle.

mod guard;
mod info;
mod proof;
mod resumed;
mod store;

pub(crate) use guard::{LockGuard, LockHandle};
pub(crate) use info::Fence;
pub use info::LockInfo;
#[cfg(feature = "cli")]
pub(crate) use store::MAX_ROUTER_SKEW;
pub(crate) use store::{held, Lock};
