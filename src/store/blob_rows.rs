//! The rows that say where each blob is and how many item versions use it:
//! `blobs` (keyed by SHA-256) and `blob_log` (keyed by the order blobs came).
//!
//! A hash is a random key: inserting one row per attachment under it dirties
//! one B-tree leaf per attachment in every commit, and at ten million messages
//! those leaves were a quarter of everything the import wrote. So a new blob's
//! row is appended to `blob_log`, whose keys only grow, and the log is folded
//! into `blobs` in hash order when it reaches [`FOLD_AT`] rows (each leaf then
//! written once per fold), at the end of an import and when the archive is
//! opened. The archive keeps a map from hash to log row of the committed log
//! ([`LogIndex`]) for the writer's look-ups; readers scan the log in their own
//! snapshot, which is short, and empty outside an import.

use super::blob::StagedBlob;
use super::codec;
use super::records::{BlobMeta, BlobPlace, LoggedBlob};
use super::tables::{BLOB_LOG, BLOBS};
use super::{EncodedItem, Tx, pack};
use crate::error::{Error, Result};
use crate::model::ItemId;
use redb::{ReadTransaction, ReadableTable};
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The log is folded into `blobs` when it holds this many rows: at most
/// this many hashes are kept in memory (about 3 MiB), and a fold writes each
/// leaf of `blobs` about once.
pub(super) const FOLD_AT: usize = 65_536;

/// Hash -> `blob_log` sequence number, for every row of the committed log.
pub(super) type LogIndex = HashMap<[u8; 32], u64>;

/// Where a blob's row is, as a write transaction sees it.
enum Row {
    Table(BlobMeta),
    Log(u64, BlobMeta),
}

impl Row {
    fn meta_mut(&mut self) -> &mut BlobMeta {
        match self {
            Row::Table(meta) | Row::Log(_, meta) => meta,
        }
    }
}

impl Tx<'_> {
    /// The row of blob `sha`: this transaction's log rows, the committed
    /// log's (unless this transaction folded it), then `blobs`.
    fn find_blob(&self, sha: &[u8; 32]) -> Result<Option<Row>> {
        let seq = match self.log_new.get(sha) {
            Some(&seq) => Some(seq),
            None if self.log_folded => None,
            None => lock(self.log_index).get(sha).copied(),
        };
        if let Some(seq) = seq {
            let v = self.blob_log.get(seq)?.ok_or_else(|| {
                Error::Internal(format!(
                    "blob_log row {seq} of blob {} vanished",
                    hex::encode(sha)
                ))
            })?;
            let logged: LoggedBlob = codec::decode(v.value())?;
            return Ok(Some(Row::Log(seq, logged.meta)));
        }
        match self.blobs.get(sha.as_slice())? {
            Some(v) => Ok(Some(Row::Table(codec::decode(v.value())?))),
            None => Ok(None),
        }
    }

    fn put_row(&mut self, sha: &[u8; 32], row: &Row) -> Result<()> {
        match row {
            Row::Table(meta) => {
                self.blobs
                    .insert(sha.as_slice(), codec::encode(meta).as_slice())?;
            }
            Row::Log(seq, meta) => {
                let logged = LoggedBlob {
                    sha: *sha,
                    meta: meta.clone(),
                };
                self.blob_log
                    .insert(*seq, codec::encode(&logged).as_slice())?;
            }
        }
        Ok(())
    }

    /// Counts a new version of `enc.id` as a user of each blob its attachments
    /// hold: a blob the archive has gains a use; a new one is stored from
    /// `staged` (its bytes appended to the pack when inline) and logged.
    pub(super) fn use_blobs(
        &mut self,
        enc: &EncodedItem,
        staged: &[StagedBlob],
        run: u64,
    ) -> Result<()> {
        for &sha in &enc.blobs {
            match self.find_blob(&sha)? {
                // A blob the archive has, in either table, gains a use.
                Some(mut row) => {
                    row.meta_mut().refs += 1;
                    self.put_row(&sha, &row)?;
                }
                None => {
                    let blob = staged
                        .iter()
                        .find(|b| b.blob_ref().sha256 == sha)
                        .ok_or_else(|| {
                            Error::Internal(format!(
                                "{}: blob {} was not staged",
                                enc.id,
                                hex::encode(sha)
                            ))
                        })?;
                    let place = match blob {
                        StagedBlob::Inline(_, bytes) => {
                            BlobPlace::Pack(self.pack.append(pack::Kind::Blob, bytes)?)
                        }
                        StagedBlob::File(_) => BlobPlace::File,
                    };
                    let meta = BlobMeta {
                        size: blob.blob_ref().size,
                        place,
                        run,
                        refs: 1,
                    };
                    let seq = self.next_log_seq()?;
                    self.put_row(&sha, &Row::Log(seq, meta))?;
                    self.log_new.insert(sha, seq);
                }
            }
        }
        Ok(())
    }

    /// Takes one use away from each blob in `shas` (one entry per deleted
    /// version using it). A blob nobody uses any more goes: its pack record
    /// is scheduled for destruction; a blob file's hash is returned, to be
    /// unlinked once the transaction has committed.
    pub(super) fn release_blobs(
        &mut self,
        shas: &[[u8; 32]],
        id: &ItemId,
    ) -> Result<Vec<[u8; 32]>> {
        self.fold_blob_log()?;
        let mut freed = Vec::new();
        for sha in shas {
            let Some(Row::Table(mut meta)) = self.find_blob(sha)? else {
                tracing::warn!(blob = %hex::encode(sha), item = %id, "a deleted version's blob has no row");
                continue;
            };
            meta.refs = meta.refs.saturating_sub(1);
            if meta.refs > 0 {
                self.put_row(sha, &Row::Table(meta))?;
                continue;
            }
            self.blobs.remove(sha.as_slice())?;
            match meta.place {
                BlobPlace::Pack(at) => self.destroy(&at)?,
                BlobPlace::File => freed.push(*sha),
            }
        }
        Ok(freed)
    }

    /// Rows in the log, as this transaction sees it.
    pub(super) fn log_len(&self) -> usize {
        let committed = if self.log_folded {
            0
        } else {
            lock(self.log_index).len()
        };
        committed + self.log_new.len()
    }

    /// Moves every `blob_log` row into `blobs`, in hash order.
    pub fn fold_blob_log(&mut self) -> Result<()> {
        if self.log_len() == 0 {
            return Ok(());
        }
        let mut rows = rows(&self.blob_log)?;
        rows.sort_unstable_by_key(|(_, l)| l.sha);
        for (_, LoggedBlob { sha, mut meta }) in rows {
            // Look-ups go to `blobs` before a blob is logged, so a hash is in
            // one of the two; should it be in both, the uses add up and the
            // logged copy's bytes go.
            let had: Option<BlobMeta> = match self.blobs.get(sha.as_slice())? {
                Some(v) => Some(codec::decode(v.value())?),
                None => None,
            };
            if let Some(had) = had {
                if let (BlobPlace::Pack(at), true) = (&meta.place, had.place != meta.place) {
                    self.destroy(at)?;
                }
                meta = BlobMeta {
                    refs: had.refs + meta.refs,
                    ..had
                };
            }
            self.blobs
                .insert(sha.as_slice(), codec::encode(&meta).as_slice())?;
        }
        self.blob_log.retain(|_, _| false)?;
        self.log_new.clear();
        self.log_folded = true;
        Ok(())
    }

    fn next_log_seq(&mut self) -> Result<u64> {
        let next = match self.log_next {
            Some(n) => n,
            None => self
                .blob_log
                .last()?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(1),
        };
        self.log_next = Some(next + 1);
        Ok(next)
    }
}

