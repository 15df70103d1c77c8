//! An index as a migration declares it, and how it compares with one the
//! server lists: by identity (keys, collation, partial filter), as MongoDB
//! tells indexes apart, and then by options. Pure: no I/O.

use bson::{Bson, Document};

/// An index to have on a collection.
///
/// ```
/// use mongo_migrations::bson::doc;
/// use mongo_migrations::schema::Index;
///
/// let email = Index::new(doc! { "email": 1 }).unique();
/// let recent = Index::new(doc! { "createdAt": -1 })
///     .partial(doc! { "archived": false })
///     .named("recent_active");
/// assert_eq!(email.name(), "email_1");
/// assert_eq!(recent.name(), "recent_active");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Index {
    /// The key pattern, in order.
    pub keys: Document,
    /// Its name; by default the server's (`email_1`, `a_1_b_-1`).
    pub name: Option<String>,
    /// Refuses a second document with the same keys.
    pub unique: bool,
    /// Leaves out documents that lack the keys.
    pub sparse: bool,
    /// Covers only the documents that match.
    pub partial_filter: Option<Document>,
    /// A TTL index: documents expire this many seconds after the date in its key.
    pub expire_after_secs: Option<i64>,
    /// The collation (`{ locale: "fr", strength: 2 }`).
    pub collation: Option<Document>,
    /// Kept up to date but not used by queries.
    pub hidden: bool,
}

impl Index {
    /// An index on `keys` with no options.
    pub fn new(keys: Document) -> Self {
        Index {
            keys,
            name: None,
            unique: false,
            sparse: false,
            partial_filter: None,
            expire_after_secs: None,
            collation: None,
            hidden: false,
        }
    }

    /// An index on `keys`, given as `(field, direction)` pairs in order:
    /// `Index::on([("email", 1)])`, `Index::on([("loc", "2dsphere")])`.
    pub fn on<V: Into<Bson>, const N: usize>(keys: [(&str, V); N]) -> Self {
        Index::new(
            keys.into_iter()
                .map(|(field, direction)| (field.to_string(), direction.into()))
                .collect(),
        )
    }

    /// With this name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Unique.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// Sparse.
    pub fn sparse(mut self) -> Self {
        self.sparse = true;
        self
    }

    /// Partial: only over the documents that match `filter`.
    pub fn partial(mut self, filter: Document) -> Self {
        self.partial_filter = Some(filter);
        self
    }

    /// TTL: documents expire `secs` after the date in the key.
    pub fn ttl(mut self, secs: i64) -> Self {
        self.expire_after_secs = Some(secs);
        self
    }

    /// With a collation.
    pub fn collation(mut self, collation: Document) -> Self {
        self.collation = Some(collation);
        self
    }

