//! What changes from one snapshot of the declared schema to the next, as
//! operations that are safe on a live database, split by deploy phase:
//! before the new code is deployed (builds, staged validators, hidden
//! indexes) and after (enforced validators, drops of the hidden indexes).
//! Pure: no I/O.

use serde_json::Value;

use crate::schema::snapshot::{CollectionSpec, IndexSpec, Snapshot};

/// One operation of a generated migration.
// A few per `diff`: not worth boxing the index specs.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Op {
    /// A newly declared collection. Its rollback keeps it (and its documents).
    CreateCollection { collection: String },
    /// A new or changed validator, at `validationAction: warn`; the rollback
    /// restores `previous` (`None`: no validator).
    StageValidator {
        collection: String,
        schema: Value,
        level: String,
        previous: Option<(Value, String)>,
    },
    /// The validator staged before the deploy, enforced after it; the
    /// rollback stages it again.
    EnforceValidator {
        collection: String,
        schema: Value,
        level: String,
    },
    /// A validator no longer declared; the rollback restores it.
    RemoveValidator {
        collection: String,
        previous: (Value, String),
    },
    /// A new index; the rollback drops it.
    BuildIndex { collection: String, index: IndexSpec },
    /// An index whose name or options (unique, sparse, TTL) changed, replaced
    /// by `ctx.replace_index`: a unique one only once no documents share its
    /// keys, and never leaving the collection without one of the two.
    ReplaceIndex {
        collection: String,
        old: IndexSpec,
        new: IndexSpec,
    },
    /// An index hidden (`hidden: true`) or shown again.
    SetHidden {
        collection: String,
        index: IndexSpec,
        hidden: bool,
    },
    /// An index no longer declared, hidden before the deploy and dropped
    /// here; the rollback builds it again, hidden.
    DropHiddenIndex { collection: String, index: IndexSpec },
}

/// The operations from one snapshot to the next.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// For the pre-deploy migration.
    pub pre_deploy: Vec<Op>,
    /// For the post-deploy migration.
    pub post_deploy: Vec<Op>,
    /// What was left alone, and why.
    pub notes: Vec<String>,
}

impl Changes {
    /// No operation: `diff` writes nothing.
    pub fn is_empty(&self) -> bool {
        self.pre_deploy.is_empty() && self.post_deploy.is_empty()
    }
}

impl Op {
    /// The collection it changes.
    pub fn collection(&self) -> &str {
        match self {
            Op::CreateCollection { collection }
            | Op::StageValidator { collection, .. }
            | Op::EnforceValidator { collection, .. }
            | Op::RemoveValidator { collection, .. }
            | Op::BuildIndex { collection, .. }
            | Op::ReplaceIndex { collection, .. }
            | Op::SetHidden { collection, .. }
            | Op::DropHiddenIndex { collection, .. } => collection,
        }
    }

    /// One line for the module's documentation, which `up --dry-run` prints.
    pub fn describe(&self) -> String {
        let what = match self {
            Op::CreateCollection { .. } => "create the collection".to_string(),
            Op::StageValidator { level, .. } => format!("stage the validator (`warn`, level `{level}`)"),
            Op::EnforceValidator { .. } => "enforce the validator (`error`) once no document violates it".to_string(),
            Op::RemoveValidator { .. } => "remove the validator".to_string(),
            Op::BuildIndex { index, .. } => format!("build the index {}", index_line(index)),
            Op::ReplaceIndex { old, new, .. } => {
                format!("replace the index `{}` with {}", old.name, index_line(new))
            }
            Op::SetHidden {
                index, hidden: true, ..
            } => format!("hide the index `{}`", index.name),
            Op::SetHidden { index, .. } => format!("show the index `{}` again", index.name),
            Op::DropHiddenIndex { index, .. } => format!("drop the hidden index `{}`", index.name),
        };
        format!("`{}`: {what}", self.collection())
    }
}

