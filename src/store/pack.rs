//! Pack files: append-only files under `packs/` that hold every item version's
//! encoded content and every small (inline) attachment blob. redb keeps only
//! where each lives (a [`PackRef`]) and its SHA-256.
//!
//! Why: redb splits a full leaf in half, so rows inserted in key order (an
//! import's) leave every leaf half empty and each commit writes twice the bytes
//! it stores. Contents appended to a file are written once, sequentially; the
//! B-tree rows that point at them are small.
//!
//! Crash safety. A write transaction appends to the current pack (buffered),
//! and before redb commits it the pack is written and `fdatasync`ed; the same
//! transaction records the pack's new committed length in the `packs` table.
//! So a committed pointer always points at durable bytes. Bytes past a pack's
//! committed length belong to a transaction that failed or never committed:
//! a failed transaction truncates them at once, and [`Packs::open`] truncates
//! what a killed process left. Pack files the table does not know are removed.
//!
//! Destruction. Retention must really destroy what it deletes, and an
//! append-only file cannot drop a record. The deleting transaction records the
//! record's range in the `scrub` table; once it has committed, the range is
//! overwritten with zeros, synced, and the row removed. A process killed in
//! between leaves the row, and the next open finishes the job. Space is not
//! reclaimed (the zeroed bytes stay in the file); compaction can come later.

pub use super::frame::Kind;
use super::frame::{self, Dicts, Framer};
use super::group::{self, Group};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// A transaction starts a new pack when the current one has reached this size.
pub const PACK_TARGET: u64 = 1 << 30;

/// Buffered appends are written out when they reach this size.
const WRITE_CHUNK: usize = 4 << 20;

/// Where one record lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PackRef {
    pub pack: u32,
    pub offset: u64,
    pub len: u64,
}

/// A version's place while its group is open (pack ids start at 1): set
/// when the transaction closes the group, never committed.
pub const UNPLACED: PackRef = PackRef {
    pack: 0,
    offset: 0,
    len: 0,
};

impl PackRef {
    /// The `scrub` table's key: pack id then offset, big-endian.
    pub fn scrub_key(&self) -> [u8; 12] {
        let mut k = [0u8; 12];
        k[..4].copy_from_slice(&self.pack.to_be_bytes());
        k[4..].copy_from_slice(&self.offset.to_be_bytes());
        k
    }

    pub fn from_scrub_key(k: &[u8], len: u64) -> Result<PackRef> {
        if k.len() != 12 {
            return Err(Error::Corrupt(format!(
                "scrub key has {} bytes, not 12",
                k.len()
            )));
        }
        Ok(PackRef {
            pack: u32::from_be_bytes(k[..4].try_into().expect("4 bytes")),
            offset: u64::from_be_bytes(k[4..].try_into().expect("8 bytes")),
            len,
        })
    }
}

impl std::fmt::Display for PackRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pack {} bytes {}..{}",
            self.pack,
            self.offset,
            self.offset + self.len
        )
    }
}

/// What a record holds of item versions.
enum Held {
    Version(Vec<u8>),
    Group(Arc<Group>),
}

/// `content` when its SHA-256 is `sha`.
fn checked(r: &PackRef, content: Vec<u8>, sha: &[u8; 32]) -> Result<Vec<u8>> {
    if crate::model::sha256(&content) == *sha {
        Ok(content)
    } else {
        Err(Error::Corrupt(format!(
            "{r}: stored content does not match its SHA-256 {}",
            hex::encode(sha)
        )))
    }
}

/// The member `sha` of the group at `r`.
fn member(g: &Group, r: &PackRef, sha: &[u8; 32]) -> Result<Vec<u8>> {
    g.find(sha).map(<[u8]>::to_vec).ok_or_else(|| {
        Error::Corrupt(format!(
            "{r}: stored content does not match its SHA-256 {}: no version in the group has it",
            hex::encode(sha)
        ))
    })
}

/// A record's content: unframed, or as it is in a pack from before framing.
fn content(framed_from: u32, dicts: &Dicts, r: &PackRef, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if r.pack < framed_from {
        Ok(bytes)
    } else {
        frame::unframe(&bytes, dicts, r)
    }
}

pub fn file_name(pack: u32) -> String {
    format!("{pack:08}.pack")
}

/// The pack id a file is named after, when it is a pack file.
pub fn id_of(path: &Path) -> Option<u32> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".pack")?
        .parse()
        .ok()
}

/// The pack files of one archive.
pub struct Packs {
    dir: PathBuf,
    /// The first pack whose records are framed.
    framed_from: u32,
    dicts: Arc<Dicts>,
    writer: Mutex<Writer>,
    readers: RwLock<HashMap<u32, Arc<File>>>,
    /// The groups read last (reads of one chat's items go to few groups).
    groups: Mutex<std::collections::VecDeque<(PackRef, Arc<Group>)>>,
}

/// How many groups [`Packs`] keeps read.
const GROUPS_KEPT: usize = 64;

