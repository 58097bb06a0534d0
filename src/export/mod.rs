//! eDiscovery export: every copy a KQL query matches, as RFC 5322 messages
//! (one `.eml` per copy, or one `.mbox` per mailbox folder), with the reports
//! Purview puts beside them (`Results.csv`, `Export Summary.csv`,
//! `Errors and Warnings.csv`).
//!
//! Packages are deterministic: the same archive and query give the same bytes
//! (no clock, no randomness, a fixed order). Nothing is written outside the
//! output directory: every path component is sanitised here.

pub mod eml;
mod loadfile;
pub mod neutral;
pub mod status;
mod transcript;

use crate::error::{Error, Result};
use crate::import::RunContext;
use crate::index::Index;
use crate::index::search::Location;
use crate::model::Item;
use crate::model::{ItemId, Part};
use crate::query::Query;
use crate::store::Archive;
use crate::store::audit::Event;
use crate::store::records::RunStatus;
use sha2::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Eml,
    Mbox,
}

pub struct ExportOptions {
    pub query_text: String,
    pub query: Query,
    pub out: PathBuf,
    pub mailboxes: Vec<String>,
    pub format: Format,
    /// Only copies this case's holds cover.
    pub case: Option<String>,
    /// Export each item once; its other copies are listed as duplicates.
    pub dedup: bool,
    /// Also write one HTML transcript per chat, and the attachment files.
    pub transcripts: bool,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ExportSummary {
    pub items: u64,
    /// Copies not written because another copy of the item was (`--dedup`).
    pub duplicates: u64,
    pub bytes: u64,
    pub errors: u64,
    pub transcripts: u64,
    pub out: String,
}

/// A path component that cannot leave its directory or name a device:
/// ASCII letters, digits, `._@-` and inner spaces kept, anything else `_`;
/// no leading dot or space, no trailing dot or space (Windows drops them);
/// not a reserved Windows name; at most 100 bytes. Names stay distinct:
/// whenever anything was changed, `~` and 12 hex digits of the original's
/// SHA-256 are appended (`~` is never kept, so a changed name cannot equal
/// one that was kept as it is): `a/b@x` and `a_b@x` get two folders.
/// What the message of one copy is written from: every version of the
/// item, the deletion recorded against it, its current content's hash and
/// the addresses it resolved to.
pub struct Copy {
    pub versions: Vec<(Option<i64>, Item)>,
    pub deletion: Option<Item>,
    sha256: [u8; 32],
    addresses: Vec<(String, String)>,
}

impl Copy {
    pub fn load(archive: &Archive, id: &ItemId) -> Result<Copy> {
        Copy::load_upto(archive, id, usize::MAX)
    }

    /// The copy as it was when the item had its first `n` versions.
    pub fn load_upto(archive: &Archive, id: &ItemId, n: usize) -> Result<Copy> {
        let mut src = archive
            .source(id)?
            .ok_or_else(|| Error::NotFound(format!("item {id}")))?;
        src.versions.truncate(n);
        let mut versions = Vec::new();
        for (i, v) in src.versions.iter().enumerate() {
            versions.push((v.edited, archive.version(id, i)?));
        }
        if versions.is_empty() {
            return Err(Error::Corrupt(format!("{id} has no version")));
        }
        let deletion_id = ItemId {
            part: Part::Deletion,
            ..*id
        };
        let deletion = if id.part == Part::Item {
            archive.current(&deletion_id)?
        } else {
            None
        };
        Ok(Copy {
            versions,
            deletion,
            sha256: src.versions.last().map(|v| v.content).unwrap_or_default(),
            addresses: src.addresses,
        })
    }

    /// The current version.
    pub fn item(&self) -> &Item {
        &self.versions.last().expect("loaded with a version").1
    }

    pub fn context<'a>(&'a self, mailbox: &'a str) -> eml::Context<'a> {
        eml::Context {
            mailbox,
            versions: &self.versions,
            deletion: self.deletion.as_ref(),
            sha256: self.sha256,
            people: eml::People {
                addresses: &self.addresses,
            },
        }
    }

