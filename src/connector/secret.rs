//! Secret files (a bot token, a password, a private key): read only when
//! they are their owner's alone. The archive keeps their paths; their
//! contents go nowhere but to the source they open.

use crate::error::{Error, Result};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Checks that `path` is a regular file of the running account that no
/// one else may read or write.
pub fn check(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::input(path, "a secret must be a regular file"));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::input(
            path,
            format!(
                "the secret file can be read or written by others (mode {mode:04o}): make it its owner's only (chmod 600)"
            ),
        ));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::input(
            path,
            format!(
                "the secret file belongs to {}, not to {} who runs tgvault",
                crate::os::account(meta.uid()),
                crate::os::account(me)
            ),
        ));
    }
    Ok(())
}

/// Reads a secret: its first line, trimmed, after [`check`]. The error
/// names the file, never what it holds.
pub fn read(path: &Path) -> Result<String> {
    check(path)?;
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(text)
        .map_err(|_| Error::input(path, "the secret file is not UTF-8 text"))?;
    let first = text.lines().next().unwrap_or("").trim().to_string();
    if first.is_empty() {
        return Err(Error::input(path, "the secret file is empty"));
    }
    Ok(first)
}