/// The appending side, owned by one write transaction at a time.
///
/// Appends go to a stage of [`WRITE_CHUNK`] bytes, written out when it fills
/// and when the transaction syncs (plain writes through the page cache, then
/// `fdatasync`).
pub struct Writer {
    /// A new pack starts once the current one holds this much.
    target: u64,
    /// The first pack whose records are framed: appends never go to one
    /// before it.
    framed_from: u32,
    framer: Framer,
    dicts: Arc<Dicts>,
    /// Whether the next transaction starts a new pack.
    sealed: bool,
    /// Whether this transaction appended the record of a dictionary the
    /// catalogue does not hold yet.
    dict_in_tx: bool,
    /// The item versions this transaction is grouping.
    group: group::Open,
    /// Scratch space for one framed record.
    record: Vec<u8>,
    dir: PathBuf,
    /// The pack appended to; 0 before the first.
    pack: u32,
    file: Option<File>,
    /// Its length as the `packs` table records it.
    committed: u64,
    /// Bytes `start..start + len` of the pack; those past the file's
    /// length are not written yet.
    stage: Vec<u8>,
    start: u64,
    len: usize,
    /// How far the file holds the pack's bytes (the stage's are written up
    /// to here).
    written: u64,
    /// Whether the stage starts at the pack's committed end (false after an
    /// open, a rollback or a scrub, until the next append sets it).
    staged: bool,
}

impl Packs {
    /// Opens the pack directory of an archive whose `packs` table says
    /// `committed` (pack id -> committed length): truncates what a killed
    /// process appended past those lengths and removes packs the table does
    /// not know. Problems that leave data unreadable (a pack shorter than its
    /// committed length, or missing) are logged here and named by `verify`.
    ///
    /// Packs numbered from `framed_from` on hold framed records
    /// ([`frame`]); those before it (written by format 3) hold bare contents.
    /// `dicts` are the archive's zstd dictionaries.
    pub fn open(
        archive_dir: &Path,
        committed: &BTreeMap<u32, u64>,
        framed_from: u32,
        dicts: &[Vec<u8>],
    ) -> Result<Packs> {
        let packs = Packs::open_with_target(archive_dir, committed, framed_from, PACK_TARGET)?;
        packs.add_dicts(dicts)?;
        if let Some(d) = dicts.first() {
            packs.writer().framer = Framer::new(Some(d))?;
        }
        Ok(packs)
    }

    /// Opens the packs for reading only: nothing on disk is changed. A pack
    /// longer than its committed length (a writer's uncommitted bytes) is
    /// read no further than that length, as always; one shorter is logged,
    /// and `verify` names what is lost.
    pub fn open_read_only(
        archive_dir: &Path,
        committed: &BTreeMap<u32, u64>,
        framed_from: u32,
        dicts: &[Vec<u8>],
    ) -> Result<Packs> {
        let dir = archive_dir.join("packs");
        for (&id, &len) in committed {
            let path = dir.join(file_name(id));
            match fs::metadata(&path) {
                Ok(m) if m.len() >= len => {}
                Ok(m) => tracing::error!(
                    pack = id,
                    have = m.len(),
                    committed = len,
                    "pack file is shorter than committed: verify names what is lost"
                ),
                Err(e) => {
                    tracing::error!(pack = id, error = %e, "pack file unreadable: verify names what is lost")
                }
            }
        }
        let packs = Packs::build(dir, committed, framed_from, PACK_TARGET, WRITE_CHUNK)?;
        packs.add_dicts(dicts)?;
        Ok(packs)
    }

    /// Makes the archive's zstd dictionaries known to the readers.
    fn add_dicts(&self, dicts: &[Vec<u8>]) -> Result<()> {
        for d in dicts {
            self.dicts.add(d)?;
        }
        Ok(())
    }

    /// [`Packs::open`] with another size at which a new pack starts.
    pub fn open_with_target(
        archive_dir: &Path,
        committed: &BTreeMap<u32, u64>,
        framed_from: u32,
        target: u64,
    ) -> Result<Packs> {
        Packs::open_with(archive_dir, committed, framed_from, target, WRITE_CHUNK)
    }

    /// [`Packs::open`] with every size chosen.
    fn open_with(
        archive_dir: &Path,
        committed: &BTreeMap<u32, u64>,
        framed_from: u32,
        target: u64,
        chunk: usize,
    ) -> Result<Packs> {
        let dir = archive_dir.join("packs");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let entries = fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut synced_dir = false;
        for e in entries {
            let path = e.map_err(|e| Error::io(&dir, e))?.path();
            let Some(id) = id_of(&path) else {
                continue;
            };
            match committed.get(&id) {
                None => {
                    fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                    synced_dir = true;
                }
                Some(&len) => {
                    let have = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
                    if have > len {
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .map_err(|e| Error::io(&path, e))?;
                        f.set_len(len).map_err(|e| Error::io(&path, e))?;
                        f.sync_all().map_err(|e| Error::io(&path, e))?;
                        tracing::info!(
                            pack = id,
                            dropped = have - len,
                            "uncommitted pack bytes truncated"
                        );
                    } else if have < len {
                        tracing::error!(
                            pack = id,
                            have,
                            committed = len,
                            "pack file is shorter than committed: verify names what is lost"
                        );
                    }
                }
            }
        }
        if synced_dir {
            sync_dir(&dir)?;
        }
        Packs::build(dir, committed, framed_from, target, chunk)
    }