    /// The RFC 5322 message `export` writes for this copy in `mailbox`.
    pub fn message(&self, archive: &Archive, mailbox: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut open = |sha: &[u8; 32]| archive.open_blob(sha);
        eml::write(&mut out, self.item(), &self.context(mailbox), &mut open)?;
        Ok(out)
    }
}

pub fn safe_component(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(['.', ' ']) {
        out.replace_range(..1, "_");
    }
    if out.ends_with(['.', ' ']) {
        out.pop();
        out.push('_');
    }
    let stem = out.split('.').next().unwrap_or("").to_ascii_uppercase();
    let reserved = ["CON", "PRN", "AUX", "NUL"].contains(&stem.as_str())
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved || out.is_empty() {
        out.insert(0, '_');
    }
    if out != s || out.len() > 100 {
        // All ASCII by now: any byte is a char boundary.
        out.truncate(87);
        out.push('~');
        out.push_str(&hex::encode(&crate::model::sha256(s.as_bytes())[..6]));
    }
    out
}

/// An item's file name: its id with `:` as `_` (ids hold digits, `-`,
/// letters and `:` only, so the name is unique to the id).
fn item_file(id: &ItemId, ext: &str) -> String {
    format!("{}.{ext}", id.to_string().replace(':', "_"))
}

/// Counts and hashes what passes through to the file.
struct Hashing<W: Write> {
    inner: W,
    hash: sha2::Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

pub fn export(
    archive: &Archive,
    index: &Index,
    opts: &ExportOptions,
    ctx: &RunContext,
) -> Result<ExportSummary> {
    let out = &opts.out;
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(io(out))?;
        if entries.next().is_some() {
            return Err(Error::Usage(format!(
                "{}: the export directory is not empty",
                out.display()
            )));
        }
    }
    let hits = matching_copies(archive, index, opts, ctx)?;
    let mut params = vec![
        ("query".to_string(), opts.query_text.clone()),
        ("out".to_string(), out.display().to_string()),
    ];
    params.extend(
        opts.mailboxes
            .iter()
            .map(|m| ("mailbox".to_string(), m.clone())),
    );
    if let Some(c) = &opts.case {
        params.push(("case".to_string(), c.clone()));
    }
    // On the trail before the package's first byte. An archive opened
    // read-only cannot take a run record: the start goes where its reads
    // are recorded, and without such a place nothing is disclosed.
    let started = Event {
        time: (ctx.clock)(),
        actor: ctx.actor.clone(),
        action: "export started".into(),
        params: params.clone(),
        counts: vec![("copies".into(), hits.len() as u64)],
        outcome: "started".into(),
    };
    let run = if archive.is_read_only() {
        if let crate::store::audit::Recorded::Nowhere(why) = archive.audit_read(started)? {
            return Err(Error::ReadOnly(format!(
                "the export cannot be recorded anywhere ({why}); name a read log"
            )));
        }
        0
    } else {
        archive.write(|tx| {
            let run = tx.start_run("export", &ctx.actor, ctx.args.clone(), (ctx.clock)())?;
            let mut started = started;
            started.counts.insert(0, ("run".into(), run));
            tx.audit(started)?;
            Ok(run)
        })?
    };
    let written = status::write(out, &status::Status::InProgress { run })
        .and_then(|_| write_package(archive, opts, hits));
    let (status, outcome, counts) = match &written {
        Ok(summary) => (
            if summary.errors == 0 {
                RunStatus::Completed
            } else {
                RunStatus::CompletedWithErrors
            },
            if summary.errors == 0 {
                "ok".to_string()
            } else {
                format!("{} error(s)", summary.errors)
            },
            vec![
                ("run".into(), run),
                ("items".into(), summary.items),
                ("duplicates".into(), summary.duplicates),
                ("bytes".into(), summary.bytes),
                ("errors".into(), summary.errors),
            ],
        ),
        Err(e) => (
            RunStatus::Failed,
            format!("failed: {e}"),
            vec![("run".into(), run)],
        ),
    };
    // The package says whether it is whole. The new status is written and
    // synced first, the trail takes the outcome, then the status is put in
    // force: a package never says complete before the trail does.
    let staged = match &written {
        Ok(summary) => status::stage(out, &status::Status::Complete { summary }),
        Err(e) => status::stage(
            out,
            &status::Status::Failed {
                run,
                error: e.to_string(),
            },
        ),
    };
    let (status, outcome) = match (&written, &staged) {
        (Ok(_), Err(e)) => (RunStatus::Failed, format!("failed: {e}")),
        _ => (status, outcome),
    };
    let finished = Event {
        time: (ctx.clock)(),
        actor: ctx.actor.clone(),
        action: "export".into(),
        params: params.clone(),
        counts: counts.clone(),
        outcome: outcome.clone(),
    };
    if archive.is_read_only() {
        archive.audit_read(finished)?;
    } else {
        archive.write(|tx| {
            let mut rec = tx.run(run)?;
            rec.finished = Some((ctx.clock)());
            rec.status = status;
            tx.put_run(&rec)?;
            tx.audit(finished)?;
            Ok(())
        })?;
    }
    let summary = written?;
    staged?.commit()?;
    Ok(summary)
}

/// The copies the export writes, in the package's order: the query's
/// matches, with `--case` those the case's holds keep.
fn matching_copies(
    archive: &Archive,
    index: &Index,
    opts: &ExportOptions,
    ctx: &RunContext,
) -> Result<Vec<(Location, ItemId)>> {
    let mut hits: Vec<(Location, ItemId)> = Vec::new();
    index.for_each_match(archive, &opts.query, &opts.mailboxes, |id, loc| {
        hits.push((loc, id));
        Ok(())
    })?;
    hits.sort();
    if let Some(case) = &opts.case {
        // What the case's holds keep, decided as retention decides it.
        let snap = crate::retention::Snapshot::case(archive, index, case)?;
        let mut kept = Vec::with_capacity(hits.len());
        for (loc, id) in hits {
            let Location::Filed { mailbox, folder } = &loc else {
                continue;
            };
            let key = crate::store::key::ItemKey {
                mailbox: mailbox.clone(),
                folder: folder.clone(),
                item: id,
            };
            let date = archive.filing(&key)?.and_then(|f| f.date);
            if snap.holds_copy(&key, date, (ctx.clock)()) {
                kept.push((loc, id));
            }
        }
        hits = kept;
    }
    Ok(hits)
}

/// Writes the package's items and reports below `opts.out`.
fn write_package(
    archive: &Archive,
    opts: &ExportOptions,
    hits: Vec<(Location, ItemId)>,
) -> Result<ExportSummary> {
    let out = &opts.out;
    std::fs::create_dir_all(out.join("Items")).map_err(io(out))?;
    // With --dedup: the first copy of each item (in mailbox order) is
    // exported; the others point at it.
    let mut first_copy: std::collections::HashMap<ItemId, String> =
        std::collections::HashMap::new();

    let mut results = csv::Writer::from_path(out.join("Results.csv")).map_err(csv_err)?;
    results
        .write_record([
            "Item Identity",
            "Location",
            "Folder Path",
            "Subject",
            "Sender",
            "Recipients",
            "Sent",
            "Size",
            "SHA-256",
            "Exported Path",
            "Duplicate to Item",
        ])
        .map_err(csv_err)?;
    let mut errors =
        csv::Writer::from_path(out.join("Errors and Warnings.csv")).map_err(csv_err)?;
    errors
        .write_record(["Item Identity", "Location", "Error"])
        .map_err(csv_err)?;

    let mut summary = ExportSummary {
        out: out.display().to_string(),
        ..ExportSummary::default()
    };
    let mut mbox: Option<(PathBuf, std::io::BufWriter<std::fs::File>)> = None;
    let mut docs: Vec<loadfile::Doc> = Vec::new();
    let mut entries: Vec<transcript::Entry> = Vec::new();
    let mut transcribed: std::collections::HashSet<ItemId> = std::collections::HashSet::new();
    for (loc, id) in &hits {
        let (mailbox, folder) = match loc {
            Location::Filed { mailbox, folder } => (mailbox.clone(), folder.clone()),
            Location::Quarantine => ("quarantine".to_string(), "quarantine".to_string()),
        };
        if opts.dedup {
            if let Some(original) = first_copy.get(id) {
                summary.duplicates += 1;
                results
                    .write_record(
                        [
                            id.to_string(),
                            mailbox.clone(),
                            folder.clone(),
                            String::new(),
                            String::new(),
                            String::new(),
                            String::new(),
                            String::new(),
                            String::new(),
                            String::new(),
                            original.clone(),
                        ]
                        .iter()
                        .map(|c| neutral::cell(c).into_owned()),
                    )
                    .map_err(csv_err)?;
                continue;
            }
            first_copy.insert(*id, format!("{mailbox}:{id}"));
        }
        let rel_dir = Path::new("Items").join(safe_component(&mailbox));
        std::fs::create_dir_all(out.join(&rel_dir)).map_err(io(out))?;
        let done = (|| -> Result<Written> {
            let copy = Copy::load(archive, id)?;
            let item = copy.item();
            let cx = copy.context(&mailbox);
            let mut open = |sha: &[u8; 32]| archive.open_blob(sha);
            let (rel, bytes, sha): (PathBuf, u64, [u8; 32]) = match opts.format {
                Format::Eml => {
                    let rel = rel_dir
                        .join(safe_component(&folder))
                        .join(item_file(id, "eml"));
                    let path = out.join(&rel);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(io(parent))?;
                    }
                    let f = std::fs::File::create(&path).map_err(io(&path))?;
                    let mut w = Hashing {
                        inner: std::io::BufWriter::new(f),
                        hash: sha2::Sha256::new(),
                        bytes: 0,
                    };
                    eml::write(&mut w, item, &cx, &mut open)?;
                    w.flush().map_err(io(&path))?;
                    let (bytes, sha) = (w.bytes, w.hash.finalize().into());
                    (rel, bytes, sha)
                }
                Format::Mbox => {
                    let rel = rel_dir.join(format!("{}.mbox", safe_component(&folder)));
                    let path = out.join(&rel);
                    if mbox.as_ref().is_none_or(|(p, _)| *p != path) {
                        if let Some((p, mut w)) = mbox.take() {
                            w.flush().map_err(io(&p))?;
                        }
                        let f = std::fs::File::create(&path).map_err(io(&path))?;
                        mbox = Some((path.clone(), std::io::BufWriter::new(f)));
                    }
                    let (_, file) = mbox.as_mut().expect("just opened");
                    let date = crate::time::asctime(item.date.unwrap_or(0));
                    file.write_all(format!("From tgvault@telegram.invalid {date}\n").as_bytes())
                        .map_err(io(&path))?;
                    let mut w = Hashing {
                        inner: &mut *file,
                        hash: sha2::Sha256::new(),
                        bytes: 0,
                    };
                    eml::write(&mut w, item, &cx, &mut open)?;
                    let (bytes, hash) = (w.bytes, w.hash.finalize().into());
                    file.write_all(b"\n").map_err(io(&path))?;
                    (rel, bytes, hash)
                }
            };
            Ok(Written {
                rel: rel.display().to_string(),
                bytes,
                sha,
                deleted: copy.deletion.is_some(),
                versions: copy.versions,
            })
        })();
        match done {
            Ok(Written {
                rel,
                bytes,
                sha,
                deleted,
                mut versions,
            }) => {
                let (_, item) = versions.pop().expect("a written item has a version");
                if opts.transcripts && transcribed.insert(*id) {
                    entries.push(transcript_entry(
                        archive,
                        out,
                        item.clone(),
                        &versions,
                        deleted,
                    )?);
                }
                summary.items += 1;
                summary.bytes += bytes;
                let sender = item.sender.as_ref().map(|p| p.label()).unwrap_or_default();
                let recipients: Vec<String> = item
                    .participants
                    .iter()
                    .filter(|p| !item.sender.as_ref().is_some_and(|s| s.same_as(p)))
                    .map(|p| p.label())
                    .collect();
                results
                    .write_record(
                        [
                            id.to_string(),
                            mailbox.clone(),
                            folder.clone(),
                            eml::subject(&item),
                            sender.clone(),
                            recipients.join("; "),
                            item.date.map(eml::rfc2822_date).unwrap_or_default(),
                            bytes.to_string(),
                            hex::encode(sha),
                            rel.clone(),
                            String::new(),
                        ]
                        .iter()
                        .map(|c| neutral::cell(c).into_owned()),
                    )
                    .map_err(csv_err)?;
                docs.push(loadfile::Doc {
                    item: id.to_string(),
                    mailbox: mailbox.clone(),
                    folder: folder.clone(),
                    subject: eml::subject(&item),
                    from: sender,
                    to: recipients.join("; "),
                    sent: item.date,
                    path: rel,
                    size: bytes,
                    sha256: hex::encode(sha),
                    attachments: item
                        .attachments
                        .iter()
                        .filter_map(|a| {
                            a.content.map(|c| loadfile::Attached {
                                name: a.file_name.clone().unwrap_or_default(),
                                mime: a.mime_type.clone().unwrap_or_default(),
                                size: c.size,
                                sha256: hex::encode(c.sha256),
                            })
                        })
                        .collect(),
                });
            }
            Err(e) => {
                summary.errors += 1;
                errors
                    .write_record(
                        [id.to_string(), mailbox.clone(), e.to_string()]
                            .iter()
                            .map(|c| neutral::cell(c).into_owned()),
                    )
                    .map_err(csv_err)?;
            }
        }
    }
    if let Some((p, mut w)) = mbox.take() {
        w.flush().map_err(io(&p))?;
    }
    results.flush().map_err(io(out))?;
    loadfile::write_manifest(&out.join("Manifest.xml"), &docs, &opts.query_text)?;
    if opts.transcripts {
        summary.transcripts = transcript::write_all(out, entries)?;
    }
    loadfile::write_dat(&out.join("export.dat"), &docs)?;
    errors.flush().map_err(io(out))?;
    let mut s = csv::Writer::from_path(out.join("Export Summary.csv")).map_err(csv_err)?;
    s.write_record([
        "Query",
        "Case",
        "Format",
        "Items",
        "Duplicates",
        "Bytes",
        "Errors",
    ])
    .map_err(csv_err)?;
    s.write_record([
        opts.query_text.clone(),
        opts.case.clone().unwrap_or_default(),
        match opts.format {
            Format::Eml => "eml".into(),
            Format::Mbox => "mbox".into(),
        },
        summary.items.to_string(),
        summary.duplicates.to_string(),
        summary.bytes.to_string(),
        summary.errors.to_string(),
    ])
    .map_err(csv_err)?;
    s.flush().map_err(io(out))?;
    Ok(summary)
}

