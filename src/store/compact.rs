//! Compaction: gives back the space of pack records retention destroyed.
//!
//! A pack whose live records (those a `sources` version, a `blobs` row or a
//! `filings` row points at) fill less than a share of it is emptied into the current pack,
//! one pack per write transaction: each live record is read, checked against
//! its hash, appended anew (framed and compressed, whatever the old pack's
//! format; item versions grouped anew, see `store::group`) and its pointer
//! moved, and its old range is queued for zeroing in
//! `scrub` like a deletion's. Once that transaction commits the old copies
//! are zeroed ([`Archive::scrub`]); a second transaction drops the pack's
//! row, and then the file goes. A process killed in between leaves either
//! the old pointers (nothing happened), or a pack that is all zeros with no
//! live record, which the next compaction drops. So no deleted byte is given
//! back to the file system unzeroed, and no live record is ever without a
//! copy a pointer reaches.

use super::pack::{Kind, PackRef};
use super::records::{BlobMeta, BlobPlace, Version};
use super::tables::{BLOBS, FILINGS, PACKS, SOURCES};
use super::{Archive, SourceRow, Tx, codec, filings};
use crate::error::{Error, Result};
use redb::ReadableTable;
use std::collections::BTreeMap;

/// One pack's size and the bytes of it still in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PackUse {
    pub pack: u32,
    pub committed: u64,
    pub live: u64,
    pub records: u64,
}

/// What compacting one pack did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub pack: u32,
    pub records: u64,
    /// Bytes of the old pack, and what its records take in their new place.
    pub old_bytes: u64,
    pub new_bytes: u64,
}

impl Archive {
    /// Every pack with its live bytes.
    pub fn pack_usage(&self) -> Result<Vec<PackUse>> {
        self.fold_blob_log()?;
        let txn = self.db.begin_read()?;
        let mut use_of: BTreeMap<u32, PackUse> = BTreeMap::new();
        for e in txn.open_table(PACKS)?.iter()? {
            let (k, v) = e?;
            use_of.insert(
                k.value(),
                PackUse {
                    pack: k.value(),
                    committed: v.value(),
                    ..PackUse::default()
                },
            );
        }
        let mut count = |r: &PackRef| {
            if let Some(u) = use_of.get_mut(&r.pack) {
                u.live += r.len;
                u.records += 1;
            }
        };
        // A group is one record however many versions it holds.
        let mut groups = std::collections::HashSet::new();
        for e in txn.open_table(SOURCES)?.iter()? {
            let (_, v) = e?;
            for version in &SourceRow::versions_of(v.value())? {
                if groups.insert(version.at) {
                    count(&version.at);
                }
            }
        }
        for e in txn.open_table(BLOBS)?.iter()? {
            let (_, v) = e?;
            if let BlobPlace::Pack(at) = codec::decode::<BlobMeta>(v.value())?.place {
                count(&at);
            }
        }
        for e in txn.open_table(FILINGS)?.iter()? {
            let (k, v) = e?;
            count(&filings::decode_row(k.value(), v.value())?.0);
        }
        Ok(use_of.into_values().collect())
    }

