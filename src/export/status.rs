//! `Export Status.txt`: whether a package is whole.
//!
//! The file is the package's first and last write. It says `in progress`
//! from before the first item is written, and is replaced (written beside
//! it, synced, renamed over it) by `complete` only once every item and
//! report is on disk, or by `failed` with the error. A package whose status
//! is not `complete` (a process killed, a full disk) is recognisably not
//! whole; its export run and outcome are on the audit trail either way.

use super::ExportSummary;
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// The file's name in the package.
pub const FILE: &str = "Export Status.txt";

pub enum Status<'a> {
    InProgress { run: u64 },
    Complete { summary: &'a ExportSummary },
    Failed { run: u64, error: String },
}

impl Status<'_> {
    fn text(&self) -> String {
        match self {
            Status::InProgress { run } => format!(
                "status: in progress\nrun: {run}\n\nThis package is being written, or its export was \
                 interrupted. It is not complete: do not review or produce it. The archive's audit \
                 trail records export run {run} and how it ended.\n"
            ),
            // No run id: a complete package repeats byte for byte.
            Status::Complete { summary } => format!(
                "status: complete\nitems: {}\nduplicates: {}\nbytes: {}\nerrors: {}\n",
                summary.items, summary.duplicates, summary.bytes, summary.errors
            ),
            Status::Failed { run, error } => format!(
                "status: failed\nrun: {run}\nerror: {}\n\nThis package is not complete: do not \
                 review or produce it.\n",
                error.replace(['\n', '\r'], " ")
            ),
        }
    }
}

fn io(p: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(p, e)
}

/// A status written beside the package's and synced, not yet in force.
pub struct Staged {
    tmp: std::path::PathBuf,
    out: std::path::PathBuf,
}

/// Writes the status of the package in `out` beside the current one.
pub fn stage(out: &Path, status: &Status<'_>) -> Result<Staged> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let tmp = out.join(format!(".{FILE}.new"));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(status.text().as_bytes()).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    Ok(Staged {
        tmp,
        out: out.to_path_buf(),
    })
}

impl Staged {
    /// Puts the status in force: a rename, made durable.
    pub fn commit(self) -> Result<()> {
        let path = self.out.join(FILE);
        std::fs::rename(&self.tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.out)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.out))
    }
}

/// Writes the status of the package in `out` and puts it in force.
pub fn write(out: &Path, status: &Status<'_>) -> Result<()> {
    stage(out, status)?.commit()
}

/// The first line's status of the package in `out`, if it has the file.
pub fn read(out: &Path) -> Option<String> {
    let text = std::fs::read_to_string(out.join(FILE)).ok()?;
    text.lines()
        .next()?
        .strip_prefix("status: ")
        .map(str::to_string)
}
