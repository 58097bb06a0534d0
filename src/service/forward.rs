//! Forwarding targets as an administrator manages them: add, list, show,
//! pause, resume, remove, run (and retry), and their status. Compliance
//! administrators only; every change and run is on the audit trail, and a
//! run is an admin-log record with counters, as a connector's.

use super::access::Op;
use super::{Principal, Service, p, printable};
use crate::connector::{check_name, state_text};
use crate::error::{Error, Result};
use crate::forward::{self, Outcome};
use crate::report::{FileReport, FileStatus};
use crate::store::records::{ConnectorState, Delivery, ForwardTarget, RunRecord, RunStatus};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

/// How many delivered copies `forward verify` reads back without `--all`.
const VERIFY_SAMPLE: usize = 200;

/// What `forward add` asks for.
#[derive(Clone, Debug, Default)]
pub struct ForwardAdd {
    pub kind: String,
    pub name: String,
    /// The kind's options, by name without `--`.
    pub settings: BTreeMap<String, String>,
    pub mailboxes: Vec<String>,
    pub query: Option<String>,
}

/// What one target's pass did.
#[derive(Debug)]
pub struct Forwarded {
    pub name: String,
    pub run: Option<u64>,
    pub status: String,
    pub counters: crate::report::Counters,
    pub notes: Vec<String>,
}

impl Forwarded {
    pub fn failed(&self) -> bool {
        self.status != RunStatus::Completed.as_str()
    }

    pub fn to_json(&self) -> Value {
        json!({"target": self.name, "run": self.run, "status": self.status,
               "counters": self.counters, "notes": self.notes})
    }
}

impl Service {
    pub fn forward_add(&self, who: &Principal, req: &ForwardAdd) -> Result<Value> {
        self.check(who, Op::Forward)?;
        check_name(&req.name)?;
        let t = forward::configure(
            &req.kind,
            req.settings.clone(),
            req.mailboxes.clone(),
            req.query.clone(),
            self.now(),
        )?;
        let mut params = vec![p("target", &req.name), p("kind", &t.kind)];
        params.extend(t.settings.iter().map(|(k, v)| p(k, v)));
        params.extend(t.mailboxes.iter().map(|m| p("mailbox", m)));
        params.extend(t.query.iter().map(|q| p("query", q)));
        self.archive.write(|tx| {
            if tx.forward_target(&req.name)?.is_some() {
                return Err(Error::Conflict(format!("target '{}' exists", req.name)));
            }
            tx.put_forward_target(&req.name, &t)?;
            tx.audit(self.event(who, "forward add", params, "ok"))?;
            Ok(())
        })?;
        Ok(target_json(&req.name, &t))
    }

    fn target_record(&self, name: &str) -> Result<ForwardTarget> {
        self.archive
            .forward_target(name)?
            .ok_or_else(|| Error::NotFound(format!("forwarding target '{}'", printable(name))))
    }

    /// The names of the active targets (what the server's forwarder runs).
    pub fn active_forward_targets(&self) -> Result<Vec<String>> {
        Ok(self
            .archive
            .forward_targets()?
            .into_iter()
            .filter(|(_, t)| t.state == ConnectorState::Active)
            .map(|(n, _)| n)
            .collect())
    }

    pub fn forward_targets(&self, who: &Principal) -> Result<Vec<Value>> {
        self.check(who, Op::Forward)?;
        self.record_read(who, "forward list", vec![])?;
        let list = self.archive.forward_targets()?;
        Ok(list.iter().map(|(n, t)| target_json(n, t)).collect())
    }

    pub fn forward_target(&self, who: &Principal, name: &str) -> Result<Value> {
        self.check(who, Op::Forward)?;
        let t = self.target_record(name)?;
        self.record_read(who, "forward show", vec![p("target", name)])?;
        Ok(target_json(name, &t))
    }

