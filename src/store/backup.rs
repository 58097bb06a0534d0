//! Backups: a consistent copy of an archive in another directory, itself an
//! archive (catalogue, packs, blobs; no index) that opens read-only and
//! verifies, brought up to date by the next backup to the same place.
//!
//! One pass takes a read snapshot of the source and copies from it alone:
//! every pack's bytes from what the backup has up to the snapshot's
//! committed length (packs are append-only), the blob files the backup
//! lacks, then the catalogue, row by row, writing only the rows that differ.
//! A row the backup has and the snapshot does not (a version or blob that
//! retention destroyed) has its pack record zeroed in the backup and its
//! blob file removed, so what retention destroyed is gone from the backup
//! too once the next backup has run.
//!
//! A writer may go on meanwhile (redb's `SingleWriter` mode lets this
//! process read beside it); its appends lie past the snapshot's lengths.
//! Only a destruction (a scrub, a pack dropped by compaction) changes bytes
//! a snapshot points at: `meta/destroyed` counts the transactions that
//! destroy, and a pass during which it moved is run again from a new
//! snapshot.
//!
//! Crash safety: the backup's `meta/backup_incomplete` is set before its
//! files change and removed in the transaction that commits the catalogue;
//! a backup with the mark is refused by reads until a backup completes.

use super::records::{BlobMeta, BlobPlace, LoggedBlob};
use super::tables::*;
use super::{Archive, SourceRow, codec, pack};
use crate::error::{Error, Result};
use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, Value,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// `meta` key: how many committed transactions destroyed content (u64 BE).
pub(super) const DESTROYED: &str = "destroyed";
/// The file that tells a backup from an archive before its catalogue is
/// opened (a writer's open alone would change the catalogue's file).
pub const NOTICE: &str = "BACKUP";
/// `meta` key of a backup: `codec(BackupMark)`.
pub const MARK: &str = "backup_of";
/// `meta` key of a backup whose last pass did not finish.
pub const INCOMPLETE: &str = "backup_incomplete";
/// Passes tried before a backup gives up on a source that keeps destroying.
const PASSES: u32 = 8;
/// Rows written to the backup's catalogue per transaction.
const ROWS_PER_TX: usize = 50_000;

/// What a backup says about itself (its `meta/backup_of`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupMark {
    /// The archive directory it was taken from, as given.
    pub source: String,
    /// The source's identity: the hash of its first audit entry.
    pub identity: Option<[u8; 32]>,
    /// When the last pass was taken (UTC seconds; the caller's clock).
    pub taken: i64,
    /// The source's last audit entry the backup holds.
    pub audit_seq: u64,
}

/// What one backup copied.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BackupStats {
    pub passes: u32,
    pub packs: u64,
    pub pack_bytes: u64,
    pub blob_files: u64,
    pub blob_bytes: u64,
    pub rows_written: u64,
    pub rows_removed: u64,
    pub records_zeroed: u64,
    pub files_removed: u64,
    pub audit_seq: u64,
}

impl BackupStats {
    /// Bytes written into the backup's packs and blob files.
    pub fn bytes(&self) -> u64 {
        self.pack_bytes + self.blob_bytes
    }
}

/// The backup's state before a pass: what its catalogue says it holds.
struct Held {
    packs: BTreeMap<u32, u64>,
}

