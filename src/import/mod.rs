//! The import pipeline: source -> mapping -> store, with Purview's counters.
//!
//! Each file is read twice. The first pass only parses: a file that is not valid
//! (after repair) fails whole, before anything is written, so a failed file leaves
//! the archive as it was. The second pass runs on two threads: a producer parses,
//! converts each message into an item, stages its attachment blobs and encodes
//! it; the writer (the calling thread) resolves each item's mailboxes and files
//! it in batches, one redb transaction per batch, with the run's progress in the
//! same transaction. A process killed mid-file leaves whole batches; importing
//! the file again skips what is there and adds the rest, so every item ends up
//! present exactly once.

pub mod capture;

use crate::error::{Error, Result};
use crate::mapping::Mapping;
use crate::model::{ItemKind, Person};
use crate::report::{Anomaly, Counters, Failure, FileReport, FileStatus, ImportReport};
use crate::source::repair::RepairStats;
use crate::source::telegram::{ChatContext, ChatHeader, Owner, Sink, Zone};
use crate::source::{Input, Media, MediaError, MediaFile};
use crate::store::blob::StagedBlob;
use crate::store::records::{Custodian, QuarantineRecord, RunRecord, RunStatus};
use crate::store::{Archive, EncodedItem, Filed, Quarantined};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

pub struct ImportOptions {
    pub mapping: Mapping,
    /// The custodian's e-mail address (`--mailbox`): the export's "e-mail
    /// address property" for mapping.
    pub custodian_address: Option<String>,
    /// The export owner's Telegram user id (`--owner`), for exports that do
    /// not name it (single-chat exports): it scopes personal-chat message ids
    /// as a full-account export of the same account would, and the owner takes
    /// part in every item of the export.
    pub owner_id: Option<i64>,
    /// How local `date` values without `date_unixtime` are read.
    pub zone: Zone,
    /// Whether `zone` was given by the user (HTML exports then read their wall
    /// times in it instead of trusting the offset Telegram wrote).
    pub zone_given: bool,
    pub folder: String,
    /// Items per write transaction.
    pub batch_items: usize,
    /// Inline blob bytes per write transaction.
    pub batch_bytes: usize,
    pub progress: bool,
    /// Told after every committed batch (a search index following the import).
    pub committed: Option<SyncSender<()>>,
    /// Once set, the import stops after the batch it is filing: what it
    /// committed stays, and importing the files again completes them.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl ImportOptions {
    pub fn new(mapping: Mapping) -> Self {
        ImportOptions {
            mapping,
            custodian_address: None,
            owner_id: None,
            zone: Zone::utc(),
            zone_given: false,
            folder: crate::model::DEFAULT_FOLDER.into(),
            batch_items: 10_000,
            batch_bytes: 32 << 20,
            progress: false,
            committed: None,
            stop: None,
        }
    }
}

/// Who runs the import, with what arguments, and the clock (time is a parameter
/// below the CLI).
pub struct RunContext<'a> {
    pub actor: String,
    pub args: Vec<String>,
    pub clock: &'a dyn Fn() -> i64,
}

/// Imports every path; a failing file is reported and does not stop the others.
pub fn import(
    archive: &Archive,
    paths: &[PathBuf],
    opts: &ImportOptions,
    ctx: &RunContext,
) -> Result<ImportReport> {
    let run = archive.begin_run("import", &ctx.actor, ctx.args.clone(), (ctx.clock)())?;
    let mut report = ImportReport {
        run,
        files: Vec::new(),
    };
    for path in paths {
        let file = import_file(archive, run, path, opts, &report.files)?;
        report.files.push(file);
    }
    finish_run(archive, run, &report, ctx)?;
    Ok(report)
}

/// Closes the run record and appends its audit entry, in one transaction.
fn finish_run(archive: &Archive, run: u64, report: &ImportReport, ctx: &RunContext) -> Result<()> {
    archive.write(|tx| {
        let mut rec = tx.run(run)?;
        rec.files = report.files.clone();
        let now = (ctx.clock)();
        rec.finished = Some(now);
        rec.status = if report.has_errors() {
            RunStatus::CompletedWithErrors
        } else {
            RunStatus::Completed
        };
        tx.put_run(&rec)?;
        // The blobs this import logged go where readers look first.
        tx.fold_blob_log()?;
        let t = report.totals();
        let failed_files = report
            .files
            .iter()
            .filter(|f| matches!(f.status, FileStatus::Failed(_)))
            .count() as u64;
        let mut params = vec![("run".to_string(), run.to_string())];
        params.extend(ctx.args.iter().map(|a| ("arg".to_string(), a.clone())));
        let mut counts = t.audit_counts();
        counts.push(("files_failed".into(), failed_files));
        tx.audit(crate::store::audit::Event {
            time: now,
            actor: ctx.actor.clone(),
            action: rec.kind.clone(),
            params,
            counts,
            outcome: rec.status.as_str().into(),
        })?;
        Ok(())
    })
}

fn failed_file(path: String, format: &str, e: &Error) -> FileReport {
    FileReport {
        path,
        format: format.into(),
        status: FileStatus::Failed(e.to_string()),
        counters: Counters::default(),
        failures: vec![],
        anomalies: vec![],
    }
}

/// One converted source item, ready for the writer: everything the writer
/// needs is worked out on the producer thread, so that the writer only stores.
struct Ready {
    enc: EncodedItem,
    blobs: Vec<StagedBlob>,
    mapped: Mapped,
    attachments: u64,
    without_content: u64,
    attachment_bytes: u64,
}

enum Prepared {
    Item(Box<Ready>),
}

