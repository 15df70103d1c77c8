//! The ordered set of migrations a build knows.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::schema::Collection;
use crate::{Error, Migration, Version};

/// Migrations in ascending version order, without duplicates. Cheap to
/// clone: every `Migrator` (one per tenant, one per HTTP state) shares one.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    migrations: Arc<[Migration]>,
    /// Replaced version → the squash that replaces it.
    squashed: Arc<BTreeMap<Version, Version>>,
    /// The crate's declared collections (`schema-fn`), for drift.
    collections: Arc<[Collection]>,
}

impl Registry {
    /// Checks that versions are unique and listed in ascending order, and
    /// that each squash replaces only older versions that no other
    /// migration has or replaces.
    pub fn new(migrations: Vec<Migration>) -> Result<Self, Error> {
        for m in &migrations {
            Version::from_u64(m.version.as_u64())?;
        }
        for pair in migrations.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.version == b.version {
                return Err(Error::DuplicateVersion {
                    version: a.version,
                    first: a.name.to_string(),
                    second: b.name.to_string(),
                });
            }
            if a.version > b.version {
                return Err(Error::Unordered {
                    earlier: a.version,
                    later: b.version,
                });
            }
        }
        let mut squashed = BTreeMap::new();
        for m in &migrations {
            for &replaced in m.replaces.iter() {
                let bad = |reason: &str| Error::BadReplaces {
                    version: m.version,
                    replaced,
                    reason: reason.to_string(),
                };
                let version = Version::from_u64(replaced).map_err(|_| bad("is not a valid version"))?;
                if version >= m.version {
                    return Err(bad("is not older than the squash"));
                }
                if migrations.binary_search_by_key(&version, |m| m.version).is_ok() {
                    return Err(bad("is still in the registry: delete its file"));
                }
                if squashed.insert(version, m.version).is_some() {
                    return Err(bad("another squash replaces too"));
                }
            }
        }
        Ok(Registry {
            migrations: migrations.into(),
            squashed: Arc::new(squashed),
            collections: Arc::new([]),
        })
    }

    /// With the crate's declared collections, which `check` compares with
    /// the database (the harness adds them from `schema-fn`).
    pub fn with_collections(mut self, collections: Vec<Collection>) -> Self {
        self.collections = collections.into();
        self
    }

    /// The declared collections.
    pub fn collections(&self) -> &[Collection] {
        &self.collections
    }

    /// The squash that replaces `version`, if one does.
    pub fn squashed_into(&self, version: Version) -> Option<Version> {
        self.squashed.get(&version).copied()
    }

    /// Every migration, in version order.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// The migration of `version`, if the registry has it.
    pub fn get(&self, version: Version) -> Option<&Migration> {
        self.migrations
            .binary_search_by_key(&version, |m| m.version)
            .ok()
            .map(|i| &self.migrations[i])
    }

    /// How many migrations it lists.
    pub fn len(&self) -> usize {
        self.migrations.len()
    }

    /// Whether it lists none.
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoxFuture, MigrationContext, MigrationResult};

    fn noop(_: &mut MigrationContext) -> BoxFuture<'_, MigrationResult> {
        Box::pin(async { Ok(()) })
    }

    fn m(v: &str, name: &str) -> Migration {
        Migration::new(Version::parse(v).unwrap(), name, noop)
    }

    #[test]
    fn accepts_ascending_versions() {
        let r = Registry::new(vec![m("20260101000000", "a"), m("20260102000000", "b")]).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(Version::parse("20260102000000").unwrap()).unwrap().name(), "b");
    }

    #[test]
    fn rejects_duplicates() {
        let err = Registry::new(vec![m("20260101000000", "a"), m("20260101000000", "b")]).unwrap_err();
        assert!(matches!(err, Error::DuplicateVersion { .. }), "{err}");
        assert!(err.to_string().contains("`a` and `b`"));
    }

    #[test]
    fn a_squash_replaces_only_older_versions_nobody_else_has() {
        let squash = |v: &str, replaces: &'static [u64]| m(v, "squash").replacing(replaces);
        let r = Registry::new(vec![squash("20260103000000", &[20260101000000, 20260102000000])]).unwrap();
        let v = |s: &str| Version::parse(s).unwrap();
        assert_eq!(r.squashed_into(v("20260101000000")), Some(v("20260103000000")));
        assert_eq!(r.squashed_into(v("20260103000000")), None);
        for (migrations, reason) in [
            (vec![squash("20260103000000", &[20260104000000])], "not older"),
            (
                vec![m("20260101000000", "a"), squash("20260103000000", &[20260101000000])],
                "still in the registry",
            ),
            (
                vec![
                    squash("20260103000000", &[20260101000000]),
                    squash("20260104000000", &[20260101000000]),
                ],
                "another squash",
            ),
            (vec![squash("20260103000000", &[123])], "not a valid version"),
        ] {
            let err = Registry::new(migrations).unwrap_err();
            assert!(
                matches!(err, Error::BadReplaces { .. }) && err.to_string().contains(reason),
                "{err}"
            );
        }
    }

    #[test]
    fn rejects_unordered() {
        let err = Registry::new(vec![m("20260102000000", "b"), m("20260101000000", "a")]).unwrap_err();
        assert!(matches!(err, Error::Unordered { .. }), "{err}");
    }
}
