//! The derive's contract, on the server: every document serde writes for a
//! value of a `#[derive(MongoSchema)]` type is accepted by its enforced
//! validator, and the shapes serde cannot write for it are refused.
//!
//! One type per family of field shapes (every scalar the runtime maps, an
//! `Option` of each, unit enums with renames, nested structs, `Vec`s, maps,
//! `Box`, bson's date helpers, `default`, `skip_serializing_if`, `skip`,
//! `rename`, `rename_all`, `deny_unknown_fields` with and without `_id`).
//! Seeded random values of each are written through the driver as the
//! service would; then, from some of them, wrong shapes derived from the
//! schema itself (a required field left out, a value of another BSON type,
//! a string outside an enum, an unknown field of a closed type) are written
//! raw and must be refused. `SCHEMA_SEED` replays a run, `SCHEMA_VALUES`
//! sets how many values per type (default 40); the seed is printed.
use std::collections::{BTreeMap, HashMap};

use mongo_migrations::bson::oid::ObjectId;
use mongo_migrations::bson::spec::BinarySubtype;
use mongo_migrations::bson::{doc, Binary, Bson, Decimal128, Document, Timestamp};
use mongo_migrations::schema::{self, Collection, MongoSchema, ValidationLevel};
use mongo_migrations::Phase;
use serde::Serialize;

use crate::common::*;

/// splitmix64: a seeded stream of numbers.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn maybe<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        self.coin().then(|| f(self))
    }
    fn vec<T>(&mut self, f: impl Fn(&mut Self) -> T) -> Vec<T> {
        (0..self.below(4)).map(|_| f(self)).collect()
    }
    fn string(&mut self) -> String {
        const PIECES: [&str; 8] = ["", "a", "Zé", "東京", " ", "\u{1F600}", "x.y", "$z"];
        (0..self.below(4)).map(|_| PIECES[self.below(8) as usize]).collect()
    }
    fn char(&mut self) -> char {
        char::from_u32(self.below(0x11_0000) as u32).unwrap_or('\u{FFFD}')
    }
    fn f64(&mut self) -> f64 {
        match self.below(6) {
            0 => 0.0,
            1 => -1.5,
            2 => f64::MAX,
            3 => f64::INFINITY,
            4 => f64::NAN,
            _ => self.next() as f64 / 7.0,
        }
    }
    fn date(&mut self) -> mongo_migrations::bson::DateTime {
        mongo_migrations::bson::DateTime::from_millis(self.below(4_000_000_000_000) as i64)
    }
    fn chrono(&mut self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.below(4_000_000_000_000) as i64).unwrap()
    }
    fn document(&mut self) -> Document {
        let mut d = Document::new();
        for i in 0..self.below(3) {
            d.insert(format!("k{i}"), self.string());
        }
        d
    }
}

#[derive(Debug, Clone, Copy, Serialize, MongoSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Level {
    Low,
    VeryHigh,
    #[serde(rename = "off")]
    Off,
    #[serde(skip)]
    #[allow(dead_code)]
    Internal,
}

#[derive(Debug, Clone, Copy, Serialize, MongoSchema)]
enum Plain {
    One,
    Two,
}

#[derive(Debug, Serialize, MongoSchema)]
struct Inner {
    name: String,
    level: Level,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Serialize, MongoSchema)]
#[mongo(collection = "scalars")]
struct Scalars {
    s: String,
    b: bool,
    i8: i8,
    i16: i16,
    i32: i32,
    i64: i64,
    u8: u8,
    u16: u16,
    u32: u32,
    u64: u64,
    f32: f32,
    f64: f64,
    c: char,
    oid: ObjectId,
    at: mongo_migrations::bson::DateTime,
    dec: Decimal128,
    bin: Binary,
    buuid: mongo_migrations::bson::Uuid,
    uuid: uuid::Uuid,
    ts: Timestamp,
    doc: Document,
    /// chrono without a helper: an RFC 3339 string.
    text_at: chrono::DateTime<chrono::Utc>,
    #[serde(with = "mongo_migrations::bson::serde_helpers::chrono_datetime_as_bson_datetime")]
    date_at: chrono::DateTime<chrono::Utc>,
}

