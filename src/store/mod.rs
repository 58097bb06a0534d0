//! The archive on disk: the only module that names redb.
//!
//! An archive is a directory holding `archive.redb` (every table in
//! [`tables`]), `packs/` (item contents and small blobs, see [`pack`]) and
//! `blobs/` (large attachment blobs). All writes go through [`Archive::write`],
//! which runs a closure inside one redb write transaction and commits it only if
//! the closure succeeds: a batch of items lands whole or not at all.

pub mod access;
pub mod audit;
pub mod backup;
pub mod blob;
mod blob_rows;
pub mod codec;
mod compact;
pub mod connectors;
pub mod forward;
pub use compact::{Moved, PackUse};
pub mod filings;
pub mod frame;
mod group;
pub mod journal;
pub mod key;
mod migrate;
mod names;
pub mod pack;
pub mod records;
pub mod salvage;
pub mod tables;
pub mod verify;

use crate::error::{Error, Result};
use crate::model::{Item, ItemId};
use blob::{BlobDir, StagedBlob, VerifyingReader};
use key::{ItemKey, item_id_bytes};
use pack::{PackRef, Packs};
use records::*;
use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable,
    Table, WriteTransaction,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tables::*;

/// At most this many changes go into one `changes` row.
const CHANGES_PER_ROW: usize = 10_000;
/// Source rows read before their versions are fetched from the packs
/// together (`for_each_source`).
const SOURCES_PER_READ: usize = 4096;

/// The schema version stored under `meta/schema`.
pub const SCHEMA_VERSION: u8 = 9;

/// How long a writer waits for another process to let go of the catalogue.
pub const WRITER_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// redb's page cache.
const CACHE_BYTES: usize = 16 << 20;

/// `meta` key: the ids of runs found interrupted whose interruption is not
/// yet on the audit trail (a codec-encoded `Vec<u64>`).
const INTERRUPTED: &str = "unaudited_interruptions";

pub struct Archive {
    db: Db,
    dir: PathBuf,
    blobs: BlobDir,
    packs: Packs,
    /// The committed `blob_log` rows by hash (see [`blob_rows`]).
    blob_log: Mutex<blob_rows::LogIndex>,
    /// A write transaction folds the log once it holds this many rows.
    fold_at: usize,
    /// Where reads are recorded when the trail cannot take them (see
    /// [`audit::Recorded`]).
    read_log: Option<PathBuf>,
    /// The name numbers of `sources` rows (see [`names`]).
    names: names::Names,
    /// What redb's check of every page found, when this open ran it:
    /// whether it repaired damage, or the damage it could not repair.
    pages_checked: Option<std::result::Result<bool, String>>,
}

/// The catalogue, opened for writing or only for reading. Both in redb's
/// `SingleWriter` mode, so that a reading process (a backup, a read-only
/// search) may open it while one writer works.
enum Db {
    Rw(Database),
    Ro(ReadOnlyDatabase),
}

impl Db {
    fn begin_read(&self) -> std::result::Result<ReadTransaction, redb::TransactionError> {
        match self {
            Db::Rw(db) => db.begin_read(),
            Db::Ro(db) => db.begin_read(),
        }
    }

    fn begin_write(&self) -> Result<WriteTransaction> {
        Ok(self.rw()?.begin_write()?)
    }

    fn rw(&self) -> Result<&Database> {
        match self {
            Db::Rw(db) => Ok(db),
            Db::Ro(_) => Err(Error::ReadOnly(
                "the archive is open for reading only; this needs to write it".into(),
            )),
        }
    }
}

/// What filing one item into one mailbox did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filed {
    New,
    /// The mailbox had the item; this content is a new version of it.
    NewVersion,
    /// The mailbox had the item with this content already.
    Duplicate,
    /// Retention deleted this copy (a tombstone records it): it is not
    /// filed again.
    Disposed,
}

/// What quarantining an item did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quarantined {
    New,
    /// Still in the quarantine, with this content as a new version.
    NewVersion,
    Duplicate,
    /// The item is filed in some mailbox already (an earlier mapping resolved
    /// it): it is not quarantined, and a new version shows in those mailboxes.
    AlreadyFiled {
        new_version: bool,
    },
}

/// The redb database of the archive in `dir`.
fn db_path(dir: &Path) -> PathBuf {
    dir.join("archive.redb")
}

impl Archive {
    /// Opens the archive in `dir`, creating it when it does not exist. Runs left
    /// `Running` by a process that died are marked `Interrupted`.
    pub fn open(dir: &Path) -> Result<Archive> {
        Archive::open_waiting(dir, WRITER_WAIT)
    }

    /// [`Archive::open`], waiting at most `wait` for another process that
    /// holds the catalogue (then [`Error::Busy`]).
    pub fn open_waiting(dir: &Path, wait: std::time::Duration) -> Result<Archive> {
        Archive::open_with(dir, wait, false)
    }

    /// [`Archive::open_existing_waiting`] for `verify`: redb's own check of
    /// every page of the catalogue against its checksum runs first (its
    /// outcome is one of `verify`'s findings). A page that fails it and
    /// cannot be repaired is an error naming the file.
    pub fn open_existing_checked(dir: &Path, wait: std::time::Duration) -> Result<Archive> {
        if !Archive::exists(dir) {
            return Err(not_an_archive(dir));
        }
        Archive::open_with(dir, wait, true)
    }