    /// The handle on a pack directory already brought in line with
    /// `committed`.
    fn build(
        dir: PathBuf,
        committed: &BTreeMap<u32, u64>,
        framed_from: u32,
        target: u64,
        chunk: usize,
    ) -> Result<Packs> {
        let dicts = Arc::new(Dicts::default());
        let (pack, committed_len) = committed
            .iter()
            .next_back()
            .map(|(&p, &l)| (p, l))
            .unwrap_or((0, 0));
        Ok(Packs {
            writer: Mutex::new(Writer {
                target,
                framed_from,
                framer: Framer::new(None)?,
                dicts: dicts.clone(),
                dict_in_tx: false,
                group: group::Open::default(),
                sealed: false,
                record: Vec::new(),
                dir: dir.clone(),
                pack,
                file: None,
                committed: committed_len,
                stage: vec![0; chunk],
                start: committed_len,
                len: 0,
                written: committed_len,
                staged: false,
            }),
            dir,
            framed_from,
            dicts,
            readers: RwLock::new(HashMap::new()),
            groups: Mutex::default(),
        })
    }

    pub fn path_of(&self, pack: u32) -> PathBuf {
        self.dir.join(file_name(pack))
    }

    /// Removes a pack the catalogue no longer knows (its records moved and
    /// zeroed): its file, and the handles kept on it.
    pub fn remove(&self, pack: u32) -> Result<()> {
        self.readers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pack);
        self.forget_groups(&[PackRef {
            pack,
            offset: 0,
            len: u64::MAX / 2,
        }]);
        let path = self.path_of(pack);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// The writer, for one write transaction.
    pub fn writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding it leaves a writer whose state the next
        // transaction's `begin` re-derives from the file; nothing to poison.
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reader(&self, pack: u32) -> Result<Arc<File>> {
        open_once(&self.readers, pack, || {
            let path = self.path_of(pack);
            Ok(Arc::new(
                File::open(&path).map_err(|e| Error::io(&path, e))?,
            ))
        })
    }

