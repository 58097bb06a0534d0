//! Retention policies, the retention run and `explain`. The deciding and
//! deleting are `crate::retention`'s.

use super::access::Op;
use super::{Principal, Service};
use crate::error::Result;
use crate::model::ItemId;
use crate::policy::{Decision, Policy};
use crate::retention::RunOutcome;
use crate::store::records::StoredPolicy;

/// A policy's action from what a request says: `retain` days, or
/// `delete_after` days, or `retain` days then delete.
pub fn policy_action(
    retain: Option<u32>,
    delete_after: Option<u32>,
    then_delete: bool,
) -> Result<crate::policy::Action> {
    use crate::policy::Action;
    match (retain, delete_after, then_delete) {
        (Some(d), None, false) => Ok(Action::Retain { days: d }),
        (Some(d), None, true) => Ok(Action::RetainThenDelete { days: d }),
        (None, Some(d), false) => Ok(Action::Delete { days: d }),
        _ => Err(crate::error::Error::Usage(
            "a policy retains for some days, deletes after some days, or retains then deletes"
                .into(),
        )),
    }
}

impl Service {
    pub fn policy_add(&self, who: &Principal, policy: Policy) -> Result<()> {
        self.check(who, Op::Retention)?;
        crate::retention::policy_add(&self.archive, policy, &self.ctx(who, vec![]))
    }

    pub fn policy_remove(&self, who: &Principal, name: &str) -> Result<()> {
        self.check(who, Op::Retention)?;
        crate::retention::policy_remove(&self.archive, name, &self.ctx(who, vec![]))
    }

    pub fn policies(&self, who: &Principal) -> Result<Vec<StoredPolicy>> {
        self.check(who, Op::Retention)?;
        self.record_read(who, "retention list", vec![])?;
        self.archive.policies()
    }

    /// Applies every policy at `at` (with `dry_run`, only says what it
    /// would delete); deleted copies leave the index before it returns.
    pub fn retention_run(
        &self,
        who: &Principal,
        at: i64,
        dry_run: bool,
        args: Vec<String>,
    ) -> Result<RunOutcome> {
        self.check(who, Op::Retention)?;
        let ctx = self.ctx(who, args);
        self.with_index_mut(|index| {
            let done = crate::retention::run(&self.archive, index, at, dry_run, &ctx)?;
            index.catch_up(&self.archive)?;
            Ok(done)
        })
    }

    /// Why each copy of an item is kept or would be deleted at `at`.
    pub fn explain(
        &self,
        who: &Principal,
        id: &ItemId,
        at: i64,
    ) -> Result<Vec<(String, String, Decision)>> {
        self.check(who, Op::Explain)?;
        let params = vec![super::p("item", &id.to_string())];
        self.record_read(who, "explain", params)?;
        self.with_index(|index| crate::retention::explain(&self.archive, index, id, at))
    }
}
