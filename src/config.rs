//! `config`: a package's effective settings, and where each comes from
//! (flag, environment, package metadata, the URI, default), as
//! `cargo release config` shows them.

use anyhow::Result;
use serde::Serialize;

use crate::cli::ConnectionArgs;
use crate::workspace::{Target, Workspace};

pub use mongo_migrations::cli::connection::Source;
use mongo_migrations::cli::connection::{resolve, DEFAULT_CONNECT_TIMEOUT_SECS};

/// How `config` names a source.
fn describe(source: Source, env: &str) -> String {
    match source {
        Source::Flag => "flag".into(),
        Source::Environment => format!("environment ({env})"),
        Source::Metadata => "[package.metadata.mongo-migrate]".into(),
        Source::Uri => "the URI's path".into(),
        Source::Default => "default".into(),
        _ => "not set".into(),
    }
}

/// One setting: its key, value (a string, a number or a boolean, as
/// `Cargo.toml` would hold it) and source.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    pub key: &'static str,
    pub value: Option<serde_json::Value>,
    pub source: Source,
    /// The environment variable, for `Source::Environment`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variable: Option<String>,
}

/// The settings of `target`: pure, given the flags and `env` (a lookup of
/// environment variables).
pub fn settings(target: &Target, conn: &ConnectionArgs, env: impl Fn(&str) -> Option<String>) -> Vec<Setting> {
    let c = &target.config;
    let set = |key| target.configured.contains(key);
    let meta_or_default = |key: &'static str, value: serde_json::Value| Setting {
        key,
        value: Some(value),
        source: if set(key) { Source::Metadata } else { Source::Default },
        variable: None,
    };
    let resolved = resolve(conn, c, &env);
    let (uri, uri_source) = (resolved.uri, resolved.uri_source);
    let (database, db_source) = (resolved.database, resolved.database_source);
    let runtime = c.runtime(conn.connect_timeout);
    vec![
        Setting {
            key: "uri",
            value: uri.as_deref().map(|u| redact(u).into()),
            source: uri_source,
            variable: (uri_source == Source::Environment).then(|| c.uri_env.clone()),
        },
        Setting {
            key: "database",
            value: database.map(Into::into),
            source: db_source,
            variable: (db_source == Source::Environment).then(|| c.database_env.clone()),
        },
        meta_or_default("tracking-collection", runtime.tracking_collection.clone().into()),
        meta_or_default("lock-collection", runtime.lock_collection.clone().into()),
        meta_or_default("lock-ttl-secs", runtime.lock_ttl.as_secs().into()),
        meta_or_default("out-of-order", format!("{:?}", c.out_of_order).to_lowercase().into()),
        meta_or_default(
            "index-commit-quorum",
            match runtime.index_commit_quorum {
                mongo_migrations::schema::CommitQuorum::Members(n) => n.into(),
                other => other.to_string().into(),
            },
        ),
        meta_or_default(
            "index-build-wait-secs",
            runtime.index_build_wait.map_or(0, |d| d.as_secs()).into(),
        ),
        Setting {
            key: "connect-timeout",
            value: Some(conn.connect_timeout.into()),
            source: if conn.connect_timeout == DEFAULT_CONNECT_TIMEOUT_SECS {
                Source::Default
            } else {
                Source::Flag
            },
            variable: None,
        },
        meta_or_default("uri-env", c.uri_env.clone().into()),
        meta_or_default("database-env", c.database_env.clone().into()),
        meta_or_default("migrations-dir", c.migrations_dir.display().to_string().into()),
        meta_or_default("registry-fn", c.registry_fn.clone().into()),
        Setting {
            key: "schema-fn",
            value: c.schema_fn.clone().map(Into::into),
            source: if c.schema_fn.is_some() {
                Source::Metadata
            } else {
                Source::Unset
            },
            variable: None,
        },
        meta_or_default("build-script", c.build_script.into()),
    ]
}

/// A value as `Cargo.toml` would hold it: a quoted string, a bare number or boolean.
fn toml_literal(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// The URI with its password replaced by `****`.
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let hosts_end = rest.find('/').unwrap_or(rest.len());
    match rest[..hosts_end].rfind('@') {
        Some(at) => {
            let credentials = &rest[..at];
            let user = credentials.split_once(':').map_or(credentials, |(u, _)| u);
            let password = if credentials.contains(':') { ":****" } else { "" };
            format!("{scheme}://{user}{password}{}", &rest[at..])
        }
        None => uri.to_string(),
    }
}

