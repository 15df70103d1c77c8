//! Typed schemas end to end, through the real binary against the test server
//! in `MONGODB_URI`: a struct edit, `diff`, the generated modules (golden
//! files), `up --dry-run`, `up` in both deploy phases with old-shape writes
//! in between, rollback, and `check` catching a hand-made change.

use crate::common::*;
use mongo_migrations::bson::{doc, Document};
use snapbox::str;

/// The fixture's type after the second change: `displayName` is now
/// required and written as `name`, a field is added, the index on
/// `displayName` is gone (hidden before the deploy, dropped after it), one on
/// `name` and a partial one on `plan` are new; the unique email index stays.
const MODELS_V2: &str = r#"//! The documents this service reads and writes.

use mongo_migrations::schema::MongoSchema;
use serde::{Deserialize, Serialize};

/// A user account.
#[derive(Debug, Serialize, Deserialize, MongoSchema)]
#[serde(rename_all = "camelCase")]
#[mongo(
    collection = "users",
    index(keys = "email: 1", unique),
    index(keys = "name: 1"),
    index(keys = "plan: 1", partial = "{ \"plan\": { \"$exists\": true } }")
)]
pub struct User {
    pub email: String,
    #[serde(rename = "name")]
    pub display_name: String,
    /// New: a field the old documents lack.
    pub plan: Option<String>,
}
"#;

/// The `up` of the data fix `diff --with-data` wrote, as the user writes it.
const DATA_FIX: &str = r#"    ctx.batches("users", doc! { "displayName": { "$exists": true } })
        .update_each(|_| Some(doc! { "$rename": { "displayName": "name" } }))
        .await?;
    Ok(())"#;

