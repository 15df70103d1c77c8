//! Squash of {{count}} migrations, up to {{to}}.
//!
//! Where every migration in `REPLACES` is applied, `up` records this one as
//! applied without running it. On a fresh database it runs instead, so it
//! must do, as one migration, what they did: write it before the next fresh
//! deploy (their code is in git history).

use mongo_migrations::prelude::*;

/// The versions this migration replaces; their files were deleted.
pub const REPLACES: &[u64] = &[
{{versions}}];

pub async fn up(ctx: &mut MigrationContext) -> MigrationResult {
    let db = ctx.db()?;
    let _ = db;
    Err("this squash's `up` is not written yet: do what the migrations it replaces did".into())
}
