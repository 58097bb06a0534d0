//! Imports, the quarantine and its remap, and the record of runs.

use super::access::Op;
use super::{Principal, Service};
use crate::error::{Error, Result};
use crate::import::ImportOptions;
use crate::mapping::Mapping;
use crate::model::{Item, ItemId};
use crate::report::ImportReport;
use crate::store::records::{QuarantineRecord, RunRecord};
use std::path::PathBuf;

/// What an import request may say besides its files.
#[derive(Clone, Debug, Default)]
pub struct ImportRequest {
    /// The user map (CSV).
    pub mapping: Option<PathBuf>,
    /// The custodian's mailbox address.
    pub mailbox: Option<String>,
    /// The export owner's Telegram user id (`123` or `user123`).
    pub owner: Option<String>,
    /// The time zone local export times are in.
    pub tz: Option<String>,
    /// The organisation's e-mail domains: a delivered e-mail's address in
    /// one of them is a mailbox (`--org-domain`).
    pub org_domains: Vec<String>,
}

impl ImportRequest {
    /// The import's options, each value checked.
    pub fn options(&self) -> Result<ImportOptions> {
        let mapping = match &self.mapping {
            Some(p) => Mapping::from_path(p)?,
            None => Mapping::default(),
        }
        .with_org_domains(&self.org_domains)?;
        let mut opts = ImportOptions::new(mapping);
        if let Some(m) = &self.mailbox {
            opts.custodian_address =
                Some(crate::mapping::normalize_mailbox(m).ok_or_else(|| {
                    Error::Usage(format!("mailbox: '{m}' is not a mailbox address"))
                })?);
        }
        if let Some(tz) = &self.tz {
            opts.zone = crate::source::telegram::Zone::parse(tz)?;
            opts.zone_given = true;
        }
        if let Some(o) = &self.owner {
            let id = crate::mapping::parse_user_id(o)
                .ok_or_else(|| Error::Usage(format!("owner: '{o}' is not a Telegram user id")))?;
            opts.owner_id = Some(id);
        }
        Ok(opts)
    }
}

impl Service {
    /// Imports every path (a failing file is reported, the others go on);
    /// the index follows the batches as they commit. `args` are the words
    /// of the request, for the run's record.
    pub fn import(
        &self,
        who: &Principal,
        paths: &[PathBuf],
        mut opts: ImportOptions,
        args: Vec<String>,
    ) -> Result<ImportReport> {
        self.check(who, Op::Import)?;
        let ctx = self.ctx(who, args);
        opts.stop = Some(self.stopping.clone());
        self.with_index_mut(|index| {
            index.follow(&self.archive, |tell| {
                opts.committed = Some(tell);
                crate::import::import(&self.archive, paths, &opts, &ctx)
            })
        })
    }

    /// Every quarantined item with its current version.
    pub fn quarantine(&self, who: &Principal) -> Result<Vec<(ItemId, QuarantineRecord, Item)>> {
        self.check(who, Op::Quarantine)?;
        self.record_read(who, "quarantine list", vec![])?;
        let mut out = Vec::new();
        for (id, rec) in self.archive.quarantine()? {
            let item = self.archive.current(&id)?.ok_or_else(|| {
                Error::Corrupt(format!("{id} is listed but has no source record"))
            })?;
            out.push((id, rec, item));
        }
        Ok(out)
    }

    /// Files the quarantined items a mapping now resolves.
    pub fn remap(
        &self,
        who: &Principal,
        mapping: &Mapping,
        args: Vec<String>,
    ) -> Result<ImportReport> {
        self.check(who, Op::Quarantine)?;
        let ctx = self.ctx(who, args);
        let report =
            crate::import::remap(&self.archive, mapping, crate::model::DEFAULT_FOLDER, &ctx)?;
        self.with_index_mut(|index| index.catch_up(&self.archive).map(|_| ()))?;
        Ok(report)
    }

    pub fn runs(&self, who: &Principal) -> Result<Vec<RunRecord>> {
        self.check(who, Op::Runs)?;
        self.record_read(who, "runs", vec![])?;
        self.archive.runs()
    }
}