/// Where fan-out files an item.
struct Mapped {
    /// Empty: quarantine.
    mailboxes: Vec<String>,
    /// `(Person::key, mailbox)` for each participant that resolved.
    addresses: Vec<(String, String)>,
    /// Why it maps nowhere, when `mailboxes` is empty.
    quarantine_reason: String,
}

/// The attachments of an item to read, by index, with what opening each
/// file gave.
type MediaFiles = Vec<(usize, std::result::Result<MediaFile, MediaError>)>;

/// Whether all these files can be read without waiting for the disk.
fn all_cached(files: &MediaFiles) -> bool {
    files
        .iter()
        .all(|(_, f)| f.as_ref().map_or(true, MediaFile::cached))
}

/// Starts reading the files that are not cached; whether all are.
fn fetch_uncached(files: &MediaFiles) -> bool {
    let mut all = true;
    for (_, f) in files {
        if let Ok(f) = f
            && !f.cached()
        {
            f.fetch();
            all = false;
        }
    }
    all
}

/// An item converted and mapped whose attachment files are not read yet.
/// It keeps no file open, however many are held: they are opened again.
struct Unstaged {
    item: crate::model::Item,
    mapped: Mapped,
}

/// An item waiting in the converting thread (see [`ProduceSink::held`]).
enum Held {
    Done(Prepared),
    Unstaged(Box<Unstaged>),
}

/// Items held back at most while their media files come from the disk
/// (items converted meanwhile queue behind them, to keep the export's order).
const HELD_MAX: usize = 512;
/// How often (in items converted) the oldest held item's files are looked
/// at again: every time cost a probe per item for nothing.
const HELD_CHECK: usize = 16;

enum Msg {
    Owner(Person),
    Batch(Vec<Prepared>),
}

struct ProduceSink<'a> {
    archive: &'a Archive,
    opts: &'a ImportOptions,
    owner: Option<Owner>,
    custodian: Custodian,
    chat: Option<ChatContext>,
    media: Media,
    /// Items behind one whose media files were not in the page cache: their
    /// reads were started, and the items wait here (up to [`HELD_MAX`]) while
    /// the next ones are converted, instead of the thread waiting for each
    /// file in turn. Empty while the files come from the cache.
    held: std::collections::VecDeque<Held>,
    /// Items converted since the oldest held item was looked at.
    since_check: usize,
    batch: Vec<Prepared>,
    tx: SyncSender<Msg>,
    /// Oddities met, by kind (see [`Notes`]).
    anomalies: Notes,
    /// Source records that carried no item.
    skipped: u64,
    /// Blobs staged as files, to remove if the file fails before they commit.
    staged_files: Vec<[u8; 32]>,
}

impl ProduceSink<'_> {
    fn send(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.tx
            .send(Msg::Batch(batch))
            .map_err(|_| Error::Internal("the writer stopped".into()))
    }

    fn push(&mut self, prepared: Prepared) -> Result<()> {
        self.batch.push(prepared);
        if self.batch.len() >= 512 {
            self.send()?;
        }
        Ok(())
    }

    /// Sends a prepared item on, or queues it behind the held ones.
    fn pass_on(&mut self, p: Prepared) -> Result<()> {
        if self.held.is_empty() {
            self.push(p)
        } else {
            self.held.push_back(Held::Done(p));
            self.release(false)
        }
    }

    /// Maps a converted item, opens its media files and prepares it, unless
    /// a file is not in the page cache: then it is held (see `held`).
    fn push_item(&mut self, item: crate::model::Item) -> Result<()> {
        let crate::mapping::Resolved {
            mailboxes,
            addresses,
        } = self
            .opts
            .mapping
            .resolve(&item.participants, &self.custodian);
        let quarantine_reason = if mailboxes.is_empty() {
            no_mailbox_reason(&item.participants, &self.custodian)
        } else {
            String::new()
        };
        let mapped = Mapped {
            mailboxes,
            addresses,
            quarantine_reason,
        };
        let files = self.open_files(&item);
        // Its files' reads start now if they are not cached.
        if fetch_uncached(&files) {
            let p = self.finish(Unstaged { item, mapped }, files)?;
            return self.pass_on(p);
        }
        let first = self.held.is_empty();
        self.held
            .push_back(Held::Unstaged(Box::new(Unstaged { item, mapped })));
        if first { Ok(()) } else { self.release(false) }
    }

    /// Opens the media files of an item's attachments that have one.
    fn open_files(&self, item: &crate::model::Item) -> MediaFiles {
        item.attachments
            .iter()
            .enumerate()
            .filter(|(_, a)| a.missing.is_none())
            .filter_map(|(i, a)| Some((i, self.media.open(a.source_path.as_deref()?))))
            .collect()
    }

    /// Passes on held items from the front: those whose files have come, the
    /// oldest when too many are held, and all when `all` (the end).
    fn release(&mut self, all: bool) -> Result<()> {
        self.since_check += 1;
        let look = self.since_check >= HELD_CHECK;
        if look {
            self.since_check = 0;
        }
        while let Some(front) = self.held.pop_front() {
            let p = match front {
                Held::Done(p) => p,
                Held::Unstaged(u) => {
                    // Counting the item just taken off.
                    let forced = all || self.held.len() >= HELD_MAX;
                    let files = (forced || look).then(|| self.open_files(&u.item));
                    match files {
                        Some(files) if forced || all_cached(&files) => self.finish(*u, files)?,
                        _ => {
                            self.held.push_front(Held::Unstaged(u));
                            break;
                        }
                    }
                }
            };
            self.push(p)?;
        }
        Ok(())
    }

    /// Reads and stages an item's media files (waiting for them if need be)
    /// and prepares it.
    fn finish(&mut self, u: Unstaged, files: MediaFiles) -> Result<Prepared> {
        let Unstaged { mut item, mapped } = u;
        let blobs = self.stage_attachments(&mut item, files)?;
        let ready = ready(item, mapped, blobs, &mut self.anomalies);
        Ok(Prepared::Item(Box::new(ready)))
    }

    fn stage_attachments(
        &mut self,
        item: &mut crate::model::Item,
        files: MediaFiles,
    ) -> Result<Vec<StagedBlob>> {
        let mut staged = stage_inline(self.archive, item);
        self.staged_files
            .extend(staged.iter().filter_map(StagedBlob::file_sha));
        for (i, found) in files {
            let a = &mut item.attachments[i];
            let rel = a.source_path.clone().unwrap_or_default();
            let archive = self.archive;
            let read = found.and_then(|f| {
                self.media
                    .read(f, |r, what, size| archive.stage_blob(r, what, size))
            });
            match read {
                Ok(Ok(blob)) => {
                    let r = blob.blob_ref();
                    if let Some(declared) = a.declared_size
                        && declared != r.size
                    {
                        item.anomalies.push(format!(
                            "{} '{rel}' has {} bytes, the export declared {declared}",
                            a.kind.as_str(),
                            r.size
                        ));
                    }
                    a.content = Some(r);
                    if let StagedBlob::File(r) = &blob {
                        self.staged_files.push(r.sha256);
                    }
                    staged.push(blob);
                }
                Ok(Err(e)) => {
                    // A read error inside the export's files is the item's
                    // problem, not the run's: keep the metadata and the reason.
                    a.missing = Some(format!("file '{rel}' could not be read: {e}"));
                    item.anomalies.push(a.missing.clone().unwrap_or_default());
                }
                Err(me) => {
                    let reason = me.reason(&rel);
                    item.anomalies.push(reason.clone());
                    a.missing = Some(reason);
                }
            }
        }
        Ok(staged)
    }
}