    /// Hidden from the query planner.
    pub fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    /// Its name: the given one, or the server's default from the keys.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| default_name(&self.keys))
    }

    /// The index as `createIndexes` takes it.
    pub fn to_document(&self) -> Document {
        let mut d = Document::new();
        d.insert("key", self.keys.clone());
        d.insert("name", self.name());
        if self.unique {
            d.insert("unique", true);
        }
        if self.sparse {
            d.insert("sparse", true);
        }
        if let Some(filter) = &self.partial_filter {
            d.insert("partialFilterExpression", filter.clone());
        }
        if let Some(secs) = self.expire_after_secs {
            d.insert("expireAfterSeconds", secs);
        }
        if let Some(collation) = &self.collation {
            d.insert("collation", collation.clone());
        }
        if self.hidden {
            d.insert("hidden", true);
        }
        d
    }

    /// Whether `listed` (a document of `listIndexes`) is this index by
    /// identity: the same keys in the same order, collation and partial
    /// filter. Its name does not count: an index under another name is the
    /// same index, and building this one beside it would fail or duplicate it.
    pub fn is(&self, listed: &Document) -> bool {
        let keys = listed.get_document("key").ok();
        let same_keys = match text_form(&self.keys) {
            // A text index is listed with `_fts`/`_ftsx` in place of its text
            // fields, which are the keys of its `weights`.
            Some((form, fields)) => {
                keys.is_some_and(|k| same_document(k, &form))
                    && listed.get_document("weights").is_ok_and(|w| {
                        let mut listed: Vec<&str> = w.keys().map(String::as_str).collect();
                        listed.sort_unstable();
                        listed == fields
                    })
            }
            None => keys.is_some_and(|k| same_document(k, &self.keys)),
        };
        same_keys
            && same_collation(self.collation.as_ref(), listed.get_document("collation").ok())
            && match (
                &self.partial_filter,
                listed.get_document("partialFilterExpression").ok(),
            ) {
                (None, None) => true,
                (Some(a), Some(b)) => same_document(a, b),
                _ => false,
            }
    }

    /// [`Index::is`] on a collection whose default collation is
    /// `default_collation`: declared without a collation, the index has the
    /// collection's.
    pub fn is_on(&self, listed: &Document, default_collation: Option<&Document>) -> bool {
        match (&self.collation, default_collation) {
            (None, Some(default)) => {
                let inherited = Index {
                    collation: Some(default.clone()),
                    ..self.clone()
                };
                inherited.is(listed) || self.is(listed)
            }
            _ => self.is(listed),
        }
    }

    /// Whether `listed` is this index by its whole signature, on a
    /// collection whose default collation is `default_collation`: its
    /// identity ([`Index::is_on`]) and `unique` and `sparse`. Since MongoDB
    /// 5.0 these two options tell indexes on the same keys apart, so
    /// `{a: 1}` and `{a: 1}, unique` stand side by side under two names
    /// (`IndexDescriptor::compareIndexOptions`,
    /// `src/mongo/db/catalog/index_descriptor.cpp`).
    pub fn is_signature_on(&self, listed: &Document, default_collation: Option<&Document>) -> bool {
        let flag = |key| listed.get_bool(key).unwrap_or(false);
        flag("unique") == self.unique && flag("sparse") == self.sparse && self.is_on(listed, default_collation)
    }

    /// The options in which `listed` (the same index by identity) differs
    /// from this one, but for `hidden`: `unique`, `sparse`, `expireAfterSeconds`.
    pub fn differences(&self, listed: &Document) -> Vec<&'static str> {
        let flag = |key| listed.get_bool(key).unwrap_or(false);
        let mut out = Vec::new();
        if flag("unique") != self.unique {
            out.push("unique");
        }
        if flag("sparse") != self.sparse {
            out.push("sparse");
        }
        if listed.get("expireAfterSeconds").and_then(number) != self.expire_after_secs.map(|s| s as f64) {
            out.push("expireAfterSeconds");
        }
        out
    }
}

/// Each of `declared` paired with the index of `listed` that is it, on a
/// collection whose default collation is `default_collation`: first by
/// whole signature ([`Index::is_signature_on`]), then, for those left, by
/// identity alone (the same index with other options: one under the
/// declared name first). A listed index is paired at most once, so two
/// declared indexes on the same keys, one unique, are each found.
pub(crate) fn pair<'a>(
    declared: &[Index],
    listed: &'a [Document],
    default_collation: Option<&Document>,
) -> Vec<Option<&'a Document>> {
    let mut taken = vec![false; listed.len()];
    let mut out: Vec<Option<&'a Document>> = vec![None; declared.len()];
    let mut take = |out: &mut Vec<Option<&'a Document>>, i: usize, fits: &dyn Fn(&Document) -> bool| {
        if let Some(j) = (0..listed.len()).find(|&j| !taken[j] && fits(&listed[j])) {
            taken[j] = true;
            out[i] = Some(&listed[j]);
        }
    };
    for (i, index) in declared.iter().enumerate() {
        take(&mut out, i, &|l| index.is_signature_on(l, default_collation));
    }
    for (i, index) in declared.iter().enumerate() {
        if out[i].is_none() {
            let name = index.name();
            take(&mut out, i, &|l| {
                index.is_on(l, default_collation) && l.get_str("name") == Ok(name.as_str())
            });
        }
        if out[i].is_none() {
            take(&mut out, i, &|l| index.is_on(l, default_collation));
        }
    }
    out
}

