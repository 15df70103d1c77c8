//! A cache of parsed migration files, so that regenerating the registry of
//! an unchanged directory (every `cargo mongo-migrate up`) parses nothing.
//!
//! Keyed on path, length and modification time. A file modified within
//! [`RACY`] of the cache's own write is parsed again whatever its key says
//! (as git does for its index): an edit in the same clock tick as the last
//! scan, keeping the length, could otherwise go unseen. Any problem with the
//! cache file means parsing everything, never an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::registry::write_if_changed;
use crate::scan::{finish, migration_paths, read_all, MigrationFile};
use crate::Result;

const RACY: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Cache {
    /// When the cache was written, in nanoseconds since the epoch.
    written: u128,
    entries: HashMap<PathBuf, Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    len: u64,
    modified: u128,
    file: MigrationFile,
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// [`scan`](crate::scan) through the cache at `cache`, which it updates.
pub fn scan_cached(dir: &Path, cache: &Path) -> Result<Vec<MigrationFile>> {
    let old: Cache = std::fs::read(cache)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let mut fresh = HashMap::new();
    let mut files = Vec::new();
    let mut stale = Vec::new();
    for path in migration_paths(dir)? {
        let Ok(meta) = std::fs::metadata(&path) else {
            stale.push(path);
            continue;
        };
        let (len, modified) = (meta.len(), meta.modified().map_or(0, nanos));
        let racy = modified + RACY.as_nanos() >= old.written;
        match old.entries.get(&path) {
            Some(e) if e.len == len && e.modified == modified && !racy => files.push(e.file.clone()),
            _ => stale.push(path.clone()),
        }
        fresh.insert(path, (len, modified));
    }
    files.extend(read_all(&stale)?);
    let files = finish(files)?;
    let entries = files
        .iter()
        .filter_map(|f| {
            let (len, modified) = *fresh.get(&f.path)?;
            Some((
                f.path.clone(),
                Entry {
                    len,
                    modified,
                    file: f.clone(),
                },
            ))
        })
        .collect();
    let new = Cache {
        written: nanos(SystemTime::now()),
        entries,
    };
    if !stale.is_empty() || new.entries.len() != old.entries.len() {
        // Best effort: a cache that cannot be written only costs a parse.
        if let Some(parent) = cache.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if let Ok(json) = serde_json::to_string(&new) {
            let _ = write_if_changed(cache, &json);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATION: &str = "//! Doc.\npub async fn up(_: &mut ()) -> () {}\n";

    #[test]
    fn reuses_unchanged_files_and_sees_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache/registry.json");
        let file = dir.path().join("m20260101_000000_first.rs");
        std::fs::write(&file, MIGRATION).unwrap();
        let first = scan_cached(dir.path(), &cache).unwrap();
        assert_eq!(first, crate::scan(dir.path()).unwrap());
        assert!(cache.exists());
        // Same length, new content, within the racy window: parsed again.
        std::fs::write(&file, MIGRATION.replace("Doc.", "Cod.")).unwrap();
        let second = scan_cached(dir.path(), &cache).unwrap();
        assert_eq!(second[0].description, "Cod.");
        // A new file and a removed one.
        std::fs::write(dir.path().join("m20260102_000000_second.rs"), MIGRATION).unwrap();
        std::fs::remove_file(&file).unwrap();
        let third = scan_cached(dir.path(), &cache).unwrap();
        assert_eq!(third.len(), 1);
        assert_eq!(third[0].name, "second");
        // A corrupt cache is a miss, not an error.
        std::fs::write(&cache, "not json").unwrap();
        assert_eq!(scan_cached(dir.path(), &cache).unwrap(), third);
    }
}