/// Stages the attachments whose content the item holds itself (the parts
/// of a delivered e-mail, the e-mail itself); one that cannot be stored
/// keeps its metadata and says why.
pub fn stage_inline(archive: &Archive, item: &mut crate::model::Item) -> Vec<StagedBlob> {
    let mut staged = Vec::new();
    for a in item.attachments.iter_mut() {
        let Some(bytes) = a.inline.take() else {
            continue;
        };
        let what = PathBuf::from(a.display_name());
        match archive.stage_blob(bytes.as_slice(), &what, Some(bytes.len() as u64)) {
            Ok(blob) => {
                a.content = Some(blob.blob_ref());
                staged.push(blob);
            }
            Err(e) => {
                let reason = format!("'{}' could not be stored: {e}", a.display_name());
                item.anomalies.push(reason.clone());
                a.missing = Some(reason);
            }
        }
    }
    staged
}

/// Finishes an item whose attachments are staged: counts its anomalies and
/// encodes it.
fn ready(
    item: crate::model::Item,
    mapped: Mapped,
    blobs: Vec<StagedBlob>,
    anomalies: &mut Notes,
) -> Ready {
    for a in &item.anomalies {
        anomalies.add(&item.id, a);
    }
    let enc = EncodedItem::new(&item);
    Ready {
        attachments: item.attachments.len() as u64,
        without_content: item
            .attachments
            .iter()
            .filter(|a| a.content.is_none())
            .count() as u64,
        attachment_bytes: item
            .attachments
            .iter()
            .filter_map(|a| a.content.map(|r| r.size))
            .sum(),
        enc,
        blobs,
        mapped,
    }
}

impl Sink for ProduceSink<'_> {
    fn owner(&mut self, owner: Owner) -> Result<()> {
        // The export's own `personal_information` wins over `--owner`.
        if let (Some(given), Some(found)) = (self.opts.owner_id, owner.user_id)
            && given != found
        {
            self.anomalies.count(
                format!(
                    "the owner given ({given}) differs from the export's owner {found}: the export's is used"
                ),
                1,
            );
        }
        let person = owner.person();
        self.owner = Some(owner);
        self.custodian.owner = Some(person.clone());
        self.tx
            .send(Msg::Owner(person))
            .map_err(|_| Error::Internal("the writer stopped".into()))
    }

    fn chat_start(&mut self, chat: &ChatHeader) -> Result<()> {
        self.chat = Some(ChatContext::new(
            chat,
            self.owner.as_ref(),
            self.opts.zone.clone(),
        ));
        Ok(())
    }

    fn message(&mut self, _: &ChatHeader, raw: &str) -> Result<()> {
        let ctx = self
            .chat
            .as_mut()
            .ok_or_else(|| Error::Internal("message outside a chat".into()))?;
        let item = ctx.convert(raw);
        self.push_item(item)
    }
}

impl crate::source::Produce for ProduceSink<'_> {
    fn item(&mut self, item: crate::model::Item) -> Result<()> {
        self.push_item(item)
    }

    fn not_item(&mut self, what: String) -> Result<()> {
        self.anomalies.count(what, 1);
        self.skipped += 1;
        Ok(())
    }
}

/// The owner named with `--owner`, until the export names its own.
fn given_owner(opts: &ImportOptions) -> Option<Owner> {
    opts.owner_id.map(|id| Owner {
        user_id: Some(id),
        ..Default::default()
    })
}

/// The oddities of one file, by kind. The report names the first
/// [`NOTES_PER_KIND`] of each kind whole, with the item they are about
/// (`tg:0:1:5: photo 'photos/x.jpg' has 10 bytes, ...`), and counts the
/// rest under the kind, numbers and quoted parts folded ("photo '…' has N
/// bytes ... (N more like this)"): a report stays short over millions of
/// items, and every note it shows says what it is about.
#[derive(Default)]
struct Notes {
    kinds: BTreeMap<String, (u64, Vec<String>)>,
}

