//! Connecting, and what the server can do.

use std::time::Duration;

use bson::{doc, Document};
use mongodb::options::{ClientOptions, CollectionOptions, ReadConcern, WriteConcern};
use mongodb::{Client, Database};

use crate::Error;

/// The lock and the tracking records must survive a failover: a lock write
/// acknowledged by one member only could be rolled back, and two runners
/// would then both hold the lock. Majority writes and reads prevent that.
pub(crate) fn durable(db: &Database, name: &str) -> mongodb::Collection<Document> {
    let options = CollectionOptions::builder()
        .write_concern(WriteConcern::majority())
        .read_concern(ReadConcern::majority())
        .build();
    db.collection_with_options(name, options)
}

/// Parses the URI, connects, and pings. Returns the client and database name.
pub async fn connect(uri: &str, database: Option<&str>) -> Result<(Client, String), Error> {
    let mut options = ClientOptions::parse(uri)
        .await
        .map_err(|source| Error::InvalidUri { source })?;
    // The driver waits 30 s by default; a CLI user should hear sooner.
    options.server_selection_timeout.get_or_insert(Duration::from_secs(10));
    options.app_name.get_or_insert_with(|| "mongo-migrate".into());
    let name = database
        .map(str::to_string)
        .or_else(|| options.default_database.clone())
        .filter(|n| !n.is_empty())
        .ok_or(Error::MissingDatabase)?;
    let client = Client::with_options(options).map_err(|source| Error::InvalidUri { source })?;
    match client.database(&name).run_command(doc! { "ping": 1 }).await {
        Ok(_) => Ok((client, name)),
        Err(source) if matches!(*source.kind, mongodb::error::ErrorKind::ServerSelection { .. }) => {
            Err(Error::Unreachable { source })
        }
        Err(e) => Err(e.into()),
    }
}

/// Replica set members and mongos routers support transactions; standalone servers do not.
pub async fn supports_transactions(client: &Client) -> Result<bool, Error> {
    let hello: Document = client.database("admin").run_command(doc! { "hello": 1 }).await?;
    let replica_set = hello.get_str("setName").is_ok();
    let mongos = hello.get_str("msg") == Ok("isdbgrid");
    let sessions = hello.contains_key("logicalSessionTimeoutMinutes");
    Ok((replica_set || mongos) && sessions)
}
