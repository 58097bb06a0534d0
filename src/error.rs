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
    /// The caller could not be identified: no credential, or one nobody holds.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller is known but holds no role that permits this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The request contradicts what the archive holds (it exists already).
    #[error("conflict: {0}")]
    Conflict(String),

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
    Storage(crate::store::StorageError),
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

/// What a caller must do about an error, whatever its interface: an HTTP
/// status or an exit code is chosen from this, never from the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The request itself is wrong: fix it.
    Invalid,
    NotFound,
    /// Authenticate.
    Unauthenticated,
    /// Ask for the role, or do not.
    Forbidden,
    /// The archive's state stands in the way (exists already, busy, read-only): try later or otherwise.
    Conflict,
    /// An input file is bad (its name, and line where there is one, are in the error).
    BadInput,
    /// Something inside broke.
    Internal,
}

impl Error {
    pub fn kind(&self) -> Kind {
        match self {
            Error::Usage(_) => Kind::Invalid,
            Error::NotFound(_) => Kind::NotFound,
            Error::Unauthenticated(_) => Kind::Unauthenticated,
            Error::Forbidden(_) => Kind::Forbidden,
            Error::Conflict(_) | Error::Busy(_) | Error::ReadOnly(_) => Kind::Conflict,
            Error::Input { .. } | Error::InputLine { .. } => Kind::BadInput,
            Error::Io { .. }
            | Error::Storage(_)
            | Error::DiskFull { .. }
            | Error::Corrupt(_)
            | Error::Internal(_) => Kind::Internal,
        }
    }

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
