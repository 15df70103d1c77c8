//! Building the harness (and the bundle): a tiny crate under
//! `<target-dir>/mongo-migrate/harness/<package>/<workspace>/` that links the
//! user's crate and runs the runtime's harness entry point.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result};

use crate::exit::{Code, Failure};
use crate::workspace::{cargo, show_command, Runtime, Target, Workspace};

/// Generates and builds the harness of `target`; returns the binary.
pub fn build(ws: &Workspace, target: &Target, verbose: bool) -> Result<PathBuf> {
    require_library(target)?;
    let Some(runtime) = &ws.runtime(target)? else {
        return Err(no_runtime(target).into());
    };
    let (dir, bin) = location(ws, target);
    let main = main_rs(&target.config.registry_fn, target.config.schema_fn.as_deref());
    compile(
        ws,
        target,
        runtime,
        &Crate {
            dir: &dir,
            bin: &bin,
            main: &main,
            profile: Profile::Dev,
        },
        verbose,
    )
}

/// Migrations live in a library: the harness links it.
pub fn require_library(target: &Target) -> Result<()> {
    if target.lib_name.is_none() {
        return Err(
            Failure::new(Code::Usage, format!("package `{}` has no library target", target.name))
                .hint("migrations must live in a library: add src/lib.rs with `pub mod migrations;`")
                .into(),
        );
    }
    Ok(())
}

/// The package does not depend on the runtime.
pub fn no_runtime(target: &Target) -> Failure {
    Failure::new(
        Code::Usage,
        format!("package `{}` does not depend on mongo-migrations", target.name),
    )
    .hint("add it: `cargo add mongo-migrations`")
}

/// What to build: the harness, or a migration binary.
pub struct Crate<'a> {
    pub dir: &'a Path,
    pub bin: &'a str,
    pub main: &'a str,
    pub profile: Profile<'a>,
}

/// The harness builds in the dev profile (the user's builds are reused), a
/// bundle in its profile (`release` unless `--profile`), for a target triple
/// if given.
pub enum Profile<'a> {
    Dev,
    Bundle { profile: &'a str, triple: Option<&'a str> },
}

/// Writes the crate's manifest and `main.rs` and builds it; returns the binary.
pub fn compile(ws: &Workspace, target: &Target, runtime: &Runtime, krate: &Crate, verbose: bool) -> Result<PathBuf> {
    let Crate { dir, bin, main, .. } = *krate;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let features: &[&str] = match krate.profile {
        Profile::Dev => &[],
        Profile::Bundle { .. } => &["cli"],
    };
    write(&dir.join("Cargo.toml"), &manifest(bin, ws, target, runtime, features)?)?;
    write(&dir.join("main.rs"), main)?;
    // The user's lock file pins the same dependency versions, so their builds are reused.
    let lock = ws.root.join("Cargo.lock");
    if lock.is_file() {
        let content = std::fs::read_to_string(&lock).with_context(|| format!("cannot read {}", lock.display()))?;
        write(&dir.join("Cargo.lock"), &content)?;
    }

    let mut cmd = Command::new(cargo());
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&ws.target_dir)
        // Diagnostics still reach the terminal as cargo renders them; stdout
        // tells where the binary is, whatever the target or build directory.
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped());
    if let Profile::Bundle { profile, triple } = krate.profile {
        cmd.arg("--profile").arg(profile);
        if let Some(triple) = triple {
            cmd.arg("--target").arg(triple);
        }
    }
    if let Some(color) = cargo_color() {
        cmd.arg("--color").arg(color);
    }
    // On a terminal, cargo's own progress shows; elsewhere (CI logs) a
    // build that takes a while gets a line before and after it.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if verbose {
        show_command(&cmd);
    } else if !terminal {
        cmd.arg("--quiet");
    }
    let started = std::time::Instant::now();
    let announcer = Announcer::start(&target.name, !terminal && !verbose, driver_built(&ws.target_dir));
    let mut child = cmd.spawn().with_context(|| format!("cannot run {}", cargo()))?;
    let mut executable = None;
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    for message in cargo_metadata::Message::parse_stream(stdout) {
        if let cargo_metadata::Message::CompilerArtifact(artifact) = message? {
            if !artifact.fresh {
                announcer.compiled();
            }
            if artifact.target.name == bin {
                executable = artifact.executable.map(|p| p.into_std_path_buf());
            }
        }
    }
    let status = child.wait()?;
    announcer.finish(started);
    match executable {
        Some(path) if status.success() => Ok(path),
        _ => Err(Failure::new(
            Code::Failed,
            format!("building the migrations of `{}` failed", target.name),
        )
        .hint("fix the errors cargo printed above")
        .into()),
    }
}

