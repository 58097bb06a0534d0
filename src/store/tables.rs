//! Every redb table of the archive, with what it maps. `docs/format.md` draws the
//! key and value bytes of each; keep the two in step.

use redb::TableDefinition;

/// `ItemKey(mailbox, folder, item)` -> `Filing`: one row per filed copy of an item.
pub const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
/// `ItemId` -> `SourceRecord`: every version's hash and pack record, where the
/// item is filed, the participants' mapped addresses. One row per source item,
/// shared by every mailbox copy.
pub const SOURCES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sources");
/// SHA-256 of the blob -> `BlobMeta`: every attachment blob the archive holds
/// (but those still in `BLOB_LOG`), with how many item versions use it.
pub const BLOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blobs");
/// Pack id -> its committed length in bytes (see `pack`).
pub const PACKS: TableDefinition<u32, u64> = TableDefinition::new("packs");
/// zstd dictionary id -> the dictionary's bytes (see `frame`).
pub const DICTS: TableDefinition<u32, &[u8]> = TableDefinition::new("dicts");
/// `pack id (u32 BE) ++ offset (u64 BE)` -> length: pack records retention
/// deleted, to be overwritten with zeros once the deleting transaction has
/// committed; empty except between that commit and the scrub.
pub const SCRUB: TableDefinition<&[u8], u64> = TableDefinition::new("scrub");
/// `pack id (u32 BE) ++ offset (u64 BE)` -> `length (u64 BE) ++ SHA-256 of
/// the content`: every filing-log record in the packs (see `filings`), so
/// that compaction moves them and `verify` reads them.
pub const FILINGS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("filings");
/// `ItemId` -> `QuarantineRecord`: items that mapped to no mailbox.
pub const QUARANTINE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("quarantine");
/// `(mailbox, folder)` -> `FolderStats`.
pub const FOLDERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("folders");
/// Run id -> `RunRecord`: every import or remap ever started.
pub const RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("runs");
/// Sequence number -> `audit::Entry`: the hash-chained audit trail.
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// Sequence number -> `(ItemId ++ flag)*`: one row per write transaction that
/// changed source rows (new item, new version, new filing, a deletion event
/// recorded against it), or one per 10,000 changes of a larger one, in commit
/// order. The search index applies them and
/// records the last row it applied; rows it has committed are trimmed. Flag
/// `0`: the source row is new, `1`: it changed.
pub const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
/// Sequence number -> `LoggedBlob`: blobs added since the log was last folded
/// into `blobs`. An import appends here instead of inserting under a random
/// hash (which would dirty one B-tree leaf per attachment per commit); the log
/// is folded, in hash order, when it reaches `blob_rows::FOLD_AT` rows, at the
/// end of an import and on open.
pub const BLOB_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("blob_log");
/// Hold key (`lit 00 mailbox` or `case 00 NAME 00 ID`) -> `StoredHold`.
pub const HOLDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("holds");
/// Case name -> `CaseRecord`.
pub const CASES: TableDefinition<&str, &[u8]> = TableDefinition::new("cases");
/// Policy name -> `StoredPolicy`.
pub const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("policies");
/// `ItemKey` -> `Tombstone`: a copy retention deleted, and why.
pub const TOMBSTONES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("tombstones");
/// Archive-wide settings: `schema` -> the schema version byte.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `store::key::access_key` / `member_key` -> `UserRecord`, `TokenRecord` or
/// `MemberRecord`: who may act on the archive (absent in archives made
/// before access control: read as empty).
pub const ACCESS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("access");
/// `store::key::connector_key` -> `ConnectorRecord`, a position
/// (`ConnectorPosition`) or a `ConnectionRecord`: the connectors that capture
/// by themselves, where each is in its source, and the business connections
/// their sources reported (absent in older archives: read as empty).
pub const CONNECTORS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("connectors");
/// `store::key::forward_target_key` -> `ForwardTarget`, and
/// `store::key::ledger_key` -> `LedgerRecord`: where copies are forwarded,
/// and what became of each version of each copy at each target (absent in
/// older archives: read as empty).
pub const FORWARD: TableDefinition<&[u8], &[u8]> = TableDefinition::new("forward");
/// Name number -> its UTF-8 text: the mailboxes, folders and person keys a
/// `sources` row names by number (format 6; see `names`).
pub const NAMES: TableDefinition<u32, &[u8]> = TableDefinition::new("names");
