//! A package's settings: its `[package.metadata.mongo-migrate]` table, read
//! by `cargo mongo-migrate` from the manifest and baked into a migration
//! binary (`cli::run`) or a test (`#[mongo_migrations::test]`) at build time.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Config, OutOfOrder};

/// `[package.metadata.mongo-migrate]`, every key optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// Relative to the package root.
    pub migrations_dir: PathBuf,
    /// The function the harness calls, relative to the library root.
    pub registry_fn: String,
    /// The function listing the declared collections (`fn() -> Vec<Collection>`),
    /// relative to the library root, for `diff` and `check`.
    pub schema_fn: Option<String>,
    /// `true` when `build.rs` generates the registry (no `mod.rs` is written).
    pub build_script: bool,
    /// The database, when neither `--database` nor the environment names it.
    pub database: Option<String>,
    /// The tracking collection, instead of the runtime's default.
    pub tracking_collection: Option<String>,
    /// The lock collection, instead of the runtime's default.
    pub lock_collection: Option<String>,
    /// The lock's time to live, instead of the runtime's default.
    pub lock_ttl_secs: Option<u64>,
    /// The environment variable holding the URI.
    pub uri_env: String,
    /// The environment variable holding the database name.
    pub database_env: String,
    /// What `up` does with a pending migration older than the newest applied one.
    pub out_of_order: OutOfOrder,
    /// `commitQuorum` of index builds: `"votingMembers"` (default),
    /// `"majority"`, or a number of members.
    pub index_commit_quorum: Option<crate::schema::CommitQuorum>,
    /// How long a migration waits for an index build to commit (default
    /// 7200; 0: as long as it takes).
    pub index_build_wait_secs: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            migrations_dir: "src/migrations".into(),
            registry_fn: "migrations::registry".into(),
            schema_fn: None,
            build_script: false,
            database: None,
            tracking_collection: None,
            lock_collection: None,
            lock_ttl_secs: None,
            uri_env: "MONGODB_URI".into(),
            database_env: "MONGODB_DATABASE".into(),
            out_of_order: OutOfOrder::Refuse,
            index_commit_quorum: None,
            index_build_wait_secs: None,
        }
    }
}

impl Settings {
    /// The keys of `[package.metadata.mongo-migrate]`, for error hints.
    pub const KEYS: &str = "migrations-dir, registry-fn, schema-fn, build-script, database, tracking-collection, lock-collection, lock-ttl-secs, uri-env, database-env, out-of-order, index-commit-quorum, index-build-wait-secs";

    /// The runtime's settings, from this metadata: the one place they are copied.
    pub fn runtime(&self, connect_timeout_secs: u64) -> Config {
        let mut config = Config::default();
        if let Some(name) = &self.tracking_collection {
            config.tracking_collection = name.clone();
        }
        if let Some(name) = &self.lock_collection {
            config.lock_collection = name.clone();
        }
        if let Some(secs) = self.lock_ttl_secs {
            config.lock_ttl = std::time::Duration::from_secs(secs);
        }
        config.connect_timeout = std::time::Duration::from_secs(connect_timeout_secs);
        config.out_of_order = self.out_of_order;
        if let Some(quorum) = self.index_commit_quorum {
            config.index_commit_quorum = quorum;
        }
        match self.index_build_wait_secs {
            Some(0) => config.index_build_wait = None,
            Some(secs) => config.index_build_wait = Some(std::time::Duration::from_secs(secs)),
            None => {}
        }
        config
    }

    /// The settings in a `Cargo.toml`'s text, as [`settings!`](crate::settings)
    /// embeds it; the defaults when it has no `[package.metadata.mongo-migrate]`.
    #[cfg(any(feature = "cli", feature = "macros"))]
    pub fn from_manifest(manifest: &str) -> Result<Settings, String> {
        let doc: toml::Table = manifest
            .parse()
            .map_err(|e| format!("Cargo.toml does not parse: {e}"))?;
        let table = doc
            .get("package")
            .and_then(|p| p.get("metadata"))
            .and_then(|m| m.get("mongo-migrate"));
        match table {
            None => Ok(Settings::default()),
            Some(value) => value.clone().try_into().map_err(|e| {
                format!(
                    "invalid [package.metadata.mongo-migrate]: {e} (keys: {})",
                    Settings::KEYS
                )
            }),
        }
    }
}