/// `` `email_1` on email: 1, unique `` and the like.
fn index_line(index: &IndexSpec) -> String {
    let keys: Vec<String> = index.keys.iter().map(|(f, d)| format!("{f}: {d}")).collect();
    let mut out = format!("`{}` on {}", index.name, keys.join(", "));
    let options = [
        (index.unique, "unique".to_string()),
        (index.sparse, "sparse".to_string()),
        (index.partial_filter.is_some(), "partial".to_string()),
        (
            index.expire_after_seconds.is_some(),
            format!("TTL {} s", index.expire_after_seconds.unwrap_or(0)),
        ),
        (index.collation.is_some(), "with a collation".to_string()),
        (index.hidden, "hidden".to_string()),
    ];
    for (set, name) in options {
        if set {
            out.push_str(", ");
            out.push_str(&name);
        }
    }
    out
}

/// The operations that take the database from `old` to `new`. It never
/// drops a collection, nor an index that `old` did not declare: a
/// collection no longer declared is left as it is, with a note.
pub fn diff(old: &Snapshot, new: &Snapshot) -> Changes {
    let mut changes = Changes::default();
    for declared in &new.collections {
        collection(old.get(&declared.name), declared, &mut changes);
    }
    for gone in &old.collections {
        if new.get(&gone.name).is_none() {
            changes.notes.push(format!(
                "`{}` is no longer declared: it, its validator and its indexes are left as they are (drop them in a migration of your own if you mean to)",
                gone.name
            ));
        }
    }
    changes
}

