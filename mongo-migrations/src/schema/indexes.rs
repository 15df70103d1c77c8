//! Index changes that are safe on a live database: a build that adopts an
//! existing index of the same identity instead of building it twice, waits
//! for the voting members (so it resumes after a failover) and reports its
//! progress; and removal in two steps, hidden first, dropped later.

use std::time::Duration;

use bson::{doc, Document};
use futures_util::TryStreamExt as _;
use mongodb::Database;

use crate::schema::index::{find, is_hidden, Found, Index};
use crate::schema::shards::shard_indexes;
use crate::schema::SchemaError;
use crate::{Progress, Version};

/// Where a build's progress goes: to the events of migration `Version`.
pub type BuildProgress<'a> = (Version, &'a (dyn Fn(&Progress) + Send + Sync));

/// What [`ensure_index`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexOutcome {
    /// It built the index.
    Built {
        /// The index's name.
        name: String,
    },
    /// An index of the same identity and options was there, under this
    /// name: nothing was built.
    Adopted {
        /// The existing index's name.
        name: String,
    },
    /// The index was there, hidden when it should not be or the other way
    /// round: only that changed.
    Rehidden {
        /// The index's name.
        name: String,
        /// Whether it is hidden now.
        hidden: bool,
    },
}

/// The collection's indexes as `listIndexes` gives them; none when the
/// collection does not exist.
pub async fn list_indexes(db: &Database, collection: &str) -> Result<Vec<Document>, SchemaError> {
    let failed = |e| SchemaError::server("listing the indexes", collection, e);
    // The raw documents, every option as the server lists it; the driver
    // reads the cursor's further batches, if any.
    match db.run_cursor_command(doc! { "listIndexes": collection }).await {
        Ok(cursor) => cursor.try_collect().await.map_err(failed),
        // NamespaceNotFound: no collection, no indexes.
        Err(e) if server_code(&e) == Some(26) => Ok(Vec::new()),
        Err(e) => Err(failed(e)),
    }
}

/// Has `index` on `collection`: adopts an existing index of the same
/// identity (keys, collation, partial filter) under any name, refuses one
/// whose options differ, else builds it with `commitQuorum: "votingMembers"`
/// on a replica set, reporting the build's progress from `$currentOp` to
/// `progress` every second (as [`Progress::IndexBuild`]).
pub async fn ensure_index(
    db: &Database,
    collection: &str,
    index: &Index,
    progress: Option<BuildProgress<'_>>,
) -> Result<IndexOutcome, SchemaError> {
    match adopt(db, collection, index).await? {
        Some(outcome) => Ok(outcome),
        None => build(db, collection, index, &Build::reporting(progress)).await,
    }
}

/// How a build runs: where its progress goes, which members must finish it
/// (`commitQuorum`, on a replica set or sharded cluster), and how long it
/// is waited for.
#[derive(Clone, Copy)]
pub(crate) struct Build<'a> {
    pub(crate) progress: Option<BuildProgress<'a>>,
    pub(crate) quorum: crate::schema::CommitQuorum,
    /// `None`: as long as the build takes.
    pub(crate) wait: Option<Duration>,
}

impl<'a> Build<'a> {
    /// The defaults, with `progress`.
    pub(crate) fn reporting(progress: Option<BuildProgress<'a>>) -> Self {
        Build {
            progress,
            quorum: crate::schema::CommitQuorum::default(),
            wait: Some(crate::schema::DEFAULT_BUILD_WAIT),
        }
    }
}

