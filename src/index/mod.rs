//! The search index: a tantivy index derived from the archive, never the
//! other way round.
//!
//! The store logs every change to a source row in its `changes` table, in the
//! same transaction as the change. The index applies changes in order and
//! records, in the payload of each tantivy commit, the sequence number of the
//! last change it applied (the *watermark*). So:
//!
//! - an item is searchable only after the store committed it (the index reads
//!   it back from the store);
//! - an index that is behind (a crash, an import killed mid-way) catches up
//!   when it is next opened, from the log;
//! - an index that is missing, built by another schema, or older than the
//!   oldest change the log still holds is rebuilt from the store alone.
//!
//! Applying a change replaces the item's whole document, so applying one twice
//! is harmless. The store trims the log below the committed watermark.

mod exec;
mod merges;
mod readonly;
pub mod schema;
pub mod search;
pub mod tokenizer;

use crate::error::{Error, Result};
use crate::model::ItemId;
use crate::store::{Archive, DocSource, key::item_id_bytes};
use schema::{Fields, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tantivy::directory::MmapDirectory;
use tantivy::{IndexReader, IndexWriter, ReloadPolicy, TantivyDocument};

/// Rows of the change log (one per store transaction, up to a batch of
/// items each) read per step.
const CHANGES_PER_STEP: usize = 1;
/// Commit the index at least this often while catching up, so that a crash
/// loses a bounded amount of indexing work.
const DOCS_PER_COMMIT: u64 = 2_000_000;

/// What each index commit records.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Payload {
    schema: u32,
    /// The last change of the store's log this commit includes.
    watermark: u64,
}

/// How an index writer is sized.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    pub threads: usize,
    /// Total indexing memory, split between the threads.
    pub memory_bytes: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 1);
        WriterOptions {
            threads,
            memory_bytes: 96 << 20,
        }
    }
}

pub struct Index {
    index: tantivy::Index,
    pub(crate) fields: Fields,
    /// Opened by the first search: an import that only writes maps no
    /// segment for reading.
    reader: std::sync::OnceLock<IndexReader>,
    writer: Option<IndexWriter<TantivyDocument>>,
    watermark: u64,
    /// The last change applied but not yet committed.
    pending: Option<u64>,
    dir: PathBuf,
    opts: WriterOptions,
    /// Columns and date maps of the segments searched.
    segments: exec::SegmentCache,
    /// A commit happened since the reader's view was taken.
    stale: std::sync::atomic::AtomicBool,
    /// The reader renews its view by itself when another handle commits.
    auto_reload: bool,
}

/// What bringing the index up to date did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CatchUp {
    pub rebuilt: bool,
    pub documents: u64,
    pub watermark: u64,
}

impl Index {
    /// The index directory of an archive.
    pub fn path(archive: &Archive) -> PathBuf {
        archive.dir().join("index")
    }

    /// Opens the archive's index (creating or rebuilding it as needed) and
    /// brings it up to date with the store.
    /// On an archive opened read-only the index is used as it is: it is
    /// not caught up (see [`Index::behind`]).
    pub fn open(archive: &Archive) -> Result<Index> {
        let mut idx = Self::open_only(archive, WriterOptions::default())?;
        if !archive.is_read_only() {
            idx.catch_up(archive)?;
        }
        Ok(idx)
    }

    /// How many change-log rows the store has that the index has not
    /// applied (0 once caught up; more only on a read-only archive).
    pub fn behind(&self, archive: &Archive) -> Result<u64> {
        Ok(archive.last_change()?.saturating_sub(self.watermark))
    }

    fn open_read_only(archive: &Archive, opts: WriterOptions) -> Result<Index> {
        let dir = Self::path(archive);
        let found = MmapDirectory::open(&dir)
            .ok()
            .map(readonly::ReadOnlyDir)
            .and_then(|d| {
                let index = tantivy::Index::open(d).ok()?;
                let meta = index.load_metas().ok()?;
                let payload: Payload = match meta.payload.as_deref() {
                    Some(p) => serde_json::from_str(p).ok()?,
                    None => Payload::default(),
                };
                (index.schema() == Fields::schema().0 && payload.schema == SCHEMA_VERSION)
                    .then_some((index, payload))
            });
        let Some((index, payload)) = found else {
            return Err(Error::ReadOnly(format!(
                "{}: no usable search index (a backup has none); `tgvault reindex` builds it, which needs write access (restore the backup, or search a writable copy)",
                dir.display()
            )));
        };
        Ok(Self::assemble(index, payload, dir, opts))
    }

