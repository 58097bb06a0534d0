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
    /// The mailbox each participant resolved to when the item was filed:
    /// `(Person::key, mailbox)`, for searches by address.
    pub addresses: Vec<(String, String)>,
}

impl SourceRecord {
    /// A short digest of everything the search index derives from this row:
    /// the versions, the filings, the addresses, and whether a deletion event
    /// names the item. A document whose stamp differs from this is stale.
    pub fn stamp(&self, deleted: bool) -> u64 {
        let mut bytes = Vec::with_capacity(64 * self.versions.len() + 64);
        for v in &self.versions {
            bytes.extend_from_slice(&v.content);
        }
        for (m, f) in &self.locations {
            bytes.extend_from_slice(m.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(f.as_bytes());
            bytes.push(0);
        }
        for (k, m) in &self.addresses {
            bytes.extend_from_slice(k.as_bytes());
            bytes.push(1);
            bytes.extend_from_slice(m.as_bytes());
            bytes.push(1);
        }
        bytes.push(deleted as u8);
        let h = crate::model::sha256(&bytes);
        u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// SHA-256 of this version's encoded item.
    pub content: [u8; 32],
    /// Where the encoded item is.
    pub at: super::pack::PackRef,
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
    /// A record in a pack file (blobs up to `blob::INLINE_MAX` bytes).
    Pack(super::pack::PackRef),
    /// In `blobs/sha256/XX/<hex>` under the archive directory.
    File,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    pub size: u64,
    pub place: BlobPlace,
    pub run: u64,
    /// How many item versions hold the blob (a version counts once, however
    /// many of its attachments have these bytes). Retention frees the blob
    /// when the last of them is deleted.
    pub refs: u64,
}

/// A `blob_log` row: a blob added since the log was last folded into `blobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedBlob {
    pub sha: [u8; 32],
    pub meta: BlobMeta,
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

/// A hold in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHold {
    pub hold: crate::policy::Hold,
    pub created: i64,
    pub actor: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRecord {
    pub created: i64,
    pub actor: String,
    /// When the case was closed (its holds released), if it was.
    pub closed: Option<i64>,
    /// The id the next hold of this case gets.
    pub next_hold: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    pub policy: crate::policy::Policy,
    pub created: i64,
    pub actor: String,
}

/// The record of a copy that retention deleted: what it held (the SHA-256 of
/// every version), when, under which policy, in which run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub versions: Vec<[u8; 32]>,
    pub date: Option<i64>,
    pub deleted_at: i64,
    pub policy: String,
    pub run: u64,
}
