//! The audit journal: every audit entry, as committed, also appended to
//! `audit.journal` beside the catalogue. The catalogue can be damaged and
//! brought back from a backup; the journal then holds the entries written
//! since that backup, and `recover` puts them back on the trail (each must
//! chain to the one before, so none can be slipped in).
//!
//! A record is `len: u32 LE ++ codec(Entry)`. Entries are appended after
//! their transaction commits, and synced; a process that dies in between
//! leaves the journal behind the trail, and the next writable open appends
//! what it lacks. A torn last record (the process died mid-write) is cut off
//! there.

use super::audit::{Entry, chain_hash};
use super::codec;
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The journal's file name in the archive directory.
pub const FILE: &str = "audit.journal";

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The records of `entries`, as the journal holds them.
pub fn encode(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for e in entries {
        let rec = codec::encode(e);
        let len = u32::try_from(rec.len())
            .map_err(|_| Error::Internal("an audit entry over 4 GiB".into()))?;
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&rec);
    }
    Ok(bytes)
}

/// Whether `entries` chain from the first to the last.
pub fn chains(entries: &[Entry]) -> bool {
    entries.windows(2).all(|w| follows(&w[1], Some(&w[0])))
        && entries
            .first()
            .is_none_or(|e| chain_hash(&e.prev, e.seq, &e.event) == e.hash)
}

/// Appends `entries` and syncs.
pub fn append(dir: &Path, entries: &[Entry]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let path = path(dir);
    let bytes = encode(entries)?;
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::io(&path, e))
}

/// What a journal holds: its readable entries, and where reading stopped
/// short (a torn or damaged record) if it did.
pub struct Journal {
    pub entries: Vec<Entry>,
    /// Byte offset and reason of the first record that could not be read.
    pub stopped: Option<(u64, String)>,
    /// Bytes up to the end of the last readable record.
    pub good_len: u64,
}

/// Reads the journal at `path` (absent: empty).
pub fn read(path: &Path) -> Result<Journal> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(path, e)),
    }
    let mut out = Journal {
        entries: Vec::new(),
        stopped: None,
        good_len: 0,
    };
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(len) = bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        else {
            out.stopped = Some((at as u64, "a torn record header".into()));
            break;
        };
        let Some(rec) = bytes.get(at + 4..(at + 4).saturating_add(len)) else {
            out.stopped = Some((
                at as u64,
                format!("a record of {len} bytes runs past the end"),
            ));
            break;
        };
        match codec::decode::<Entry>(rec) {
            Ok(e) => out.entries.push(e),
            Err(e) => {
                out.stopped = Some((at as u64, format!("an unreadable record: {e}")));
                break;
            }
        }
        at += 4 + len;
        out.good_len = at as u64;
    }
    Ok(out)
}

/// Whether `entry` is whole (its hash) and follows `prev` in the chain.
pub fn follows(entry: &Entry, prev: Option<&Entry>) -> bool {
    let (seq, hash) = prev.map_or((0, [0u8; 32]), |p| (p.seq, p.hash));
    entry.seq == seq + 1
        && entry.prev == hash
        && chain_hash(&entry.prev, entry.seq, &entry.event) == entry.hash
}
