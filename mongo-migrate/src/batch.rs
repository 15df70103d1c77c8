//! Data migrations in batches: a walk over a collection in `_id` order, one
//! range query per batch (never one long cursor), with a checkpoint in the
//! migration's tracking record after every batch. A run that stops, fails,
//! crashes or loses its lock resumes from the last checkpoint: at most one
//! batch is handed to the closure twice, so the closure must be idempotent
//! per batch (set values, do not increment them).

use std::future::Future;

use bson::{doc, Bson, Document};
use futures_util::TryStreamExt;
use mongodb::{Collection, Database};

use crate::lock::LockHandle;
use crate::{Direction, MigrationError, Progress, StopHandle, Version};

/// Where progress events go.
pub(crate) type ProgressFn = std::sync::Arc<dyn Fn(&Progress) + Send + Sync>;

/// What a migration's batches write to, and when they must stop.
#[derive(Clone)]
pub(crate) struct Checkpoints {
    /// The tracking collection.
    pub(crate) tracking: Collection<Document>,
    /// This runner's unfenced `running` claim on the migration: every
    /// checkpoint is conditional on it.
    pub(crate) claim: Document,
    pub(crate) direction: Direction,
    pub(crate) stop: StopHandle,
    /// The run's hold on the lock: no batch starts unless it is proved.
    pub(crate) lock: LockHandle,
    pub(crate) version: Version,
    pub(crate) progress: Option<ProgressFn>,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("claim", &self.claim)
            .field("direction", &self.direction)
            .finish()
    }
}

/// What a finished walk did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BatchStats {
    /// Batches handed to the closure in this run.
    pub batches: u64,
    /// Documents handed to the closure in this run.
    pub documents: u64,
    /// Documents done by earlier, interrupted runs (from the checkpoint).
    pub resumed: u64,
}

/// A walk over the documents of one collection that match a filter, built
/// by [`MigrationContext::batches`](crate::MigrationContext::batches).
#[derive(Debug)]
#[must_use = "a walk does nothing until `run` is awaited"]
pub struct Batches<'a> {
    pub(crate) db: &'a Database,
    pub(crate) checkpoints: Option<&'a Checkpoints>,
    /// Which walk of the migration this is (its checkpoint's key).
    pub(crate) index: usize,
    /// A transaction cannot span batches: refused.
    pub(crate) transactional: bool,
    pub(crate) collection: String,
    pub(crate) filter: Document,
    pub(crate) size: i64,
    pub(crate) pause: std::time::Duration,
    pub(crate) max_rate: Option<u32>,
    pub(crate) segments: u32,
}

