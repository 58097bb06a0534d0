//! What opening an archive leaves to record: runs a dead process left
//! `running` (now `interrupted`), and a format migration. Whoever opened the
//! archive appends those entries, once, before anything else.

use crate::error::Result;
use crate::store::Archive;
use crate::store::audit::Event;
use crate::store::records::RunRecord;
use crate::time::iso;

/// Appends the entries the opening of `archive` owes the trail, as `actor`.
pub fn settle(archive: &Archive, actor: &str, now: i64) -> Result<()> {
    let interrupted = archive.unaudited_interruptions()?;
    if !interrupted.is_empty() {
        let events = interrupted
            .iter()
            .map(|r| Event {
                time: now,
                actor: actor.to_string(),
                action: format!("{} interrupted", r.kind),
                params: vec![
                    ("run".into(), r.id.to_string()),
                    ("started".into(), iso(r.started)),
                    ("by".into(), r.actor.clone()),
                ],
                counts: interrupted_counts(r),
                outcome: "interrupted: the process ended before the run did".into(),
            })
            .collect();
        archive.write(|tx| tx.audit_interruptions(events))?;
    }
    if let Some((from, to)) = archive.unaudited_migration()? {
        archive.write(|tx| {
            tx.audit_migration(Event {
                time: now,
                actor: actor.to_string(),
                action: "migrate".into(),
                params: vec![
                    ("from_format".into(), from.to_string()),
                    ("to_format".into(), to.to_string()),
                ],
                counts: vec![],
                outcome: "ok".into(),
            })
        })?;
    }
    Ok(())
}

/// What an interrupted run had committed, from its record: the counters
/// of the transactions that committed before the process ended.
fn interrupted_counts(r: &RunRecord) -> Vec<(String, u64)> {
    let mut total = crate::report::Counters::default();
    for f in &r.files {
        total.add(&f.counters);
    }
    let mut counts = vec![("run".to_string(), r.id)];
    if !r.files.is_empty() {
        counts.extend([
            ("imported".to_string(), total.imported),
            ("partially imported".to_string(), total.partially_imported),
            ("quarantined".to_string(), total.quarantined),
            ("skipped".to_string(), total.skipped),
        ]);
    }
    counts
}