/// How many notes of one kind the report shows whole.
const NOTES_PER_KIND: usize = 10;

impl Notes {
    /// A note about one item.
    fn add(&mut self, item: &crate::model::ItemId, note: &str) {
        let (n, shown) = self.kinds.entry(anomaly_kind(note)).or_default();
        *n += 1;
        if shown.len() < NOTES_PER_KIND {
            shown.push(format!("{item}: {note}"));
        }
    }

    /// `n` more of a kind that is about the file, not one item.
    fn count(&mut self, kind: String, n: u64) {
        self.kinds.entry(kind).or_default().0 += n;
    }

    fn into_report(self) -> Vec<Anomaly> {
        let mut out = Vec::new();
        for (kind, (n, shown)) in self.kinds {
            let rest = n - shown.len() as u64;
            let whole = shown.len() as u64;
            out.extend(shown.into_iter().map(|what| Anomaly { what, count: 1 }));
            match (whole, rest) {
                (_, 0) => {}
                (0, _) => out.push(Anomaly {
                    what: kind,
                    count: rest,
                }),
                _ => out.push(Anomaly {
                    what: format!("{kind} (more like this)"),
                    count: rest,
                }),
            }
        }
        out
    }
}

/// Replaces numbers and quoted parts of an anomaly with placeholders, so that
/// the file report counts kinds of oddity rather than listing every item.
fn anomaly_kind(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_quote = false;
    let mut in_number = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if !in_quote {
                out.push_str("'…'");
            }
            in_quote = !in_quote;
            continue;
        }
        if in_quote {
            continue;
        }
        let starts_negative =
            c == '-' && !in_number && chars.peek().is_some_and(|n| n.is_ascii_digit());
        if c.is_ascii_digit() || starts_negative {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

fn import_file(
    archive: &Archive,
    run: u64,
    path: &Path,
    opts: &ImportOptions,
    earlier: &[FileReport],
) -> Result<FileReport> {
    let shown = path.display().to_string();
    let input = match Input::locate(path) {
        Ok(i) => i,
        Err(e) => return Ok(failed_file(shown, "unknown", &e)),
    };
    let format = input.format();
    // Pass 1 validates the whole file; pass 2 converts and files it. They run
    // at once, on their own threads, but nothing commits before the file has
    // validated: the writer keeps its first transaction open (filing into it)
    // until then, and aborts it if the file is bad.
    let t0 = std::time::Instant::now();
    let media = match input.media() {
        Ok(m) => m,
        Err(e) => return Ok(failed_file(input.display(), format, &e)),
    };
    let mut file = FileReport {
        path: input.display(),
        format: format.into(),
        status: FileStatus::Imported,
        counters: Counters::default(),
        failures: vec![],
        anomalies: vec![],
    };
    let progress = if opts.progress {
        // The length is known once the file has validated.
        let pb = indicatif::ProgressBar::new(0);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:.bold} [{wide_bar}] {human_pos}/{human_len} items, eta {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        let short = Path::new(&input.display())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        pb.set_message(short);
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };

    // Room for a whole commit batch in flight, so the producer keeps working
    // while the writer commits.
    let (tx, rx) = sync_channel::<Msg>(opts.batch_items / 512 + 2);
    // The verdict for the writer; the error itself comes back with the join.
    let (valid_tx, valid_rx) = sync_channel::<std::result::Result<u64, ()>>(1);
    let staged_files = std::sync::Mutex::new(Vec::new());
    let (outcome, validation) = std::thread::scope(|s| {
        let input = &input;
        let validator = std::thread::Builder::new()
            .name("tgvault-check".into())
            .spawn_scoped(s, move || {
                let v = validate(input);
                match &v {
                    Ok(v) => tracing::info!(file = %input.display(), items = v.items, elapsed = ?t0.elapsed(), "validated"),
                    Err(e) => tracing::info!(file = %input.display(), error = %e, "not valid"),
                }
                // The writer may have stopped already; the join below has it.
                let _ = valid_tx.send(v.as_ref().map(|v| v.items).map_err(|_| ()));
                v
            });
        let validator = match validator {
            Ok(v) => v,
            Err(e) => {
                let e = Error::Internal(format!("cannot start the checking thread: {e}"));
                return (Err(e), None);
            }
        };
        let producer = std::thread::Builder::new()
            .name("tgvault-parse".into())
            .spawn_scoped(s, || {
                yield_to_later_stages();
                let owner = given_owner(opts);
                let mut sink = ProduceSink {
                    archive,
                    opts,
                    custodian: Custodian {
                        owner: owner.as_ref().map(Owner::person),
                        address: opts.custodian_address.clone(),
                    },
                    owner,
                    chat: None,
                    media,
                    held: Default::default(),
                    since_check: 0,
                    batch: Vec::new(),
                    tx,
                    anomalies: Notes::default(),
                    skipped: 0,
                    staged_files: Vec::new(),
                };
                let zone = opts.zone_given.then(|| opts.zone.clone());
                let parsed = input.produce(zone, &mut sink);
                // What was converted before an error is still filed.
                let flushed = sink.release(true).and_then(|_| {
                    if sink.batch.is_empty() {
                        Ok(())
                    } else {
                        sink.send()
                    }
                });
                *staged_files.lock().unwrap_or_else(|p| p.into_inner()) =
                    std::mem::take(&mut sink.staged_files);
                parsed.and(flushed).map(|_| (sink.anomalies, sink.skipped))
            });
        let producer = match producer {
            Ok(p) => p,
            Err(e) => {
                drop(rx);
                let e = Error::Internal(format!("cannot start the import thread: {e}"));
                return (Err(e), validator.join().ok());
            }
        };
        let written = write_loop(
            archive, run, opts, rx, valid_rx, &mut file, earlier, &progress,
        );
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the import thread panicked".into())));
        let validation = validator.join().ok();
        // A writer error makes the producer fail on its send: report the cause.
        (written.and(produced), validation)
    });
    progress.finish_and_clear();
    tracing::info!(file = %input.display(), elapsed = ?t0.elapsed(), "imported");
    // Blob files of items that never committed, or of versions the archive
    // had already, are not part of the archive.
    let staged = staged_files.into_inner().unwrap_or_else(|p| p.into_inner());
    archive.drop_unused_blob_files(&staged)?;
    let repairs = match validation {
        // A file that is not valid fails as a whole: nothing of it committed.
        Some(Err(e)) => return Ok(failed_file(input.display(), format, &e)),
        Some(Ok(v)) => v.repairs,
        None => match &outcome {
            Err(_) => RepairStats::default(),
            Ok(_) => {
                return Err(Error::Internal("the checking thread panicked".into()));
            }
        },
    };
    let mut anomalies = Notes::default();
    match outcome {
        Ok((found, not_items)) => {
            anomalies = found;
            file.counters.not_items = not_items;
        }
        Err(e) => {
            file.status = FileStatus::Failed(format!(
                "{e} (items committed before the error stay; importing the file again completes it)"
            ))
        }
    }
    for (what, n) in [
        ("\\xHH escapes repaired", repairs.hex_escapes),
        (
            "raw control bytes in strings escaped",
            repairs.control_bytes,
        ),
        ("unquoted values quoted", repairs.bare_values),
    ] {
        if n > 0 {
            anomalies.count(what.into(), n);
        }
    }
    file.anomalies = anomalies.into_report();
    Ok(file)
}

/// What the validating pass found: how many records, what it repaired.
struct Validated {
    items: u64,
    repairs: RepairStats,
}

/// Pass 1: reads the whole input and checks it, keeping nothing.
fn validate(input: &Input) -> Result<Validated> {
    let checked = input.check()?;
    Ok(Validated {
        items: checked.items,
        repairs: checked.repairs,
    })
}

/// How much lower the converting thread's priority is than the other
/// threads' (a `nice` increment; 0 is the default, 19 the lowest).
///
/// Converting is the first stage of the pipeline: the writer and the search
/// index (its follower and tantivy's indexing thread) work on what it made.
/// At equal priority the scheduler gives the four busy threads of a 2-core
/// machine half a core each, the converter runs ahead, and at its end the
/// index still has seconds of work in which a core is half idle (3.3 s of a
/// 12 s import of 1M messages). Lowered, the converter takes what the later
/// stages leave: during the validating pass the checking thread and the
/// writer go first (so the first commit, and with it the index, comes
/// sooner), and the index stays close behind the store. Measured with
/// `cargo bench --bench search` at 1M: 0.75-0.78 of the index-alone rate
/// against 0.70-0.73, with 1-2 CPU-seconds less in all (less waiting on
/// full queues); increments from 6 to 19 measured alike.
const CONVERTER_NICE: i32 = 6;

/// Lowers the calling thread's priority by [`CONVERTER_NICE`] (Linux sets
/// the priority of one thread this way). A refusal only costs speed.
fn yield_to_later_stages() {
    if !crate::tuning::converter_priority() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let now = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        if let Err(e) =
            rustix::process::setpriority_process(Some(tid), (now + CONVERTER_NICE).min(19))
        {
            tracing::debug!(error = %e, "the converting thread keeps its priority");
        }
    }
}