    fn open_with(dir: &Path, wait: std::time::Duration, check: bool) -> Result<Archive> {
        // A new archive's folder is its owner's alone, whatever the umask:
        // nothing inside it can be reached by anyone else. An existing
        // archive keeps its modes (`verify` warns about exposed parts).
        let fresh = !db_path(dir).exists();
        std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
            .create(dir)
            .map_err(|e| Error::io(dir, e))?;
        if fresh {
            fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| Error::io(dir, e))?;
        }
        let path = db_path(dir);
        // redb's default page cache (1 GiB) would dominate the importer's
        // memory; the working set of an import is the B-tree's right edge.
        refuse_backup(dir)?;
        let mut db = open_writer(&path, wait)?;
        probe(&db.begin_read()?, dir)?;
        let mut pages = None;
        if check {
            let found = check_pages(&mut db);
            if found.is_err() {
                // What redb could not repair, tgvault's own checks still read.
                drop(db);
                db = open_writer(&path, wait)?;
                probe(&db.begin_read()?, dir)?;
            }
            pages = Some(found);
        }
        let schema = init(&db)?;
        let (committed, dicts) = packs_and_dicts(&db.begin_read()?)?;
        let framed_from = match migrate::framed_from(&db.begin_read()?)? {
            Some(from) => from,
            // Format 2 or 3: every pack so far holds bare contents.
            None => committed.keys().next_back().map_or(1, |p| p + 1),
        };
        let packs = Packs::open(dir, &committed, framed_from, &dicts)?;
        if schema == 2 {
            migrate::from_2(&db, &packs)?;
        }
        if schema <= 3 {
            migrate::from_3(&db, framed_from)?;
        } else if schema == 4 {
            migrate::from_4(&db)?;
        }
        if schema < 6 {
            migrate::from_5(&db)?;
        }
        let mut archive = Archive::assemble(Db::Rw(db), dir, packs)?;
        if schema < 7 {
            archive.migrate_from_6(schema)?;
        }
        if schema < SCHEMA_VERSION {
            archive.migrate_keys(schema)?;
        }
        archive.pages_checked = pages;
        archive.blobs.clear_staging()?;
        let leftover = dir.join(backup::COMPACTING);
        match fs::remove_file(&leftover) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(&leftover, e));
            }
            _ => {}
        }
        archive.scrub()?;
        archive.append_pending_audit()?;
        archive.reconcile_journal()?;
        // What a killed import logged goes where readers look first.
        archive.fold_blob_log()?;
        Ok(archive)
    }

    /// Opens the archive in `dir`, which must exist: a command that only
    /// reads or changes an archive never creates one where a mistyped path
    /// points (a search there would find nothing, a hold would guard nothing).
    pub fn open_existing(dir: &Path) -> Result<Archive> {
        Archive::open_existing_waiting(dir, WRITER_WAIT)
    }

    /// [`Archive::open_existing`] with the wait of [`Archive::open_waiting`].
    pub fn open_existing_waiting(dir: &Path, wait: std::time::Duration) -> Result<Archive> {
        if !Archive::exists(dir) {
            return Err(not_an_archive(dir));
        }
        Archive::open_waiting(dir, wait)
    }

    /// Opens the archive in `dir` for reading only: nothing in the directory
    /// is changed (no truncation, no fold, no scrub, no migration), so it
    /// works on read-only storage and beside a process that writes it.
    /// Every write through it fails with [`Error::ReadOnly`].
    pub fn open_read_only(dir: &Path) -> Result<Archive> {
        if !Archive::exists(dir) {
            return Err(not_an_archive(dir));
        }
        let path = db_path(dir);
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .open_read_only(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => Error::Busy(format!(
                    "{}: another process holds the archive in a way that excludes readers",
                    path.display()
                )),
                redb::DatabaseError::RepairAborted => Error::ReadOnly(format!(
                    "{}: the catalogue was not closed cleanly and needs a repair, which needs write access",
                    path.display()
                )),
                other => Error::from(other),
            })?;
        probe(&db.begin_read()?, dir)?;
        let (committed, dicts, framed_from) = {
            let txn = db.begin_read()?;
            let meta = txn.open_table(META)?;
            let schema = meta.get("schema")?.map(|v| v.value().to_vec());
            if schema.as_deref() != Some(&[SCHEMA_VERSION][..]) {
                let how = match dir.join(backup::NOTICE).exists() {
                    true => {
                        "; for a backup, the next `tgvault backup` into it does that (or `tgvault restore` it)"
                    }
                    false => "",
                };
                return Err(Error::ReadOnly(format!(
                    "{}: archive format {:?} must be migrated to [{SCHEMA_VERSION}] first, which needs write access{how}",
                    path.display(),
                    schema.unwrap_or_default()
                )));
            }
            let framed_from = migrate::framed_from(&txn)?.unwrap_or(1);
            let (m, dicts) = packs_and_dicts(&txn)?;
            (m, dicts, framed_from)
        };
        let packs = Packs::open_read_only(dir, &committed, framed_from, &dicts)?;
        Archive::assemble(Db::Ro(db), dir, packs)
    }

    /// The handle over an opened catalogue and its packs.
    fn assemble(db: Db, dir: &Path, packs: Packs) -> Result<Archive> {
        let txn = db.begin_read()?;
        let log = blob_rows::load_index(&txn)?;
        let known = names::Names::default();
        known.catch_up(&txn.open_table(NAMES)?)?;
        Ok(Archive {
            names: known,
            pages_checked: None,
            db,
            dir: dir.to_path_buf(),
            blobs: BlobDir::new(dir),
            packs,
            blob_log: Mutex::new(log),
            fold_at: blob_rows::FOLD_AT,
            read_log: None,
        })
    }

    /// Names the file where reads are recorded when the trail cannot take
    /// them.
    pub fn set_read_log(&mut self, path: Option<PathBuf>) {
        self.read_log = path;
    }

    /// Whether this handle may write the archive.
    pub fn is_read_only(&self) -> bool {
        matches!(self.db, Db::Ro(_))
    }

    /// Whether `dir` holds an archive.
    pub fn exists(dir: &Path) -> bool {
        db_path(dir).is_file()
    }

    /// A write that failed for want of space, said as such: which disk,
    /// and how much is left. redb reports a write that failed earlier in
    /// the process only as a "previous I/O error".
    fn disk_full(&self, e: Error) -> Error {
        let full = match &e {
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
            Error::Storage(StorageError(redb::Error::Io(io))) => {
                io.kind() == std::io::ErrorKind::StorageFull
            }
            Error::Storage(StorageError(redb::Error::PreviousIo)) => true,
            _ => false,
        };
        if !full {
            return e;
        }
        let free = rustix::fs::statvfs(&self.dir)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .ok();
        Error::DiskFull {
            path: self.dir.clone(),
            free,
            cause: e.to_string(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A format migration that opening this archive (now or in a process
    /// that died before recording it) made and the audit trail does not
    /// show yet: `(from, to)`. See [`Tx::audit_migration`].
    /// Runs found interrupted at an open whose interruption is not yet on
    /// the audit trail.
    pub fn unaudited_interruptions(&self) -> Result<Vec<RunRecord>> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let Some(v) = meta.get(INTERRUPTED)? else {
            return Ok(Vec::new());
        };
        let ids: Vec<u64> = codec::decode(v.value())?;
        let runs = txn.open_table(RUNS)?;
        let mut out = Vec::new();
        for id in ids {
            if let Some(v) = runs.get(id)? {
                out.push(codec::decode(v.value())?);
            }
        }
        Ok(out)
    }

    pub fn unaudited_migration(&self) -> Result<Option<(u8, u8)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(META)?;
        Ok(
            match t
                .get(migrate::UNAUDITED)?
                .map(|v| v.value().to_vec())
                .as_deref()
            {
                Some(&[from, to]) => Some((from, to)),
                _ => None,
            },
        )
    }

    /// How many `blob_log` rows make a write transaction fold the log
    /// (default 65,536; tests set a few to exercise folds).
    pub fn set_blob_log_fold_at(&mut self, rows: usize) {
        self.fold_at = rows.max(1);
    }

    /// Moves the blobs an import logged into `blobs` (see [`blob_rows`]);
    /// nothing to do when the log is empty.
    pub fn fold_blob_log(&self) -> Result<()> {
        let empty = blob_rows::lock(&self.blob_log).is_empty();
        if empty {
            return Ok(());
        }
        self.write(|tx| tx.fold_blob_log())
    }

    /// Destroys the pack records retention deleted (see [`pack`]): zeros
    /// them, syncs, then forgets them. Runs after every transaction that
    /// deleted content, and on open for what a killed process left.
    pub fn scrub(&self) -> Result<()> {
        let pending: Vec<PackRef> = {
            let txn = self.db.begin_read()?;
            let t = txn.open_table(SCRUB)?;
            let mut out = Vec::new();
            for e in t.iter()? {
                let (k, v) = e?;
                out.push(PackRef::from_scrub_key(k.value(), v.value())?);
            }
            out
        };
        if pending.is_empty() {
            return Ok(());
        }
        self.packs.zero(&pending)?;
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(SCRUB)?;
            for r in &pending {
                t.remove(r.scrub_key().as_slice())?;
            }
        }
        txn.commit()?;
        tracing::info!(records = pending.len(), "deleted content destroyed");
        Ok(())
    }
}

/// Opens every table of the catalogue's directory in a read transaction.
/// A damaged directory page makes redb panic, and a write transaction that
/// met it would panic again while rolling back (which aborts the process):
/// met here first, the damage is an error naming the file.
fn probe(txn: &ReadTransaction, dir: &Path) -> Result<()> {
    use crate::damage::{self, Origin};
    damage::guard(
        || {
            for table in txn.list_tables()? {
                txn.open_untyped_table(table)?;
            }
            Ok(())
        },
        &[Origin::Redb],
        |_, what| damage::catalogue_damaged(dir, what),
    )
}

/// redb's check of every page against its checksum: whether it found damage
/// and repaired it (redb goes back to the last whole commit, or rebuilds its
/// record of free pages), or what it could not repair.
fn check_pages(db: &mut Database) -> std::result::Result<bool, String> {
    db.check_integrity()
        .map(|clean| !clean)
        .map_err(|e| e.to_string())
}

/// The catalogue for writing. Another process may hold it for a moment (a
/// search records its entry): that is waited for, up to a limit.
fn open_writer(path: &Path, patience: std::time::Duration) -> Result<Database> {
    let deadline = std::time::Instant::now() + patience;
    let mut wait = std::time::Duration::from_millis(5);
    loop {
        match Database::builder()
            .set_cache_size(CACHE_BYTES)
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .create(path)
        {
            Ok(db) => return Ok(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen)
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_millis(200));
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(Error::Busy(format!(
                    "{}: the archive is in use by another tgvault process",
                    path.display()
                )));
            }
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                return Err(Error::ReadOnly(format!(
                    "{}: the archive's storage cannot be written ({e}); commands that change it cannot run; reading commands work on it read-only",
                    path.display()
                )));
            }
            Err(other) => return Err(Error::from(other)),
        }
    }
}

