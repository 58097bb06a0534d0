//! Every redb table of the archive, with what it maps. `docs/format.md` draws the
//! key and value bytes of each; keep the two in step.

use redb::TableDefinition;

/// `ItemKey(mailbox, folder, item)` -> `Filing`: one row per filed copy of an item.
pub const ITEMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items");
/// `ItemId` -> `SourceRecord`: every version of a source item and where it is filed.
pub const SOURCES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sources");
/// `VersionKey(ItemId, index)` -> encoded `model::Item`: one immutable item
/// version, shared by every mailbox copy; its SHA-256 is in the source record.
pub const VERSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("versions");
/// SHA-256 of the blob -> `BlobMeta`: every attachment blob the archive holds.
pub const BLOBS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blobs");
/// SHA-256 of the blob -> the blob's raw bytes, for blobs stored inline.
pub const BLOB_DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blob_data");
/// `ItemId` -> `QuarantineRecord`: items that mapped to no mailbox.
pub const QUARANTINE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("quarantine");
/// `(mailbox, folder)` -> `FolderStats`.
pub const FOLDERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("folders");
/// Run id -> `RunRecord`: every import or remap ever started.
pub const RUNS: TableDefinition<u64, &[u8]> = TableDefinition::new("runs");
/// Archive-wide settings: `schema` -> the schema version byte.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