    fn assemble(
        index: tantivy::Index,
        payload: Payload,
        dir: PathBuf,
        opts: WriterOptions,
    ) -> Index {
        index
            .tokenizers()
            .register(tokenizer::NAME, tokenizer::MultiTokenizer);
        index
            .tokenizers()
            .register(tokenizer::PAIRS, tokenizer::PairTokenizer);
        Index {
            index,
            fields: Fields::schema().1,
            reader: std::sync::OnceLock::new(),
            writer: None,
            watermark: payload.watermark,
            pending: None,
            dir,
            opts,
            segments: exec::SegmentCache::default(),
            stale: std::sync::atomic::AtomicBool::new(false),
            auto_reload: false,
        }
    }

    /// A handle that only searches, beside this one that writes: it shares
    /// this handle's tantivy index, so the writer's clean-up never deletes
    /// a file its searches still use, and its view follows this handle's
    /// commits by itself. Searching through it never waits for the writer.
    pub fn for_search(&self) -> Index {
        let payload = Payload {
            schema: SCHEMA_VERSION,
            watermark: self.watermark,
        };
        let mut idx = Self::assemble(self.index.clone(), payload, self.dir.clone(), self.opts);
        idx.auto_reload = true;
        idx
    }

    /// A searching handle of an archive nothing writes (read-only).
    pub fn open_for_search(archive: &Archive) -> Result<Index> {
        Self::open_only(archive, WriterOptions::default())
    }

    /// The next search takes a new view (another handle committed).
    pub fn mark_stale(&self) {
        self.stale.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Opens without catching up (verification looks at the index as it is first).
    pub fn open_only(archive: &Archive, opts: WriterOptions) -> Result<Index> {
        if archive.is_read_only() {
            return Self::open_read_only(archive, opts);
        }
        let dir = Self::path(archive);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let (schema, _) = Fields::schema();
        let (index, payload) = match open_existing(&dir) {
            Some((index, payload)) if payload.schema == SCHEMA_VERSION => (index, payload),
            _ => {
                // Missing, unreadable or from another schema: start afresh;
                // catching up rebuilds it from the store.
                clear_dir(&dir)?;
                let mmap = MmapDirectory::open(&dir).map_err(|e| index_err(&dir, e))?;
                let index = tantivy::Index::create(mmap, schema, tantivy::IndexSettings::default())
                    .map_err(|e| index_err(&dir, e))?;
                (index, Payload::default())
            }
        };
        Ok(Self::assemble(index, payload, dir, opts))
    }

    /// The committed index as of now. A commit only marks the reader's view
    /// old; the view is opened or renewed here, when something searches, so
    /// that an import, which never searches, keeps no segment mapped that a
    /// merge has replaced (see ARCHITECTURE.md).
    /// For tests that check the index against tantivy itself; interfaces
    /// get plain values (`search`, `snippets`, `count`).
    #[doc(hidden)]
    pub fn searcher(&self) -> Result<tantivy::Searcher> {
        self.guard(|| self.searcher_unguarded())
    }

    /// Runs `f`, turning a panic inside tantivy (which a damaged index file
    /// can cause) into [`Error::Corrupt`] naming the index and the repair.
    pub(crate) fn guard<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        use crate::damage::{self, Origin};
        damage::guard(
            f,
            &[Origin::Redb, Origin::Tantivy, Origin::Dependency],
            |origin, what| match (origin, self.dir.parent()) {
                (Origin::Redb, Some(archive)) => damage::catalogue_damaged(archive, what),
                _ => damage::index_damaged(&self.dir, what),
            },
        )
    }

    fn searcher_unguarded(&self) -> Result<tantivy::Searcher> {
        use std::sync::atomic::Ordering;
        let reader = match self.reader.get() {
            Some(r) => r,
            None => {
                // A reader opened now sees the latest commit.
                self.stale.store(false, Ordering::Release);
                let r = self
                    .index
                    .reader_builder()
                    .reload_policy(if self.auto_reload {
                        ReloadPolicy::OnCommitWithDelay
                    } else {
                        ReloadPolicy::Manual
                    })
                    .try_into()
                    .map_err(|e| index_err(&self.dir, e))?;
                // Another thread may have opened one meanwhile: either is current.
                self.reader.get_or_init(|| r)
            }
        };
        if self.stale.swap(false, Ordering::AcqRel)
            && let Err(e) = reader.reload()
        {
            self.stale.store(true, Ordering::Release);
            return Err(index_err(&self.dir, e));
        }
        Ok(reader.searcher())
    }

