//! The audit trail: an append-only, hash-chained log of what was done to the
//! archive. Each entry's SHA-256 covers the previous entry's hash and its own
//! fields, so changing, removing or reordering any entry breaks the chain at
//! that entry, which `verify` reports.

use super::Tx;
use super::codec;
use super::tables::AUDIT;
use crate::error::{Error, Result};
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What an entry records, before it is chained.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub time: i64,
    pub actor: String,
    /// `import`, `remap`, `verify`, ...
    pub action: String,
    /// The request: arguments and options, as given.
    pub params: Vec<(String, String)>,
    /// What it did, as counts.
    pub counts: Vec<(String, u64)>,
    /// `ok`, or what went wrong.
    pub outcome: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub event: Event,
    #[serde(with = "crate::model::hex32")]
    pub prev: [u8; 32],
    #[serde(with = "crate::model::hex32")]
    pub hash: [u8; 32],
}

/// The chain hash of an entry: SHA-256 over the previous hash, the sequence
/// number and the encoded event.
pub fn chain_hash(prev: &[u8; 32], seq: u64, event: &Event) -> [u8; 32] {
    let mut bytes = prev.to_vec();
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend_from_slice(&codec::encode(event));
    crate::model::sha256(&bytes)
}

impl Tx<'_> {
    /// Appends an event to the audit trail, in this transaction: the entry
    /// lands if and only if what it records lands.
    pub fn audit(&mut self, event: Event) -> Result<u64> {
        let (seq, prev) = match self.audit.last()? {
            Some((k, v)) => {
                let last: Entry = codec::decode(v.value())?;
                (k.value() + 1, last.hash)
            }
            None => (1, [0u8; 32]),
        };
        let hash = chain_hash(&prev, seq, &event);
        let entry = Entry {
            seq,
            event,
            prev,
            hash,
        };
        self.audit.insert(seq, codec::encode(&entry).as_slice())?;
        self.journal.push(entry);
        Ok(seq)
    }
}

impl super::Archive {
    /// Appends an event in a transaction of its own.
    pub fn audit(&self, event: Event) -> Result<u64> {
        self.write(|tx| tx.audit(event))
    }

    /// The sequence number of the trail's last entry (0 when it is empty).
    pub fn last_audit_seq(&self) -> Result<u64> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(AUDIT)?.last()?.map_or(0, |(k, _)| k.value()))
    }

    /// Every audit entry from `since` (UTC seconds) on, oldest first.
    pub fn audit_entries(&self, since: Option<i64>) -> Result<Vec<Entry>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(AUDIT)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (_, v) = e?;
            let entry: Entry = codec::decode(v.value())?;
            if since.is_none_or(|s| entry.event.time >= s) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// Walks the chain; returns each break as `(seq, what)`.
    pub fn check_audit_chain(&self) -> Result<Vec<(u64, String)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(AUDIT)?;
        let mut problems = Vec::new();
        let mut prev = [0u8; 32];
        let mut expect_seq = 1u64;
        for e in t.iter()? {
            let (k, v) = e.map_err(Error::from)?;
            let seq = k.value();
            let entry: Entry = match codec::decode(v.value()) {
                Ok(e) => e,
                Err(e) => {
                    problems.push((seq, format!("unreadable: {e}")));
                    expect_seq = seq + 1;
                    continue;
                }
            };
            if seq != expect_seq {
                problems.push((
                    seq,
                    format!("follows entry {}: entries are missing", expect_seq - 1),
                ));
            }
            if entry.seq != seq {
                problems.push((seq, format!("is stored under {seq} but says {}", entry.seq)));
            }
            if entry.prev != prev {
                problems.push((seq, "does not chain to the entry before it".into()));
            }
            if chain_hash(&entry.prev, entry.seq, &entry.event) != entry.hash {
                problems.push((seq, "does not match its hash: it was changed".into()));
            }
            prev = entry.hash;
            expect_seq = seq + 1;
        }
        Ok(problems)
    }
}