    /// Pauses (`run` false) or resumes a target.
    pub fn forward_set_running(&self, who: &Principal, name: &str, run: bool) -> Result<Value> {
        self.check(who, Op::Forward)?;
        let action = if run {
            "forward resume"
        } else {
            "forward pause"
        };
        let t = self.archive.write(|tx| {
            let mut t = tx.forward_target(name)?.ok_or_else(|| {
                Error::NotFound(format!("forwarding target '{}'", printable(name)))
            })?;
            let was = state_text(&t.state);
            t.state = if run {
                ConnectorState::Active
            } else {
                ConnectorState::Paused
            };
            tx.put_forward_target(name, &t)?;
            tx.audit(self.event(who, action, vec![p("target", name), p("was", &was)], "ok"))?;
            Ok(t)
        })?;
        Ok(target_json(name, &t))
    }

    /// Removes a target; its ledger (what was delivered) stays.
    pub fn forward_remove(&self, who: &Principal, name: &str) -> Result<()> {
        self.check(who, Op::Forward)?;
        self.archive.write(|tx| {
            if !tx.remove_forward_target(name)? {
                return Err(Error::NotFound(format!(
                    "forwarding target '{}'",
                    printable(name)
                )));
            }
            tx.audit(self.event(who, "forward remove", vec![p("target", name)], "ok"))?;
            Ok(())
        })
    }

    /// One pass of each active target (or of the one named): every copy in
    /// its scope not yet delivered; with `retry_failed`, those that failed
    /// too.
    pub fn forward_run(
        &self,
        who: &Principal,
        name: Option<&str>,
        retry_failed: bool,
    ) -> Result<Vec<Forwarded>> {
        self.check(who, Op::Forward)?;
        let targets = match name {
            Some(n) => vec![(n.to_string(), self.target_record(n)?)],
            None => self.archive.forward_targets()?,
        };
        let mut out = Vec::new();
        for (n, t) in targets {
            if t.state != ConnectorState::Active {
                out.push(Forwarded {
                    name: n,
                    run: None,
                    status: state_text(&t.state),
                    counters: Default::default(),
                    notes: vec![],
                });
                continue;
            }
            out.push(self.forward_one(who, &n, &t, retry_failed)?);
        }
        Ok(out)
    }

    fn forward_one(
        &self,
        who: &Principal,
        name: &str,
        t: &ForwardTarget,
        retry_failed: bool,
    ) -> Result<Forwarded> {
        let allowed = match &t.query {
            Some(q) => Some(self.matching(q)?),
            None => None,
        };
        let plan = forward::plan(&self.archive, name, t, allowed.as_ref(), retry_failed)?;
        let run = self.open_forward_run(who, name, t)?;
        let pending = plan.pending.len() as u64;
        let now = || self.now();
        let stop = || self.is_stopping();
        let outcome = match forward::deliver(&self.archive, name, t, plan.pending, run, &now, &stop)
        {
            Ok(o) => o,
            Err(e) => Outcome {
                notes: vec![e.to_string()],
                left: pending,
                ..Default::default()
            },
        };
        let mut counters = outcome.counters.clone();
        counters.available_from_source = plan.copies;
        counters.available_for_import = pending;
        counters.skipped = plan.delivered;
        let status = if !outcome.notes.is_empty() || outcome.left > 0 {
            RunStatus::Failed
        } else if counters.failed > 0 {
            RunStatus::CompletedWithErrors
        } else {
            RunStatus::Completed
        };
        self.close_forward_run(who, name, run, status, &counters, &outcome)?;
        if let Some(why) = &outcome.permanent {
            self.stop_target(who, name, why)?;
        }
        Ok(Forwarded {
            name: name.to_string(),
            run: Some(run),
            status: status.as_str().to_string(),
            counters,
            notes: outcome.notes,
        })
    }

    /// Marks a target failed for good (until `forward resume`): retrying
    /// cannot mend refused credentials.
    fn stop_target(&self, who: &Principal, name: &str, why: &str) -> Result<()> {
        self.archive.write(|tx| {
            if let Some(mut t) = tx.forward_target(name)? {
                t.state = ConnectorState::Failed(why.to_string());
                tx.put_forward_target(name, &t)?;
                let params = vec![p("target", name), p("reason", why)];
                tx.audit(self.event(who, "forward stopped", params, "failed"))?;
            }
            Ok(())
        })
    }

