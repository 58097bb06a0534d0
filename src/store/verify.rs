//! `verify`: re-reads the whole archive and checks every invariant the store
//! keeps, naming each problem. Nothing is repaired; a problem is reported, and
//! the check goes on with the next row.
//!
//! Checked: every source row decodes and every version matches its SHA-256 and
//! its key; every filing has its source and every source's locations have their
//! filing; folder counts match the filings; every quarantined item exists and is
//! filed nowhere; every filing-log record matches its hash and every filing
//! is named by one; every blob an item refers to exists and hashes to its address
//! (pack records and files alike); every pack file is at least as long as the
//! archive says it committed, and no deleted content waits to be destroyed;
//! blob files the archive does not know are listed as leftovers.

use super::Archive;
use super::blob::VerifyingReader;
use super::filings::Logged;
use super::key::{self, ItemKey};
use super::records::*;
use super::tables::*;
use crate::error::Result;
use redb::ReadableTable;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

/// One thing `verify` found wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// What the problem is about: an item id, an items key, a blob, a table.
    pub subject: String,
    pub problem: String,
    /// `error`: the archive is damaged or was tampered with; `warning`: harmless
    /// leftovers (e.g. a blob file staged by an import that died).
    pub severity: &'static str,
}

/// What `verify` looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Checked {
    pub items: u64,
    pub versions: u64,
    pub filings: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    /// Search documents compared with the store (filled in by the index's check).
    pub documents: u64,
    pub tombstones: u64,
}

impl Archive {
    /// Checks the whole archive; calls `report` for each problem. Damage
    /// that stops redb reading the catalogue is one problem, naming the file.
    pub fn verify(&self, report: &mut dyn FnMut(Problem)) -> Result<Checked> {
        use crate::damage::{self, Origin};
        let mut damaged = None;
        let checked = damage::guard(
            || self.verify_all(report),
            &[Origin::Redb],
            |_, what| {
                damaged = Some(what.to_string());
                damage::catalogue_damaged(&self.dir, what)
            },
        );
        match (checked, damaged) {
            (_, Some(what)) => {
                report(Problem {
                    subject: "archive.redb".into(),
                    problem: format!(
                        "damaged: redb cannot read it ({what}); restore the latest backup, then \
                         `tgvault recover --from` this archive's folder"
                    ),
                    severity: "error",
                });
                Ok(Checked::default())
            }
            (checked, None) => checked,
        }
    }

