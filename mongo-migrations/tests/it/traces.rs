//! `tracing` spans and events, captured by a test subscriber.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::common::*;
use mongo_migrations::bson::{doc, Document};
use mongo_migrations::{
    BoxFuture, Config, Migration, MigrationContext, MigrationResult, Migrator, Registry, UpOptions,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

type Fields = BTreeMap<String, String>;

/// A span or an event as captured: its name (an event's message) and fields,
/// and for an event the names of the spans around it, innermost first.
#[derive(Debug, Clone)]
struct Captured {
    name: String,
    fields: Fields,
    parents: Vec<String>,
}

#[derive(Default, Clone)]
struct Capture {
    spans: Arc<Mutex<BTreeMap<u64, Captured>>>,
    events: Arc<Mutex<Vec<Captured>>>,
}

struct Fieldset<'a>(&'a mut Fields);

impl Visit for Fieldset<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut fields = Fields::new();
        attrs.record(&mut Fieldset(&mut fields));
        let span = Captured {
            name: attrs.metadata().name().to_string(),
            fields,
            parents: Vec::new(),
        };
        self.spans.lock().unwrap().insert(id.into_u64(), span);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fieldset(&mut span.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Fieldset(&mut fields));
        let name = fields.remove("message").unwrap_or_default();
        let parents = ctx
            .event_scope(event)
            .map(|scope| scope.map(|s| s.name().to_string()).collect())
            .unwrap_or_default();
        self.events.lock().unwrap().push(Captured { name, fields, parents });
    }
}

impl Capture {
    fn spans_named(&self, name: &str) -> Vec<Captured> {
        self.spans
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }
    fn events_named(&self, name: &str) -> Vec<Captured> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.name == name)
            .cloned()
            .collect()
    }
}

fn walk(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        ctx.batches("items", doc! {})
            .size(2)
            .update_each(|_| Some(doc! { "$set": { "seen": true } }))
            .await?;
        Ok(())
    })
}

/// Frees the lock under its own run: the run's next write is fenced.
fn unlock_under_me(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let db = ctx.db()?;
        let other = Migrator::new(db.client().clone(), db.name(), Registry::default(), Config::default());
        other.force_unlock(true).await?;
        Ok(())
    })
}

/// Runs [`traced_run`] alone in a child process. `tracing` caches per call
/// site whether anyone listens; a call site first reached by another test's
/// thread while this one installs its subscriber can stay cached as
/// unheard (seen once in CI), so the capture gets a process of its own.
#[test]
fn runs_migrations_the_lock_and_batches_emit_spans_and_events_with_fields() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "traces::traced_run",
            "--exact",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the traced run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A subscriber set for this thread sees every span of a run on a
/// current-thread runtime. Run by the test above, in a process of its own.
#[test]
#[ignore = "run in a child process by runs_migrations_the_lock_and_batches_emit_spans_and_events_with_fields"]
fn traced_run() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let t = TestDb::new().await;
        let items: Vec<Document> = (0..5_i64).map(|i| doc! { "_id": i }).collect();
        t.db().collection::<Document>("items").insert_many(items).await.unwrap();
        let migrations = vec![
            reversible("20260101000000", "first"),
            Migration::new(v("20260102000000"), "walk", walk),
        ];
        t.migrator(migrations.clone()).up(UpOptions::default()).await.unwrap();

        let runs = capture.spans_named("mongo_migrations.run");
        assert_eq!(runs.len(), 1, "{runs:?}");
        let run = &runs[0].fields;
        assert_eq!(
            (run["direction"].as_str(), run["database"].as_str()),
            ("up", t.name.as_str())
        );
        assert_eq!((run["batch"].as_str(), run["dry_run"].as_str()), ("1", "false"));

        let migrations_spans = capture.spans_named("mongo_migrations.migration");
        let versions: Vec<&str> = migrations_spans.iter().map(|s| s.fields["version"].as_str()).collect();
        assert_eq!(versions, ["20260101000000", "20260102000000"]);
        assert_eq!(migrations_spans[1].fields["name"], "walk");
        assert_eq!(migrations_spans[1].fields["transactional"], "false");

        let acquired = capture.events_named("lock acquired");
        assert_eq!(acquired.len(), 1);
        assert_eq!(acquired[0].fields["generation"], "1");
        assert_eq!(acquired[0].parents, ["mongo_migrations.run"]);
        assert_eq!(capture.events_named("lock released").len(), 1);

        let done = capture.events_named("migration done");
        assert_eq!(done.len(), 2);
        assert!(done.iter().all(|e| e.fields.contains_key("duration_ms")));
        assert_eq!(done[0].parents, ["mongo_migrations.migration", "mongo_migrations.run"]);

        let batches = capture.events_named("batch done");
        let sizes: Vec<&str> = batches.iter().map(|e| e.fields["documents"].as_str()).collect();
        assert_eq!(sizes, ["2", "2", "1"]);
        assert!(batches.iter().all(|e| e.parents[0] == "mongo_migrations.migration"));
        assert_eq!(capture.events_named("run done")[0].fields["steps"], "2");

        // Waiting for another runner's lock, then losing the lock.
        t.db()
            .collection::<Document>("migration_locks")
            .delete_many(doc! {})
            .await
            .unwrap();
        t.foreign_lock("elsewhere", 7, 300).await;
        let mut all = migrations;
        all.push(Migration::new(v("20260103000000"), "unlock", unlock_under_me));
        let waiting = Migrator::new(
            t.client.clone(),
            &t.name,
            Registry::new(all).unwrap(),
            Config::default(),
        )
        .with_lock_wait(std::time::Duration::from_secs(10));
        let err = waiting.up(UpOptions::default()).await.unwrap_err();
        assert!(matches!(err, mongo_migrations::Error::LockLost { .. }), "{err:?}");
        let waited = capture.events_named("waiting for the lock");
        assert_eq!(waited.len(), 1);
        assert!(waited[0].fields["holder"].contains("elsewhere"), "{waited:?}");
        let lost = capture.events_named("lock lost");
        assert_eq!(lost.len(), 1, "{lost:?}");
        let failed = capture.events_named("run failed");
        assert_eq!(failed.len(), 1);
        assert!(failed[0].fields["kind"].contains("Failed"), "{failed:?}");
        t.drop_db().await;
    });
}
