//! eDiscovery exports: within a case (its members, or an administrator),
//! or of the whole archive (a compliance administrator).

use super::access::Op;
use super::{Principal, Service};
use crate::error::Result;
use crate::export::{ExportOptions, ExportSummary};

impl Service {
    pub fn export(
        &self,
        who: &Principal,
        opts: &ExportOptions,
        args: Vec<String>,
    ) -> Result<ExportSummary> {
        match &opts.case {
            Some(c) => self.check(who, Op::CaseExport(c))?,
            None => self.check(who, Op::Export)?,
        }
        let ctx = self.ctx(who, args);
        self.with_index(|index| crate::export::export(&self.archive, index, opts, &ctx))
    }
}