    fn writer(&mut self) -> Result<&mut IndexWriter<TantivyDocument>> {
        if self.writer.is_none() {
            let w = self.lock_writer()?;
            // A writer killed before its commit can leave files (a deletion
            // file among them) that the next one would create again under the
            // same name: what the committed index does not use goes first.
            if let Err(e) = w.garbage_collect_files().wait() {
                tracing::warn!(error = %e, "unused search index files not removed");
            }
            w.set_merge_policy(Box::new(merges::BoundedMerges::new(self.dir.clone())));
            self.writer = Some(w);
        }
        Ok(self.writer.as_mut().expect("just set"))
    }

    /// Takes tantivy's writer lock. It is held only while the archive is open
    /// for writing, but a child process forked by another thread keeps a
    /// released lock until it execs, so a busy lock is retried for a while
    /// before it is reported as busy.
    fn lock_writer(&self) -> Result<IndexWriter<TantivyDocument>> {
        use tantivy::TantivyError::LockFailure;
        use tantivy::directory::error::LockError::LockBusy;
        let mut wait = std::time::Duration::from_millis(5);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match self
                .index
                .writer_with_num_threads(self.opts.threads, self.opts.memory_bytes)
            {
                Ok(w) => return Ok(w),
                Err(LockFailure(LockBusy, _)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(std::time::Duration::from_millis(500));
                }
                Err(e @ LockFailure(LockBusy, _)) => {
                    return Err(Error::Busy(format!(
                        "search index {}: another writer holds it ({e}); run the command again when it is done",
                        self.dir.display()
                    )));
                }
                Err(e) => return Err(index_err(&self.dir, e)),
            }
        }
    }

    /// Applies every change the store logged after the watermark, or rebuilds
    /// the index when the log no longer reaches back to it; commits; trims the
    /// log.
    pub fn catch_up(&mut self, archive: &Archive) -> Result<CatchUp> {
        let last = archive.last_change()?;
        if last == self.watermark {
            return Ok(CatchUp {
                watermark: last,
                ..CatchUp::default()
            });
        }
        let first = archive.first_change()?;
        if last < self.watermark || first > self.watermark + 1 {
            return self.rebuild(archive);
        }
        let mut out = CatchUp::default();
        let mut since_commit = 0;
        // A step may write no document (retention's deletions): the log's
        // end, not an empty step, ends the loop.
        while let Some(n) = self.apply_step(archive)? {
            out.documents += n;
            since_commit += n;
            if since_commit >= DOCS_PER_COMMIT {
                self.commit(archive)?;
                since_commit = 0;
            }
        }
        self.commit(archive)?;
        out.watermark = self.watermark;
        Ok(out)
    }

    /// Applies the next step of changes (the changes of at most
    /// [`CHANGES_PER_STEP`] store transactions) without committing; returns how
    /// many documents it wrote, or `None` when no change was left.
    pub fn apply_step(&mut self, archive: &Archive) -> Result<Option<u64>> {
        let changes = archive.changes_after(self.pending_watermark(), CHANGES_PER_STEP)?;
        let Some(&(last_seq, _, _)) = changes.last() else {
            return Ok(None);
        };
        // Each item once, in first-change order; its document needs replacing
        // unless its first change here created it.
        let mut order: Vec<ItemId> = Vec::with_capacity(changes.len());
        let mut replace: Vec<bool> = Vec::with_capacity(changes.len());
        let mut seen = std::collections::HashSet::with_capacity(changes.len());
        for (_, id, is_new) in &changes {
            if seen.insert(*id) {
                order.push(*id);
                replace.push(!*is_new);
            }
        }
        let fields = self.fields;
        let writer = self.writer()?;
        let mut docs = 0;
        let mut replace = replace.into_iter();
        archive.doc_sources(&order, |id, src| {
            // In the order asked for.
            if replace.next().unwrap_or(true) || src.is_none() {
                writer.delete_term(fields.id_term(&item_id_bytes(id)));
            }
            if let Some(src) = src {
                writer
                    .add_document(fields.document(&src))
                    .map_err(|e| Error::Internal(format!("indexing {id}: {e}")))?;
                docs += 1;
            }
            Ok(())
        })?;
        self.pending = Some(last_seq);
        Ok(Some(docs))
    }

    fn pending_watermark(&self) -> u64 {
        self.pending.unwrap_or(self.watermark)
    }

    /// Commits what was applied, with the watermark in the commit's payload,
    /// then lets the store trim its log.
    pub fn commit(&mut self, archive: &Archive) -> Result<()> {
        let Some(wm) = self.pending.take() else {
            return Ok(());
        };
        let payload = serde_json::to_string(&Payload {
            schema: SCHEMA_VERSION,
            watermark: wm,
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        let dir = self.dir.clone();
        let writer = self.writer()?;
        let mut prepared = writer.prepare_commit().map_err(|e| index_err(&dir, e))?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(|e| index_err(&dir, e))?;
        self.watermark = wm;
        self.stale.store(true, std::sync::atomic::Ordering::Release);
        archive.trim_changes(wm)?;
        Ok(())
    }

    /// Throws the index away and builds it again from the store alone (what
    /// `tgvault reindex` does: it also repairs an index whose files are damaged).
    pub fn recreate(archive: &Archive, opts: WriterOptions) -> Result<(Index, CatchUp)> {
        let dir = Self::path(archive);
        if dir.is_dir() {
            clear_dir(&dir)?;
        }
        let mut idx = Self::open_only(archive, opts)?;
        let done = idx.rebuild(archive)?;
        Ok((idx, done))
    }

    /// Rebuilds the whole index from the store's source rows.
    pub fn rebuild(&mut self, archive: &Archive) -> Result<CatchUp> {
        // Changes logged from here on are applied again afterwards: harmless.
        let last = archive.last_change()?;
        let fields = self.fields;
        let dir = self.dir.clone();
        let writer = self.writer()?;
        writer
            .delete_all_documents()
            .map_err(|e| index_err(&dir, e))?;
        let mut docs = 0u64;
        archive.for_each_source(|src: DocSource| {
            writer
                .add_document(fields.document(&src))
                .map_err(|e| Error::Internal(format!("indexing {}: {e}", src.id)))?;
            docs += 1;
            Ok(())
        })?;
        self.pending = Some(last);
        self.commit(archive)?;
        // Anything logged while rebuilding.
        let more = self.catch_up(archive)?;
        Ok(CatchUp {
            rebuilt: true,
            documents: docs + more.documents,
            watermark: self.watermark,
        })
    }

    /// Runs `work` (an import) while this index follows the store on another
    /// thread: `work` gets a sender to signal each commit, and the index
    /// applies the new changes as they come. When `work` returns, the index
    /// catches up with the rest and commits.
    pub fn follow<T>(
        &mut self,
        archive: &Archive,
        work: impl FnOnce(std::sync::mpsc::SyncSender<()>) -> Result<T>,
    ) -> Result<T> {
        let (tell, told) = std::sync::mpsc::sync_channel::<()>(1);
        // `work` may keep its sender alive past its return (in its options):
        // the end is signalled by this flag and one more message.
        let done = &std::sync::atomic::AtomicBool::new(false);
        let wake = tell.clone();
        let this = &mut *self;
        let (out, followed) = std::thread::scope(|s| {
            let follower = std::thread::Builder::new()
                .name("tgvault-index".into())
                .spawn_scoped(s, move || -> Result<()> {
                    let mut since_commit = 0;
                    while told.recv().is_ok() {
                        while let Some(n) = this.apply_step(archive)? {
                            since_commit += n;
                        }
                        if since_commit >= DOCS_PER_COMMIT {
                            this.commit(archive)?;
                            since_commit = 0;
                        }
                        if done.load(std::sync::atomic::Ordering::Acquire) {
                            break;
                        }
                    }
                    Ok(())
                })
                .map_err(|e| Error::Internal(format!("starting the indexer: {e}")))?;
            let out = work(tell);
            done.store(true, std::sync::atomic::Ordering::Release);
            // Fails only if the follower already stopped (on an error).
            let _ = wake.send(());
            let followed = follower
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("the indexer panicked".into())));
            Ok::<_, Error>((out, followed))
        })?;
        // The store's work stands even if indexing failed: the next open
        // catches up. Report the import's own error first.
        let out = out?;
        followed?;
        self.catch_up(archive)?;
        Ok(out)
    }

    /// Waits for tantivy's background merges (before the process exits).
    pub fn close(mut self) -> Result<()> {
        if let Some(w) = self.writer.take() {
            w.wait_merging_threads()
                .map_err(|e| index_err(&self.dir, e))?;
        }
        Ok(())
    }

    /// Compares the index with the store: every source row must have exactly
    /// one document, built from its current state (same stamp). Reports each
    /// missing, extra, duplicate or stale document; returns how many
    /// documents were compared.
    pub fn verify(
        &self,
        archive: &Archive,
        report: &mut dyn FnMut(crate::store::verify::Problem),
    ) -> Result<u64> {
        // Every file's checksum first: a damaged file is named, and its
        // contents are not read.
        let damaged = self
            .guard(|| {
                self.index
                    .validate_checksum()
                    .map_err(|e| index_err(&self.dir, e))
            })
            .map_err(|e| e.to_string());
        match damaged {
            Ok(files) if files.is_empty() => {}
            Ok(files) => {
                let mut files: Vec<_> = files.into_iter().collect();
                files.sort();
                for f in files {
                    report(crate::store::verify::Problem {
                        subject: format!("index file {}", self.dir.join(&f).display()),
                        problem: "damaged (checksum mismatch): `tgvault reindex` rebuilds the index from the archive".into(),
                        severity: "error",
                    });
                }
                return Ok(0);
            }
            Err(e) => {
                report(crate::store::verify::Problem {
                    subject: format!("index {}", self.dir.display()),
                    problem: format!(
                        "unreadable ({e}): `tgvault reindex` rebuilds it from the archive"
                    ),
                    severity: "error",
                });
                return Ok(0);
            }
        }
        self.guard(|| self.verify_documents(archive, report))
    }

    fn verify_documents(
        &self,
        archive: &Archive,
        report: &mut dyn FnMut(crate::store::verify::Problem),
    ) -> Result<u64> {
        use std::collections::HashMap;
        let problem = |subject: String, problem: String| crate::store::verify::Problem {
            subject,
            problem,
            severity: "error",
        };
        let mut docs: HashMap<Vec<u8>, Vec<u64>> = HashMap::new();
        let stamps = self.stamps()?;
        let n = stamps.len() as u64;
        for (id, stamp) in stamps {
            docs.entry(id).or_default().push(stamp);
        }
        archive.for_each_stamp(|id, stamp| {
            match docs.remove(&item_id_bytes(&id)) {
                None => report(problem(
                    id.to_string(),
                    "stored item has no search document (missing from the index)".into(),
                )),
                Some(found) if found.len() > 1 => report(problem(
                    id.to_string(),
                    format!("{} search documents for one item", found.len()),
                )),
                Some(found) if found[0] != stamp => report(problem(
                    id.to_string(),
                    "search document is stale: it does not reflect the stored item".into(),
                )),
                Some(_) => {}
            }
            Ok(())
        })?;
        let mut extra: Vec<Vec<u8>> = docs.into_keys().collect();
        extra.sort();
        for id in extra {
            let name = crate::store::key::decode_item_id(&id)
                .map(|i| i.to_string())
                .unwrap_or_else(|_| hex::encode(&id));
            report(problem(
                name,
                "search document for an item the store does not hold (extra)".into(),
            ));
        }
        Ok(n)
    }

    /// Every document's id and stamp, for verification.
    pub fn stamps(&self) -> Result<Vec<(Vec<u8>, u64)>> {
        let searcher = self.searcher()?;
        let mut out = Vec::new();
        for seg in searcher.segment_readers() {
            let ff = seg.fast_fields();
            let ids = schema::IdColumns::open(ff).map_err(|e| index_err(&self.dir, e))?;
            let stamps = ff.u64("stamp").map_err(|e| index_err(&self.dir, e))?;
            let alive = seg.alive_bitset();
            for doc in 0..seg.max_doc() {
                if alive.is_some_and(|a| !a.is_alive(doc)) {
                    continue;
                }
                // A document without an id is reported as one the store
                // does not hold.
                let id = ids
                    .get(doc)
                    .map(|id| crate::store::key::item_id_bytes(&id))
                    .unwrap_or_default();
                out.push((id, stamps.first(doc).unwrap_or(0)));
            }
        }
        Ok(out)
    }
}

fn open_existing(dir: &Path) -> Option<(tantivy::Index, Payload)> {
    let mmap = MmapDirectory::open(dir).ok()?;
    if !tantivy::Index::exists(&mmap).ok()? {
        return None;
    }
    let index = tantivy::Index::open(mmap).ok()?;
    let meta = index.load_metas().ok()?;
    let payload = match meta.payload.as_deref() {
        Some(p) => serde_json::from_str(p).ok()?,
        None => Payload::default(),
    };
    if index.schema() != Fields::schema().0 {
        return None;
    }
    Some((index, payload))
}

/// Removes the files of an index directory (never anything else).
fn clear_dir(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let p = e.path();
        if p.is_file() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

pub(crate) fn index_err(dir: &Path, e: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!(
        "search index {}: {e} (`tgvault reindex` rebuilds it from the archive)",
        dir.display()
    ))
}
