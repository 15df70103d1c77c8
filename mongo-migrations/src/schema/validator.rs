//! A `$jsonSchema` validator rolled out without breaking writes of old code:
//! staged with `validationAction: "warn"`, its violators counted with a
//! batched scan, and enforced (`"error"`) only in the post-deploy phase and
//! only once none remains.

use bson::{doc, Bson, Document};
use futures_util::TryStreamExt as _;
use mongodb::options::FindOptions;
use mongodb::Database;

use crate::schema::SchemaError;
use crate::Phase;

/// Which documents the validator checks on update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ValidationLevel {
    /// Every insert and update.
    #[default]
    Strict,
    /// Inserts, and updates of documents that already pass.
    Moderate,
}

impl ValidationLevel {
    /// As the server spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationLevel::Strict => "strict",
            ValidationLevel::Moderate => "moderate",
        }
    }
}

/// The documents that violate a validator: how many, and a few of their `_id`s.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Violations {
    /// How many documents violate it.
    pub count: u64,
    /// The first few `_id`s, in `_id` order.
    pub sample: Vec<Bson>,
}

/// How many `_id`s a [`Violations`] keeps.
const SAMPLE: usize = 5;

/// How many violators' `_id`s one batch of the scan's cursor carries.
const SCAN_BATCH: u32 = 1_000;

/// Sets `schema` as the validator of `collection` (creating the collection
/// if need be), at `level`, with `validationAction: "warn"`.
pub async fn stage_validator(
    db: &Database,
    collection: &str,
    schema: &Document,
    level: ValidationLevel,
) -> Result<(), SchemaError> {
    set(db, collection, schema, level, "warn").await
}

/// Enforces `schema` on `collection` (`validationAction: "error"`) in a
/// post-deploy migration once no document violates it.
pub async fn enforce_validator(
    db: &Database,
    collection: &str,
    schema: &Document,
    level: ValidationLevel,
    phase: Phase,
) -> Result<(), SchemaError> {
    enforce(db, collection, schema, level, phase, Violators::Refuse)
        .await
        .map(|_| ())
}

/// Whether a collection whose validator is now `current` (its
/// `$jsonSchema` and `validationAction`) holds another validator than
/// `schema`, staged (`warn`): an enforcement of `schema` is then superseded
/// if a later migration, applied, staged it (see
/// `MigrationContext::enforce_validator`). A validator already enforced, or
/// none, supersedes nothing.
pub(crate) fn staged_over(current: Option<(&Document, &str)>, schema: &Document) -> bool {
    current.is_some_and(|(validator, action)| action == "warn" && validator != schema)
}

/// The collection's validator now: its `$jsonSchema` and `validationAction`.
pub(crate) async fn current(db: &Database, collection: &str) -> Result<Option<(Document, String)>, SchemaError> {
    let failed = |e| SchemaError::server("reading the validator", collection, e);
    let mut listed = db
        .list_collections()
        .filter(doc! { "name": collection })
        .await
        .map_err(failed)?;
    let Some(spec) = listed.try_next().await.map_err(failed)? else {
        return Ok(None);
    };
    let options = &spec.options;
    let Some(validator) = options
        .validator
        .as_ref()
        .and_then(|v| v.get_document("$jsonSchema").ok())
    else {
        return Ok(None);
    };
    let action = match options.validation_action {
        Some(mongodb::options::ValidationAction::Warn) => "warn",
        _ => "error",
    };
    Ok(Some((validator.clone(), action.to_string())))
}

/// What enforcement does about documents that violate the validator.
#[derive(PartialEq)]
enum Violators {
    /// Refuses, naming them: the validator stays at `warn`.
    Refuse,
    /// Leaves them as they are, with a warning.
    Keep,
}

/// Enforcement in the post-deploy phase, after a count of the violators.
async fn enforce(
    db: &Database,
    collection: &str,
    schema: &Document,
    level: ValidationLevel,
    phase: Phase,
    violators: Violators,
) -> Result<Violations, SchemaError> {
    if phase != Phase::PostDeploy {
        return Err(SchemaError::NotPostDeploy {
            collection: collection.into(),
        });
    }
    let violations = count_violators(db, collection, schema).await?;
    if violations.count > 0 {
        if violators == Violators::Refuse {
            let sample = violations.sample.iter().map(ToString::to_string).collect::<Vec<_>>();
            return Err(SchemaError::Violators {
                collection: collection.into(),
                count: violations.count,
                sample: sample.join(", "),
            });
        }
        tracing::warn!(
            collection,
            violators = violations.count,
            "enforcing a validator that documents violate"
        );
    }
    set(db, collection, schema, level, "error").await?;
    Ok(violations)
}

