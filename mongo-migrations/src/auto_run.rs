//! Running pending migrations at application startup.

use std::time::Duration;

use crate::{Error, MigrationStatus, Migrator, Phase, RunReport, UpOptions, Version};

/// When and how strictly to migrate at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoRunConfig {
    /// `MIGRATE_ON_START`: off unless `true`.
    pub enabled: bool,
    /// `MIGRATE_ON_START_FAIL_HARD`: return the error instead of reporting it.
    pub fail_hard: bool,
    /// `MIGRATE_ON_START_WAIT_SECS` (default 120): how long to wait while
    /// another instance holds the lock, as when several replicas start at once.
    pub lock_wait: Duration,
    /// `MIGRATE_ON_START_PHASE` (`pre`, the default; `post`; or `all`): the
    /// deploy phase it applies (`None`: every phase).
    pub phase: Option<Phase>,
    /// `MIGRATE_ON_START_CONTINUE_ON_ERROR`: go on past a failed migration
    /// that declares itself independent (see [`UpOptions::continue_on_error`]).
    pub continue_on_error: bool,
}

impl Default for AutoRunConfig {
    fn default() -> Self {
        AutoRunConfig {
            enabled: false,
            fail_hard: false,
            lock_wait: Duration::from_secs(120),
            phase: Some(Phase::PreDeploy),
            continue_on_error: false,
        }
    }
}

impl AutoRunConfig {
    /// Reads `MIGRATE_ON_START` and `MIGRATE_ON_START_FAIL_HARD`; both default to off.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`AutoRunConfig::from_env`] over any lookup (tests, config files).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let flag = |name: &str| match lookup(name).as_deref().map(str::trim) {
            None | Some("") => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
            Some(v) => Err(Error::InvalidEnv {
                variable: name.to_string(),
                value: v.to_string(),
            }),
        };
        let wait = "MIGRATE_ON_START_WAIT_SECS";
        let lock_wait = match lookup(wait).as_deref().map(str::trim) {
            None | Some("") => AutoRunConfig::default().lock_wait,
            Some(v) => Duration::from_secs(v.parse().map_err(|_| Error::InvalidEnv {
                variable: wait.to_string(),
                value: v.to_string(),
            })?),
        };
        let phase_var = "MIGRATE_ON_START_PHASE";
        let phase = match lookup(phase_var).as_deref().map(str::trim) {
            None | Some("") => AutoRunConfig::default().phase,
            Some(v) if v.eq_ignore_ascii_case("all") => None,
            Some(v) => Some(Phase::parse(v).ok_or_else(|| Error::InvalidEnv {
                variable: phase_var.to_string(),
                value: v.to_string(),
            })?),
        };
        Ok(AutoRunConfig {
            enabled: flag("MIGRATE_ON_START")?,
            fail_hard: flag("MIGRATE_ON_START_FAIL_HARD")?,
            lock_wait,
            phase,
            continue_on_error: flag("MIGRATE_ON_START_CONTINUE_ON_ERROR")?,
        })
    }
}

/// What [`auto_run`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum AutoRun {
    /// `MIGRATE_ON_START` is not `true`.
    Disabled,
    /// Pending migrations were applied (the report may list none).
    Applied(RunReport),
    /// The run failed and strict mode is off: the application may start; log this.
    Failed(Error),
    /// The database has applied migrations this binary does not know (a
    /// newer version was deployed, then rolled back); nothing was run. The
    /// service decides whether it can serve. Strict mode refuses to start
    /// instead ([`Error::UnknownVersions`]).
    AheadOfBinary {
        /// The unknown applied versions, with their names.
        versions: Vec<(Version, String)>,
    },
}

/// Applies pending migrations at startup when `config.enabled`. While
/// another instance holds the lock it waits (up to `lock_wait`) and tries
/// again; by then that instance has usually applied everything.
///
/// In strict mode (`fail_hard`) a failure is returned as `Err` so the
/// application can refuse to start; otherwise it comes back as
/// [`AutoRun::Failed`].
///
/// ```no_run
/// use mongo_migrations::{auto_run, AutoRun, AutoRunConfig, Migrator};
///
/// # async fn start(migrator: Migrator) -> Result<(), Box<dyn std::error::Error>> {
/// // MIGRATE_ON_START=true, MIGRATE_ON_START_FAIL_HARD, MIGRATE_ON_START_WAIT_SECS
/// match auto_run(&migrator, AutoRunConfig::from_env()?).await? {
///     AutoRun::Failed(e) => eprintln!("migrations failed at startup: {e}"),
///     _ => {}
/// }
/// # Ok(())
/// # }
/// ```
pub async fn auto_run(migrator: &Migrator, config: AutoRunConfig) -> Result<AutoRun, Error> {
    if !config.enabled {
        return Ok(AutoRun::Disabled);
    }
    let waiting = migrator.clone().with_lock_wait(config.lock_wait);
    let options = UpOptions {
        phase: config.phase,
        continue_on_error: config.continue_on_error,
        ..UpOptions::default()
    };
    match waiting.up(options).await {
        Ok(report) => Ok(AutoRun::Applied(report)),
        Err(e) if config.fail_hard => Err(e),
        Err(Error::UnknownVersions { versions }) if ahead(migrator, &versions).await => {
            Ok(AutoRun::AheadOfBinary { versions })
        }
        Err(e) => Ok(AutoRun::Failed(e)),
    }
}

/// Whether every unknown version is completed: the database is ahead of
/// this binary, not damaged.
async fn ahead(migrator: &Migrator, versions: &[(Version, String)]) -> bool {
    let Ok(records) = migrator.history(&Default::default()).await else {
        return false;
    };
    versions.iter().all(|(v, _)| {
        records
            .iter()
            .any(|r| r.version == *v && r.status == MigrationStatus::Completed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<AutoRunConfig, Error> {
        AutoRunConfig::from_lookup(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn off_by_default() {
        assert_eq!(config(&[]).unwrap(), AutoRunConfig::default());
    }

    #[test]
    fn reads_both_flags() {
        let c = config(&[
            ("MIGRATE_ON_START", "true"),
            ("MIGRATE_ON_START_FAIL_HARD", "TRUE"),
            ("MIGRATE_ON_START_WAIT_SECS", "5"),
        ])
        .unwrap();
        assert!(c.enabled && c.fail_hard);
        assert_eq!(c.lock_wait, Duration::from_secs(5));
        let c = config(&[("MIGRATE_ON_START", "false")]).unwrap();
        assert!(!c.enabled);
    }

    #[test]
    fn reads_the_phase() {
        assert_eq!(config(&[]).unwrap().phase, Some(Phase::PreDeploy));
        assert_eq!(
            config(&[("MIGRATE_ON_START_PHASE", "post")]).unwrap().phase,
            Some(Phase::PostDeploy)
        );
        assert_eq!(config(&[("MIGRATE_ON_START_PHASE", "ALL")]).unwrap().phase, None);
        let err = config(&[("MIGRATE_ON_START_PHASE", "later")]).unwrap_err();
        assert!(err.to_string().contains("MIGRATE_ON_START_PHASE"), "{err}");
    }

    #[test]
    fn rejects_garbage() {
        let err = config(&[("MIGRATE_ON_START", "yes please")]).unwrap_err();
        assert!(err.to_string().contains("MIGRATE_ON_START"), "{err}");
        let err = config(&[("MIGRATE_ON_START_WAIT_SECS", "soon")]).unwrap_err();
        assert!(err.to_string().contains("MIGRATE_ON_START_WAIT_SECS"), "{err}");
    }
}
