//! Each recorded operation against the database as it is now, read-only:
//! what it would do, and its risk with the reason.

use bson::{doc, Bson, Document};
use mongodb::Database;

use crate::operation::Operation;
use crate::plan_report::{PlanStep, Risk};
use crate::schema::{self, Index};

/// What an assessment needs beyond the operation.
pub(crate) struct Assessing<'a> {
    pub(crate) db: &'a Database,
    /// More documents than this make a step slow.
    pub(crate) slow: u64,
    /// Collections a walk of an earlier migration of this plan changes:
    /// their violators may be fixed by then.
    pub(crate) walked_before: &'a [String],
    /// The walk rate recorded in this database, documents per second.
    pub(crate) rate: Option<f64>,
    /// The index build rate recorded in this database, documents per second.
    pub(crate) index_rate: Option<f64>,
}

/// How many of the latest runs a rate is taken over.
const RATE_RUNS: usize = 5;

/// Runs over fewer documents than this say little about a rate.
const RATE_MIN_DOCUMENTS: u64 = 100;

/// The walk rate of this database, documents per second: over the latest
/// runs that walked at least [`RATE_MIN_DOCUMENTS`], as their records'
/// logs keep them (the documents their walks handed over, and the time
/// the walks took). None where no such run is recorded.
pub(crate) fn walk_rate<'r>(records: impl IntoIterator<Item = &'r crate::Record>) -> Option<f64> {
    rate(records, |e| e.walked_documents.zip(e.walk_ms))
}

/// The index build rate of this database, documents per second, as
/// [`walk_rate`] (the documents in the collections the runs' builds
/// indexed, and the time the builds took).
pub(crate) fn index_rate<'r>(records: impl IntoIterator<Item = &'r crate::Record>) -> Option<f64> {
    rate(records, |e| e.indexed_documents.zip(e.index_ms))
}

fn rate<'r>(
    records: impl IntoIterator<Item = &'r crate::Record>,
    done: impl Fn(&crate::LogEntry) -> Option<(u64, u64)>,
) -> Option<f64> {
    let mut runs: Vec<(chrono::DateTime<chrono::Utc>, u64, u64)> = records
        .into_iter()
        .flat_map(|r| &r.log)
        .filter_map(|e| done(e).map(|(documents, ms)| (e.at, documents, ms)))
        .filter(|&(_, documents, ms)| documents >= RATE_MIN_DOCUMENTS && ms > 0)
        .collect();
    runs.sort_by_key(|&(at, ..)| std::cmp::Reverse(at));
    runs.truncate(RATE_RUNS);
    let documents: u64 = runs.iter().map(|&(_, d, _)| d).sum();
    let ms: u64 = runs.iter().map(|&(.., ms)| ms).sum();
    (ms > 0).then(|| documents as f64 * 1_000.0 / ms as f64)
}

/// `about 3 min 20 s at the walk rate recorded here (1,204 documents/s)`;
/// `kind` is `walk` or `index build`.
fn timed(documents: u64, rate: Option<f64>, kind: &str) -> String {
    match rate {
        Some(rate) if rate > 0.0 => format!(
            "about {} at the {kind} rate recorded here ({} documents/s)",
            crate::report::duration((documents as f64 / rate * 1_000.0) as i64),
            crate::report::thousands(rate.round() as u64)
        ),
        _ => format!("no {kind} is recorded here to time it by"),
    }
}

fn step(risk: Risk, what: String, why: Option<String>) -> PlanStep {
    PlanStep { risk, what, why }
}

/// `12,000 documents`.
fn documents(n: u64) -> String {
    format!(
        "{} {}",
        crate::report::thousands(n),
        if n == 1 { "document" } else { "documents" }
    )
}

