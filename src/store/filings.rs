//! The filing log: where every copy was filed, kept in the packs as well as
//! in the catalogue.
//!
//! The `items` table says which mailbox and folder hold a copy of an item,
//! and it lives in `archive.redb` only. Should the catalogue be lost, the
//! packs still hold every item version (their records describe themselves),
//! but not where each was filed: a copy that reached its mailbox through
//! the export's custodian (`--mailbox`, an owner known by phone only) could
//! not be placed again. So every write transaction that files copies also
//! appends one record of kind `f` to the pack, in the same commit, naming
//! each copy it filed: `codec(FilingLog)`. `recover --from` reads them with
//! the versions and files each copy where it was. A record is never changed;
//! the table [`FILINGS`](super::tables::FILINGS) lists them (with their
//! hashes) so that compaction carries them to a new pack and `verify` checks
//! them. The catalogue is the first copy: a damaged log is written anew from
//! it by `compact` ([`Archive::mend_filing_logs`]). Copies retention later
//! destroyed stay named in the log, as they do in `tombstones`; `recover`
//! destroys them again from the audit journal.

use super::key::ItemKey;
use super::pack::PackRef;
use super::tables::FILINGS;
use super::{Archive, codec};
use crate::error::{Error, Result};
use crate::model::ItemId;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// A transaction's log holds at most this many copies per record: a record
/// is written when it reaches it, and at the commit.
pub const RECORD_COPIES: usize = 100_000;

/// One filing-log record: each copy is `(item, mailbox, folder)`, the names
/// given as indexes into `names`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilingLog {
    pub names: Vec<String>,
    pub copies: Vec<(ItemId, u32, u32)>,
}

impl FilingLog {
    /// Each copy with its names; a name index past `names` is damage.
    pub fn each(&self) -> impl Iterator<Item = Result<(ItemId, &str, &str)>> + '_ {
        let name = |i: u32| {
            self.names
                .get(i as usize)
                .map(String::as_str)
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "a filing log names name {i} of {}",
                        self.names.len()
                    ))
                })
        };
        self.copies
            .iter()
            .map(move |&(id, m, f)| Ok((id, name(m)?, name(f)?)))
    }
}

/// The log a transaction builds as it files.
#[derive(Default)]
pub struct LogBuilder {
    log: FilingLog,
    index: HashMap<String, u32>,
}

impl LogBuilder {
    pub fn add(&mut self, id: &ItemId, mailbox: &str, folder: &str) {
        let m = self.name(mailbox);
        let f = self.name(folder);
        self.log.copies.push((*id, m, f));
    }

    fn name(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.log.names.len() as u32;
        self.log.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    pub fn len(&self) -> usize {
        self.log.copies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.log.copies.is_empty()
    }

    /// The log so far; the builder starts again empty.
    pub fn take(&mut self) -> FilingLog {
        self.index.clear();
        std::mem::take(&mut self.log)
    }
}

/// The copies some filing logs name.
#[derive(Default)]
pub struct Logged {
    names: HashMap<String, u32>,
    copies: HashSet<(ItemId, u32, u32)>,
}

impl Logged {
    pub fn add(&mut self, log: &FilingLog) -> Result<()> {
        for c in log.each() {
            let (id, m, f) = c?;
            let m = self.number(m);
            let f = self.number(f);
            self.copies.insert((id, m, f));
        }
        Ok(())
    }

    fn number(&mut self, name: &str) -> u32 {
        let next = self.names.len() as u32;
        *self.names.entry(name.to_string()).or_insert(next)
    }

    pub fn contains(&self, key: &ItemKey) -> bool {
        let (Some(&m), Some(&f)) = (self.names.get(&key.mailbox), self.names.get(&key.folder))
        else {
            return false;
        };
        self.copies.contains(&(key.item, m, f))
    }
}

/// What [`Archive::mend_filing_logs`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Mended {
    /// Logs whose record is damaged (or whose row is), no longer listed.
    pub dropped: u64,
    /// Copies no whole log named, now named by new logs.
    pub logged: u64,
}

impl Archive {
    /// The filing log at `at`, checked against its SHA-256.
    pub(super) fn read_filing_log(&self, at: &PackRef, sha: &[u8; 32]) -> Result<FilingLog> {
        let content = self.packs.read(at)?;
        if crate::model::sha256(&content) != *sha {
            return Err(Error::Corrupt(
                "the filing log does not match its SHA-256".into(),
            ));
        }
        codec::decode::<FilingLog>(&content)
    }

    /// Each `filings` row of `txn`: its key, where its record is (`None`
    /// when the row itself is damaged), and its log or why it cannot be read.
    pub(super) fn each_filing_log(
        &self,
        txn: &redb::ReadTransaction,
        mut f: impl FnMut(&[u8], Option<PackRef>, Result<FilingLog>) -> Result<()>,
    ) -> Result<()> {
        for e in txn.open_table(FILINGS)?.iter()? {
            let (k, v) = e?;
            match decode_row(k.value(), v.value()) {
                Ok((at, sha)) => f(k.value(), Some(at), self.read_filing_log(&at, &sha))?,
                Err(e) => f(k.value(), None, Err(e))?,
            }
        }
        Ok(())
    }

