use std::path::PathBuf;

/// Errors of registry generation. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{}: not a migration file name: {reason}; expected m<YYYYMMDD_HHMMSS>_<snake_name>.rs", path.display())]
    BadFileName { path: PathBuf, reason: String },

    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("duplicate migration version {version}: {} and {}; give one of them a new timestamp", first.display(), second.display())]
    DuplicateVersion {
        version: String,
        first: PathBuf,
        second: PathBuf,
    },

    #[error("invalid migration name `{input}`: after normalising it must be a snake_case identifier of letters, digits and `_`, starting with a letter")]
    InvalidName { input: String },

    #[error("invalid version `{input}`: expected 14 digits YYYYMMDDHHMMSS forming a real UTC date and time")]
    InvalidVersion { input: String },

    #[error("{}: {message}", path.display())]
    Snapshot { path: PathBuf, message: String },

    #[error("{var} is not set; call `mongo_migrations_codegen::build` from a build script")]
    NotInBuildScript { var: &'static str },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