/// A backup opens read-only only: writing it would part it from the archive
/// it copies (the next backup would undo the change).
fn refuse_backup(dir: &Path) -> Result<()> {
    match fs::read_to_string(dir.join(backup::NOTICE)) {
        Ok(notice) => Err(Error::ReadOnly(format!(
            "{}: {}; it opens read-only (`tgvault restore` brings it back as an archive)",
            dir.display(),
            notice.lines().next().unwrap_or("a backup")
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir.join(backup::NOTICE), e)),
    }
}

/// Pack id -> committed length, as the `packs` table holds them.
type PackLengths = BTreeMap<u32, u64>;

/// Every pack's committed length, and the zstd dictionaries.
fn packs_and_dicts(txn: &ReadTransaction) -> Result<(PackLengths, Vec<Vec<u8>>)> {
    let mut packs = BTreeMap::new();
    for e in txn.open_table(PACKS)?.iter()? {
        let (k, v) = e?;
        packs.insert(k.value(), v.value());
    }
    let mut dicts = Vec::new();
    for e in txn.open_table(DICTS)?.iter()? {
        dicts.push(frame::dict_of_stored(e?.1.value())?);
    }
    Ok((packs, dicts))
}

fn not_an_archive(dir: &Path) -> Error {
    Error::NotFound(format!(
        "no archive in {} (an import or an init creates one)",
        dir.display()
    ))
}

/// Creates every table this format has that the catalogue lacks (all of
/// them in a new one).
fn create_tables(txn: &WriteTransaction) -> Result<()> {
    for def in [
        ITEMS, SOURCES, BLOBS, QUARANTINE, FOLDERS, HOLDS, TOMBSTONES,
    ] {
        txn.open_table(def)?;
    }
    for def in [CHANGES, BLOB_LOG, RUNS, AUDIT] {
        txn.open_table(def)?;
    }
    txn.open_table(META)?;
    txn.open_table(SCRUB)?;
    txn.open_table(PACKS)?;
    txn.open_table(DICTS)?;
    txn.open_table(NAMES)?;
    txn.open_table(FILINGS)?;
    for def in [CASES, POLICIES] {
        txn.open_table(def)?;
    }
    for def in [ACCESS, CONNECTORS, FORWARD] {
        txn.open_table(def)?;
    }
    Ok(())
}

/// Creates the tables of a new archive and checks the schema of an old one,
/// which it returns (format 2 is migrated by the caller, see [`migrate`]).
/// Runs left `Running` by a process that died are marked `Interrupted`.
fn init(db: &Database) -> Result<u8> {
    let txn = db.begin_write()?;
    let found;
    {
        create_tables(&txn)?;
        let mut meta = txn.open_table(META)?;
        let schema = meta.get("schema")?.map(|v| v.value().to_vec());
        found = match schema.as_deref() {
            None => {
                meta.insert("schema", [SCHEMA_VERSION].as_slice())?;
                meta.insert(migrate::FRAMED_FROM, 1u32.to_be_bytes().as_slice())?;
                SCHEMA_VERSION
            }
            Some([SCHEMA_VERSION]) => SCHEMA_VERSION,
            Some([v @ (2..=8)]) => *v,
            Some([1]) => {
                return Err(Error::Usage(format!(
                    "this archive has format 1 (item contents inside archive.redb); this \
                         build reads format {SCHEMA_VERSION} (contents in pack files). Import \
                         the exports again into a new archive directory"
                )));
            }
            Some(other) => {
                return Err(Error::Corrupt(format!(
                    "archive schema {other:?}, this build reads [{SCHEMA_VERSION}] and migrates [2] to [8]"
                )));
            }
        };
        txn.open_table(AUDIT)?;
        let mut runs = txn.open_table(RUNS)?;
        let mut stale = Vec::new();
        for entry in runs.iter()? {
            let (k, v) = entry?;
            let rec: RunRecord = codec::decode(v.value())?;
            if rec.status == RunStatus::Running {
                stale.push((k.value(), rec));
            }
        }
        // The store has no clock: the command that opened the archive
        // audits each interruption (see `Archive::unaudited_interruptions`).
        let mut unaudited: Vec<u64> = match meta.get(INTERRUPTED)? {
            Some(v) => codec::decode(v.value())?,
            None => Vec::new(),
        };
        for (id, mut rec) in stale {
            rec.status = RunStatus::Interrupted;
            runs.insert(id, codec::encode(&rec).as_slice())?;
            unaudited.push(id);
        }
        if !unaudited.is_empty() {
            meta.insert(INTERRUPTED, codec::encode(&unaudited).as_slice())?;
        }
    }
    txn.commit()?;
    Ok(found)
}

impl Archive {
    /// Streams a blob into staging (inline or a durable file); see [`blob`].
    pub fn stage_blob(&self, src: impl Read, what: &Path, size: Option<u64>) -> Result<StagedBlob> {
        self.blobs.stage(src, what, size)
    }

    /// Runs `f` in one write transaction, committed only when `f` succeeds.
    pub fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_write()?;
        let mut writer = self.packs.writer();
        writer.begin();
        let mut scrubs = false;
        let mut journal = Vec::new();
        let mut new_names = Vec::new();
        let mut log = (false, HashMap::new());
        let out = (|| {
            let mut tx = Tx {
                packs: &self.packs,
                pack: &mut writer,
                pack_lengths: txn.open_table(PACKS)?,
                dicts: txn.open_table(DICTS)?,
                scrub: txn.open_table(SCRUB)?,
                scrubs: false,
                items: txn.open_table(ITEMS)?,
                sources: txn.open_table(SOURCES)?,
                names_table: txn.open_table(NAMES)?,
                names: &self.names,
                new_names: names::NewNames::default(),
                blobs: txn.open_table(BLOBS)?,
                quarantine: txn.open_table(QUARANTINE)?,
                folders: txn.open_table(FOLDERS)?,
                runs: txn.open_table(RUNS)?,
                audit: txn.open_table(AUDIT)?,
                journal: Vec::new(),
                changes: txn.open_table(CHANGES)?,
                blob_log: txn.open_table(BLOB_LOG)?,
                log_index: &self.blob_log,
                log_new: HashMap::new(),
                log_next: None,
                log_folded: false,
                holds: txn.open_table(HOLDS)?,
                cases: txn.open_table(CASES)?,
                policies: txn.open_table(POLICIES)?,
                tombstones: txn.open_table(TOMBSTONES)?,
                access: txn.open_table(ACCESS)?,
                connectors: txn.open_table(CONNECTORS)?,
                forward: txn.open_table(FORWARD)?,
                meta: txn.open_table(META)?,
                any_tombstone: None,
                folder_removed: BTreeMap::new(),
                pending_changes: Vec::new(),
                pending_change_count: 0,
                folder_delta: BTreeMap::new(),
                filings: txn.open_table(FILINGS)?,
                filing_log: filings::LogBuilder::default(),
                unplaced: BTreeMap::new(),
                destroyed_versions: BTreeSet::new(),
            };
            // Names another process committed are known before any is given.
            self.names.catch_up(&tx.names_table)?;
            let out = f(&mut tx)?;
            tx.settle_groups()?;
            if tx.scrubs {
                tx.count_destruction()?;
            }
            if tx.log_len() >= self.fold_at {
                tx.fold_blob_log()?;
            }
            log = (tx.log_folded, std::mem::take(&mut tx.log_new));
            tx.apply_folder_delta()?;
            tx.apply_changes()?;
            tx.write_filing_log()?;
            // The pack's bytes are durable before the commit that points at them.
            if let Some((pack, len)) = tx.pack.sync()? {
                tx.pack_lengths.insert(pack, len)?;
            }
            if let Some((id, dict)) = tx.pack.dict_to_save() {
                tx.dicts.insert(*id, frame::stored_dict(dict).as_slice())?;
            }
            scrubs = tx.scrubs;
            journal = std::mem::take(&mut tx.journal);
            new_names = std::mem::take(&mut tx.new_names.added);
            Ok(out)
        })();
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                drop(txn);
                if let Err(re) = writer.rollback() {
                    tracing::error!(error = %re, "pack bytes of a failed transaction not truncated (the next open does it)");
                    writer.abandon();
                }
                return Err(self.disk_full(e));
            }
        };
        let t = std::time::Instant::now();
        // The log's index changes with the commit: it is held from before
        // the commit until it says what the commit logged, so that no other
        // writer looks a blob up in between.
        let (folded, added) = log;
        let mut index = if folded || !added.is_empty() {
            Some(blob_rows::lock(&self.blob_log))
        } else {
            None
        };
        if let Err(e) = txn.commit() {
            writer.abandon();
            return Err(self.disk_full(e.into()));
        }
        writer.committed();
        drop(writer);
        self.names.committed(&new_names);
        if let Some(index) = index.as_mut() {
            if folded {
                index.clear();
            }
            index.extend(added);
        }
        drop(index);
        tracing::debug!(commit = ?t.elapsed(), "store commit");
        if let Err(e) = journal::append(&self.dir, &journal) {
            // The entries are on the trail; the next open copies them.
            tracing::error!(error = %e, "audit journal not written");
        }
        if scrubs && let Err(e) = self.scrub() {
            // The deletion stands; the content is destroyed on the next open,
            // and `verify` names it until then.
            tracing::error!(error = %e, "deleted content not yet destroyed");
        }
        Ok(out)
    }

    /// Starts a run record and returns its id.
    pub fn begin_run(&self, kind: &str, actor: &str, args: Vec<String>, now: i64) -> Result<u64> {
        self.write(|tx| tx.start_run(kind, actor, args, now))
    }

    // ---- reads

    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(RUNS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            out.push(codec::decode(e?.1.value())?);
        }
        Ok(out)
    }

    /// Every `(mailbox, folder)` with its item count, in key order.
    pub fn folders(&self) -> Result<Vec<(String, String, FolderStats)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(FOLDERS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            let (m, f) = key::decode_folder_key(k.value())?;
            out.push((m, f, codec::decode(v.value())?));
        }
        Ok(out)
    }

    /// Calls `f` for every filing of `mailbox` (in `folder`, when given):
    /// folder by folder in name order, each in `ItemId` order.
    pub fn for_each_filing(
        &self,
        mailbox: &str,
        folder: Option<&str>,
        mut f: impl FnMut(ItemKey, Filing) -> Result<()>,
    ) -> Result<()> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ITEMS)?;
        let names = txn.open_table(NAMES)?;
        let Some(m) = self.names.find(&names, mailbox)? else {
            return Ok(());
        };
        let mut folders: Vec<(String, u32)> = Vec::new();
        match folder {
            Some(name) => match self.names.find(&names, name)? {
                Some(id) => folders.push((name.to_string(), id)),
                None => return Ok(()),
            },
            None => {
                for id in folders_of(&t, m)? {
                    folders.push((self.names.get(&names, id)?, id));
                }
                folders.sort();
            }
        }
        for (name, id) in folders {
            let start = key::filing_prefix(m, Some(id));
            let iter = match key::prefix_end(&start) {
                Some(end) => t.range(start.as_slice()..end.as_slice())?,
                None => t.range(start.as_slice()..)?,
            };
            for e in iter {
                let (k, v) = e?;
                let (_, _, item) = key::decode_filing_key(k.value())?;
                let key = ItemKey {
                    mailbox: mailbox.to_string(),
                    folder: name.clone(),
                    item,
                };
                f(key, codec::decode(v.value())?)?;
            }
        }
        Ok(())
    }

    pub fn source(&self, id: &ItemId) -> Result<Option<SourceRecord>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SOURCES)?;
        let names = txn.open_table(NAMES)?;
        t.get(item_id_bytes(id).as_slice())?
            .map(|v| self.read_row(&names, v.value()).map(|r| r.rec))
            .transpose()
    }

    /// Version `index` (0 = oldest) of an item, checked against its SHA-256.
    pub fn version(&self, id: &ItemId, index: usize) -> Result<Item> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SOURCES)?;
        let v = t
            .get(item_id_bytes(id).as_slice())?
            .ok_or_else(|| Error::NotFound(format!("item {id}")))?;
        SourceRow::versions_only(v.value())?.version(id, index, &mut |v| {
            self.packs.read_version(&v.at, &v.content)
        })
    }

    /// The current version of an item, or `None` when the archive has no such item.
    pub fn current(&self, id: &ItemId) -> Result<Option<Item>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SOURCES)?;
        let Some(v) = t.get(item_id_bytes(id).as_slice())? else {
            return Ok(None);
        };
        SourceRow::versions_only(v.value())?
            .current(id, &mut |v| self.packs.read_version(&v.at, &v.content))
            .map(Some)
    }

    // ---- the change log and source rows, for the search index

    /// The sequence number of the latest change (0 when there has been none).
    pub fn last_change(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(CHANGES)?;
        Ok(t.last()?.map(|(k, _)| k.value()).unwrap_or(0))
    }

    /// The oldest change still in the log: 0 when the log is empty, one
    /// past the last row when that row is all it holds and was emptied
    /// ([`Archive::trim_changes`]: nothing in the log is left to apply).
    pub fn first_change(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(CHANGES)?;
        let mut rows = t.iter()?;
        let Some(first) = rows.next() else {
            return Ok(0);
        };
        let (k, v) = first?;
        if !v.value().is_empty() {
            return Ok(k.value());
        }
        // Only the row the index last applied is ever emptied.
        match rows.next() {
            Some(next) => Ok(next?.0.value()),
            None => Ok(k.value() + 1),
        }
    }

    /// The changes of up to `rows` transactions after `after`, in order:
    /// `(seq, item, the row is new)`.
    pub fn changes_after(&self, after: u64, rows: usize) -> Result<Vec<(u64, ItemId, bool)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(CHANGES)?;
        let mut out = Vec::new();
        for e in t.range(after.saturating_add(1)..)?.take(rows) {
            let (k, v) = e?;
            let mut rest = v.value();
            while !rest.is_empty() {
                let (id, after) = key::take_item_id(rest)?;
                let (flag, after) = match after.split_first() {
                    Some((&f @ (0 | 1), after)) => (f, after),
                    _ => {
                        return Err(Error::Corrupt(format!(
                            "changes row {}: a record without its flag",
                            k.value()
                        )));
                    }
                };
                out.push((k.value(), id, flag == 0));
                rest = after;
            }
        }
        Ok(out)
    }

    /// Drops the changes up to `applied` (the index has committed them):
    /// the rows before it go, and its own row is emptied but stays, so that
    /// the latest row always does and sequence numbers never restart.
    pub fn trim_changes(&self, applied: u64) -> Result<()> {
        let (below, drop, held) = {
            let txn = self.db.begin_read()?;
            let t = txn.open_table(CHANGES)?;
            let below = applied.min(t.last()?.map_or(0, |(k, _)| k.value()));
            let first = t.first()?.map_or(0, |(k, _)| k.value());
            let held = t.get(applied)?.is_some_and(|v| !v.value().is_empty());
            (below, first < below, held)
        };
        if !drop && !held {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(CHANGES)?;
            t.retain_in(..below, |_, _| false)?;
            if held {
                t.insert(applied, [].as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Reads the source rows of `ids` in one read transaction and calls `f`
    /// with each, in the order of `ids`; an id without a row gives `None`
    /// (retention removed it).
    pub fn doc_sources(
        &self,
        ids: &[ItemId],
        mut f: impl FnMut(&ItemId, Option<DocSource>) -> Result<()>,
    ) -> Result<()> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SOURCES)?;
        let names = txn.open_table(NAMES)?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            // An item's row and the row of a deletion event against it are
            // neighbours (the keys differ in their last byte): one range read
            // finds both.
            let key = item_id_bytes(id);
            let end = deletion_id(id).map_or_else(|| key.clone(), |d| item_id_bytes(&d));
            let (mut row, mut deleted) = (None, false);
            for e in t.range(key.as_slice()..=end.as_slice())? {
                let (k, v) = e?;
                if k.value() != key.as_slice() {
                    deleted = true;
                    continue;
                }
                match self.read_row(&names, v.value()) {
                    Ok(r) => row = Some(r),
                    Err(e) => {
                        tracing::warn!(item = %id, error = %e, "source row cannot be decoded: not indexed");
                    }
                }
            }
            rows.push((*id, row, deleted));
        }
        let packs = self.prefetch(rows.iter().filter_map(|(_, r, _)| r.as_ref()));
        for (id, row, deleted) in rows {
            let doc = row.map(|row| DocSource::new(&packs, &id, row, deleted));
            f(&id, doc)?;
        }
        Ok(())
    }

    /// Calls `f` with every source row, in `ItemId` order.
    pub fn for_each_source(&self, mut f: impl FnMut(DocSource) -> Result<()>) -> Result<()> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SOURCES)?;
        let names = txn.open_table(NAMES)?;
        let mut rows: Vec<(ItemId, SourceRow)> = Vec::with_capacity(SOURCES_PER_READ);
        let mut flush = |rows: &mut Vec<(ItemId, SourceRow)>| -> Result<()> {
            let packs = self.prefetch(rows.iter().map(|(_, r)| r));
            for (id, row) in rows.drain(..) {
                let deleted = has_deletion(&t, &id)?;
                f(DocSource::new(&packs, &id, row, deleted))?;
            }
            Ok(())
        };
        for e in t.iter()? {
            let (k, v) = e?;
            let id = key::decode_item_id(k.value())?;
            let Ok(row) = self.read_row(&names, v.value()) else {
                tracing::warn!(item = %id, "source row cannot be decoded: not indexed");
                continue;
            };
            rows.push((id, row));
            if rows.len() == SOURCES_PER_READ {
                flush(&mut rows)?;
            }
        }
        flush(&mut rows)
    }

    /// A `sources` row of a read transaction whose `names` table is `names`.
    pub(super) fn read_row(&self, names: &NameTable, bytes: &[u8]) -> Result<SourceRow> {
        SourceRow::decode(bytes, &mut |id| self.names.get(names, id))
    }

    /// The versions of `rows`, read ahead from the packs in few calls.
    fn prefetch<'r>(&self, rows: impl Iterator<Item = &'r SourceRow>) -> pack::Prefetched<'_> {
        let refs: Vec<PackRef> = rows
            .flat_map(|r| r.rec.versions.iter().map(|v| v.at))
            .collect();
        self.packs.read_many(&refs)
    }

    /// Calls `f` with every source row's id and index stamp, in `ItemId` order,
    /// without decoding item contents.
    pub fn for_each_stamp(&self, mut f: impl FnMut(ItemId, u64) -> Result<()>) -> Result<()> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SOURCES)?;
        let names = txn.open_table(NAMES)?;
        for e in t.iter()? {
            let (k, v) = e?;
            let id = key::decode_item_id(k.value())?;
            // A row that does not decode has no document; the store's own
            // check names it.
            let Ok(row) = self.read_row(&names, v.value()) else {
                continue;
            };
            f(id, row.rec.stamp(has_deletion(&t, &id)?))?;
        }
        Ok(())
    }

    /// Every participant the catalogue has seen resolve, by person key
    /// (`user123`, `phone:P`...), with the mailbox they resolved to (the
    /// first met, in `ItemId` order).
    pub fn address_book(&self) -> Result<HashMap<String, String>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(SOURCES)?;
        let names = txn.open_table(NAMES)?;
        let mut book = HashMap::new();
        for e in t.iter()? {
            let (_, v) = e?;
            let Ok(row) = self.read_row(&names, v.value()) else {
                continue;
            };
            for (k, m) in row.rec.addresses {
                book.entry(k).or_insert(m);
            }
        }
        Ok(book)
    }

    // ---- holds, cases, policies, tombstones

    pub fn holds(&self) -> Result<Vec<(Vec<u8>, StoredHold)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(HOLDS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_vec(), codec::decode(v.value())?));
        }
        Ok(out)
    }

    pub fn cases(&self) -> Result<Vec<(String, CaseRecord)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(CASES)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_string(), codec::decode(v.value())?));
        }
        Ok(out)
    }

    pub fn policies(&self) -> Result<Vec<StoredPolicy>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(POLICIES)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            out.push(codec::decode(e?.1.value())?);
        }
        Ok(out)
    }

    pub fn tombstones(&self) -> Result<Vec<(ItemKey, Tombstone)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(TOMBSTONES)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((ItemKey::decode(k.value())?, codec::decode(v.value())?));
        }
        Ok(out)
    }

    /// The filing of one copy, if it is filed.
    pub fn filing(&self, key: &ItemKey) -> Result<Option<Filing>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ITEMS)?;
        let names = txn.open_table(NAMES)?;
        let Some(kb) = self.filing_key_of(&names, key)? else {
            return Ok(None);
        };
        t.get(kb.as_slice())?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    /// Every filed copy, in key order (mailboxes and folders in the order
    /// the archive first met them).
    pub fn for_each_copy(&self, f: impl FnMut(ItemKey, Filing) -> Result<()>) -> Result<()> {
        self.copies_keyed(key::decode_filing_key, f)
    }

    /// [`Archive::for_each_copy`] with `items` keys read by `decode` (a
    /// migration reads an older format's).
    pub(super) fn copies_keyed(
        &self,
        decode: key::FilingKeyReader,
        mut f: impl FnMut(ItemKey, Filing) -> Result<()>,
    ) -> Result<()> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ITEMS)?;
        let names = txn.open_table(NAMES)?;
        for e in t.iter()? {
            let (k, v) = e?;
            let (m, folder, item) = decode(k.value())?;
            let key = ItemKey {
                mailbox: self.names.get(&names, m)?,
                folder: self.names.get(&names, folder)?,
                item,
            };
            f(key, codec::decode(v.value())?)?;
        }
        Ok(())
    }

    /// The `items` key of `key`; `None` when the archive has never met its
    /// mailbox or folder.
    pub(super) fn filing_key_of(
        &self,
        names: &NameTable,
        key: &ItemKey,
    ) -> Result<Option<Vec<u8>>> {
        let m = self.names.find(names, &key.mailbox)?;
        let f = self.names.find(names, &key.folder)?;
        Ok(m.zip(f).map(|(m, f)| key::filing_key(m, f, &key.item)))
    }

    /// An `items` key of a read transaction, its names looked up.
    pub(super) fn read_filing_key(&self, names: &NameTable, bytes: &[u8]) -> Result<ItemKey> {
        let (m, f, item) = key::decode_filing_key(bytes)?;
        Ok(ItemKey {
            mailbox: self.names.get(names, m)?,
            folder: self.names.get(names, f)?,
            item,
        })
    }

    /// Removes blob files retention freed (after the transaction committed).
    pub fn unlink_blob_files(&self, shas: &[[u8; 32]]) {
        for sha in shas {
            if let Err(e) = self.blobs.remove(sha) {
                tracing::warn!(error = %e, "freed blob file not removed");
            }
        }
    }

    /// Whether the archive has a row for each blob in `shas`.
    pub fn has_blobs(&self, shas: &[[u8; 32]]) -> Result<Vec<bool>> {
        if shas.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.db.begin_read()?;
        blob_rows::known(&txn, shas)
    }

    /// The zstd dictionaries pack records are compressed with.
    pub fn dictionaries(&self) -> Result<Vec<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        Ok(packs_and_dicts(&txn)?.1)
    }

    /// Removes the blob files among `shas` that no committed row refers to:
    /// what an import staged for a file that then failed.
    pub fn drop_unused_blob_files(&self, shas: &[[u8; 32]]) -> Result<()> {
        let txn = self.db.begin_read()?;
        let known = blob_rows::known(&txn, shas)?;
        for (sha, known) in shas.iter().zip(known) {
            if !known {
                self.blobs.remove(sha)?;
            }
        }
        Ok(())
    }

    pub fn quarantine(&self) -> Result<Vec<(ItemId, QuarantineRecord)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(QUARANTINE)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((key::decode_item_id(k.value())?, codec::decode(v.value())?));
        }
        Ok(out)
    }

    /// Opens a blob for reading; the reader fails at its end if the bytes do not
    /// match the hash.
    pub fn open_blob(&self, sha: &[u8; 32]) -> Result<Box<dyn Read>> {
        let txn = self.db.begin_read()?;
        let meta = blob_rows::meta(&txn, sha)?
            .ok_or_else(|| Error::NotFound(format!("blob {}", hex::encode(sha))))?;
        match meta.place {
            BlobPlace::Pack(at) => {
                let bytes = self.packs.read(&at).map_err(|e| match e {
                    Error::Corrupt(what) => {
                        Error::Corrupt(format!("blob {}: {what}", hex::encode(sha)))
                    }
                    other => other,
                })?;
                Ok(Box::new(VerifyingReader::new(
                    std::io::Cursor::new(bytes),
                    *sha,
                )))
            }
            BlobPlace::File => {
                let reader = self.blobs.file(sha)?.open()?;
                Ok(Box::new(VerifyingReader::new(reader, *sha)))
            }
        }
    }

    /// Every blob row (`blobs`, then the rows still in `blob_log`).
    pub fn blob_metas(&self) -> Result<Vec<([u8; 32], BlobMeta)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(BLOBS)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            let sha = <[u8; 32]>::try_from(k.value())
                .map_err(|_| Error::Corrupt(format!("blobs key {}", hex::encode(k.value()))))?;
            out.push((sha, codec::decode(v.value())?));
        }
        out.extend(
            blob_rows::logged(&txn)?
                .into_iter()
                .map(|l| (l.sha, l.meta)),
        );
        Ok(out)
    }

    /// redb's own accounting of the file: stored, metadata and fragmented bytes.
    pub fn storage_stats(&self) -> Result<(u64, u64, u64)> {
        let txn = self.db.begin_write()?;
        let st = txn.stats()?;
        txn.abort()?;
        Ok((
            st.stored_bytes(),
            st.metadata_bytes(),
            st.fragmented_bytes(),
        ))
    }

    /// The catalogue file's length, and the bytes its rows and redb's
    /// metadata take in it (the rest is free or in partly filled pages).
    pub fn catalogue_usage(&self) -> Result<(u64, u64)> {
        let path = db_path(&self.dir);
        let len = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
        let (stored, meta, _) = self.storage_stats()?;
        Ok((len, stored + meta))
    }

    /// Per table that grows with the archive: rows, and redb's stored,
    /// metadata and fragmented bytes (for the benches' size reports).
    pub fn table_stats(&self) -> Result<Vec<(&'static str, [u64; 4])>> {
        use redb::{ReadableTableMetadata, TableStats};
        let row = |name, len, st: TableStats| {
            (
                name,
                [
                    len,
                    st.stored_bytes(),
                    st.metadata_bytes(),
                    st.fragmented_bytes(),
                ],
            )
        };
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for (name, def) in [("items", ITEMS), ("sources", SOURCES), ("blobs", BLOBS)] {
            let t = txn.open_table(def)?;
            out.push(row(name, t.len()?, t.stats()?));
        }
        for (name, def) in [("changes", CHANGES), ("blob_log", BLOB_LOG)] {
            let t = txn.open_table(def)?;
            out.push(row(name, t.len()?, t.stats()?));
        }
        Ok(out)
    }

    /// Counts of rows per table, for tests and `stats`.
    pub fn table_sizes(&self) -> Result<Vec<(&'static str, u64)>> {
        use redb::ReadableTableMetadata;
        let txn = self.db.begin_read()?;
        let mut out = Vec::new();
        for (name, def) in [
            ("items", ITEMS),
            ("sources", SOURCES),
            ("blobs", BLOBS),
            ("quarantine", QUARANTINE),
            ("folders", FOLDERS),
        ] {
            out.push((name, txn.open_table(def)?.len()?));
        }
        out.push(("blob_log", txn.open_table(BLOB_LOG)?.len()?));
        out.push(("packs", txn.open_table(PACKS)?.len()?));
        out.push(("runs", txn.open_table(RUNS)?.len()?));
        out.push(("audit", txn.open_table(AUDIT)?.len()?));
        Ok(out)
    }
}

