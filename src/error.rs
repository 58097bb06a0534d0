//! The library's one error type, grouped the way a user reads it: the request was
//! wrong, the input was bad, or something inside broke.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- the user asked for something that cannot be done
    #[error("{0}")]
    Usage(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A write was asked of an archive opened (or stored) read-only.
    #[error("read-only: {0}")]
    ReadOnly(String),

    // --- the input was bad
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("{path}:{line}: {message}")]
    InputLine {
        path: PathBuf,
        line: u64,
        message: String,
    },

    // --- something inside broke
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive storage: {0}")]
    Storage(#[from] redb::Error),
    /// A write failed for want of space: nothing of it was committed.
    #[error(
        "{}: the disk is full ({}): nothing of this change was committed; free space and run the command again (cause: {cause})",
        path.display(),
        free.map_or("free space unknown".to_string(), |f| format!("{f} bytes free"))
    )]
    DiskFull {
        path: PathBuf,
        free: Option<u64>,
        cause: String,
    },
    /// Another writer holds a lock; nothing was changed: run it again later.
    #[error("busy: {0}")]
    Busy(String),
    #[error("archive is corrupt: {0}")]
    Corrupt(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input {
            path: path.into(),
            message: message.into(),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Storage(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