impl Archive {
    /// Brings the backup in `dest` up to date with this archive (creating
    /// it when `dest` does not exist or is empty). `taken` is now.
    pub fn backup_to(&self, dest: &Path, taken: i64) -> Result<BackupStats> {
        let db = open_dest(dest, self)?;
        let mut stats = BackupStats::default();
        for _ in 0..PASSES {
            stats.passes += 1;
            let snap = self.db.begin_read()?;
            let epoch = destroyed(&snap)?;
            match self.backup_pass(&snap, dest, &db, taken, &mut stats) {
                Ok(()) => {}
                // A pack dropped under the pass: run it again.
                Err(Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound
                        && destroyed(&self.db.begin_read()?)? != epoch => {}
                Err(e) => return Err(e),
            }
            if destroyed(&self.db.begin_read()?)? == epoch {
                return Ok(stats);
            }
            tracing::info!("content was destroyed during the backup pass; another pass");
        }
        Err(Error::Busy(format!(
            "{}: the archive destroyed content during each of {PASSES} backup passes; run the backup again when retention is done",
            dest.display()
        )))
    }

    fn backup_pass(
        &self,
        snap: &ReadTransaction,
        dest: &Path,
        db: &Database,
        taken: i64,
        stats: &mut BackupStats,
    ) -> Result<()> {
        let held = {
            let r = db.begin_read()?;
            let mut packs = BTreeMap::new();
            for e in r.open_table(PACKS)?.iter()? {
                let (k, v) = e?;
                packs.insert(k.value(), v.value());
            }
            Held { packs }
        };
        set_incomplete(db)?;
        self.copy_packs(snap, dest, &held, stats)?;
        self.copy_blob_files(snap, dest, stats)?;
        let gone = sync_catalogue(snap, db, stats)?;
        zero_in_dest(dest, &held, snap, &gone.records, stats)?;
        let audit_seq = snap
            .open_table(AUDIT)?
            .last()?
            .map_or(0, |(k, _)| k.value());
        let mark = BackupMark {
            source: self.dir.display().to_string(),
            identity: identity(snap)?,
            taken,
            audit_seq,
        };
        let w = db.begin_write()?;
        {
            let mut meta = w.open_table(META)?;
            meta.insert(MARK, codec::encode(&mark).as_slice())?;
            meta.remove(INCOMPLETE)?;
        }
        w.commit()?;
        stats.audit_seq = audit_seq;
        remove_stale_files(dest, snap, &gone.files, stats)
    }

    /// Appends to each of the backup's packs what the snapshot has past it.
    fn copy_packs(
        &self,
        snap: &ReadTransaction,
        dest: &Path,
        held: &Held,
        stats: &mut BackupStats,
    ) -> Result<()> {
        let dir = dest.join("packs");
        create_dir(&dir)?;
        for e in snap.open_table(PACKS)?.iter()? {
            let (k, v) = e?;
            let (id, len) = (k.value(), v.value());
            let mut from = held.packs.get(&id).copied().unwrap_or(0);
            if from > len {
                // Not the same pack (never expected): copy it whole.
                from = 0;
            }
            let to = dir.join(pack::file_name(id));
            if from == len && to.exists() {
                continue;
            }
            let src = self.packs.path_of(id);
            copy_range(&src, &to, from, len)?;
            stats.packs += 1;
            stats.pack_bytes += len - from;
        }
        sync_dir(&dir)
    }

    /// Copies the blob files the backup lacks.
    fn copy_blob_files(
        &self,
        snap: &ReadTransaction,
        dest: &Path,
        stats: &mut BackupStats,
    ) -> Result<()> {
        let theirs = super::blob::BlobDir::new(dest);
        for (sha, _) in file_blobs(snap)? {
            let copied = copy_blob_file(&self.blobs, &theirs, &sha)?;
            if copied > 0 {
                stats.blob_files += 1;
                stats.blob_bytes += copied;
            }
        }
        Ok(())
    }
}

/// Every blob of the snapshot kept as a file.
fn file_blobs(snap: &ReadTransaction) -> Result<Vec<([u8; 32], BlobMeta)>> {
    let mut out = Vec::new();
    for e in snap.open_table(BLOBS)?.iter()? {
        let (k, v) = e?;
        let meta: BlobMeta = codec::decode(v.value())?;
        if matches!(meta.place, BlobPlace::File) {
            out.push((sha_of(k.value())?, meta));
        }
    }
    for e in snap.open_table(BLOB_LOG)?.iter()? {
        let (_, v) = e?;
        let l: LoggedBlob = codec::decode(v.value())?;
        if matches!(l.meta.place, BlobPlace::File) {
            out.push((l.sha, l.meta));
        }
    }
    Ok(out)
}

fn sha_of(k: &[u8]) -> Result<[u8; 32]> {
    k.try_into()
        .map_err(|_| Error::Corrupt(format!("blob key of {} bytes", k.len())))
}

/// What the backup held that the snapshot no longer does.
#[derive(Default)]
struct Gone {
    records: Vec<pack::PackRef>,
    files: Vec<[u8; 32]>,
}

/// Makes every table of the backup hold the snapshot's rows; returns what
/// that removed which names content.
fn sync_catalogue(snap: &ReadTransaction, db: &Database, stats: &mut BackupStats) -> Result<Gone> {
    let mut gone = Gone::default();
    let mut old_blobs: Vec<([u8; 32], BlobMeta)> = Vec::new();
    // A backup an older format wrote holds rows of that format until a pass
    // replaces them (format 8 left the fingerprints out of the versions).
    let old_format = {
        let r = db.begin_read()?;
        let schema = r
            .open_table(META)?
            .get("schema")?
            .map(|v| v.value().to_vec());
        schema.and_then(|s| s.first().copied()).unwrap_or(0)
    };
    let old_versions = if old_format < 8 {
        SourceRow::versions_of_older
    } else {
        SourceRow::versions_of
    };
    // A record is gone when a row that pointed at it was replaced or
    // removed and no row the pass wrote points at it: rows are compared by
    // key, and a migration may have given every row another key.
    let (mut dropped, mut added) = (HashSet::new(), HashSet::new());
    sync_table(snap, db, SOURCES, stats, |_, old, new| {
        if let Some(n) = new {
            added.extend(SourceRow::versions_of(n)?.iter().map(|v| v.at));
        }
        if let Some(o) = old {
            dropped.extend(old_versions(o)?.iter().map(|v| v.at));
        }
        Ok(())
    })?;
    gone.records.extend(dropped.difference(&added));
    // A blob whose row changed (its count of uses) is not gone; one that
    // left the log may have been folded into `blobs`.
    sync_table(snap, db, BLOBS, stats, |k, old, new| {
        if let (Some(old), None) = (old, new) {
            old_blobs.push((sha_of(k)?, codec::decode(old)?));
        }
        Ok(())
    })?;
    sync_table(snap, db, BLOB_LOG, stats, |_, old, _| {
        if let Some(old) = old {
            let l: LoggedBlob = codec::decode(old)?;
            old_blobs.push((l.sha, l.meta));
        }
        Ok(())
    })?;
    // A filing log that left its place was moved by compaction, which
    // zeroed the old copy.
    sync_table(snap, db, FILINGS, stats, |k, old, new| {
        if let (Some(old), None) = (old, new) {
            gone.records.push(super::filings::decode_row(k, old)?.0);
        }
        Ok(())
    })?;
    macro_rules! plain {
        ($($t:expr),*) => {$( sync_table(snap, db, $t, stats, |_, _, _| Ok(()))?; )*};
    }
    plain!(ITEMS, QUARANTINE, FOLDERS, HOLDS, TOMBSTONES);
    plain!(
        PACKS, DICTS, SCRUB, RUNS, AUDIT, CHANGES, CASES, POLICIES, ACCESS, CONNECTORS, FORWARD,
        NAMES
    );
    sync_meta(snap, db, stats)?;
    if old_blobs.is_empty() {
        return Ok(gone);
    }
    let blobs = snap.open_table(BLOBS)?;
    let mut logged = HashSet::new();
    for e in snap.open_table(BLOB_LOG)?.iter()? {
        let (_, v) = e?;
        logged.insert(codec::decode::<LoggedBlob>(v.value())?.sha);
    }
    for (sha, meta) in old_blobs {
        if logged.contains(&sha) || blobs.get(sha.as_slice())?.is_some() {
            continue;
        }
        match meta.place {
            BlobPlace::Pack(r) => gone.records.push(r),
            BlobPlace::File => gone.files.push(sha),
        }
    }
    Ok(gone)
}

/// `meta` but the backup's own keys.
fn sync_meta(snap: &ReadTransaction, db: &Database, stats: &mut BackupStats) -> Result<()> {
    let src: BTreeMap<String, Vec<u8>> = snap
        .open_table(META)?
        .iter()?
        .map(|e| e.map(|(k, v)| (k.value().to_string(), v.value().to_vec())))
        .collect::<std::result::Result<_, _>>()?;
    let w = db.begin_write()?;
    {
        let mut t = w.open_table(META)?;
        let old: Vec<String> = t
            .iter()?
            .map(|e| e.map(|(k, _)| k.value().to_string()))
            .collect::<std::result::Result<_, _>>()?;
        for k in old {
            if k != MARK && k != INCOMPLETE && !src.contains_key(&k) {
                t.remove(k.as_str())?;
                stats.rows_removed += 1;
            }
        }
        for (k, v) in &src {
            if t.get(k.as_str())?.map(|o| o.value() != v.as_slice()) != Some(false) {
                t.insert(k.as_str(), v.as_slice())?;
                stats.rows_written += 1;
            }
        }
    }
    w.commit()?;
    Ok(())
}

/// Makes `def` in `db` hold exactly the snapshot's rows, in transactions of
/// at most [`ROWS_PER_TX`] changes, writing only rows that differ.
/// `changed(key, old value, new value)` is called for each row removed
/// (`new` is `None`) or replaced.
fn sync_table<K: Key + 'static, V: Value + 'static>(
    snap: &ReadTransaction,
    db: &Database,
    def: TableDefinition<K, V>,
    stats: &mut BackupStats,
    mut changed: impl FnMut(&[u8], Option<&[u8]>, Option<&[u8]>) -> Result<()>,
) -> Result<()> {
    // Both sides as (key bytes, value bytes), compared in the table's order.
    let bytes = |k: &redb::AccessGuard<'_, K>, v: &redb::AccessGuard<'_, V>| {
        (
            K::as_bytes(&k.value()).as_ref().to_vec(),
            V::as_bytes(&v.value()).as_ref().to_vec(),
        )
    };
    let old_r = db.begin_read()?;
    let src_t = snap.open_table(def)?;
    let old_t = old_r.open_table(def)?;
    let mut src = src_t.iter()?.map(|e| e.map(|(k, v)| bytes(&k, &v)));
    let mut old = old_t.iter()?.map(|e| e.map(|(k, v)| bytes(&k, &v)));
    type Row = (Vec<u8>, Vec<u8>);
    let mut a: Option<Row> = src.next().transpose()?;
    let mut b: Option<Row> = old.next().transpose()?;
    let mut ops: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    loop {
        let order = match (&a, &b) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => K::compare(ka.as_slice(), kb.as_slice()),
        };
        match order {
            std::cmp::Ordering::Less => {
                let (k, v) = a.take().expect("matched Some");
                changed(&k, None, Some(&v))?;
                ops.push((k, Some(v)));
                a = src.next().transpose()?;
            }
            std::cmp::Ordering::Greater => {
                let (k, v) = b.take().expect("matched Some");
                changed(&k, Some(&v), None)?;
                ops.push((k, None));
                b = old.next().transpose()?;
            }
            std::cmp::Ordering::Equal => {
                let ((k, va), (_, vb)) = (a.take().expect("Some"), b.take().expect("Some"));
                if va != vb {
                    changed(&k, Some(&vb), Some(&va))?;
                    ops.push((k, Some(va)));
                }
                a = src.next().transpose()?;
                b = old.next().transpose()?;
            }
        }
        if ops.len() >= ROWS_PER_TX {
            apply(db, def, &mut ops, stats)?;
        }
    }
    apply(db, def, &mut ops, stats)
}

