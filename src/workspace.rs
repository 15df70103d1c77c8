//! Finding the packages to work on, and their `[package.metadata.mongo-migrate]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, Package, PackageId};

use crate::cli::Args;
use crate::exit::{Code, Failure};

/// `[package.metadata.mongo-migrate]`: the runtime reads the same table
/// when it bakes it into a migration binary.
pub use mongo_migrations::Settings as PackageConfig;

/// A package whose migrations we manage.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub version: String,
    pub root: PathBuf,
    pub lib_name: Option<String>,
    /// The library's root file (`src/lib.rs`).
    pub lib_root: Option<PathBuf>,
    pub config: PackageConfig,
    /// The keys its `[package.metadata.mongo-migrate]` sets.
    pub configured: BTreeSet<String>,
    /// The cargo features the harness enables on the package.
    pub features: Features,
    /// The name its `Cargo.toml` gives the runtime when that is not
    /// `mongo-migrations` (`mm = { package = "mongo-migrations", .. }`).
    pub runtime_renamed: Option<String>,
}

/// `--features`, `--all-features` and `--no-default-features`, checked
/// against the package so a typo is an error before anything is built.
#[derive(Debug, Clone)]
pub struct Features {
    pub enabled: Vec<String>,
    pub default: bool,
}

impl Target {
    pub fn migrations_dir(&self) -> PathBuf {
        self.root.join(&self.config.migrations_dir)
    }
}

#[derive(Debug, Clone)]
pub enum Runtime {
    Path(PathBuf),
    /// `version` is `=x.y.z`; `index` is set for a registry other than crates.io.
    Registry {
        version: String,
        index: Option<String>,
    },
}

#[derive(Debug)]
pub struct Workspace {
    pub root: PathBuf,
    pub target_dir: PathBuf,
    pub targets: Vec<Target>,
    /// `--workspace` was given: one JSON document keyed by package.
    pub whole: bool,
    /// How to run `cargo metadata` again, with dependencies resolved.
    manifest_path: Option<PathBuf>,
    verbose: bool,
    /// The resolved dependency graph, read only when a harness is built:
    /// resolving takes ten times as long as reading the workspace.
    resolved: std::cell::OnceCell<Metadata>,
}

impl Workspace {
    /// A workspace whose packages are already chosen (its runtime is
    /// resolved from the manifest in the current directory, if asked).
    pub fn new(root: PathBuf, target_dir: PathBuf, targets: Vec<Target>) -> Self {
        Workspace {
            root,
            target_dir,
            targets,
            whole: false,
            manifest_path: None,
            verbose: false,
            resolved: std::cell::OnceCell::new(),
        }
    }

    /// How the harness of `target` depends on the runtime its package
    /// resolved; `None` if it does not depend on it.
    pub fn runtime(&self, target: &Target) -> Result<Option<Runtime>> {
        let metadata = match self.resolved.get() {
            Some(m) => m,
            None => {
                let m = metadata(self.manifest_path.as_deref(), self.verbose, true)?;
                self.resolved.get_or_init(|| m)
            }
        };
        let package = metadata
            .workspace_packages()
            .into_iter()
            .find(|p| p.name.as_str() == target.name);
        Ok(package.and_then(|p| runtime(metadata, &p.id)))
    }
}

/// Runs `cargo metadata`; with `resolve`, with the dependency graph.
fn metadata(manifest_path: Option<&Path>, verbose: bool, resolve: bool) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    cmd.cargo_path(cargo());
    if let Some(path) = manifest_path {
        cmd.manifest_path(path);
    }
    if !resolve {
        cmd.no_deps();
    }
    if verbose {
        show_command(&cmd.cargo_command());
    }
    cmd.exec().map_err(|e| {
        Failure::new(Code::Usage, format!("cannot read the cargo workspace: {e}"))
            .hint("run inside a crate, or pass --manifest-path path/to/Cargo.toml")
            .into()
    })
}

pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Prints a child command, as `--verbose` promises.
pub fn show_command(cmd: &std::process::Command) {
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    eprintln!("     Running `{}`", line.join(" "));
}

