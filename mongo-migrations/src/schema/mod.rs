//! Schema changes that are safe on a live database, for migrations to call
//! (hand-written, or written by `cargo mongo-migrate diff`), and the declared
//! collections they are generated from:
//!
//! - `collection.rs`: a declared [`Collection`], and the list of them a crate
//!   names in `schema-fn` ([`collections!`](crate::collections));
//! - `drift.rs`: where the database differs from the declared collections;
//! - `declared.rs`: [`MongoSchema`], a type's `$jsonSchema` (derived with
//!   `#[derive(MongoSchema)]`, feature `macros`);
//! - `index.rs`: an index as declared, and how it compares with a listed one;
//! - `indexes.rs`: building one (adopting an existing one of the same
//!   identity, with `commitQuorum`, reporting progress), hiding and dropping;
//! - `shards.rs`: through a `mongos`, which shards hold each index;
//! - `replace.rs`: replacing one whose options change without leaving the
//!   collection without it (duplicate keys found before a unique build);
//! - `validator.rs`: a `$jsonSchema` validator rolled out in stages: warn,
//!   count the violators, enforce only when none remains.
//!
//! [`MigrationContext`](crate::MigrationContext) has a method for each.

mod collection;
mod declared;
mod drift;
mod index;
mod indexes;
mod quorum;
mod replace;
mod shards;
mod validator;

pub use collection::{json_document, Collection};
pub use declared::{nullable, MongoSchema};
pub use drift::{compare, drift, Drift};
pub use index::Index;
pub(crate) use index::{find_listed, Listed};
pub(crate) use indexes::{adopt, build, Build};
pub use indexes::{
    create_collection, drop_hidden_index, drop_index, ensure_index, hide_index, list_indexes, unhide_index,
    BuildProgress, IndexOutcome,
};
/// `#[derive(MongoSchema)]`: see the trait.
#[cfg(feature = "macros")]
pub use mongo_migrations_macros::MongoSchema;
pub use quorum::{CommitQuorum, DEFAULT_BUILD_WAIT};
pub(crate) use replace::replace_index_with;
pub use replace::{duplicates, replace_index, Duplicates};
pub use validator::{
    count_violators, enforce_validator, force_validator, restore_validator, stage_validator, ValidationLevel,
    Violations,
};
pub(crate) use validator::{current as current_validator, staged_over};

