//! What a target database's name may be (a run's, a tenant's): the server's rules, checked before
//! anything runs, and the system databases refused as targets.

use crate::Error;

/// Characters no MongoDB database name may hold, on any platform a member
/// of the deployment may run on (Windows refuses more than Unix).
const FORBIDDEN: &[char] = &['/', '\\', '.', ' ', '"', '$', '*', '<', '>', ':', '|', '?', '\0'];

/// The longest name the server takes, in bytes.
const MAX_BYTES: usize = 63;

/// Whether `name` can be the database of a run or a tenant: not empty, at most 63 bytes,
/// none of `/\. "$*<>:|?` or NUL, and not `admin`, `local` or `config`.
pub fn check_database_name(name: &str) -> Result<(), Error> {
    let refuse = |reason: &str| {
        Err(Error::InvalidDatabaseName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > MAX_BYTES {
        return refuse("it is longer than 63 bytes");
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return refuse(&format!(
            "it holds `{}`, which no database name may",
            c.escape_default()
        ));
    }
    if matches!(name, "admin" | "local" | "config") {
        return refuse("it is a system database of the server, never a migration target");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_database_name;

    #[test]
    fn tenant_names_follow_the_servers_rules() {
        for good in ["tenant_1", "acme-prod", "A", &"x".repeat(63)] {
            assert!(check_database_name(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("bad$name/x", "`$`"),
            ("a.b", "`.`"),
            ("a b", "` `"),
            ("nul\0", "`\\u{0}`"),
            ("admin", "system"),
            ("local", "system"),
            ("config", "system"),
            (&"x".repeat(64), "63 bytes"),
        ] {
            let e = check_database_name(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