/// Files what the producer sends, one write transaction per batch. Until the
/// validating pass has passed, the first transaction stays open (filing every
/// batch that arrives into it) and cannot commit; if the pass fails, it is
/// aborted and its error returned, so a bad file leaves nothing.
#[allow(clippy::too_many_arguments)]
fn write_loop(
    archive: &Archive,
    run: u64,
    opts: &ImportOptions,
    rx: Receiver<Msg>,
    validation: Receiver<std::result::Result<u64, ()>>,
    file: &mut FileReport,
    earlier: &[FileReport],
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    let mut custodian = Custodian {
        owner: given_owner(opts).as_ref().map(Owner::person),
        address: opts.custodian_address.clone(),
    };
    // Whether the validating pass has passed.
    let mut passed = false;
    let mut busy = std::time::Duration::ZERO;
    let mut pending: Vec<Prepared> = Vec::with_capacity(opts.batch_items);
    let mut inline_bytes = 0usize;
    let mut done = false;
    // Takes the validating pass's verdict when there is one (waiting for it
    // when `wait`); a failed pass is this function's error.
    let poll = |passed: &mut bool, wait: bool| -> Result<()> {
        if !*passed {
            let got = if wait {
                validation.recv().ok()
            } else {
                validation.try_recv().ok()
            };
            match got {
                Some(Ok(items)) => {
                    progress.set_length(items);
                    *passed = true;
                }
                // The caller reports the pass's own error.
                Some(Err(())) => {
                    return Err(Error::Internal("the file did not validate".into()));
                }
                // The checking thread ended without a word: it panicked, and
                // the caller reports that.
                None if wait => {
                    return Err(Error::Internal("the checking thread stopped".into()));
                }
                None => {}
            }
        }
        Ok(())
    };
    while !done {
        // Gather a batch (the producer keeps working meanwhile), then file it
        // in one write transaction with the run's progress. Gathering first and
        // filing in one tight loop measured 10-15% faster than filing each
        // message as it arrives inside an open transaction.
        done = gather(&rx, opts, &mut custodian, &mut pending, &mut inline_bytes);
        if pending.is_empty() {
            // Nothing more, but a bad file must still fail as a whole.
            poll(&mut passed, true)?;
            break;
        }
        let t = std::time::Instant::now();
        let mut c = Counters::default();
        let mut filed = 0u64;
        archive.write(|tx| {
            loop {
                for p in &pending {
                    file_one(tx, p, run, &opts.folder, &custodian, &mut c)?;
                }
                filed += pending.len() as u64;
                pending.clear();
                inline_bytes = 0;
                poll(&mut passed, done)?;
                if passed {
                    break;
                }
                // Not validated yet: keep this transaction open and file the
                // next batch into it.
                done = gather(&rx, opts, &mut custodian, &mut pending, &mut inline_bytes);
            }
            let mut so_far = file.clone();
            so_far.counters.add(&c);
            let mut rec: RunRecord = tx.run(run)?;
            rec.files = earlier.to_vec();
            rec.files.push(so_far);
            tx.put_run(&rec)
        })?;
        file.counters.add(&c);
        if let Some(tell) = &opts.committed {
            // A full channel already says "there is more": never wait.
            let _ = tell.try_send(());
        }
        progress.inc(filed);
        busy += t.elapsed();
        let stopping = opts.stop.as_ref();
        if !done && stopping.is_some_and(|s| s.load(std::sync::atomic::Ordering::Acquire)) {
            return Err(Error::Busy(
                "stopped: the server is shutting down; what was filed stays, and importing the file again completes it".into(),
            ));
        }
    }
    tracing::info!(busy = ?busy, "writer done");
    Ok(())
}