/// Where a reading command's entry went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// On the trail, as this entry.
    Trail(u64),
    /// Into the archive's `audit-pending/` directory: the next process that
    /// opens the archive for writing appends it (the archive was held by
    /// another process, or opened read-only on writable storage).
    Pending(PathBuf),
    /// Into the read log outside the archive (read-only storage, a full disk).
    ReadLog(PathBuf),
    /// Nowhere, and why.
    Nowhere(String),
}

/// The directory of entries waiting for a writer.
pub const PENDING_DIR: &str = "audit-pending";
/// `meta` key: the pending files whose entries are on the trail but whose
/// files may not be removed yet (codec `Vec<String>`).
const PENDING_DONE: &str = "audit_pending_appended";

impl super::Archive {
    /// Records a read: on the trail when the archive can be written, else in
    /// the archive's pending directory, else in the read log. Never fails
    /// for want of a place to write: the read goes on, and the caller says
    /// where its record went.
    pub fn audit_read(&self, event: Event) -> Result<Recorded> {
        if !self.is_read_only() {
            match self.audit(event.clone()) {
                Ok(seq) => return Ok(Recorded::Trail(seq)),
                Err(Error::DiskFull { .. }) => {}
                Err(e) => return Err(e),
            }
        } else if !self.is_backup()?
            && let Ok(p) = self.write_pending(&event)
        {
            return Ok(Recorded::Pending(p));
        }
        let Some(log) = self.read_log.clone() else {
            return Ok(Recorded::Nowhere("no read log is set".into()));
        };
        match self.append_read_log(&log, &event) {
            Ok(()) => Ok(Recorded::ReadLog(log)),
            Err(e) => Ok(Recorded::Nowhere(e.to_string())),
        }
    }

    /// Whether this is a backup (which no writer ever opens: its reads go to
    /// the read log).
    fn is_backup(&self) -> Result<bool> {
        let txn = self.db.begin_read()?;
        Ok(txn
            .open_table(super::tables::META)?
            .get(super::backup::MARK)?
            .is_some())
    }

    fn write_pending(&self, event: &Event) -> Result<PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.dir.join(PENDING_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        let name = format!(
            "{:020}-{}-{:016x}.entry",
            event.time.max(0),
            std::process::id(),
            u64::from_be_bytes(
                crate::model::sha256(&codec::encode(event))[..8]
                    .try_into()
                    .expect("8 bytes")
            )
        );
        let tmp = dir.join(format!("{name}.part"));
        let path = dir.join(&name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&codec::encode(event))
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&dir, e))?;
        Ok(path)
    }

    /// One JSON line per read: the archive, the trail entry it follows (so
    /// that the log can be set beside the trail), and the event.
    fn append_read_log(&self, log: &Path, event: &Event) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let txn = self.db.begin_read()?;
        let last: Option<Entry> = match txn.open_table(AUDIT)?.last()? {
            Some((_, v)) => Some(codec::decode(v.value())?),
            None => None,
        };
        let line = serde_json::json!({
            "archive": self.dir.display().to_string(),
            "after_seq": last.as_ref().map_or(0, |e| e.seq),
            "after_hash": last.map(|e| hex::encode(e.hash)),
            "event": event,
        });
        if let Some(parent) = log.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(log)
            .map_err(|e| Error::io(log, e))?;
        writeln!(f, "{line}")
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io(log, e))
    }

    /// Appends the entries waiting in `audit-pending/`, oldest first, in one
    /// transaction that also notes their files; then removes the files.
    pub(super) fn append_pending_audit(&self) -> Result<()> {
        let dir = self.dir.join(PENDING_DIR);
        let done: Vec<String> = {
            let txn = self.db.begin_read()?;
            let meta = txn.open_table(super::tables::META)?;
            match meta.get(PENDING_DONE)? {
                Some(v) => codec::decode(v.value())?,
                None => Vec::new(),
            }
        };
        let mut names: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(d) => d
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".entry"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        names.sort();
        let mut fresh = Vec::new();
        let mut events = Vec::new();
        for n in names.iter().filter(|n| !done.contains(n)) {
            let p = dir.join(n);
            let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
            match codec::decode::<Event>(&bytes) {
                Ok(ev) => {
                    events.push(ev);
                    fresh.push(n.clone());
                }
                // Kept where it is, for a person to look at.
                Err(e) => {
                    tracing::error!(file = %p.display(), error = %e, "unreadable pending audit entry")
                }
            }
        }
        if fresh.is_empty() && done.is_empty() {
            return Ok(());
        }
        let mut appended = done.clone();
        appended.extend(fresh.iter().cloned());
        self.write(|tx| {
            for ev in events {
                tx.audit(ev)?;
            }
            tx.meta
                .insert(PENDING_DONE, codec::encode(&appended).as_slice())?;
            Ok(())
        })?;
        for n in &appended {
            let p = dir.join(n);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        self.write(|tx| {
            tx.meta.remove(PENDING_DONE)?;
            Ok(())
        })?;
        Ok(())
    }
}