fn stdout(assert: &snapbox::cmd::OutputAssert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

fn stderr(assert: &snapbox::cmd::OutputAssert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

fn migration_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The database's `users`: its indexes (name → hidden) and its options.
fn users(db: &str) -> (Vec<(String, bool)>, Document) {
    with_client(async |client| {
        let db = client.database(db);
        let mut indexes: Vec<(String, bool)> = Vec::new();
        let mut cursor = db.run_cursor_command(doc! { "listIndexes": "users" }).await.unwrap();
        while cursor.advance().await.unwrap() {
            let d: Document = cursor.deserialize_current().unwrap();
            indexes.push((
                d.get_str("name").unwrap().to_string(),
                d.get_bool("hidden").unwrap_or(false),
            ));
        }
        indexes.sort();
        let listed = db
            .run_command(doc! { "listCollections": 1, "filter": { "name": "users" } })
            .await
            .unwrap();
        let options = listed.get_document("cursor").unwrap().get_array("firstBatch").unwrap()[0]
            .as_document()
            .unwrap()
            .get_document("options")
            .unwrap()
            .clone();
        (indexes, options)
    })
}

fn insert(db: &str, d: Document) -> Result<(), String> {
    with_client(async |client| {
        client
            .database(db)
            .collection::<Document>("users")
            .insert_one(d)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

fn run_on(db: &str, f: impl AsyncFnOnce(&mongo_migrations::mongodb::Database)) {
    with_client(async |client| f(&client.database(db)).await)
}

fn indexes(names: &[(&str, bool)]) -> Vec<(String, bool)> {
    names.iter().map(|(n, h)| (n.to_string(), *h)).collect()
}

#[test]
fn a_schema_change_from_the_struct_to_both_deploy_phases_and_back() {
    let app = fixture("schema");
    let db = format!("mm_schema_{}", std::process::id());
    let run = against_server(app.path(), &db);
    let migrations = app.path().join("src/migrations");

    // 1. The first declaration: one collection, a validator, two indexes.
    let diff = run(&["diff", "create-users", "--version", "20260401000000"])
        .assert()
        .success();
    assert!(
        stdout(&diff).contains("Created src/migrations/m20260401_000010_create_users_post_deploy.rs"),
        "{}",
        stdout(&diff)
    );
    let golden_dir = root().join("fixtures/golden/schema");
    for file in [
        "m20260401_000000_create_users.rs",
        "m20260401_000010_create_users_post_deploy.rs",
    ] {
        golden(&read(migrations.join(file)), &golden_dir.join(file));
    }
    // Nothing changed since: nothing is written.
    let before = migration_files(&migrations);
    run(&["diff", "again", "--version", "20260401000100"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
schema-app: the declared collections match src/migrations/schema.snapshot.json: nothing to write

"#]]);
    assert_eq!(migration_files(&migrations), before);

    run(&["up", "--dry-run"]).assert().success().stdout_eq(str![[r#"
schema-app: Would apply 2 migrations (dry run, nothing changed):
  20260401000000 create_users (batch 1)
      Schema changes of `cargo mongo-migrate diff create-users`, before the deploy:
      - `users`: create the collection
      - `users`: stage the validator (`warn`, level `strict`)
      - `users`: build the index `email_1` on email: 1, unique
      - `users`: build the index `displayName_1` on displayName: 1
  20260401000010 create_users_post_deploy (batch 1)
      Schema changes of `cargo mongo-migrate diff create-users`, after the deploy:
      - `users`: enforce the validator (`error`) once no document violates it

"#]]);
    run(&["up", "--phase", "pre"]).assert().success();
    let (listed, options) = users(&db);
    assert_eq!(
        listed,
        indexes(&[("_id_", false), ("displayName_1", false), ("email_1", false)])
    );
    assert_eq!(options.get_str("validationAction"), Ok("warn"), "{options}");
    // Old code writes a user without an email during the deploy: it works.
    insert(&db, doc! { "_id": 1, "displayName": "old code" }).unwrap();
    // Enforcement waits for that document to be fixed, and says so.
    let refused = run(&["up", "--phase", "post"]).assert().failure();
    assert!(
        stderr(&refused).contains(
            "1 documents of `users` violate its validator (for example _id 1); the validator stays at `warn`"
        ),
        "{}",
        stderr(&refused)
    );
    assert_eq!(users(&db).1.get_str("validationAction"), Ok("warn"));
    run_on(&db, async |db| {
        let users = db.collection::<Document>("users");
        users
            .update_one(doc! { "_id": 1 }, doc! { "$set": { "email": "old@example.com" } })
            .await
            .unwrap();
    });
    // Generated migrations are `REPEATABLE`: the failed one runs again, no `resolve`.
    run(&["up", "--phase", "post"]).assert().success();
    assert_eq!(users(&db).1.get_str("validationAction"), Ok("error"));
    let e = insert(&db, doc! { "_id": 2, "displayName": "no email" }).unwrap_err();
    assert!(e.contains("validation"), "{e}");
    run(&["check"]).assert().success();
    // Tenants: the generated migrations run over many databases as any do.
    let tenants = [format!("{db}_a"), format!("{db}_b")];
    run(&["up", "--databases", &tenants.join(",")]).assert().success();
    for tenant in &tenants {
        let (listed, options) = users(tenant);
        assert_eq!(
            listed,
            indexes(&[("_id_", false), ("displayName_1", false), ("email_1", false)]),
            "{tenant}"
        );
        assert_eq!(options.get_str("validationAction"), Ok("error"), "{tenant}");
        run_on(tenant, async |db| db.drop().await.unwrap());
    }

    // 2. The struct changes: a field required and renamed, one index for another.
    std::fs::write(app.path().join("src/models.rs"), MODELS_V2).unwrap();
    // `check --build` catches a schema change no migration makes yet.
    let gate = run(&["check", "--build", "--offline"]).assert().code(2);
    assert!(
        stdout(&gate).contains("`users`: build the index `name_1` on name: 1 is declared, and no migration does it"),
        "{}",
        stdout(&gate)
    );
    // With a data fix between the phases: pre-deploy, data fix, post-deploy.
    run(&["diff", "name-required", "--with-data", "--version", "20260402000000"])
        .assert()
        .success();
    for file in [
        "m20260402_000000_name_required.rs",
        "m20260402_000005_name_required_data.rs",
        "m20260402_000010_name_required_post_deploy.rs",
    ] {
        golden(&read(migrations.join(file)), &golden_dir.join(file));
    }
    golden(
        &read(migrations.join("schema.snapshot.json")),
        &golden_dir.join("schema.snapshot.json"),
    );
    run(&["check", "--build", "--offline"]).assert().success();
    run(&["up", "--phase", "pre"]).assert().success();
    // The count at staging time is in the record and in `status`.
    let status = stdout(&run(&["status"]).assert().success());
    assert!(
        status
            .contains("20260402000000 staged a validator of `users`: 1 documents violated it then (for example _id 1)"),
        "{status}"
    );
    // Before the deploy: the new index is built, the old one hidden, not dropped.
    assert_eq!(
        users(&db).0,
        indexes(&[
            ("_id_", false),
            ("displayName_1", true),
            ("email_1", false),
            ("name_1", false),
            ("plan_1", false)
        ])
    );
    // Old code still writes the old shape until the deploy is done.
    insert(
        &db,
        doc! { "_id": 3, "email": "c@example.com", "displayName": "old code" },
    )
    .unwrap();
    // `plan` before the data fix is written: the enforcement meets the
    // documents of the old shape (blocking, exit 4); the data fix fails.
    let before = users(&db);
    run(&["plan", "--phase", "post"]).assert().code(4).stdout_eq(str![[r#"
schema-app: plan for `[..]` (read only: nothing was changed)
  20260402000005 name_required_data (post-deploy, unknown)
    unknown      not planned: runs code `plan` cannot inspect
                 its `up` failed while inspected: this data fix is not written yet: write its `up`, then run `up --phase post` again
  20260402000010 name_required_post_deploy (post-deploy, blocking)
    blocking     enforce the validator of `users`
                 2 documents violate it (for example _id 1, 3): the enforcement is refused until they are fixed
    destructive  drop the index `displayName_1` of `users`; not used since the server started
                 a dropped index is built again only by a migration
schema-app: 2 migrations: 1 blocking, 1 unknown

"#]]);
    assert_eq!(users(&db), before, "plan changed the database");
    // `check --plan` gates CI on it: the blocking step needs attention (exit 4).
    run(&["check", "--plan"]).assert().code(4).stdout_eq(str![[r#"
schema-app: pending: 20260402000005 name_required_data is pending
  hint: `up` applies it
schema-app: pending: 20260402000010 name_required_post_deploy is pending
  hint: `up` applies it
schema-app: pending: the index `displayName_1` is hidden and no longer declared: on its way out
  hint: apply the post-deploy migration that drops it (`up --phase post`); if none does, drop it with `ctx.drop_hidden_index` in one
schema-app: pending: the validator of `users` is staged (`validationAction: warn`), not enforced
  hint: apply the post-deploy migration that enforces it (`up --phase post`)
schema-app: attention: 20260402000010 name_required_post_deploy would fail: enforce the validator of `users` (2 documents violate it (for example _id 1, 3): the enforcement is refused until they are fixed)
  hint: see `cargo mongo-migrate plan`
schema-app: checked files and database: 0 errors, 1 need attention, 4 pending, 0 warnings

"#]]);
    // After the deploy, the data fix runs first: as `diff` wrote it, it
    // fails, and nothing after it runs.
    let refused = run(&["up", "--phase", "post"]).assert().failure();
    assert!(
        stderr(&refused).contains("this data fix is not written yet"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(users(&db).1.get_str("validationAction"), Ok("warn"));
    // Written: the old field renamed. It is `REPEATABLE`: no `resolve`.
    let fix = migrations.join("m20260402_000005_name_required_data.rs");
    let source = read(&fix);
    let start = source.find("    // Bring every document").unwrap();
    let end = source[start..].find("\n}\n").unwrap() + start;
    let written = format!("{}{}{}", &source[..start], DATA_FIX, &source[end..]);
    std::fs::write(&fix, written).unwrap();
    // Planned again: the walk is counted, and the enforcement after it is
    // no longer blocking. As JSON and as Markdown too.
    run(&["plan", "--phase", "post"]).assert().success().stdout_eq(str![[r#"
schema-app: plan for `[..]` (read only: nothing was changed)
  20260402000005 name_required_data (post-deploy, safe)
    safe         walk 2 documents of `users` (exact count of its filter) in 1 batch of 1000; no walk is recorded here to time it by
  20260402000010 name_required_post_deploy (post-deploy, destructive)
    slow         enforce the validator of `users`
                 2 documents violate it now (for example _id 1, 3); an earlier migration of this plan walks `users` and may fix them
    destructive  drop the index `displayName_1` of `users`; not used since the server started
                 a dropped index is built again only by a migration
schema-app: 2 migrations: 1 destructive, 1 safe

"#]]);
    let json = stdout(&run(&["plan", "--phase", "post", "--json"]).assert().success());
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["risk"], "destructive", "{json}");
    assert_eq!(json["migrations"][0]["steps"][0]["risk"], "safe", "{json}");
    run(&["plan", "--phase", "post", "--markdown"])
        .assert()
        .success()
        .stdout_eq(str![[r#"
### Deploy plan of `schema-app` for `[..]`: **destructive**

| migration | phase | risk | what it would do |
| --- | --- | --- | --- |
| 20260402000005 `name_required_data` | post-deploy | safe | walk 2 documents of `users` (exact count of its filter) in 1 batch of 1000; no walk is recorded here to time it by |
| 20260402000010 `name_required_post_deploy` | post-deploy | slow | enforce the validator of `users`: 2 documents violate it now (for example _id 1, 3); an earlier migration of this plan walks `users` and may fix them |
|  |  | destructive | drop the index `displayName_1` of `users`; not used since the server started: a dropped index is built again only by a migration |

2 migrations: 1 destructive, 1 safe. Read only: `cargo mongo-migrate plan` changed nothing.

"#]]);
    run(&["up", "--phase", "post"]).assert().success();
    // Enforced: what the staging found is history, out of the table's notes.
    let status = stdout(&run(&["status"]).assert().success());
    assert!(!status.contains("staged a validator"), "{status}");
    let (listed, options) = users(&db);
    assert_eq!(
        listed,
        indexes(&[
            ("_id_", false),
            ("email_1", false),
            ("name_1", false),
            ("plan_1", false)
        ])
    );
    assert_eq!(options.get_str("validationAction"), Ok("error"));
    let required = options
        .get_document("validator")
        .unwrap()
        .get_document("$jsonSchema")
        .unwrap();
    assert_eq!(required.get_array("required").unwrap().len(), 2, "{required}");
    run(&["check"]).assert().success();

    // 3. Both halves roll back: the displayName index is back and visible,
    // the first validator enforced again.
    run(&["down", "--steps", "3"]).assert().success();
    let (listed, options) = users(&db);
    assert_eq!(
        listed,
        indexes(&[("_id_", false), ("displayName_1", false), ("email_1", false)])
    );
    assert_eq!(options.get_str("validationAction"), Ok("error"));
    let schema = options
        .get_document("validator")
        .unwrap()
        .get_document("$jsonSchema")
        .unwrap();
    assert_eq!(schema.get_array("required").unwrap().len(), 1, "{schema}");
    run(&["up"]).assert().success();
    run(&["diff", "again", "--version", "20260403000000"])
        .assert()
        .success();
    assert_eq!(migration_files(&migrations).len(), 7);

    // 4. Drift: a hand-made index and a hand-dropped one.
    run_on(&db, async |db| {
        let users = db.collection::<Document>("users");
        let by_x = mongo_migrations::mongodb::IndexModel::builder()
            .keys(doc! { "x": 1 })
            .build();
        users.create_index(by_x).await.unwrap();
        users.drop_index("name_1").await.unwrap();
    });
    let drift = run(&["check"]).assert().code(4);
    snapbox::assert_data_eq!(
        stdout(&drift),
        str![[r#"
schema-app: attention: the index `name_1` ({ "name": 1 }) is declared but missing
  hint: apply the migration that builds it, or rebuild it if it was dropped by hand
schema-app: attention: the index `x_1` ({ "x": 1 }) is not declared
  hint: declare it on the type, or drop it (hide it first) in a migration
schema-app: checked files and database: 0 errors, 2 need attention, 0 pending, 0 warnings

"#]]
    );
    run_on(&db, async |db| db.drop().await.unwrap());
}