/// Receives up to a batch; whether the producer is done.
fn gather(
    rx: &Receiver<Msg>,
    opts: &ImportOptions,
    custodian: &mut Custodian,
    pending: &mut Vec<Prepared>,
    inline_bytes: &mut usize,
) -> bool {
    while pending.len() < opts.batch_items && *inline_bytes < opts.batch_bytes {
        match rx.recv() {
            Ok(Msg::Owner(p)) => custodian.owner = Some(p),
            Ok(Msg::Batch(items)) => {
                for p in &items {
                    let Prepared::Item(r) = p;
                    *inline_bytes += r.inline_bytes();
                }
                pending.extend(items);
            }
            Err(_) => return true,
        }
    }
    false
}

impl Ready {
    fn inline_bytes(&self) -> usize {
        self.blobs
            .iter()
            .map(|b| match b {
                StagedBlob::Inline(_, bytes) => bytes.len(),
                StagedBlob::File(_) => 0,
            })
            .sum()
    }
}

/// Files one prepared item inside the writer's transaction and counts it.
fn file_one(
    tx: &mut crate::store::Tx<'_>,
    p: &Prepared,
    run: u64,
    folder: &str,
    custodian: &Custodian,
    c: &mut Counters,
) -> Result<()> {
    // Nothing fails alone any more: what cannot be read is kept as its raw
    // text (see `ChatContext::convert`), so `failed` stays 0.
    let Prepared::Item(r) = p;
    c.available_from_source += 1;
    match r.enc.kind {
        ItemKind::Message => c.messages += 1,
        ItemKind::Event => c.service_events += 1,
        ItemKind::Call => c.calls += 1,
        ItemKind::Unsupported => c.unsupported += 1,
        ItemKind::Deletion => c.deletions += 1,
    }
    c.attachments += r.attachments;
    c.attachments_without_content += r.without_content;
    c.attachment_bytes += r.attachment_bytes;
    let (imported, partial) = if r.without_content > 0 {
        (0, 1)
    } else {
        (1, 0)
    };
    // A deletion event goes wherever the item it deletes is filed (looked up in
    // this transaction, so an original filed moments earlier counts).
    let mut mailboxes = std::borrow::Cow::Borrowed(&r.mapped.mailboxes);
    if let Some(target) = &r.enc.deletes {
        let mut all = r.mapped.mailboxes.clone();
        all.extend(
            tx.locations(target)?
                .into_iter()
                .filter(|(_, f)| f == folder)
                .map(|(m, _)| m),
        );
        all.sort();
        all.dedup();
        mailboxes = std::borrow::Cow::Owned(all);
    }
    if mailboxes.is_empty() {
        c.available_for_import += 1;
        let rec = QuarantineRecord {
            run,
            reason: r.mapped.quarantine_reason.clone(),
            custodian: custodian.clone(),
        };
        match tx.quarantine_item(&r.enc, &r.blobs, &rec)? {
            Quarantined::New | Quarantined::NewVersion => c.quarantined += 1,
            Quarantined::Duplicate | Quarantined::AlreadyFiled { new_version: false } => {
                c.skipped += 1
            }
            Quarantined::AlreadyFiled { new_version: true } => {
                c.imported += imported;
                c.partially_imported += partial;
                c.new_versions += 1;
            }
        }
        return Ok(());
    }
    c.available_for_import += mailboxes.len() as u64;
    for filed in tx.file_item(
        &r.enc,
        &r.blobs,
        &mailboxes,
        &r.mapped.addresses,
        folder,
        run,
    )? {
        match filed {
            Filed::Duplicate | Filed::Disposed => c.skipped += 1,
            Filed::New | Filed::NewVersion => {
                c.imported += imported;
                c.partially_imported += partial;
                if filed == Filed::NewVersion {
                    c.new_versions += 1;
                }
            }
        }
    }
    Ok(())
}

fn no_mailbox_reason(participants: &[Person], custodian: &Custodian) -> String {
    let who: Vec<String> = participants.iter().map(Person::label).collect();
    let mut r = format!("no participant maps to a mailbox: {}", who.join(", "));
    if custodian.address.is_none() {
        r.push_str("; no custodian address was given");
    }
    r
}

