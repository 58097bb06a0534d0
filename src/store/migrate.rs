//! Format migrations, run by [`super::Archive::open`] in one write
//! transaction each: a migration lands whole or not at all.
//!
//! Format 2 -> 3: format 2 kept which source rows use which blob in
//! `blob_refs` (`sha256 ++ ItemId` -> empty) and no count in `blobs`. Format 3
//! counts uses in each `blobs` row (one per item version holding the blob) and
//! logs new blobs in `blob_log`. The counts come from `blob_refs`: a row with
//! one version uses the blob once; the versions of a row with several are read
//! to count those that hold it. Then `blob_refs` is dropped.
//!
//! Format 3 -> 4: format 4 frames pack records ([`super::frame`]) and
//! compresses their contents. Format 3's packs stay as they are, read as
//! bare contents: `meta/framed_from` names the first pack with framed
//! records (one past the last pack at migration), and the writer never
//! appends to a pack before it. Rewriting old records compressed is
//! compaction's work, not the migration's, so the migration is one small
//! transaction however large the archive.
//!
//! Format 4 -> 5: format 5 may compress a blob file (`HEX.zst`, see
//! [`super::blob`]); format 4's blob files are read as they are. Nothing is
//! rewritten: the migration records the new format, so that a build that
//! reads only format 4 refuses the archive instead of missing its
//! compressed blobs.
//!
//! Format 5 -> 6: format 6 numbers the mailboxes, folders and person keys a
//! `sources` row names and those in `items` keys ([`super::names`]). Every
//! `sources` row is rewritten, in steps, and every `items` row copied under
//! its new key into a new table that then takes the old one's name, in the
//! one transaction of the migration.
//!
//! Format 6 -> 7: format 7 keeps a filing log in the packs
//! ([`super::filings`]). The migration writes one for every copy `items`
//! holds (a record per [`super::filings::RECORD_COPIES`] copies), listed in
//! the new `filings` table, in one write transaction that also records
//! format 7.
//!
//! Formats 7 and 8 -> 9: format 8 stores item versions in groups
//! ([`super::group`]) and keeps their source fingerprints only in the items
//! themselves; format 9 stores a fingerprint as the canonical form of the
//! item's raw text that gives it ([`crate::canon`], version 2 of an item's
//! encoding, see [`codec::encode_item`]) and writes every key that holds an
//! item id in a shorter form that sorts the same ([`key::put_item_id`]).
//! Pack records and items stay as they are: a `v` record or a version-1
//! item is read as it is, and compaction groups old records anew. One
//! write transaction copies every row of the tables keyed by item ids
//! under its new key into a new table that then takes the old one's name,
//! rewrites the `changes` records, rewrites each `sources` row of format 6
//! or 7 without its fingerprints on the way (rows of format 5 and before
//! reach that form in [`from_5`] directly), and records format 9.

use super::codec;
use super::key;
use super::names::{Names, NewNames};
use super::pack::Packs;
use super::records::{BlobMeta, BlobPlace};
use super::tables::{BLOBS, CHANGES, FORWARD, ITEMS, META, NAMES, QUARANTINE, SOURCES, TOMBSTONES};
use super::{Archive, SCHEMA_VERSION, SourceRow};
use crate::error::{Error, Result};
use redb::{Database, ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::Deserialize;
use std::ops::Bound;

/// `meta` key of a migration not yet on the audit trail: `[from, to]`. The
/// store has no clock or actor; the caller records the migration
/// ([`super::Archive::unaudited_migration`], [`super::Tx::audit_migration`]).
pub(super) const UNAUDITED: &str = "unaudited_migration";

/// `meta` key: the first pack whose records are framed (u32 big-endian).
pub(super) const FRAMED_FROM: &str = "framed_from";

/// `meta/framed_from`, when the archive has it (format 4).
pub(super) fn framed_from(txn: &redb::ReadTransaction) -> Result<Option<u32>> {
    let meta = txn.open_table(META)?;
    let Some(v) = meta.get(FRAMED_FROM)? else {
        return Ok(None);
    };
    let b: [u8; 4] = v.value().try_into().map_err(|_| {
        Error::Corrupt(format!(
            "meta/{FRAMED_FROM} has {} bytes, not 4",
            v.value().len()
        ))
    })?;
    Ok(Some(u32::from_be_bytes(b)))
}

/// Records format `to` and the migration not yet on the audit trail: from
/// the format an earlier step of the same open started at, else `from`.
fn record_format(meta: &mut redb::Table<&str, &[u8]>, from: u8, to: u8) -> Result<()> {
    let first = match meta.get(UNAUDITED)? {
        Some(v) => v.value().first().copied().unwrap_or(from),
        None => from,
    };
    meta.insert("schema", [to].as_slice())?;
    meta.insert(UNAUDITED, [first, to].as_slice())?;
    Ok(())
}

pub(super) fn from_3(db: &Database, framed_from: u32) -> Result<()> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        // A migration from 2 in the same open is recorded as 2 -> 5.
        meta.insert(FRAMED_FROM, framed_from.to_be_bytes().as_slice())?;
        record_format(&mut meta, 3, 5)?;
    }
    txn.commit()?;
    tracing::info!(framed_from, "archive migrated from format 3 to 5");
    Ok(())
}