/// Builds `index`, which [`adopt`] found missing (see [`ensure_index`]).
pub(crate) async fn build(
    db: &Database,
    collection: &str,
    index: &Index,
    how: &Build<'_>,
) -> Result<IndexOutcome, SchemaError> {
    let mut command = doc! { "createIndexes": collection, "indexes": [index.to_document()] };
    if replicated(db).await? {
        command.insert("commitQuorum", how.quorum.to_bson());
    }
    let build = create_indexes(db, command);
    let run = async {
        match how.progress {
            Some((version, report)) => {
                let name = index.name();
                let watch = watch_build(db, collection, &name, version, report);
                tokio::pin!(build, watch);
                tokio::select! {
                    r = &mut build => r,
                    never = &mut watch => match never {},
                }
            }
            None => build.await,
        }
    };
    let result = match how.wait {
        Some(wait) => match tokio::time::timeout(wait, run).await {
            Ok(result) => result,
            Err(_) => {
                return Err(SchemaError::BuildNotCommitted {
                    collection: collection.into(),
                    index: index.name(),
                    waited_secs: wait.as_secs(),
                    quorum: how.quorum.to_string(),
                })
            }
        },
        None => run.await,
    };
    match result {
        Ok(_) => Ok(IndexOutcome::Built { name: index.name() }),
        Err(e) => {
            // Built meanwhile by another runner (one killed during its build,
            // whose build went on in the server, or one racing this one).
            // Never through a `mongos`: it answers `listIndexes` from one
            // shard (the one owning the MinKey chunk,
            // `src/mongo/s/commands/cluster_list_indexes_cmd.cpp`), so a
            // build that failed on other shards would look done.
            if topology(db).await? != Topology::Mongos {
                if let Some(outcome) = adopt(db, collection, index).await? {
                    return Ok(outcome);
                }
            }
            Err(match server_code(&e) {
                Some(85 | 86) => SchemaError::Conflict {
                    collection: collection.into(),
                    index: index.name(),
                    message: e.to_string(),
                },
                _ => SchemaError::server("building the index", collection, e),
            })
        }
    }
}

/// How many times a `createIndexes` is sent over transient faults.
const BUILD_ATTEMPTS: u32 = 5;