impl Batches<'_> {
    /// Documents per batch (default 1,000).
    pub fn size(mut self, size: u32) -> Self {
        self.size = i64::from(size.max(1));
        self
    }

    /// A pause after every batch, to spare a busy primary.
    pub fn pause_between(mut self, pause: std::time::Duration) -> Self {
        self.pause = pause;
        self
    }

    /// At most this many documents per second (averaged over the walk): a
    /// throttle for a primary that serves traffic.
    pub fn max_rate(mut self, documents_per_second: u32) -> Self {
        self.max_rate = Some(documents_per_second.max(1));
        self
    }

    /// Walks `n` contiguous segments of `_id` at once, each with its own
    /// checkpoint (the segments come from one `$bucketAuto` aggregation and
    /// are kept for a resumed run). The database does the work in parallel;
    /// there is no coordinator.
    pub fn parallel(mut self, n: u32) -> Self {
        self.segments = n.max(1);
        self
    }

    /// The common case of [`Batches::run`]: `f` turns each document into an
    /// update (or `None` to leave it), and each batch's updates go out as
    /// one `update` command, majority-acknowledged, so a walk cannot outrun
    /// replication. `f` must compute the update from the document (set
    /// values), so that a batch applied twice ends the same.
    pub async fn update_each<F>(self, f: F) -> Result<BatchStats, MigrationError>
    where
        F: Fn(&Document) -> Option<Document> + Sync,
    {
        let name = self.collection.clone();
        let f = &f;
        self.run(|batch, db| {
            let name = name.clone();
            async move {
                let updates: Vec<Document> = batch
                    .iter()
                    .filter_map(|d| Some(doc! { "q": { "_id": d.get("_id")?.clone() }, "u": f(d)? }))
                    .collect();
                if updates.is_empty() {
                    return Ok(());
                }
                let command = doc! {
                    "update": &name,
                    "updates": updates,
                    "ordered": true,
                    "writeConcern": { "w": "majority" },
                };
                let reply = db.run_command(command).await?;
                // A write error or an unconfirmed majority fails the batch:
                // its checkpoint must not say it is done.
                crate::server::read_update_reply(&name, &reply, crate::server::Duplicates::Fail)?;
                Ok(())
            }
        })
        .await
    }

    /// Hands every batch, in `_id` order, to `f` with the database, and
    /// records a checkpoint after each. Resumes after the last checkpoint of
    /// an interrupted run. Stops between batches, with an error, when the
    /// run is stopped (Ctrl-C, [`StopHandle`]) or has lost its lock.
    pub async fn run<F, Fut>(self, f: F) -> Result<BatchStats, MigrationError>
    where
        F: Fn(Vec<Document>, Database) -> Fut + Sync,
        Fut: Future<Output = Result<(), MigrationError>> + Send,
    {
        if self.transactional {
            return Err("batches do not run inside a transaction (each batch is its own write, checkpointed): make this migration non-transactional".into());
        }
        let coll = self.db.collection::<Document>(&self.collection);
        one_id_type(&coll, &self.filter, &self.collection).await?;
        let parts = self.layout(&coll).await?;
        let resumed: u64 = parts.iter().map(|p| p.done).sum();
        let total = match self.checkpoints.and_then(|c| c.progress.as_ref()) {
            Some(_) => {
                let mut left = 0;
                for part in &parts {
                    left += coll.count_documents(part.filter(&self.filter)).await?;
                }
                resumed + left
            }
            None => 0,
        };
        let walk = Walk {
            batches: &self,
            coll: &coll,
            f: &f,
            started: std::time::Instant::now(),
            total,
            done: std::sync::Mutex::new(parts.iter().map(|p| p.done).collect()),
            handed: std::sync::atomic::AtomicU64::new(0),
            failed: std::sync::atomic::AtomicBool::new(false),
        };
        let results =
            futures_util::future::join_all(parts.into_iter().enumerate().map(|(i, part)| walk.part(i, part))).await;
        let mut stats = BatchStats {
            batches: 0,
            documents: 0,
            resumed,
        };
        let mut first_error = None;
        for result in results {
            match result {
                Ok((batches, documents)) => {
                    stats.batches += batches;
                    stats.documents += documents;
                }
                Err((batches, documents, e)) => {
                    stats.batches += batches;
                    stats.documents += documents;
                    // The segment that failed says why; the others only stopped.
                    if first_error.is_none()
                        || matches!(e, Stop::Failed(_)) && !matches!(first_error, Some(Stop::Failed(_)))
                    {
                        first_error = Some(e);
                    }
                }
            }
        }
        match first_error {
            Some(Stop::Failed(e)) => Err(e),
            Some(Stop::Because(why)) => {
                let done: u64 = walk.done.lock().expect("progress lock").iter().sum();
                Err(Box::new(WalkStopped {
                    why,
                    on_request: why == STOPPED_ON_REQUEST,
                    stats,
                    done,
                    total: (total > 0).then_some(total.max(done)),
                }))
            }
            None => Ok(stats),
        }
    }

    /// Splits the walk into `.parallel(n)` segments of `_id` (one aggregation),
    /// or takes the segments and positions of an interrupted run; writes the
    /// layout into the checkpoint first, so a resumed run walks the same ones.
    async fn layout(&self, coll: &Collection<Document>) -> Result<Vec<Part>, MigrationError> {
        let Some(c) = self.checkpoints else {
            return Ok(vec![Part::whole()]);
        };
        if let Some(parts) = saved(c, self.index, &self.collection).await? {
            return Ok(parts);
        }
        let mut bounds: Vec<Bson> = Vec::new();
        if self.segments > 1 {
            let pipeline = vec![
                doc! { "$match": self.filter.clone() },
                doc! { "$bucketAuto": { "groupBy": "$_id", "buckets": i64::from(self.segments) } },
            ];
            let buckets: Vec<Document> = coll.aggregate(pipeline).await?.try_collect().await?;
            bounds = buckets
                .iter()
                .filter_map(|b| b.get_document("_id").ok()?.get("min").cloned())
                .collect();
        }
        let parts: Vec<Part> = if bounds.len() < 2 {
            vec![Part::whole()]
        } else {
            // The first segment starts at the beginning (nothing is before
            // it), the last runs to the end (covers what is inserted later).
            (0..bounds.len())
                .map(|i| Part {
                    from: (i > 0).then(|| bounds[i].clone()),
                    to: bounds.get(i + 1).cloned(),
                    last: None,
                    done: 0,
                })
                .collect()
        };
        let layout = doc! {
            "direction": c.direction.as_str(),
            "collection": &self.collection,
            "parts": parts.iter().map(|p| Bson::Document(p.to_document())).collect::<Vec<_>>(),
            "at": bson::DateTime::now(),
        };
        let key = format!("checkpoints.{}", self.index);
        let written = c
            .tracking
            .update_one(c.claim.clone(), doc! { "$set": { key: layout } })
            .await?;
        if written.matched_count == 0 {
            return Err("this run lost the migration lock before its walk started".into());
        }
        Ok(parts)
    }
}

