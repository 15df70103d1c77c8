//! Whether the run's user may do what its migrations need beyond reads and
//! writes (see `Migration::needs`), asked once before a run writes
//! anything: `connectionStatus` with `showPrivileges` (the manual's
//! "connectionStatus": `authInfo.authenticatedUsers` and
//! `authInfo.authenticatedUserPrivileges`, each `{resource: {db,
//! collection} | {anyResource: true} | {cluster: true}, actions: [..]}`).
//! A staged rollout whose post-deploy half cannot run (`collMod` is not in
//! `readWrite`) is refused before its first half runs.

use std::collections::BTreeMap;

use bson::Document;

/// Who may not do what: the user (`name@authdb`), and each action it may
/// not run, with what needs it.
pub(crate) type Refusal<T> = (String, Vec<(String, Vec<T>)>);

/// The user, and each action of `needed` that no privilege of `reply`
/// grants on database `db`, with what needs it; `None` when every one is
/// granted, or when nobody is authenticated (access control is off, and
/// everything is allowed). A privilege on one collection of `db` counts
/// for the database: a refusal must never stop a run its user could make.
pub(crate) fn missing<T: Clone>(reply: &Document, db: &str, needed: &BTreeMap<&str, Vec<T>>) -> Option<Refusal<T>> {
    let info = reply.get_document("authInfo").ok()?;
    let users = info.get_array("authenticatedUsers").ok()?;
    let user = users.first()?.as_document()?;
    let name = format!(
        "{}@{}",
        user.get_str("user").unwrap_or("?"),
        user.get_str("db").unwrap_or("?")
    );
    let privileges = info.get_array("authenticatedUserPrivileges").ok()?;
    let granted = |action: &str| {
        privileges.iter().filter_map(|p| p.as_document()).any(|p| {
            let on_db = p.get_document("resource").is_ok_and(|r| {
                r.get_bool("anyResource") == Ok(true) || r.get_str("db").is_ok_and(|d| d.is_empty() || d == db)
            });
            on_db
                && p.get_array("actions")
                    .is_ok_and(|a| a.iter().any(|x| x.as_str() == Some(action)))
        })
    };
    let missing: Vec<(String, Vec<T>)> = needed
        .iter()
        .filter(|(action, _)| !granted(action))
        .map(|(action, by)| (action.to_string(), by.clone()))
        .collect();
    (!missing.is_empty()).then_some((name, missing))
}

#[cfg(test)]
mod tests {
    use super::missing;
    use bson::doc;
    use std::collections::BTreeMap;

    /// `connectionStatus` of a user with `readWrite` on `shop` (the
    /// manual's "Built-In Roles": no `collMod`), abridged.
    fn read_write() -> bson::Document {
        doc! { "authInfo": {
            "authenticatedUsers": [{ "user": "app", "db": "admin" }],
            "authenticatedUserRoles": [{ "role": "readWrite", "db": "shop" }],
            "authenticatedUserPrivileges": [
                { "resource": { "db": "shop", "collection": "" },
                  "actions": ["find", "insert", "update", "remove", "createIndex", "dropIndex", "createCollection", "listIndexes"] },
                { "resource": { "db": "shop", "collection": "system.js" }, "actions": ["find"] },
            ],
        }, "ok": 1.0 }
    }

    fn needed(actions: &[&'static str]) -> BTreeMap<&'static str, Vec<u32>> {
        actions.iter().map(|a| (*a, vec![1])).collect()
    }

    #[test]
    fn a_read_write_user_may_build_indexes_but_not_change_validators() {
        assert_eq!(
            missing(&read_write(), "shop", &needed(&["collMod", "createIndex"])),
            Some(("app@admin".to_string(), vec![("collMod".to_string(), vec![1])]))
        );
        assert_eq!(
            missing(&read_write(), "shop", &needed(&["createIndex", "dropIndex"])),
            None
        );
        // Another database: nothing granted there.
        assert!(missing(&read_write(), "billing", &needed(&["createIndex"])).is_some());
    }

    #[test]
    fn any_resource_all_databases_and_no_access_control_grant_everything() {
        let root = doc! { "authInfo": {
            "authenticatedUsers": [{ "user": "root", "db": "admin" }],
            "authenticatedUserPrivileges": [{ "resource": { "anyResource": true }, "actions": ["collMod"] }],
        } };
        assert_eq!(missing(&root, "shop", &needed(&["collMod"])), None);
        let all_dbs = doc! { "authInfo": {
            "authenticatedUsers": [{ "user": "ops", "db": "admin" }],
            "authenticatedUserPrivileges": [{ "resource": { "db": "", "collection": "" }, "actions": ["collMod"] }],
        } };
        assert_eq!(missing(&all_dbs, "shop", &needed(&["collMod"])), None);
        // Access control off: nobody is authenticated, and everything is allowed.
        let open = doc! { "authInfo": { "authenticatedUsers": [], "authenticatedUserRoles": [] }, "ok": 1.0 };
        assert_eq!(missing(&open, "shop", &needed(&["collMod"])), None);
    }
}