/// Whether a deletion event was recorded against item `id`.
fn has_deletion(t: &impl ReadableTable<&'static [u8], &'static [u8]>, id: &ItemId) -> Result<bool> {
    match deletion_id(id) {
        Some(del) => Ok(t.get(item_id_bytes(&del).as_slice())?.is_some()),
        None => Ok(false),
    }
}

/// The id a deletion event against item `id` is recorded under (its key is
/// the item's with the last byte changed); `None` when `id` is itself one.
/// The numbers of the folders `mailbox` (a name number) has filings in, in
/// number order: one range read per folder, stepping over its rows.
fn folders_of(
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
    mailbox: u32,
) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let mut from = Some(0u32);
    let end = key::prefix_end(&key::filing_prefix(mailbox, None));
    while let Some(folder) = from {
        let start = key::filing_prefix(mailbox, Some(folder));
        let first = match &end {
            Some(end) => t.range(start.as_slice()..end.as_slice())?.next(),
            None => t.range(start.as_slice()..)?.next(),
        };
        let Some(e) = first else { break };
        let (_, f, _) = key::decode_filing_key(e?.0.value())?;
        out.push(f);
        from = f.checked_add(1);
    }
    Ok(out)
}

fn deletion_id(id: &ItemId) -> Option<ItemId> {
    (id.part == crate::model::Part::Item).then_some(ItemId {
        part: crate::model::Part::Deletion,
        ..*id
    })
}