pub(super) fn from_4(db: &Database) -> Result<()> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert("schema", [5u8].as_slice())?;
        meta.insert(UNAUDITED, [4u8, 5].as_slice())?;
    }
    txn.commit()?;
    tracing::info!("archive migrated from format 4 to 5");
    Ok(())
}

pub(super) fn from_5(db: &Database) -> Result<()> {
    let txn = db.begin_write()?;
    let rows;
    let mut new = NewNames::default();
    {
        let known = Names::default();
        let mut names = txn.open_table(NAMES)?;
        let mut sources = txn.open_table(SOURCES)?;
        rows = rewrite_rows(&mut sources, 6, |v| {
            SourceRow::decode_spelt(v)?.encode(&mut |n| new.intern(&known, &mut names, n))
        })?;
        let old = txn.open_table(ITEMS)?;
        let mut filings = txn.open_table(ITEMS_6)?;
        for e in old.iter()? {
            let (k, v) = e?;
            let key = key::fixed::decode_item_key(k.value()).map_err(|e| {
                Error::Corrupt(format!(
                    "items key {}: {e}; the migration to format 6 cannot rewrite it",
                    hex::encode(k.value())
                ))
            })?;
            let m = new.intern(&known, &mut names, &key.mailbox)?;
            let f = new.intern(&known, &mut names, &key.folder)?;
            filings.insert(
                key::fixed::filing_key(m, f, &key.item).as_slice(),
                v.value(),
            )?;
        }
        record_format(&mut txn.open_table(META)?, 5, 6)?;
    }
    txn.delete_table(ITEMS)?;
    txn.rename_table(ITEMS_6, ITEMS)?;
    txn.commit()?;
    tracing::info!(
        rows,
        names = new.added.len(),
        "archive migrated from format 5 to 6"
    );
    Ok(())
}

impl Archive {
    /// Format 6 -> 7: a filing log of every copy (see the module comment),
    /// in one transaction that records format 7. The archive is this
    /// process's alone while it opens, so the copies read before the write
    /// are those the write logs.
    pub(super) fn migrate_from_6(&self, schema: u8) -> Result<()> {
        let (logs, copies) = self.logs_of_copies(|_| true, key::fixed::decode_filing_key)?;
        self.write(|tx| {
            for log in &logs {
                tx.append_filing_log(log)?;
            }
            record_format(&mut tx.meta, schema, 7)
        })?;
        tracing::info!(copies, from = schema, "archive migrated to format 7");
        Ok(())
    }

    /// Formats 7 and 8 -> 9 (see the module comment), in one transaction:
    /// every key that holds an [`crate::model::ItemId`] written in format
    /// 9's form, and the `sources` rows of an archive that had format 6 or 7
    /// (`schema`) without their fingerprints.
    pub(super) fn migrate_keys(&self, schema: u8) -> Result<()> {
        let txn = self.db.begin_write()?;
        let rows = keys_anew(&txn, schema)?;
        record_format(&mut txn.open_table(META)?, schema, SCHEMA_VERSION)?;
        txn.commit()?;
        tracing::info!(
            rows,
            from = schema,
            "archive migrated to format {SCHEMA_VERSION}"
        );
        Ok(())
    }
}

