//! Bad URIs and unreachable servers get clear errors.

use mongo_migrations::{connect, Config, Error, Migrator, Registry};

#[tokio::test]
async fn a_malformed_uri_is_reported_as_such() {
    let err = connect("mongo://127.0.0.1:27017/db", None).await.unwrap_err();
    assert!(matches!(err, Error::InvalidUri { .. }), "{err}");
    assert!(err.to_string().contains("invalid MongoDB URI"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_reported_as_such() {
    // Port 9 (discard) on loopback: nothing listens there.
    let err = connect("mongodb://127.0.0.1:9/db?serverSelectionTimeoutMS=300", None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    // One plain line: no topology dump.
    assert_eq!(err.to_string(), "cannot reach 127.0.0.1:9: connection refused");
}

#[tokio::test]
async fn a_server_that_answers_but_not_as_the_uri_expects_is_told_apart() {
    let uri = crate::common::uri();
    let (host, _) = uri.trim_start_matches("mongodb://").split_once('/').unwrap();
    let wrong = format!("mongodb://{host}/db?replicaSet=not-this-one&serverSelectionTimeoutMS=500");
    let err = connect(&wrong, None).await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot reach {host}: no usable server within 500 ms"))
            && text.contains("replicaSet"),
        "{text}"
    );
}

#[tokio::test]
async fn a_missing_database_name_is_reported() {
    let uri = crate::common::uri();
    let err = Migrator::connect(&uri, None, Registry::default(), Config::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MissingDatabase), "{err}");
}

#[tokio::test]
async fn the_database_comes_from_the_uri_path() {
    let uri = crate::common::uri().replacen("/?", "/from_path?", 1);
    let (_, name) = connect(&uri, None).await.unwrap();
    assert_eq!(name, "from_path");
}
