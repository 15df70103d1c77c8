//! Registry generation for `cargo mongo-migrate`, shared by the CLI and by
//! build scripts, so `syn` stays out of the runtime.
//!
//! In a build script:
//!
//! ```no_run
//! // build.rs
//! fn main() {
//!     mongo_migrations_codegen::build("src/migrations").unwrap();
//! }
//! ```
//!
//! and in `src/lib.rs` (it compiles only where a build script wrote the file):
//!
//! ```text
//! pub mod migrations {
//!     include!(concat!(env!("OUT_DIR"), "/mongo_migrate_registry.rs"));
//! }
//! ```

// The build-script example above shows a build script's whole `main`.
#![allow(clippy::needless_doctest_main)]

mod cache;
mod error;
pub mod lint;
pub mod names;
mod privileges;
mod registry;
mod scan;
pub mod schema;
mod walks;

use std::path::{Path, PathBuf};

pub use cache::scan_cached;
pub use error::{Error, Result};
pub use registry::{render, render_with, write_if_changed, Layout, HEADER};
pub use scan::{checksum, helpers, read, scan, scan_all, Helper, MigrationFile, REGISTRY_FILE};

/// The file a build script writes into `OUT_DIR`.
pub const BUILD_OUTPUT: &str = "mongo_migrate_registry.rs";

/// Regenerates `<dir>/mod.rs`. Returns the migrations and whether the file changed.
/// On any error the existing file is left as it was.
pub fn generate_module(dir: &Path) -> Result<(Vec<MigrationFile>, bool)> {
    let files = scan(dir)?;
    let registry = render_with(&files, &helpers(dir)?, Layout::Module);
    let changed = write_if_changed(&dir.join(REGISTRY_FILE), &registry)?;
    Ok((files, changed))
}

/// [`generate_module`] through a parse cache at `cache` (see [`scan_cached`]).
pub fn generate_module_cached(dir: &Path, cache: &Path) -> Result<(Vec<MigrationFile>, bool)> {
    let files = scan_cached(dir, cache)?;
    let registry = render_with(&files, &helpers(dir)?, Layout::Module);
    let changed = write_if_changed(&dir.join(REGISTRY_FILE), &registry)?;
    Ok((files, changed))
}

/// For build scripts: writes the registry of `dir` (relative to the crate)
/// into `OUT_DIR` and asks cargo to rerun when the directory changes.
pub fn build(dir: impl AsRef<Path>) -> Result<PathBuf> {
    let var = |var: &'static str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .ok_or(Error::NotInBuildScript { var })
    };
    let dir = var("CARGO_MANIFEST_DIR")?.join(dir);
    println!("cargo:rerun-if-changed={}", dir.display());
    let files = scan(&dir)?;
    let helpers = helpers(&dir)?;
    for path in files.iter().map(|f| &f.path).chain(helpers.iter().map(|h| &h.path)) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let out = var("OUT_DIR")?.join(BUILD_OUTPUT);
    write_if_changed(&out, &render_with(&files, &helpers, Layout::BuildScript))?;
    Ok(out)
}