fn apply<K: Key + 'static, V: Value + 'static>(
    db: &Database,
    def: TableDefinition<K, V>,
    ops: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
    stats: &mut BackupStats,
) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let w: WriteTransaction = db.begin_write()?;
    {
        let mut t = w.open_table(def)?;
        for (k, v) in ops.drain(..) {
            let key = K::from_bytes(&k);
            match v {
                Some(v) => {
                    t.insert(key, V::from_bytes(&v))?;
                    stats.rows_written += 1;
                }
                None => {
                    t.remove(key)?;
                    stats.rows_removed += 1;
                }
            }
        }
    }
    w.commit()?;
    Ok(())
}

/// Zeroes, in the backup's packs, the records the snapshot no longer holds
/// (only in packs the backup held and the snapshot still has: a dropped
/// pack goes whole).
fn zero_in_dest(
    dest: &Path,
    held: &Held,
    snap: &ReadTransaction,
    records: &[pack::PackRef],
    stats: &mut BackupStats,
) -> Result<()> {
    let packs = snap.open_table(PACKS)?;
    let mut touched = BTreeMap::new();
    for r in records {
        let (Some(&had), Some(now)) = (held.packs.get(&r.pack), packs.get(r.pack)?) else {
            continue;
        };
        let end = r.offset.saturating_add(r.len);
        if end > had || end > now.value() {
            continue;
        }
        let path = dest.join("packs").join(pack::file_name(r.pack));
        let f = match touched.entry(r.pack) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?,
            ),
        };
        write_zeros(f, r.offset, r.len).map_err(|e| Error::io(&path, e))?;
        stats.records_zeroed += 1;
    }
    for (id, f) in touched {
        f.sync_all()
            .map_err(|e| Error::io(dest.join("packs").join(pack::file_name(id)), e))?;
    }
    Ok(())
}