/// Every table keyed by item ids under format 9's keys, and the `sources`
/// rows of format 6 or 7 (`schema`) without their fingerprints; returns how
/// many `sources` rows.
fn keys_anew(txn: &WriteTransaction, schema: u8) -> Result<u64> {
    let strip = (6..8).contains(&schema);
    let rows = rekey(txn, SOURCES, SOURCES_9, |k, v| {
        let v = if strip {
            SourceRow::from_format_7(v)?
        } else {
            v.to_vec()
        };
        Ok((id_anew(k)?, v))
    })?;
    rekey(txn, QUARANTINE, QUARANTINE_9, |k, v| {
        Ok((id_anew(k)?, v.to_vec()))
    })?;
    rekey(txn, ITEMS, ITEMS_9, |k, v| {
        let (m, f, id) = key::fixed::decode_filing_key(k)?;
        Ok((key::filing_key(m, f, &id), v.to_vec()))
    })?;
    rekey(txn, TOMBSTONES, TOMBSTONES_9, |k, v| {
        Ok((key::fixed::decode_item_key(k)?.encode(), v.to_vec()))
    })?;
    rekey(txn, FORWARD, FORWARD_9, |k, v| {
        let k = match k.first() {
            Some(b'l') => key::fixed::ledger_key_anew(k)?,
            _ => k.to_vec(),
        };
        Ok((k, v.to_vec()))
    })?;
    changes_anew(txn)?;
    Ok(rows)
}

/// A `sources` or `quarantine` key of formats 2 to 8 in format 9's form.
fn id_anew(k: &[u8]) -> Result<Vec<u8>> {
    Ok(key::item_id_bytes(&key::fixed::decode_item_id(k)?))
}

type Bytes = TableDefinition<'static, &'static [u8], &'static [u8]>;

const SOURCES_9: Bytes = TableDefinition::new("sources.9");
const QUARANTINE_9: Bytes = TableDefinition::new("quarantine.9");
const ITEMS_9: Bytes = TableDefinition::new("items.9");
const TOMBSTONES_9: Bytes = TableDefinition::new("tombstones.9");
const FORWARD_9: Bytes = TableDefinition::new("forward.9");

/// Copies every row of `def` into `new` as `anew` gives it, then lets `new`
/// take `def`'s name: keys of another form cannot be rewritten in place
/// (a new key could sort after the cursor, or equal an old one). Returns
/// how many rows.
fn rekey(
    txn: &WriteTransaction,
    def: Bytes,
    new: Bytes,
    mut anew: impl FnMut(&[u8], &[u8]) -> Result<(Vec<u8>, Vec<u8>)>,
) -> Result<u64> {
    let mut rows = 0;
    {
        let old = txn.open_table(def)?;
        let mut to = txn.open_table(new)?;
        for e in old.iter()? {
            let (k, v) = e?;
            let unwritable = |e: Error| {
                Error::Corrupt(format!(
                    "{} row {}: {e}; the migration to format {SCHEMA_VERSION} cannot rewrite \
                     it (restore a backup, or `recover --from` into a new archive)",
                    def.name(),
                    hex::encode(k.value())
                ))
            };
            let (nk, nv) = anew(k.value(), v.value()).map_err(unwritable)?;
            if to.insert(nk.as_slice(), nv.as_slice())?.is_some() {
                return Err(unwritable(Error::Corrupt(
                    "a second row with its key".into(),
                )));
            }
            rows += 1;
        }
    }
    txn.delete_table(def)?;
    txn.rename_table(new, def)?;
    Ok(rows)
}

/// Every `changes` row's records (`ItemId ++ flag`) in format 9's form.
fn changes_anew(txn: &WriteTransaction) -> Result<()> {
    const REC: usize = key::fixed::ITEM_ID_LEN + 1;
    let mut t = txn.open_table(CHANGES)?;
    let mut rows = Vec::new();
    for e in t.iter()? {
        let (k, v) = e?;
        rows.push((k.value(), v.value().to_vec()));
    }
    for (seq, old) in rows {
        if old.len() % REC != 0 {
            return Err(Error::Corrupt(format!(
                "changes row {seq} has {} bytes, not a multiple of {REC}; the migration \
                 to format {SCHEMA_VERSION} cannot rewrite it",
                old.len()
            )));
        }
        let mut new = Vec::with_capacity(old.len());
        for rec in old.chunks(REC) {
            let (idb, flag) = rec.split_at(REC - 1);
            new.extend_from_slice(&id_anew(idb)?);
            new.extend_from_slice(flag);
        }
        t.insert(seq, new.as_slice())?;
    }
    Ok(())
}

