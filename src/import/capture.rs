//! Filing what a connector captured: the same mapping, fan-out, quarantine,
//! versions and counters as a file import, one write transaction per batch,
//! with whatever the connector must commit alongside (its position in its
//! source, its run's counters) in that same transaction.

use super::{Mapped, Notes, Prepared, file_one, no_mailbox_reason, ready};
use crate::error::Result;
use crate::mapping::Mapping;
use crate::model::Item;
use crate::report::{Anomaly, Counters};
use crate::store::blob::StagedBlob;
use crate::store::records::Custodian;
use crate::store::{Archive, Tx};

/// One item a connector captured, its attachments' contents staged.
pub struct Captured {
    pub item: Item,
    pub blobs: Vec<StagedBlob>,
    /// Whose capture it is (the connected account, the configured mailbox).
    pub custodian: Custodian,
}

/// What filing a batch did.
#[derive(Default)]
pub struct Filed {
    pub counters: Counters,
    pub anomalies: Vec<Anomaly>,
}

/// Files `batch` in one write transaction; `also` runs in it after the items
/// (to move the connector's position and record the run), with what the
/// batch counted. Nothing of the batch stays if either fails.
pub fn file_captured(
    archive: &Archive,
    run: u64,
    mapping: &Mapping,
    folder: &str,
    batch: Vec<Captured>,
    also: impl FnOnce(&mut Tx<'_>, &Filed) -> Result<()>,
) -> Result<Filed> {
    let mut notes = Notes::default();
    let mut staged_files = Vec::new();
    let mut prepared = Vec::with_capacity(batch.len());
    for c in batch {
        staged_files.extend(c.blobs.iter().filter_map(StagedBlob::file_sha));
        let resolved = mapping.resolve(&c.item.participants, &c.custodian);
        let quarantine_reason = if resolved.mailboxes.is_empty() {
            no_mailbox_reason(&c.item.participants, &c.custodian)
        } else {
            String::new()
        };
        let mapped = Mapped {
            mailboxes: resolved.mailboxes,
            addresses: resolved.addresses,
            quarantine_reason,
        };
        let r = ready(c.item, mapped, c.blobs, &mut notes);
        prepared.push((Prepared::Item(Box::new(r)), c.custodian));
    }
    let written = archive.write(|tx| {
        let mut filed = Filed::default();
        for (p, custodian) in &prepared {
            file_one(tx, p, run, folder, custodian, &mut filed.counters)?;
        }
        filed.anomalies = std::mem::take(&mut notes).into_report();
        also(tx, &filed)?;
        Ok(filed)
    });
    // Blob files of versions the archive had already, or of a batch that
    // did not commit, are not part of the archive.
    archive.drop_unused_blob_files(&staged_files)?;
    written
}