fn write_zeros(f: &mut File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; len.min(1 << 20) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// Removes the backup's packs the snapshot does not have and the blob files
/// of destroyed blobs, once the catalogue no longer names them.
fn remove_stale_files(
    dest: &Path,
    snap: &ReadTransaction,
    files: &[[u8; 32]],
    stats: &mut BackupStats,
) -> Result<()> {
    let packs = snap.open_table(PACKS)?;
    let dir = dest.join("packs");
    for e in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let path = e.map_err(|e| Error::io(&dir, e))?.path();
        if let Some(id) = pack::id_of(&path)
            && packs.get(id)?.is_none()
        {
            fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            stats.files_removed += 1;
        }
    }
    let theirs = super::blob::BlobDir::new(dest);
    for sha in files {
        if theirs.remove(sha)? {
            stats.files_removed += 1;
        }
    }
    Ok(())
}

fn destroyed(txn: &ReadTransaction) -> Result<u64> {
    Ok(txn
        .open_table(META)?
        .get(DESTROYED)?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// The archive's identity: its first audit entry's hash.
fn identity(txn: &ReadTransaction) -> Result<Option<[u8; 32]>> {
    match txn.open_table(AUDIT)?.first()? {
        Some((_, v)) => Ok(Some(codec::decode::<super::audit::Entry>(v.value())?.hash)),
        None => Ok(None),
    }
}

/// Opens (or creates) the backup's catalogue, refusing a directory that
/// holds something else or a backup of another archive.
fn open_dest(dest: &Path, source: &Archive) -> Result<Database> {
    if dest.canonicalize().ok() == source.dir.canonicalize().ok() {
        return Err(Error::Usage(format!(
            "{}: a backup cannot be written into the archive itself",
            dest.display()
        )));
    }
    let path = super::db_path(dest);
    let fresh = !path.exists();
    let others = |d: fs::ReadDir| d.filter_map(|e| e.ok()).any(|e| e.file_name() != NOTICE);
    if fresh && fs::read_dir(dest).is_ok_and(others) {
        return Err(Error::Usage(format!(
            "{}: not empty and not a backup; name a new or empty directory",
            dest.display()
        )));
    }
    create_dir(dest)?;
    write_notice(dest, source)?;
    let db = Database::builder().create(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::Busy(format!(
            "{}: another process is using this backup",
            path.display()
        )),
        other => Error::from(other),
    })?;
    if fresh {
        super::init(&db)?;
        return Ok(db);
    }
    let r = db.begin_read()?;
    let mark: Option<BackupMark> = match r.open_table(META) {
        Ok(t) => t.get(MARK)?.map(|v| codec::decode(v.value())).transpose()?,
        Err(_) => None,
    };
    let Some(mark) = mark else {
        return Err(Error::Usage(format!(
            "{}: holds an archive that is not a backup; name a new or empty directory",
            dest.display()
        )));
    };
    let theirs = identity(&source.db.begin_read()?)?;
    if mark.identity != theirs {
        return Err(Error::Usage(format!(
            "{}: a backup of another archive ({}); name a new or empty directory",
            dest.display(),
            mark.source
        )));
    }
    // A backup made by an older format gets the tables this one added; the
    // pass then brings every row and `meta/schema` up to the source's.
    let w = db.begin_write()?;
    super::create_tables(&w)?;
    w.commit()?;
    Ok(db)
}

fn write_notice(dest: &Path, source: &Archive) -> Result<()> {
    let path = dest.join(NOTICE);
    if path.exists() {
        return Ok(());
    }
    let text = format!(
        "a backup of {} made by tgvault\nIt opens read-only; `tgvault --archive DIR restore {}` brings it back as an archive in DIR.\n",
        source.dir.display(),
        dest.display()
    );
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(&path, e))
}