/// Puts back the validator `collection` had before a migration changed it:
/// `schema` enforced (`"error"`), or none. For a `down`: it checks no
/// document, since the documents were written under the old one.
pub async fn restore_validator(
    db: &Database,
    collection: &str,
    schema: Option<&Document>,
    level: ValidationLevel,
) -> Result<(), SchemaError> {
    match schema {
        Some(schema) => set(db, collection, schema, level, "error").await,
        None => {
            if !exists(db, collection).await? {
                return Ok(());
            }
            db.run_command(doc! { "collMod": collection, "validator": {}, "validationLevel": "off" })
                .await
                .map(|_| ())
                .map_err(|e| SchemaError::server("removing the validator", collection, e))
        }
    }
}

async fn exists(db: &Database, collection: &str) -> Result<bool, SchemaError> {
    Ok(db
        .list_collection_names()
        .filter(doc! { "name": collection })
        .await
        .map_err(|e| SchemaError::server("listing the collections", collection, e))?
        .iter()
        .any(|n| n == collection))
}

/// Enforces `schema` on `collection` in a post-deploy migration whatever
/// documents violate it: they stay as they are (and, at level `strict`, an
/// update of one fails until it is fixed). Returns the violators it found.
pub async fn force_validator(
    db: &Database,
    collection: &str,
    schema: &Document,
    level: ValidationLevel,
    phase: Phase,
) -> Result<Violations, SchemaError> {
    enforce(db, collection, schema, level, phase, Violators::Keep).await
}

async fn set(
    db: &Database,
    collection: &str,
    schema: &Document,
    level: ValidationLevel,
    action: &str,
) -> Result<(), SchemaError> {
    let validator = doc! { "$jsonSchema": schema.clone() };
    let command = if exists(db, collection).await? {
        doc! { "collMod": collection, "validator": validator, "validationLevel": level.as_str(), "validationAction": action }
    } else {
        doc! { "create": collection, "validator": validator, "validationLevel": level.as_str(), "validationAction": action }
    };
    db.run_command(command)
        .await
        .map(|_| ())
        .map_err(|e| SchemaError::server("setting the validator", collection, e))
}

/// Counts the documents of `collection` that violate `schema`: one query,
/// in `_id` order, read in batches of 1,000 violators (the server scans the
/// collection once; only the violators' `_id`s travel).
///
/// It was one query per range of 5,000 `_id`s; a server that scans the whole
/// collection for a range query (SecantusDB 0.7) made that quadratic: 184 s
/// for 100,000 documents, where this takes seconds.
pub async fn count_violators(db: &Database, collection: &str, schema: &Document) -> Result<Violations, SchemaError> {
    let documents = db.collection::<Document>(collection);
    let failed = |e| SchemaError::server("counting the violators", collection, e);
    let options = FindOptions::builder()
        .sort(doc! { "_id": 1 })
        .projection(doc! { "_id": 1 })
        .batch_size(SCAN_BATCH)
        .build();
    let filter = doc! { "$nor": [{ "$jsonSchema": schema.clone() }] };
    let mut violators = documents.find(filter).with_options(options).await.map_err(failed)?;
    let mut out = Violations::default();
    while let Some(d) = violators.try_next().await.map_err(failed)? {
        out.count += 1;
        if out.sample.len() < SAMPLE {
            out.sample.extend(d.get("_id").cloned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_another_staged_validator_can_supersede_an_enforcement() {
        let old = doc! { "required": ["displayName"] };
        let newer = doc! { "required": ["name"] };
        assert!(staged_over(Some((&newer, "warn")), &old));
        // The same one staged: the normal case, enforce it.
        assert!(!staged_over(Some((&old, "warn")), &old));
        // Another one enforced, or none: nothing staged over it.
        assert!(!staged_over(Some((&newer, "error")), &old));
        assert!(!staged_over(None, &old));
    }
}
