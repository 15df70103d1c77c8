//! The parts of the error messages that list things: versions, names,
//! what a run did before it stopped, capped to a short line.

use crate::Version;

pub(super) fn before(completed: &[Version]) -> String {
    if completed.is_empty() {
        return String::new();
    }
    format!(" (recorded before it in this run: {})", versions(completed))
}

/// `run `collMod` (20260102000000, 20260103000000) or `createIndex` (..)`.
pub(super) fn needed(missing: &[(String, Vec<Version>)]) -> String {
    let each: Vec<String> = missing
        .iter()
        .map(|(action, by)| format!("`{action}` (needed by {})", versions(by)))
        .collect();
    format!("run {}", each.join(" or "))
}

/// `sha256:e3c9990489fc…`: enough of a checksum to tell two apart in a
/// one-line message (`status --json` and the record keep it whole).
pub(super) fn short_checksum(checksum: &str) -> String {
    match checksum.char_indices().nth("sha256:".len() + 12) {
        Some((at, _)) => format!("{}…", &checksum[..at]),
        None => checksum.to_string(),
    }
}

/// `1 migration` or `N migrations`.
pub(super) fn failed_count(n: usize) -> String {
    format!("{n} {}", if n == 1 { "migration" } else { "migrations" })
}

/// ` (applied: V, V)`, or nothing.
pub(super) fn applied(completed: &[Version]) -> String {
    if completed.is_empty() {
        return String::new();
    }
    format!(" (recorded in this run: {})", versions(completed))
}

/// Each failure: `V (name): message`, separated by `; `.
pub(super) fn failures(failures: &[(Version, String, String)]) -> String {
    failures
        .iter()
        .map(|(v, name, message)| format!("{v} ({name}): {message}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// How many versions a message names; the rest are counted, so a message
/// over a thousand records stays one readable line.
pub(super) const NAMED: usize = 5;

/// The first [`NAMED`] of `items`, then how many more there are.
pub(super) fn capped(items: impl ExactSizeIterator<Item = String>) -> String {
    let total = items.len();
    let mut out = items.take(NAMED).collect::<Vec<_>>().join(", ");
    if total > NAMED {
        out.push_str(&format!(" and {} more (`status` lists them)", total - NAMED));
    }
    out
}

pub(super) fn named(list: &[(Version, String)]) -> String {
    capped(list.iter().map(|(v, name)| format!("{v} ({name})")))
}

pub(super) fn pending_list(list: &[(Version, String)]) -> String {
    match list {
        [one] => format!("migration {} is", named(std::slice::from_ref(one))),
        _ => format!("migrations {} are", named(list)),
    }
}

pub(super) fn them(list: &[(Version, String)]) -> &'static str {
    if list.len() == 1 {
        "it"
    } else {
        "them"
    }
}

pub(super) fn versions(list: &[Version]) -> String {
    capped(list.iter().map(Version::to_string))
}

pub(super) fn lost_run(completed: &[Version], interrupted: &Option<Version>, not_run: &[Version]) -> String {
    let mut out = String::new();
    if !completed.is_empty() {
        out.push_str(&format!("Recorded before the loss: {}. ", versions(completed)));
    }
    if let Some(v) = interrupted {
        out.push_str(&format!(
            "{v} had started and may be partly applied; its record stays `running` for `resolve`. "
        ));
    }
    if !not_run.is_empty() {
        out.push_str(&format!("Not started: {}. ", versions(not_run)));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::Error;
    use crate::Version;

    /// An error shows its cause either in its message or as its `source()`,
    /// never both: a chain printed with `-v` says each thing once.
    #[test]
    fn no_cause_is_both_in_the_message_and_the_source() {
        let driver = mongodb::error::Error::custom("the server went away");
        let io = std::io::Error::other("connection reset");
        for e in [
            Error::from(driver),
            Error::MigrationFailed {
                version: Version::new_unchecked(20260101000000),
                name: "m".into(),
                message: io.to_string(),
                error: Some(Box::new(io)),
                completed: Vec::new(),
            },
        ] {
            let text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                assert!(
                    !text.contains(&cause.to_string()),
                    "{text:?} repeats its source {cause}"
                );
                source = cause.source();
            }
        }
    }

    /// A thousand unknown records make one short line: the first few, then a count.
    #[test]
    fn long_lists_of_versions_name_the_first_few_and_count_the_rest() {
        let versions: Vec<(Version, String)> = (0..1_000_u64)
            .map(|i| (Version::new_unchecked(20260101000000 + i), format!("m{i}")))
            .collect();
        let text = Error::UnknownVersions { versions }.to_string();
        assert!(text.len() < 600, "{} characters: {text}", text.len());
        assert!(
            text.starts_with("the database records migration(s) 20260101000000 (m0), 20260101000001 (m1), 20260101000002 (m2), 20260101000003 (m3), 20260101000004 (m4) and 995 more (`status` lists them) that this build"),
            "{text}"
        );
        let few: Vec<(Version, String)> = vec![(Version::new_unchecked(20260101000000), "a".into())];
        assert!(!Error::UnknownVersions { versions: few }.to_string().contains("more"));
        let lost = Error::LockLost {
            taken_by: None,
            completed: (0..40).map(|i| Version::new_unchecked(20260101000000 + i)).collect(),
            interrupted: None,
            not_run: (100..300).map(|i| Version::new_unchecked(20260101000000 + i)).collect(),
        }
        .to_string();
        assert!(lost.contains("and 35 more") && lost.contains("and 195 more"), "{lost}");
        assert!(lost.len() < 700, "{lost}");
    }
}