/// How long a quiet build may take before it is announced.
const SLOW_BUILD: std::time::Duration = std::time::Duration::from_secs(1);

/// How often an announced quiet build says it is still at it.
const STILL_BUILDING: std::time::Duration = std::time::Duration::from_secs(30);

/// `30 s`, `2 min`, `2 min 30 s`.
fn still(elapsed: std::time::Duration) -> String {
    let secs = elapsed.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// Announces a quiet build once it compiles something or has taken
/// [`SLOW_BUILD`], whichever comes first: a no-op build stays silent.
struct Announcer {
    package: String,
    /// The MongoDB driver is compiled already: no warning of minutes.
    driver_built: bool,
    announced: std::sync::Arc<AtomicBool>,
    done: Option<std::sync::mpsc::Sender<()>>,
    timer: Option<std::thread::JoinHandle<()>>,
}

impl Announcer {
    /// Disabled (`enabled` false), it prints nothing.
    fn start(package: &str, enabled: bool, driver_built: bool) -> Self {
        let package = if enabled { package.to_string() } else { String::new() };
        let announced = std::sync::Arc::new(AtomicBool::new(false));
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let (flag, name) = (announced.clone(), package.clone());
        let timer = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut wait_for = SLOW_BUILD;
            // Until the build ends: announced after SLOW_BUILD, then a line
            // every STILL_BUILDING, so a log shows that it is not stuck.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(wait_for) {
                if wait_for == SLOW_BUILD {
                    announce(&flag, &name, driver_built);
                } else if !name.is_empty() {
                    eprintln!(
                        "still building the migrations of `{name}` ({})",
                        still(started.elapsed())
                    );
                }
                wait_for = STILL_BUILDING;
            }
        });
        Announcer {
            package,
            driver_built,
            announced,
            done: Some(done),
            timer: Some(timer),
        }
    }

    /// Cargo compiled a crate: the build is not a no-op.
    fn compiled(&self) {
        announce(&self.announced, &self.package, self.driver_built);
    }

    /// Ends the wait; prints the time if the build was announced.
    fn finish(mut self, started: std::time::Instant) {
        drop(self.done.take());
        if let Some(timer) = self.timer.take() {
            let _ = timer.join();
        }
        if !self.package.is_empty() && self.announced.load(Ordering::SeqCst) {
            eprintln!(
                "built the migrations of `{}` in {:.1} s",
                self.package,
                started.elapsed().as_secs_f64()
            );
        }
    }
}

fn announce(announced: &AtomicBool, package: &str, driver_built: bool) {
    if !package.is_empty() && !announced.swap(true, Ordering::SeqCst) {
        let why = if driver_built {
            ""
        } else {
            " (this first build compiles the MongoDB driver: minutes; a `cargo build` of the package does it too)"
        };
        eprintln!("building the migrations of `{package}`{why}");
    }
}

/// Whether `target_dir` holds a compiled MongoDB driver of the dev profile,
/// which the harness build reuses.
fn driver_built(target_dir: &Path) -> bool {
    std::fs::read_dir(target_dir.join("debug").join("deps")).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libmongodb-") && name.ends_with(".rlib")
        })
    })
}

/// Where the registry's parse cache of `target` lives: beside its harness.
pub fn registry_cache(ws: &Workspace, target: &Target) -> PathBuf {
    location(ws, target).0.join("registry-cache.json")
}

/// The harness crate's directory and binary name. Both carry a digest of the
/// workspace root: a target directory shared by several workspaces (a global
/// `build.target-dir`) must never build or run another workspace's package
/// of the same name, not even when both run at once.
fn location(ws: &Workspace, target: &Target) -> (PathBuf, String) {
    let dir = crate_dir(ws, target, "harness");
    let key = dir.file_name().expect("a digest").to_string_lossy().into_owned();
    (dir, format!("mongo-migrate-harness-{}-{key}", target.name))
}

/// `<target-dir>/mongo-migrate/<kind>/<package>/<digest of the workspace root>/`.
pub fn crate_dir(ws: &Workspace, target: &Target, kind: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(ws.root.as_os_str().as_encoded_bytes());
    let key = format!("{digest:x}")[..12].to_string();
    ws.target_dir
        .join("mongo-migrate")
        .join(kind)
        .join(&target.name)
        .join(&key)
}