    /// Reads `len` bytes at `offset` in one call.
    fn read_bulk(&self, pack: u32, offset: u64, len: u64) -> Result<Vec<u8>> {
        let f = self.reader(pack)?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| Error::io(self.path_of(pack), e))?;
        Ok(buf)
    }

    /// The content of one committed record.
    pub fn read(&self, r: &PackRef) -> Result<Vec<u8>> {
        let bytes = self.read_raw(r)?;
        content(self.framed_from, &self.dicts, r, bytes)
    }

    /// The item version whose SHA-256 is `sha`, from the committed record at
    /// `r` (a version's own record, or its group's). A record that does not
    /// hold it whole is [`Error::Corrupt`].
    pub fn read_version(&self, r: &PackRef, sha: &[u8; 32]) -> Result<Vec<u8>> {
        if let Some(g) = self.kept_group(r) {
            return member(&g, r, sha);
        }
        let raw = self.read_raw(r)?;
        self.version_in(r, &raw, sha, true)
    }

    /// The version `sha` in `raw`, the bytes of the record at `r`; a group
    /// read is kept for the next reads when `keep` (committed records only:
    /// an uncommitted one's place may be taken by other bytes).
    pub(super) fn version_in(
        &self,
        r: &PackRef,
        raw: &[u8],
        sha: &[u8; 32],
        keep: bool,
    ) -> Result<Vec<u8>> {
        match self.held_in(r, raw)? {
            Held::Version(content) => checked(r, content, sha),
            Held::Group(g) => {
                let out = member(&g, r, sha);
                if keep {
                    self.keep_group(*r, g);
                }
                out
            }
        }
    }

    /// The group record at `r`, split (for those who need every member);
    /// `None` when the record is a version's own.
    pub fn read_group(&self, r: &PackRef) -> Result<Option<Arc<Group>>> {
        if let Some(g) = self.kept_group(r) {
            return Ok(Some(g));
        }
        let raw = self.read_raw(r)?;
        self.group_in(r, &raw)
    }

    /// [`Packs::read_group`] on `raw`, the bytes of the record at `r`.
    pub(super) fn group_in(&self, r: &PackRef, raw: &[u8]) -> Result<Option<Arc<Group>>> {
        match self.held_in(r, raw)? {
            Held::Group(g) => Ok(Some(g)),
            Held::Version(_) => Ok(None),
        }
    }

    /// What the record `raw` at `r` holds of item versions.
    fn held_in(&self, r: &PackRef, raw: &[u8]) -> Result<Held> {
        if r.pack < self.framed_from {
            return Ok(Held::Version(raw.to_vec()));
        }
        match frame::unframe_kind(raw, &self.dicts, r)? {
            (Kind::Version, content) => Ok(Held::Version(content)),
            (Kind::Group, content) => Ok(Held::Group(Arc::new(
                Group::parse(content).map_err(|why| Error::Corrupt(format!("{r}: {why}")))?,
            ))),
            (kind, _) => Err(Error::Corrupt(format!(
                "{r} holds a record of kind {kind:?}, not an item version"
            ))),
        }
    }

    fn kept_group(&self, r: &PackRef) -> Option<Arc<Group>> {
        let kept = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        kept.iter().find(|(k, _)| k == r).map(|(_, g)| g.clone())
    }

    fn keep_group(&self, r: PackRef, g: Arc<Group>) {
        let mut kept = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|(k, _)| *k != r);
        if kept.len() == GROUPS_KEPT {
            kept.pop_back();
        }
        kept.push_front((r, g));
    }

    /// Forgets the groups kept whose bytes meet `ranges`: those bytes are
    /// being destroyed.
    fn forget_groups(&self, ranges: &[PackRef]) {
        let mut kept = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|(k, _)| {
            !ranges.iter().any(|r| {
                r.pack == k.pack && r.offset < k.offset + k.len && k.offset < r.offset + r.len
            })
        });
    }

    /// Why the committed record at `r` is not whole (`frame::check`), or
    /// `None` when it is (or when its pack is from before framing, whose
    /// records carry no header to check).
    pub fn check_record(&self, r: &PackRef) -> Result<Option<String>> {
        if r.pack < self.framed_from {
            return Ok(None);
        }
        let raw = match self.read_raw(r) {
            Ok(raw) => raw,
            Err(Error::Corrupt(why)) => return Ok(Some(why)),
            Err(e) => return Err(e),
        };
        Ok(frame::check(&raw, &self.dicts).err())
    }

    /// The bytes of one committed record, as they are in the pack.
    pub fn read_raw(&self, r: &PackRef) -> Result<Vec<u8>> {
        let f = self.reader(r.pack)?;
        let mut buf = vec![0u8; r.len as usize];
        f.read_exact_at(&mut buf, r.offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Corrupt(format!("{r} is past the end of the pack file"))
            } else {
                Error::io(self.path_of(r.pack), e)
            }
        })?;
        Ok(buf)
    }

    /// Reads many committed records with few reads: records that lie close
    /// together in a pack (those one transaction wrote are contiguous) are
    /// read in one call. A span that cannot be read is left out, so that each
    /// of its records fails (or succeeds) on its own in [`Prefetched::read`].
    ///
    /// This is the bulk path: the index reading what an import filed, a
    /// rebuild reading everything.
    pub fn read_many(&self, refs: &[PackRef]) -> Prefetched<'_> {
        let mut sorted: Vec<PackRef> = refs.to_vec();
        sorted.sort_by_key(|r| (r.pack, r.offset));
        sorted.dedup();
        let mut spans: Vec<Span> = Vec::new();
        let mut i = 0;
        while i < sorted.len() {
            let (pack, start) = (sorted[i].pack, sorted[i].offset);
            let mut end = start + sorted[i].len;
            let mut j = i + 1;
            while j < sorted.len()
                && sorted[j].pack == pack
                && sorted[j].offset <= end.saturating_add(SPAN_GAP)
                && sorted[j].offset + sorted[j].len - start <= SPAN_MAX
            {
                end = end.max(sorted[j].offset + sorted[j].len);
                j += 1;
            }
            if j - i > 1
                && let Ok(buf) = self.read_bulk(pack, start, end - start)
            {
                spans.push(Span {
                    pack,
                    offset: start,
                    len: end - start,
                    buf,
                });
            }
            i = j;
        }
        Prefetched {
            packs: self,
            spans,
            groups: Mutex::default(),
        }
    }

    /// Current lengths of the pack files on disk.
    pub fn file_len(&self, pack: u32) -> Option<u64> {
        fs::metadata(self.path_of(pack)).ok().map(|m| m.len())
    }

    /// Overwrites each range with zeros and syncs the files.
    pub fn zero(&self, ranges: &[PackRef]) -> Result<()> {
        self.forget_groups(ranges);
        // The writer's stage may hold a zeroed range's bytes: it reads its
        // head from the file again.
        self.writer().unstage();
        let mut files: BTreeMap<u32, File> = BTreeMap::new();
        for r in ranges {
            let path = self.path_of(r.pack);
            let f = match files.entry(r.pack) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    match OpenOptions::new().write(true).open(&path) {
                        Ok(f) => e.insert(f),
                        // Nothing left to destroy.
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(err) => return Err(Error::io(&path, err)),
                    }
                }
            };
            let len = f.metadata().map_err(|e| Error::io(&path, e))?.len();
            // Never extend a file that is shorter than the range.
            let end = (r.offset + r.len).min(len);
            let mut at = r.offset;
            let zeros = vec![0u8; 64 << 10];
            while at < end {
                let n = ((end - at) as usize).min(zeros.len());
                f.write_all_at(&zeros[..n], at)
                    .map_err(|e| Error::io(&path, e))?;
                at += n as u64;
            }
        }
        for (pack, f) in files {
            f.sync_data()
                .map_err(|e| Error::io(self.path_of(pack), e))?;
        }
        Ok(())
    }
}

impl Writer {
    /// Called when a write transaction starts: begins a new pack when the
    /// current one is full (or there is none yet).
    pub fn begin(&mut self) {
        self.group.clear();
        if self.end() != self.committed
            && let Err(e) = self.rollback()
        {
            // Left by a transaction that panicked: its bytes are garbage.
            tracing::error!(error = %e, "pack bytes of an abandoned transaction not truncated");
            self.abandon();
        }
        if self.pack < self.framed_from || self.committed >= self.target || self.sealed {
            self.sealed = false;
            self.pack = (self.pack + 1).max(self.framed_from);
            self.file = None;
            self.committed = 0;
            self.start = 0;
            self.len = 0;
            self.written = 0;
            self.staged = true;
        }
    }

    /// Bytes this transaction appended so far.
    pub fn appended(&self) -> u64 {
        if self.staged {
            self.end().saturating_sub(self.committed)
        } else {
            0
        }
    }

    /// The pack appended to (0 before the first).
    pub fn current(&self) -> u32 {
        self.pack
    }