/// One copy written into the package.
struct Written {
    rel: String,
    bytes: u64,
    sha: [u8; 32],
    /// Every version, oldest first (the last is what was exported).
    versions: Vec<(Option<i64>, crate::model::Item)>,
    deleted: bool,
}

/// What a transcript shows of an exported item; writes its attachment files
/// (once per content) under `Attachments/`.
fn transcript_entry(
    archive: &Archive,
    out: &Path,
    item: crate::model::Item,
    earlier: &[(Option<i64>, crate::model::Item)],
    deleted: bool,
) -> Result<transcript::Entry> {
    let mut files = Vec::new();
    for a in &item.attachments {
        let Some(c) = a.content else { continue };
        let name = a.display_name();
        let rel = format!(
            "Attachments/{}/{}",
            hex::encode(c.sha256),
            safe_component(&name)
        );
        let path = out.join(&rel);
        if !path.exists() {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let mut r = archive.open_blob(&c.sha256)?;
            let mut f = std::fs::File::create(&path).map_err(io(&path))?;
            std::io::copy(&mut r, &mut f).map_err(io(&path))?;
        }
        files.push((name, rel));
    }
    Ok(transcript::Entry {
        earlier: earlier.iter().map(|(_, v)| v.summary()).collect(),
        item,
        deleted,
        files,
    })
}