/// The harness manifest. It copies the workspace's `[profile]` (so the
/// user's builds are reused) and `[patch]` (so dependencies resolve the same),
/// with relative paths made absolute.
fn manifest(bin: &str, ws: &Workspace, target: &Target, runtime: &Runtime, features: &[&str]) -> Result<String> {
    use toml::{Table, Value};
    let dep = |key: &str, value: String| Value::Table(Table::from_iter([(key.to_string(), Value::String(value))]));
    let mut runtime_dep = match runtime {
        Runtime::Path(path) => dep("path", path.display().to_string()),
        Runtime::Registry { version, index } => {
            let mut d = dep("version", version.clone());
            // Another registry than crates.io: named by its index, as
            // `cargo publish` writes it, so no registry name is needed.
            if let (Some(index), Value::Table(t)) = (index, &mut d) {
                t.insert("registry-index".into(), Value::String(index.clone()));
            }
            d
        }
    };
    if let (false, Value::Table(t)) = (features.is_empty(), &mut runtime_dep) {
        let list = features.iter().map(|f| Value::String((*f).to_string())).collect();
        t.insert("features".into(), Value::Array(list));
    }
    let mut user = dep("path", target.root.display().to_string());
    if let Value::Table(t) = &mut user {
        t.insert("package".into(), Value::String(target.name.clone()));
        if !target.features.enabled.is_empty() {
            let list = target.features.enabled.iter().cloned().map(Value::String).collect();
            t.insert("features".into(), Value::Array(list));
        }
        if !target.features.default {
            t.insert("default-features".into(), Value::Boolean(false));
        }
    }
    let mut doc = Table::new();
    doc.insert(
        "package".into(),
        Value::Table(Table::from_iter([
            ("name".to_string(), Value::String(bin.into())),
            ("version".to_string(), Value::String("0.0.0".into())),
            ("edition".to_string(), Value::String("2021".into())),
            ("publish".to_string(), Value::Boolean(false)),
        ])),
    );
    doc.insert(
        "bin".into(),
        Value::Array(vec![Value::Table(Table::from_iter([
            ("name".to_string(), Value::String(bin.into())),
            ("path".to_string(), Value::String("main.rs".into())),
        ]))]),
    );
    doc.insert(
        "dependencies".into(),
        Value::Table(Table::from_iter([
            ("user_crate".to_string(), user),
            ("mongo-migrations".to_string(), runtime_dep),
        ])),
    );
    // An empty workspace: the harness belongs to no other workspace.
    doc.insert("workspace".into(), Value::Table(Table::new()));

    let root_manifest = ws.root.join("Cargo.toml");
    let text =
        std::fs::read_to_string(&root_manifest).with_context(|| format!("cannot read {}", root_manifest.display()))?;
    let root: Table = text
        .parse()
        .with_context(|| format!("cannot parse {}", root_manifest.display()))?;
    if let Some(profile) = root.get("profile") {
        doc.insert("profile".into(), profile.clone());
    }
    if let Some(Value::Table(patch)) = root.get("patch") {
        let mut patch = patch.clone();
        for (_, source) in patch.iter_mut() {
            let Value::Table(crates) = source else { continue };
            for (_, spec) in crates.iter_mut() {
                if let Some(Value::String(path)) = spec.get_mut("path") {
                    *path = ws.root.join(&*path).display().to_string();
                }
            }
        }
        doc.insert("patch".into(), Value::Table(patch));
    }
    let body = toml::to_string(&doc).context("cannot write the harness manifest")?;
    Ok(format!(
        "# @generated by cargo mongo-migrate; rewritten on every run.\n{body}"
    ))
}

fn main_rs(registry_fn: &str, schema_fn: Option<&str>) -> String {
    let call = match schema_fn {
        Some(schema_fn) => {
            format!("mongo_migrations::harness::main_with_schema(user_crate::{registry_fn}, user_crate::{schema_fn})")
        }
        None => format!("mongo_migrations::harness::main(user_crate::{registry_fn})"),
    };
    format!(
        "// @generated by cargo mongo-migrate; rewritten on every run.\n\
         fn main() -> std::process::ExitCode {{\n    {call}\n}}\n"
    )
}

