//! The values stored in the tables (besides `model::Item`), each encoded by
//! [`super::codec`].

use crate::model::{ItemKind, Person};
use crate::report::FileReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One filed copy of an item in a mailbox folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filing {
    pub date: Option<i64>,
    pub kind: ItemKind,
    /// The run that filed it.
    pub run: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
        use sha2::Digest;
        // The SHA-256 of these pieces one after the other.
        let mut h = sha2::Sha256::new();
        for v in &self.versions {
            h.update(v.content);
        }
        for (m, f) in &self.locations {
            h.update(m.as_bytes());
            h.update([0]);
            h.update(f.as_bytes());
            h.update([0]);
        }
        for (k, m) in &self.addresses {
            h.update(k.as_bytes());
            h.update([1]);
            h.update(m.as_bytes());
            h.update([1]);
        }
        h.update([deleted as u8]);
        let h: [u8; 32] = h.finalize().into();
        // 32 bits: a stale document goes unnoticed once in 4 billion, and
        // the index's column takes half the bytes of 64.
        u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]))
    }
}

/// A `sources` row as format 8 stores it: [`SourceRecord`] with its names
/// by number (see `store::names`). The versions come first, so that code
/// which needs only the versions reads them alone.
#[derive(Serialize)]
pub(super) struct StoredSourceRef<'a> {
    pub versions: &'a [Version],
    pub locations: Vec<(u32, u32)>,
    pub addresses: Vec<(u32, u32)>,
}

/// What [`StoredSourceRef`] encodes, read back; with `V` = [`VersionV7`],
/// a row as formats 6 and 7 stored it.
#[derive(Deserialize)]
pub(super) struct StoredSource<V = Version> {
    pub versions: Vec<V>,
    pub locations: Vec<(u32, u32)>,
    pub addresses: Vec<(u32, u32)>,
}

/// One version of an item (format 8). Its source fingerprint
/// (`model::Item::fingerprint`) is in the item itself, read when a re-import
/// brings other bytes of the same item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// SHA-256 of this version's encoded item.
    pub content: [u8; 32],
    /// Where the encoded item is: its own pack record or its group's.
    pub at: super::pack::PackRef,
    /// How many of its attachments have content.
    pub with_content: u32,
    pub run: u64,
    pub edited: Option<i64>,
}

/// A version as formats 2 to 7 stored it, with the fingerprint.
#[derive(Deserialize)]
pub(super) struct VersionV7 {
    content: [u8; 32],
    at: super::pack::PackRef,
    _fingerprint: [u8; 32],
    with_content: u32,
    run: u64,
    edited: Option<i64>,
}

impl From<VersionV7> for Version {
    fn from(v: VersionV7) -> Version {
        Version {
            content: v.content,
            at: v.at,
            with_content: v.with_content,
            run: v.run,
            edited: v.edited,
        }
    }
}

/// A `sources` row as formats 2 to 5 stored it, its names spelt out.
#[derive(Deserialize)]
pub(super) struct SourceRecordV5 {
    pub versions: Vec<VersionV7>,
    pub locations: Vec<(String, String)>,
    pub addresses: Vec<(String, String)>,
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
    /// Stopped by an error (an export on a full disk).
    Failed,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::CompletedWithErrors => "completed with errors",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Failed => "failed",
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

/// A user of the archive: a principal with roles (`service::access::Role`
/// names), and the OS account that acts as it through the server's socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub roles: Vec<String>,
    pub os_user: Option<String>,
    pub created: i64,
    pub actor: String,
}

/// An API token: the user it acts as and a slow salted hash of its secret
/// (a PHC string); the secret itself is never stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub user: String,
    pub hash: String,
    pub created: i64,
    pub expires: Option<i64>,
    pub actor: String,
}

