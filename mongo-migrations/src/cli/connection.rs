//! Which URI and database a command connects to, and where each comes from:
//! one rule for a run, `config` and `check`. Pure, given a lookup of the
//! environment.

use serde::Serialize;

use crate::cli::args::ConnectionArgs;
use crate::Settings;

/// `--connect-timeout`'s default, in seconds: the runtime's own.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = crate::server::CONNECT_TIMEOUT.as_secs();

/// Where a setting's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// An environment variable (the package's `uri-env` or `database-env`).
    Environment,
    /// `[package.metadata.mongo-migrate]`.
    Metadata,
    /// The URI's path.
    Uri,
    /// The default.
    Default,
    /// Nowhere.
    Unset,
}

/// The URI and the database, each with its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The URI, if any.
    pub uri: Option<String>,
    /// Where it comes from.
    pub uri_source: Source,
    /// The database, if any.
    pub database: Option<String>,
    /// Where it comes from.
    pub database_source: Source,
}

/// The URI: `--uri`, else the package's URI variable (not empty). The
/// database: `--database`, else the package's database variable, else its
/// `database` setting, else the URI's path (as the driver reads it).
pub fn resolve(conn: &ConnectionArgs, settings: &Settings, env: impl Fn(&str) -> Option<String>) -> Resolved {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let (uri, uri_source) = match (&conn.uri, env(&settings.uri_env)) {
        (Some(u), _) => (Some(u.clone()), Source::Flag),
        (None, Some(u)) => (Some(u), Source::Environment),
        (None, None) => (None, Source::Unset),
    };
    let from_uri = || uri.as_deref().and_then(|u| crate::check_target(u, None).ok());
    let (database, database_source) = match (&conn.database, env(&settings.database_env), &settings.database) {
        (Some(d), ..) => (Some(d.clone()), Source::Flag),
        (None, Some(d), _) => (Some(d), Source::Environment),
        (None, None, Some(d)) => (Some(d.clone()), Source::Metadata),
        (None, None, None) => match from_uri() {
            Some(d) => (Some(d), Source::Uri),
            None => (None, Source::Unset),
        },
    };
    Resolved {
        uri,
        uri_source,
        database,
        database_source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(uri: Option<&str>, database: Option<&str>) -> ConnectionArgs {
        ConnectionArgs {
            uri: uri.map(Into::into),
            database: database.map(Into::into),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT_SECS,
        }
    }

    #[test]
    fn flags_then_variables_then_metadata_then_the_uri_s_path() {
        let mut settings = Settings::default();
        let env = |name: &str| match name {
            "MONGODB_URI" => Some("mongodb://127.0.0.1/from_path".to_string()),
            "MONGODB_DATABASE" => Some(String::new()),
            _ => None,
        };
        let r = resolve(&conn(None, None), &settings, env);
        assert_eq!(
            (r.uri_source, r.database.as_deref(), r.database_source),
            (Source::Environment, Some("from_path"), Source::Uri)
        );
        settings.database = Some("meta".into());
        let r = resolve(&conn(None, None), &settings, env);
        assert_eq!(
            (r.database.as_deref(), r.database_source),
            (Some("meta"), Source::Metadata)
        );
        let with_db = |name: &str| match name {
            "MONGODB_DATABASE" => Some("envdb".to_string()),
            other => env(other),
        };
        let r = resolve(&conn(None, None), &settings, with_db);
        assert_eq!(
            (r.database.as_deref(), r.database_source),
            (Some("envdb"), Source::Environment)
        );
        let r = resolve(&conn(Some("mongodb://h/x"), Some("flag")), &settings, with_db);
        assert_eq!((r.uri.as_deref(), r.uri_source), (Some("mongodb://h/x"), Source::Flag));
        assert_eq!((r.database.as_deref(), r.database_source), (Some("flag"), Source::Flag));
        let r = resolve(&conn(None, None), &Settings::default(), |_| None);
        assert_eq!(
            (r.uri, r.uri_source, r.database_source),
            (None, Source::Unset, Source::Unset)
        );
    }
}