/// Files quarantined items whose participants `mapping` now resolves.
pub fn remap(
    archive: &Archive,
    mapping: &Mapping,
    folder: &str,
    ctx: &RunContext,
) -> Result<ImportReport> {
    let run = archive.begin_run("remap", &ctx.actor, ctx.args.clone(), (ctx.clock)())?;
    let held = archive.quarantine()?;
    let mut file = FileReport {
        path: "(quarantine)".into(),
        format: "remap".into(),
        status: FileStatus::Imported,
        counters: Counters::default(),
        failures: vec![],
        anomalies: vec![],
    };
    for chunk in held.chunks(1000) {
        let mut c = Counters::default();
        archive.write(|tx| {
            let mut moved: Vec<(String, String)> = Vec::new();
            for (id, rec) in chunk {
                let Some(item) = tx.current(id)? else {
                    return Err(Error::Corrupt(format!(
                        "quarantined item {id} has no content"
                    )));
                };
                c.available_from_source += 1;
                let crate::mapping::Resolved {
                    mailboxes,
                    addresses,
                } = mapping.resolve(&item.participants, &rec.custodian);
                if mailboxes.is_empty() {
                    c.available_for_import += 1;
                    c.quarantined += 1;
                    continue;
                }
                let partial = item.attachments.iter().any(|a| a.content.is_none());
                let enc = EncodedItem::new(&item);
                c.available_for_import += mailboxes.len() as u64;
                for filed in tx.file_item(&enc, &[], &mailboxes, &addresses, folder, run)? {
                    match (filed, partial) {
                        (Filed::Duplicate | Filed::Disposed, _) => c.skipped += 1,
                        (_, true) => c.partially_imported += 1,
                        (_, false) => c.imported += 1,
                    }
                }
                moved.push(("filed".into(), format!("{id} -> {}", mailboxes.join(", "))));
            }
            // What this transaction moves out of quarantine is on the trail
            // in it: a remap killed half-way has audited what committed.
            if !moved.is_empty() {
                moved.insert(0, ("run".into(), run.to_string()));
                tx.audit(crate::store::audit::Event {
                    time: (ctx.clock)(),
                    actor: ctx.actor.clone(),
                    action: "remap batch".into(),
                    params: moved,
                    counts: vec![
                        ("run".into(), run),
                        ("imported".into(), c.imported),
                        ("partially imported".into(), c.partially_imported),
                        ("skipped".into(), c.skipped),
                        ("still quarantined".into(), c.quarantined),
                    ],
                    outcome: "ok".into(),
                })?;
            }
            Ok(())
        })?;
        file.counters.add(&c);
    }
    let report = ImportReport {
        run,
        files: vec![file],
    };
    finish_run(archive, run, &report, ctx)?;
    Ok(report)
}

/// Files again the item versions another archive's packs hold: the
/// archive a damaged catalogue was restored over (`tgvault recover --from`).
/// A version the catalogue lacks is filed where `mapping` resolves its
/// participants, else beside its item's earlier versions, else into the
/// quarantine with where it was found; its blobs come from the same packs and
/// blob files. Each transaction is on the trail with what it put back.
pub fn salvage(
    archive: &Archive,
    from: &crate::store::salvage::Salvage,
    mapping: &Mapping,
    folder: &str,
    ctx: &RunContext,
) -> Result<ImportReport> {
    let run = archive.begin_run("recover", &ctx.actor, ctx.args.clone(), (ctx.clock)())?;
    let mut file = FileReport {
        path: from.dir().join("packs").display().to_string(),
        format: "packs".into(),
        status: FileStatus::Imported,
        counters: Counters::default(),
        failures: vec![],
        anomalies: vec![],
    };
    let mut notes = Notes::default();
    let book = archive.address_book()?;
    let mut batch: Vec<(Prepared, String)> = Vec::new();
    let file_batch = |batch: &mut Vec<(Prepared, String)>, file: &mut FileReport| {
        let c = file_salvaged(archive, std::mem::take(batch), run, folder, ctx)?;
        file.counters.add(&c);
        Ok::<(), Error>(())
    };
    let damaged = from.for_each_version(|found| {
        let logged: Vec<String> = found
            .filed
            .into_iter()
            .filter(|(_, f)| f == folder)
            .map(|(m, _)| m)
            .collect();
        let p = salvaged(
            archive,
            from,
            found.item,
            &found.place,
            Placement {
                logged,
                mapping,
                book: &book,
            },
            &mut notes,
        )?;
        batch.push((p, found.place));
        if batch.len() >= 1000 {
            file_batch(&mut batch, &mut file)?;
        }
        Ok(())
    })?;
    file_batch(&mut batch, &mut file)?;
    file.failures = damaged
        .into_iter()
        .map(|reason| Failure {
            item: String::new(),
            source_user: String::new(),
            mailbox: String::new(),
            reason,
        })
        .collect();
    file.counters.failed = file.failures.len() as u64;
    file.anomalies = notes.into_report();
    let report = ImportReport {
        run,
        files: vec![file],
    };
    finish_run(archive, run, &report, ctx)?;
    Ok(report)
}