/// Reads cargo metadata and selects packages per `-p`, `--workspace` or the manifest.
pub fn load(args: &Args) -> Result<Workspace> {
    let metadata = metadata(args.manifest_path.as_deref(), args.verbose, false)?;
    let members: Vec<&Package> = metadata.workspace_packages();
    let chosen: Vec<&Package> = if let Some(spec) = &args.package {
        let found = members.iter().find(|p| p.name.as_str() == spec.as_str()).copied();
        vec![found.ok_or_else(|| {
            Failure::new(
                Code::Usage,
                format!("package `{spec}` is not a member of this workspace"),
            )
            .hint(format!("members: {}", names(&members)))
        })?]
    } else if args.workspace {
        let with = ordered(&members)
            .into_iter()
            .filter(|p| has_migrations(p).unwrap_or(false))
            .collect::<Vec<_>>();
        if with.is_empty() {
            bail!(
                Failure::new(Code::Usage, "no workspace member has a migrations directory")
                    .hint("create one with `cargo mongo-migrate -p <member> new <name>`")
            );
        }
        with
    } else if let Some(current) = current_package(&members, args.manifest_path.as_deref()) {
        // As cargo does: the package of `--manifest-path`, or of the nearest
        // `Cargo.toml` above the current directory (a member's folder).
        vec![current]
    } else if let Some(root) = metadata.root_package() {
        vec![root]
    } else {
        let candidates: Vec<&Package> = members
            .iter()
            .filter(|p| has_migrations(p).unwrap_or(false))
            .copied()
            .collect();
        let list = if candidates.is_empty() {
            names(&members)
        } else {
            names(&candidates)
        };
        bail!(
            Failure::new(Code::Usage, "this is a virtual workspace: choose a package")
                .hint(format!("pass -p <package> or --workspace; candidates: {list}"))
        );
    };
    let targets = chosen
        .into_iter()
        .map(|p| target(p, args))
        .collect::<Result<Vec<_>>>()?;
    Ok(Workspace {
        whole: args.workspace,
        manifest_path: args.manifest_path.clone(),
        verbose: args.verbose,
        ..Workspace::new(
            metadata.workspace_root.clone().into_std_path_buf(),
            metadata.target_directory.clone().into_std_path_buf(),
            targets,
        )
    })
}

/// The member whose manifest is `manifest_path`, or else the nearest
/// `Cargo.toml` at or above the current directory, as cargo picks it.
fn current_package<'a>(members: &[&'a Package], manifest_path: Option<&Path>) -> Option<&'a Package> {
    let manifest = match manifest_path {
        Some(path) => path.canonicalize().ok()?,
        None => nearest_manifest(&std::env::current_dir().ok()?)?,
    };
    members
        .iter()
        .find(|p| {
            p.manifest_path
                .as_std_path()
                .canonicalize()
                .is_ok_and(|m| m == manifest)
        })
        .copied()
}

/// The first `Cargo.toml` in `dir` or a folder above it.
fn nearest_manifest(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .map(|d| d.join("Cargo.toml"))
        .find(|m| m.is_file())
        .and_then(|m| m.canonicalize().ok())
}