/// Why a segment stopped early.
enum Stop {
    /// The closure or the database failed.
    Failed(MigrationError),
    /// A stop, a lost lock, or another segment's failure.
    Because(&'static str),
}

impl<E: Into<MigrationError>> From<E> for Stop {
    fn from(e: E) -> Self {
        Stop::Failed(e.into())
    }
}

/// One segment of a walk: `_id` from `from` (inclusive) to `to`
/// (exclusive), done up to `last`.
#[derive(Debug, Clone)]
struct Part {
    from: Option<Bson>,
    to: Option<Bson>,
    last: Option<Bson>,
    done: u64,
}

impl Part {
    fn whole() -> Self {
        Part {
            from: None,
            to: None,
            last: None,
            done: 0,
        }
    }

    fn to_document(&self) -> Document {
        let mut d = doc! { "done": i64::try_from(self.done).unwrap_or(i64::MAX) };
        for (key, value) in [("from", &self.from), ("to", &self.to), ("lastId", &self.last)] {
            if let Some(v) = value {
                d.insert(key, v.clone());
            }
        }
        d
    }

    fn from_document(d: &Document) -> Self {
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
    fn filter(&self, filter: &Document) -> Document {
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

/// What the segments of one walk share.
struct Walk<'w, 'a, F> {
    batches: &'w Batches<'a>,
    coll: &'w Collection<Document>,
    f: &'w F,
    started: std::time::Instant,
    total: u64,
    /// Documents done per segment, earlier runs included.
    done: std::sync::Mutex<Vec<u64>>,
    /// Documents handed over in this run, all segments.
    handed: std::sync::atomic::AtomicU64,
    /// A segment failed: the others stop after their batch in flight.
    failed: std::sync::atomic::AtomicBool,
}

impl<F, Fut> Walk<'_, '_, F>
where
    F: Fn(Vec<Document>, Database) -> Fut + Sync,
    Fut: Future<Output = Result<(), MigrationError>> + Send,
{
    /// Walks segment `i`; its batches and documents, also when it stopped.
    async fn part(&self, i: usize, part: Part) -> Result<(u64, u64), (u64, u64, Stop)> {
        let (mut batches, mut documents) = (0, 0);
        match self.walk_part(i, part, &mut batches, &mut documents).await {
            Ok(()) => Ok((batches, documents)),
            Err(stop) => {
                if matches!(stop, Stop::Failed(_)) {
                    self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Err((batches, documents, stop))
            }
        }
    }

    async fn walk_part(&self, i: usize, mut part: Part, batches: &mut u64, documents: &mut u64) -> Result<(), Stop> {
        use std::sync::atomic::Ordering::SeqCst;
        let b = self.batches;
        let key = format!("checkpoints.{}.parts.{i}", b.index);
        // When the walk's last step (its start, then each checkpoint) came
        // back: a batch is handed over on the lease alone only shortly after.
        let mut since = std::time::Instant::now();
        loop {
            if let Some(c) = b.checkpoints {
                if c.stop.is_stopped() {
                    return Err(Stop::Because(STOPPED_ON_REQUEST));
                }
                // The rule of a migration's start, for each batch: a runner
                // paused since its last proof (a pause between batches, a
                // throttle's sleep) proves its lock before it reads on.
                proved(c.lock.ensure_lease().await)?;
            }
            if self.failed.load(SeqCst) {
                return Err(Stop::Because("another segment failed"));
            }
            let batch: Vec<Document> = self
                .coll
                .find(part.filter(&b.filter))
                .sort(doc! { "_id": 1 })
                .limit(b.size)
                .batch_size(u32::try_from(b.size).unwrap_or(u32::MAX))
                .await?
                .try_collect()
                .await?;
            let Some(end) = batch.last().and_then(|d| d.get("_id")).cloned() else {
                return Ok(());
            };
            // And once more with a round trip if the last checkpoint is not
            // recent: a runner paused since then (in a throttle's sleep, in
            // its range query) may have been fenced meanwhile. The time is
            // what tells, not only the SIGCONT flag: its handler can run
            // after this thread has resumed.
            if let Some(c) = b.checkpoints {
                proved(c.lock.ensure_live(since).await)?;
            }
            let n = batch.len() as u64;
            (self.f)(batch, b.db.clone()).await.map_err(Stop::Failed)?;
            *batches += 1;
            *documents += n;
            part.done += n;
            part.last = Some(end);
            let handed = self.handed.fetch_add(n, SeqCst) + n;
            tracing::info!(segment = i, documents = n, segment_done = part.done, "batch done");
            if let Some(c) = b.checkpoints {
                let point = doc! {
                    format!("{key}.lastId"): part.last.clone().unwrap_or(Bson::Null),
                    format!("{key}.done"): i64::try_from(part.done).unwrap_or(i64::MAX),
                    format!("checkpoints.{}.at", b.index): bson::DateTime::now(),
                };
                let written = c.tracking.update_one(c.claim.clone(), doc! { "$set": point }).await?;
                if written.matched_count == 0 {
                    return Err(Stop::Because("this run lost the migration lock"));
                }
                since = std::time::Instant::now();
                let done: u64 = {
                    let mut all = self.done.lock().expect("progress lock");
                    all[i] = part.done;
                    all.iter().sum()
                };
                if let Some(report) = &c.progress {
                    let secs = self.started.elapsed().as_secs_f64();
                    let per_second = if secs > 0.0 { (handed as f64 / secs) as u64 } else { 0 };
                    report(&Progress::Batch {
                        version: c.version,
                        done,
                        total: self.total.max(done),
                        per_second,
                        eta_secs: (per_second > 0).then(|| self.total.saturating_sub(done) / per_second),
                    });
                }
            }
            if (n as i64) < b.size {
                return Ok(());
            }
            if !b.pause.is_zero() {
                tokio::time::sleep(b.pause).await;
            }
            if let Some(rate) = b.max_rate {
                let due = std::time::Duration::from_secs_f64(handed as f64 / f64::from(rate));
                if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// A proof of the lock, as a segment's stop: a lost lock stops the walk,
/// any other error fails it.
fn proved(proof: Result<(), crate::Error>) -> Result<(), Stop> {
    match proof {
        Ok(()) => Ok(()),
        Err(crate::Error::LockLost { .. }) => Err(Stop::Because("this run lost the migration lock")),
        Err(e) => Err(Stop::Failed(e.into())),
    }
}

/// Why a walk stopped when the run was asked to stop.
const STOPPED_ON_REQUEST: &str = "stopped on request";

/// A walk that stopped between two batches (a stop request, a lost lock,
/// another segment's failure) with its checkpoint in place. A migration that
/// returns it because the run was asked to stop is recorded as stopped, not
/// failed, and the run reports where it stopped.
#[derive(Debug)]
pub(crate) struct WalkStopped {
    why: &'static str,
    /// The run was stopped ([`StopHandle`], Ctrl-C).
    pub(crate) on_request: bool,
    stats: BatchStats,
    /// Documents done, earlier runs included.
    pub(crate) done: u64,
    /// Documents the walk covers, when it counted them (with progress events).
    pub(crate) total: Option<u64>,
}

impl std::fmt::Display for WalkStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} after {} batches ({} documents, {} before this run); the next run resumes from the last checkpoint",
            self.why, self.stats.batches, self.stats.documents, self.stats.resumed
        )
    }
}

impl std::error::Error for WalkStopped {}

/// The segments and positions of this walk's last checkpoint, in this
/// direction over this collection.
async fn saved(c: &Checkpoints, index: usize, collection: &str) -> Result<Option<Vec<Part>>, MigrationError> {
    let record = c.tracking.find_one(c.claim.clone()).await?;
    let point = record
        .as_ref()
        .and_then(|r| r.get_document("checkpoints").ok())
        .and_then(|p| p.get_document(index.to_string()).ok());
    let Some(p) = point else { return Ok(None) };
    if p.get_str("direction") != Ok(c.direction.as_str()) || p.get_str("collection") != Ok(collection) {
        return Ok(None);
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
    Ok((!parts.is_empty()).then_some(parts))
}

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
async fn one_id_type(coll: &Collection<Document>, filter: &Document, name: &str) -> Result<(), MigrationError> {
    let end = |order: i32| async move {
        let first = coll
            .find_one(filter.clone())
            .sort(doc! { "_id": order })
            .projection(doc! { "_id": 1 })
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

#[cfg(test)]
mod tests {
    use super::Part;
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
}
