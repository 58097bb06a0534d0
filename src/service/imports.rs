//! Imports, the quarantine and its remap, and the record of runs.

use super::access::Op;
use super::{Principal, Service};
use crate::error::{Error, Result};
use crate::import::ImportOptions;
use crate::index::Index;
use crate::mapping::Mapping;
use crate::model::{Item, ItemId};
use crate::report::ImportReport;
use crate::store::records::{QuarantineRecord, RunRecord};
use std::path::PathBuf;

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
        self.archive.runs()
    }

    /// Runs `f` on the index alone (opened first if it is not): writers of
    /// the index wait for searches in flight, and searches for them.
    pub(super) fn with_index_mut<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let mut guard = self.index.write().expect("index lock");
        if guard.is_none() {
            *guard = Some(Index::open(&self.archive)?);
        }
        f(guard.as_mut().expect("opened above"))
    }
}