    fn verify_all(&self, report: &mut dyn FnMut(Problem)) -> Result<Checked> {
        let mut checked = Checked::default();
        let pages = match &self.pages_checked {
            Some(Ok(true)) => Some(
                "pages failed redb's checksum check; redb repaired the file (the last commit \
                 may be undone): what follows was checked after the repair"
                    .to_string(),
            ),
            Some(Err(e)) => Some(format!(
                "pages fail redb's checksum check ({e}); restore the latest backup, then \
                 `tgvault recover --from` this archive's folder"
            )),
            _ => None,
        };
        if let Some(problem) = pages {
            report(Problem {
                subject: "archive.redb".into(),
                problem,
                severity: "error",
            });
        }
        let err = |subject: String, problem: String| Problem {
            subject,
            problem,
            severity: "error",
        };
        let txn = self.db.begin_read()?;
        // Sources: versions, hashes; collect what the other checks need.
        let mut locations: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut unfiled: BTreeSet<Vec<u8>> = BTreeSet::new();
        // Blob -> how many versions use it, and the first item seen using it.
        let mut blob_uses: BTreeMap<[u8; 32], (u64, String)> = BTreeMap::new();
        let mut known_items: BTreeSet<Vec<u8>> = BTreeSet::new();
        // Every pack record a row points at, checked whole once each.
        let mut records: BTreeSet<super::pack::PackRef> = BTreeSet::new();
        let sources = txn.open_table(SOURCES)?;
        let names = txn.open_table(NAMES)?;
        for entry in sources.iter()? {
            let (k, v) = match entry {
                Ok(e) => e,
                Err(e) => {
                    report(err("table sources".into(), format!("unreadable: {e}")));
                    break;
                }
            };
            checked.items += 1;
            let idb = k.value().to_vec();
            let id = match key::decode_item_id(&idb) {
                Ok(id) => id,
                Err(e) => {
                    report(err(
                        format!("sources key {}", hex::encode(&idb)),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            known_items.insert(idb.clone());
            let row = match self.read_row(&names, v.value()) {
                Ok(r) => r,
                Err(e) => {
                    report(err(id.to_string(), e.to_string()));
                    continue;
                }
            };
            if row.rec.versions.is_empty() {
                report(err(id.to_string(), "has no version".into()));
            }
            records.extend(row.rec.versions.iter().map(|v| v.at));
            for i in 0..row.rec.versions.len() {
                checked.versions += 1;
                match row.version(&id, i, &mut |v| self.packs.read_version(&v.at, &v.content)) {
                    Ok(item) => {
                        if item.id != id {
                            report(err(
                                id.to_string(),
                                format!("version {} holds item {}", i + 1, item.id),
                            ));
                        }
                        for sha in item.blobs_used() {
                            blob_uses
                                .entry(sha)
                                .or_insert_with(|| (0, id.to_string()))
                                .0 += 1;
                        }
                    }
                    Err(e) => report(err(id.to_string(), format!("version {}: {e}", i + 1))),
                }
            }
            if row.rec.locations.is_empty() {
                unfiled.insert(idb.clone());
            }
            for (m, f) in &row.rec.locations {
                locations.insert(
                    ItemKey {
                        mailbox: m.clone(),
                        folder: f.clone(),
                        item: id,
                    }
                    .encode(),
                );
            }
        }
        let logged = self.check_filing_logs(&txn, &mut records, report)?;
        self.check_records(&txn, records, report)?;
        // Filings against source locations and the filing log, and folder counts.
        let mut counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        let items = txn.open_table(ITEMS)?;
        for entry in items.iter()? {
            let (k, v) = match entry {
                Ok(e) => e,
                Err(e) => {
                    report(err("table items".into(), format!("unreadable: {e}")));
                    break;
                }
            };
            checked.filings += 1;
            let key = match self.read_filing_key(&names, k.value()) {
                Ok(key) => key,
                Err(e) => {
                    report(err(
                        format!("items key {}", hex::encode(k.value())),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            let kb = key.encode();
            let subject = format!("{} / {} / {}", key.mailbox, key.folder, key.item);
            if let Err(e) = super::codec::decode::<Filing>(v.value()) {
                report(err(subject.clone(), e.to_string()));
            }
            if !logged.contains(&key) {
                report(err(
                    subject.clone(),
                    "is filed, but no filing log in the packs names it (`recover` could not place it)".into(),
                ));
            }
            if !locations.remove(&kb) {
                report(err(
                    subject,
                    "is filed, but its source does not list this location".into(),
                ));
            }
            *counts
                .entry(key::folder_key(&key.mailbox, &key.folder))
                .or_insert(0) += 1;
        }
        for kb in locations {
            let subject = ItemKey::decode(&kb).map_or_else(
                |_| hex::encode(&kb),
                |k| format!("{} / {} / {}", k.mailbox, k.folder, k.item),
            );
            report(err(
                subject,
                "its source lists this location, but no filing exists".into(),
            ));
        }
        let folders = txn.open_table(FOLDERS)?;
        for entry in folders.iter()? {
            let (k, v) = entry?;
            let (m, f) = key::decode_folder_key(k.value())?;
            let stats: FolderStats = super::codec::decode(v.value())?;
            let actual = counts.remove(k.value()).unwrap_or(0);
            if stats.items != actual {
                report(err(
                    format!("folder {m} / {f}"),
                    format!("counts {} items, holds {actual}", stats.items),
                ));
            }
        }
        for (k, n) in counts {
            let (m, f) = key::decode_folder_key(&k)?;
            report(err(
                format!("folder {m} / {f}"),
                format!("holds {n} items but has no count"),
            ));
        }
        // Quarantine: known, and filed nowhere.
        let quarantine = txn.open_table(QUARANTINE)?;
        for entry in quarantine.iter()? {
            let (k, _) = entry?;
            let id = key::decode_item_id(k.value())?;
            if !known_items.contains(k.value()) {
                report(err(
                    id.to_string(),
                    "is quarantined but has no source row".into(),
                ));
            } else if !unfiled.contains(k.value()) {
                report(err(
                    id.to_string(),
                    "is quarantined and filed at once".into(),
                ));
            }
        }
        // Every item filed nowhere is in the quarantine.
        for idb in &unfiled {
            if quarantine.get(idb.as_slice())?.is_none() {
                let id = key::decode_item_id(idb)?;
                report(err(
                    id.to_string(),
                    "is filed nowhere and not quarantined".into(),
                ));
            }
        }
        // Tombstones: each authorised by a retention run, its copy gone.
        let tombstones = txn.open_table(TOMBSTONES)?;
        let runs = txn.open_table(RUNS)?;
        for entry in tombstones.iter()? {
            let (k, v) = entry?;
            let subject = ItemKey::decode(k.value())
                .map(|key| format!("{} {} / {}", key.item, key.mailbox, key.folder))
                .unwrap_or_else(|_| hex::encode(k.value()));
            let t: Tombstone = match super::codec::decode(v.value()) {
                Ok(t) => t,
                Err(e) => {
                    report(err(subject, format!("tombstone cannot be read: {e}")));
                    continue;
                }
            };
            checked.tombstones += 1;
            let authorised = match runs.get(t.run)? {
                Some(r) => super::codec::decode::<RunRecord>(r.value())
                    .map(|r| r.kind == "retention")
                    .unwrap_or(false),
                None => false,
            };
            if !authorised {
                report(err(
                    subject.clone(),
                    format!(
                        "tombstone names run {}, which is not a retention run",
                        t.run
                    ),
                ));
            }
            // In this snapshot's `items`, not another read transaction's.
            let filed = match ItemKey::decode(k.value()) {
                Ok(key) => match self.filing_key_of(&names, &key)? {
                    Some(fk) => items.get(fk.as_slice())?.is_some(),
                    None => false,
                },
                Err(_) => false,
            };
            if filed {
                report(err(subject, "has a tombstone but is still filed".into()));
            }
        }
        // Blobs: every reference resolves, every blob hashes to its address,
        // and its count of uses is the number of versions that use it.
        let mut files_known: BTreeSet<[u8; 32]> = BTreeSet::new();
        let metas = txn.open_table(BLOBS)?;
        for entry in metas.iter()? {
            let (k, v) = entry?;
            let Ok(sha) = <[u8; 32]>::try_from(k.value()) else {
                report(err(
                    format!("blobs key {}", hex::encode(k.value())),
                    "is not a SHA-256".into(),
                ));
                continue;
            };
            match super::codec::decode::<BlobMeta>(v.value()) {
                Ok(meta) => self.check_blob(
                    sha,
                    &meta,
                    &mut blob_uses,
                    &mut files_known,
                    &mut checked,
                    report,
                ),
                Err(e) => report(err(format!("blob {}", hex::encode(sha)), e.to_string())),
            }
        }
        // The log is short (folded every 65,536 rows): its hashes are kept
        // to find one logged twice.
        let mut logged: BTreeSet<[u8; 32]> = BTreeSet::new();
        let log = txn.open_table(BLOB_LOG)?;
        for entry in log.iter()? {
            let (k, v) = entry?;
            match super::codec::decode::<LoggedBlob>(v.value()) {
                Ok(l) => {
                    if !logged.insert(l.sha) || metas.get(l.sha.as_slice())?.is_some() {
                        report(err(
                            format!("blob {}", hex::encode(l.sha)),
                            format!("has a second row, blob_log row {}", k.value()),
                        ));
                        continue;
                    }
                    self.check_blob(
                        l.sha,
                        &l.meta,
                        &mut blob_uses,
                        &mut files_known,
                        &mut checked,
                        report,
                    );
                }
                Err(e) => report(err(format!("blob_log row {}", k.value()), e.to_string())),
            }
        }
        for (sha, (_, item)) in blob_uses {
            report(err(
                format!("blob {}", hex::encode(sha)),
                format!("is used by {item} but missing"),
            ));
        }
        // Packs: every committed byte is on disk; deleted content is destroyed.
        let packs = txn.open_table(PACKS)?;
        for entry in packs.iter()? {
            let (k, v) = entry?;
            let (pack, len) = (k.value(), v.value());
            let path = self.packs.path_of(pack);
            match self.packs.file_len(pack) {
                None if len > 0 => report(err(
                    path.display().to_string(),
                    format!("is missing; the archive committed {len} bytes of it"),
                )),
                Some(have) if have < len => report(err(
                    path.display().to_string(),
                    format!("holds {have} bytes; the archive committed {len}"),
                )),
                _ => {}
            }
        }
        let scrub = txn.open_table(SCRUB)?;
        for entry in scrub.iter()? {
            let (k, v) = entry?;
            let subject = super::pack::PackRef::from_scrub_key(k.value(), v.value())
                .map(|r| r.to_string())
                .unwrap_or_else(|_| hex::encode(k.value()));
            report(err(
                subject,
                "content retention deleted is not destroyed yet (the next open retries)".into(),
            ));
        }
        // The audit trail's chain.
        for (seq, what) in self.check_audit_chain()? {
            report(err(format!("audit entry {seq}"), what));
        }
        // Blob files nobody refers to: leftovers of an import that died.
        let root = self.dir.join("blobs/sha256");
        if let Ok(dirs) = std::fs::read_dir(&root) {
            for d in dirs.flatten() {
                for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    let known = super::blob::BlobDir::parse_name(&name)
                        .is_some_and(|(sha, _)| files_known.contains(&sha));
                    if !known {
                        report(Problem {
                            subject: f.path().display().to_string(),
                            problem: "a blob file the archive does not refer to (left by an interrupted import?)".into(),
                            severity: "warning",
                        });
                    }
                }
            }
        }
        for (path, mode) in exposed(&self.dir) {
            report(Problem {
                subject: path.display().to_string(),
                problem: format!(
                    "mode {mode:04o}: {} can {} it (the archive is for its owner alone: chmod go-rwx)",
                    if mode & 0o007 != 0 {
                        "any user"
                    } else {
                        "the group"
                    },
                    match (mode & 0o044 != 0, mode & 0o022 != 0) {
                        (true, true) => "read and change",
                        (false, true) => "change",
                        _ => "read",
                    }
                ),
                severity: "warning",
            });
        }
        Ok(checked)
    }
}

impl Archive {
    /// Checks each pack record in `records` (the versions' and the filing
    /// logs'), and those of the blobs, whole: bytes a read passes over because
    /// they leave the content as it was (a hash prefix in a header, a bit
    /// zstd ignores) are named too.
    fn check_records(
        &self,
        txn: &redb::ReadTransaction,
        mut records: BTreeSet<super::pack::PackRef>,
        report: &mut dyn FnMut(Problem),
    ) -> Result<()> {
        for e in txn.open_table(BLOBS)?.iter()? {
            if let Ok(BlobMeta {
                place: BlobPlace::Pack(at),
                ..
            }) = super::codec::decode(e?.1.value())
            {
                records.insert(at);
            }
        }
        for e in txn.open_table(BLOB_LOG)?.iter()? {
            if let Ok(LoggedBlob {
                meta:
                    BlobMeta {
                        place: BlobPlace::Pack(at),
                        ..
                    },
                ..
            }) = super::codec::decode(e?.1.value())
            {
                records.insert(at);
            }
        }
        for r in records {
            if let Some(why) = self.packs.check_record(&r)? {
                report(Problem {
                    subject: format!("packs/{}", super::pack::file_name(r.pack)),
                    problem: format!(
                        "the record at bytes {}..{}: {why}",
                        r.offset,
                        r.offset + r.len
                    ),
                    severity: "error",
                });
            }
        }
        Ok(())
    }

    /// Reads every filing-log record `filings` lists, checking its hash, and
    /// returns the copies they name; adds each record to `records`.
    fn check_filing_logs(
        &self,
        txn: &redb::ReadTransaction,
        records: &mut BTreeSet<super::pack::PackRef>,
        report: &mut dyn FnMut(Problem),
    ) -> Result<Logged> {
        let mut logged = Logged::default();
        self.each_filing_log(txn, |_, at, log| {
            records.extend(at);
            if let Err(e) = log.and_then(|log| logged.add(&log)) {
                report(Problem {
                    subject: at.map_or("table filings".into(), |at| format!("filing log at {at}")),
                    problem: e.to_string(),
                    severity: "error",
                });
            }
            Ok(())
        })?;
        Ok(logged)
    }
}

/// Every file and folder under `dir` (itself included) that the group or
/// other users can read, write or enter, with its permission bits. What lies
/// in a folder they cannot enter is out of their reach and not listed.
fn exposed(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        // Meant: a server's socket its group may reach, and the way to it
        // (a folder the group may pass through but not list).
        let socket = meta.file_type().is_socket() && mode & 0o007 == 0;
        let passage = meta.is_dir() && mode & 0o077 == 0o010;
        if mode & 0o077 != 0 && !meta.file_type().is_symlink() && !socket && !passage {
            out.push((p.clone(), mode));
        }
        if meta.is_dir() && mode & 0o011 != 0 {
            for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

struct CountingReader<R>(R, u64);

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}

impl Archive {
    /// Checks one blob row: its count of uses against the versions that use
    /// it (taken out of `uses`), and its bytes against its hash and size.
    fn check_blob(
        &self,
        sha: [u8; 32],
        meta: &BlobMeta,
        uses: &mut BTreeMap<[u8; 32], (u64, String)>,
        files_known: &mut BTreeSet<[u8; 32]>,
        checked: &mut Checked,
        report: &mut dyn FnMut(Problem),
    ) {
        let subject = format!("blob {}", hex::encode(sha));
        let mut say = |severity: &'static str, problem: String| {
            report(Problem {
                subject: subject.clone(),
                problem,
                severity,
            })
        };
        checked.blobs += 1;
        let used = uses.remove(&sha).map(|(n, _)| n).unwrap_or(0);
        if used != meta.refs {
            say(
                "error",
                format!(
                    "records {} uses, but {used} item versions use it",
                    meta.refs
                ),
            );
        } else if used == 0 {
            // Kept by an earlier format, which stored blobs no new version
            // used; retention never frees it.
            say("warning", "no item version uses it".into());
        }
        let reader: Box<dyn Read> = match &meta.place {
            BlobPlace::Pack(at) => match self.packs.read(at) {
                Ok(b) => Box::new(std::io::Cursor::new(b)),
                Err(e) => return say("error", e.to_string()),
            },
            BlobPlace::File => {
                files_known.insert(sha);
                match self.blobs.file(&sha).and_then(|f| f.open()) {
                    Ok(r) => r,
                    Err(e) => return say("error", e.to_string()),
                }
            }
        };
        let mut counter = CountingReader(VerifyingReader::new(reader, sha), 0);
        match std::io::copy(&mut counter, &mut std::io::sink()) {
            Ok(n) if n == meta.size => {}
            Ok(n) => say("error", format!("holds {n} bytes, recorded {}", meta.size)),
            Err(e) => say("error", e.to_string()),
        }
        checked.blob_bytes += counter.1;
    }
}
