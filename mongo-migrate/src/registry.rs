//! The ordered set of migrations a build knows.

use crate::{Error, Migration, Version};

/// Migrations in ascending version order, without duplicates.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    migrations: Vec<Migration>,
}

impl Registry {
    /// Checks that versions are unique and listed in ascending order.
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
        Ok(Registry { migrations })
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
    use crate::migration::{BoxFuture, MigrationContext, MigrationResult};

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
    fn rejects_unordered() {
        let err = Registry::new(vec![m("20260102000000", "b"), m("20260101000000", "a")]).unwrap_err();
        assert!(matches!(err, Error::Unordered { .. }), "{err}");
    }
}
