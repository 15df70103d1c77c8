//! `cargo mongo-migrate diff`: the declared schema against the committed
//! snapshot, and the migration modules that take a database from one to
//! the other.
//!
//! - `snapshot.rs`: the snapshot file, in the shape the runtime writes a
//!   declared collection;
//! - `diff.rs`: the operations from one snapshot to the next, by deploy phase;
//! - `render.rs`: the modules that make them.

mod diff;
mod render;
mod snapshot;

pub use diff::{diff, Changes, Op};
pub use render::{render_module, Half};
pub use snapshot::{CollectionSpec, IndexSpec, Snapshot, SNAPSHOT_FILE};
