//! Reading the audit trail.

use super::access::Op;
use super::{Principal, Service};
use crate::error::Result;
use crate::store::audit::Entry;

impl Service {
    /// The trail's entries, from the first second of `since` on (all
    /// without). Reading the trail is not itself recorded on it.
    pub fn audit(&self, who: &Principal, since: Option<i64>) -> Result<Vec<Entry>> {
        self.check(who, Op::Audit)?;
        self.archive.audit_entries(since)
    }
}

/// An entry as `audit --json` prints it and the HTTP API returns it.
pub fn entry_json(e: &Entry) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = e
        .event
        .counts
        .iter()
        .map(|(k, n)| (k.clone(), serde_json::json!(n)))
        .collect();
    serde_json::json!({
        "seq": e.seq, "time": crate::time::iso(e.event.time), "actor": e.event.actor,
        "action": e.event.action, "params": e.event.params, "counts": counts,
        "outcome": e.event.outcome, "prev": hex::encode(e.prev), "hash": hex::encode(e.hash),
    })
}