/// Rewrites every `sources` row with `rewrite`, a step at a time, for the
/// migration to format `to`; returns how many.
fn rewrite_rows(
    sources: &mut redb::Table<&[u8], &[u8]>,
    to: u8,
    mut rewrite: impl FnMut(&[u8]) -> Result<Vec<u8>>,
) -> Result<u64> {
    let mut rows = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let step = next_step(sources, &after)?;
        let Some((last, _)) = step.last() else {
            return Ok(rows);
        };
        after = Some(last.clone());
        for (k, v) in step {
            let bytes = rewrite(&v).map_err(|e| {
                Error::Corrupt(format!(
                    "sources row {}: {e}; the migration to format {to} cannot rewrite it \
                     (restore a backup, or `recover --from` into a new archive)",
                    hex::encode(&k)
                ))
            })?;
            sources.insert(k.as_slice(), bytes.as_slice())?;
            rows += 1;
        }
    }
}

/// Format 6's `items`, while the migration fills it.
const ITEMS_6: TableDefinition<&[u8], &[u8]> = TableDefinition::new("items.6");

/// Format 2's reference table.
const BLOB_REFS_2: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blob_refs");

/// Format 2's `blobs` value.
#[derive(Deserialize)]
struct BlobMeta2 {
    size: u64,
    place: BlobPlace,
    run: u64,
}

/// Blob rows rewritten per step (bounds the memory a large archive needs).
const STEP: usize = 4096;

pub(super) fn from_2(db: &Database, packs: &Packs) -> Result<()> {
    let txn = db.begin_write()?;
    let mut rows = 0u64;
    {
        let refs = txn.open_table(BLOB_REFS_2)?;
        let sources = txn.open_table(SOURCES)?;
        let mut blobs = txn.open_table(BLOBS)?;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let step = next_step(&blobs, &after)?;
            let Some((last, _)) = step.last() else { break };
            after = Some(last.clone());
            for (sha, old) in step {
                let old: BlobMeta2 = codec::decode(&old)?;
                let uses = uses_of(&refs, &sources, packs, &sha)?;
                let meta = BlobMeta {
                    size: old.size,
                    place: old.place,
                    run: old.run,
                    refs: uses,
                };
                blobs.insert(sha.as_slice(), codec::encode(&meta).as_slice())?;
                rows += 1;
            }
        }
        let mut meta = txn.open_table(META)?;
        meta.insert("schema", [3u8].as_slice())?;
        meta.insert(UNAUDITED, [2u8, 3].as_slice())?;
    }
    txn.delete_table(BLOB_REFS_2)?;
    txn.commit()?;
    tracing::info!(blobs = rows, "archive migrated from format 2 to 3");
    Ok(())
}

/// Up to [`STEP`] rows of `t` after key `after` (from the first when
/// `None`), copied out so that the caller may rewrite them.
fn next_step(
    t: &redb::Table<&[u8], &[u8]>,
    after: &Option<Vec<u8>>,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let range = match after {
        Some(k) => t.range::<&[u8]>((Bound::Excluded(k.as_slice()), Bound::Unbounded))?,
        None => t.range::<&[u8]>(..)?,
    };
    let mut step = Vec::with_capacity(STEP);
    for e in range.take(STEP) {
        let (k, v) = e?;
        step.push((k.value().to_vec(), v.value().to_vec()));
    }
    Ok(step)
}

