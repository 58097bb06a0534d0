//! The values stored in the tables (besides `model::Item`), each encoded by
//! [`super::codec`].

use crate::model::{ItemKind, Person};
use crate::report::FileReport;
use serde::{Deserialize, Serialize};

/// One filed copy of an item in a mailbox folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filing {
    pub date: Option<i64>,
    pub kind: ItemKind,
    /// The run that filed it.
    pub run: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Oldest first; the last is the current version.
    pub versions: Vec<Version>,
    /// Every `(mailbox, folder)` the item is filed in.
    pub locations: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// SHA-256 of this version's encoded item.
    pub content: [u8; 32],
    /// Length of the encoded item in the source row.
    pub len: u64,
    /// The item's source fingerprint (`model::Item::fingerprint`).
    pub fingerprint: [u8; 32],
    /// How many of its attachments have content.
    pub with_content: u32,
    pub run: u64,
    pub edited: Option<i64>,
}

/// Who an export belonged to, kept with a quarantined item so that a later
/// mapping can still resolve it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Custodian {
    pub owner: Option<Person>,
    /// The address named with `--mailbox` for the export.
    pub address: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub run: u64,
    pub reason: String,
    pub custodian: Custodian,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlobPlace {
    /// In the `blob_data` table.
    Inline,
    /// In `blobs/sha256/XX/<hex>` under the archive directory.
    File,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    pub size: u64,
    pub place: BlobPlace,
    pub run: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderStats {
    pub items: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunStatus {
    Running,
    Completed,
    /// Finished, but at least one file or item failed.
    CompletedWithErrors,
    /// Found still `Running` when the archive was next opened: the process died.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::CompletedWithErrors => "completed with errors",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: u64,
    /// `import` or `remap`.
    pub kind: String,
    pub started: i64,
    pub finished: Option<i64>,
    pub actor: String,
    /// The arguments the run was started with.
    pub args: Vec<String>,
    pub status: RunStatus,
    pub files: Vec<FileReport>,
}
