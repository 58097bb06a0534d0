//! Browsing: the mailboxes and their folders, and one item with its
//! history (every version, where it is filed, a deletion at the source).

use super::access::Op;
use super::search::say_recorded;
use super::{Principal, Service, p};
use crate::error::{Error, Result};
use crate::model::{Item, ItemId, Part};
use crate::store::key::ItemKey;
use crate::store::records::{QuarantineRecord, Version};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct MailboxRow {
    pub mailbox: String,
    pub folder: String,
    pub items: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct VersionView {
    pub version: Version,
    pub item: Item,
}

#[derive(Clone, Debug, Serialize)]
pub struct ItemView {
    pub id: ItemId,
    /// Every `(mailbox, folder)` it is filed in.
    pub locations: Vec<(String, String)>,
    pub quarantine: Option<QuarantineRecord>,
    /// The deletion event recorded against it (live capture), if any.
    pub deleted_by: Option<ItemId>,
    pub deletion: Option<Item>,
    /// Oldest first; the last is the current version.
    pub versions: Vec<VersionView>,
    pub notes: Vec<String>,
}

impl ItemView {
    /// The item as `show --json` prints it and the HTTP API returns it.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        json!({
            "item": self.id.to_string(),
            "locations": self.locations.iter().map(|(m, f)| json!({"mailbox": m, "folder": f})).collect::<Vec<_>>(),
            "quarantine": self.quarantine.as_ref().map(|r| json!({"run": r.run, "reason": r.reason})),
            "deleted_by": self.deleted_by.map(|d| d.to_string()),
            "versions": self.versions.iter().map(|v| json!({
                "sha256": hex::encode(v.version.content), "run": v.version.run,
                "edited": v.version.edited.map(crate::time::iso), "item": v.item,
            })).collect::<Vec<_>>(),
        })
    }
}

impl Service {
    pub fn mailboxes(&self, who: &Principal) -> Result<Vec<MailboxRow>> {
        self.check(who, Op::Browse)?;
        self.record_read(who, "mailboxes", vec![])?;
        Ok(self
            .archive
            .folders()?
            .into_iter()
            .map(|(mailbox, folder, st)| MailboxRow {
                mailbox,
                folder,
                items: st.items,
            })
            .collect())
    }

    /// Every copy filed in `mailbox` (in `folder`), in key order, with its
    /// current version.
    pub fn filings(
        &self,
        who: &Principal,
        mailbox: &str,
        folder: Option<&str>,
        mut f: impl FnMut(&ItemKey, &crate::store::records::Filing, &Item) -> Result<()>,
    ) -> Result<()> {
        self.check(who, Op::Browse)?;
        self.archive
            .for_each_filing(mailbox, folder, |key, filing| {
                let item = self.archive.current(&key.item)?.ok_or_else(|| {
                    Error::Corrupt(format!("{} is listed but has no source record", key.item))
                })?;
                f(&key, &filing, &item)
            })
    }

    /// One item whole. Within `case`, only an item one of whose copies the
    /// case's holds cover.
    pub fn item(&self, who: &Principal, id: &ItemId, case: Option<&str>) -> Result<ItemView> {
        match case {
            Some(c) => self.check(who, Op::CaseSearch(c))?,
            None => self.check(who, Op::Search)?,
        }
        let not_found = || Error::NotFound(format!("item {id}"));
        let src = self.archive.source(id)?.ok_or_else(not_found)?;
        if let Some(c) = case
            && !self.case_covers(c, id, &src.locations)?
        {
            return Err(Error::NotFound(format!("item {id} in case '{c}'")));
        }
        let mut versions = Vec::new();
        for (i, v) in src.versions.iter().enumerate() {
            versions.push(VersionView {
                version: v.clone(),
                item: self.archive.version(id, i)?,
            });
        }
        let quarantine = self
            .archive
            .quarantine()?
            .into_iter()
            .find(|(q, _)| q == id)
            .map(|(_, r)| r);
        let deletion_id = ItemId {
            part: Part::Deletion,
            ..*id
        };
        let deleted_by = (id.part == Part::Item && self.archive.source(&deletion_id)?.is_some())
            .then_some(deletion_id);
        let deletion = match deleted_by {
            Some(d) => self.archive.current(&d)?,
            None => None,
        };
        let mut params = vec![p("item", &id.to_string())];
        params.extend(case.map(|c| p("case", c)));
        let event = self.event(who, "show", params, "ok");
        let notes = say_recorded(&self.archive.audit_read(event)?)
            .into_iter()
            .collect();
        Ok(ItemView {
            id: *id,
            locations: src.locations,
            quarantine,
            deleted_by,
            deletion,
            versions,
            notes,
        })
    }

    /// Whether a hold of `case` covers one of the item's copies.
    fn case_covers(&self, case: &str, id: &ItemId, locations: &[(String, String)]) -> Result<bool> {
        let now = self.now();
        self.with_index(|index| {
            let snap = crate::retention::Snapshot::case(&self.archive, index, case)?;
            for (mailbox, folder) in locations {
                let key = ItemKey {
                    mailbox: mailbox.clone(),
                    folder: folder.clone(),
                    item: *id,
                };
                let date = self.archive.filing(&key)?.and_then(|f| f.date);
                if snap.holds_copy(&key, date, now) {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }
}