/// Everything the search index derives a document from: one source row,
/// decoded and checked, and whether a deletion event names it.
pub struct DocSource {
    pub id: ItemId,
    pub rec: SourceRecord,
    /// Every version, oldest first, without its `raw` source text (nothing
    /// indexes it); empty when they cannot be read (damaged or tampered with:
    /// `verify` names it), and then `problem` says why.
    pub versions: Vec<Item>,
    pub deleted: bool,
    pub problem: Option<String>,
}

impl DocSource {
    fn new(packs: &pack::Prefetched<'_>, id: &ItemId, row: SourceRow, deleted: bool) -> DocSource {
        let n = row.rec.versions.len();
        let decoded = if n == 0 {
            Err(Error::Corrupt(format!("{id} has no version")))
        } else {
            (0..n)
                // The index has no use for the source text.
                .map(|i| {
                    row.decode_version(
                        id,
                        i,
                        &mut |v| packs.read_version(&v.at, &v.content),
                        codec::decode_item_without_raw,
                    )
                })
                .collect::<Result<Vec<_>>>()
        };
        let (versions, problem) = match decoded {
            Ok(v) => (v, None),
            Err(e) => {
                tracing::warn!(item = %id, error = %e, "item cannot be read: indexed as unindexable");
                (Vec::new(), Some(e.to_string()))
            }
        };
        DocSource {
            id: *id,
            deleted,
            rec: row.rec,
            versions,
            problem,
        }
    }

    /// The current version; `None` when the item could not be read.
    pub fn current(&self) -> Option<&Item> {
        self.versions.last()
    }

    pub fn stamp(&self) -> u64 {
        self.rec.stamp(self.deleted)
    }
}

/// One row of `sources`: the record; every version's encoded item is in a
/// pack, where the version's `at` says.
#[derive(Default)]
pub(crate) struct SourceRow {
    rec: SourceRecord,
}

/// Reads a version's content (committed, or stored by the reading
/// transaction), checked against its `content` hash.
type ReadPack<'a> = dyn FnMut(&Version) -> Result<Vec<u8>> + 'a;

/// The `names` table of a read transaction.
type NameTable = redb::ReadOnlyTable<u32, &'static [u8]>;

/// Gives the text of a name number (see [`names`]).
type NameOf<'a> = dyn FnMut(u32) -> Result<String> + 'a;

