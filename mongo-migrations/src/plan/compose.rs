//! The composed plans of `up` and `down`: the registry, the records and the
//! lock as read, and what the run was asked, in; the migrations in the
//! order they run, each with its batch, or why the run is refused, out.

use crate::lock::LockInfo;
use crate::options::{Config, OutOfOrder, UpOptions};
use crate::plan::{self, DownTarget, Planned, Records};
use crate::{Direction, Error, Registry};

/// What a run was asked to do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Intent {
    /// `up` with these options (as the config allows out-of-order ones).
    Up(UpOptions),
    /// `down` as far as this.
    Down(DownTarget),
}

impl Intent {
    pub(crate) fn direction(&self) -> Direction {
        match self {
            Intent::Up(_) => Direction::Up,
            Intent::Down(_) => Direction::Down,
        }
    }

    /// The plan of this intent (see [`up`] and [`down`]).
    pub(crate) fn plan<'a>(
        &self,
        registry: &'a Registry,
        records: &Records,
        lock: Option<&LockInfo>,
        config: &Config,
    ) -> Result<Vec<Planned<'a>>, Error> {
        match self {
            Intent::Up(options) => up(registry, records, lock, options, config),
            Intent::Down(target) => down(registry, records, lock, *target),
        }
    }
}

/// What `up` with `options` runs: refused when the database and the build
/// disagree or another run is in progress (`validate`), or when a pending
/// migration is older than the newest applied one and neither `options`
/// nor `config` allows it; else the pending migrations up to `options.to`,
/// of `options.phase`, in version order, in the next batch, each one
/// recorded without running where it is a squash of applied migrations.
pub(crate) fn up<'a>(
    registry: &'a Registry,
    records: &Records,
    lock: Option<&LockInfo>,
    options: &UpOptions,
    config: &Config,
) -> Result<Vec<Planned<'a>>, Error> {
    plan::validate(registry, records, lock)?;
    let batch = plan::next_batch(records);
    let pending = plan::in_phase(plan::pending(registry, records, options.to), options.phase);
    // Decided once here; the claims and the report use the decision.
    let planned = pending
        .iter()
        .map(|&migration| {
            Ok(Planned {
                migration,
                batch,
                adopt: plan::adoption(migration, records)?,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let allow = options.allow_out_of_order || config.out_of_order == OutOfOrder::Allow;
    plan::check_order(&pending, registry, records, allow)?;
    Ok(planned)
}

/// What `down` as far as `target` rolls back: refused as [`up`] is for a
/// disagreement or a run in progress, and when one of them has no `down`;
/// else the applied migrations, the most recently applied first, each in
/// the batch of its `up`.
pub(crate) fn down<'a>(
    registry: &'a Registry,
    records: &Records,
    lock: Option<&LockInfo>,
    target: DownTarget,
) -> Result<Vec<Planned<'a>>, Error> {
    plan::validate(registry, records, lock)?;
    Ok(plan::rollback(registry, records, target)?
        .into_iter()
        .map(|migration| Planned {
            migration,
            batch: records[&migration.version].batch,
            adopt: None,
        })
        .collect())
}
