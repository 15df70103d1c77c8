//! What a migration's `up` asked of its context while `plan` inspected it:
//! each schema operation and each walk, with its arguments, in order. The
//! context records them instead of running them (see
//! `MigrationContext::inspecting`).

use bson::Document;

use crate::schema::{Index, ValidationLevel};

/// One operation a migration would run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operation {
    /// `ensure_index`: built, or adopted where the same index stands.
    EnsureIndex { collection: String, index: Index },
    /// `replace_index`: the index `old` replaced by `index`.
    ReplaceIndex {
        collection: String,
        old: String,
        index: Index,
    },
    /// `hide_index`.
    HideIndex { collection: String, name: String },
    /// `unhide_index`.
    UnhideIndex { collection: String, name: String },
    /// `drop_index`, `drop_hidden_index` or `drop_built_index`.
    DropIndex { collection: String, name: String },
    /// `create_collection`.
    CreateCollection { collection: String },
    /// `stage_validator`: set at `warn`.
    StageValidator {
        collection: String,
        schema: Document,
        level: ValidationLevel,
    },
    /// `enforce_validator` or `force_validator`: set at `error`.
    EnforceValidator {
        collection: String,
        schema: Document,
        /// `force_validator`: enforced whatever violates it.
        forced: bool,
    },
    /// `restore_validator`.
    RestoreValidator { collection: String },
    /// `batches(..)` run: a walk over the documents that match `filter`.
    Walk {
        collection: String,
        filter: Document,
        size: i64,
    },
}

/// The operations one inspection recorded.
pub(crate) type Recorded = std::sync::Arc<std::sync::Mutex<Vec<Operation>>>;

/// The error a context gives where `plan` cannot follow a migration: its
/// own use of the database (`ctx.db()`, `ctx.transaction()`).
pub(crate) const NOT_INSPECTABLE: &str =
    "it uses the database directly, through ctx.db() or ctx.transaction(), which `plan` cannot follow";

/// Records `op` into `recorded`.
pub(crate) fn record(recorded: &Recorded, op: Operation) {
    recorded.lock().unwrap_or_else(|e| e.into_inner()).push(op);
}
