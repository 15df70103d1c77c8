//! The harness: building it (`build.rs`) and running it (`run.rs`).

mod build;
mod run;

pub use build::{build, compile, crate_dir, no_runtime, registry_cache, require_library, Crate, Profile};
pub use run::run;
