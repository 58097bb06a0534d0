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
        Ok(seq)
    }
}

impl super::Archive {
    /// Appends an event in a transaction of its own.
    pub fn audit(&self, event: Event) -> Result<u64> {
        self.write(|tx| tx.audit(event))
    }

    /// Every audit entry from `since` (UTC seconds) on, oldest first.
    pub fn audit_entries(&self, since: Option<i64>) -> Result<Vec<Entry>> {
        use redb::ReadableDatabase;
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
        use redb::ReadableDatabase;
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