    /// The next transaction starts a new pack (so that this one can be
    /// compacted).
    pub fn seal(&mut self) {
        self.sealed = true;
    }

    /// The pack's length with this transaction's appends.
    fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    fn path(&self) -> PathBuf {
        self.dir.join(file_name(self.pack))
    }

    fn open_file(&mut self) -> Result<()> {
        if self.file.is_none() {
            let path = self.path();
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            if self.committed == 0 {
                // A new file: its directory entry must be durable too.
                sync_dir(&self.dir)?;
            }
            self.file = Some(f);
        }
        Ok(())
    }

    fn file(&mut self) -> Result<&File> {
        self.open_file()?;
        Ok(self.file.as_ref().expect("opened above"))
    }

    /// Makes the stage start at the pack's committed end.
    fn load_stage(&mut self) {
        if !self.staged {
            self.start = self.committed;
            self.len = 0;
            self.written = self.committed;
            self.staged = true;
        }
    }

    /// Lets the next append start the stage again (the file changed).
    fn unstage(&mut self) {
        if self.end() == self.committed {
            self.staged = false;
        }
    }

    /// Appends a record of `content` (whose SHA-256 is `sha`), compressed
    /// where that pays; durable once [`Writer::sync`] has returned.
    pub fn append(&mut self, kind: Kind, content: &[u8]) -> Result<PackRef> {
        if kind == Kind::Version {
            self.framer.sample(content, &self.dicts);
        }
        if !self.dict_in_tx
            && let Some((_, dict)) = self.framer.unsaved()
        {
            // The dictionary goes ahead of the first record it compresses.
            let dict = dict.clone();
            self.append_framed(Kind::Dict, &dict)?;
            self.dict_in_tx = true;
        }
        self.append_framed(kind, content)
    }

    fn append_framed(&mut self, kind: Kind, content: &[u8]) -> Result<PackRef> {
        let mut record = std::mem::take(&mut self.record);
        record.clear();
        let out = self
            .framer
            .frame(kind, content, &mut record)
            .and_then(|()| self.append_raw(&record));
        self.record = record;
        out
    }

    /// Adds an item version to the open group; its place is known when the
    /// group is closed ([`Writer::close_group`]).
    pub fn add_member(&mut self, content: &[u8], sha: &[u8; 32]) {
        self.framer.sample(content, &self.dicts);
        self.group.add(content, sha);
    }

    /// Whether the open group has reached its size.
    pub fn group_full(&self) -> bool {
        self.group.len() >= group::TARGET
    }

    /// Appends the open group as one record and returns where (`None` when
    /// it is empty).
    pub fn close_group(&mut self) -> Result<Option<PackRef>> {
        if self.group.is_empty() {
            return Ok(None);
        }
        let content = self.group.take();
        let at = self.append(Kind::Group, &content);
        at.map(Some)
    }

    /// A version of the open group, by its SHA-256.
    pub fn open_member(&self, sha: &[u8; 32]) -> Option<Vec<u8>> {
        self.group.member(sha).map(<[u8]>::to_vec)
    }

    /// The dictionary this transaction put in the pack, for the catalogue
    /// to record in the same commit.
    pub fn dict_to_save(&self) -> Option<&(u32, Vec<u8>)> {
        self.framer.unsaved().filter(|_| self.dict_in_tx)
    }

