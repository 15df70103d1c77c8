//! A collection's schema declared on the Rust type it holds:
//! `#[derive(MongoSchema)]` (feature `macros`) implements [`MongoSchema`] for a
//! struct or a unit-only enum from its fields and serde attributes; this file
//! implements it for the types fields have, as `bson`'s serializer writes them.

use std::collections::{BTreeMap, HashMap};

use bson::{doc, Bson, Document};

use crate::schema::{Index, ValidationLevel};

/// A type's `$jsonSchema`, and for a collection's document type its name,
/// indexes and validation level.
pub trait MongoSchema {
    /// The `$jsonSchema` of a value of this type as `bson` serializes it.
    fn json_schema() -> Document;

    /// Whether a field of this type may be absent: `Option`s are.
    #[doc(hidden)]
    fn optional() -> bool {
        false
    }

    /// The collection, for a document type declared with `#[mongo(collection = "..")]`.
    fn collection() -> Option<&'static str> {
        None
    }

    /// The collection's indexes.
    fn indexes() -> Vec<Index> {
        Vec::new()
    }

    /// The validator's level.
    fn validation_level() -> ValidationLevel {
        ValidationLevel::Strict
    }
}

fn bson_type(name: &str) -> Document {
    doc! { "bsonType": name }
}

macro_rules! bson_types {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl MongoSchema for $ty {
            fn json_schema() -> Document {
                bson_type($name)
            }
        })*
    };
}

// As `bson`'s serializer writes them: u32 and u64 become int64s, and u64
// values past i64::MAX fail to serialize.
bson_types! {
    String => "string",
    str => "string",
    char => "string",
    bool => "bool",
    i8 => "int",
    i16 => "int",
    i32 => "int",
    u8 => "int",
    u16 => "int",
    i64 => "long",
    u32 => "long",
    u64 => "long",
    f32 => "double",
    f64 => "double",
    bson::oid::ObjectId => "objectId",
    bson::DateTime => "date",
    bson::Decimal128 => "decimal",
    bson::Binary => "binData",
    bson::Uuid => "binData",
    bson::Timestamp => "timestamp",
    bson::Document => "object",
    uuid::Uuid => "binData",
}

/// chrono serializes a date as an RFC 3339 string unless the field says
/// `#[serde(with = "bson::serde_helpers::chrono_datetime_as_bson_datetime")]`,
/// which the derive reads as a `date`.
impl<Tz: chrono::TimeZone> MongoSchema for chrono::DateTime<Tz> {
    fn json_schema() -> Document {
        bson_type("string")
    }
}

impl<T: MongoSchema + ?Sized> MongoSchema for &T {
    fn json_schema() -> Document {
        T::json_schema()
    }
}

impl<T: MongoSchema + ?Sized> MongoSchema for Box<T> {
    fn json_schema() -> Document {
        T::json_schema()
    }
}

/// A value or `null`.
impl<T: MongoSchema> MongoSchema for Option<T> {
    fn json_schema() -> Document {
        nullable(T::json_schema())
    }

    fn optional() -> bool {
        true
    }
}

/// `schema` that also admits `null`: `null` joins its `bsonType`, and its
/// `enum` if it has one (a value must pass both, so an `Option` of a unit
/// enum written as `null` would fail the `enum` alone).
pub fn nullable(mut schema: Document) -> Document {
    match schema.get("bsonType").cloned() {
        Some(Bson::String(t)) => {
            schema.insert("bsonType", vec![Bson::String(t), Bson::String("null".into())]);
            if let Ok(values) = schema.get_array_mut("enum") {
                if !values.contains(&Bson::Null) {
                    values.push(Bson::Null);
                }
            }
            schema
        }
        _ => doc! { "anyOf": [schema, { "bsonType": "null" }] },
    }
}

impl<T: MongoSchema> MongoSchema for Vec<T> {
    fn json_schema() -> Document {
        doc! { "bsonType": "array", "items": T::json_schema() }
    }
}

impl<T: MongoSchema> MongoSchema for [T] {
    fn json_schema() -> Document {
        doc! { "bsonType": "array", "items": T::json_schema() }
    }
}

impl<T: MongoSchema, S> MongoSchema for HashMap<String, T, S> {
    fn json_schema() -> Document {
        doc! { "bsonType": "object", "additionalProperties": T::json_schema() }
    }
}

impl<T: MongoSchema> MongoSchema for BTreeMap<String, T> {
    fn json_schema() -> Document {
        doc! { "bsonType": "object", "additionalProperties": T::json_schema() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_types_map_to_what_bson_writes() {
        assert_eq!(String::json_schema(), doc! { "bsonType": "string" });
        assert_eq!(u32::json_schema(), doc! { "bsonType": "long" });
        assert_eq!(Option::<i32>::json_schema(), doc! { "bsonType": ["int", "null"] });
        assert_eq!(
            Vec::<bson::oid::ObjectId>::json_schema(),
            doc! { "bsonType": "array", "items": { "bsonType": "objectId" } }
        );
        assert_eq!(
            Option::<Vec<String>>::json_schema(),
            doc! { "bsonType": ["array", "null"], "items": { "bsonType": "string" } }
        );
        assert_eq!(
            chrono::DateTime::<chrono::Utc>::json_schema(),
            doc! { "bsonType": "string" }
        );
        assert!(Option::<u8>::optional() && !u8::optional());
        assert_eq!(
            nullable(doc! { "enum": ["a"] }),
            doc! { "anyOf": [{ "enum": ["a"] }, { "bsonType": "null" }] }
        );
        // `None` of an `Option` of a unit enum is written as `null`.
        assert_eq!(
            nullable(doc! { "bsonType": "string", "enum": ["a", "b"] }),
            doc! { "bsonType": ["string", "null"], "enum": ["a", "b", null] }
        );
    }
}