fn names(packages: &[&Package]) -> String {
    packages.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn config(package: &Package) -> Result<PackageConfig> {
    match package.metadata.get("mongo-migrate") {
        None => Ok(PackageConfig::default()),
        Some(value) => serde_json::from_value(value.clone()).map_err(|e| {
            Failure::new(
                Code::Usage,
                format!(
                    "invalid [package.metadata.mongo-migrate] in {}: {e}",
                    package.manifest_path
                ),
            )
            .hint(format!("keys: {}", mongo_migrations::Settings::KEYS))
            .into()
        }),
    }
}

fn has_migrations(package: &Package) -> Result<bool> {
    let root = package.manifest_path.parent().expect("manifest has a parent");
    Ok(root.as_std_path().join(config(package)?.migrations_dir).is_dir())
}

fn target(package: &Package, args: &Args) -> Result<Target> {
    let lib = package.targets.iter().find(|t| t.is_lib() || t.is_rlib());
    let lib_name = lib.map(|t| t.name.replace('-', "_"));
    let lib_root = lib.map(|t| t.src_path.clone().into_std_path_buf());
    Ok(Target {
        name: package.name.to_string(),
        version: package.version.to_string(),
        root: package
            .manifest_path
            .parent()
            .expect("manifest has a parent")
            .as_std_path()
            .to_path_buf(),
        lib_name,
        lib_root,
        config: config(package)?,
        configured: package
            .metadata
            .get("mongo-migrate")
            .and_then(|m| m.as_object())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        features: features(package, args)?,
        runtime_renamed: package
            .dependencies
            .iter()
            .filter(|d| d.name == RUNTIME_PACKAGE)
            .find_map(|d| d.rename.clone().filter(|r| r.replace('-', "_") != "mongo_migrations")),
    })
}

fn features(package: &Package, args: &Args) -> Result<Features> {
    let mut enabled: Vec<String> = Vec::new();
    if args.all_features {
        enabled.extend(package.features.keys().cloned());
    }
    // Like cargo, accept both `-F a,b` and `-F "a b"`.
    for feature in args.features.iter().flat_map(|f| f.split_whitespace()) {
        // `dependency/feature` is cargo's to check.
        if !feature.contains('/') && !package.features.contains_key(feature) {
            let known: Vec<&str> = package.features.keys().map(String::as_str).collect();
            let hint = if known.is_empty() {
                "it has no features; declare them under [features] in its Cargo.toml".to_string()
            } else {
                format!("its features: {}", known.join(", "))
            };
            bail!(Failure::new(
                Code::Usage,
                format!("package `{}` has no feature `{feature}`", package.name)
            )
            .hint(hint));
        }
        if !enabled.iter().any(|f| f == feature) {
            enabled.push(feature.to_string());
        }
    }
    Ok(Features {
        enabled,
        default: !args.no_default_features,
    })
}

/// The runtime's package name on crates.io.
pub const RUNTIME_PACKAGE: &str = "mongo-migrations";

/// The `mongo-migrations` package this package resolved to.
fn runtime(metadata: &Metadata, id: &PackageId) -> Option<Runtime> {
    let resolve = metadata.resolve.as_ref()?;
    let node = resolve.nodes.iter().find(|n| &n.id == id)?;
    // By package name: a dependency renamed in Cargo.toml is found too.
    let dep = node
        .deps
        .iter()
        .find(|d| metadata[&d.pkg].name.as_str() == RUNTIME_PACKAGE)?;
    let package = &metadata[&dep.pkg];
    Some(match &package.source {
        None => Runtime::Path(package.manifest_path.parent()?.as_std_path().to_path_buf()),
        Some(source) => Runtime::Registry {
            version: format!("={}", package.version),
            index: registry_index(&source.repr),
        },
    })
}

/// The index of a registry source other than crates.io (`registry+URL`, or
/// `sparse+URL` whose prefix is part of the index URL).
fn registry_index(source: &str) -> Option<String> {
    const CRATES_IO: [&str; 2] = [
        "registry+https://github.com/rust-lang/crates.io-index",
        "sparse+https://index.crates.io/",
    ];
    if CRATES_IO.contains(&source) {
        return None;
    }
    source
        .strip_prefix("registry+")
        .map(str::to_string)
        .or_else(|| source.starts_with("sparse+").then(|| source.to_string()))
}

/// Workspace members with dependencies before dependents, then by name.
/// Dev-dependencies do not order migrations (and may form cycles).
fn ordered<'a>(members: &[&'a Package]) -> Vec<&'a Package> {
    fn visit<'a>(
        p: &'a Package,
        by_name: &BTreeMap<&str, &'a Package>,
        seen: &mut BTreeSet<&'a str>,
        done: &mut Vec<&'a Package>,
    ) {
        if !seen.insert(p.name.as_str()) {
            return;
        }
        for dep in p.dependencies.iter().filter(|d| d.kind != DependencyKind::Development) {
            if let Some(d) = by_name.get(dep.name.as_str()) {
                visit(d, by_name, seen, done);
            }
        }
        done.push(p);
    }
    let by_name: BTreeMap<&str, &Package> = members.iter().map(|p| (p.name.as_str(), *p)).collect();
    let (mut seen, mut done) = (BTreeSet::new(), Vec::new());
    for p in by_name.values() {
        visit(p, &by_name, &mut seen, &mut done);
    }
    done
}

/// Shown relative to the current directory when possible.
pub fn display(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::registry_index;

    #[test]
    fn crates_io_needs_no_index_and_another_registry_is_named_by_its_own() {
        for crates_io in [
            "registry+https://github.com/rust-lang/crates.io-index",
            "sparse+https://index.crates.io/",
        ] {
            assert_eq!(registry_index(crates_io), None);
        }
        assert_eq!(
            registry_index("registry+https://git.example/index").as_deref(),
            Some("https://git.example/index")
        );
        // The `sparse+` prefix is part of a sparse index's URL.
        assert_eq!(
            registry_index("sparse+https://cargo.example/api/").as_deref(),
            Some("sparse+https://cargo.example/api/")
        );
    }
}