/// How many item versions use blob `sha`, by format 2's `blob_refs`.
fn uses_of(
    refs: &redb::Table<&[u8], &[u8]>,
    sources: &redb::Table<&[u8], &[u8]>,
    packs: &Packs,
    sha: &[u8],
) -> Result<u64> {
    let hash: [u8; 32] = sha
        .try_into()
        .map_err(|_| Error::Corrupt(format!("blobs key {} is not a SHA-256", hex::encode(sha))))?;
    // Every key that starts with the hash (an all-0xFF hash has no end key).
    let end = key::prefix_end(sha);
    let upper = match &end {
        Some(end) => Bound::Excluded(end.as_slice()),
        None => Bound::Unbounded,
    };
    let mut uses = 0;
    for e in refs.range::<&[u8]>((Bound::Included(sha), upper))? {
        let (k, _) = e?;
        let idb = &k.value()[32..];
        let id = key::fixed::decode_item_id(idb)?;
        let Some(v) = sources.get(idb)? else {
            // A reference left behind by a deleted row uses nothing.
            continue;
        };
        let row = SourceRow::decode_spelt(v.value())?;
        let versions = row.rec.versions.len();
        if versions == 1 {
            uses += 1;
            continue;
        }
        for i in 0..versions {
            match row.version(&id, i, &mut |v| packs.read_version(&v.at, &v.content)) {
                Ok(item) => {
                    if item.blobs_used().contains(&hash) {
                        uses += 1;
                    }
                }
                // Counted as a use, so the blob is kept; `verify` names the version.
                Err(e) => {
                    tracing::warn!(item = %id, version = i + 1, error = %e, "unreadable version counted as using its blob");
                    uses += 1;
                }
            }
        }
    }
    Ok(uses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ItemId, Part};
    use redb::ReadableDatabase;

    /// Every key that holds an item id, written as formats 2 to 8 did, is
    /// read back in format 9's form, with its value unchanged; `changes`
    /// records are rewritten whole; target rows of `forward` stay.
    #[test]
    fn every_old_key_is_written_anew() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db")).unwrap();
        let ids = [
            ItemId::new(1_000_001, 2_000_001, 7),
            ItemId::new(0, -1_001_234_567_890, 1),
            ItemId {
                dup: 3,
                part: Part::Deletion,
                ..ItemId::new(5, -5, i64::MAX)
            },
        ];
        let tomb = |id: &ItemId| {
            let mut k = key::folder_key("a@b.c", "Telegram Archiver");
            k.extend_from_slice(&key::fixed::item_id_bytes(id));
            k
        };
        let ledger = |id: &ItemId| {
            let mut k = key::ledger_prefix("imap", Some("a@b.c"));
            k.extend_from_slice(&key::fixed::item_id_bytes(id));
            k.extend_from_slice(&2u32.to_be_bytes());
            k
        };
        let txn = db.begin_write().unwrap();
        {
            let t = |def: Bytes, k: Vec<u8>| {
                txn.open_table(def)
                    .unwrap()
                    .insert(k.as_slice(), b"v".as_slice())
                    .unwrap();
            };
            for id in &ids {
                t(SOURCES, key::fixed::item_id_bytes(id));
                t(QUARANTINE, key::fixed::item_id_bytes(id));
                t(ITEMS, key::fixed::filing_key(1, 300, id));
                t(TOMBSTONES, tomb(id));
                t(FORWARD, ledger(id));
            }
            t(FORWARD, key::forward_target_key("imap"));
            let mut changes = Vec::new();
            for (n, id) in ids.iter().enumerate() {
                changes.extend_from_slice(&key::fixed::item_id_bytes(id));
                changes.push((n % 2) as u8);
            }
            let mut c = txn.open_table(CHANGES).unwrap();
            c.insert(4, changes.as_slice()).unwrap();
        }
        assert_eq!(keys_anew(&txn, 8).unwrap(), 3);
        txn.commit().unwrap();

        let r = db.begin_read().unwrap();
        let keys = |def: Bytes| -> Vec<Vec<u8>> {
            let t = r.open_table(def).unwrap();
            t.iter()
                .unwrap()
                .map(|e| {
                    let (k, v) = e.unwrap();
                    assert_eq!(v.value(), b"v");
                    k.value().to_vec()
                })
                .collect()
        };
        let mut want: Vec<Vec<u8>> = ids.iter().map(key::item_id_bytes).collect();
        want.sort();
        assert_eq!(keys(SOURCES), want);
        assert_eq!(keys(QUARANTINE), want);
        let mut want: Vec<Vec<u8>> = ids.iter().map(|id| key::filing_key(1, 300, id)).collect();
        want.sort();
        assert_eq!(keys(ITEMS), want);
        let mut want: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| key::item_key("a@b.c", "Telegram Archiver", id))
            .collect();
        want.sort();
        assert_eq!(keys(TOMBSTONES), want);
        let mut want: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| key::ledger_key("imap", "a@b.c", id, 2))
            .chain([key::forward_target_key("imap")])
            .collect();
        want.sort();
        assert_eq!(keys(FORWARD), want);
        let c = r.open_table(CHANGES).unwrap();
        let row = c.get(4).unwrap().unwrap().value().to_vec();
        let mut rest = row.as_slice();
        for (n, id) in ids.iter().enumerate() {
            let (got, after) = key::take_item_id(rest).unwrap();
            assert_eq!((got, after[0]), (*id, (n % 2) as u8));
            rest = &after[1..];
        }
        assert!(rest.is_empty());
    }

    /// A key that is not of the old form stops the migration with the row
    /// named, and nothing is written.
    #[test]
    fn an_unreadable_old_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(SOURCES)
            .unwrap()
            .insert([1u8, 2, 3].as_slice(), b"v".as_slice())
            .unwrap();
        let e = keys_anew(&txn, 8).unwrap_err().to_string();
        assert!(e.contains("sources row 010203"), "{e}");
    }
}
