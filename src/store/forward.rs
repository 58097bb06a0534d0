//! The `forward` table: forwarding targets and the delivery ledger (one row
//! per version of a copy per target). What a forwarder does with them is in
//! `crate::forward`.

use super::key::{decode_ledger_key, forward_target_key, ledger_key, ledger_prefix, prefix_end};
use super::records::{ForwardTarget, LedgerRecord};
use super::tables::FORWARD;
use super::{Archive, Tx, codec};
use crate::error::Result;
use crate::model::ItemId;
use redb::ReadableTable;

/// One ledger row: mailbox, item, version and what became of it.
pub type LedgerRow = (String, ItemId, u32, LedgerRecord);

impl Archive {
    /// Rows of the `forward` table from `from` up to the end of its prefix.
    fn forward_rows(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(FORWARD) {
            Ok(t) => t,
            // An archive made before forwarding has no such table.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let end = prefix_end(prefix).unwrap_or_default();
        let mut out = Vec::new();
        for e in t.range(prefix..end.as_slice())? {
            let (k, v) = e?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Every forwarding target, by name.
    pub fn forward_targets(&self) -> Result<Vec<(String, ForwardTarget)>> {
        let mut out = Vec::new();
        for (k, v) in self.forward_rows(b"t")? {
            let name = super::key::decode_names(&k)?.remove(0);
            out.push((name, codec::decode(&v)?));
        }
        Ok(out)
    }

    pub fn forward_target(&self, name: &str) -> Result<Option<ForwardTarget>> {
        let key = forward_target_key(name);
        Ok(match self.forward_rows(&key)?.into_iter().next() {
            Some((k, v)) if k == key => Some(codec::decode(&v)?),
            _ => None,
        })
    }

    /// The ledger of `target` (in one mailbox when given), in key order.
    pub fn ledger(&self, target: &str, mailbox: Option<&str>) -> Result<Vec<LedgerRow>> {
        let mut out = Vec::new();
        for (k, v) in self.forward_rows(&ledger_prefix(target, mailbox))? {
            let (_, m, id, version) = decode_ledger_key(&k)?;
            out.push((m, id, version, codec::decode(&v)?));
        }
        Ok(out)
    }
}

impl Tx<'_> {
    pub fn forward_target(&self, name: &str) -> Result<Option<ForwardTarget>> {
        self.forward
            .get(forward_target_key(name).as_slice())?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    pub fn put_forward_target(&mut self, name: &str, t: &ForwardTarget) -> Result<()> {
        self.forward.insert(
            forward_target_key(name).as_slice(),
            codec::encode(t).as_slice(),
        )?;
        Ok(())
    }

    /// Removes a target's settings (its ledger stays: what was delivered
    /// stays known); whether there was one.
    pub fn remove_forward_target(&mut self, name: &str) -> Result<bool> {
        Ok(self
            .forward
            .remove(forward_target_key(name).as_slice())?
            .is_some())
    }

    pub fn ledger_row(
        &self,
        target: &str,
        mailbox: &str,
        id: &ItemId,
        version: u32,
    ) -> Result<Option<LedgerRecord>> {
        self.forward
            .get(ledger_key(target, mailbox, id, version).as_slice())?
            .map(|v| codec::decode(v.value()))
            .transpose()
    }

    pub fn put_ledger_row(
        &mut self,
        target: &str,
        mailbox: &str,
        id: &ItemId,
        version: u32,
        rec: &LedgerRecord,
    ) -> Result<()> {
        self.forward.insert(
            ledger_key(target, mailbox, id, version).as_slice(),
            codec::encode(rec).as_slice(),
        )?;
        Ok(())
    }
}
