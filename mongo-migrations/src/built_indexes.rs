//! Which indexes a migration's `up` built and which it found already there,
//! so that its `down` drops only what `up` built: the tracking record's
//! `indexes`, `[{ collection, name, adopted }]`. Pure: the context reads
//! and writes the record.
//!
//! An index's entry is written before its build, and the first entry
//! stands: an `up` run again after a crash finds the index its first
//! attempt built and keeps it as built, not as found. The entries go when
//! the migration's `down` completes, so an `up` after that decides anew.

use bson::{doc, Bson, Document};

/// The record's field.
pub(crate) const FIELD: &str = "indexes";

/// One index an `up` ensured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) collection: String,
    /// The declared name (the one `down` drops).
    pub(crate) name: String,
    /// It was there before the migration's `up`: `down` keeps it.
    pub(crate) adopted: bool,
}

/// The entries of a tracking record; none when it lacks the field, and none for
/// an entry of the wrong shape (such an index counts as built, as before
/// entries were kept).
pub(crate) fn of(record: &Document) -> Vec<Entry> {
    let Ok(list) = record.get_array(FIELD) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Bson::as_document)
        .filter_map(|d| {
            Some(Entry {
                collection: d.get_str("collection").ok()?.to_string(),
                name: d.get_str("name").ok()?.to_string(),
                adopted: d.get_bool("adopted").ok()?,
            })
        })
        .collect()
}

/// The entries as the record stores them.
pub(crate) fn to_bson(entries: &[Entry]) -> Bson {
    Bson::Array(
        entries
            .iter()
            .map(|e| Bson::Document(doc! { "collection": &e.collection, "name": &e.name, "adopted": e.adopted }))
            .collect(),
    )
}

/// The entries after `up` looked for the index `name` of `collection`
/// (`present`: one of its identity or its name is there) before ensuring
/// it; `None` when they stay as they are (the index has an entry already).
pub(crate) fn before_ensure(entries: &[Entry], collection: &str, name: &str, present: bool) -> Option<Vec<Entry>> {
    if find(entries, collection, name).is_some() {
        return None;
    }
    let mut next = entries.to_vec();
    next.push(Entry {
        collection: collection.to_string(),
        name: name.to_string(),
        adopted: present,
    });
    Some(next)
}

/// Whether `down` keeps the index `name` of `collection`: its `up` found it.
pub(crate) fn keeps(entries: &[Entry], collection: &str, name: &str) -> bool {
    find(entries, collection, name).is_some_and(|e| e.adopted)
}

fn find<'a>(entries: &'a [Entry], collection: &str, name: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.collection == collection && e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, adopted: bool) -> Entry {
        Entry {
            collection: "users".into(),
            name: name.into(),
            adopted,
        }
    }

    #[test]
    fn a_found_index_is_kept_and_a_built_one_dropped() {
        let found = before_ensure(&[], "users", "email_1", true).unwrap();
        let both = before_ensure(&found, "users", "name_1", false).unwrap();
        assert_eq!(both, [entry("email_1", true), entry("name_1", false)]);
        assert!(keeps(&both, "users", "email_1"));
        assert!(!keeps(&both, "users", "name_1"));
        // Another collection's index of the same name is another index.
        assert!(!keeps(&both, "orders", "email_1"));
    }

    #[test]
    fn the_first_entry_stands_when_up_runs_again() {
        // The first attempt built it and was cut off; the second finds it.
        let built = before_ensure(&[], "users", "name_1", false).unwrap();
        assert_eq!(before_ensure(&built, "users", "name_1", true), None);
        assert!(!keeps(&built, "users", "name_1"));
    }

    #[test]
    fn without_an_entry_down_drops_as_before() {
        assert!(!keeps(&[], "users", "name_1"));
    }

    #[test]
    fn the_record_round_trips_and_a_bad_entry_is_skipped() {
        let entries = vec![entry("email_1", true), entry("name_1", false)];
        let mut record = doc! { FIELD: to_bson(&entries) };
        assert_eq!(of(&record), entries);
        record
            .get_array_mut(FIELD)
            .unwrap()
            .push(Bson::Document(doc! { "collection": "users", "name": 3 }));
        assert_eq!(of(&record), entries);
        assert_eq!(of(&doc! {}), []);
        assert_eq!(of(&doc! { FIELD: "x" }), []);
    }
}