/// What `listed` (a collection's `listIndexes`) holds of one declared index.
#[derive(Debug, PartialEq)]
pub(crate) enum Found<'a> {
    /// It, by whole signature; maybe with another TTL, or hidden otherwise.
    It(&'a Document),
    /// Under its name, the same keys with other `unique` or `sparse`: a
    /// change that needs `replace_index`.
    OtherOptions(&'a Document),
    /// Under its name, another index.
    NameTaken(&'a Document),
    /// Not there: to be built. An index on the same keys under another
    /// name with other `unique` or `sparse` stays beside it (MongoDB 5.0+;
    /// an older server refuses the build with `IndexOptionsConflict`).
    Missing,
}

/// Finds `index` in `listed` (see [`Found`]).
pub(crate) fn find<'a>(index: &Index, listed: &'a [Document]) -> Found<'a> {
    if let Some(it) = listed.iter().find(|l| index.is_signature_on(l, None)) {
        return Found::It(it);
    }
    let name = index.name();
    match listed.iter().find(|l| l.get_str("name") == Ok(name.as_str())) {
        Some(same) if index.is(same) => Found::OtherOptions(same),
        Some(other) => Found::NameTaken(other),
        None => Found::Missing,
    }
}

/// What a build of `index` would meet in `listed`, as owned data (for `plan`).
#[derive(Debug, PartialEq)]
pub(crate) enum Listed {
    /// There, under this name, hidden or not: nothing to build.
    It(String, bool),
    /// Not there: built.
    Missing,
    /// Something stands in the way, said why.
    InTheWay(String),
}

/// [`find`] as [`Listed`].
pub(crate) fn find_listed(index: &Index, listed: &[Document]) -> Listed {
    let name = |d: &Document| d.get_str("name").unwrap_or_default().to_string();
    let other_options = |it: &Document| {
        Listed::InTheWay(format!(
            "`{}` has its keys with other options ({}): change it with `replace_index`",
            name(it),
            index.differences(it).join(", ")
        ))
    };
    match find(index, listed) {
        Found::It(it) if !index.differences(it).is_empty() => other_options(it),
        Found::It(it) => Listed::It(name(it), is_hidden(it)),
        Found::Missing => Listed::Missing,
        Found::OtherOptions(it) => other_options(it),
        Found::NameTaken(it) => Listed::InTheWay(format!(
            "another index is named `{}` (on {})",
            name(it),
            it.get_document("key").cloned().unwrap_or_default()
        )),
    }
}

/// A text index's key as the server lists it, and its text fields, sorted:
/// the fields declared `"text"` become `_fts: "text", _ftsx: 1` where the
/// first of them stood, other keys before and after kept in place (the
/// manual's "Text Indexes"; `src/mongo/db/fts/fts_spec.cpp`). `None` for an
/// index without a text field.
fn text_form(keys: &Document) -> Option<(Document, Vec<&str>)> {
    let mut fields: Vec<&str> = keys
        .iter()
        .filter(|(_, v)| v.as_str() == Some("text"))
        .map(|(k, _)| k.as_str())
        .collect();
    if fields.is_empty() {
        return None;
    }
    fields.sort_unstable();
    let mut form = Document::new();
    for (key, value) in keys {
        if value.as_str() == Some("text") {
            if !form.contains_key("_fts") {
                form.insert("_fts", "text");
                form.insert("_ftsx", 1);
            }
        } else {
            form.insert(key.clone(), value.clone());
        }
    }
    Some((form, fields))
}

/// Whether `listed` is hidden.
pub fn is_hidden(listed: &Document) -> bool {
    listed.get_bool("hidden").unwrap_or(false)
}

/// The server's default name: `field_direction` joined by `_`.
fn default_name(keys: &Document) -> String {
    keys.iter()
        .map(|(field, value)| {
            let kind = match value {
                Bson::String(s) => s.clone(),
                other => number(other).map_or_else(|| other.to_string(), |n| format!("{n}")),
            };
            format!("{field}_{kind}")
        })
        .collect::<Vec<_>>()
        .join("_")
}

pub(super) fn number(value: &Bson) -> Option<f64> {
    match value {
        Bson::Int32(n) => Some(f64::from(*n)),
        Bson::Int64(n) => Some(*n as f64),
        Bson::Double(n) => Some(*n),
        _ => None,
    }
}

/// Equal documents, in order, where `1`, `1i64` and `1.0` are one number:
/// the server may list a key given as an `i32` as a double.
pub(super) fn same_document(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
}

fn same_value(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Document(a), Bson::Document(b)) => same_document(a, b),
        (Bson::Array(a), Bson::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y)),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// Equal documents in any order of their keys (arrays in order), numbers
/// compared by value: a `$jsonSchema` the server lists against a declared one.
pub(super) fn same_unordered(a: &Document, b: &Document) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, va)| b.get(k).is_some_and(|vb| same_value_unordered(va, vb)))
}

