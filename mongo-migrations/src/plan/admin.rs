//! The refusals of the admin commands, pure: `forget`, `baseline` and
//! `resolve` decide from the registry and the records whether they may go on.

use crate::plan::Records;
use crate::record::Record;
use crate::{Error, Migration, MigrationStatus, Registry, Resolution, Version};

/// The registry's migrations up to and including `to`.
pub(crate) fn up_to(registry: &Registry, to: Version) -> impl Iterator<Item = &Migration> {
    registry.migrations().iter().take_while(move |m| m.version <= to)
}

/// The records of `versions`, or why one of them cannot be forgotten: it has
/// no record, or this build has it (it would run again).
pub(crate) fn forgettable<'r>(
    registry: &Registry,
    records: &'r Records,
    versions: &[Version],
) -> Result<Vec<&'r Record>, Error> {
    let mut chosen = Vec::new();
    for &version in versions {
        let refuse = |reason: &str| Error::NotForgettable {
            version,
            reason: reason.to_string(),
        };
        let Some(record) = records.get(&version) else {
            return Err(refuse("it has no tracking record"));
        };
        if registry.get(version).is_some() {
            return Err(refuse(
                "this build has it, so it would run again; use `down` or `resolve` instead",
            ));
        }
        chosen.push(record);
    }
    Ok(chosen)
}

/// Refuses a baseline up to `to` where any of those migrations has a record
/// (but a claim that never ran).
pub(crate) fn baselinable(registry: &Registry, records: &Records, to: Version) -> Result<(), Error> {
    let recorded: Vec<(Version, String)> = up_to(registry, to)
        .filter(|m| records.get(&m.version).is_some_and(|r| !r.never_ran()))
        .map(|m| (m.version, m.name.to_string()))
        .collect();
    if recorded.is_empty() {
        Ok(())
    } else {
        Err(Error::NotBaselinable { recorded })
    }
}

/// The record that `resolution` settles, or why it cannot.
pub(crate) fn resolvable<'r>(
    registry: &Registry,
    record: Option<&'r Record>,
    version: Version,
    resolution: Resolution,
) -> Result<&'r Record, Error> {
    let record = record.ok_or(Error::NothingToResolve { version })?;
    match resolution {
        Resolution::AcceptChecksum if record.status != MigrationStatus::Completed => {
            Err(Error::ChecksumNotAcceptable {
                version,
                status: record.status,
            })
        }
        Resolution::AcceptChecksum => match registry.get(version) {
            Some(_) => Ok(record),
            None => Err(Error::UnknownTarget { version }),
        },
        // `resolve --pending` of a migration that never completed, then
        // `--applied` after all: it was never rolled back, only settled.
        Resolution::Applied
            if record.status == MigrationStatus::RolledBack
                && record.rolled_back_at.is_none()
                && record.applied_at.is_none() =>
        {
            Ok(record)
        }
        _ if !matches!(record.status, MigrationStatus::Running | MigrationStatus::Failed) => {
            Err(Error::NotResolvable {
                version,
                status: record.status,
            })
        }
        _ => Ok(record),
    }
}
