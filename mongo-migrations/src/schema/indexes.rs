//! Index changes that are safe on a live database: a build that adopts an
//! existing index of the same identity instead of building it twice, waits
//! for the voting members (so it resumes after a failover) and reports its
//! progress; and removal in two steps, hidden first, dropped later.

use std::future::IntoFuture as _;
use std::time::Duration;

use bson::{doc, Document};
use futures_util::TryStreamExt as _;
use mongodb::Database;

use crate::schema::index::{is_hidden, Index};
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
/// on a replica set, reporting the build's progress from `currentOp` to
/// `progress` every second (as [`Progress::IndexBuild`]).
pub async fn ensure_index(
    db: &Database,
    collection: &str,
    index: &Index,
    progress: Option<BuildProgress<'_>>,
) -> Result<IndexOutcome, SchemaError> {
    match adopt(db, collection, index).await? {
        Some(outcome) => Ok(outcome),
        None => build(db, collection, index, progress).await,
    }
}

/// Builds `index`, which [`adopt`] found missing (see [`ensure_index`]).
pub(crate) async fn build(
    db: &Database,
    collection: &str,
    index: &Index,
    progress: Option<BuildProgress<'_>>,
) -> Result<IndexOutcome, SchemaError> {
    let mut command = doc! { "createIndexes": collection, "indexes": [index.to_document()] };
    if replicated(db).await? {
        command.insert("commitQuorum", "votingMembers");
    }
    let build = db.run_command(command).into_future();
    let result = match progress {
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
    };
    match result {
        Ok(_) => Ok(IndexOutcome::Built { name: index.name() }),
        Err(e) => {
            // Built meanwhile by another runner (one killed during its build,
            // whose build went on in the server, or one racing this one).
            if let Some(outcome) = adopt(db, collection, index).await? {
                return Ok(outcome);
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

/// The outcome when the index is already there (a build that finished
/// after its runner was killed is adopted too); none when it must be built;
/// an error when another index has its name or its identity with other
/// options.
pub(crate) async fn adopt(db: &Database, collection: &str, index: &Index) -> Result<Option<IndexOutcome>, SchemaError> {
    let listed = list_indexes(db, collection).await?;
    let Some(existing) = listed.iter().find(|l| index.is(l)) else {
        if let Some(taken) = listed.iter().find(|l| l.get_str("name") == Ok(&index.name())) {
            return Err(SchemaError::NameTaken {
                collection: collection.into(),
                name: index.name(),
                keys: taken.get_document("key").cloned().unwrap_or_default().to_string(),
            });
        }
        return Ok(None);
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

/// A replica set or a sharded cluster: `commitQuorum` applies.
async fn replicated(db: &Database) -> Result<bool, SchemaError> {
    let hello = db
        .client()
        .database("admin")
        .run_command(doc! { "hello": 1 })
        .await
        .map_err(|e| SchemaError::server("asking the server", "admin", e))?;
    Ok(hello.get_str("setName").is_ok() || hello.get_str("msg") == Ok("isdbgrid"))
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
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let ops = db
            .client()
            .database("admin")
            .run_command(doc! { "currentOp": true, "ns": &namespace, "command.createIndexes": collection })
            .await;
        let Ok(ops) = ops else { continue };
        for (done, total) in build_progress(&ops, collection) {
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

/// The progress of each index build on `collection` in a `currentOp`
/// reply: mongod gives `progress: { done, total }` for the phase a build is
/// in. Filtered here too: a server may list other operations.
fn build_progress(current_op: &Document, collection: &str) -> Vec<(u64, u64)> {
    let count = |p: &Document, k| p.get(k).and_then(crate::schema::index_number).unwrap_or(0);
    current_op
        .get_array("inprog")
        .map(|ops| {
            ops.iter()
                .filter_map(|o| o.as_document())
                .filter(|o| {
                    o.get_document("command")
                        .is_ok_and(|c| c.get_str("createIndexes") == Ok(collection))
                })
                .filter_map(|o| o.get_document("progress").ok())
                .map(|p| (count(p, "done"), count(p, "total")))
                .collect()
        })
        .unwrap_or_default()
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
    // mongod answers with `hidden_old` and `hidden_new` (or nothing to
    // change). A server that answers `ok` without them is asked again
    // through `listIndexes`: SecantusDB 0.7 accepts the command and leaves
    // the index as it was, which must not pass for a hidden index.
    if reply.contains_key("hidden_new") {
        return Ok(());
    }
    let index = named(db, collection, name)
        .await?
        .ok_or_else(|| no_such_index(collection, name))?;
    if is_hidden(&index) == hidden {
        return Ok(());
    }
    rebuild_hidden(db, collection, &index, hidden).await
}

/// The fallback for a server that accepts `collMod` of `hidden` and ignores
/// it (SecantusDB 0.7; mongod 4.4 and later never gets here): the index is
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
    let mut spec = listed.clone();
    for key in ["v", "ns", "hidden"] {
        spec.remove(key);
    }
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

/// Drops the index `name`, which `listIndexes` has just listed.
async fn drop_listed(db: &Database, collection: &str, name: &str) -> Result<(), SchemaError> {
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
    use super::build_progress;
    use bson::doc;

    #[test]
    fn progress_is_read_from_mongod_s_current_op() {
        // As mongod 7 reports a build scanning its collection.
        let reply = doc! { "inprog": [
            { "op": "command", "ns": "shop.users", "command": { "createIndexes": "users", "indexes": [] },
              "msg": "Index Build: scanning collection Index Build: scanning collection: 41000/100000 41%",
              "progress": { "done": 41000, "total": 100000 } },
            { "op": "command", "command": { "createIndexes": "orders" }, "progress": { "done": 1, "total": 2 } },
            { "op": "query", "command": { "find": "users" } },
        ], "ok": 1 };
        assert_eq!(build_progress(&reply, "users"), [(41_000, 100_000)]);
        assert!(build_progress(&doc! { "inprog": [] }, "users").is_empty());
    }
}
