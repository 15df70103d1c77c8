//! A declared collection: its name, `$jsonSchema` validator, validation
//! level and indexes, from a [`MongoSchema`] type or written by hand; and the
//! JSON the harness gives `cargo mongo-migrate diff` for it (the shape of
//! the committed snapshot). Pure: no I/O.

use bson::{Bson, Document};
use serde_json::{json, Map, Value};

use crate::schema::{Index, MongoSchema, SchemaError, ValidationLevel};

/// A collection as the crate declares it.
///
/// ```
/// use mongo_migrations::bson::doc;
/// use mongo_migrations::schema::{Collection, Index};
///
/// let events = Collection::new("events")
///     .validator(doc! { "bsonType": "object", "required": ["at"] })
///     .index(Index::new(doc! { "at": 1 }).ttl(86_400));
/// assert_eq!(events.indexes[0].name(), "at_1");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Collection {
    /// Its name.
    pub name: String,
    /// The `$jsonSchema` its documents must match, if any.
    pub validator: Option<Document>,
    /// Which writes the validator checks.
    pub validation_level: ValidationLevel,
    /// Its indexes, but for `_id`'s.
    pub indexes: Vec<Index>,
}

impl Collection {
    /// A collection with no validator and no index.
    pub fn new(name: impl Into<String>) -> Self {
        Collection {
            name: name.into(),
            validator: None,
            validation_level: ValidationLevel::Strict,
            indexes: Vec::new(),
        }
    }

    /// The collection of a document type declared with
    /// `#[derive(MongoSchema)]` and `#[mongo(collection = "..")]`.
    ///
    /// # Panics
    ///
    /// When `T` names no collection: a type without one is a field's type,
    /// not a collection's.
    pub fn of<T: MongoSchema>() -> Self {
        let Some(name) = T::collection() else {
            panic!(
                "`{}` names no collection: add #[mongo(collection = \"...\")] to it, or leave it out of the declared collections",
                std::any::type_name::<T>()
            );
        };
        Collection {
            name: name.into(),
            validator: Some(with_id(T::json_schema())),
            validation_level: T::validation_level(),
            indexes: T::indexes(),
        }
    }

    /// With this `$jsonSchema` as its validator (as given: [`Collection::of`]
    /// adds the `_id` a closed document type leaves out).
    pub fn validator(mut self, schema: Document) -> Self {
        self.validator = Some(schema);
        self
    }

    /// With this validation level.
    pub fn level(mut self, level: ValidationLevel) -> Self {
        self.validation_level = level;
        self
    }

    /// With this index too.
    pub fn index(mut self, index: Index) -> Self {
        self.indexes.push(index);
        self
    }

    /// The collection as the snapshot holds it: documents in relaxed
    /// extended JSON, an index's keys as `[field, direction]` pairs (their
    /// order is the index's), and only the options that are set.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        if let Some(schema) = &self.validator {
            out.insert("validator".into(), relaxed(schema));
            out.insert("validationLevel".into(), json!(self.validation_level.as_str()));
        }
        out.insert("indexes".into(), self.indexes.iter().map(index_json).collect());
        Value::Object(out)
    }
}

/// A document from its (extended) JSON text: how a generated migration
/// holds a validator, frozen as it was declared when it was generated.
pub fn json_document(text: &str) -> Result<Document, SchemaError> {
    let bad = |message: String| SchemaError::Json { message };
    let value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    match Bson::try_from(value).map_err(|e| bad(e.to_string()))? {
        Bson::Document(d) => Ok(d),
        other => Err(bad(format!("expected a document, not {other}"))),
    }
}

/// A collection's document schema that refuses unknown fields
/// (`#[serde(deny_unknown_fields)]`) but does not declare `_id`: the driver
/// gives every document it inserts without one an `_id`, so the schema
/// admits it, of any type, as the server's own `_id` index does.
fn with_id(mut schema: Document) -> Document {
    let closed = schema.get("additionalProperties") == Some(&Bson::Boolean(false));
    if let (true, Ok(properties)) = (closed, schema.get_document_mut("properties")) {
        if !properties.contains_key("_id") {
            properties.insert("_id", Document::new());
        }
    }
    schema
}

fn relaxed(d: &Document) -> Value {
    Bson::Document(d.clone()).into_relaxed_extjson()
}

