//! {{description}}

use mongo_migrations::prelude::*;
{{phase}}
/// `true` runs `up` and `down` in one transaction with the tracking write
/// (replica sets and sharded clusters only); then use `ctx.transaction()`.
pub const TRANSACTIONAL: bool = false;

pub async fn up(ctx: &mut MigrationContext) -> MigrationResult {
{{up}}
}

/// Undoes `up`. Delete this function if the migration cannot be undone.
pub async fn down(ctx: &mut MigrationContext) -> MigrationResult {
    let db = ctx.db()?;
    let _ = db;
    Ok(())
}