fn set_incomplete(db: &Database) -> Result<()> {
    let w = db.begin_write()?;
    w.open_table(META)?.insert(INCOMPLETE, [1u8].as_slice())?;
    w.commit()?;
    Ok(())
}

/// Copies bytes `[from, to)` of `src` to the same place in `dst` (created
/// owner-only), cutting `dst` to `to`, and syncs it.
fn copy_range(src: &Path, dst: &Path, from: u64, to: u64) -> Result<()> {
    let mut input = File::open(src).map_err(|e| Error::io(src, e))?;
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dst)
        .map_err(|e| Error::io(dst, e))?;
    let io = |e| Error::io(dst, e);
    out.set_len(from).map_err(io)?;
    out.seek(SeekFrom::Start(from)).map_err(io)?;
    input
        .seek(SeekFrom::Start(from))
        .map_err(|e| Error::io(src, e))?;
    let copied = std::io::copy(&mut (&mut input).take(to - from), &mut out).map_err(io)?;
    if copied != to - from {
        return Err(Error::Corrupt(format!(
            "{}: {} bytes where the catalogue commits {to}",
            src.display(),
            from + copied
        )));
    }
    out.flush().map_err(io)?;
    out.sync_all().map_err(io)
}

/// Copies one blob's file as it is stored (compressed or not), unless
/// `to` has it already; the bytes copied.
fn copy_blob_file(
    from: &super::blob::BlobDir,
    to: &super::blob::BlobDir,
    sha: &[u8; 32],
) -> Result<u64> {
    let src = from.file(sha)?;
    let len = fs::metadata(src.path())
        .map_err(|e| Error::io(src.path(), e))?
        .len();
    let dest = match src {
        super::blob::BlobFile::Plain(_) => to.path_of(sha),
        super::blob::BlobFile::Zstd(_) => to.zst_path_of(sha),
    };
    if fs::metadata(&dest).is_ok_and(|m| m.len() == len) {
        return Ok(0);
    }
    let parent = dest.parent().expect("a blob path has a parent");
    create_dir(parent)?;
    let tmp = dest.with_extension("part");
    copy_range(src.path(), &tmp, 0, len)?;
    fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
    sync_dir(parent)?;
    Ok(len)
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(dir, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// The archive a backup came from, when `dir` is a backup.
pub fn mark_of(archive: &Archive) -> Result<Option<BackupMark>> {
    let r = archive.db.begin_read()?;
    let meta = r.open_table(META)?;
    if meta.get(INCOMPLETE)?.is_some() {
        return Err(Error::Corrupt(format!(
            "{}: this backup's last pass did not finish; run the backup again",
            archive.dir.display()
        )));
    }
    meta.get(MARK)?
        .map(|v| codec::decode(v.value()))
        .transpose()
}

/// The directory holding a restore's files before they take the archive's
/// place.
pub fn staging_dir(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    target.with_file_name(format!(".{name}.restoring"))
}

/// What a restore brought back.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreStats {
    pub mark: BackupMark,
    pub packs: u64,
    pub pack_bytes: u64,
    pub blob_files: u64,
    pub blob_bytes: u64,
    /// Where the archive that was in the target's place went, if any.
    pub replaced: Option<PathBuf>,
}

/// Brings the backup in `backup` back as the archive in `target`. A target
/// holding an archive is moved aside to `aside` (nothing is deleted); with
/// `aside` `None` such a target is refused. The restored archive is built
/// beside the target and takes its place by a rename, so a restore that
/// stops half-way leaves the target as it was.
pub fn restore(backup: &Path, target: &Path, aside: Option<&Path>) -> Result<RestoreStats> {
    let source = Archive::open_read_only(backup)?;
    let Some(mark) = mark_of(&source)? else {
        return Err(Error::Usage(format!(
            "{}: an archive, not a backup (`tgvault backup` writes one)",
            backup.display()
        )));
    };
    let occupied = fs::read_dir(target).is_ok_and(|mut d| d.next().is_some());
    if occupied && aside.is_none() {
        return Err(Error::Usage(format!(
            "{}: not empty; restoring over it moves it aside, which must be asked for",
            target.display()
        )));
    }
    let staging = staging_dir(target);
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    }
    create_dir(&staging)?;
    let snap = source.db.begin_read()?;
    let mut stats = RestoreStats {
        mark,
        packs: 0,
        pack_bytes: 0,
        blob_files: 0,
        blob_bytes: 0,
        replaced: None,
    };
    let packs = staging.join("packs");
    create_dir(&packs)?;
    for e in snap.open_table(PACKS)?.iter()? {
        let (k, v) = e?;
        let name = pack::file_name(k.value());
        copy_range(
            &backup.join("packs").join(&name),
            &packs.join(&name),
            0,
            v.value(),
        )?;
        stats.packs += 1;
        stats.pack_bytes += v.value();
    }
    let ours = super::blob::BlobDir::new(&staging);
    for (sha, _) in file_blobs(&snap)? {
        stats.blob_bytes += copy_blob_file(&source.blobs, &ours, &sha)?;
        stats.blob_files += 1;
    }
    drop(snap);
    drop(source);
    let db_file = super::db_path(&staging);
    copy_range(
        &super::db_path(backup),
        &db_file,
        0,
        fs::metadata(super::db_path(backup))
            .map_err(|e| Error::io(backup, e))?
            .len(),
    )?;
    // The copy is an archive again, no longer a backup.
    let db = Database::builder().create(&db_file)?;
    let w = db.begin_write()?;
    {
        let mut meta = w.open_table(META)?;
        meta.remove(MARK)?;
        meta.remove(INCOMPLETE)?;
    }
    w.commit()?;
    drop(db);
    sync_dir(&packs)?;
    sync_dir(&staging)?;
    if occupied {
        let aside = aside.expect("checked above");
        fs::rename(target, aside).map_err(|e| Error::io(target, e))?;
        stats.replaced = Some(aside.to_path_buf());
    } else if target.exists() {
        fs::remove_dir(target).map_err(|e| Error::io(target, e))?;
    }
    fs::rename(&staging, target).map_err(|e| Error::io(target, e))?;
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(stats)
}

