//! Numbered names (format 6). A `sources` row names its filings' mailboxes
//! and folders and its participants' person keys and mailboxes by number;
//! the `names` table maps each number to its text. A handful of mailboxes and
//! folders and a few thousand people stand for millions of rows, which
//! otherwise repeat the same strings (a third of every row).
//!
//! Numbers are given from 1 in the order names are first met and never
//! reused or removed, so a number read from any committed row always has its
//! text. Every process keeps the names it has read or written ([`Names`]);
//! a number it does not know (written by another process since) is read
//! from the table of the transaction that read the row.

#[cfg(test)]
use super::tables::NAMES;
use crate::error::{Error, Result};
use redb::ReadableTable;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The committed names this process knows.
#[derive(Default)]
pub(crate) struct Names {
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    by_id: HashMap<u32, Arc<str>>,
    by_name: HashMap<Arc<str>, u32>,
    last: u32,
}

impl Known {
    fn add(&mut self, id: u32, name: &str) {
        let name: Arc<str> = Arc::from(name);
        self.by_name.entry(name.clone()).or_insert(id);
        self.by_id.insert(id, name);
        self.last = self.last.max(id);
    }
}

/// Reads one `names` row's text.
fn text(id: u32, bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes)
        .map_err(|_| Error::Corrupt(format!("names row {id} is not UTF-8 text")))
}

impl Names {
    fn lock(&self) -> MutexGuard<'_, Known> {
        // The map is whole after every statement; a panic elsewhere leaves it usable.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Learns the names `t` holds past the last one known (all of them, the
    /// first time).
    pub(crate) fn catch_up<T: ReadableTable<u32, &'static [u8]>>(&self, t: &T) -> Result<()> {
        let mut known = self.lock();
        let from = known.last.saturating_add(1);
        for e in t.range(from..)? {
            let (k, v) = e?;
            known.add(k.value(), text(k.value(), v.value())?);
        }
        Ok(())
    }

    /// The text of name `id`, read from `t` when this process has not met it.
    /// `t` must hold only committed names past those known (a read
    /// transaction's table; a writer checks its own new names first).
    pub(crate) fn get<T: ReadableTable<u32, &'static [u8]>>(
        &self,
        t: &T,
        id: u32,
    ) -> Result<String> {
        if let Some(n) = self.lock().by_id.get(&id) {
            return Ok(n.to_string());
        }
        let v = t
            .get(id)?
            .ok_or_else(|| Error::Corrupt(format!("names has no name {id}")))?;
        let name = text(id, v.value())?.to_string();
        self.lock().add(id, &name);
        Ok(name)
    }

    /// The number of a committed name, when known.
    pub(crate) fn id_of(&self, name: &str) -> Option<u32> {
        self.lock().by_name.get(name).copied()
    }

    /// The number of a committed name: known, or read from `t` (a read
    /// transaction's table; never a writer's, which may hold names not yet
    /// committed). `None`: the archive has never met the name.
    pub(crate) fn find<T: ReadableTable<u32, &'static [u8]>>(
        &self,
        t: &T,
        name: &str,
    ) -> Result<Option<u32>> {
        if let Some(id) = self.id_of(name) {
            return Ok(Some(id));
        }
        self.catch_up(t)?;
        Ok(self.id_of(name))
    }

    /// The last number known.
    pub(crate) fn last(&self) -> u32 {
        self.lock().last
    }

    /// Learns the names a transaction added, once it has committed.
    pub(crate) fn committed(&self, added: &[(u32, String)]) {
        let mut known = self.lock();
        for (id, name) in added {
            known.add(*id, name);
        }
    }
}

/// The names one write transaction adds, numbered after the last committed.
#[derive(Default)]
pub(crate) struct NewNames {
    pub(crate) added: Vec<(u32, String)>,
    by_name: HashMap<String, u32>,
    next: Option<u32>,
}

impl NewNames {
    /// The number of `name`: a committed one, one this transaction gave, or
    /// a new one written to `t`.
    pub(crate) fn intern(
        &mut self,
        names: &Names,
        t: &mut redb::Table<'_, u32, &'static [u8]>,
        name: &str,
    ) -> Result<u32> {
        if let Some(id) = names
            .id_of(name)
            .or_else(|| self.by_name.get(name).copied())
        {
            return Ok(id);
        }
        let id = match self.next {
            Some(id) => id,
            None => {
                let last = t.last()?.map_or(0, |(k, _)| k.value());
                last.max(names.last()) + 1
            }
        };
        let after = id
            .checked_add(1)
            .ok_or_else(|| Error::Corrupt("names: no number left".into()))?;
        t.insert(id, name.as_bytes())?;
        self.next = Some(after);
        self.by_name.insert(name.to_string(), id);
        self.added.push((id, name.to_string()));
        Ok(id)
    }

    /// The number of a name this transaction gave.
    pub(crate) fn id_of(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The text of a name this transaction gave.
    pub(crate) fn get(&self, id: u32) -> Option<&str> {
        match self.added.first() {
            Some((first, _)) if id >= *first => self
                .added
                .get((id - first) as usize)
                .map(|(_, n)| n.as_str()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase;

    fn db() -> (tempfile::TempDir, redb::Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("n.redb")).unwrap();
        (dir, db)
    }

    #[test]
    fn names_are_numbered_once_and_survive_only_their_commit() {
        let (_d, db) = db();
        let names = Names::default();
        let txn = db.begin_write().unwrap();
        let mut new = NewNames::default();
        {
            let mut t = txn.open_table(NAMES).unwrap();
            let a = new.intern(&names, &mut t, "alice@corp.example").unwrap();
            let b = new.intern(&names, &mut t, "Telegram Archiver").unwrap();
            assert_eq!((a, b), (1, 2));
            assert_eq!(new.intern(&names, &mut t, "alice@corp.example").unwrap(), 1);
            assert_eq!(new.get(2), Some("Telegram Archiver"));
            assert_eq!(new.get(3), None);
        }
        // Abandoned: neither the table nor the process keeps them.
        drop(txn);
        assert_eq!(names.id_of("alice@corp.example"), None);
        let txn = db.begin_write().unwrap();
        let mut new = NewNames::default();
        {
            let mut t = txn.open_table(NAMES).unwrap();
            assert_eq!(new.intern(&names, &mut t, "bob@corp.example").unwrap(), 1);
        }
        txn.commit().unwrap();
        names.committed(&new.added);
        assert_eq!(names.id_of("bob@corp.example"), Some(1));

        // Another process's names are read from the table, then known.
        let other = Names::default();
        let read = db.begin_read().unwrap();
        let t = read.open_table(NAMES).unwrap();
        assert_eq!(other.get(&t, 1).unwrap(), "bob@corp.example");
        assert!(matches!(other.get(&t, 9), Err(Error::Corrupt(_))));
        other.catch_up(&t).unwrap();
        assert_eq!(other.last(), 1);
    }
}