/// The log's index. Only map look-ups and updates run under its lock, so a
/// panic elsewhere cannot leave it half-changed: a poisoned lock is taken as
/// it is (failing there would leave a commit's pack bytes unrolled-back).
pub(super) fn lock(index: &Mutex<LogIndex>) -> MutexGuard<'_, LogIndex> {
    index.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Blob `sha`'s row in the snapshot `txn`: `blobs`, else the log.
pub(super) fn meta(txn: &ReadTransaction, sha: &[u8; 32]) -> Result<Option<BlobMeta>> {
    let t = txn.open_table(BLOBS)?;
    if let Some(v) = t.get(sha.as_slice())? {
        return Ok(Some(codec::decode(v.value())?));
    }
    Ok(logged(txn)?
        .into_iter()
        .find(|l| l.sha == *sha)
        .map(|l| l.meta))
}

/// Every row of a `blob_log` table (a snapshot's or a write transaction's)
/// with its key, oldest first.
fn rows(t: &impl ReadableTable<u64, &'static [u8]>) -> Result<Vec<(u64, LoggedBlob)>> {
    let mut out = Vec::new();
    for e in t.iter()? {
        let (k, v) = e?;
        out.push((k.value(), codec::decode(v.value())?));
    }
    Ok(out)
}

/// Every row of the log in the snapshot `txn`, oldest first.
pub(super) fn logged(txn: &ReadTransaction) -> Result<Vec<LoggedBlob>> {
    Ok(rows(&txn.open_table(BLOB_LOG)?)?
        .into_iter()
        .map(|(_, l)| l)
        .collect())
}

/// The hashes of the committed log, for the archive's [`LogIndex`].
pub(super) fn load_index(txn: &ReadTransaction) -> Result<LogIndex> {
    Ok(rows(&txn.open_table(BLOB_LOG)?)?
        .into_iter()
        .map(|(seq, l)| (l.sha, seq))
        .collect())
}

/// Whether each of `shas` has a row in the snapshot `txn`.
pub(super) fn known(txn: &ReadTransaction, shas: &[[u8; 32]]) -> Result<Vec<bool>> {
    if shas.is_empty() {
        return Ok(Vec::new());
    }
    let t = txn.open_table(BLOBS)?;
    let in_log: HashSet<[u8; 32]> = logged(txn)?.into_iter().map(|l| l.sha).collect();
    shas.iter()
        .map(|sha| Ok(in_log.contains(sha) || t.get(sha.as_slice())?.is_some()))
        .collect()
}