fn csv_err(e: csv::Error) -> Error {
    Error::Internal(format!("writing a report: {e}"))
}

#[cfg(test)]
mod tests {
    use super::safe_component;

    #[test]
    fn hostile_names_stay_inside() {
        for (name, kept) in [
            ("../../x", None),
            ("a/b\\c\0d", None),
            ("CON", None),
            ("com1.txt", None),
            ("", None),
            (".hidden", None),
            ("..", None),
            ("trailing.", None),
            (" lead", None),
            ("alice@corp.example", Some("alice@corp.example")),
            ("Telegram Archiver", Some("Telegram Archiver")),
        ] {
            let safe = safe_component(name);
            assert!(!safe.contains(['/', '\\', '\0']), "{name:?}: {safe}");
            assert!(
                !safe.starts_with(['.', ' ']) && !safe.ends_with(['.', ' ']),
                "{safe}"
            );
            assert!(safe.len() <= 100, "{safe}");
            match kept {
                Some(k) => assert_eq!(safe, k),
                None => assert!(safe.contains('~'), "{name:?}: {safe}"),
            }
        }
        assert_eq!(safe_component(&"é".repeat(200)).len(), 100);
    }

    #[test]
    fn sanitised_names_stay_distinct() {
        let names = [
            "a/b@x", "a_b@x", "a'b@x", "a b@x", "a\\b@x", "a\0b@x", "A_b@x", "CON", "_CON", "con",
            ".x", "_x", "x.", "x_",
        ];
        let safe: std::collections::HashSet<String> =
            names.iter().map(|n| safe_component(n)).collect();
        assert_eq!(safe.len(), names.len(), "{safe:?}");
        let long_a = format!("{}a", "x".repeat(150));
        let long_b = format!("{}b", "x".repeat(150));
        assert_ne!(safe_component(&long_a), safe_component(&long_b));
    }
}
