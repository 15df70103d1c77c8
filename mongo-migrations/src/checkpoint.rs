//! The checkpoint of a walk in batches, as its migration's tracking record
//! keeps it under `checkpoints.<walk>`: the direction and collection it
//! walks, and per segment its bounds, its last `_id` and the documents
//! done. The walk writes and reads it; the record's predicates count it.

use bson::{doc, Bson, Document};

use crate::Direction;

/// The field of a tracking record that holds its walks' checkpoints.
pub(crate) const FIELD: &str = "checkpoints";

/// One segment of a walk: `_id` from `from` (inclusive) to `to`
/// (exclusive), done up to `last`.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) from: Option<Bson>,
    pub(crate) to: Option<Bson>,
    pub(crate) last: Option<Bson>,
    pub(crate) done: u64,
}

impl Part {
    pub(crate) fn whole() -> Self {
        Part {
            from: None,
            to: None,
            last: None,
            done: 0,
        }
    }

    pub(crate) fn to_document(&self) -> Document {
        let mut d = doc! { "done": i64::try_from(self.done).unwrap_or(i64::MAX) };
        for (key, value) in [("from", &self.from), ("to", &self.to), ("lastId", &self.last)] {
            if let Some(v) = value {
                d.insert(key, v.clone());
            }
        }
        d
    }

    pub(crate) fn from_document(d: &Document) -> Self {
        Part {
            from: d.get("from").cloned(),
            to: d.get("to").cloned(),
            last: d.get("lastId").cloned(),
            done: d.get_i64("done").ok().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
        }
    }

    /// `filter`, within this segment and past its position: the range on
    /// `_id` goes in at the top level where it can, where every planner
    /// uses the `_id` index.
    pub(crate) fn filter(&self, filter: &Document) -> Document {
        let mut range = Document::new();
        match (&self.last, &self.from) {
            (Some(last), _) => range.insert("$gt", last.clone()),
            (None, Some(from)) => range.insert("$gte", from.clone()),
            (None, None) => None,
        };
        if let Some(to) = &self.to {
            range.insert("$lt", to.clone());
        }
        if range.is_empty() {
            return filter.clone();
        }
        if filter.contains_key("_id") {
            return doc! { "$and": [ filter.clone(), { "_id": range } ] };
        }
        let mut both = filter.clone();
        both.insert("_id", range);
        both
    }
}

/// One walk's checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoint {
    pub(crate) direction: Direction,
    pub(crate) collection: String,
    pub(crate) parts: Vec<Part>,
}

impl Checkpoint {
    /// The key of walk `index` in a tracking record.
    pub(crate) fn key(index: usize) -> String {
        format!("{FIELD}.{index}")
    }

    /// The whole checkpoint, as the walk's layout writes it before its first batch.
    pub(crate) fn to_document(&self, at: bson::DateTime) -> Document {
        doc! {
            "direction": self.direction.as_str(),
            "collection": &self.collection,
            "parts": self.parts.iter().map(|p| Bson::Document(p.to_document())).collect::<Vec<_>>(),
            "at": at,
        }
    }

    /// Walk `index`'s checkpoint in `record`, if it walks `direction` over
    /// `collection` and has segments.
    pub(crate) fn of(record: &Document, index: usize, direction: Direction, collection: &str) -> Option<Self> {
        let p = record.get_document(FIELD).ok()?.get_document(index.to_string()).ok()?;
        if p.get_str("direction") != Ok(direction.as_str()) || p.get_str("collection") != Ok(collection) {
            return None;
        }
        let parts: Vec<Part> = p
            .get_array("parts")
            .map(|a| {
                a.iter()
                    .filter_map(Bson::as_document)
                    .map(Part::from_document)
                    .collect()
            })
            .unwrap_or_default();
        (!parts.is_empty()).then(|| Checkpoint {
            direction,
            collection: collection.to_string(),
            parts,
        })
    }

    /// The `$set` of one batch of segment `i` of walk `index`: its position.
    pub(crate) fn position(index: usize, i: usize, part: &Part, at: bson::DateTime) -> Document {
        let key = format!("{FIELD}.{index}.parts.{i}");
        doc! {
            format!("{key}.lastId"): part.last.clone().unwrap_or(Bson::Null),
            format!("{key}.done"): i64::try_from(part.done).unwrap_or(i64::MAX),
            format!("{FIELD}.{index}.at"): at,
        }
    }
}