fn index_json(index: &Index) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(index.name()));
    let keys = index
        .keys
        .iter()
        .map(|(field, direction)| json!([field, direction.clone().into_relaxed_extjson()]))
        .collect();
    out.insert("keys".into(), Value::Array(keys));
    if index.unique {
        out.insert("unique".into(), json!(true));
    }
    if index.sparse {
        out.insert("sparse".into(), json!(true));
    }
    if let Some(filter) = &index.partial_filter {
        out.insert("partialFilter".into(), relaxed(filter));
    }
    if let Some(secs) = index.expire_after_secs {
        out.insert("expireAfterSeconds".into(), json!(secs));
    }
    if let Some(collation) = &index.collation {
        out.insert("collation".into(), relaxed(collation));
    }
    if index.hidden {
        out.insert("hidden".into(), json!(true));
    }
    Value::Object(out)
}

/// The function that lists a crate's declared collections, named by
/// `schema-fn` in `[package.metadata.mongo-migrate]`:
///
/// ```ignore
/// // src/schema.rs, with `schema-fn = "schema::collections"`
/// mongo_migrations::collections![crate::models::User, crate::models::Order];
/// ```
///
/// expands to `pub fn collections() -> Vec<Collection>` over
/// [`Collection::of`] of each type.
#[macro_export]
macro_rules! collections {
    ($($ty:ty),* $(,)?) => {
        /// The declared collections, for `cargo mongo-migrate diff` and `check`.
        pub fn collections() -> ::std::vec::Vec<$crate::schema::Collection> {
            ::std::vec![$($crate::schema::Collection::of::<$ty>()),*]
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn json_text_reads_back_as_the_document() {
        let d = json_document(
            r#"{ "bsonType": "object", "n": 2, "big": 5000000000, "at": { "$date": "2026-01-01T00:00:00Z" } }"#,
        )
        .unwrap();
        assert_eq!(d.get_str("bsonType"), Ok("object"));
        assert_eq!(d.get_i32("n"), Ok(2));
        assert_eq!(d.get_i64("big"), Ok(5_000_000_000));
        assert!(d.get_datetime("at").is_ok(), "{d}");
        let e = json_document("[1]").unwrap_err();
        assert!(e.to_string().contains("expected a document"), "{e}");
        assert!(json_document("{").is_err());
    }

    #[test]
    fn a_closed_document_admits_the_id_the_driver_adds() {
        let closed = doc! { "bsonType": "object", "properties": { "a": {} }, "additionalProperties": false };
        assert_eq!(
            with_id(closed),
            doc! { "bsonType": "object", "properties": { "a": {}, "_id": {} }, "additionalProperties": false }
        );
        // A declared `_id` stays as declared; an open document is unchanged.
        let declared = doc! { "properties": { "_id": { "bsonType": "objectId" } }, "additionalProperties": false };
        assert_eq!(with_id(declared.clone()), declared);
        let open = doc! { "bsonType": "object", "properties": { "a": {} } };
        assert_eq!(with_id(open.clone()), open);
    }

    #[test]
    fn the_snapshot_form_keeps_key_order_and_only_set_options() {
        let c = Collection::new("users")
            .validator(doc! { "bsonType": "object", "required": ["email"] })
            .level(ValidationLevel::Moderate)
            .index(Index::new(doc! { "b": -1, "a": 1 }).unique())
            .index(
                Index::new(doc! { "at": 1 })
                    .ttl(60)
                    .partial(doc! { "n": { "$gt": 1 } })
                    .collation(doc! { "locale": "fr" })
                    .sparse()
                    .hidden()
                    .named("by_at"),
            );
        assert_eq!(
            c.to_json(),
            json!({
                "name": "users",
                "validator": { "bsonType": "object", "required": ["email"] },
                "validationLevel": "moderate",
                "indexes": [
                    { "name": "b_-1_a_1", "keys": [["b", -1], ["a", 1]], "unique": true },
                    { "name": "by_at", "keys": [["at", 1]], "sparse": true, "partialFilter": { "n": { "$gt": 1 } },
                      "expireAfterSeconds": 60, "collation": { "locale": "fr" }, "hidden": true },
                ],
            })
        );
        assert_eq!(
            Collection::new("plain").to_json(),
            json!({ "name": "plain", "indexes": [] })
        );
    }
}