/// Sends `command` (a `createIndexes`), again over a transient fault: a
/// build survives a stepdown in the server (since 4.4) while the command
/// that waited for it gets an error (`InterruptedDueToReplStateChange`,
/// a closed connection), and `listIndexes` does not list an unfinished
/// build. The same `createIndexes` sent again waits for the build in
/// progress, or answers that the index exists
/// (`src/mongo/db/commands/create_indexes_cmd.cpp`).
async fn create_indexes(db: &Database, command: Document) -> mongodb::error::Result<Document> {
    let mut attempt = 1;
    loop {
        match db.run_command(command.clone()).await {
            Err(e) if attempt < BUILD_ATTEMPTS && crate::transient::is_transient(&e) => {
                tracing::warn!(attempt, error = %e, "the index build's command was interrupted; sending it again");
                tokio::time::sleep(crate::transient::jitter(std::time::Duration::from_millis(500))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The outcome when the index is already there (a build that finished
/// after its runner was killed is adopted too); none when it must be built;
/// an error when another index has its name or its identity with other
/// options.
pub(crate) async fn adopt(db: &Database, collection: &str, index: &Index) -> Result<Option<IndexOutcome>, SchemaError> {
    let listed = list_indexes(db, collection).await?;
    let existing = match find(index, &listed) {
        Found::It(existing) => {
            if !built_on_every_shard(db, collection, existing).await? {
                return Ok(None);
            }
            existing
        }
        Found::Missing => return Ok(None),
        Found::NameTaken(taken) => {
            return Err(SchemaError::NameTaken {
                collection: collection.into(),
                name: index.name(),
                keys: taken.get_document("key").cloned().unwrap_or_default().to_string(),
            })
        }
        Found::OtherOptions(existing) => existing,
    };
    let name = existing.get_str("name").unwrap_or_default().to_string();
    let differences = index.differences(existing);
    if !differences.is_empty() {
        return Err(SchemaError::OptionsDiffer {
            collection: collection.into(),
            name,
            options: differences.join(", "),
        });
    }
    if is_hidden(existing) != index.hidden {
        set_hidden(db, collection, &name, index.hidden).await?;
        return Ok(Some(IndexOutcome::Rehidden {
            name,
            hidden: index.hidden,
        }));
    }
    Ok(Some(IndexOutcome::Adopted { name }))
}

/// Whether `listed` (one index of a listing) is built on every shard: on
/// anything but a `mongos`, yes; through one, whose listing is one shard's,
/// as `$indexStats` says per shard (see `shards.rs`). Where one lacks it,
/// it is built again: the shards that have it answer that it exists. Where
/// `$indexStats` cannot be read, the listing is trusted (logged).
async fn built_on_every_shard(db: &Database, collection: &str, listed: &Document) -> Result<bool, SchemaError> {
    if topology(db).await? != Topology::Mongos {
        return Ok(true);
    }
    let name = listed.get_str("name").unwrap_or_default();
    let Some(shards) = shard_indexes(db, collection).await else {
        return Ok(true);
    };
    let missing = shards.missing_on(name);
    if !missing.is_empty() {
        tracing::warn!(collection, index = name, missing_on = %missing.join(", "), "the index is not built on every shard; building it again where it is missing");
    }
    Ok(missing.is_empty())
}

/// What the server is, as its `hello` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topology {
    Standalone,
    ReplicaSet,
    /// A `mongos` router: `hello.msg` is `"isdbgrid"`
    /// (`src/mongo/s/commands/cluster_hello_cmd.cpp`).
    Mongos,
}

impl Topology {
    pub(crate) fn of(hello: &Document) -> Self {
        if hello.get_str("msg") == Ok("isdbgrid") {
            Topology::Mongos
        } else if hello.get_str("setName").is_ok() {
            Topology::ReplicaSet
        } else {
            Topology::Standalone
        }
    }
}

pub(crate) async fn topology(db: &Database) -> Result<Topology, SchemaError> {
    let hello = db
        .client()
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
        .map_err(|e| SchemaError::server("asking the server", "admin", e))?;
    Ok(Topology::of(&hello))
}

/// A replica set or a sharded cluster: `commitQuorum` applies.
async fn replicated(db: &Database) -> Result<bool, SchemaError> {
    Ok(topology(db).await? != Topology::Standalone)
}

/// Reports the build's progress every second; never ends.
async fn watch_build(
    db: &Database,
    collection: &str,
    name: &str,
    version: Version,
    report: &(dyn Fn(&Progress) + Send + Sync),
) -> std::convert::Infallible {
    let namespace = format!("{}.{collection}", db.name());
    let admin = db.client().database("admin");
    // This user's own operations (`allUsers: false` needs no `inprog`
    // privilege), matched by namespace: a long command is listed as
    // `command.$truncated` (the manual's `$currentOp`).
    let pipeline = vec![
        doc! { "$currentOp": { "allUsers": false, "idleConnections": false } },
        doc! { "$match": { "ns": &namespace, "progress": { "$exists": true } } },
    ];
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let ops: Result<Vec<Document>, _> = match admin.aggregate(pipeline.clone()).await {
            Ok(cursor) => cursor.try_collect().await,
            Err(e) => Err(e),
        };
        let ops = match ops {
            Ok(ops) => ops,
            Err(e) if crate::transient::is_transient(&e) => continue,
            Err(e) => {
                // Said once; the build goes on, without progress.
                tracing::warn!(collection, index = name, error = %e, "cannot read the index build's progress (`$currentOp`); the build goes on");
                return std::future::pending().await;
            }
        };
        if let Some((done, total)) = build_progress(&ops, collection) {
            tracing::info!(collection, index = name, done, total, "index build progress");
            report(&Progress::IndexBuild {
                version,
                collection: collection.to_string(),
                index: name.to_string(),
                done,
                total,
            });
        }
    }
}

/// The progress of the build on `collection`, from `$currentOp`'s
/// documents: mongod gives `progress: { done, total }` for the phase a
/// build is in; through a `mongos` there is one per shard (with `shard`),
/// summed here into one. A command listed whole must be this build's
/// `createIndexes`; one listed as `$truncated` is taken by its namespace.
fn build_progress(ops: &[Document], collection: &str) -> Option<(u64, u64)> {
    let count = |p: &Document, k| p.get(k).and_then(crate::schema::index_number).unwrap_or(0);
    let builds: Vec<(u64, u64)> = ops
        .iter()
        .filter(|o| {
            o.get_document("command")
                .is_ok_and(|c| c.get_str("createIndexes") == Ok(collection) || c.contains_key("$truncated"))
        })
        .filter_map(|o| o.get_document("progress").ok())
        .map(|p| (count(p, "done"), count(p, "total")))
        .collect();
    (!builds.is_empty()).then(|| builds.iter().fold((0, 0), |(d, t), (bd, bt)| (d + bd, t + bt)))
}

/// Hides the index named `name` from the query planner (it is still kept up
/// to date): the first step of removing it, in a pre-deploy migration. Old
/// code that needs it shows up as slow queries, and `unhide` is instant.
pub async fn hide_index(db: &Database, collection: &str, name: &str) -> Result<(), SchemaError> {
    set_hidden(db, collection, name, true).await
}

/// Makes a hidden index visible again.
pub async fn unhide_index(db: &Database, collection: &str, name: &str) -> Result<(), SchemaError> {
    set_hidden(db, collection, name, false).await
}

async fn set_hidden(db: &Database, collection: &str, name: &str, hidden: bool) -> Result<(), SchemaError> {
    let reply = db
        .run_command(doc! { "collMod": collection, "index": { "name": name, "hidden": hidden } })
        .await
        .map_err(|e| SchemaError::server("hiding or showing the index", collection, e))?;
    match read_hide_reply(&reply) {
        HideReply::Changed => return Ok(()),
        HideReply::ShardFailed(message) => {
            return Err(SchemaError::Server {
                what: "hiding or showing the index",
                collection: collection.into(),
                message,
            })
        }
        HideReply::Unsaid => {}
    }
    // mongod answers without `hidden_new` when the index already was as
    // asked: `listIndexes` says whether it is.
    let index = named(db, collection, name)
        .await?
        .ok_or_else(|| no_such_index(collection, name))?;
    if is_hidden(&index) == hidden {
        return Ok(());
    }
    // The server answered `ok` and left the index as it was. Only a server
    // known to do that is given the rebuild, never a unique index (writes
    // during the rebuild could insert duplicates), and never silently.
    let ignored = |reason| SchemaError::HideIgnored {
        collection: collection.into(),
        name: name.into(),
        reason,
    };
    if !ignores_hidden_collmod(db).await? {
        return Err(ignored(
            "this server is not one known to need the index rebuilt, so nothing was dropped or rebuilt",
        ));
    }
    if index.get_bool("unique") == Ok(true) {
        return Err(ignored(
            "SecantusDB ignores it, and a unique index is not rebuilt to hide it (writes during the rebuild could insert duplicates)",
        ));
    }
    rebuild_hidden(db, collection, &index, hidden).await
}

/// What a `collMod` reply says of the `hidden` flag it was asked to set.
#[derive(Debug, PartialEq)]
enum HideReply {
    /// The server set it: mongod answers `hidden_old` and `hidden_new`
    /// (`src/mongo/db/coll_mod_reply_validation.cpp`: both or neither); a
    /// `mongos` answers with each shard's reply under `raw`, every one `ok`.
    Changed,
    /// A shard under `raw` refused it: its words.
    ShardFailed(String),
    /// Neither: the index may already have been as asked, or the server
    /// ignored the command. Only `listIndexes` can tell.
    Unsaid,
}

fn read_hide_reply(reply: &Document) -> HideReply {
    if reply.contains_key("hidden_new") {
        return HideReply::Changed;
    }
    let Ok(shards) = reply.get_document("raw") else {
        return HideReply::Unsaid;
    };
    // An entry may carry no `ok` of its own (6.0 to 7.x, an unsharded
    // collection); one that says it failed is a refusal.
    let failed: Vec<String> = shards
        .iter()
        .filter_map(|(shard, r)| Some((shard, r.as_document()?)))
        .filter(|(_, r)| {
            r.contains_key("errmsg") || r.get("ok").is_some_and(|ok| crate::schema::index_number(ok) != Some(1))
        })
        .map(|(shard, r)| format!("{shard}: {}", r.get_str("errmsg").unwrap_or("refused")))
        .collect();
    match (shards.is_empty(), failed.is_empty()) {
        (true, _) => HideReply::Unsaid,
        (false, true) => HideReply::Changed,
        (false, false) => HideReply::ShardFailed(failed.join("; ")),
    }
}

/// Whether the server is one known to answer `collMod` of `hidden` with `ok`
/// and leave the index as it was: SecantusDB, which names itself in
/// `buildInfo` (`secantusVersion`, beside the MongoDB version it speaks).
async fn ignores_hidden_collmod(db: &Database) -> Result<bool, SchemaError> {
    let info = db
        .client()
        .database("admin")
        .run_command(doc! { "buildInfo": 1 })
        .await
        .map_err(|e| SchemaError::server("asking the server", "admin", e))?;
    Ok(info.get_str("secantusVersion").is_ok())
}

/// The fallback for a server that accepts `collMod` of `hidden` and ignores
/// it (SecantusDB 0.7, identified by `buildInfo`; mongod and mongos never get
/// here): the index is
/// dropped and built again as `listIndexes` gave it, with `hidden` set. On
/// such a server, and only there, queries go without the index for the
/// length of its rebuild.
async fn rebuild_hidden(db: &Database, collection: &str, listed: &Document, hidden: bool) -> Result<(), SchemaError> {
    let name = listed.get_str("name").unwrap_or_default().to_string();
    tracing::warn!(
        collection,
        index = %name,
        hidden,
        "the server ignored collMod of `hidden`: rebuilding the index with it"
    );
    let mut spec = spec_of(listed);
    spec.remove("hidden");
    if hidden {
        spec.insert("hidden", true);
    }
    let failed = |e| SchemaError::server("rebuilding the index hidden or shown", collection, e);
    db.run_command(doc! { "dropIndexes": collection, "index": &name })
        .await
        .map_err(failed)?;
    db.run_command(doc! { "createIndexes": collection, "indexes": [spec] })
        .await
        .map_err(failed)?;
    let index = named(db, collection, &name)
        .await?
        .ok_or_else(|| no_such_index(collection, &name))?;
    if is_hidden(&index) != hidden {
        return Err(SchemaError::Unsupported {
            collection: collection.into(),
            what: if hidden {
                "hiding an existing index"
            } else {
                "showing a hidden index"
            },
        });
    }
    Ok(())
}

/// Drops the index named `name`, the second step of removing it (in a
/// post-deploy migration, or a later release): only once it is hidden, so it
/// was seen unused. An index that is not there is already dropped.
pub async fn drop_hidden_index(db: &Database, collection: &str, name: &str) -> Result<(), SchemaError> {
    let Some(index) = named(db, collection, name).await? else {
        return Ok(());
    };
    if !is_hidden(&index) {
        return Err(SchemaError::NotHidden {
            collection: collection.into(),
            name: name.into(),
        });
    }
    drop_listed(db, collection, name).await
}

/// Drops the index named `name` at once: the rollback of a migration that
/// built it. An index that is not there is already dropped. To remove an
/// index old code may use, hide it first ([`hide_index`], [`drop_hidden_index`]).
pub async fn drop_index(db: &Database, collection: &str, name: &str) -> Result<(), SchemaError> {
    match named(db, collection, name).await? {
        Some(_) => drop_listed(db, collection, name).await,
        None => Ok(()),
    }
}

/// An index as `createIndexes` takes it, from its `listIndexes` document.
pub(crate) fn spec_of(listed: &Document) -> Document {
    let mut spec = listed.clone();
    for key in ["v", "ns"] {
        spec.remove(key);
    }
    spec
}

/// Drops the index `name`, which `listIndexes` has just listed.
pub(crate) async fn drop_listed(db: &Database, collection: &str, name: &str) -> Result<(), SchemaError> {
    db.run_command(doc! { "dropIndexes": collection, "index": name })
        .await
        .map(|_| ())
        .map_err(|e| SchemaError::server("dropping the index", collection, e))
}

/// The index of `collection` named `name`, as `listIndexes` lists it.
async fn named(db: &Database, collection: &str, name: &str) -> Result<Option<Document>, SchemaError> {
    let listed = list_indexes(db, collection).await?;
    Ok(listed.into_iter().find(|l| l.get_str("name") == Ok(name)))
}

fn no_such_index(collection: &str, name: &str) -> SchemaError {
    SchemaError::NoSuchIndex {
        collection: collection.into(),
        name: name.into(),
    }
}

/// Creates `collection` unless it exists.
pub async fn create_collection(db: &Database, collection: &str) -> Result<(), SchemaError> {
    match db.create_collection(collection).await {
        // NamespaceExists: there already.
        Err(e) if server_code(&e) != Some(48) => Err(SchemaError::server("creating the collection", collection, e)),
        _ => Ok(()),
    }
}

/// The server's error code, if the error has one.
fn server_code(e: &mongodb::error::Error) -> Option<i32> {
    match &*e.kind {
        mongodb::error::ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{build_progress, read_hide_reply, HideReply, Topology};
    use bson::doc;

    /// `hello` of a mongod replica set member, a standalone and a `mongos`
    /// (the manual's `hello` reference: `setName` for a member; `msg:
    /// "isdbgrid"` for a router, `src/mongo/s/commands/cluster_hello_cmd.cpp`).
    #[test]
    fn the_topology_is_read_off_hello() {
        let member = doc! { "isWritablePrimary": true, "setName": "rs0", "hosts": ["a:27017"], "ok": 1.0 };
        let standalone = doc! { "isWritablePrimary": true, "maxWireVersion": 21, "ok": 1.0 };
        let router = doc! { "isWritablePrimary": true, "msg": "isdbgrid", "maxWireVersion": 21, "ok": 1.0 };
        assert_eq!(Topology::of(&member), Topology::ReplicaSet);
        assert_eq!(Topology::of(&standalone), Topology::Standalone);
        assert_eq!(Topology::of(&router), Topology::Mongos);
    }

    /// `collMod` replies to `{index: {name, hidden}}` in mongodb/mongo:
    /// - mongod 6.0 to 8.0 names both values or neither
    ///   (`src/mongo/db/coll_mod_reply_validation.cpp`), neither for a hide of
    ///   a hidden index, a no-op (`src/mongo/db/catalog/coll_mod.cpp`,
    ///   `jstests/noPassthrough/collmod_index_noop.js`);
    /// - mongos passes on the primary shard's `_shardsvrCollMod` reply
    ///   (`src/mongo/s/commands/cluster_collection_mod_cmd.cpp`): in 6.0 to
    ///   7.x, for a sharded collection only `raw`, one entry per shard that
    ///   owns chunks keyed by its connection string (`appendRawResponses` in
    ///   `src/mongo/db/s/collmod_coordinator.cpp`,
    ///   `src/mongo/s/cluster_commands_helpers.cpp`); for an unsharded one the
    ///   values at the top and one `raw` entry without `ok`; in 8.0 the
    ///   values at the top and no `raw`; a shard's error is the whole reply's
    ///   (`ok: 0`), which the driver returns as an error;
    /// - SecantusDB 0.7.0b3 answers `{ok: 1.0}` and changes nothing (measured).
    #[test]
    fn a_hide_is_done_only_when_the_reply_says_so_for_every_shard() {
        let mongod = doc! { "hidden_old": false, "hidden_new": true, "ok": 1.0 };
        assert_eq!(read_hide_reply(&mongod), HideReply::Changed);
        // Already as asked (mongod), or ignored (SecantusDB): only a listing tells.
        assert_eq!(read_hide_reply(&doc! { "ok": 1.0 }), HideReply::Unsaid);
        let sharded = doc! {
            "raw": {
                "shard0/h1:27018,h2:27018": { "hidden_old": false, "hidden_new": true, "ok": 1.0 },
                "shard1/h3:27018,h4:27018": { "hidden_old": false, "hidden_new": true, "ok": 1 },
            },
            "ok": 1.0,
        };
        assert_eq!(read_hide_reply(&sharded), HideReply::Changed);
        let unsharded_7 = doc! {
            "hidden_old": false, "hidden_new": true,
            "raw": { "shard0/h1:27018,h2:27018": { "hidden_old": false, "hidden_new": true } },
            "ok": 1,
        };
        assert_eq!(read_hide_reply(&unsharded_7), HideReply::Changed);
        let entry_without_ok =
            doc! { "raw": { "shard0/h1:27018": { "hidden_old": false, "hidden_new": true } }, "ok": 1 };
        assert_eq!(read_hide_reply(&entry_without_ok), HideReply::Changed);
        // Not a shape any mongos version gives (a shard's error fails the
        // whole command), and still never read as done.
        let refused = doc! {
            "raw": {
                "shard0/h1:27018": { "hidden_old": false, "hidden_new": true, "ok": 1.0 },
                "shard1/h3:27018": { "ok": 0.0, "errmsg": "index not found with name [x]", "code": 27 },
            },
            "ok": 1.0,
        };
        assert_eq!(
            read_hide_reply(&refused),
            HideReply::ShardFailed("shard1/h3:27018: index not found with name [x]".into())
        );
        assert_eq!(read_hide_reply(&doc! { "raw": {}, "ok": 1.0 }), HideReply::Unsaid);
    }

    #[test]
    fn progress_is_read_from_current_op_and_summed_over_shards() {
        // As mongod 7's `$currentOp` lists a build scanning its collection
        // (the namespace already matched by the pipeline).
        let build = doc! { "op": "command", "ns": "shop.users", "command": { "createIndexes": "users", "indexes": [] },
        "msg": "Index Build: scanning collection Index Build: scanning collection: 41000/100000 41%",
        "progress": { "done": 41000, "total": 100000 } };
        assert_eq!(
            build_progress(std::slice::from_ref(&build), "users"),
            Some((41_000, 100_000))
        );
        assert_eq!(build_progress(&[], "users"), None);
        // Another collection's build is not this one's.
        let other = doc! { "command": { "createIndexes": "orders" }, "progress": { "done": 1, "total": 2 } };
        assert_eq!(build_progress(&[other], "users"), None);
        // Through a `mongos`: one per shard, summed; a long command truncated.
        let shard_a =
            doc! { "shard": "a", "command": { "createIndexes": "users" }, "progress": { "done": 10, "total": 50 } };
        let shard_b = doc! { "shard": "b", "command": { "$truncated": "{ createIndexes: \"users\", ..." },
        "progress": { "done": 20, "total": 60 } };
        assert_eq!(build_progress(&[shard_a, shard_b], "users"), Some((30, 110)));
    }
}