pub(super) fn same_value_unordered(a: &Bson, b: &Bson) -> bool {
    match (a, b) {
        (Bson::Document(a), Bson::Document(b)) => same_unordered(a, b),
        (Bson::Array(a), Bson::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value_unordered(x, y))
        }
        _ => same_value(a, b),
    }
}

/// The server lists a collation with every default filled in: what the
/// migration gives must be there with the same values, and no collation is
/// the same as the `simple` one.
fn same_collation(declared: Option<&Document>, listed: Option<&Document>) -> bool {
    let simple = |c: Option<&Document>| c.is_none_or(|c| c.get_str("locale").is_ok_and(|l| l == "simple"));
    match declared {
        None => simple(listed),
        Some(d) if simple(Some(d)) => simple(listed),
        Some(d) => listed.is_some_and(|l| d.iter().all(|(k, v)| l.get(k).is_some_and(|lv| same_value(v, lv)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    /// `listIndexes` of text indexes, as mongod lists them (the manual's
    /// "Text Indexes" and `listIndexes` examples): the text fields become
    /// `_fts`/`_ftsx`, and are the keys of `weights`.
    #[test]
    fn a_text_index_is_known_by_its_listed_form() {
        let declared = Index::new(doc! { "title": "text", "body": "text" });
        let listed = doc! { "v": 2, "key": { "_fts": "text", "_ftsx": 1 }, "name": "title_text_body_text",
        "weights": { "body": 1, "title": 1 }, "default_language": "english",
        "language_override": "language", "textIndexVersion": 3 };
        assert!(declared.is(&listed));
        // Other text fields: another index.
        assert!(!Index::new(doc! { "title": "text" }).is(&listed));
        // A compound one, with a prefix and a suffix key.
        let compound = Index::new(doc! { "category": 1, "title": "text", "year": -1 });
        let listed = doc! { "v": 2, "key": { "category": 1, "_fts": "text", "_ftsx": 1, "year": -1 },
        "name": "category_1_title_text_year_-1", "weights": { "title": 1 } };
        assert!(compound.is(&listed));
        assert!(!Index::new(doc! { "title": "text", "year": -1 }).is(&listed));
        // A plain index is compared as before.
        assert!(!Index::new(doc! { "title": 1 }).is(&listed));
    }

    fn listed(d: Document) -> Document {
        let mut l = doc! { "v": 2 };
        l.extend(d);
        l
    }

    #[test]
    fn the_name_is_the_server_s_default() {
        assert_eq!(Index::new(doc! { "email": 1 }).name(), "email_1");
        assert_eq!(Index::new(doc! { "a": 1, "b": -1 }).name(), "a_1_b_-1");
        assert_eq!(Index::new(doc! { "loc": "2dsphere" }).name(), "loc_2dsphere");
        assert_eq!(Index::new(doc! { "a": 1 }).named("by_a").name(), "by_a");
        assert_eq!(Index::on([("a", 1), ("b", -1)]), Index::new(doc! { "a": 1, "b": -1 }));
        assert_eq!(Index::on([("loc", "2dsphere")]).name(), "loc_2dsphere");
    }

    #[test]
    fn identity_is_keys_in_order_collation_and_partial_filter_not_the_name() {
        let index = Index::new(doc! { "a": 1, "b": -1 });
        assert!(index.is(&listed(doc! { "key": { "a": 1.0, "b": -1i64 }, "name": "other" })));
        assert!(!index.is(&listed(doc! { "key": { "b": -1, "a": 1 }, "name": "a_1_b_-1" })));
        assert!(!index.is(&listed(doc! { "key": { "a": 1 }, "name": "a_1_b_-1" })));
        let partial = index.clone().partial(doc! { "x": { "$gt": 1 } });
        assert!(!partial.is(&listed(doc! { "key": { "a": 1, "b": -1 } })));
        assert!(partial.is(&listed(
            doc! { "key": { "a": 1, "b": -1 }, "partialFilterExpression": { "x": { "$gt": 1.0 } } }
        )));
        assert!(!index.is(&listed(
            doc! { "key": { "a": 1, "b": -1 }, "partialFilterExpression": { "x": 1 } }
        )));
    }

    #[test]
    fn a_collation_matches_the_server_s_filled_in_one() {
        let fr = Index::new(doc! { "n": 1 }).collation(doc! { "locale": "fr", "strength": 2 });
        let server =
            doc! { "locale": "fr", "caseLevel": false, "strength": 2, "numericOrdering": false, "version": "57.1" };
        assert!(fr.is(&listed(doc! { "key": { "n": 1 }, "collation": server.clone() })));
        assert!(!fr.is(&listed(
            doc! { "key": { "n": 1 }, "collation": { "locale": "fr", "strength": 3 } }
        )));
        assert!(!fr.is(&listed(doc! { "key": { "n": 1 } })));
        let plain = Index::new(doc! { "n": 1 });
        assert!(!plain.is(&listed(doc! { "key": { "n": 1 }, "collation": server })));
        assert!(plain.is(&listed(doc! { "key": { "n": 1 }, "collation": { "locale": "simple" } })));
    }

    #[test]
    fn options_that_differ_are_named() {
        let ttl = Index::new(doc! { "at": 1 }).ttl(3600).unique();
        let same = listed(doc! { "key": { "at": 1 }, "unique": true, "expireAfterSeconds": 3600 });
        assert!(ttl.differences(&same).is_empty());
        let other = listed(doc! { "key": { "at": 1 }, "sparse": true, "expireAfterSeconds": 60 });
        assert_eq!(ttl.differences(&other), ["unique", "sparse", "expireAfterSeconds"]);
    }

    /// `listIndexes` of a collection holding `{a: 1}` twice, one unique:
    /// since MongoDB 5.0 both stand (`compareIndexOptions` counts `unique`
    /// and `sparse` in the signature, `index_descriptor.cpp`; SecantusDB
    /// 0.7 answers the same, measured).
    fn both_on_a() -> Vec<Document> {
        vec![
            listed(doc! { "key": { "_id": 1 }, "name": "_id_" }),
            listed(doc! { "key": { "a": 1 }, "name": "a_1" }),
            listed(doc! { "key": { "a": 1 }, "name": "a_1_unique", "unique": true }),
        ]
    }

    #[test]
    fn unique_and_sparse_are_part_of_the_signature() {
        let plain = Index::new(doc! { "a": 1 });
        let unique = Index::new(doc! { "a": 1 }).unique().named("a_1_unique");
        let both = both_on_a();
        // Each declared index finds its own, in either order.
        assert_eq!(
            pair(&[plain.clone(), unique.clone()], &both, None),
            [Some(&both[1]), Some(&both[2])]
        );
        assert_eq!(
            pair(&[unique.clone(), plain.clone()], &both, None),
            [Some(&both[2]), Some(&both[1])]
        );
        assert_eq!(find(&plain, &both), Found::It(&both[1]));
        assert_eq!(find(&unique, &both), Found::It(&both[2]));
        // Only the plain one there: the unique one, under its own name, is
        // built beside it; under the plain one's name, it is a change of options.
        let only_plain = &both[..2];
        assert_eq!(find(&unique, only_plain), Found::Missing);
        assert_eq!(
            find(&Index::new(doc! { "a": 1 }).unique(), only_plain),
            Found::OtherOptions(&both[1])
        );
        assert_eq!(
            find(&Index::new(doc! { "b": 1 }).named("a_1"), only_plain),
            Found::NameTaken(&both[1])
        );
        // Drift pairs a declaration with the same keys and other options, under its name first.
        assert_eq!(
            pair(&[Index::new(doc! { "a": 1 }).sparse()], &both, None),
            [Some(&both[1])]
        );
        assert_eq!(pair(&[unique.clone().sparse()], &both, None), [Some(&both[2])]);
        assert_eq!(pair(&[Index::new(doc! { "b": 1 })], &both, None), [None]);
    }

    #[test]
    fn the_create_document_carries_every_option() {
        let d = Index::new(doc! { "a": 1 })
            .unique()
            .sparse()
            .partial(doc! { "x": 1 })
            .ttl(5)
            .collation(doc! { "locale": "en" })
            .hidden()
            .to_document();
        assert_eq!(
            d,
            doc! {
                "key": { "a": 1 }, "name": "a_1", "unique": true, "sparse": true,
                "partialFilterExpression": { "x": 1 }, "expireAfterSeconds": 5i64,
                "collation": { "locale": "en" }, "hidden": true,
            }
        );
    }
}