    /// Appends bytes as they are.
    fn append_raw(&mut self, bytes: &[u8]) -> Result<PackRef> {
        self.load_stage();
        let r = PackRef {
            pack: self.pack,
            offset: self.end(),
            len: bytes.len() as u64,
        };
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = (self.stage.len() - self.len).min(rest.len());
            self.stage[self.len..self.len + n].copy_from_slice(&rest[..n]);
            self.len += n;
            rest = &rest[n..];
            if self.len == self.stage.len() {
                self.write_stage()?;
                self.start += self.len as u64;
                self.written = self.start;
                self.len = 0;
            }
        }
        Ok(r)
    }

    /// The bytes of a record appended in this transaction, as they are in
    /// the pack, or `None` when `r` is not one.
    pub(super) fn pending_raw(&mut self, r: &PackRef) -> Result<Option<Vec<u8>>> {
        if r.pack != self.pack || r.offset < self.committed || !self.staged {
            return Ok(None);
        }
        let end = r.offset + r.len;
        if end > self.end() {
            return Ok(None);
        }
        if r.offset >= self.start {
            let from = (r.offset - self.start) as usize;
            return Ok(Some(self.stage[from..from + r.len as usize].to_vec()));
        }
        // Written out when the stage filled; a record that runs on into the
        // stage needs the stage written first.
        if end > self.written {
            self.flush()?;
        }
        let path = self.path();
        let mut bytes = vec![0u8; r.len as usize];
        self.file()?
            .read_exact_at(&mut bytes, r.offset)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Some(bytes))
    }

    /// Writes the stage's bytes at its start.
    fn write_stage(&mut self) -> Result<()> {
        let path = self.path();
        self.open_file()?;
        let f = self.file.as_ref().expect("opened above");
        f.write_all_at(&self.stage[..self.len], self.start)
            .map_err(|e| Error::io(&path, e))
    }

    /// Writes out the whole stage; the next append starts it afresh.
    fn flush(&mut self) -> Result<()> {
        if self.end() == self.written {
            return Ok(());
        }
        self.write_stage()?;
        self.written = self.end();
        self.start = self.end();
        self.len = 0;
        Ok(())
    }

    /// How long the file is, asked of the file system.
    fn file_len(&mut self) -> Result<u64> {
        let path = self.path();
        Ok(self
            .file()?
            .metadata()
            .map_err(|e| Error::io(&path, e))?
            .len())
    }

    /// Writes out and syncs what this transaction appended. Returns the pack
    /// and its new length for the `packs` table, or `None` when nothing was
    /// appended.
    pub fn sync(&mut self) -> Result<Option<(u32, u64)>> {
        if !self.staged || self.end() == self.committed {
            return Ok(None);
        }
        self.flush()?;
        let path = self.path();
        self.file()?.sync_data().map_err(|e| Error::io(&path, e))?;
        Ok(Some((self.pack, self.end())))
    }

    /// The transaction committed: its appends are part of the archive.
    pub fn committed(&mut self) {
        self.committed = self.end();
        if std::mem::take(&mut self.dict_in_tx) {
            self.framer.saved();
        }
    }

    /// The transaction did not commit: drops its appends.
    pub fn rollback(&mut self) -> Result<()> {
        // Only what reached the file needs cutting off (a pack the
        // transaction began but never wrote is not even created).
        if self.written > self.committed {
            let len = self.committed;
            let path = self.path();
            self.file()?.set_len(len).map_err(|e| Error::io(&path, e))?;
        }
        self.start = self.committed;
        self.len = 0;
        self.written = self.committed;
        self.staged = false;
        // A dictionary it trained is put in the next transaction's pack.
        self.dict_in_tx = false;
        self.group.clear();
        Ok(())
    }

    /// After a commit whose outcome is unknown: later appends go past
    /// whatever is in the file; the next open truncates to what committed.
    pub fn abandon(&mut self) {
        let len = self
            .file_len()
            .unwrap_or(self.committed)
            .max(self.committed);
        self.committed = len;
        self.start = len;
        self.len = 0;
        self.written = len;
        self.staged = false;
        self.dict_in_tx = false;
        self.group.clear();
    }
}

/// The file handle kept for `pack` in `map`, opened by `open` the first time.
fn open_once<V: Clone>(
    map: &RwLock<HashMap<u32, V>>,
    pack: u32,
    open: impl FnOnce() -> Result<V>,
) -> Result<V> {
    if let Some(v) = map.read().unwrap_or_else(|p| p.into_inner()).get(&pack) {
        return Ok(v.clone());
    }
    let v = open()?;
    map.write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(pack, v.clone());
    Ok(v)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Records are read as one span when the gap between them is at most this
/// many bytes: a transaction's items lie end to end, but attachments stored
/// between them are not wanted (reading them cost more than the calls saved).
const SPAN_GAP: u64 = 0;
/// The largest span read at once.
const SPAN_MAX: u64 = 8 << 20;

/// Records read ahead by [`Packs::read_many`].
pub struct Prefetched<'a> {
    packs: &'a Packs,
    /// In (pack, offset) order.
    spans: Vec<Span>,
    /// The groups read so far (a group holds many of the records asked for).
    groups: Mutex<HashMap<PackRef, Arc<Group>>>,
}

/// `len` bytes of a pack at `offset`, read in one call.
struct Span {
    pack: u32,
    offset: u64,
    len: u64,
    buf: Vec<u8>,
}