/// Prepares one version found in a pack: its blobs staged (an attachment
/// whose blob is nowhere to be found keeps its metadata and the reason) and
/// its mailboxes resolved.
fn salvaged(
    archive: &Archive,
    from: &crate::store::salvage::Salvage,
    mut item: crate::model::Item,
    place: &str,
    placement: Placement<'_>,
    notes: &mut Notes,
) -> Result<Prepared> {
    let mut blobs = Vec::new();
    let shas: Vec<[u8; 32]> = item
        .attachments
        .iter()
        .filter_map(|a| a.content.map(|r| r.sha256))
        .collect();
    let known = archive.has_blobs(&shas)?;
    for (sha, known) in shas.iter().zip(known) {
        if known
            || blobs
                .iter()
                .any(|b: &StagedBlob| &b.blob_ref().sha256 == sha)
        {
            continue;
        }
        match from.stage_blob(archive, sha)? {
            Some(b) => blobs.push(b),
            None => {
                let why = format!(
                    "blob {} is neither in the archive nor whole in {}",
                    hex::encode(sha),
                    from.dir().display()
                );
                for a in &mut item.attachments {
                    if a.content.is_some_and(|r| &r.sha256 == sha) {
                        a.content = None;
                        a.missing = Some(why.clone());
                    }
                }
                item.anomalies.push(why);
            }
        }
    }
    let custodian = Custodian::default();
    let crate::mapping::Resolved {
        mailboxes,
        addresses,
    } = placement.resolve(&item);
    let mapped = Mapped {
        quarantine_reason: format!(
            "recovered from {place}: where it was filed was lost with the damaged catalogue, and {}",
            no_mailbox_reason(&item.participants, &custodian)
        ),
        mailboxes,
        addresses,
    };
    Ok(Prepared::Item(Box::new(ready(item, mapped, blobs, notes))))
}

/// What decides where a salvaged version goes.
struct Placement<'a> {
    /// The mailboxes the packs' filing logs say its item was filed in (in
    /// the folder recovered into).
    logged: Vec<String>,
    mapping: &'a Mapping,
    book: &'a std::collections::HashMap<String, String>,
}

impl Placement<'_> {
    /// Where the filing logs say, when they name the item: exactly where it
    /// was, custodians included (the participants' addresses as the
    /// mapping and the catalogue resolve them, for those mailboxes). Else as
    /// [`resolve_salvaged`] finds.
    fn resolve(&self, item: &crate::model::Item) -> crate::mapping::Resolved {
        let mut r = resolve_salvaged(item, self.mapping, self.book);
        if !self.logged.is_empty() {
            r.addresses.retain(|(_, m)| self.logged.contains(m));
            r.mailboxes = self.logged.clone();
        }
        r
    }
}

/// Where a salvaged version goes: each participant through `mapping`,
/// else to the mailbox the catalogue has seen them resolve to (`book`), and
/// the export's owner (the item's scope) likewise. The export's own custodian
/// (its personal information, `--mailbox`) was in the lost catalogue only.
fn resolve_salvaged(
    item: &crate::model::Item,
    mapping: &Mapping,
    book: &std::collections::HashMap<String, String>,
) -> crate::mapping::Resolved {
    let mut r = mapping.resolve(&item.participants, &Custodian::default());
    for p in &item.participants {
        let key = p.key();
        if r.addresses.iter().any(|(k, _)| *k == key) {
            continue;
        }
        if let Some(m) = book.get(&key) {
            r.mailboxes.push(m.clone());
            r.addresses.push((key, m.clone()));
        }
    }
    if item.id.scope != 0
        && let Some(m) = book.get(&format!("user{}", item.id.scope))
    {
        r.mailboxes.push(m.clone());
    }
    r.mailboxes.sort();
    r.mailboxes.dedup();
    r
}

/// Files one batch of salvaged versions in one transaction, with its audit
/// entry naming each version put back and where it was found.
fn file_salvaged(
    archive: &Archive,
    batch: Vec<(Prepared, String)>,
    run: u64,
    folder: &str,
    ctx: &RunContext,
) -> Result<Counters> {
    let mut c = Counters::default();
    if batch.is_empty() {
        return Ok(c);
    }
    archive.write(|tx| {
        let mut params = vec![("run".to_string(), run.to_string())];
        for (p, place) in &batch {
            let before = c.imported + c.partially_imported + c.quarantined;
            file_one(tx, p, run, folder, &Custodian::default(), &mut c)?;
            if c.imported + c.partially_imported + c.quarantined > before {
                let Prepared::Item(r) = p;
                params.push(("put back".into(), format!("{} from {place}", r.enc.id)));
            }
        }
        if params.len() > 1 {
            tx.audit(crate::store::audit::Event {
                time: (ctx.clock)(),
                actor: ctx.actor.clone(),
                action: "recover batch".into(),
                params,
                counts: vec![
                    ("run".into(), run),
                    ("imported".into(), c.imported),
                    ("partially imported".into(), c.partially_imported),
                    ("quarantined".into(), c.quarantined),
                    ("already held".into(), c.skipped),
                ],
                outcome: "ok".into(),
            })?;
        }
        Ok(())
    })?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::anomaly_kind;

    /// Only the converting thread yields: the writer runs on the caller's
    /// thread, which must keep its priority.
    #[cfg(target_os = "linux")]
    #[test]
    fn only_the_converting_thread_is_lowered() {
        use rustix::process::getpriority_process;
        use rustix::thread::gettid;
        let caller = getpriority_process(Some(gettid())).unwrap();
        let (before, after) = std::thread::spawn(|| {
            let before = getpriority_process(Some(gettid())).unwrap();
            super::yield_to_later_stages();
            (before, getpriority_process(Some(gettid())).unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(after, (before + super::CONVERTER_NICE).min(19));
        assert!(after > before || before == 19);
        assert_eq!(getpriority_process(Some(gettid())).unwrap(), caller);
    }

    #[test]
    fn anomaly_kinds_fold_numbers_and_quotes() {
        assert_eq!(
            anomaly_kind("duplicate message id 69420 in chat -5 (occurrence 2): kept"),
            "duplicate message id N in chat N (occurrence N): kept"
        );
        assert_eq!(
            anomaly_kind("sender id 'user000AX6969' is not a Telegram id"),
            "sender id '…' is not a Telegram id"
        );
        assert_eq!(anomaly_kind("give --tz to read it"), "give --tz to read it");
    }
}
