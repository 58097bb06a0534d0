//! The one JSON shape of each value the service answers, as the CLI's
//! `--json` prints it and the HTTP API returns it.

use crate::model::{Item, ItemId};
use crate::policy::{Decision, Verdict};
use crate::report::ImportReport;
use crate::store::key::ItemKey;
use crate::store::records::{Filing, QuarantineRecord, RunRecord, StoredHold, StoredPolicy};
use crate::time::iso;
use serde_json::{Value, json};

/// One filed copy, as `ls` lists it.
pub fn filing_json(key: &ItemKey, filing: &Filing, item: &Item) -> Value {
    let sender = item.sender.as_ref().map(|p| p.label()).unwrap_or_default();
    json!({
        "item": key.item.to_string(), "mailbox": key.mailbox, "folder": key.folder,
        "date": item.date.map(iso), "kind": filing.kind.as_str(),
        "from": sender, "chat": item.chat.name, "summary": item.summary(),
    })
}

pub fn quarantined_json(id: &ItemId, rec: &QuarantineRecord, item: &Item) -> Value {
    json!({
        "item": id.to_string(), "date": item.date.map(iso), "run": rec.run,
        "reason": rec.reason, "custodian": rec.custodian.address,
        "chat": item.chat.name, "summary": item.summary(),
    })
}

pub fn run_json(r: &RunRecord) -> Value {
    let rep = ImportReport {
        run: r.id,
        files: r.files.clone(),
    };
    json!({
        "run": r.id, "kind": r.kind, "started": iso(r.started), "finished": r.finished.map(iso),
        "status": r.status.as_str(), "actor": r.actor, "args": r.args,
        "totals": rep.totals(), "files": r.files,
    })
}

pub fn hold_json(h: &StoredHold) -> Value {
    json!({"hold": h.hold, "created": iso(h.created), "actor": h.actor})
}

pub fn policy_json(p: &StoredPolicy) -> Value {
    json!({"policy": p.policy, "created": iso(p.created), "actor": p.actor})
}

/// Why one copy of an item is kept or may be deleted.
pub fn decision_json(id: &ItemId, mailbox: &str, folder: &str, d: &Decision) -> Value {
    json!({
        "item": id.to_string(), "mailbox": mailbox, "folder": folder,
        "delete": d.verdict == Verdict::Delete,
        "until": match d.verdict { Verdict::Keep { until } => until.map(iso), _ => None },
        "principle": d.principle.describe(), "holds": d.holds, "by": d.by,
        "policies": d.policies.iter().map(|a| json!({
            "policy": a.name, "action": a.action.to_string(), "explicit": a.explicit, "ends": a.ends.at().map(iso),
        })).collect::<Vec<_>>(),
    })
}