impl Scalars {
    fn gen(g: &mut Gen) -> Self {
        let bytes: Vec<u8> = (0..g.below(5)).map(|_| g.below(256) as u8).collect();
        Scalars {
            s: g.string(),
            b: g.coin(),
            i8: g.next() as i8,
            i16: g.next() as i16,
            i32: g.next() as i32,
            i64: g.next() as i64,
            u8: g.next() as u8,
            u16: g.next() as u16,
            u32: g.next() as u32,
            // bson refuses a u64 past i64::MAX: no value serde can write.
            u64: g.below(i64::MAX as u64),
            f32: g.f64() as f32,
            f64: g.f64(),
            c: g.char(),
            oid: ObjectId::new(),
            at: g.date(),
            dec: Decimal128::from_bytes(g.next().to_le_bytes().repeat(2).try_into().unwrap()),
            bin: Binary {
                subtype: BinarySubtype::Generic,
                bytes,
            },
            buuid: mongo_migrations::bson::Uuid::new(),
            uuid: uuid::Uuid::new_v4(),
            ts: Timestamp {
                time: g.next() as u32,
                increment: g.next() as u32,
            },
            doc: g.document(),
            text_at: g.chrono(),
            date_at: g.chrono(),
        }
    }
}

#[derive(Debug, Serialize, MongoSchema)]
#[serde(rename_all = "camelCase")]
#[mongo(collection = "options")]
struct Options {
    maybe_string: Option<String>,
    maybe_bool: Option<bool>,
    maybe_int: Option<i32>,
    maybe_long: Option<i64>,
    maybe_small: Option<u16>,
    maybe_unsigned: Option<u32>,
    maybe_double: Option<f64>,
    maybe_oid: Option<ObjectId>,
    maybe_date: Option<mongo_migrations::bson::DateTime>,
    maybe_decimal: Option<Decimal128>,
    maybe_doc: Option<Document>,
    maybe_level: Option<Level>,
    maybe_plain: Option<Plain>,
    maybe_inner: Option<Inner>,
    maybe_list: Option<Vec<Option<i32>>>,
    maybe_maybe: Option<Option<String>>,
    maybe_text_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(with = "mongo_migrations::bson::serde_helpers::chrono_datetime_as_bson_datetime_optional")]
    maybe_date_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn level(g: &mut Gen) -> Level {
    [Level::Low, Level::VeryHigh, Level::Off][g.below(3) as usize]
}

fn inner(g: &mut Gen) -> Inner {
    Inner {
        name: g.string(),
        level: level(g),
        note: g.maybe(Gen::string),
    }
}

impl Options {
    fn gen(g: &mut Gen) -> Self {
        Options {
            maybe_string: g.maybe(Gen::string),
            maybe_bool: g.maybe(Gen::coin),
            maybe_int: g.maybe(|g| g.next() as i32),
            maybe_long: g.maybe(|g| g.next() as i64),
            maybe_small: g.maybe(|g| g.next() as u16),
            maybe_unsigned: g.maybe(|g| g.next() as u32),
            maybe_double: g.maybe(Gen::f64),
            maybe_oid: g.maybe(|_| ObjectId::new()),
            maybe_date: g.maybe(Gen::date),
            maybe_decimal: g.maybe(|g| Decimal128::from_bytes(g.next().to_be_bytes().repeat(2).try_into().unwrap())),
            maybe_doc: g.maybe(Gen::document),
            maybe_level: g.maybe(level),
            maybe_plain: g.maybe(|g| if g.coin() { Plain::One } else { Plain::Two }),
            maybe_inner: g.maybe(inner),
            maybe_list: g.maybe(|g| g.vec(|g| g.maybe(|g| g.next() as i32))),
            maybe_maybe: g.maybe(|g| g.maybe(Gen::string)),
            maybe_text_at: g.maybe(Gen::chrono),
            maybe_date_at: g.maybe(Gen::chrono),
        }
    }
}

