//! The HTTP API against hostile callers: every route anonymously, with a
//! wrong token and with the right one; every body that is not an object of
//! the documented fields; bodies over the limit; tenants outside the set the
//! API was given. Nothing such a request does may run or read anything.

use crate::common::*;
use crate::http::{call, raw, serve, serve_api, TOKEN};
use mongo_migrations::http::{Api, Authorization};
use serde_json::{json, Value};

const READS: [&str; 4] = [
    "/migrations/status",
    "/migrations/history",
    "/migrations/lock",
    "/migrations/status?databases=x",
];
const WRITES: [(&str, &str); 3] = [
    ("/migrations/up", r#"{"dryRun": true}"#),
    ("/migrations/down", r#"{"dryRun": true}"#),
    ("/migrations/lock/release", r#"{"confirm": true}"#),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_the_token_but_ready_which_tells_only_counts() {
    let t = TestDb::new().await;
    t.foreign_lock("secret-host", 3, 60_000).await;
    let before = t.snapshot().await;
    let base = serve(&t, Authorization::bearer(TOKEN)).await;
    for (name, auth) in [
        ("anonymous", None),
        ("a wrong token", Some("Bearer nope")),
        ("another scheme", Some("Basic czNjcmV0LXQwa2Vu")),
    ] {
        for path in READS {
            let (code, body) = raw("GET", &format!("{base}{path}"), auth, None).await;
            assert_eq!(
                (code, body["error"]["kind"].as_str()),
                (401, Some("unauthorized")),
                "GET {path} {name}: {body}"
            );
            assert!(
                !body.to_string().contains("secret-host"),
                "GET {path} {name} leaked the holder: {body}"
            );
        }
        for (path, body) in WRITES {
            let (code, answer) = raw("POST", &format!("{base}{path}"), auth, Some(("application/json", body))).await;
            assert_eq!(code, 401, "POST {path} {name}: {answer}");
        }
        let (code, body) = raw("GET", &format!("{base}/migrations/ready"), auth, None).await;
        assert_eq!(code, 503, "{body}");
        assert_eq!(
            body,
            json!({ "ready": false, "pending": 3, "running": 0, "failed": 0 }),
            "ready {name}"
        );
    }
    assert_eq!(t.snapshot().await, before, "an unauthorised request changed something");
    // The right token, with the scheme in any case.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {TOKEN}");
        let (code, body) = raw("GET", &format!("{base}/migrations/lock"), Some(&auth), None).await;
        assert_eq!(code, 200, "{scheme}: {body}");
        assert_eq!(body["lock"]["holder"]["host"], "secret-host");
    }
    t.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_reads_are_an_explicit_choice_and_read_only_refuses_writes() {
    let t = TestDb::new().await;
    let open = serve_api(Api::new(t.migrator(three()), Authorization::read_only()).open_reads()).await;
    for path in &READS[..3] {
        let (code, body) = call("GET", &format!("{open}{path}"), None, None).await;
        assert_eq!(code, 200, "GET {path}: {body}");
    }
    let (code, body) = call("GET", &format!("{open}/migrations/ready"), None, None).await;
    assert_eq!(code, 503);
    assert_eq!(
        body["pending"].as_array().map(Vec::len),
        Some(3),
        "open reads show the versions: {body}"
    );
    for (path, body) in WRITES {
        let (code, answer) = raw(
            "POST",
            &format!("{open}{path}"),
            Some(&format!("Bearer {TOKEN}")),
            Some(("application/json", body)),
        )
        .await;
        assert_eq!(
            (code, answer["error"]["kind"].as_str()),
            (403, Some("forbidden")),
            "POST {path}"
        );
    }
    assert!(t.snapshot().await.is_empty());
    t.drop_db().await;
}

/// Arrays (which serde would read by position), scalars, `null`, unknown
/// fields and wrong types: each a 400 that names what was expected, and
/// never a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_objects_of_the_documented_fields_are_refused() {
    let t = TestDb::new().await;
    let base = serve(&t, Authorization::bearer(TOKEN)).await;
    let bad: [(&str, &str); 10] = [
        ("an array", "[]"),
        ("an array of a boolean", "[false]"),
        ("an array of true", "[true]"),
        ("an array of a number", "[3]"),
        ("a number", "3"),
        ("a string", "\"up\""),
        ("a boolean", "true"),
        ("null", "null"),
        ("an extra field", r#"{"dryRun": true, "force": 1}"#),
        ("not JSON", "{dryRun: true"),
    ];
    let wrong_types = [
        ("/migrations/up", r#"{"dryRun": "yes"}"#),
        ("/migrations/up", r#"{"to": "soon"}"#),
        ("/migrations/down", r#"{"steps": -1}"#),
        ("/migrations/down", r#"{"batch": 1}"#),
        ("/migrations/lock/release", r#"{"confirm": "true"}"#),
    ];
    let auth = format!("Bearer {TOKEN}");
    for (path, _) in WRITES {
        for (what, body) in bad {
            let (code, answer) = raw(
                "POST",
                &format!("{base}{path}"),
                Some(&auth),
                Some(("application/json", body)),
            )
            .await;
            assert_eq!(
                (code, answer["error"]["kind"].as_str()),
                (400, Some("usage")),
                "POST {path} with {what}: {answer}"
            );
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("expected a JSON object such as"),
                "POST {path} with {what}: {message}"
            );
        }
        let (code, answer) = raw(
            "POST",
            &format!("{base}{path}"),
            Some(&auth),
            Some(("text/plain", "{}")),
        )
        .await;
        assert_eq!(code, 415, "POST {path} as text: {answer}");
    }
    for (path, body) in wrong_types {
        let (code, answer) = raw(
            "POST",
            &format!("{base}{path}"),
            Some(&auth),
            Some(("application/json", body)),
        )
        .await;
        assert_eq!(code, 400, "POST {path} {body}: {answer}");
    }
    for query in [
        "status?bogus=1",
        "history?skip=abc",
        "history?limit=1&extra=2",
        "status?databases=a&databases=b",
    ] {
        let (code, answer) = call("GET", &format!("{base}/migrations/{query}"), Some(TOKEN), None).await;
        assert_eq!(code, 400, "GET {query}: {answer}");
    }
    assert!(t.snapshot().await.is_empty(), "a refused body ran or wrote something");
    t.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_a_413() {
    let t = TestDb::new().await;
    let base = serve(&t, Authorization::bearer(TOKEN)).await;
    let huge = format!(r#"{{"dryRun": true, "pad": "{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let (code, body) = raw(
        "POST",
        &format!("{base}/migrations/up"),
        Some(&format!("Bearer {TOKEN}")),
        Some(("application/json", &huge)),
    )
    .await;
    assert_eq!(code, 413, "{body}");
    assert!(t.snapshot().await.is_empty());
    t.drop_db().await;
}

/// `?databases=` names only the tenants the API was given, checked before
/// the server is asked: another tenant's state cannot be read, nor can a
/// caller probe which databases exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_outside_the_allowed_set_are_refused_without_a_read() {
    let t = TestDb::new().await;
    let other = TestDb::new().await;
    other.migrator(three()).up(Default::default()).await.unwrap();
    let listed = serve_api(Api::new(t.migrator(three()), Authorization::bearer(TOKEN)).tenants([t.name.clone()])).await;
    let prefix = t.name.clone();
    let by_prefix =
        serve_api(Api::new(t.migrator(three()), Authorization::bearer(TOKEN)).tenants_where(move |n| n == prefix))
            .await;
    let none = serve(&t, Authorization::bearer(TOKEN)).await;
    for base in [&listed, &by_prefix, &none] {
        for names in [
            other.name.clone(),
            format!("{},{}", t.name, other.name),
            "admin".into(),
            "bad$name/x".into(),
        ] {
            let (code, body): (u16, Value) = call(
                "GET",
                &format!("{base}/migrations/status?databases={names}"),
                Some(TOKEN),
                None,
            )
            .await;
            assert_eq!(
                (code, body["error"]["kind"].as_str()),
                (400, Some("usage")),
                "{names}: {body}"
            );
            assert!(!body.to_string().contains("applied"), "{names}: {body}");
        }
    }
    for base in [&listed, &by_prefix] {
        let (code, body) = call(
            "GET",
            &format!("{base}/migrations/status?databases={}", t.name),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body[0]["status"]["counts"]["pending"], 3);
    }
    t.drop_db().await;
    other.drop_db().await;
}