impl Prefetched<'_> {
    /// One record's content: from a span read ahead, or from the pack file.
    pub fn read(&self, r: &PackRef) -> Result<std::borrow::Cow<'_, [u8]>> {
        if r.pack < self.packs.framed_from {
            return self.read_raw(r);
        }
        frame::unframe(&self.read_raw(r)?, &self.packs.dicts, r).map(std::borrow::Cow::Owned)
    }

    /// The item version whose SHA-256 is `sha` from the record at `r`, as
    /// [`Packs::read_version`] reads it.
    pub fn read_version(&self, r: &PackRef, sha: &[u8; 32]) -> Result<Vec<u8>> {
        let known = {
            let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            groups.get(r).cloned()
        };
        if let Some(g) = known {
            return member(&g, r, sha);
        }
        let raw = self.read_raw(r)?;
        match self.packs.held_in(r, &raw)? {
            Held::Group(g) => {
                let out = member(&g, r, sha);
                self.groups
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(*r, g);
                out
            }
            Held::Version(content) => checked(r, content, sha),
        }
    }

    /// One record's bytes as they are in the pack.
    fn read_raw(&self, r: &PackRef) -> Result<std::borrow::Cow<'_, [u8]>> {
        let at = self
            .spans
            .partition_point(|s| (s.pack, s.offset) <= (r.pack, r.offset));
        if let Some(s) = at.checked_sub(1).map(|k| &self.spans[k])
            && s.pack == r.pack
            && r.offset + r.len <= s.offset + s.len
        {
            let from = (r.offset - s.offset) as usize;
            return Ok(std::borrow::Cow::Borrowed(
                &s.buf[from..from + r.len as usize],
            ));
        }
        self.packs.read_raw(r).map(std::borrow::Cow::Owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_read_back_and_failed_transactions_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path(), &BTreeMap::new(), 1, &[]).unwrap();
        let mut w = packs.writer();
        w.begin();
        let a = w.append_raw(b"first record").unwrap();
        let b = w.append_raw(b"second").unwrap();
        assert_eq!(w.pending_raw(&b).unwrap().unwrap(), b"second");
        let (pack, len) = w.sync().unwrap().unwrap();
        assert_eq!((pack, len), (1, 18));
        w.committed();
        w.begin();
        let c = w.append_raw(b"never committed").unwrap();
        w.rollback().unwrap();
        drop(w);
        assert_eq!(packs.read_raw(&a).unwrap(), b"first record");
        assert_eq!(packs.read_raw(&b).unwrap(), b"second");
        assert_eq!(packs.file_len(1), Some(18));
        assert!(packs.read_raw(&c).is_err());
        packs.zero(&[a]).unwrap();
        assert_eq!(packs.read_raw(&a).unwrap(), vec![0u8; 12]);
        assert_eq!(packs.read_raw(&b).unwrap(), b"second");
    }

    /// Item versions are compressed with a dictionary trained on the first
    /// of them; the dictionary goes into the pack ahead of them, again after
    /// a rolled-back transaction, and is handed to the catalogue once.
    #[test]
    fn a_dictionary_is_trained_once_and_put_ahead_of_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path(), &BTreeMap::new(), 1, &[]).unwrap();
        let message = |i: usize| {
            format!(
                "{{\"id\":{i},\"type\":\"message\",\"from\":\"user{}\",\"text\":\"the {} report for desk {} is ready\"}}",
                i % 17,
                ["quarterly", "annual", "weekly"][i % 3],
                i % 29
            )
            .repeat(3)
            .into_bytes()
        };
        let append = |w: &mut Writer, i: usize| {
            let c = message(i);
            (w.append(Kind::Version, &c).unwrap(), c)
        };
        let mut refs = Vec::new();
        let mut w = packs.writer();
        w.begin();
        let mut i = 0;
        while w.framer.unsaved().is_none() {
            refs.push(append(&mut w, i));
            i += 1;
        }
        assert!(w.dict_to_save().is_some());
        w.rollback().unwrap();
        refs.clear();
        w.begin();
        assert!(w.dict_to_save().is_none(), "nothing appended yet");
        for j in 0..50 {
            refs.push(append(&mut w, i + j));
        }
        let (id, dict) = w.dict_to_save().cloned().unwrap();
        w.sync().unwrap();
        w.committed();
        assert!(w.dict_to_save().is_none() && w.framer.unsaved().is_none());
        drop(w);
        let on_disk = fs::read(packs.path_of(1)).unwrap();
        let found = frame::scan(&on_disk, &Dicts::default());
        assert_eq!(found[0].kind, Kind::Dict);
        assert_eq!(found.len(), 51);
        assert!(found.iter().all(|f| f.whole));
        let stored: usize = found[1..].iter().map(|f| f.len).sum();
        let mut alone = Framer::new(None).unwrap();
        let mut plain = Vec::new();
        for (_, c) in &refs {
            alone.frame(Kind::Version, c, &mut plain).unwrap();
        }
        assert!(
            stored * 3 < plain.len() * 2,
            "{stored} bytes with the dictionary, {} without",
            plain.len()
        );
        assert_eq!(frame::dict_id(&dict).unwrap(), id);
        // Reopened with the catalogue's dictionary, every record reads.
        drop(packs);
        let committed = BTreeMap::from([(1u32, on_disk.len() as u64)]);
        let packs = Packs::open(dir.path(), &committed, 1, &[dict]).unwrap();
        for (r, c) in &refs {
            assert_eq!(&packs.read(r).unwrap(), c);
        }
        let ahead = packs.read_many(&refs.iter().map(|(r, _)| *r).collect::<Vec<_>>());
        for (r, c) in &refs {
            assert_eq!(ahead.read(r).unwrap().as_ref(), c.as_slice());
        }
    }

    #[test]
    fn records_read_together_match_records_read_alone() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open_with_target(dir.path(), &BTreeMap::new(), 1, 40).unwrap();
        let mut refs = Vec::new();
        for t in 0..3 {
            let mut w = packs.writer();
            w.begin();
            for i in 0..4 {
                refs.push(
                    w.append_raw(format!("tx{t} record {i}").as_bytes())
                        .unwrap(),
                );
            }
            w.sync().unwrap();
            w.committed();
        }
        assert!(refs.iter().any(|r| r.pack > 1), "spans cross packs");
        // One past the end of its pack: it fails alone, and its neighbours
        // (read in the same span otherwise) still read.
        let mut beyond = *refs.last().unwrap();
        beyond.len += 100;
        let mut wanted: Vec<PackRef> = refs.iter().rev().copied().collect();
        wanted.push(beyond);
        wanted.push(refs[0]);
        let ahead = packs.read_many(&wanted);
        for r in &refs {
            assert_eq!(ahead.read_raw(r).unwrap(), packs.read_raw(r).unwrap());
        }
        assert!(ahead.read_raw(&beyond).is_err());
        assert!(ahead.spans.len() < refs.len(), "neighbours share a read");
    }

    #[test]
    fn a_full_pack_is_followed_by_a_new_one_between_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open_with_target(dir.path(), &BTreeMap::new(), 1, 10).unwrap();
        let mut committed = BTreeMap::new();
        let mut refs = Vec::new();
        for record in [&b"0123456789abc"[..], b"second", b"third"] {
            let mut w = packs.writer();
            w.begin();
            // A transaction may run past the target; the next one starts anew.
            refs.push((w.append_raw(record).unwrap(), record));
            let (pack, len) = w.sync().unwrap().unwrap();
            w.committed();
            committed.insert(pack, len);
        }
        assert_eq!(
            refs.iter().map(|(r, _)| r.pack).collect::<Vec<_>>(),
            [1, 2, 2]
        );
        assert_eq!(committed, BTreeMap::from([(1, 13), (2, 11)]));
        for (r, record) in &refs {
            assert_eq!(&packs.read_raw(r).unwrap(), record);
        }
        // Reopened with those lengths, appends go on in the last pack.
        drop(packs);
        let packs = Packs::open_with_target(dir.path(), &committed, 1, 10).unwrap();
        let mut w = packs.writer();
        w.begin();
        let r = w.append_raw(b"x").unwrap();
        assert_eq!((r.pack, r.offset), (3, 0), "pack 2 is full (11 >= 10)");
    }

    #[test]
    fn open_truncates_uncommitted_bytes_and_removes_unknown_packs() {
        let dir = tempfile::tempdir().unwrap();
        let packs_dir = dir.path().join("packs");
        fs::create_dir_all(&packs_dir).unwrap();
        fs::write(packs_dir.join(file_name(1)), b"committed+garbage").unwrap();
        fs::write(packs_dir.join(file_name(2)), b"never committed").unwrap();
        let committed = BTreeMap::from([(1u32, 9u64)]);
        let packs = Packs::open(dir.path(), &committed, 1, &[]).unwrap();
        assert_eq!(packs.file_len(1), Some(9));
        assert_eq!(packs.file_len(2), None);
        let mut w = packs.writer();
        w.begin();
        let r = w.append_raw(b"more").unwrap();
        assert_eq!(r.offset, 9);
        assert_eq!(w.sync().unwrap(), Some((1, 13)));
    }

    /// Every way a transaction can end, with a small stage so that records
    /// cross its edges: the files hold exactly the committed bytes (a model
    /// of each pack kept beside), every record reads back alone and in
    /// bulk, a scrubbed record stays zeroed under later appends, and
    /// reopening appends where the last commit ended.
    #[test]
    fn random_transactions_leave_exactly_the_committed_bytes() {
        {
            let dir = tempfile::tempdir().unwrap();
            let chunk = 3 * 4096;
            let target = 50_000;
            let mut committed: BTreeMap<u32, u64> = BTreeMap::new();
            let mut model: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
            let mut records: Vec<(PackRef, Vec<u8>)> = Vec::new();
            let mut packs = Packs::open_with(dir.path(), &committed, 1, target, chunk).unwrap();
            let mut seed = 0x2545_F491_4F6C_DD1Du64;
            let mut next = |n: u64| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed % n
            };
            for round in 0..300 {
                let mut w = packs.writer();
                w.begin();
                let mut added = Vec::new();
                for _ in 0..next(6) {
                    let len = match next(10) {
                        0 => next(3 * chunk as u64),
                        1 => 0,
                        _ => next(700),
                    } as usize;
                    let bytes: Vec<u8> = (0..len).map(|i| (round + i * 31) as u8 | 1).collect();
                    let r = w.append_raw(&bytes).unwrap();
                    added.push((r, bytes));
                }
                for (r, bytes) in &added {
                    assert_eq!(
                        w.pending_raw(r).unwrap().as_ref(),
                        Some(bytes),
                        "round {round}"
                    );
                }
                if next(4) == 0 {
                    w.rollback().unwrap();
                } else {
                    if let Some((pack, len)) = w.sync().unwrap() {
                        committed.insert(pack, len);
                    }
                    w.committed();
                    for (r, bytes) in added.drain(..) {
                        let m = model.entry(r.pack).or_default();
                        assert_eq!(m.len() as u64, r.offset, "round {round}");
                        m.extend_from_slice(&bytes);
                        records.push((r, bytes));
                    }
                }
                drop(w);
                if next(10) == 0 && !records.is_empty() {
                    // Often the newest record: it lies in the block the
                    // stage starts with.
                    let k = match next(2) {
                        0 => records.len() - 1,
                        _ => next(records.len() as u64) as usize,
                    };
                    let r = records[k].0;
                    packs.zero(&[r]).unwrap();
                    let m = model.get_mut(&r.pack).unwrap();
                    m[r.offset as usize..(r.offset + r.len) as usize].fill(0);
                    records[k].1.fill(0);
                }
                if next(15) == 0 {
                    drop(packs);
                    packs = Packs::open_with(dir.path(), &committed, 1, target, chunk).unwrap();
                }
                for (pack, m) in &model {
                    let on_disk = fs::read(packs.path_of(*pack)).unwrap();
                    assert!(on_disk == *m, "pack {pack} after round {round}");
                }
            }
            assert!(model.len() > 2, "several packs filled");
            let refs: Vec<PackRef> = records.iter().map(|(r, _)| *r).collect();
            let ahead = packs.read_many(&refs);
            for (r, bytes) in &records {
                assert_eq!(&packs.read_raw(r).unwrap(), bytes);
                assert_eq!(&ahead.read_raw(r).unwrap(), bytes);
            }
        }
    }
}