fn collection(old: Option<&CollectionSpec>, new: &CollectionSpec, changes: &mut Changes) {
    let name = || new.name.clone();
    if old.is_none() {
        changes.pre_deploy.push(Op::CreateCollection { collection: name() });
    }
    let validator = |c: &CollectionSpec| c.validator.clone().map(|v| (v, c.level().to_string()));
    let before = old.and_then(validator);
    match (&before, validator(new)) {
        (before, Some(after)) if before.as_ref() != Some(&after) => {
            changes.pre_deploy.push(Op::StageValidator {
                collection: name(),
                schema: after.0.clone(),
                level: after.1.clone(),
                previous: before.clone(),
            });
            changes.post_deploy.push(Op::EnforceValidator {
                collection: name(),
                schema: after.0,
                level: after.1,
            });
        }
        (Some(previous), None) => changes.pre_deploy.push(Op::RemoveValidator {
            collection: name(),
            previous: previous.clone(),
        }),
        _ => {}
    }
    let old_indexes: &[IndexSpec] = old.map_or(&[], |c| &c.indexes);
    for index in &new.indexes {
        match old_indexes.iter().find(|o| o.same_identity(index)) {
            None => changes.pre_deploy.push(Op::BuildIndex {
                collection: name(),
                index: index.clone(),
            }),
            Some(o) if !o.same_options(index) => changes.pre_deploy.push(Op::ReplaceIndex {
                collection: name(),
                old: o.clone(),
                new: index.clone(),
            }),
            Some(o) if o.hidden != index.hidden => changes.pre_deploy.push(Op::SetHidden {
                collection: name(),
                index: index.clone(),
                hidden: index.hidden,
            }),
            Some(_) => {}
        }
    }
    for o in old_indexes {
        if new.indexes.iter().any(|i| i.same_identity(o)) {
            continue;
        }
        if !o.hidden {
            changes.pre_deploy.push(Op::SetHidden {
                collection: name(),
                index: o.clone(),
                hidden: true,
            });
        }
        let mut hidden = o.clone();
        hidden.hidden = true;
        changes.post_deploy.push(Op::DropHiddenIndex {
            collection: name(),
            index: hidden,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot(collections: Vec<Value>) -> Snapshot {
        Snapshot::from_declared(collections).unwrap()
    }

    fn lines(ops: &[Op]) -> Vec<String> {
        ops.iter().map(Op::describe).collect()
    }

    fn users(validator: Value, indexes: Value) -> Value {
        json!({ "name": "users", "validator": validator, "validationLevel": "strict", "indexes": indexes })
    }

    #[test]
    fn the_same_schema_is_no_change() {
        let s = snapshot(vec![users(json!({ "bsonType": "object" }), json!([]))]);
        assert!(diff(&s, &s).is_empty());
        assert!(diff(&Snapshot::default(), &Snapshot::default()).is_empty());
    }

    #[test]
    fn a_new_collection_is_created_staged_indexed_then_enforced() {
        let new = snapshot(vec![users(
            json!({ "bsonType": "object", "required": ["email"] }),
            json!([{ "name": "email_1", "keys": [["email", 1]], "unique": true }]),
        )]);
        let changes = diff(&Snapshot::default(), &new);
        assert_eq!(
            lines(&changes.pre_deploy),
            [
                "`users`: create the collection",
                "`users`: stage the validator (`warn`, level `strict`)",
                "`users`: build the index `email_1` on email: 1, unique",
            ]
        );
        assert_eq!(
            lines(&changes.post_deploy),
            ["`users`: enforce the validator (`error`) once no document violates it"]
        );
        let Op::StageValidator { previous, .. } = &changes.pre_deploy[1] else {
            panic!()
        };
        assert_eq!(previous, &None);
    }

    #[test]
    fn a_removed_index_is_hidden_before_and_dropped_after_the_deploy() {
        let email = json!({ "name": "email_1", "keys": [["email", 1]] });
        let old = snapshot(vec![users(json!({}), json!([email]))]);
        let new = snapshot(vec![users(json!({}), json!([]))]);
        let changes = diff(&old, &new);
        assert_eq!(lines(&changes.pre_deploy), ["`users`: hide the index `email_1`"]);
        assert_eq!(
            lines(&changes.post_deploy),
            ["`users`: drop the hidden index `email_1`"]
        );
        // One declared hidden already is only dropped.
        let hidden = json!({ "name": "email_1", "keys": [["email", 1]], "hidden": true });
        let changes = diff(&snapshot(vec![users(json!({}), json!([hidden]))]), &new);
        assert!(changes.pre_deploy.is_empty());
        assert_eq!(changes.post_deploy.len(), 1);
    }

    #[test]
    fn changed_options_replace_hidden_flags_flip_and_validators_restage() {
        let old = snapshot(vec![users(
            json!({ "bsonType": "object" }),
            json!([{ "name": "a_1", "keys": [["a", 1]] }, { "name": "b_1", "keys": [["b", 1]] }]),
        )]);
        let new = snapshot(vec![users(
            json!({ "bsonType": "object", "required": ["a"] }),
            json!([{ "name": "a_1", "keys": [["a", 1]], "unique": true }, { "name": "b_1", "keys": [["b", 1]], "hidden": true }]),
        )]);
        let changes = diff(&old, &new);
        assert_eq!(
            lines(&changes.pre_deploy),
            [
                "`users`: stage the validator (`warn`, level `strict`)",
                "`users`: replace the index `a_1` with `a_1` on a: 1, unique",
                "`users`: hide the index `b_1`",
            ]
        );
        let Op::StageValidator { previous, .. } = &changes.pre_deploy[0] else {
            panic!()
        };
        assert_eq!(previous, &Some((json!({ "bsonType": "object" }), "strict".to_string())));
        // The level alone changes the validator too.
        let moderate = snapshot(vec![
            json!({ "name": "users", "validator": { "bsonType": "object" }, "validationLevel": "moderate" }),
        ]);
        let plain = snapshot(vec![json!({ "name": "users", "validator": { "bsonType": "object" } })]);
        assert_eq!(diff(&plain, &moderate).pre_deploy.len(), 1);
    }

    #[test]
    fn nothing_undeclared_is_dropped() {
        let old = snapshot(vec![users(json!({}), json!([{ "name": "a_1", "keys": [["a", 1]] }]))]);
        let changes = diff(&old, &Snapshot::default());
        assert!(changes.is_empty());
        assert_eq!(changes.notes.len(), 1);
        assert!(
            changes.notes[0].starts_with("`users` is no longer declared"),
            "{:?}",
            changes.notes
        );
        // A validator no longer declared is removed (and restored on rollback).
        let plain = snapshot(vec![
            json!({ "name": "users", "indexes": [{ "name": "a_1", "keys": [["a", 1]] }] }),
        ]);
        assert_eq!(lines(&diff(&old, &plain).pre_deploy), ["`users`: remove the validator"]);
    }
}