    /// Empties `pack` into the current one (a new one when `pack` is the
    /// current one) and removes it (see the module comment). `audit` records the move in the moving transaction. A
    /// record that does not match its hash stops the move: nothing changes,
    /// and `verify` names the record.
    pub fn compact_pack(
        &self,
        pack: u32,
        audit: &mut dyn FnMut(&mut Tx<'_>, &Moved) -> Result<()>,
    ) -> Result<Moved> {
        self.fold_blob_log()?;
        {
            let mut w = self.packs.writer();
            if w.current() == pack {
                w.seal();
            }
        }
        let moved = self.write(|tx| {
            let mut moved = tx.move_records(pack)?;
            moved.pack = pack;
            audit(tx, &moved)?;
            Ok(moved)
        })?;
        // The write zeroed the old copies, unless that failed: the pack is
        // dropped only once it has (a failure here leaves it for the next
        // compaction, zeroed on the next open).
        self.scrub()?;
        self.write(|tx| {
            tx.pack_lengths.remove(pack)?;
            tx.count_destruction()
        })?;
        self.packs.remove(pack)?;
        Ok(moved)
    }
}

impl Tx<'_> {
    /// Moves every live record of `pack` to the current pack.
    fn move_records(&mut self, pack: u32) -> Result<Moved> {
        let mut moved = Moved {
            old_bytes: self.pack_lengths.get(pack)?.map_or(0, |v| v.value()),
            ..Moved::default()
        };
        let appended = self.pack.appended();
        let mut rows: Vec<(Vec<u8>, Vec<u8>, Vec<Version>)> = Vec::new();
        for e in self.sources.iter()? {
            let (k, v) = e?;
            let versions = SourceRow::versions_of(v.value())?;
            if versions.iter().any(|v| v.at.pack == pack) {
                rows.push((k.value().to_vec(), v.value().to_vec(), versions));
            }
        }
        let mut blobs: Vec<([u8; 32], BlobMeta)> = Vec::new();
        for e in self.blobs.iter()? {
            let (k, v) = e?;
            let meta: BlobMeta = codec::decode(v.value())?;
            if matches!(meta.place, BlobPlace::Pack(at) if at.pack == pack) {
                let sha = <[u8; 32]>::try_from(k.value())
                    .map_err(|_| Error::Corrupt("a blobs key is not a SHA-256".into()))?;
                blobs.push((sha, meta));
            }
        }
        let mut logs = Vec::new();
        for e in self.filings.range(&pack.to_be_bytes()[..]..)? {
            let (k, v) = e?;
            let (at, sha) = filings::decode_row(k.value(), v.value())?;
            if at.pack != pack {
                break;
            }
            logs.push((k.value().to_vec(), at, sha));
        }
        if !rows.is_empty() || !blobs.is_empty() || !logs.is_empty() {
            // Dictionaries go first, so that the new pack reads on its own.
            let mut dicts = Vec::new();
            for e in self.dicts.iter()? {
                dicts.push(super::frame::dict_of_stored(e?.1.value())?);
            }
            for d in &dicts {
                self.pack.append(Kind::Dict, d)?;
            }
        }
        // Versions are grouped anew (those of older formats included); each
        // old record goes once every version in it has moved.
        let mut old_records = std::collections::BTreeSet::new();
        for (k, bytes, mut versions) in rows {
            self.make_room()?;
            for v in versions.iter_mut().filter(|v| v.at.pack == pack) {
                let content = self.packs.read_version(&v.at, &v.content).map_err(|e| {
                    Error::Corrupt(format!(
                        "{e}: the pack is not compacted (`tgvault verify` names the item)"
                    ))
                })?;
                old_records.insert(v.at);
                v.at = self.store_content(&content, &v.content)?;
                moved.records += 1;
            }
            let unplaced = versions.iter().any(|v| v.at == super::pack::UNPLACED);
            let bytes = SourceRow::with_versions(&bytes, &versions)?;
            self.put_source_bytes(&k, bytes, unplaced)?;
        }
        for old in &old_records {
            self.destroy(old)?;
        }
        for (sha, mut meta) in blobs {
            if let BlobPlace::Pack(old) = meta.place {
                let at = self.copy_record(Kind::Blob, &old, &sha)?;
                moved.records += 1;
                meta.place = BlobPlace::Pack(at);
                self.blobs
                    .insert(sha.as_slice(), codec::encode(&meta).as_slice())?;
            }
        }
        for (key, old, sha) in logs {
            let at = self.copy_record(Kind::Filings, &old, &sha)?;
            moved.records += 1;
            self.filings.remove(key.as_slice())?;
            self.filings.insert(
                at.scrub_key().as_slice(),
                filings::row_value(at.len, &sha).as_slice(),
            )?;
        }
        self.close_group()?;
        moved.new_bytes = self.pack.appended() - appended;
        Ok(moved)
    }

    /// Appends a copy of the record at `old` (whose content hashes to
    /// `sha`) and queues the old range for zeroing.
    fn copy_record(&mut self, kind: Kind, old: &PackRef, sha: &[u8; 32]) -> Result<PackRef> {
        let content = self.packs.read(old)?;
        if crate::model::sha256(&content) != *sha {
            return Err(Error::Corrupt(format!(
                "{old} does not match its SHA-256 {}: the pack is not compacted (`tgvault verify` names the item)",
                hex::encode(sha)
            )));
        }
        let at = self.pack.append(kind, &content)?;
        self.destroy(old)?;
        Ok(at)
    }
}
