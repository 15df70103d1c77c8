//! Two branches that both changed the schema and ran `diff`, merged with
//! real `git merge`s in a temporary repository: git always stops on the
//! snapshot, `check` (offline) and `diff` find every way a merge can keep
//! parts of both, and `diff --after-merge` writes the other side's changes
//! again as one migration from the side merged into.

use std::path::Path;
use std::process::Output;

use crate::common::*;
use mongo_migrations::bson::doc;
use mongo_migrations_codegen::schema::{diff, lineage, render_module, Half, Snapshot};
use serde_json::{json, Value};

fn git(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap()
}

fn git_ok(dir: &Path, args: &[&str]) {
    let out = git(dir, args);
    assert!(
        out.status.success(),
        "git {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn repository(dir: &Path) {
    git_ok(dir, &["init", "-q", "-b", "main"]);
    git_ok(dir, &["add", "-A"]);
    git_ok(dir, &["commit", "-q", "-m", "base"]);
}

fn commit(dir: &Path, message: &str) {
    git_ok(dir, &["add", "-A"]);
    git_ok(dir, &["commit", "-q", "-m", message]);
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `git merge side`: whether it stopped on a conflict, and in which files.
fn merge(dir: &Path, side: &str) -> Vec<String> {
    let out = git(dir, &["merge", "-q", "--no-edit", side]);
    let conflicted = git(dir, &["diff", "--name-only", "--diff-filter=U"]);
    let files: Vec<String> = stdout(&conflicted).lines().map(str::to_string).collect();
    assert_eq!(out.status.success(), files.is_empty(), "{}", stdout(&out));
    files
}

/// `check --offline` of the crate at `dir`: its exit code and stdout.
fn check(dir: &Path) -> (i32, String) {
    let out = cli().current_dir(dir).args(["check", "--offline"]).output().unwrap();
    (out.status.code().unwrap(), stdout(&out))
}

/// One collection `users` with these validator properties and indexes.
fn users(properties: &[(&str, &str)], indexes: &[&str]) -> Snapshot {
    let props: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(name, ty)| (name.to_string(), json!({ "bsonType": ty })))
        .collect();
    let indexes: Vec<Value> = indexes
        .iter()
        .map(|field| json!({ "name": format!("{field}_1"), "keys": [[field, 1]] }))
        .collect();
    Snapshot::from_declared(vec![json!({
        "name": "users",
        "validator": { "bsonType": "object", "properties": props },
        "validationLevel": "strict",
        "indexes": indexes,
    })])
    .unwrap()
}

/// What `diff NAME --version VERSION` writes for the change from the
/// committed snapshot to `new`, without the harness build: the modules from
/// the same rendering, the sealed snapshot, the registry.
fn diff_as_written(dir: &Path, new: Snapshot, name: &str, version: &str) {
    let migrations = dir.join("src/migrations");
    let path = migrations.join("schema.snapshot.json");
    let old = Snapshot::read(&path).unwrap();
    let changes = diff(&old, &new);
    let mut listed = old.migrations.clone();
    for (ops, half, stem) in [
        (
            &changes.pre_deploy,
            Half::PreDeploy,
            format!("m{}_{}_{name}", &version[..8], &version[8..]),
        ),
        (
            &changes.post_deploy,
            Half::PostDeploy,
            format!("m{}_{}_{name}_post_deploy", &version[..8], "000010"),
        ),
    ] {
        if ops.is_empty() {
            continue;
        }
        let source = render_module(ops, half, &format!("diff {name}"));
        std::fs::write(migrations.join(format!("{stem}.rs")), source).unwrap();
        listed.push(stem);
    }
    std::fs::write(&path, new.sealed(listed).render()).unwrap();
    cli().current_dir(dir).arg("registry").assert().success();
}

/// Base, then two branches from it, each with its own `diff`; returns the
/// repository's folder (the crate) on `main`, before the merge.
fn branches(base: Snapshot, ours: Snapshot, theirs: Snapshot) -> tempfile::TempDir {
    let app = fixture("schema");
    let dir = app.path();
    diff_as_written(dir, base, "create_users", "20260401000000");
    repository(dir);
    diff_as_written(dir, ours, "ours", "20260402000000");
    commit(dir, "ours");
    git_ok(dir, &["checkout", "-q", "-b", "theirs", "HEAD~1"]);
    diff_as_written(dir, theirs, "theirs", "20260403000000");
    commit(dir, "theirs");
    git_ok(dir, &["checkout", "-q", "main"]);
    app
}

/// Every way a merge of two branches' snapshots can go, for three kinds of
/// change: git stops on the snapshot; each resolution that keeps parts of
/// both sides is found by `check` offline, with the command that mends it.
#[test]
fn a_merge_of_two_branches_diffs_never_passes_check_unnoticed() {
    let base = || users(&[("email", "string")], &["email"]);
    let cases = [
        (
            "a field added at each end",
            users(&[("email", "string"), ("plan", "string")], &["email"]),
            users(&[("age", "int"), ("email", "string")], &["email"]),
        ),
        (
            "the same field changed two ways",
            users(&[("email", "object")], &["email"]),
            users(&[("email", "array")], &["email"]),
        ),
        (
            "an index added on each side",
            users(&[("email", "string")], &["email", "plan"]),
            users(&[("email", "string")], &["age", "email"]),
        ),
    ];
    for (case, ours, theirs) in cases {
        let app = branches(base(), ours, theirs);
        let dir = app.path();
        let snapshot = dir.join("src/migrations/schema.snapshot.json");
        // 1. git stops on the snapshot, whatever the change.
        let conflicted = merge(dir, "theirs");
        assert!(
            conflicted.contains(&"src/migrations/schema.snapshot.json".to_string()),
            "{case}: {conflicted:?}"
        );
        let (code, out) = check(dir);
        assert_eq!(code, 2, "{case}: {out}");
        assert!(
            out.contains("schema.snapshot.json: it has merge conflict markers"),
            "{case}: {out}"
        );
        assert!(out.contains("diff <name> --after-merge"), "{case}: {out}");
        // 2. Our side of the snapshot taken whole: their modules are not in it.
        git_ok(
            dir,
            &["checkout", "--ours", "--", "src/migrations/schema.snapshot.json"],
        );
        cli().current_dir(dir).arg("registry").assert().success();
        let (code, out) = check(dir);
        assert_eq!(code, 2, "{case}: {out}");
        assert!(
            out.contains("a migration written by `diff` is not in it (m20260403_000000_theirs")
                || out.contains("migrations written by `diff` are not in it (m20260403_000000_theirs"),
            "{case}: {out}"
        );
        // 3. Both sides kept by hand, lists and collections: the sum is wrong.
        let ours_text = stdout(&git(dir, &["show", "HEAD:src/migrations/schema.snapshot.json"]));
        let theirs_text = stdout(&git(dir, &["show", "theirs:src/migrations/schema.snapshot.json"]));
        let (ours_s, theirs_s): (Value, Value) = (
            serde_json::from_str(&ours_text).unwrap(),
            serde_json::from_str(&theirs_text).unwrap(),
        );
        let mut both = ours_s.clone();
        let mut list = ours_s["migrations"].as_array().unwrap().clone();
        list.extend(theirs_s["migrations"].as_array().unwrap().iter().skip(2).cloned());
        both["migrations"] = Value::Array(list);
        let mut props = ours_s["collections"][0]["validator"]["properties"]
            .as_object()
            .unwrap()
            .clone();
        props.extend(
            theirs_s["collections"][0]["validator"]["properties"]
                .as_object()
                .unwrap()
                .clone(),
        );
        both["collections"][0]["validator"]["properties"] = Value::Object(props);
        std::fs::write(&snapshot, serde_json::to_string_pretty(&both).unwrap()).unwrap();
        let (code, out) = check(dir);
        assert_eq!(code, 2, "{case}: {out}");
        assert!(out.contains("its sum does not match its content"), "{case}: {out}");
        // 4. Their side taken whole: our modules are not in it.
        std::fs::write(&snapshot, &theirs_text).unwrap();
        let (code, out) = check(dir);
        assert_eq!(code, 2, "{case}: {out}");
        assert!(out.contains("not in it (m20260402_000000_ours"), "{case}: {out}");
        // And `diff` refuses the same, before it builds anything.
        let refused = cli().current_dir(dir).args(["diff", "again"]).output().unwrap();
        assert_eq!(refused.status.code(), Some(2), "{case}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("not in it (m20260402_000000_ours") && stderr.contains("--after-merge"),
            "{case}: {stderr}"
        );
    }
}

/// `check` stays quiet about a snapshot that is whole, and about one from
/// before lineage (format 1) that lists nothing.
#[test]
fn a_whole_snapshot_and_an_old_one_pass_check() {
    let app = fixture("schema");
    let dir = app.path();
    diff_as_written(
        dir,
        users(&[("email", "string")], &["email"]),
        "create_users",
        "20260401000000",
    );
    diff_as_written(
        dir,
        users(&[("email", "string"), ("plan", "string")], &["email"]),
        "add_plan",
        "20260402000000",
    );
    let (code, out) = check(dir);
    assert_eq!(code, 0, "{out}");
    let path = dir.join("src/migrations/schema.snapshot.json");
    let mut old: Value = serde_json::from_str(&read(&path)).unwrap();
    old["format"] = json!(1);
    old.as_object_mut().unwrap().remove("migrations");
    old.as_object_mut().unwrap().remove("sum");
    std::fs::write(&path, serde_json::to_string_pretty(&old).unwrap()).unwrap();
    let (code, out) = check(dir);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        lineage::generated_modules(&dir.join("src/migrations")).unwrap(),
        [
            "m20260401_000000_create_users",
            "m20260401_000010_create_users_post_deploy",
            "m20260402_000000_add_plan",
            "m20260402_000010_add_plan_post_deploy",
        ]
    );
}

/// The fixture's type with the field lines `start` added before its first
/// field and `end` after its last.
fn with_fields(models: &str, start: &str, end: &str) -> String {
    let models = models.replace("pub struct User {\n", &format!("pub struct User {{\n{start}"));
    models.replace(
        "    pub display_name: Option<String>,\n}",
        &format!("    pub display_name: Option<String>,\n{end}}}"),
    )
}

/// The whole path with real `diff`s (harness builds) and a real server: two
/// branches add a field each, at either end of the struct; git stops on
/// the snapshot; `diff --after-merge` keeps our side, removes their
/// generated modules and writes their change again; the merged crate's
/// writes, with both fields, pass the enforced validator.
#[test]
fn diff_after_merge_writes_the_other_side_again_and_the_merged_code_s_writes_pass() {
    let app = fixture("schema");
    let dir = app.path();
    let db = format!("mm_merge_{}", std::process::id());
    let run = against_server(dir, &db);
    let models = dir.join("src/models.rs");
    let original = read(&models);
    run(&["diff", "create-users", "--version", "20260401000000"])
        .assert()
        .success();
    repository(dir);
    std::fs::write(&models, with_fields(&original, "", "    pub plan: Option<String>,\n")).unwrap();
    run(&["diff", "add-plan", "--version", "20260402000000"])
        .assert()
        .success();
    commit(dir, "plan");
    git_ok(dir, &["checkout", "-q", "-b", "age", "HEAD~1"]);
    std::fs::write(&models, with_fields(&original, "    pub age: Option<i32>,\n", "")).unwrap();
    run(&["diff", "add-age", "--version", "20260403000000"])
        .assert()
        .success();
    commit(dir, "age");
    git_ok(dir, &["checkout", "-q", "main"]);
    let conflicted = merge(dir, "age");
    assert!(
        conflicted.contains(&"src/migrations/schema.snapshot.json".to_string()),
        "{conflicted:?}"
    );
    // The type merged cleanly: both fields.
    let merged = read(&models);
    assert!(merged.contains("pub age") && merged.contains("pub plan"), "{merged}");
    let migrations = dir.join("src/migrations");
    let theirs = ["m20260403_000000_add_age.rs", "m20260403_000010_add_age_post_deploy.rs"];
    assert!(theirs.iter().all(|f| migrations.join(f).exists()));

    let out = run(&["diff", "merge-age", "--after-merge", "--version", "20260404000000"])
        .assert()
        .success();
    let printed = stdout(out.get_output());
    assert!(
        printed.contains("from the snapshot of git's HEAD; the other side's migrations are written again as one migration: m20260403_000000_add_age, m20260403_000010_add_age_post_deploy"),
        "{printed}"
    );
    assert!(
        printed.contains("Removed src/migrations/m20260403_000000_add_age.rs"),
        "{printed}"
    );
    assert!(theirs.iter().all(|f| !migrations.join(f).exists()));
    assert!(migrations.join("m20260404_000000_merge_age.rs").exists(), "{printed}");
    let snapshot = Snapshot::parse(&read(migrations.join("schema.snapshot.json")), Path::new("s")).unwrap();
    let validator = serde_json::to_string(&snapshot.collections[0].validator).unwrap();
    assert!(
        validator.contains("\"age\"") && validator.contains("\"plan\""),
        "{validator}"
    );
    let (code, out) = check(dir);
    assert_eq!(code, 0, "{out}");
    commit(dir, "merge");

    // The merged crate applies, and its writes with both fields pass the enforced validator.
    run(&["up"]).assert().success();
    with_client(async |client| {
        let users = client
            .database(&db)
            .collection::<mongo_migrations::bson::Document>("users");
        users
            .insert_one(doc! { "email": "a@x", "displayName": "A", "plan": "pro", "age": 41 })
            .await
            .unwrap();
        let refused = users.insert_one(doc! { "email": "b@x", "age": "old" }).await;
        assert!(refused.is_err(), "the validator checks `age`");
        client.database(&db).drop().await.unwrap();
    });
}