    /// The items a target's query matches.
    fn matching(&self, q: &str) -> Result<HashSet<crate::model::ItemId>> {
        let query = super::search::parse_query(q)?;
        let mut ids = HashSet::new();
        self.with_index(|index| {
            index.for_each_match(&self.archive, &query, &[], |id, _| {
                ids.insert(id);
                Ok(())
            })
        })?;
        Ok(ids)
    }

    fn open_forward_run(&self, who: &Principal, name: &str, t: &ForwardTarget) -> Result<u64> {
        let now = self.now();
        let args = vec![name.to_string(), t.kind.clone()];
        self.archive.write(|tx| {
            let id = tx.start_run("forward", &who.actor(), args, now)?;
            let mut run = tx.run(id)?;
            run.files = vec![FileReport {
                path: format!("{} {name}", t.kind),
                format: t.kind.clone(),
                status: FileStatus::Imported,
                counters: Default::default(),
                failures: vec![],
                anomalies: vec![],
            }];
            tx.put_run(&run)?;
            Ok(id)
        })
    }

    fn close_forward_run(
        &self,
        who: &Principal,
        name: &str,
        run: u64,
        status: RunStatus,
        counters: &crate::report::Counters,
        outcome: &Outcome,
    ) -> Result<()> {
        let now = self.now();
        self.archive.write(|tx| {
            let mut rec: RunRecord = tx.run(run)?;
            rec.status = status;
            rec.finished = Some(now);
            if let Some(f) = rec.files.first_mut() {
                f.counters = counters.clone();
                f.failures = outcome.failures.clone();
                let notes = outcome.notes.iter().map(|n| (n.clone(), 1));
                let partial = outcome
                    .partial
                    .iter()
                    .map(|(why, n)| (format!("delivered partially: {why}"), *n));
                f.anomalies = notes
                    .chain(partial)
                    .map(|(what, count)| crate::report::Anomaly { what, count })
                    .collect();
            }
            tx.put_run(&rec)?;
            let mut e = self.event(
                who,
                "forward run",
                vec![p("target", name), p("run", &run.to_string())],
                status.as_str(),
            );
            e.counts = counters.audit_counts();
            tx.audit(e)?;
            Ok(())
        })
    }

    /// Reads back what the ledger says `name` delivered (a sample, or every
    /// row) and reports what is missing or different at the target.
    pub fn forward_verify(
        &self,
        who: &Principal,
        name: &str,
        all: bool,
    ) -> Result<forward::Verified> {
        self.check(who, Op::Forward)?;
        let t = self.target_record(name)?;
        let v = forward::verify(&self.archive, name, &t, all, VERIFY_SAMPLE)?;
        let outcome = if v.problems.is_empty() {
            "ok"
        } else {
            "problems"
        };
        let mut e = self.event(
            who,
            "forward verify",
            vec![p("target", name), p("all", &all.to_string())],
            outcome,
        );
        e.counts = vec![
            ("checked".into(), v.checked),
            ("problems".into(), v.problems.len() as u64),
        ];
        // A read of the archive (a verify on read-only storage is recorded
        // where reads go).
        self.archive.audit_read(e)?;
        Ok(v)
    }