impl SourceRow {
    /// Reads a format-6 row, its names looked up by `name`.
    pub(crate) fn decode(bytes: &[u8], name: &mut NameOf<'_>) -> Result<SourceRow> {
        let stored: records::StoredSource = codec::decode(bytes)?;
        let mut pairs = |ids: Vec<(u32, u32)>| -> Result<Vec<(String, String)>> {
            ids.into_iter()
                .map(|(a, b)| Ok((name(a)?, name(b)?)))
                .collect()
        };
        Ok(SourceRow {
            rec: SourceRecord {
                locations: pairs(stored.locations)?,
                addresses: pairs(stored.addresses)?,
                versions: stored.versions,
            },
        })
    }

    /// Reads a row of format 5 or before, which spelt its names out.
    pub(super) fn decode_spelt(bytes: &[u8]) -> Result<SourceRow> {
        let old: records::SourceRecordV5 = codec::decode(bytes)?;
        Ok(SourceRow {
            rec: SourceRecord {
                versions: old.versions.into_iter().map(Version::from).collect(),
                locations: old.locations,
                addresses: old.addresses,
            },
        })
    }

    /// A row of format 6 or 7 in format 8's form (its fingerprints left out).
    pub(super) fn from_format_7(bytes: &[u8]) -> Result<Vec<u8>> {
        let old: records::StoredSource<records::VersionV7> = codec::decode(bytes)?;
        let versions: Vec<Version> = old.versions.into_iter().map(Version::from).collect();
        Ok(codec::encode(&records::StoredSourceRef {
            versions: &versions,
            locations: old.locations,
            addresses: old.addresses,
        }))
    }

    /// The versions of a row a backup of format 7 or before holds: of its
    /// own format, or of format 8 when a pass that was cut short wrote it.
    /// Only a row that decodes whole in one of the forms is taken as it.
    pub(crate) fn versions_of_older(bytes: &[u8]) -> Result<Vec<Version>> {
        let v7 = |v: Vec<records::VersionV7>| v.into_iter().map(Version::from).collect();
        if let Ok(row) = codec::decode::<records::StoredSource<records::VersionV7>>(bytes) {
            return Ok(v7(row.versions));
        }
        if let Ok(row) = codec::decode::<records::SourceRecordV5>(bytes) {
            return Ok(v7(row.versions));
        }
        Ok(codec::decode::<records::StoredSource>(bytes)?.versions)
    }

    /// A row with only its versions read (what reading an item needs).
    pub(crate) fn versions_only(bytes: &[u8]) -> Result<SourceRow> {
        Ok(SourceRow {
            rec: SourceRecord {
                versions: SourceRow::versions_of(bytes)?,
                ..SourceRecord::default()
            },
        })
    }

    /// The versions of a row.
    pub(crate) fn versions_of(bytes: &[u8]) -> Result<Vec<Version>> {
        Ok(codec::decode_prefix::<Vec<Version>>(bytes)?.0)
    }

    /// `bytes`, a row, with its versions replaced.
    pub(crate) fn with_versions(bytes: &[u8], versions: &[Version]) -> Result<Vec<u8>> {
        let (_, used) = codec::decode_prefix::<Vec<Version>>(bytes)?;
        let mut out = codec::encode(&versions);
        out.extend_from_slice(&bytes[used..]);
        Ok(out)
    }

    /// Writes the row in format 8, its names numbered by `number`.
    pub(super) fn encode(&self, number: &mut dyn FnMut(&str) -> Result<u32>) -> Result<Vec<u8>> {
        let mut pairs = |p: &[(String, String)]| -> Result<Vec<(u32, u32)>> {
            p.iter()
                .map(|(a, b)| Ok((number(a)?, number(b)?)))
                .collect()
        };
        Ok(codec::encode(&records::StoredSourceRef {
            versions: &self.rec.versions,
            locations: pairs(&self.rec.locations)?,
            addresses: pairs(&self.rec.addresses)?,
        }))
    }

    pub(crate) fn version(
        &self,
        id: &ItemId,
        index: usize,
        read: &mut ReadPack<'_>,
    ) -> Result<Item> {
        self.decode_version(id, index, read, codec::decode_item)
    }

    /// Reads version `index` with `read` (which checks it against its
    /// content hash) and decodes it with `decode`.
    fn decode_version<B: AsRef<[u8]>>(
        &self,
        id: &ItemId,
        index: usize,
        read: &mut dyn FnMut(&Version) -> Result<B>,
        decode: fn(&[u8]) -> Result<Item>,
    ) -> Result<Item> {
        let v = self
            .rec
            .versions
            .get(index)
            .ok_or_else(|| Error::NotFound(format!("version {} of {id}", index + 1)))?;
        let bytes = read(v).map_err(|e| match e {
            Error::Corrupt(what) => Error::Corrupt(format!("{id}: {what}")),
            other => other,
        })?;
        decode(bytes.as_ref())
    }

    fn current(&self, id: &ItemId, read: &mut ReadPack<'_>) -> Result<Item> {
        match self.rec.versions.len() {
            0 => Err(Error::Corrupt(format!("{id} has no version"))),
            n => self.version(id, n - 1, read),
        }
    }
}

/// The tables of one write transaction.
pub struct Tx<'t> {
    packs: &'t Packs,
    pack: &'t mut pack::Writer,
    pack_lengths: Table<'t, u32, u64>,
    dicts: Table<'t, u32, &'static [u8]>,
    scrub: Table<'t, &'static [u8], u64>,
    /// Whether this transaction scheduled content for destruction.
    scrubs: bool,
    items: Table<'t, &'static [u8], &'static [u8]>,
    sources: Table<'t, &'static [u8], &'static [u8]>,
    /// The `names` table, the names committed, and those this transaction gave.
    names_table: Table<'t, u32, &'static [u8]>,
    names: &'t names::Names,
    new_names: names::NewNames,
    blobs: Table<'t, &'static [u8], &'static [u8]>,
    quarantine: Table<'t, &'static [u8], &'static [u8]>,
    folders: Table<'t, &'static [u8], &'static [u8]>,
    runs: Table<'t, u64, &'static [u8]>,
    audit: Table<'t, u64, &'static [u8]>,
    /// The audit entries this transaction appended, for the journal.
    journal: Vec<audit::Entry>,
    changes: Table<'t, u64, &'static [u8]>,
    blob_log: Table<'t, u64, &'static [u8]>,
    /// The committed log's rows by hash (the archive's).
    log_index: &'t Mutex<blob_rows::LogIndex>,
    /// Blobs this transaction logged, by hash.
    log_new: HashMap<[u8; 32], u64>,
    /// The next `blob_log` key, once known.
    log_next: Option<u64>,
    /// Whether this transaction folded the log into `blobs`.
    log_folded: bool,
    holds: Table<'t, &'static [u8], &'static [u8]>,
    cases: Table<'t, &'static str, &'static [u8]>,
    policies: Table<'t, &'static str, &'static [u8]>,
    tombstones: Table<'t, &'static [u8], &'static [u8]>,
    access: Table<'t, &'static [u8], &'static [u8]>,
    connectors: Table<'t, &'static [u8], &'static [u8]>,
    forward: Table<'t, &'static [u8], &'static [u8]>,
    meta: Table<'t, &'static str, &'static [u8]>,
    /// Whether `tombstones` has any row (checked once per transaction).
    any_tombstone: Option<bool>,
    /// Filings removed per folder key in this transaction.
    folder_removed: BTreeMap<Vec<u8>, u64>,
    /// This transaction's changes, `ItemId ++ flag` each, written as one
    /// `changes` row when it ends.
    pending_changes: Vec<u8>,
    /// How many changes `pending_changes` holds.
    pending_change_count: usize,
    /// New filings per folder key in this transaction, applied at its end.
    folder_delta: BTreeMap<Vec<u8>, u64>,
    filings: Table<'t, &'static [u8], &'static [u8]>,
    /// The copies this transaction filed, for its filing-log record.
    filing_log: filings::LogBuilder,
    /// `sources` rows with a version in the open group, written when it
    /// closes (see [`group`]).
    unplaced: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Version records this transaction destroyed: a group's other members
    /// are stored anew before it goes.
    destroyed_versions: BTreeSet<PackRef>,
}

/// What deleting a copy did (see [`Tx::dispose`]).
#[derive(Debug, Default)]
pub struct Disposed {
    /// Blob files to unlink once the transaction has committed.
    pub freed: Vec<[u8; 32]>,
    /// Versions destroyed unread (damaged): what each was and why, since the
    /// uses of their blobs could not be released.
    pub unreadable: Vec<String>,
}

/// An item version ready to be stored: its encoding, the hash of it, and the
/// few fields the store indexes. The item itself can be dropped once encoded.
pub struct EncodedItem {
    pub id: ItemId,
    pub bytes: Vec<u8>,
    pub sha256: [u8; 32],
    pub fingerprint: [u8; 32],
    pub with_content: u32,
    pub date: Option<i64>,
    pub kind: crate::model::ItemKind,
    pub edited: Option<i64>,
    /// The item a deletion event deletes.
    pub deletes: Option<ItemId>,
    /// The blobs its attachments' contents are stored in, each once.
    pub blobs: Vec<[u8; 32]>,
}

impl EncodedItem {
    pub fn new(item: &Item) -> Self {
        let bytes = codec::encode_item(item);
        let sha256 = crate::model::sha256(&bytes);
        EncodedItem {
            id: item.id,
            bytes,
            sha256,
            fingerprint: item.fingerprint,
            with_content: item.attachments_with_content(),
            date: item.date,
            kind: item.kind(),
            edited: item.edited,
            deletes: match &item.body {
                crate::model::Body::Deletion(d) => Some(d.target),
                _ => None,
            },
            blobs: item.blobs_used(),
        }
    }
}