#[derive(Debug, Serialize, MongoSchema)]
#[mongo(collection = "containers")]
struct Containers {
    ints: Vec<i32>,
    inners: Vec<Inner>,
    levels: Vec<Option<Level>>,
    counts: HashMap<String, i64>,
    by_name: BTreeMap<String, Level>,
    boxed: Box<Inner>,
    nested: Vec<Vec<String>>,
}

impl Containers {
    fn gen(g: &mut Gen) -> Self {
        let key = |g: &mut Gen| format!("k{}", g.below(100));
        Containers {
            ints: g.vec(|g| g.next() as i32),
            inners: g.vec(inner),
            levels: g.vec(|g| g.maybe(level)),
            counts: g.vec(|g| (key(g), g.next() as i64)).into_iter().collect(),
            by_name: g.vec(|g| (key(g), level(g))).into_iter().collect(),
            boxed: Box::new(inner(g)),
            nested: g.vec(|g| g.vec(Gen::string)),
        }
    }
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

#[derive(Debug, Serialize, MongoSchema)]
#[serde(rename_all = "kebab-case")]
#[mongo(collection = "attributes")]
struct Attributes {
    #[serde(rename = "_id")]
    id: ObjectId,
    #[serde(rename = "Given")]
    given_name: String,
    #[serde(default)]
    with_default: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    only_if_set: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    only_if_any: Vec<Level>,
    #[serde(skip_serializing_if = "is_zero")]
    only_if_not_zero: i32,
    #[serde(skip)]
    #[allow(dead_code)]
    never_written: u8,
    r#type: Plain,
}

impl Attributes {
    fn gen(g: &mut Gen) -> Self {
        Attributes {
            id: ObjectId::new(),
            given_name: g.string(),
            with_default: g.next() as i32,
            only_if_set: g.maybe(Gen::string),
            only_if_any: g.vec(level),
            only_if_not_zero: if g.coin() { 0 } else { g.next() as i32 },
            never_written: 1,
            r#type: Plain::Two,
        }
    }
}

/// Closed, without `_id`: the driver adds one when it inserts.
#[derive(Debug, Serialize, MongoSchema)]
#[serde(deny_unknown_fields)]
#[mongo(collection = "closed")]
struct Closed {
    name: String,
    level: Option<Level>,
}

impl Closed {
    fn gen(g: &mut Gen) -> Self {
        Closed {
            name: g.string(),
            level: g.maybe(level),
        }
    }
}

/// Closed, with its own `_id`.
#[derive(Debug, Serialize, MongoSchema)]
#[serde(deny_unknown_fields)]
#[mongo(collection = "closed_with_id")]
struct ClosedWithId {
    #[serde(rename = "_id")]
    id: i64,
    name: String,
}

impl ClosedWithId {
    fn gen(g: &mut Gen) -> Self {
        ClosedWithId {
            id: g.next() as i64,
            name: g.string(),
        }
    }
}

/// A value of one of the BSON types in `allowed` (names as `bsonType` says
/// them), or `None` when every candidate is allowed.
fn of_another_type(allowed: &[&str]) -> Option<Bson> {
    let candidates = [
        ("bool", Bson::Boolean(true)),
        ("string", Bson::String("wrong".into())),
        ("object", Bson::Document(doc! { "wrong": 1 })),
        ("int", Bson::Int32(7)),
        ("array", Bson::Array(vec![Bson::Int32(1)])),
    ];
    candidates
        .into_iter()
        .find(|(name, _)| !allowed.contains(name))
        .map(|(_, value)| value)
}

fn allowed_types(property: &Document) -> Option<Vec<&str>> {
    match property.get("bsonType")? {
        Bson::String(t) => Some(vec![t.as_str()]),
        Bson::Array(ts) => Some(ts.iter().filter_map(Bson::as_str).collect()),
        _ => None,
    }
}

/// Shapes serde cannot write for the type of `schema`, each from `written`:
/// what was changed, and the document.
fn wrong_shapes(schema: &Document, written: &Document) -> Vec<(String, Document)> {
    let mut out = Vec::new();
    let properties = schema.get_document("properties").unwrap();
    if let Ok(required) = schema.get_array("required") {
        for field in required.iter().filter_map(Bson::as_str).filter(|f| *f != "_id") {
            let mut d = written.clone();
            d.remove(field);
            out.push((format!("without required `{field}`"), d));
        }
    }
    for (field, property) in properties {
        if field == "_id" {
            continue;
        }
        let property = property.as_document().unwrap();
        if let Some(value) = allowed_types(property).and_then(|a| of_another_type(&a)) {
            let mut d = written.clone();
            d.insert(field, value.clone());
            out.push((format!("`{field}` as {value}"), d));
        }
        if property.contains_key("enum") {
            let mut d = written.clone();
            d.insert(field, "NotAVariant");
            out.push((format!("`{field}` outside its enum"), d));
        }
    }
    if schema.get_bool("additionalProperties") == Ok(false) {
        let mut d = written.clone();
        d.insert("unknownField", 1);
        out.push(("an unknown field".into(), d));
    }
    out
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| v.parse().expect("a number"))
}