    /// Filing logs naming each copy in `items` that `keep` accepts, a
    /// record per [`RECORD_COPIES`], and how many copies they name.
    pub(super) fn logs_of_copies(
        &self,
        mut keep: impl FnMut(&ItemKey) -> bool,
        decode: super::key::FilingKeyReader,
    ) -> Result<(Vec<FilingLog>, u64)> {
        let mut logs = Vec::new();
        let mut log = LogBuilder::default();
        let mut copies = 0;
        self.copies_keyed(decode, |key, _| {
            if keep(&key) {
                log.add(&key.item, &key.mailbox, &key.folder);
                copies += 1;
                if log.len() >= RECORD_COPIES {
                    logs.push(log.take());
                }
            }
            Ok(())
        })?;
        if !log.is_empty() {
            logs.push(log.take());
        }
        Ok((logs, copies))
    }

    /// Mends the filing log from the catalogue, which it copies: a log
    /// whose record is damaged leaves `filings` (its bytes are left for
    /// compaction), and every copy in `items` that no whole log names is
    /// logged anew, in one transaction. When every log is whole, only their
    /// hashes are read (no set of every copy is built).
    pub fn mend_filing_logs(&self) -> Result<Mended> {
        let txn = self.db.begin_read()?;
        let mut damaged = Vec::new();
        self.each_filing_log(&txn, |key, _, log| {
            if log.is_err() {
                damaged.push(key.to_vec());
            }
            Ok(())
        })?;
        if damaged.is_empty() {
            return Ok(Mended::default());
        }
        let mut logged = Logged::default();
        self.each_filing_log(&txn, |_, _, log| match log {
            Ok(log) => logged.add(&log),
            Err(_) => Ok(()),
        })?;
        drop(txn);
        let (logs, copies) =
            self.logs_of_copies(|key| !logged.contains(key), super::key::decode_filing_key)?;
        let mended = Mended {
            dropped: damaged.len() as u64,
            logged: copies,
        };
        self.write(|tx| {
            for k in &damaged {
                tx.filings.remove(k.as_slice())?;
            }
            logs.iter().try_for_each(|log| tx.append_filing_log(log))
        })?;
        Ok(mended)
    }
}

/// The `filings` row of a record: its length and content hash.
pub fn row_value(len: u64, sha: &[u8; 32]) -> [u8; 40] {
    let mut v = [0u8; 40];
    v[..8].copy_from_slice(&len.to_be_bytes());
    v[8..].copy_from_slice(sha);
    v
}

/// A `filings` row read back: where the record is and its content hash.
pub fn decode_row(key: &[u8], value: &[u8]) -> Result<(PackRef, [u8; 32])> {
    let bad = || {
        Error::Corrupt(format!(
            "filings row {} has {} value bytes, not 40",
            hex::encode(key),
            value.len()
        ))
    };
    let len = u64::from_be_bytes(
        value
            .get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    );
    let sha: [u8; 32] = value
        .get(8..)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    Ok((PackRef::from_scrub_key(key, len)?, sha))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Part;

    fn id(message: i64) -> ItemId {
        ItemId {
            scope: 1,
            chat: 2,
            message,
            dup: 0,
            part: Part::Item,
        }
    }

    #[test]
    fn a_log_names_each_name_once_and_reads_back_its_copies() {
        let mut b = LogBuilder::default();
        b.add(&id(1), "a@corp.example", "Telegram Archiver");
        b.add(&id(2), "b@corp.example", "Telegram Archiver");
        b.add(&id(2), "a@corp.example", "Telegram Archiver");
        let log = b.take();
        assert!(b.is_empty());
        assert_eq!(log.names.len(), 3);
        let copies: Vec<_> = log.each().map(|c| c.unwrap()).collect();
        assert_eq!(copies[1], (id(2), "b@corp.example", "Telegram Archiver"));
        assert_eq!(copies[2].1, "a@corp.example");
        let mut bad = log.clone();
        bad.copies.push((id(3), 7, 0));
        assert!(bad.each().any(|c| c.is_err()));
    }

    #[test]
    fn a_row_reads_back_and_a_short_one_is_damage() {
        let r = PackRef {
            pack: 3,
            offset: 4096,
            len: 77,
        };
        let v = row_value(r.len, &[9; 32]);
        let (back, sha) = decode_row(&r.scrub_key(), &v).unwrap();
        assert_eq!(back, r);
        assert_eq!(sha, [9; 32]);
        assert!(decode_row(&r.scrub_key(), &v[..39]).is_err());
    }
}