impl Tx<'_> {
    fn apply_folder_delta(&mut self) -> Result<()> {
        let added = std::mem::take(&mut self.folder_delta);
        let removed = std::mem::take(&mut self.folder_removed);
        let keys: std::collections::BTreeSet<&Vec<u8>> =
            added.keys().chain(removed.keys()).collect();
        for fk in keys {
            let mut stats: FolderStats = match self.folders.get(fk.as_slice())? {
                Some(v) => codec::decode(v.value())?,
                None => FolderStats::default(),
            };
            stats.items += added.get(fk).copied().unwrap_or(0);
            stats.items = stats
                .items
                .saturating_sub(removed.get(fk).copied().unwrap_or(0));
            if stats.items == 0 {
                self.folders.remove(fk.as_slice())?;
            } else {
                self.folders
                    .insert(fk.as_slice(), codec::encode(&stats).as_slice())?;
            }
        }
        Ok(())
    }

    pub fn put_run(&mut self, rec: &RunRecord) -> Result<()> {
        self.runs.insert(rec.id, codec::encode(rec).as_slice())?;
        Ok(())
    }

    pub fn run(&self, id: u64) -> Result<RunRecord> {
        let v = self
            .runs
            .get(id)?
            .ok_or_else(|| Error::Internal(format!("run {id} vanished")))?;
        codec::decode(v.value())
    }

    fn source_row(&self, idb: &[u8]) -> Result<SourceRow> {
        let mut name = |id| match self.new_names.get(id) {
            Some(n) => Ok(n.to_string()),
            None => self.names.get(&self.names_table, id),
        };
        if let Some(bytes) = self.unplaced.get(idb) {
            return SourceRow::decode(bytes, &mut name);
        }
        let Some(v) = self.sources.get(idb)? else {
            return Ok(SourceRow::default());
        };
        SourceRow::decode(v.value(), &mut name)
    }

    /// The number of `name`, given now if the archive has none for it.
    fn number(&mut self, name: &str) -> Result<u32> {
        self.new_names
            .intern(self.names, &mut self.names_table, name)
    }

    /// The number of `name`, if it has one (committed or given by this
    /// transaction).
    fn known_number(&self, name: &str) -> Option<u32> {
        self.names
            .id_of(name)
            .or_else(|| self.new_names.id_of(name))
    }

    /// Writes `row` under `idb`, numbering the names it brings.
    fn put_source(&mut self, idb: &[u8], row: &SourceRow) -> Result<()> {
        let (names, table, new) = (self.names, &mut self.names_table, &mut self.new_names);
        let bytes = row.encode(&mut |n| new.intern(names, table, n))?;
        let unplaced = row.rec.versions.iter().any(|v| v.at == pack::UNPLACED);
        self.put_source_bytes(idb, bytes, unplaced)
    }

    /// Whether the item has `enc` already: the same content, or the same
    /// source record (fingerprint) with at least as many attachment
    /// contents, or, from another source format, a version with the same
    /// equivalence key (`Item::equivalence`) and at least as many contents.
    /// So a re-export without its media files adds nothing, one that brings
    /// media an earlier import lacked adds a version that has them, and a
    /// Desktop export of chats a connector captured adds only what the
    /// connector missed. Only the first test needs no read: the others read
    /// the stored versions (fingerprints live in the items, not the rows).
    fn is_known(&mut self, row: &SourceRow, enc: &EncodedItem) -> bool {
        let with_content = enc.with_content;
        let versions = &row.rec.versions;
        if versions.iter().any(|v| v.content == enc.sha256) {
            return true;
        }
        let mut new = None;
        versions
            .iter()
            .filter(|v| v.with_content >= with_content)
            .any(|v| {
                // A version that cannot be read now is not taken as this
                // one: adding a version loses nothing (and `verify` names
                // the damage).
                let Ok(it) = self.read_version(v).and_then(|b| codec::decode_item(&b)) else {
                    return false;
                };
                if it.fingerprint == enc.fingerprint {
                    return true;
                }
                // Worked out once, and only for the rare path (an edit,
                // another source's capture).
                let new = new.get_or_insert_with(|| {
                    codec::decode_item_without_raw(&enc.bytes)
                        .ok()
                        .and_then(|n| Some((n.equivalence()?, n.source_format)))
                });
                new.as_ref().is_some_and(|(key, format)| {
                    it.source_format != *format && it.equivalence().as_ref() == Some(key)
                })
            })
    }

    /// Adds `enc` as a version of its item unless the archive has it already
    /// ([`Tx::is_known`]). Returns whether a version was added; its content
    /// goes into the pack when the row is written ([`Tx::store_version`]).
    fn add_version(&mut self, row: &mut SourceRow, enc: &EncodedItem, run: u64) -> bool {
        let with_content = enc.with_content;
        if self.is_known(row, enc) {
            return false;
        }
        row.rec.versions.push(Version {
            content: enc.sha256,
            at: PackRef {
                pack: 0,
                offset: 0,
                len: enc.bytes.len() as u64,
            },
            with_content,
            run,
            edited: enc.edited,
        });
        true
    }

    /// Stores the content of the version [`Tx::add_version`] added (the
    /// row's last) and points the version at it: in the open group (placed
    /// when the group closes, see [`group`]), or a large one in a record of
    /// its own.
    fn store_version(&mut self, row: &mut SourceRow, enc: &EncodedItem) -> Result<()> {
        let at = self.store_content(&enc.bytes, &enc.sha256)?;
        if let Some(v) = row.rec.versions.last_mut() {
            v.at = at;
        }
        Ok(())
    }

    /// Files an item version into each of `mailboxes` (under `folder`), storing
    /// its content once. A new version counts as a user of its attachments'
    /// blobs; one the archive lacks is stored from `blobs` (what the import
    /// staged for the item). An item that was in the quarantine leaves it.
    pub fn file_item(
        &mut self,
        enc: &EncodedItem,
        blobs: &[StagedBlob],
        mailboxes: &[String],
        addresses: &[(String, String)],
        folder: &str,
        run: u64,
    ) -> Result<Vec<Filed>> {
        self.make_room()?;
        let idb = item_id_bytes(&enc.id);
        let mut row = self.source_row(&idb)?;
        let is_new = row.rec.versions.is_empty();
        // An item known but filed nowhere can only be in the quarantine.
        let maybe_quarantined = !is_new && row.rec.locations.is_empty();
        let new_version = self.add_version(&mut row, enc, run);
        let mut out = Vec::with_capacity(mailboxes.len());
        let mut changed = new_version;
        for (k, m) in addresses {
            if !row.rec.addresses.iter().any(|(kk, mm)| kk == k && mm == m) {
                row.rec.addresses.push((k.clone(), m.clone()));
                changed = true;
            }
        }
        for mailbox in mailboxes {
            // The source record lists every filing: no lookup in `items` needed.
            if row
                .rec
                .locations
                .iter()
                .any(|(m, f)| m == mailbox && f == folder)
            {
                out.push(if new_version {
                    Filed::NewVersion
                } else {
                    Filed::Duplicate
                });
                continue;
            }
            let k = key::item_key(mailbox, folder, &enc.id);
            if self.is_tombstoned(&k)? {
                out.push(Filed::Disposed);
                continue;
            }
            let filing = Filing {
                date: enc.date,
                kind: enc.kind,
                run,
            };
            let fk = key::filing_key(self.number(mailbox)?, self.number(folder)?, &enc.id);
            self.items
                .insert(fk.as_slice(), codec::encode(&filing).as_slice())?;
            // The key of the folder's count is the item key's prefix.
            let folder_key = &k[..k.len() - idb.len()];
            match self.folder_delta.get_mut(folder_key) {
                Some(n) => *n += 1,
                None => {
                    self.folder_delta.insert(folder_key.to_vec(), 1);
                }
            }
            row.rec
                .locations
                .push((mailbox.clone(), folder.to_string()));
            self.log_filing(&enc.id, mailbox, folder)?;
            changed = true;
            out.push(Filed::New);
        }
        // An item retention disposed of everywhere it went is not stored again.
        if is_new && !out.contains(&Filed::New) && !mailboxes.is_empty() {
            return Ok(out);
        }
        if changed {
            if new_version {
                self.store_version(&mut row, enc)?;
            }
            self.put_source(&idb, &row)?;
            self.log_change(&idb, is_new)?;
            if is_new && let Some(target) = &enc.deletes {
                self.log_change(&item_id_bytes(target), false)?;
            }
        }
        if new_version {
            self.use_blobs(enc, blobs, run)?;
        }
        if maybe_quarantined && !mailboxes.is_empty() {
            self.quarantine.remove(idb.as_slice())?;
        }
        Ok(out)
    }

    /// Keeps an item that maps to no mailbox. An item already filed somewhere is
    /// not quarantined again: its new version is simply recorded. Blobs as in
    /// [`Tx::file_item`].
    pub fn quarantine_item(
        &mut self,
        enc: &EncodedItem,
        blobs: &[StagedBlob],
        record: &QuarantineRecord,
    ) -> Result<Quarantined> {
        self.make_room()?;
        let idb = item_id_bytes(&enc.id);
        let mut row = self.source_row(&idb)?;
        let is_new = row.rec.versions.is_empty();
        let new_version = self.add_version(&mut row, enc, record.run);
        let was_held = self.quarantine.get(idb.as_slice())?.is_some();
        let outcome = if !row.rec.locations.is_empty() {
            Quarantined::AlreadyFiled { new_version }
        } else if !was_held {
            self.quarantine
                .insert(idb.as_slice(), codec::encode(record).as_slice())?;
            Quarantined::New
        } else if new_version {
            Quarantined::NewVersion
        } else {
            Quarantined::Duplicate
        };
        if new_version {
            self.store_version(&mut row, enc)?;
            self.put_source(&idb, &row)?;
            self.log_change(&idb, is_new)?;
            if is_new && let Some(target) = &enc.deletes {
                self.log_change(&item_id_bytes(target), false)?;
            }
            self.use_blobs(enc, blobs, record.run)?;
        }
        Ok(outcome)
    }

    /// Records a new copy in this transaction's filing log.
    fn log_filing(&mut self, id: &ItemId, mailbox: &str, folder: &str) -> Result<()> {
        self.filing_log.add(id, mailbox, folder);
        if self.filing_log.len() >= filings::RECORD_COPIES {
            self.write_filing_log()?;
        }
        Ok(())
    }

    /// Appends the copies logged so far as one filing-log record (none when
    /// there are none) and lists it in `filings`.
    fn write_filing_log(&mut self) -> Result<()> {
        if self.filing_log.is_empty() {
            return Ok(());
        }
        let log = self.filing_log.take();
        self.append_filing_log(&log)
    }

    pub(super) fn append_filing_log(&mut self, log: &filings::FilingLog) -> Result<()> {
        let bytes = codec::encode(log);
        let sha = crate::model::sha256(&bytes);
        let at = self.pack.append(pack::Kind::Filings, &bytes)?;
        self.filings.insert(
            at.scrub_key().as_slice(),
            filings::row_value(at.len, &sha).as_slice(),
        )?;
        Ok(())
    }

    fn is_tombstoned(&mut self, key: &[u8]) -> Result<bool> {
        let any = match self.any_tombstone {
            Some(a) => a,
            None => {
                let a = self.tombstones.first()?.is_some();
                self.any_tombstone = Some(a);
                a
            }
        };
        Ok(any && self.tombstones.get(key)?.is_some())
    }

    // ---- holds, cases, policies

    pub fn holds(&self) -> Result<Vec<(Vec<u8>, StoredHold)>> {
        let mut out = Vec::new();
        for e in self.holds.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_vec(), codec::decode(v.value())?));
        }
        Ok(out)
    }

    pub fn put_hold(&mut self, key: &[u8], hold: &StoredHold) -> Result<()> {
        self.holds.insert(key, codec::encode(hold).as_slice())?;
        Ok(())
    }

    /// Removes a hold; whether there was one.
    pub fn remove_hold(&mut self, key: &[u8]) -> Result<bool> {
        Ok(self.holds.remove(key)?.is_some())
    }

    pub fn case(&self, name: &str) -> Result<Option<CaseRecord>> {
        self.cases
            .get(name)?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    pub fn put_case(&mut self, name: &str, rec: &CaseRecord) -> Result<()> {
        self.cases.insert(name, codec::encode(rec).as_slice())?;
        Ok(())
    }

    pub fn policy(&self, name: &str) -> Result<Option<StoredPolicy>> {
        self.policies
            .get(name)?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    pub fn put_policy(&mut self, name: &str, p: &StoredPolicy) -> Result<()> {
        self.policies.insert(name, codec::encode(p).as_slice())?;
        Ok(())
    }

    pub fn remove_policy(&mut self, name: &str) -> Result<bool> {
        Ok(self.policies.remove(name)?.is_some())
    }

    /// Deletes one filed copy for retention: its `items` row, its place in the
    /// source row, the whole source row (every version) when no copy is left,
    /// and blobs nobody uses any more; leaves a tombstone. Returns the blob
    /// files to unlink once the transaction has committed and the versions
    /// that could not be read, or `None` when the copy was not there.
    pub fn dispose(
        &mut self,
        key: &ItemKey,
        deleted_at: i64,
        policy: &str,
        run: u64,
    ) -> Result<Option<Disposed>> {
        let kb = key.encode();
        let numbers = self
            .known_number(&key.mailbox)
            .zip(self.known_number(&key.folder));
        let Some((m, f)) = numbers else {
            return Ok(None);
        };
        let Some(filing) = self
            .items
            .remove(key::filing_key(m, f, &key.item).as_slice())?
            .map(|v| v.value().to_vec())
        else {
            return Ok(None);
        };
        let filing: Filing = codec::decode(&filing)?;
        *self
            .folder_removed
            .entry(key::folder_key(&key.mailbox, &key.folder))
            .or_insert(0) += 1;
        let idb = item_id_bytes(&key.item);
        let mut row = self.source_row(&idb)?;
        row.rec
            .locations
            .retain(|(m, f)| !(*m == key.mailbox && *f == key.folder));
        let tomb = Tombstone {
            versions: row.rec.versions.iter().map(|v| v.content).collect(),
            date: filing.date,
            deleted_at,
            policy: policy.to_string(),
            run,
        };
        self.tombstones
            .insert(kb.as_slice(), codec::encode(&tomb).as_slice())?;
        self.any_tombstone = Some(true);
        let mut out = Disposed::default();
        if row.rec.locations.is_empty() {
            // The last copy: the content goes, and each version's use of its
            // blobs. A version that cannot be read is destroyed all the same;
            // the uses of its blobs cannot be known, so they stay, and the
            // caller reports it (`verify` then names the blobs no version uses).
            let mut shas: Vec<[u8; 32]> = Vec::new();
            for i in 0..row.rec.versions.len() {
                match row.version(&key.item, i, &mut |v| self.read_version(v)) {
                    Ok(item) => shas.extend(item.blobs_used()),
                    Err(e) => out
                        .unreadable
                        .push(format!("{} version {}: {e}", key.item, i + 1)),
                }
            }
            for v in &row.rec.versions {
                self.destroy_version(&v.at)?;
            }
            self.remove_source(&idb)?;
            out.freed = self.release_blobs(&shas, &key.item)?;
        } else {
            self.put_source(&idb, &row)?;
        }
        self.log_change(&idb, false)?;
        Ok(Some(out))
    }

    /// Counts this transaction in `meta/destroyed`: it changes bytes that a
    /// reader's snapshot may point at (see [`backup`]).
    pub(crate) fn count_destruction(&mut self) -> Result<()> {
        let n = self
            .meta
            .get(backup::DESTROYED)?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .map_or(0, u64::from_be_bytes);
        self.meta
            .insert(backup::DESTROYED, (n + 1).to_be_bytes().as_slice())?;
        Ok(())
    }

    /// Schedules a pack record for destruction once this transaction commits.
    fn destroy(&mut self, r: &PackRef) -> Result<()> {
        self.scrub.insert(r.scrub_key().as_slice(), r.len)?;
        self.scrubs = true;
        Ok(())
    }

    /// Appends a change of the source row `idb` to the change log. A long
    /// transaction (an import's first, open until its file has been checked)
    /// writes a row per [`CHANGES_PER_ROW`] changes, so that neither it nor
    /// the index reading the log holds millions of them at once.
    fn log_change(&mut self, idb: &[u8], is_new: bool) -> Result<()> {
        self.pending_changes.extend_from_slice(idb);
        self.pending_changes.push(if is_new { 0 } else { 1 });
        self.pending_change_count += 1;
        if self.pending_change_count >= CHANGES_PER_ROW {
            self.apply_changes()?;
        }
        Ok(())
    }

    /// Writes this transaction's changes as one row of the log.
    fn apply_changes(&mut self) -> Result<()> {
        if self.pending_changes.is_empty() {
            return Ok(());
        }
        let seq = self
            .changes
            .last()?
            .map(|(k, _)| k.value() + 1)
            .unwrap_or(1);
        let v = std::mem::take(&mut self.pending_changes);
        self.pending_change_count = 0;
        self.changes.insert(seq, v.as_slice())?;
        Ok(())
    }

    /// Appends `event` (the record of a format migration) to the audit trail
    /// and marks the migration recorded, in this transaction: it is audited
    /// exactly once.
    /// Appends the audit entries of interrupted runs and clears the mark
    /// that they were owed (one transaction: each is audited once).
    pub fn audit_interruptions(&mut self, events: Vec<audit::Event>) -> Result<()> {
        for e in events {
            self.audit(e)?;
        }
        self.meta.remove(INTERRUPTED)?;
        Ok(())
    }

    /// Starts a run record (status running) and returns its id.
    pub fn start_run(
        &mut self,
        kind: &str,
        actor: &str,
        args: Vec<String>,
        now: i64,
    ) -> Result<u64> {
        let id = self.runs.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
        self.put_run(&RunRecord {
            id,
            kind: kind.into(),
            started: now,
            finished: None,
            actor: actor.into(),
            args,
            status: RunStatus::Running,
            files: vec![],
        })?;
        Ok(id)
    }

    pub fn audit_migration(&mut self, event: audit::Event) -> Result<u64> {
        let seq = self.audit(event)?;
        self.meta.remove(migrate::UNAUDITED)?;
        Ok(seq)
    }

    /// Where an item is filed, as this transaction sees it.
    pub fn locations(&self, id: &ItemId) -> Result<Vec<(String, String)>> {
        Ok(self.source_row(&item_id_bytes(id))?.rec.locations)
    }

    /// The current version of an item, checked against its hash.
    pub fn current(&mut self, id: &ItemId) -> Result<Option<Item>> {
        let row = self.source_row(&item_id_bytes(id))?;
        if row.rec.versions.is_empty() {
            return Ok(None);
        }
        row.current(id, &mut |v| self.read_version(v)).map(Some)
    }
}

/// A failure of the catalogue's storage engine, as the rest of the crate
/// sees it: its text, and the I/O error behind it if there is one.
#[derive(Debug)]
pub struct StorageError(redb::Error);

impl StorageError {
    /// The kind of the I/O error behind it, if it is one.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match &self.0 {
            redb::Error::Io(io) => Some(io.kind()),
            _ => None,
        }
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Self {
        Error::Storage(StorageError(e))
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Storage(StorageError(e.into()))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);
