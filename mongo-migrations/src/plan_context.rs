//! What a migration's own `plan` gets: read-only access to the database it
//! will run on, and the steps it says it will take.

use bson::Document;
use mongodb::Database;

use crate::operation::Operation;
use crate::plan_report::{PlanStep, Risk};
use crate::MigrationError;

/// What a migration's own `plan` said, in order: a step, or a walk for
/// `plan` to count and time.
#[derive(Debug)]
pub(crate) enum Said {
    Step(PlanStep),
    Walk(Box<Operation>),
}

/// The context of a migration's own `plan` (its module's
/// `pub async fn plan(ctx: &mut PlanContext) -> MigrationResult`): it reads
/// the database (`count`) and says what the migration would do (`step`,
/// `walk`). Nothing can be written through it.
///
/// ```no_run
/// # use mongo_migrations::prelude::*;
/// use mongo_migrations::{PlanContext, Risk};
///
/// pub async fn plan(ctx: &mut PlanContext) -> MigrationResult {
///     let old = ctx.count("sessions", doc! { "expired": true }).await?;
///     ctx.step(Risk::Destructive, format!("delete {old} expired sessions"));
///     Ok(())
/// }
/// ```
pub struct PlanContext {
    db: Database,
    pub(crate) said: Vec<Said>,
}

impl std::fmt::Debug for PlanContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanContext")
            .field("database", &self.db.name())
            .field("said", &self.said)
            .finish()
    }
}

impl PlanContext {
    pub(crate) fn new(db: Database) -> Self {
        PlanContext { db, said: Vec::new() }
    }

    /// How many documents of `collection` match `filter` (an exact count).
    pub async fn count(&self, collection: &str, filter: Document) -> Result<u64, MigrationError> {
        Ok(self
            .db
            .collection::<Document>(collection)
            .count_documents(filter)
            .await?)
    }

    /// A step the migration would take, with its risk.
    pub fn step(&mut self, risk: Risk, what: impl Into<String>) {
        self.said.push(Said::Step(PlanStep {
            risk,
            what: what.into(),
            why: None,
        }));
    }

    /// A step with the reason for its risk.
    pub fn step_because(&mut self, risk: Risk, what: impl Into<String>, why: impl Into<String>) {
        self.said.push(Said::Step(PlanStep {
            risk,
            what: what.into(),
            why: Some(why.into()),
        }));
    }

    /// A walk over the documents of `collection` that match `filter`, in
    /// batches of `size`: counted and timed as `plan` times `ctx.batches`.
    pub fn walk(&mut self, collection: &str, filter: Document, size: i64) {
        self.said.push(Said::Walk(Box::new(Operation::Walk {
            collection: collection.to_string(),
            filter,
            size,
        })));
    }
}
