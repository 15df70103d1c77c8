//! Migration file names: `m<YYYYMMDD_HHMMSS>_<snake_name>.rs`.

use chrono::NaiveDateTime;

use crate::{Error, Result};

/// Turns user input such as `Add-Email index` into `add_email_index`.
pub fn normalise_name(input: &str) -> Result<String> {
    let mut out = String::with_capacity(input.len());
    for c in input.trim().chars() {
        match c {
            'A'..='Z' => out.push(c.to_ascii_lowercase()),
            'a'..='z' | '0'..='9' => out.push(c),
            '-' | '_' | ' ' | '.' => {
                if !out.is_empty() && !out.ends_with('_') {
                    out.push('_');
                }
            }
            _ => return Err(Error::InvalidName { input: input.into() }),
        }
    }
    let out = out.trim_end_matches('_').to_string();
    if out.is_empty() || !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(Error::InvalidName { input: input.into() });
    }
    Ok(out)
}

/// Checks a 14-digit version is a real date and time.
pub fn check_version(version: &str) -> Result<()> {
    let ok = version.len() == 14
        && version.bytes().all(|b| b.is_ascii_digit())
        && NaiveDateTime::parse_from_str(version, "%Y%m%d%H%M%S").is_ok();
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidVersion { input: version.into() })
    }
}

/// The module name for a version and a normalised name.
pub fn module_name(version: &str, name: &str) -> String {
    format!("m{}_{}_{name}", &version[..8], &version[8..])
}

/// Splits a module name (file stem) into version and name.
pub fn parse_module_name(stem: &str) -> Result<(String, String), String> {
    let rest = stem.strip_prefix('m').ok_or("it does not start with `m`")?;
    let (date, rest) = rest.split_once('_').ok_or("no `_` after the date")?;
    let (time, name) = rest.split_once('_').ok_or("no `_<name>` after the time")?;
    let version = format!("{date}{time}");
    check_version(&version).map_err(|_| format!("`{date}_{time}` is not a valid YYYYMMDD_HHMMSS timestamp"))?;
    match normalise_name(name) {
        Ok(n) if n == name => Ok((version, name.to_string())),
        _ => Err(format!("`{name}` is not a snake_case name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_user_input() {
        assert_eq!(normalise_name("add-email-index").unwrap(), "add_email_index");
        assert_eq!(normalise_name("Add Email  Index").unwrap(), "add_email_index");
        assert_eq!(normalise_name("users_v2").unwrap(), "users_v2");
    }

    #[test]
    fn rejects_non_identifiers() {
        for bad in ["", "---", "2fast", "naïve", "drop;users", "a/b"] {
            assert!(normalise_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn round_trips_module_names() {
        let module = module_name("20261125183000", "add_email_index");
        assert_eq!(module, "m20261125_183000_add_email_index");
        assert_eq!(
            parse_module_name(&module).unwrap(),
            ("20261125183000".into(), "add_email_index".into())
        );
    }

    #[test]
    fn rejects_malformed_module_names() {
        for bad in [
            "20261125_183000_x",
            "m20261125183000_x",
            "m20261325_183000_x",
            "m20261125_183000",
            "m20261125_183000_Bad",
            "m2026_183000_x",
        ] {
            assert!(parse_module_name(bad).is_err(), "{bad} accepted");
        }
    }
}