/// What `recover` found in a journal and put back on the trail.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Recovered {
    /// The last entry the trail and the journal share (the backup's point).
    pub common_seq: u64,
    /// Entries appended now, each as a `recovered entry` carrying the
    /// original's sequence number and hash.
    pub appended: u64,
    /// Entries that an earlier recover already put back.
    pub already: u64,
    /// Where the journal stopped being trustworthy, if it did.
    pub stopped: Option<String>,
}

impl super::Archive {
    /// Brings the journal up to the trail: cuts a torn last record, and
    /// appends the entries the trail has past the journal's last (a process
    /// that died between its commit and the journal's write). A journal
    /// ahead of the trail (the catalogue came from a backup) is left alone:
    /// `recover` reads it.
    pub(super) fn reconcile_journal(&self) -> Result<()> {
        let path = super::journal::path(&self.dir);
        let j = super::journal::read(&path)?;
        let txn = self.db.begin_read()?;
        let t = txn.open_table(AUDIT)?;
        let after = |seq: u64| -> Result<Vec<Entry>> {
            t.range(seq + 1..)?
                .map(|e| {
                    e.map_err(Error::from)
                        .and_then(|(_, v)| codec::decode(v.value()))
                })
                .collect()
        };
        let last_good = j.entries.last().map_or(0, |e| e.seq);
        if j.stopped.is_some() {
            // A torn write leaves a prefix of the records the trail has
            // past the last good one: cut it and write them whole. Any
            // other unreadable bytes are damage, left for `verify` to name.
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let tail = &bytes[j.good_len as usize..];
            let whole = super::journal::encode(&after(last_good)?)?;
            if tail.len() >= whole.len() || !whole.starts_with(tail) {
                tracing::error!(file = %path.display(), "the audit journal is damaged: `tgvault verify` names where");
                return Ok(());
            }
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            f.set_len(j.good_len)
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
        if !super::journal::chains(&j.entries) {
            tracing::error!(file = %path.display(), "the audit journal is damaged: `tgvault verify` names where");
            return Ok(());
        }
        let Some(last) = j.entries.last() else {
            return super::journal::append(&self.dir, &after(0)?);
        };
        let same_history = match t.get(last.seq)? {
            Some(v) => codec::decode::<Entry>(v.value())?.hash == last.hash,
            None => false,
        };
        if !same_history {
            // A whole journal ahead of the trail, or of another history (the
            // catalogue came back from a backup): kept aside for `recover`,
            // a new one begun.
            let aside = path.with_extension(format!("journal.{}", last.seq));
            std::fs::rename(&path, &aside).map_err(|e| Error::io(&path, e))?;
            tracing::warn!(
                kept = %aside.display(),
                "the audit journal does not match the trail (the catalogue was restored?); kept aside: recovering from that journal puts its later entries back"
            );
            return super::journal::append(&self.dir, &after(0)?);
        }
        super::journal::append(&self.dir, &after(last.seq)?)
    }

    /// Puts back on the trail the entries of the journal at `from` that
    /// follow the last entry the two share, each as a `recovered entry`
    /// (original sequence number, time, actor, action and hash in its
    /// parameters), in the order they chain. `time` and `actor` are the
    /// recovery's own. Stops at the first entry that does not chain.
    pub fn recover_audit(&self, from: &Path, time: i64, actor: &str) -> Result<Recovered> {
        let j = super::journal::read(from)?;
        let trail = self.audit_entries(None)?;
        let mut out = Recovered::default();
        let mut common: Option<&Entry> = None;
        for e in &j.entries {
            match trail.get((e.seq as usize).wrapping_sub(1)) {
                Some(t) if t.hash == e.hash => common = Some(e),
                _ => break,
            }
        }
        let Some(start) = common else {
            return Err(Error::Usage(format!(
                "{}: shares no entry with this archive's trail: not its journal",
                from.display()
            )));
        };
        out.common_seq = start.seq;
        let done: std::collections::HashSet<String> = trail
            .iter()
            .filter(|e| e.event.action == "recovered entry")
            .filter_map(|e| {
                e.event
                    .params
                    .iter()
                    .find(|p| p.0 == "original hash")
                    .map(|p| p.1.clone())
            })
            .collect();
        let mut prev = start;
        let mut events = Vec::new();
        for e in j.entries.iter().filter(|e| e.seq > start.seq) {
            if !super::journal::follows(e, Some(prev)) {
                out.stopped = Some(format!(
                    "entry {} does not chain to entry {}",
                    e.seq, prev.seq
                ));
                break;
            }
            prev = e;
            let hash = hex::encode(e.hash);
            if done.contains(&hash) {
                out.already += 1;
                continue;
            }
            let mut params = vec![
                ("original seq".to_string(), e.seq.to_string()),
                ("original hash".to_string(), hash),
                ("original time".to_string(), crate::time::iso(e.event.time)),
                ("original actor".to_string(), e.event.actor.clone()),
                ("original action".to_string(), e.event.action.clone()),
            ];
            params.extend(e.event.params.iter().cloned());
            events.push(Event {
                time,
                actor: actor.to_string(),
                action: "recovered entry".into(),
                params,
                counts: e.event.counts.clone(),
                outcome: e.event.outcome.clone(),
            });
        }
        if out.stopped.is_none() {
            out.stopped = j.stopped.map(|(at, why)| format!("byte {at}: {why}"));
        }
        out.appended = events.len() as u64;
        self.write(|tx| {
            for ev in events {
                tx.audit(ev)?;
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// How the journal and the trail disagree, for `verify`: `(error?, what)`.
    pub fn journal_problems(&self) -> Result<Vec<(bool, String)>> {
        let j = super::journal::read(&super::journal::path(&self.dir))?;
        let trail = self.audit_entries(None)?;
        let mut out = Vec::new();
        if let Some((at, why)) = j.stopped {
            out.push((true, format!("unreadable from byte {at}: {why}")));
        }
        let mut prev: Option<&Entry> = None;
        for e in &j.entries {
            if !super::journal::follows(e, prev) {
                out.push((
                    true,
                    format!("entry {} is changed or out of its chain", e.seq),
                ));
            }
            prev = Some(e);
        }
        for e in &j.entries {
            match trail.get((e.seq as usize).wrapping_sub(1)) {
                Some(t) if t == e => {}
                Some(_) => out.push((true, format!("entry {} differs from the trail's", e.seq))),
                None => {
                    out.push((true, format!(
                        "holds entries from {} on that the trail lacks: recovering from that journal puts them back",
                        e.seq
                    )));
                    break;
                }
            }
        }
        let have = j.entries.last().map_or(0, |e| e.seq);
        if (trail.len() as u64) > have && !self.is_read_only() {
            out.push((
                false,
                format!("lacks the trail's entries after {have} (copied at the next open)"),
            ));
        }
        Ok(out)
    }
}
