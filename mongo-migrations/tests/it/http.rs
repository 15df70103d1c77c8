//! The HTTP API over real HTTP, against the test server.

use crate::common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mongo_migrations::http::{Api, Authorization};
use serde_json::{json, Value};

pub(crate) const TOKEN: &str = "s3cret-t0ken";

/// Serves the API on a free loopback port; returns its base URL.
pub(crate) async fn serve(t: &TestDb, auth: Authorization) -> String {
    serve_api(Api::new(t.migrator(three()), auth)).await
}

/// Serves `api` on a free loopback port; returns its base URL.
pub(crate) async fn serve_api(api: Api) -> String {
    let app = api.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

pub(crate) async fn call(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let body = body.map(|b| b.to_string());
    raw(
        method,
        url,
        auth.as_deref(),
        body.as_deref().map(|b| ("application/json", b)),
    )
    .await
}

/// A request with the `Authorization` header and `(content type, body)` as given.
pub(crate) async fn raw(
    method: &str,
    url: &str,
    authorization: Option<&str>,
    body: Option<(&str, &str)>,
) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = hyper::Request::builder().method(method).uri(url);
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let bytes = match body {
        Some((kind, b)) => {
            req = req.header("content-type", kind);
            Bytes::from(b.to_string())
        }
        None => Bytes::new(),
    };
    let response = client.request(req.body(Full::new(bytes)).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let value =
        serde_json::from_slice(&body).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    (status, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_up_history_down_and_lock_over_http() {
    let t = TestDb::new().await;
    let base = serve(&t, Authorization::bearer(TOKEN)).await;

    let (code, status) = call("GET", &format!("{base}/migrations/status"), Some(TOKEN), None).await;
    assert_eq!(code, 200);
    assert_eq!(status["counts"]["pending"], 3);
    assert_eq!(status["lock"], Value::Null);

    let (code, plan) = call(
        "POST",
        &format!("{base}/migrations/up"),
        Some(TOKEN),
        Some(json!({ "dryRun": true })),
    )
    .await;
    assert_eq!(code, 200, "{plan}");
    assert_eq!(plan["dryRun"], true);
    assert_eq!(plan["steps"].as_array().unwrap().len(), 3);
    assert!(t.snapshot().await.is_empty(), "dry-run over HTTP wrote something");

    let (code, run) = call(
        "POST",
        &format!("{base}/migrations/up"),
        Some(TOKEN),
        Some(json!({ "to": 20260102000000_u64 })),
    )
    .await;
    assert_eq!(code, 200, "{run}");
    let names: Vec<&str> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(run["steps"][0]["batch"], 1);

    let (code, history) = call(
        "GET",
        &format!("{base}/migrations/history?status=completed&limit=1&skip=1"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 200, "{history}");
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(history[0]["status"], "completed");

    let (code, down) = call(
        "POST",
        &format!("{base}/migrations/down"),
        Some(TOKEN),
        Some(json!({ "batch": true })),
    )
    .await;
    assert_eq!(code, 200, "{down}");
    assert_eq!(down["steps"].as_array().unwrap().len(), 2);
    assert!(t.docs("effects").await.is_empty());

    let (code, lock) = call("GET", &format!("{base}/migrations/lock"), Some(TOKEN), None).await;
    assert_eq!((code, &lock["lock"]), (200, &Value::Null));
    t.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_authorisation_and_bad_input_is_a_400() {
    let t = TestDb::new().await;
    let base = serve(&t, Authorization::bearer(TOKEN)).await;
    let up = format!("{base}/migrations/up");

    let (code, body) = call("POST", &up, None, Some(json!({}))).await;
    assert_eq!((code, body["error"]["kind"].as_str()), (401, Some("unauthorized")));
    let (code, _) = call("POST", &up, Some("wrong"), Some(json!({}))).await;
    assert_eq!(code, 401);
    let (code, _) = call(
        "POST",
        &format!("{base}/migrations/lock/release"),
        None,
        Some(json!({ "confirm": true })),
    )
    .await;
    assert_eq!(code, 401);
    assert!(
        t.snapshot().await.is_empty(),
        "an unauthorised request changed something"
    );

    let (code, body) = call("POST", &up, Some(TOKEN), Some(json!({ "to": 123 }))).await;
    assert_eq!(code, 400, "{body}");
    // A typo must not turn a dry-run into a real run.
    for typo in [json!({ "dryrun": true }), json!({ "bogus": 1 })] {
        let (code, body) = call("POST", &up, Some(TOKEN), Some(typo.clone())).await;
        assert_eq!(code, 400, "{typo}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("unknown field"),
            "{body}"
        );
    }
    assert!(
        t.docs("effects").await.is_empty(),
        "a request with a typo applied migrations"
    );
    let (code, body) = call("POST", &up, Some(TOKEN), Some(json!({ "to": 20270101000000_u64 }))).await;
    assert_eq!((code, body["error"]["kind"].as_str()), (400, Some("usage")), "{body}");
    let (code, body) = call(
        "POST",
        &format!("{base}/migrations/down"),
        Some(TOKEN),
        Some(json!({ "steps": 1, "batch": true })),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = call(
        "GET",
        &format!("{base}/migrations/history?status=done"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 400, "{body}");
    // Every status is a valid filter, `planned` among them, and the error lists them all.
    assert!(
        body.to_string()
            .contains("expected planned, running, completed, failed or rolled-back"),
        "{body}"
    );
    for status in ["planned", "running", "completed", "failed", "rolled-back"] {
        let url = format!("{base}/migrations/history?status={status}");
        let (code, body) = call("GET", &url, Some(TOKEN), None).await;
        assert_eq!(code, 200, "{status}: {body}");
    }
    let (code, body) = call("GET", &format!("{base}/migrations/history?limit=-1"), Some(TOKEN), None).await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = call(
        "POST",
        &format!("{base}/migrations/lock/release"),
        Some(TOKEN),
        Some(json!({ "confirm": false })),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(t.snapshot().await.is_empty(), "a rejected request changed something");

    let read_only = serve(&t, Authorization::read_only()).await;
    let (code, body) = call(
        "POST",
        &format!("{read_only}/migrations/up"),
        Some(TOKEN),
        Some(json!({})),
    )
    .await;
    assert_eq!((code, body["error"]["kind"].as_str()), (403, Some("forbidden")));

    let custom = serve(&t, Authorization::check(|h| h.get("x-admin").is_some())).await;
    let (code, _) = call(
        "POST",
        &format!("{custom}/migrations/up"),
        Some(TOKEN),
        Some(json!({ "dryRun": true })),
    )
    .await;
    assert_eq!(code, 401);
    t.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_is_a_409_and_release_needs_confirmation() {
    let t = TestDb::new().await;
    let base = serve(&t, Authorization::bearer(TOKEN)).await;
    t.foreign_lock("deploy-1", 1, 60_000).await;
    let (code, body) = call("POST", &format!("{base}/migrations/up"), Some(TOKEN), Some(json!({}))).await;
    assert_eq!((code, body["error"]["kind"].as_str()), (409, Some("locked")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("deploy-1"));

    let (code, lock) = call("GET", &format!("{base}/migrations/lock"), Some(TOKEN), None).await;
    assert_eq!(code, 200);
    assert_eq!(lock["lock"]["holder"]["host"], "deploy-1");

    let (code, released) = call(
        "POST",
        &format!("{base}/migrations/lock/release"),
        Some(TOKEN),
        Some(json!({ "confirm": true })),
    )
    .await;
    assert_eq!(code, 200, "{released}");
    assert_eq!(released["lock"]["holder"]["host"], "deploy-1");
    let (code, run) = call("POST", &format!("{base}/migrations/up"), Some(TOKEN), Some(json!({}))).await;
    assert_eq!(code, 200, "{run}");
    t.drop_db().await;
}

/// A readiness probe: 503 while migrations of the binary's phase are
/// pending, 200 once they are applied. Anonymous probes get counts only;
/// an authorised call gets the versions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_answers_503_until_the_migrations_are_applied() {
    let t = TestDb::new().await;
    let base = serve(&t, Authorization::bearer(TOKEN)).await;
    let (code, body) = call("GET", &format!("{base}/migrations/ready"), None, None).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body, json!({ "ready": false, "pending": 3, "running": 0, "failed": 0 }));
    let (code, body) = call("GET", &format!("{base}/migrations/ready"), Some(TOKEN), None).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["pending"].as_array().unwrap().len(), 3);
    t.migrator(three()).up(Default::default()).await.unwrap();
    let (code, body) = call("GET", &format!("{base}/migrations/ready"), Some(TOKEN), None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["phase"], "pre-deploy");
    let (code, body) = call("GET", &format!("{base}/migrations/ready"), None, None).await;
    assert_eq!(
        (code, body),
        (200, json!({ "ready": true, "pending": 0, "running": 0, "failed": 0 }))
    );
    t.drop_db().await;
}

/// `?databases=` reports each tenant database the API was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_per_tenant_database() {
    let t = TestDb::new().await;
    let other = TestDb::new().await;
    let api = Api::new(t.migrator(three()), Authorization::bearer(TOKEN)).tenants([t.name.clone(), other.name.clone()]);
    let base = serve_api(api).await;
    other.migrator(three()).up(Default::default()).await.unwrap();
    let url = format!("{base}/migrations/status?databases={},{}", t.name, other.name);
    let (code, body) = call("GET", &url, Some(TOKEN), None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body[0]["database"], t.name.as_str());
    assert_eq!(body[0]["status"]["counts"]["pending"], 3);
    assert_eq!(body[1]["status"]["counts"]["applied"], 3);
    let (code, _) = call(
        "GET",
        &format!("{base}/migrations/status?databases=,"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(code, 400);
    t.drop_db().await;
    other.drop_db().await;
}