/// The catalogue being rewritten by [`Archive::compact_catalogue`]; a
/// leftover of a process that died is removed by the next writer's open.
pub(super) const COMPACTING: &str = "archive.redb.compacting";

impl Archive {
    /// Rewrites the catalogue into a fresh file, every table in key order, so
    /// that its pages are full and the space an import's scattered inserts
    /// and the trimmed change log left behind goes back to the file system.
    /// The new file replaces the old by a rename while this handle still
    /// holds the writer's lock (nothing commits to the old file after the
    /// snapshot it copies), then the archive is opened again on it. Returns
    /// that handle and the file's length before and after.
    pub fn compact_catalogue(self) -> Result<(Archive, u64, u64)> {
        if self.is_read_only() {
            return Err(Error::Usage(format!(
                "{}: a read-only archive is not compacted",
                self.dir.display()
            )));
        }
        let path = super::db_path(&self.dir);
        let tmp = self.dir.join(COMPACTING);
        let before = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&tmp, e)),
            _ => {}
        }
        {
            let mut db = Database::builder().create(&tmp).map_err(Error::from)?;
            super::init(&db)?;
            let snap = self.db.begin_read()?;
            sync_catalogue(&snap, &db, &mut BackupStats::default())?;
            // redb grows a file by more than it fills; compacting the new
            // file gives the tail back (1M messages: 143 -> 109 MB, 0.2 s).
            db.compact()?;
        }
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        sync_dir(&self.dir)?;
        let dir = self.dir.clone();
        drop(self);
        let archive = Archive::open_existing(&dir)?;
        let after = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
        Ok((archive, before, after))
    }
}