/// The package a binary or a test was built from: its name and version, and
/// its settings, all read at build time.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Package {
    /// `CARGO_PKG_NAME`.
    pub name: String,
    /// `CARGO_PKG_VERSION`.
    pub version: String,
    /// Its `[package.metadata.mongo-migrate]`.
    pub settings: Settings,
}

impl Package {
    /// Use [`settings!`](crate::settings) rather than this.
    #[doc(hidden)]
    #[cfg(any(feature = "cli", feature = "macros"))]
    pub fn baked(name: &str, version: &str, manifest: &str) -> Result<Package, String> {
        Ok(Package {
            name: name.into(),
            version: version.into(),
            settings: Settings::from_manifest(manifest)?,
        })
    }
}

/// The package this is expanded in, with its `[package.metadata.mongo-migrate]`,
/// read from its `Cargo.toml` at build time (a change rebuilds): what
/// [`cli::run`](crate::cli::run) and `#[mongo_migrations::test]` take.
///
/// ```ignore
/// let package = mongo_migrations::settings!().expect("valid package metadata");
/// ```
#[cfg(any(feature = "cli", feature = "macros"))]
#[macro_export]
macro_rules! settings {
    () => {
        $crate::Package::baked(
            ::core::env!("CARGO_PKG_NAME"),
            ::core::env!("CARGO_PKG_VERSION"),
            ::core::include_str!(::core::concat!(::core::env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")),
        )
    };
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use super::*;

    #[test]
    fn index_builds_take_their_quorum_and_wait_from_the_table() {
        let manifest = |table: &str| format!("[package]\nname = \"a\"\n[package.metadata.mongo-migrate]\n{table}");
        let s = Settings::from_manifest(&manifest(
            "index-commit-quorum = \"majority\"\nindex-build-wait-secs = 0\n",
        ))
        .unwrap();
        let config = s.runtime(10);
        assert_eq!(config.index_commit_quorum, crate::schema::CommitQuorum::Majority);
        assert_eq!(config.index_build_wait, None);
        let s = Settings::from_manifest(&manifest("index-commit-quorum = 2\nindex-build-wait-secs = 600\n")).unwrap();
        assert_eq!(
            s.runtime(10).index_commit_quorum,
            crate::schema::CommitQuorum::Members(2)
        );
        assert_eq!(
            s.runtime(10).index_build_wait,
            Some(std::time::Duration::from_secs(600))
        );
        let defaults = Settings::default().runtime(10);
        assert_eq!(defaults.index_commit_quorum, crate::schema::CommitQuorum::VotingMembers);
        assert_eq!(defaults.index_build_wait, Some(crate::schema::DEFAULT_BUILD_WAIT));
        let e = Settings::from_manifest(&manifest("index-commit-quorum = \"all\"\n")).unwrap_err();
        assert!(e.contains("`all` is not a commit quorum"), "{e}");
    }

    #[test]
    fn a_manifest_without_the_table_gives_the_defaults() {
        let s = Settings::from_manifest("[package]\nname = \"a\"\nversion = \"0.1.0\"\n").unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn the_table_is_read_and_an_unknown_key_refused() {
        let s = Settings::from_manifest(
            "[package]\nname = \"a\"\n[package.metadata.mongo-migrate]\ndatabase = \"shop\"\nlock-ttl-secs = 30\n",
        )
        .unwrap();
        assert_eq!(s.database.as_deref(), Some("shop"));
        assert_eq!(s.runtime(10).lock_ttl, std::time::Duration::from_secs(30));
        let e = Settings::from_manifest("[package.metadata.mongo-migrate]\ndatabse = \"x\"\n").unwrap_err();
        assert!(
            e.contains("unknown field `databse`") && e.contains("keys: migrations-dir"),
            "{e}"
        );
    }
}
