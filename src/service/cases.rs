//! Holds and cases: litigation holds on mailboxes, eDiscovery cases with
//! their holds and members. The acting itself is `crate::retention`'s.

use super::access::{Op, Role, sees_every_case};
use super::{Principal, Service, p};
use crate::error::{Error, Result};
use crate::policy::Hold;
use crate::store::records::{CaseRecord, MemberRecord, StoredHold};

/// A case hold to place.
#[derive(Clone, Debug, Default)]
pub struct CaseHoldRequest {
    pub mailboxes: Vec<String>,
    pub query: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Service {
    pub fn hold_set(&self, who: &Principal, mailbox: &str, days: Option<u32>) -> Result<()> {
        self.check(who, Op::LitigationHold)?;
        crate::retention::hold_set(&self.archive, mailbox, days, &self.ctx(who, vec![]))
    }

    pub fn hold_clear(&self, who: &Principal, mailbox: &str) -> Result<()> {
        self.check(who, Op::LitigationHold)?;
        crate::retention::hold_clear(&self.archive, mailbox, &self.ctx(who, vec![]))
    }

    /// The holds in force that `who` may see: litigation holds and the
    /// holds of its cases (of every case for an administrator).
    pub fn holds(&self, who: &Principal) -> Result<Vec<StoredHold>> {
        self.check(who, Op::HoldList)?;
        self.record_read(who, "hold list", vec![])?;
        Ok(self
            .archive
            .holds()?
            .into_iter()
            .map(|(_, h)| h)
            .filter(|h| match &h.hold {
                Hold::Case { case, .. } => self.may_read_case(who, case),
                _ => true,
            })
            .collect())
    }

    fn may_read_case(&self, who: &Principal, case: &str) -> bool {
        super::access::permits(&who.roles, &who.cases, Op::CaseRead(case))
    }

    /// Creates a case; its creator, unless it sees every case anyway,
    /// becomes its member.
    pub fn case_create(&self, who: &Principal, name: &str) -> Result<()> {
        self.check(who, Op::CaseCreate)?;
        crate::retention::case_create(&self.archive, name, &self.ctx(who, vec![]))?;
        if who.kind == super::PrincipalKind::User && !sees_every_case(&who.roles) {
            self.archive.write(|tx| {
                let rec = MemberRecord {
                    added: self.now(),
                    actor: who.actor(),
                };
                tx.put_member(name, &who.name, &rec)?;
                let params = vec![p("case", name), p("user", &who.name)];
                tx.audit(self.event(who, "case member add", params, "ok"))?;
                Ok(())
            })?;
            self.forget_tokens();
        }
        Ok(())
    }

    /// The cases `who` may see.
    pub fn cases(&self, who: &Principal) -> Result<Vec<(String, CaseRecord)>> {
        let case_roles = [
            Role::ComplianceAdmin,
            Role::EdiscoveryAdmin,
            Role::EdiscoveryManager,
            Role::Reviewer,
        ];
        if !case_roles.iter().any(|r| who.roles.contains(r)) {
            self.check(who, Op::CaseRead("(any)"))?;
        }
        self.record_read(who, "case list", vec![])?;
        Ok(self
            .archive
            .cases()?
            .into_iter()
            .filter(|(n, _)| self.may_read_case(who, n))
            .collect())
    }

    /// One case with its holds.
    pub fn case(&self, who: &Principal, name: &str) -> Result<(CaseRecord, Vec<StoredHold>)> {
        self.check(who, Op::CaseRead(name))?;
        self.record_read(who, "case show", vec![p("case", name)])?;
        let (_, rec) = self
            .archive
            .cases()?
            .into_iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| Error::NotFound(format!("case '{name}'")))?;
        let holds = self
            .archive
            .holds()?
            .into_iter()
            .map(|(_, h)| h)
            .filter(|h| matches!(&h.hold, Hold::Case { case, .. } if case == name))
            .collect();
        Ok((rec, holds))
    }

    pub fn case_hold_add(&self, who: &Principal, case: &str, req: CaseHoldRequest) -> Result<u32> {
        self.check(who, Op::CaseHold(case))?;
        let ctx = self.ctx(who, vec![]);
        let r = req;
        crate::retention::case_hold_add(
            &self.archive,
            case,
            r.mailboxes,
            r.query,
            r.from,
            r.to,
            &ctx,
        )
    }

    pub fn case_hold_remove(&self, who: &Principal, case: &str, hold: u32) -> Result<()> {
        self.check(who, Op::CaseHold(case))?;
        crate::retention::case_hold_remove(&self.archive, case, hold, &self.ctx(who, vec![]))
    }

    /// Closes a case; how many holds that released.
    pub fn case_close(&self, who: &Principal, case: &str) -> Result<u64> {
        self.check(who, Op::CaseHold(case))?;
        crate::retention::case_close(&self.archive, case, &self.ctx(who, vec![]))
    }
}

/// A case as `case list --json` prints it and the HTTP API returns it.
pub fn case_json(name: &str, c: &CaseRecord) -> serde_json::Value {
    let status = if c.closed.is_some() { "closed" } else { "open" };
    serde_json::json!({
        "case": name, "status": status, "created": crate::time::iso(c.created),
        "actor": c.actor, "closed": c.closed.map(crate::time::iso),
    })
}
