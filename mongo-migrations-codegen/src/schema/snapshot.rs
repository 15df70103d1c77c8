//! The committed snapshot of the declared schema as of the last generated
//! migration: `schema.snapshot.json` beside the migrations. One collection
//! per entry, sorted by name, each option on its own line; the modules
//! `diff` wrote and a sum of the whole (see `lineage.rs`), so that two
//! branches that change the schema always conflict in it, and a merge that
//! kept parts of both is found. Pure but for [`Snapshot::read`].

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The snapshot's file name, in the migrations directory.
pub const SNAPSHOT_FILE: &str = "schema.snapshot.json";

/// The version of the snapshot's format this crate writes. It reads
/// format 1 too (no list of modules, no sum).
const FORMAT: u32 = 2;

/// The declared collections, as the runtime's `Collection::to_json` writes
/// each one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The format's version.
    pub format: u32,
    /// Every module `diff` wrote, by file stem, oldest first (format 2).
    #[serde(default)]
    pub migrations: Vec<String>,
    /// `sha256:` of `migrations` and `collections` (format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<String>,
    /// Sorted by name.
    pub collections: Vec<CollectionSpec>,
}

/// One declared collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectionSpec {
    /// Its name.
    pub name: String,
    /// Its `$jsonSchema`, in relaxed extended JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<Value>,
    /// `strict` or `moderate`, when there is a validator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_level: Option<String>,
    /// Its indexes, but for `_id`'s.
    #[serde(default)]
    pub indexes: Vec<IndexSpec>,
}

/// One declared index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndexSpec {
    /// Its name.
    pub name: String,
    /// `[field, direction]`, in the index's order.
    pub keys: Vec<(String, Value)>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unique: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub sparse: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_filter: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_after_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub hidden: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl IndexSpec {
    /// The same index as `other` by identity, as MongoDB tells indexes
    /// apart: keys in order, collation, partial filter.
    pub fn same_identity(&self, other: &IndexSpec) -> bool {
        self.keys == other.keys && self.collation == other.collation && self.partial_filter == other.partial_filter
    }

    /// The same options too, but for `hidden`.
    pub fn same_options(&self, other: &IndexSpec) -> bool {
        self.name == other.name
            && self.unique == other.unique
            && self.sparse == other.sparse
            && self.expire_after_seconds == other.expire_after_seconds
    }

    /// The server's default name for its keys: `field_direction` joined by `_`.
    pub fn default_name(&self) -> String {
        self.keys
            .iter()
            .map(|(field, direction)| match direction {
                Value::String(kind) => format!("{field}_{kind}"),
                other => format!("{field}_{other}"),
            })
            .collect::<Vec<_>>()
            .join("_")
    }
}

impl CollectionSpec {
    /// The validation level, `strict` when none is given.
    pub fn level(&self) -> &str {
        self.validation_level.as_deref().unwrap_or("strict")
    }
}

impl Snapshot {
    /// The snapshot of `collections` (the harness's answer), sorted by name.
    pub fn from_declared(collections: Vec<Value>) -> std::result::Result<Self, String> {
        let mut collections: Vec<CollectionSpec> = collections
            .into_iter()
            .map(serde_json::from_value)
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| e.to_string())?;
        collections.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = collections.windows(2).find(|p| p[0].name == p[1].name) {
            return Err(format!("the collection `{}` is declared twice", pair[0].name));
        }
        Ok(Snapshot {
            format: FORMAT,
            migrations: Vec::new(),
            sum: None,
            collections,
        })
    }

    /// This snapshot as `diff` writes it: listing `migrations` (every
    /// module `diff` wrote, oldest first), with their sum.
    pub fn sealed(mut self, migrations: Vec<String>) -> Self {
        self.format = FORMAT;
        self.sum = Some(crate::schema::lineage::sum(&migrations, &self.collections));
        self.migrations = migrations;
        self
    }

    /// Whether it lists the modules `diff` wrote (format 2 on).
    pub fn has_lineage(&self) -> bool {
        self.format >= 2
    }

    /// Parses a snapshot file's text.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |message: String| Error::Snapshot {
            path: path.to_path_buf(),
            message,
        };
        if text.contains("<<<<<<<") {
            return Err(bad("it has merge conflict markers".into()));
        }
        let snapshot: Snapshot = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if !(1..=FORMAT).contains(&snapshot.format) {
            return Err(bad(format!(
                "format {} is not a format this version reads (1 to {FORMAT}): it was written by a newer cargo mongo-migrate",
                snapshot.format
            )));
        }
        Ok(snapshot)
    }

    /// The snapshot at `path`; an empty one where there is no file yet.
    pub fn read(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Snapshot::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Snapshot {
                format: FORMAT,
                migrations: Vec::new(),
                sum: None,
                collections: Vec::new(),
            }
            .sealed(Vec::new())),
            Err(source) => Err(Error::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The file's text: pretty JSON with a final newline.
    pub fn render(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a snapshot serializes");
        text.push('\n');
        text
    }

    /// The collection named `name`.
    pub fn get(&self, name: &str) -> Option<&CollectionSpec> {
        self.collections.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_runtime_s_form_round_trips_sorted() {
        let declared = vec![
            json!({ "name": "users", "validator": { "bsonType": "object" }, "validationLevel": "strict",
                    "indexes": [{ "name": "a_1_b_-1", "keys": [["a", 1], ["b", -1]], "unique": true }] }),
            json!({ "name": "events", "indexes": [] }),
        ];
        let snapshot = Snapshot::from_declared(declared).unwrap();
        assert_eq!(snapshot.collections[0].name, "events");
        let text = snapshot.render();
        assert_eq!(Snapshot::parse(&text, Path::new("s")).unwrap(), snapshot);
        assert_eq!(snapshot.collections[1].indexes[0].default_name(), "a_1_b_-1");
        assert!(text.contains("\"keys\": [\n"), "{text}");
    }

    #[test]
    fn a_bad_snapshot_is_an_error_that_names_it() {
        let e = Snapshot::parse("<<<<<<< HEAD\n", Path::new("m/schema.snapshot.json")).unwrap_err();
        assert_eq!(e.to_string(), "m/schema.snapshot.json: it has merge conflict markers");
        let e = Snapshot::parse("{\"format\": 9, \"collections\": []}", Path::new("s")).unwrap_err();
        assert!(e.to_string().contains("format 9"), "{e}");
        let twice = vec![json!({ "name": "a" }), json!({ "name": "a" })];
        assert_eq!(
            Snapshot::from_declared(twice).unwrap_err(),
            "the collection `a` is declared twice"
        );
    }
}