/// `--color` for cargo, as this process chose it (`None`: cargo decides).
fn cargo_color() -> Option<&'static str> {
    match anstream::ColorChoice::global() {
        anstream::ColorChoice::Always | anstream::ColorChoice::AlwaysAnsi => Some("always"),
        anstream::ColorChoice::Never => Some("never"),
        anstream::ColorChoice::Auto => None,
    }
}

fn write(path: &Path, content: &str) -> Result<()> {
    mongo_migrations_codegen::write_if_changed(path, content)
        .map(|_| ())
        .map_err(anyhow::Error::from)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_long_build_says_how_long_it_has_run() {
        use std::time::Duration;
        assert_eq!(super::still(Duration::from_secs(30)), "30 s");
        assert_eq!(super::still(Duration::from_secs(120)), "2 min");
        assert_eq!(super::still(Duration::from_secs(150)), "2 min 30 s");
    }

    use super::*;
    use crate::workspace::{Features, PackageConfig};

    fn app(root: &std::path::Path) -> Target {
        Target {
            name: "app".into(),
            version: "0.1.0".into(),
            root: root.join("app"),
            lib_name: Some("app".into()),
            lib_root: None,
            config: PackageConfig::default(),
            configured: Default::default(),
            features: Features {
                enabled: vec!["extra".into()],
                default: false,
            },
            runtime_renamed: None,
        }
    }

    #[test]
    fn same_named_packages_of_two_workspaces_never_share_a_harness() {
        let shared = PathBuf::from("/shared/target");
        let ws = |root: &str| Workspace::new(root.into(), shared.clone(), vec![]);
        let (a, b) = (ws("/src/shop"), ws("/src/blog"));
        let (dir_a, bin_a) = location(&a, &app(&a.root));
        let (dir_b, bin_b) = location(&b, &app(&b.root));
        assert_ne!(dir_a, dir_b);
        assert_ne!(bin_a, bin_b);
        assert!(
            dir_a.starts_with("/shared/target/mongo-migrate/harness/app/"),
            "{dir_a:?}"
        );
        assert!(bin_a.starts_with("mongo-migrate-harness-app-"), "{bin_a}");
        // Stable, so a warm harness build is found again.
        assert_eq!(location(&a, &app(&a.root)), (dir_a, bin_a));
    }

    #[test]
    fn the_manifest_copies_profiles_and_patches_with_absolute_paths() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("Cargo.toml"),
            "[workspace]\nmembers = [\"app\"]\n\n[profile.dev]\nopt-level = 1\n\n\
             [patch.crates-io]\nbson = { path = \"vendor/bson\" }\n",
        )
        .unwrap();
        let ws = Workspace::new(root.path().to_path_buf(), root.path().join("target"), vec![]);
        let target = app(root.path());
        let text = manifest(
            "h",
            &ws,
            &target,
            &Runtime::Registry {
                version: "=0.1.0".into(),
                index: None,
            },
            &[],
        )
        .unwrap();
        let doc: toml::Table = text.parse().unwrap();
        assert_eq!(doc["profile"]["dev"]["opt-level"].as_integer(), Some(1), "{text}");
        let vendored = root.path().join("vendor/bson").display().to_string();
        assert_eq!(
            doc["patch"]["crates-io"]["bson"]["path"].as_str(),
            Some(vendored.as_str()),
            "{text}"
        );
        assert_eq!(
            doc["dependencies"]["mongo-migrations"]["version"].as_str(),
            Some("=0.1.0")
        );
        let user = &doc["dependencies"]["user_crate"];
        assert_eq!(user["package"].as_str(), Some("app"));
        assert_eq!(
            user["features"].as_array().unwrap()[0].as_str(),
            Some("extra"),
            "{text}"
        );
        assert_eq!(user["default-features"].as_bool(), Some(false), "{text}");
        assert!(doc["workspace"].as_table().unwrap().is_empty());
        assert!(
            doc["dependencies"]["mongo-migrations"].get("registry-index").is_none(),
            "{text}"
        );

        // A company registry, and a bundle's `cli` feature.
        let company = Runtime::Registry {
            version: "=0.1.0".into(),
            index: Some("sparse+https://cargo.example/api/".into()),
        };
        let text = manifest("h", &ws, &target, &company, &["cli"]).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        let runtime = &doc["dependencies"]["mongo-migrations"];
        assert_eq!(
            runtime["registry-index"].as_str(),
            Some("sparse+https://cargo.example/api/")
        );
        assert_eq!(
            runtime["features"].as_array().unwrap()[0].as_str(),
            Some("cli"),
            "{text}"
        );
    }
}