    /// A target's ledger rows, optionally of one state (`delivered`,
    /// `partial`, `failed`, `in-doubt`) and one mailbox.
    pub fn forward_ledger(
        &self,
        who: &Principal,
        name: &str,
        state: Option<&str>,
        mailbox: Option<&str>,
    ) -> Result<Vec<Value>> {
        self.check(who, Op::Forward)?;
        const STATES: &[&str] = &["delivered", "partial", "failed", "in-doubt"];
        if let Some(s) = state
            && !STATES.contains(&s)
        {
            return Err(Error::Usage(format!(
                "unknown ledger state '{s}' ({})",
                STATES.join(", ")
            )));
        }
        self.target_record(name)?;
        let mut params = vec![p("target", name)];
        params.extend(state.map(|s| p("state", s)));
        params.extend(mailbox.map(|m| p("mailbox", m)));
        self.record_read(who, "forward ledger", params)?;
        let mut out = Vec::new();
        let mailbox = mailbox.map(str::to_lowercase);
        for (m, id, v, r) in self.archive.ledger(name, mailbox.as_deref())? {
            let (st, remote, why) = match &r.delivery {
                Delivery::Sending => ("in-doubt", None, None),
                Delivery::Delivered { remote } => ("delivered", Some(remote), None),
                Delivery::Partial { remote, why } => ("partial", Some(remote), Some(why)),
                Delivery::Failed { reason } => ("failed", None, Some(reason)),
            };
            if state.is_some_and(|s| s != st) {
                continue;
            }
            out.push(json!({"mailbox": m, "item": id.to_string(), "version": v,
                            "state": st, "remote": remote, "why": why,
                            "attempts": r.attempts, "at": crate::time::iso(r.at),
                            "run": r.run}));
        }
        Ok(out)
    }

    /// Per target and mailbox: copies in scope, delivered, pending, failed,
    /// in doubt, and the oldest pending copy's date.
    pub fn forward_status(&self, who: &Principal, name: Option<&str>) -> Result<Vec<Value>> {
        self.check(who, Op::Forward)?;
        let targets = match name {
            Some(n) => vec![(n.to_string(), self.target_record(n)?)],
            None => self.archive.forward_targets()?,
        };
        let params = name.map(|n| vec![p("target", n)]).unwrap_or_default();
        self.record_read(who, "forward status", params)?;
        let mut out = Vec::new();
        for (n, t) in targets {
            let allowed = match &t.query {
                Some(q) => Some(self.matching(q)?),
                None => None,
            };
            let plan = forward::plan(&self.archive, &n, &t, allowed.as_ref(), false)?;
            let mut boxes: BTreeMap<String, Value> = BTreeMap::new();
            fn bump<'a>(boxes: &'a mut BTreeMap<String, Value>, m: &str, k: &str) -> &'a mut Value {
                let e = boxes.entry(m.to_string()).or_insert_with(|| {
                    json!({"delivered": 0, "partial": 0, "pending": 0, "failed": 0, "in_doubt": 0,
                           "oldest_pending": null})
                });
                e[k] = json!(e[k].as_u64().unwrap_or(0) + 1);
                e
            }
            for (m, _, _, r) in self.archive.ledger(&n, None)? {
                let k = match r.delivery {
                    Delivery::Delivered { .. } => "delivered",
                    Delivery::Failed { .. } => "failed",
                    Delivery::Sending => "in_doubt",
                    Delivery::Partial { .. } => "partial",
                };
                bump(&mut boxes, &m, k);
            }
            for pnd in &plan.pending {
                let e = bump(&mut boxes, &pnd.mailbox, "pending");
                let older = match (e["oldest_pending"].as_i64(), pnd.date) {
                    (Some(o), Some(d)) => d < o,
                    (None, Some(_)) => true,
                    _ => false,
                };
                if older {
                    e["oldest_pending"] = json!(pnd.date);
                }
            }
            for v in boxes.values_mut() {
                if let Some(t) = v["oldest_pending"].as_i64() {
                    v["oldest_pending"] = json!(crate::time::iso(t));
                }
            }
            let partial: u64 = boxes.values().filter_map(|b| b["partial"].as_u64()).sum();
            out.push(
                json!({"target": n, "kind": t.kind, "state": state_text(&t.state),
                            "copies": plan.copies, "delivered": plan.delivered,
                            "partial": partial,
                            "pending": plan.pending.len(), "failed": plan.failed_before,
                            "mailboxes": boxes}),
            );
        }
        Ok(out)
    }
}

fn target_json(name: &str, t: &ForwardTarget) -> Value {
    let settings: serde_json::Map<String, Value> = t
        .settings
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({"name": name, "kind": t.kind, "state": state_text(&t.state),
           "settings": settings, "mailboxes": t.mailboxes, "query": t.query,
           "created": crate::time::iso(t.created)})
}