/// A user's membership of a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub added: i64,
    pub actor: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pack::PackRef;
    use crate::store::{SourceRow, codec};

    /// A row of format 7 (each version with its fingerprint, after `at`)
    /// becomes format 8's form with the same versions, names and order; a
    /// backup's old rows read in either form, whole or not at all.
    #[test]
    fn rows_of_format_7_lose_only_their_fingerprints() {
        #[derive(Serialize)]
        struct V7 {
            content: [u8; 32],
            at: PackRef,
            fingerprint: [u8; 32],
            with_content: u32,
            run: u64,
            edited: Option<i64>,
        }
        let at = |offset| PackRef {
            pack: 3,
            offset,
            len: 400,
        };
        let old = (
            vec![
                V7 {
                    content: [1; 32],
                    at: at(10),
                    fingerprint: [2; 32],
                    with_content: 1,
                    run: 4,
                    edited: None,
                },
                V7 {
                    content: [5; 32],
                    at: at(900),
                    fingerprint: [6; 32],
                    with_content: 1,
                    run: 7,
                    edited: Some(1_700_000_000),
                },
            ],
            vec![(1u32, 2u32)],
            vec![(3u32, 1u32)],
        );
        let bytes = codec::encode(&old);
        let new = SourceRow::from_format_7(&bytes).unwrap();
        let row: StoredSource = codec::decode(&new).unwrap();
        assert_eq!(row.locations, vec![(1, 2)]);
        assert_eq!(row.addresses, vec![(3, 1)]);
        let want = |v: &V7| Version {
            content: v.content,
            at: v.at,
            with_content: v.with_content,
            run: v.run,
            edited: v.edited,
        };
        let versions: Vec<Version> = old.0.iter().map(want).collect();
        assert_eq!(row.versions, versions);
        assert_eq!(SourceRow::versions_of_older(&bytes).unwrap(), versions);
        assert_eq!(SourceRow::versions_of_older(&new).unwrap(), versions);
        assert_eq!(SourceRow::versions_of(&new).unwrap(), versions);
        assert!(SourceRow::versions_of_older(&bytes[..bytes.len() - 1]).is_err());
        assert!(SourceRow::from_format_7(&new).is_err());
    }

    /// The stamp is the first 4 bytes (big-endian) of the SHA-256 of the
    /// pieces `docs/format.md` lists, in order (an index of another schema
    /// is rebuilt, never compared).
    #[test]
    fn stamp_hashes_the_documented_pieces() {
        let version = |c: u8| Version {
            content: [c; 32],
            at: PackRef {
                pack: 1,
                offset: 2,
                len: 3,
            },
            with_content: 0,
            run: 1,
            edited: None,
        };
        let rec = SourceRecord {
            versions: vec![version(7), version(8)],
            locations: vec![("a@x.example".into(), "Telegram Archiver".into())],
            addresses: vec![("user1".into(), "a@x.example".into())],
        };
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&[7; 32]);
        bytes.extend_from_slice(&[8; 32]);
        bytes.extend_from_slice(b"a@x.example\0Telegram Archiver\0");
        bytes.extend_from_slice(b"user1\x01a@x.example\x01");
        for deleted in [false, true] {
            let mut b = bytes.clone();
            b.push(deleted as u8);
            let h = crate::model::sha256(&b);
            assert_eq!(
                rec.stamp(deleted),
                u64::from(u32::from_be_bytes(h[..4].try_into().unwrap()))
            );
        }
        assert_ne!(rec.stamp(false), rec.stamp(true));
    }
}

/// A connector: what it captures from, how, and what state it is in. Its
/// secrets are files named here, never their contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorRecord {
    /// `bot`, ...
    pub kind: String,
    /// The kind's settings, by option name (`api-url`, `token-file`, ...).
    pub settings: BTreeMap<String, String>,
    /// The user map (CSV) its items are mapped through, read at each run.
    pub mapping: Option<String>,
    /// The custodian's mailbox when the map names none.
    pub mailbox: Option<String>,
    pub state: ConnectorState,
    pub created: i64,
    pub actor: String,
    /// The run (admin log record) it is filing into, and the UTC day of it.
    pub run: Option<(u64, i64)>,
    /// When it last asked its source successfully, and when that last
    /// brought an item.
    pub last_contact: Option<i64>,
    pub last_capture: Option<i64>,
    /// The last error it met (transient ones included), with when.
    pub last_error: Option<(i64, String)>,
    /// Spans without contact longer than the source keeps what it has
    /// (the Bot API: 24 hours): items may have been lost in them.
    pub losses: Vec<(i64, i64)>,
    /// Items captured per hour (hours since 1970), the last 25 hours.
    pub hourly: Vec<(i64, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectorState {
    Active,
    Paused,
    /// Stopped by a failure that retrying cannot mend (credentials refused),
    /// until `connector resume`.
    Failed(String),
}

/// Where a connector is in its source: for the Bot API, the next update id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorPosition {
    pub cursor: i64,
    /// Delivery packages taken whole, by name.
    pub taken: Vec<String>,
}

/// A business account's connection of the bot, as the source reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    pub user_id: i64,
    pub user_name: Option<String>,
    pub username: Option<String>,
    pub user_chat_id: Option<i64>,
    pub date: Option<i64>,
    pub enabled: bool,
    /// The rights granted, as the source named them.
    pub rights: Vec<String>,
    /// When tgvault recorded it.
    pub seen: i64,
}

/// A forwarding target: where filed copies are delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardTarget {
    /// `imap` or `graph`.
    pub kind: String,
    /// Its settings, by option name (`url`, `user`, `password-file`, ...):
    /// paths of secrets, never their contents.
    pub settings: Vec<(String, String)>,
    /// Only copies in these mailboxes (none: every mailbox).
    pub mailboxes: Vec<String>,
    /// Only copies of items this KQL query matches.
    pub query: Option<String>,
    pub state: ConnectorState,
    pub created: i64,
}

impl ForwardTarget {
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What became of one version of one copy at one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// Being sent: recorded before the target was asked. Found after a
    /// crash, it is in doubt, resolved by looking the message up at the
    /// target before anything is sent again.
    Sending,
    /// The target confirmed it: its id there (`UIDVALIDITY/UID` for IMAP,
    /// or empty when the server names none).
    Delivered { remote: String },
    /// The target refused it, or it could not be sent: why.
    Failed { reason: String },
    /// The target confirmed it, holding less than everything (the MIME
    /// rebuilt, an attachment replaced by a note): its id there, and why.
    Partial { remote: String, why: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    pub delivery: Delivery,
    /// Attempts so far (a `Sending` row counts the one under way).
    pub attempts: u32,
    /// When the row last changed (UTC seconds).
    pub at: i64,
    /// The forward run that last changed it.
    pub run: u64,
}
