//! A database several releases behind catches up with `up --phase pre`
//! then `up --phase post` and no `resolve`: each release is what `diff
//! --with-data` writes (a pre-deploy module that stages the release's
//! validator, a post-deploy data fix, a post-deploy module that enforces
//! it). The older releases' enforcements are superseded by the newer
//! staged validator and skipped; only the newest is enforced, after every
//! data fix ran.
//!
//! Release `i` renames the field `f{i-1}` to `f{i}` and requires `f{i}`;
//! release 0 requires `f0`.

use crate::common::*;
use mongo_migrations::bson::{doc, Document};
use mongo_migrations::schema::ValidationLevel;
use mongo_migrations::{BoxFuture, Migration, MigrationContext, MigrationResult, Phase, UpOptions};

/// The releases after release 0.
const HEAD: usize = 3;

fn shape(i: usize) -> Document {
    let field = format!("f{i}");
    doc! { "bsonType": "object", "required": [&field], "properties": { field: { "bsonType": "string" } } }
}

/// The release a migration belongs to, read off its version's minutes
/// (`202601010{i}0000` and the seconds after it).
fn release(ctx: &MigrationContext) -> usize {
    (ctx.version().as_u64() / 10_000 % 100) as usize
}

fn stage(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let i = release(ctx);
        ctx.stage_validator("users", &shape(i), ValidationLevel::Strict).await
    })
}

fn fix(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let i = release(ctx);
        let (old, new) = (format!("f{}", i - 1), format!("f{i}"));
        ctx.db()?
            .collection::<Document>("users")
            .update_many(doc! { &old: { "$exists": true } }, doc! { "$rename": { &old: &new } })
            .await?;
        Ok(())
    })
}

fn enforce(ctx: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
    Box::pin(async move {
        let i = release(ctx);
        ctx.enforce_validator("users", &shape(i), ValidationLevel::Strict).await
    })
}

/// Releases 0 to `last`, as a registry: release 0 stages and enforces `f0`
/// (no data before it); each later one is pre, data fix, post.
fn releases(last: usize) -> Vec<Migration> {
    let mut all = Vec::new();
    for i in 0..=last {
        let at = |second: u64| v(&format!("202601010{i}00{second:02}"));
        all.push(Migration::new(at(0), format!("release_{i}"), stage));
        if i > 0 {
            all.push(Migration::new(at(5), format!("release_{i}_data"), fix).in_phase(Phase::PostDeploy));
        }
        all.push(Migration::new(at(10), format!("release_{i}_post_deploy"), enforce).in_phase(Phase::PostDeploy));
    }
    all
}

async fn phase(t: &TestDb, last: usize, phase: Phase) {
    let options = UpOptions {
        phase: Some(phase),
        ..UpOptions::default()
    };
    t.migrator(releases(last)).up(options).await.unwrap();
}

/// The validator of `users` and its action.
async fn validator(t: &TestDb) -> (Document, String) {
    let listed = t
        .db()
        .run_command(doc! { "listCollections": 1, "filter": { "name": "users" } })
        .await
        .unwrap();
    let options = listed.get_document("cursor").unwrap().get_array("firstBatch").unwrap()[0]
        .as_document()
        .unwrap()
        .get_document("options")
        .unwrap()
        .clone();
    (
        options
            .get_document("validator")
            .unwrap()
            .get_document("$jsonSchema")
            .unwrap()
            .clone(),
        options.get_str("validationAction").unwrap_or("error").to_string(),
    )
}

#[tokio::test]
async fn a_database_one_two_or_three_releases_behind_reaches_the_head_in_two_phases() {
    for at in 0..HEAD {
        let t = TestDb::new().await;
        let users = t.db().collection::<Document>("users");
        // The database as release `at` left it, with documents that each
        // release's code wrote on the way (the older ones fixed since).
        for i in 0..=at {
            phase(&t, i, Phase::PreDeploy).await;
            users
                .insert_one(doc! { format!("f{i}"): format!("written by release {i}") })
                .await
                .unwrap();
            phase(&t, i, Phase::PostDeploy).await;
        }
        assert_eq!(validator(&t).await, (shape(at), "error".to_string()), "at release {at}");
        // The deploy of the head: before it, then after it.
        phase(&t, HEAD, Phase::PreDeploy).await;
        users
            .insert_one(doc! { format!("f{at}"): "written by the old code during the deploy" })
            .await
            .unwrap();
        phase(&t, HEAD, Phase::PostDeploy).await;
        assert_eq!(
            validator(&t).await,
            (shape(HEAD), "error".to_string()),
            "from release {at}"
        );
        let docs = t.docs("users").await;
        assert_eq!(docs.len(), at + 2);
        let field = format!("f{HEAD}");
        assert!(
            docs.iter().all(|d| d.get_str(&field).is_ok() && d.len() == 2),
            "from release {at}: {docs:?}"
        );
        // Every migration is applied, the skipped enforcements too.
        for m in releases(HEAD) {
            let record = t.tracking(&m.version().to_string()).await.unwrap();
            assert_eq!(record.get_str("status").unwrap(), "completed", "{}", m.name());
        }
        t.drop_db().await;
    }
}

#[tokio::test]
async fn an_enforcement_is_skipped_only_for_a_newer_validator_a_later_migration_staged() {
    let t = TestDb::new().await;
    let users = t.db().collection::<Document>("users");
    // Release 1 staged; a validator changed by hand since (no migration
    // staged it): its enforcement is not skipped, and fails on the
    // document the hand-made validator let in.
    t.migrator(releases(1))
        .up(UpOptions {
            phase: Some(Phase::PreDeploy),
            ..UpOptions::default()
        })
        .await
        .unwrap();
    t.db()
        .run_command(doc! { "collMod": "users", "validator": { "$jsonSchema": shape(7) }, "validationAction": "warn" })
        .await
        .unwrap();
    users.insert_one(doc! { "other": 1 }).await.unwrap();
    let failed = t
        .migrator(releases(1))
        .up(UpOptions {
            phase: Some(Phase::PostDeploy),
            ..UpOptions::default()
        })
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("violate its validator"), "{failed}");
    // Release 0's enforcement was superseded by release 1's staging and
    // skipped; release 1's, with no later staging, was not.
    let status = async |version: &str| {
        t.tracking(version)
            .await
            .unwrap()
            .get_str("status")
            .unwrap()
            .to_string()
    };
    assert_eq!(status("20260101000010").await, "completed");
    assert_eq!(status("20260101010010").await, "failed");
    t.drop_db().await;
}
