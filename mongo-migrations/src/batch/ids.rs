//! A walk covers one type of `_id`: the check that refuses mixed types.

use bson::{doc, Bson, Document};
use mongodb::Collection;

use crate::retry::Retry;
use crate::MigrationError;

/// The BSON sort bracket of an `_id` (numbers compare with each other).
fn bracket(id: &Bson) -> &'static str {
    match id {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => "number",
        Bson::String(_) | Bson::Symbol(_) => "string",
        Bson::ObjectId(_) => "objectId",
        Bson::DateTime(_) => "date",
        Bson::Document(_) => "object",
        Bson::Binary(_) => "binData",
        Bson::Boolean(_) => "bool",
        Bson::Timestamp(_) => "timestamp",
        _ => "other",
    }
}

/// A range query `_id > last` only sees `_id`s of the same type as `last`:
/// a walk over mixed types would skip some. Refuses them up front.
pub(super) async fn one_id_type(
    coll: &Collection<Document>,
    filter: &Document,
    name: &str,
    retry: Retry,
) -> Result<(), MigrationError> {
    let end = |order: i32| async move {
        let first = retry
            .idempotent(
                || format!("reading the ends of `{name}`"),
                || async {
                    Ok(coll
                        .find_one(filter.clone())
                        .sort(doc! { "_id": order })
                        .projection(doc! { "_id": 1 })
                        .await?)
                },
            )
            .await?;
        Ok::<_, MigrationError>(first.and_then(|d| d.get("_id").cloned()))
    };
    if let (Some(low), Some(high)) = (end(1).await?, end(-1).await?) {
        let (a, b) = (bracket(&low), bracket(&high));
        if a != b {
            return Err(format!(
                "`{name}` has `_id`s of more than one type ({a} and {b}), which one walk cannot cover: \
                 walk each type with its own filter, e.g. {{ \"_id\": {{ \"$type\": \"{a}\" }} }}"
            )
            .into());
        }
    }
    Ok(())
}