/// Prints the settings of each package: TOML-like lines with their
/// sources, or JSON.
pub fn print(ws: &Workspace, conn: &ConnectionArgs, json: bool) -> Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    let all: Vec<(&Target, Vec<Setting>)> = ws.targets.iter().map(|t| (t, settings(t, conn, env))).collect();
    if json {
        let doc = crate::output::one_or_keyed(
            all.iter()
                .map(|(t, s)| {
                    let package = serde_json::json!({ "package": t.name, "settings": s });
                    (t.name.clone(), package)
                })
                .collect(),
            ws.whole,
        );
        mongo_migrations::outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    for (target, settings) in all {
        mongo_migrations::outln!("[{}]", target.name);
        for s in settings {
            match &s.value {
                // An unset key is a comment: the line stays valid TOML.
                None => mongo_migrations::outln!("# {:<18} = (not set)", s.key),
                Some(v) => {
                    let source = describe(s.source, s.variable.as_deref().unwrap_or_default());
                    mongo_migrations::outln!("{:<20} = {:<40} # {source}", s.key, toml_literal(v));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workspace::{Features, PackageConfig};

    fn target(configured: &[&str], config: PackageConfig) -> Target {
        Target {
            name: "app".into(),
            version: "0.1.0".into(),
            root: "/src/app".into(),
            lib_name: Some("app".into()),
            lib_root: None,
            config,
            configured: configured.iter().map(|s| s.to_string()).collect(),
            features: Features {
                enabled: vec![],
                default: true,
            },
            runtime_renamed: None,
        }
    }

    fn conn(uri: Option<&str>, database: Option<&str>) -> ConnectionArgs {
        ConnectionArgs {
            uri: uri.map(str::to_string),
            database: database.map(str::to_string),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT_SECS,
        }
    }

    fn source(settings: &[Setting], key: &str) -> (Option<String>, Source) {
        let s = settings.iter().find(|s| s.key == key).unwrap();
        (
            s.value
                .as_ref()
                .map(super::toml_literal)
                .map(|v| v.trim_matches('"').to_string()),
            s.source,
        )
    }

    #[test]
    fn numbers_and_booleans_stay_numbers_and_booleans() {
        let t = target(&[], PackageConfig::default());
        let s = settings(&t, &conn(None, None), |_| None);
        let value = |key: &str| s.iter().find(|s| s.key == key).unwrap().value.clone().unwrap();
        assert_eq!(value("lock-ttl-secs"), serde_json::json!(60));
        assert_eq!(value("build-script"), serde_json::json!(false));
        assert_eq!(value("connect-timeout"), serde_json::json!(10));
        assert_eq!(super::toml_literal(&value("lock-ttl-secs")), "60");
        assert_eq!(super::toml_literal(&value("registry-fn")), "\"migrations::registry\"");
    }

    #[test]
    fn each_setting_names_its_source() {
        let mut config = PackageConfig::default();
        config.database = Some("shop".into());
        config.tracking_collection = Some("changes".into());
        let t = target(&["database", "tracking-collection"], config);
        let env = |n: &str| (n == "MONGODB_URI").then(|| "mongodb://u:secret@127.0.0.1/envdb".to_string());
        let s = settings(&t, &conn(None, None), env);
        assert_eq!(
            source(&s, "uri"),
            (Some("mongodb://u:****@127.0.0.1/envdb".into()), Source::Environment)
        );
        assert_eq!(source(&s, "database"), (Some("shop".into()), Source::Metadata));
        assert_eq!(
            source(&s, "tracking-collection"),
            (Some("changes".into()), Source::Metadata)
        );
        assert_eq!(
            source(&s, "lock-collection"),
            (Some("migration_locks".into()), Source::Default)
        );
        let s = settings(&t, &conn(Some("mongodb://h/x"), Some("flagdb")), env);
        assert_eq!(source(&s, "uri").1, Source::Flag);
        assert_eq!(source(&s, "database"), (Some("flagdb".into()), Source::Flag));
        // Neither flag, environment nor metadata: the URI's path.
        let t = target(&[], PackageConfig::default());
        let s = settings(&t, &conn(Some("mongodb://h:1/pathdb?replicaSet=rs"), None), |_| None);
        assert_eq!(source(&s, "database"), (Some("pathdb".into()), Source::Uri));
        let s = settings(&t, &conn(None, None), |_| None);
        assert_eq!(source(&s, "uri"), (None, Source::Unset));
    }

    #[test]
    fn passwords_never_print() {
        assert_eq!(redact("mongodb://a:b@h:1/db"), "mongodb://a:****@h:1/db");
        assert_eq!(redact("mongodb+srv://a@h/db"), "mongodb+srv://a@h/db");
        assert_eq!(redact("mongodb://h:1/db?x=a@b"), "mongodb://h:1/db?x=a@b");
    }
}