/// The checkpoints of `direction` in a record's `checkpoints`, as JSON (as
/// a [`Record`](crate::Record) holds them).
fn of_direction(all: &serde_json::Value, direction: Direction) -> impl Iterator<Item = &serde_json::Value> {
    all.as_object()
        .into_iter()
        .flat_map(|c| c.values())
        .filter(move |p| p["direction"] == direction.as_str())
}

/// Documents done by the walks of `direction`.
pub(crate) fn done_in(all: &serde_json::Value, direction: Direction) -> i64 {
    of_direction(all, direction)
        .flat_map(|p| p["parts"].as_array().into_iter().flatten())
        .filter_map(|part| part["done"].as_i64())
        .sum()
}

/// Whether a walk of `direction` has a checkpoint.
pub(crate) fn resumable_in(all: &serde_json::Value, direction: Direction) -> bool {
    of_direction(all, direction).next().is_some()
}

#[cfg(test)]
mod tests {
    use super::{done_in, resumable_in, Part};
    use crate::Direction;
    use bson::{doc, Bson};

    fn part(from: Option<i64>, to: Option<i64>, last: Option<i64>) -> Part {
        Part {
            from: from.map(Bson::Int64),
            to: to.map(Bson::Int64),
            last: last.map(Bson::Int64),
            done: 0,
        }
    }

    #[test]
    fn a_whole_walk_filters_as_asked_until_it_has_a_position() {
        let filter = doc! { "kind": "a" };
        assert_eq!(part(None, None, None).filter(&filter), filter);
        assert_eq!(
            part(None, None, Some(7)).filter(&filter),
            doc! { "kind": "a", "_id": { "$gt": 7_i64 } }
        );
    }

    #[test]
    fn a_segment_starts_at_its_lower_bound_and_stops_before_the_next() {
        let filter = doc! { "kind": "a" };
        assert_eq!(
            part(Some(10), Some(20), None).filter(&filter),
            doc! { "kind": "a", "_id": { "$gte": 10_i64, "$lt": 20_i64 } }
        );
        // Resumed: past its last checkpoint, still before the next segment.
        assert_eq!(
            part(Some(10), Some(20), Some(15)).filter(&filter),
            doc! { "kind": "a", "_id": { "$gt": 15_i64, "$lt": 20_i64 } }
        );
        // The last segment runs to the end: documents inserted later are covered.
        assert_eq!(
            part(Some(20), None, None).filter(&filter),
            doc! { "kind": "a", "_id": { "$gte": 20_i64 } }
        );
    }

    #[test]
    fn a_filter_on_id_keeps_its_own_condition_beside_the_range() {
        let filter = doc! { "_id": { "$type": "long" } };
        assert_eq!(
            part(None, None, Some(3)).filter(&filter),
            doc! { "$and": [ { "_id": { "$type": "long" } }, { "_id": { "$gt": 3_i64 } } ] }
        );
    }

    #[test]
    fn a_checkpoint_part_reads_back_as_written() {
        let written = Part {
            done: 42,
            ..part(Some(1), Some(9), Some(5))
        };
        let read = Part::from_document(&written.to_document());
        assert_eq!(
            (read.from, read.to, read.last, read.done),
            (written.from, written.to, written.last, 42)
        );
    }

    #[test]
    fn a_records_checkpoints_count_the_documents_of_its_direction_only() {
        let all = serde_json::json!({
            "0": { "direction": "up", "collection": "a", "parts": [ { "done": 5 }, { "done": 7, "lastId": 3 } ] },
            "1": { "direction": "down", "collection": "a", "parts": [ { "done": 100 } ] },
            "2": { "direction": "up", "collection": "b", "parts": [] },
        });
        assert_eq!(done_in(&all, Direction::Up), 12);
        assert_eq!(done_in(&all, Direction::Down), 100);
        assert!(resumable_in(&all, Direction::Up) && resumable_in(&all, Direction::Down));
        let up_only = serde_json::json!({ "0": { "direction": "up", "parts": [] } });
        assert!(!resumable_in(&up_only, Direction::Down));
        assert_eq!(done_in(&serde_json::json!(null), Direction::Up), 0);
    }
}