/// Writes `values` of `T` through the driver under `T`'s enforced
/// validator (all accepted), then the wrong shapes of the first few (all
/// refused). Returns how many of each it wrote.
async fn check<T: MongoSchema + Serialize + Send + Sync>(t: &TestDb, values: Vec<T>, seed: u64) -> (usize, usize) {
    let declared = Collection::of::<T>();
    let (name, schema) = (declared.name.clone(), declared.validator.clone().unwrap());
    let db = t.db();
    schema::stage_validator(&db, &name, &schema, ValidationLevel::Strict)
        .await
        .unwrap();
    schema::enforce_validator(&db, &name, &schema, ValidationLevel::Strict, Phase::PostDeploy)
        .await
        .unwrap();
    let typed = db.collection::<T>(&name);
    for (i, value) in values.iter().enumerate() {
        if let Err(e) = typed.insert_one(value).await {
            let written = mongo_migrations::bson::to_document(value).unwrap();
            panic!("seed {seed}: `{name}` refused value {i}, which serde wrote:\n{written}\nschema: {schema}\n{e}");
        }
    }
    let raw = db.collection::<Document>(&name);
    let mut refused = 0;
    for value in values.iter().take(3) {
        let written = mongo_migrations::bson::to_document(value).unwrap();
        for (what, mut wrong) in wrong_shapes(&schema, &written) {
            wrong.insert("_id", ObjectId::new());
            let accepted = raw.insert_one(&wrong).await.is_ok();
            assert!(
                !accepted,
                "seed {seed}: `{name}` accepted a shape serde cannot write ({what}):\n{wrong}\nschema: {schema}"
            );
            refused += 1;
        }
    }
    (values.len(), refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_serde_writes_is_accepted_and_every_wrong_shape_refused() {
    let seed = env_number(
        "SCHEMA_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    let n = env_number("SCHEMA_VALUES", 40);
    println!("schema shapes: SCHEMA_SEED={seed} SCHEMA_VALUES={n}");
    let mut g = Gen(seed);
    let t = TestDb::new().await;
    let mut totals = Vec::new();
    macro_rules! values {
        ($ty:ty) => {{
            let values: Vec<$ty> = (0..n).map(|_| <$ty>::gen(&mut g)).collect();
            totals.push((stringify!($ty), check(&t, values, seed).await));
        }};
    }
    values!(Scalars);
    values!(Options);
    values!(Containers);
    values!(Attributes);
    values!(Closed);
    values!(ClosedWithId);
    for (ty, (accepted, refused)) in totals {
        println!("{ty}: {accepted} values accepted, {refused} wrong shapes refused");
    }
    t.drop_db().await;
}
