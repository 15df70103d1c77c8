//! `cargo mongo-migrate diff`: the declared schema against the committed
//! snapshot, and the migration modules that take a database from one to
//! the other.
//!
//! - `snapshot.rs`: the snapshot file, in the shape the runtime writes a
//!   declared collection;
//! - `lineage.rs`: which generated modules a snapshot stands for, and the
//!   merges of two branches' snapshots that it finds;
//! - `diff.rs`: the operations from one snapshot to the next, by deploy phase;
//! - `render.rs`: the modules that make them.

mod diff;
pub mod lineage;
mod render;
mod snapshot;

pub use diff::{diff, Changes, Op};
pub use render::{render_module, Half};
pub use snapshot::{CollectionSpec, IndexSpec, Snapshot, SNAPSHOT_FILE};