/// What went wrong with a schema change, and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The server refused a command.
    #[error("{what} of `{collection}` failed: {message}")]
    Server {
        /// What was being done.
        what: &'static str,
        /// The collection.
        collection: String,
        /// The server's words.
        message: String,
    },
    /// The index exists, by identity, with other options.
    #[error("`{collection}` has the index `{name}` on the same keys with other {options}: drop it in an earlier migration (hide it first), or declare the same options")]
    OptionsDiffer {
        /// The collection.
        collection: String,
        /// The existing index.
        name: String,
        /// The options that differ.
        options: String,
    },
    /// Another index has the name.
    #[error("`{collection}` has an index named `{name}` on other keys ({keys}): give this one another name")]
    NameTaken {
        /// The collection.
        collection: String,
        /// The name.
        name: String,
        /// The other index's keys.
        keys: String,
    },
    /// The server refused the index as conflicting with an existing one.
    #[error("building `{index}` on `{collection}` conflicts with an existing index: {message}")]
    Conflict {
        /// The collection.
        collection: String,
        /// The index.
        index: String,
        /// The server's words.
        message: String,
    },
    /// A drop of an index that was never hidden.
    #[error("the index `{name}` of `{collection}` is not hidden: hide it in an earlier migration (`ctx.hide_index`), deploy, and drop it once nothing slowed down")]
    NotHidden {
        /// The collection.
        collection: String,
        /// The index.
        name: String,
    },
    /// An index build did not commit within the time it was given.
    #[error("the build of the index `{index}` on `{collection}` did not commit within {waited_secs} s: commitQuorum `{quorum}` waits for those members to finish it, and one may be down or far behind (see `rs.status()`); the build goes on in the server: run again to wait for it, or set `index-commit-quorum = \"majority\"` or a longer `index-build-wait-secs` under [package.metadata.mongo-migrate]")]
    BuildNotCommitted {
        /// The collection.
        collection: String,
        /// The index's name.
        index: String,
        /// How long it was waited for.
        waited_secs: u64,
        /// The commit quorum it was built with.
        quorum: String,
    },
    /// Documents still violate the validator to enforce.
    #[error("{count} documents of `{collection}` violate its validator (for example _id {sample}); the validator stays at `warn`: fix them with a data migration placed just before this one (`cargo mongo-migrate new <name> --before <this migration's version>`: it takes this one's phase and runs first), then run `up --phase post` again (a generated migration is `REPEATABLE` and runs again; another needs `resolve <version> --pending` first); or call `force_validator` instead to enforce it with them as they are")]
    Violators {
        /// The collection.
        collection: String,
        /// How many documents.
        count: u64,
        /// A few of their `_id`s.
        sample: String,
    },
    /// Documents share the keys of a unique index to be built.
    #[error("{documents} documents of `{collection}` share their {keys} with another ({values} values held more than once; for example _id {sample}): the unique index `{index}` cannot be built, and nothing was changed; make them unique (a data migration) and run the migration again (a generated one is `REPEATABLE`; another needs `resolve <version> --pending` first)")]
    Duplicates {
        /// The collection.
        collection: String,
        /// The unique index.
        index: String,
        /// Its key paths.
        keys: String,
        /// Key values held by more than one document.
        values: u64,
        /// Documents that hold them.
        documents: u64,
        /// A few of their `_id`s.
        sample: String,
    },
    /// No index has the name.
    #[error("`{collection}` has no index named `{name}`: see its indexes with `db.{collection}.getIndexes()`")]
    NoSuchIndex {
        /// The collection.
        collection: String,
        /// The name.
        name: String,
    },
    /// The server answered `collMod` of `hidden` with `ok` and left the index
    /// as it was; the index was not rebuilt to hide it.
    #[error("the server answered `collMod` of `hidden` on the index `{name}` of `{collection}` with ok and left it as it was; {reason}: hide it by hand (`db.{collection}.hideIndex(\"{name}\")`) and check with `db.{collection}.getIndexes()`, or drop it without hiding it first")]
    HideIgnored {
        /// The collection.
        collection: String,
        /// The index.
        name: String,
        /// Why it was not rebuilt.
        reason: &'static str,
    },
    /// The server accepted a change and did not make it.
    #[error("the server accepted {what} on `{collection}` but did not do it, even when the index was rebuilt: on such a server, create the index hidden, or drop it without hiding it first")]
    Unsupported {
        /// The collection.
        collection: String,
        /// The change.
        what: &'static str,
    },
    /// A migration's JSON text of a document does not parse.
    #[error("the JSON of a document in the migration does not parse: {message}; fix the text, or generate the migration again with `cargo mongo-migrate diff`")]
    Json {
        /// The parser's words.
        message: String,
    },
    /// Enforcement outside the post-deploy phase.
    #[error("a validator of `{collection}` is enforced only in a post-deploy migration (`pub const PHASE: Phase = Phase::PostDeploy;`): old code may still write the old shape before the deploy")]
    NotPostDeploy {
        /// The collection.
        collection: String,
    },
}

impl SchemaError {
    fn server(what: &'static str, collection: &str, e: mongodb::error::Error) -> Self {
        SchemaError::Server {
            what,
            collection: collection.into(),
            message: crate::driver_message::plain(&e),
        }
    }
}

/// A count as the server gives it (an int32, int64 or double).
pub(crate) fn index_number(value: &bson::Bson) -> Option<u64> {
    index::number(value).filter(|n| *n >= 0.0).map(|n| n as u64)
}