fn ids(sample: &[Bson]) -> String {
    sample.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The size of `collection`, from its metadata (cheap; an estimate).
async fn estimated(db: &Database, collection: &str) -> Result<u64, crate::Error> {
    Ok(db.collection::<Document>(collection).estimated_document_count().await?)
}

/// How often the index `name` of `collection` was used since the server
/// (each shard's, through a `mongos`) started: `$indexStats`'s
/// `accesses.ops`, summed; none where it cannot be read (the `indexStats`
/// action is not in `readWrite`).
async fn accesses(db: &Database, collection: &str, name: &str) -> Option<u64> {
    use futures_util::TryStreamExt as _;
    let pipeline = vec![doc! { "$indexStats": {} }, doc! { "$match": { "name": name } }];
    let stats: Vec<Document> = db
        .collection::<Document>(collection)
        .aggregate(pipeline)
        .await
        .ok()?
        .try_collect()
        .await
        .ok()?;
    if stats.is_empty() {
        return None;
    }
    Some(
        stats
            .iter()
            .filter_map(|s| {
                s.get_document("accesses")
                    .ok()?
                    .get("ops")
                    .and_then(crate::schema::index_number)
            })
            .sum(),
    )
}

/// `; used 12 times since the server started`, or nothing.
fn used(n: Option<u64>) -> String {
    match n {
        Some(0) => "; not used since the server started".into(),
        Some(n) => format!(
            "; used {} {} since the server started",
            crate::report::thousands(n),
            if n == 1 { "time" } else { "times" }
        ),
        None => String::new(),
    }
}

/// The step of `op`.
pub(crate) async fn assess(a: &Assessing<'_>, op: &Operation) -> Result<PlanStep, crate::Error> {
    let slow_or = |n: u64, what: String, risk: Risk| {
        if n > a.slow {
            step(
                Risk::Slow.max(risk),
                what,
                Some(format!("more than {}", documents(a.slow))),
            )
        } else {
            step(risk, what, None)
        }
    };
    Ok(match op {
        Operation::EnsureIndex { collection, index } => {
            let listed = schema::list_indexes(a.db, collection).await?;
            match crate::schema::find_listed(index, &listed) {
                crate::schema::Listed::It(name, hidden) if hidden != index.hidden => step(
                    Risk::Safe,
                    format!(
                        "{} the index `{name}` of `{collection}`",
                        if index.hidden { "hide" } else { "show" }
                    ),
                    None,
                ),
                crate::schema::Listed::It(name, _) => step(
                    Risk::Safe,
                    format!("adopt the index `{name}` of `{collection}`, there already (nothing is built)"),
                    None,
                ),
                crate::schema::Listed::Missing => build(a, collection, index, "build").await?,
                crate::schema::Listed::InTheWay(why) => step(
                    Risk::Blocking,
                    format!("build the index `{}` of `{collection}`", index.name()),
                    Some(why),
                ),
            }
        }
        Operation::ReplaceIndex { collection, old, index } => {
            let built = build(a, collection, index, "replace").await?;
            match built.risk {
                Risk::Blocking => built,
                risk => step(
                    Risk::Destructive.max(risk),
                    format!("{}; then drop `{old}`", built.what),
                    Some(format!("drops the index `{old}`")),
                ),
            }
        }
        Operation::HideIndex { collection, name } => step(
            Risk::Safe,
            format!(
                "hide the index `{name}` of `{collection}` (kept up to date; unhidden at once){}",
                used(accesses(a.db, collection, name).await)
            ),
            None,
        ),
        Operation::UnhideIndex { collection, name } => {
            step(Risk::Safe, format!("show the index `{name}` of `{collection}`"), None)
        }
        Operation::DropIndex { collection, name } => step(
            Risk::Destructive,
            format!(
                "drop the index `{name}` of `{collection}`{}",
                used(accesses(a.db, collection, name).await)
            ),
            Some("a dropped index is built again only by a migration".into()),
        ),
        Operation::CreateCollection { collection } => {
            let exists = !a
                .db
                .list_collection_names()
                .filter(doc! { "name": collection })
                .await?
                .is_empty();
            match exists {
                true => step(Risk::Safe, format!("`{collection}` exists: nothing to create"), None),
                false => step(Risk::Safe, format!("create the collection `{collection}`"), None),
            }
        }
        Operation::StageValidator { collection, schema, .. } => {
            let found = schema::count_violators(a.db, collection, schema).await?;
            step(
                Risk::Safe,
                format!(
                    "stage the validator of `{collection}` at `warn`: {} violate it now",
                    documents(found.count)
                ),
                None,
            )
        }
        Operation::EnforceValidator {
            collection,
            schema,
            forced,
        } => {
            let found = schema::count_violators(a.db, collection, schema).await?;
            let what = format!("enforce the validator of `{collection}`");
            match (found.count, forced) {
                (0, _) => step(Risk::Safe, format!("{what}: no document violates it"), None),
                (n, true) => step(
                    Risk::Safe,
                    format!("{what} over {} that violate it (forced)", documents(n)),
                    None,
                ),
                (n, false) if a.walked_before.contains(collection) => step(
                    Risk::Slow,
                    what,
                    Some(format!(
                        "{} violate it now (for example _id {}); an earlier migration of this plan walks `{collection}` and may fix them",
                        documents(n),
                        ids(&found.sample)
                    )),
                ),
                (n, false) => step(
                    Risk::Blocking,
                    what,
                    Some(format!(
                        "{} violate it (for example _id {}): the enforcement is refused until they are fixed",
                        documents(n),
                        ids(&found.sample)
                    )),
                ),
            }
        }
        Operation::RestoreValidator { collection } => step(
            Risk::Safe,
            format!("restore the earlier validator of `{collection}`"),
            None,
        ),
        Operation::Walk {
            collection,
            filter,
            size,
        } => {
            let matching =
                a.db.collection::<Document>(collection)
                    .count_documents(filter.clone())
                    .await?;
            let size = u64::try_from((*size).max(1)).unwrap_or(1);
            slow_or(
                matching,
                format!(
                    "walk {} of `{collection}` (exact count of its filter) in {} {} of {size}; {}",
                    documents(matching),
                    crate::report::thousands(matching.div_ceil(size)),
                    if matching.div_ceil(size) == 1 {
                        "batch"
                    } else {
                        "batches"
                    },
                    timed(matching, a.rate, "walk"),
                ),
                Risk::Safe,
            )
        }
    })
}

/// A build of `index` on `collection` (`verb`: build or replace): blocking
/// where documents share the keys of a unique one; slow on a big collection.
async fn build(a: &Assessing<'_>, collection: &str, index: &Index, verb: &str) -> Result<PlanStep, crate::Error> {
    let size = estimated(a.db, collection).await?;
    let what = format!(
        "{verb} the index `{}` of `{collection}` ({}, estimated); {}",
        index.name(),
        documents(size),
        timed(size, a.index_rate, "index build")
    );
    if index.unique {
        let found = schema::duplicates(a.db, collection, index).await?;
        if found.documents > 0 {
            return Ok(step(
                Risk::Blocking,
                what,
                Some(format!(
                    "{} share their keys with another ({} {} held more than once; for example _id {}): the unique build fails",
                    documents(found.documents),
                    crate::report::thousands(found.values),
                    if found.values == 1 { "value" } else { "values" },
                    ids(&found.sample)
                )),
            ));
        }
    }
    Ok(if size > a.slow {
        step(Risk::Slow, what, Some(format!("more than {}", documents(a.slow))))
    } else {
        step(Risk::Safe, what, None)
    })
}
