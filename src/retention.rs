//! Holds, cases, retention policies and the retention run, over the store and
//! the search index. The decision itself is `policy::decide` (pure); this
//! module gathers its inputs, applies it, and records every step on the audit
//! trail.
//!
//! A retention run decides every filed copy from a snapshot (holds, policies,
//! the matches of each query hold), then deletes in batches. Inside each
//! deleting transaction the holds are read again and the copy is checked
//! against them: a hold placed after the snapshot (its query not evaluated) is
//! taken to match, so nothing held at the moment of deletion is ever deleted.

use crate::error::{Error, Result};
use crate::import::RunContext;
use crate::index::Index;
use crate::index::search::Location;
use crate::model::ItemId;
use crate::policy::{self, Decision, Hold, Match, Policy, Verdict};
use crate::store::Archive;
use crate::store::audit::Event;
use crate::store::key::ItemKey;
use crate::store::records::{CaseRecord, RunRecord, RunStatus, StoredHold, StoredPolicy};
use std::collections::{HashMap, HashSet};

/// Copies deleted per write transaction.
const BATCH: usize = 1_000;

pub use crate::store::key::{case_hold_key, litigation_key};

fn event(
    ctx: &RunContext,
    action: &str,
    params: Vec<(String, String)>,
    counts: Vec<(String, u64)>,
    outcome: &str,
) -> Event {
    Event {
        time: (ctx.clock)(),
        actor: ctx.actor.clone(),
        action: action.into(),
        params,
        counts,
        outcome: outcome.into(),
    }
}

fn p(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

// ------------------------------------------------------------------ holds

pub fn hold_set(
    archive: &Archive,
    mailbox: &str,
    days: Option<u32>,
    ctx: &RunContext,
) -> Result<()> {
    archive.write(|tx| {
        let hold = StoredHold {
            hold: Hold::Litigation {
                mailbox: mailbox.to_string(),
                days,
            },
            created: (ctx.clock)(),
            actor: ctx.actor.clone(),
        };
        tx.put_hold(&litigation_key(mailbox), &hold)?;
        let mut params = vec![p("mailbox", mailbox)];
        params.push(p(
            "days",
            days.map(|d| d.to_string())
                .unwrap_or_else(|| "forever".into()),
        ));
        tx.audit(event(ctx, "hold set", params, vec![], "ok"))?;
        Ok(())
    })
}

pub fn hold_clear(archive: &Archive, mailbox: &str, ctx: &RunContext) -> Result<()> {
    archive.write(|tx| {
        if !tx.remove_hold(&litigation_key(mailbox))? {
            return Err(Error::NotFound(format!("no litigation hold on {mailbox}")));
        }
        tx.audit(event(
            ctx,
            "hold clear",
            vec![p("mailbox", mailbox)],
            vec![],
            "ok",
        ))?;
        Ok(())
    })
}

// ------------------------------------------------------------------ cases

pub fn case_create(archive: &Archive, name: &str, ctx: &RunContext) -> Result<()> {
    if name.is_empty() || name.contains('\0') {
        return Err(Error::Usage(format!("'{name}' is not a case name")));
    }
    archive.write(|tx| {
        if tx.case(name)?.is_some() {
            return Err(Error::Conflict(format!("case '{name}' exists already")));
        }
        tx.put_case(
            name,
            &CaseRecord {
                created: (ctx.clock)(),
                actor: ctx.actor.clone(),
                closed: None,
                next_hold: 1,
            },
        )?;
        tx.audit(event(
            ctx,
            "case create",
            vec![p("case", name)],
            vec![],
            "ok",
        ))?;
        Ok(())
    })
}

/// Places a hold in an open case; returns its id.
pub fn case_hold_add(
    archive: &Archive,
    case: &str,
    mailboxes: Vec<String>,
    query: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    ctx: &RunContext,
) -> Result<u32> {
    if mailboxes.is_empty() {
        return Err(Error::Usage(
            "a case hold names at least one mailbox".into(),
        ));
    }
    if let Some(q) = &query {
        crate::query::parse(q).map_err(|e| Error::Usage(format!("hold query: {e}")))?;
    }
    archive.write(|tx| {
        let mut rec = tx
            .case(case)?
            .ok_or_else(|| Error::NotFound(format!("case '{case}'")))?;
        if rec.closed.is_some() {
            return Err(Error::Usage(format!("case '{case}' is closed")));
        }
        let id = rec.next_hold;
        rec.next_hold += 1;
        tx.put_case(case, &rec)?;
        let hold = Hold::Case {
            case: case.to_string(),
            id: id.to_string(),
            mailboxes: mailboxes.clone(),
            query: query.clone(),
            from,
            to,
        };
        tx.put_hold(
            &case_hold_key(case, id),
            &StoredHold {
                hold,
                created: (ctx.clock)(),
                actor: ctx.actor.clone(),
            },
        )?;
        let mut params = vec![p("case", case), p("hold", id)];
        params.extend(mailboxes.iter().map(|m| p("mailbox", m)));
        if let Some(q) = &query {
            params.push(p("query", q));
        }
        if let Some(f) = from {
            params.push(p("from", f));
        }
        if let Some(t) = to {
            params.push(p("to", t));
        }
        tx.audit(event(ctx, "case hold add", params, vec![], "ok"))?;
        Ok(id)
    })
}

pub fn case_hold_remove(archive: &Archive, case: &str, id: u32, ctx: &RunContext) -> Result<()> {
    archive.write(|tx| {
        if !tx.remove_hold(&case_hold_key(case, id))? {
            return Err(Error::NotFound(format!("hold {id} of case '{case}'")));
        }
        tx.audit(event(
            ctx,
            "case hold remove",
            vec![p("case", case), p("hold", id)],
            vec![],
            "ok",
        ))?;
        Ok(())
    })
}

/// Closes a case and releases its holds.
pub fn case_close(archive: &Archive, case: &str, ctx: &RunContext) -> Result<u64> {
    archive.write(|tx| {
        let mut rec = tx
            .case(case)?
            .ok_or_else(|| Error::NotFound(format!("case '{case}'")))?;
        if rec.closed.is_some() {
            return Err(Error::Usage(format!("case '{case}' is closed already")));
        }
        rec.closed = Some((ctx.clock)());
        tx.put_case(case, &rec)?;
        let mut released = 0;
        for (k, h) in tx.holds()? {
            if matches!(&h.hold, Hold::Case { case: c, .. } if c == case) {
                tx.remove_hold(&k)?;
                released += 1;
            }
        }
        tx.audit(event(
            ctx,
            "case close",
            vec![p("case", case)],
            vec![("holds released".into(), released)],
            "ok",
        ))?;
        Ok(released)
    })
}

// ------------------------------------------------------------------ policies

pub fn policy_add(archive: &Archive, policy: Policy, ctx: &RunContext) -> Result<()> {
    if policy.name.is_empty() {
        return Err(Error::Usage("a policy needs a name".into()));
    }
    archive.write(|tx| {
        if tx.policy(&policy.name)?.is_some() {
            return Err(Error::Usage(format!(
                "policy '{}' exists already",
                policy.name
            )));
        }
        let mut params = vec![
            p("policy", &policy.name),
            p("action", policy.action.to_string()),
        ];
        params.extend(policy.mailboxes.iter().map(|m| p("mailbox", m)));
        tx.put_policy(
            &policy.name,
            &StoredPolicy {
                policy: policy.clone(),
                created: (ctx.clock)(),
                actor: ctx.actor.clone(),
            },
        )?;
        tx.audit(event(ctx, "retention add", params, vec![], "ok"))?;
        Ok(())
    })
}

pub fn policy_remove(archive: &Archive, name: &str, ctx: &RunContext) -> Result<()> {
    archive.write(|tx| {
        if !tx.remove_policy(name)? {
            return Err(Error::NotFound(format!("policy '{name}'")));
        }
        tx.audit(event(
            ctx,
            "retention remove",
            vec![p("policy", name)],
            vec![],
            "ok",
        ))?;
        Ok(())
    })
}

// ------------------------------------------------------------------ decisions

/// What the decisions need, read once.
pub struct Snapshot {
    holds: Vec<(Vec<u8>, Hold)>,
    policies: Vec<Policy>,
    /// For each query hold (by key): the copies its query matches.
    matches: HashMap<Vec<u8>, HashSet<(ItemId, String)>>,
    unindexed: HashSet<ItemId>,
}

impl Snapshot {
    pub fn take(archive: &Archive, index: &Index) -> Result<Snapshot> {
        let holds: Vec<(Vec<u8>, Hold)> = archive
            .holds()?
            .into_iter()
            .map(|(k, h)| (k, h.hold))
            .collect();
        let policies = archive.policies()?.into_iter().map(|p| p.policy).collect();
        Self::with(archive, index, holds, policies)
    }

    /// The holds of one case alone (no policies): what the case keeps.
    pub fn case(archive: &Archive, index: &Index, case: &str) -> Result<Snapshot> {
        if !archive.cases()?.iter().any(|(n, _)| n == case) {
            return Err(Error::NotFound(format!("case '{case}'")));
        }
        let holds = archive
            .holds()?
            .into_iter()
            .filter(|(_, h)| matches!(&h.hold, Hold::Case { case: c, .. } if c == case))
            .map(|(k, h)| (k, h.hold))
            .collect();
        Self::with(archive, index, holds, vec![])
    }

    /// Whether any hold of the snapshot covers this copy.
    pub fn holds_copy(&self, key: &ItemKey, date: Option<i64>, now: i64) -> bool {
        !self.decide(key, date, now).holds.is_empty()
    }

    fn with(
        archive: &Archive,
        index: &Index,
        holds: Vec<(Vec<u8>, Hold)>,
        policies: Vec<Policy>,
    ) -> Result<Snapshot> {
        let mut matches = HashMap::new();
        for (k, h) in &holds {
            if let Hold::Case {
                mailboxes,
                query: Some(q),
                ..
            } = h
            {
                let parsed = crate::query::parse(q)
                    .map_err(|e| Error::Corrupt(format!("stored hold query '{q}': {e}")))?;
                let mut set = HashSet::new();
                index.for_each_match(archive, &parsed, mailboxes, |id, loc| {
                    if let Location::Filed { mailbox, .. } = loc {
                        set.insert((id, mailbox));
                    }
                    Ok(())
                })?;
                matches.insert(k.clone(), set);
            }
        }
        Ok(Snapshot {
            holds,
            policies,
            matches,
            unindexed: index.unindexed_ids()?.into_iter().collect(),
        })
    }

    fn decide_with(
        &self,
        holds: &[(Vec<u8>, Hold)],
        key: &ItemKey,
        date: Option<i64>,
        now: i64,
    ) -> Decision {
        let facts = policy::Facts {
            mailbox: key.mailbox.clone(),
            date,
        };
        let plain: Vec<Hold> = holds.iter().map(|(_, h)| h.clone()).collect();
        let query_match = |i: usize| -> Match {
            if self.unindexed.contains(&key.item) {
                return Match::Unindexed;
            }
            match self.matches.get(&holds[i].0) {
                Some(set) if set.contains(&(key.item, key.mailbox.clone())) => Match::Yes,
                Some(_) => Match::No,
                // A hold this snapshot did not see: assume it matches.
                None => Match::Unindexed,
            }
        };
        policy::decide(&facts, &plain, &self.policies, now, &query_match)
    }

    pub fn decide(&self, key: &ItemKey, date: Option<i64>, now: i64) -> Decision {
        self.decide_with(&self.holds, key, date, now)
    }
}

/// What a retention run did (or, dry, would do).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RunOutcome {
    pub run: Option<u64>,
    /// The compaction that followed the deletions (packs left sparse by them
    /// rewritten).
    pub compacted: Option<crate::compaction::Compacted>,
    pub copies: u64,
    pub deleted: Vec<(String, String, String, String)>,
    pub held: u64,
    /// Due for deletion by the snapshot, but held when the deleting
    /// transaction checked again.
    pub held_at_deletion: u64,
    pub kept: u64,
    /// Versions destroyed without being read (damaged): their blobs' uses
    /// could not be released.
    pub unreadable: Vec<String>,
}

/// Applies every policy at `now`. With `dry_run`, only reports.
pub fn run(
    archive: &Archive,
    index: &Index,
    now: i64,
    dry_run: bool,
    ctx: &RunContext,
) -> Result<RunOutcome> {
    let snap = Snapshot::take(archive, index)?;
    let mut out = RunOutcome::default();
    let mut due: Vec<(ItemKey, Option<i64>, String)> = Vec::new();
    archive.for_each_copy(|key, filing| {
        out.copies += 1;
        let d = snap.decide(&key, filing.date, now);
        match d.verdict {
            Verdict::Delete => due.push((key, filing.date, d.by.unwrap_or_default())),
            Verdict::Keep { .. } if d.principle == policy::Principle::Hold => out.held += 1,
            Verdict::Keep { .. } => out.kept += 1,
        }
        Ok(())
    })?;
    if dry_run {
        out.deleted = due
            .iter()
            .map(|(k, _, pol)| {
                (
                    k.item.to_string(),
                    k.mailbox.clone(),
                    k.folder.clone(),
                    pol.clone(),
                )
            })
            .collect();
        archive.audit(event(
            ctx,
            "retention run (dry)",
            vec![p("now", now)],
            vec![
                ("copies".into(), out.copies),
                ("would delete".into(), due.len() as u64),
                ("held".into(), out.held),
            ],
            "ok",
        ))?;
        return Ok(out);
    }
    let run = archive.begin_run("retention", &ctx.actor, ctx.args.clone(), (ctx.clock)())?;
    out.run = Some(run);
    delete_due(archive, &snap, &due, now, run, ctx, &mut out)?;
    let counts = vec![
        ("run".into(), run),
        ("copies".into(), out.copies),
        ("deleted".into(), out.deleted.len() as u64),
        ("held".into(), out.held),
        ("held at deletion".into(), out.held_at_deletion),
        ("destroyed unread".into(), out.unreadable.len() as u64),
    ];
    close_run(
        archive,
        run,
        event(ctx, "retention run", vec![p("now", now)], counts, "ok"),
    )?;
    if !out.deleted.is_empty() {
        out.compacted = Some(crate::compaction::compact(
            archive,
            crate::compaction::DEFAULT_BELOW,
            ctx,
        )?);
    }
    Ok(out)
}

/// Deletes the copies in `due` in transactions of [`BATCH`], each carrying
/// the `retention delete` entry for what it deleted; blob files freed are
/// unlinked after each commit.
fn delete_due(
    archive: &Archive,
    snap: &Snapshot,
    due: &[(ItemKey, Option<i64>, String)],
    now: i64,
    run: u64,
    ctx: &RunContext,
    out: &mut RunOutcome,
) -> Result<()> {
    for chunk in due.chunks(BATCH) {
        let mut freed = Vec::new();
        archive.write(|tx| {
            let done = delete_batch(tx, snap, chunk, now, run, out)?;
            freed = done.freed;
            // What this transaction deletes is on the trail in it: a run
            // killed half-way has audited every deletion that committed.
            if !done.keys.is_empty() {
                let mut params = vec![p("run", run)];
                params.extend(done.keys.iter().map(|k| p("deleted", k)));
                params.extend(done.unreadable.iter().map(|u| p("destroyed unread", u)));
                tx.audit(event(
                    ctx,
                    "retention delete",
                    params,
                    vec![
                        ("run".into(), run),
                        ("deleted".into(), done.keys.len() as u64),
                        ("destroyed unread".into(), done.unreadable.len() as u64),
                    ],
                    "ok",
                ))?;
            }
            Ok(())
        })?;
        archive.unlink_blob_files(&freed);
    }
    Ok(())
}

/// Destroys again what retention destroyed after the restored backup was
/// taken: the copies named by the `retention delete` entries that `recover`
/// put back on the trail (as `recovered entry`), where the catalogue holds
/// them again. The holds in force now are checked as in any run: a copy
/// one covers is kept and counted as held. Runs as a retention run of its
/// own; a second call finds nothing to do. `recovered`: the trail's
/// `recovered entry` events.
pub fn redo_deletions(
    archive: &Archive,
    recovered: &[Event],
    ctx: &RunContext,
) -> Result<RunOutcome> {
    let mut out = RunOutcome::default();
    let mut due = Vec::new();
    for ev in recovered {
        let original = |k: &str| {
            ev.params
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        if original("original action") != Some("retention delete") {
            continue;
        }
        let run = original("run").unwrap_or("?");
        for (_, text) in ev.params.iter().filter(|(n, _)| n == "deleted") {
            let Some(key) = parse_copy(text) else {
                continue;
            };
            if let Some(filing) = archive.filing(&key)? {
                out.copies += 1;
                due.push((key, filing.date, format!("(run {run}, recovered)")));
            }
        }
    }
    if due.is_empty() {
        return Ok(out);
    }
    let now = (ctx.clock)();
    let index = Index::open(archive)?;
    let snap = Snapshot::take(archive, &index)?;
    let run = archive.begin_run("retention", &ctx.actor, ctx.args.clone(), now)?;
    out.run = Some(run);
    delete_due(archive, &snap, &due, now, run, ctx, &mut out)?;
    let counts = vec![
        ("run".into(), run),
        ("copies back after the restore".into(), out.copies),
        ("deleted again".into(), out.deleted.len() as u64),
        ("held".into(), out.held_at_deletion),
    ];
    close_run(
        archive,
        run,
        event(ctx, "retention redo", vec![], counts, "ok"),
    )?;
    Ok(out)
}

/// Closes a retention run with its closing entry, in one transaction.
fn close_run(archive: &Archive, run: u64, entry: Event) -> Result<()> {
    archive.write(|tx| {
        let mut rec: RunRecord = tx.run(run)?;
        rec.finished = Some(entry.time);
        rec.status = RunStatus::Completed;
        tx.put_run(&rec)?;
        tx.audit(entry).map(drop)
    })
}

/// Puts back in force the holds, cases and policies changed since the
/// restored backup was taken, as the journal tells: `recovered`, the
/// `recovered entry` events this recover appended, in trail order, so
/// that the state is the one the damaged archive had. Each change keeps its
/// original time and actor; one `settings redo` entry lists them all.
pub fn redo_settings(
    archive: &Archive,
    recovered: &[Event],
    ctx: &RunContext,
) -> Result<Vec<String>> {
    if recovered.is_empty() {
        return Ok(Vec::new());
    }
    archive.write(|tx| {
        let mut done = Vec::new();
        for ev in recovered {
            if let Some(what) = redo_setting(tx, ev)? {
                done.push(what);
            }
        }
        if !done.is_empty() {
            let params = done.iter().map(|d| p("redone", d)).collect();
            let counts = vec![("changes".into(), done.len() as u64)];
            tx.audit(event(ctx, "settings redo", params, counts, "ok"))?;
        }
        Ok(done)
    })
}

/// Applies one recovered entry's change to the holds, cases or policies;
/// what it did, or `None` for an entry that changes none of them.
fn redo_setting(tx: &mut crate::store::Tx<'_>, ev: &Event) -> Result<Option<String>> {
    let get = |k: &str| {
        ev.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let all = |k: &str| -> Vec<String> {
        ev.params
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let Some(action) = get("original action") else {
        return Ok(None);
    };
    let created = get("original time")
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(ev.time, |t| t.as_second());
    let actor = get("original actor").unwrap_or_default();
    let stored = |hold| StoredHold {
        hold,
        created,
        actor: actor.clone(),
    };
    let case = get("case").unwrap_or_default();
    let hold_id = get("hold").and_then(|h| h.parse::<u32>().ok());
    match action.as_str() {
        "hold set" => {
            let mailbox = get("mailbox").unwrap_or_default();
            let days = get("days").and_then(|d| d.parse().ok());
            let hold = Hold::Litigation {
                mailbox: mailbox.clone(),
                days,
            };
            tx.put_hold(&litigation_key(&mailbox), &stored(hold))?;
        }
        "hold clear" => {
            tx.remove_hold(&litigation_key(&get("mailbox").unwrap_or_default()))?;
        }
        "case create" if tx.case(&case)?.is_none() => {
            let rec = CaseRecord {
                created,
                actor: actor.clone(),
                closed: None,
                next_hold: 1,
            };
            tx.put_case(&case, &rec)?;
        }
        "case hold add" => {
            let (Some(id), Some(mut rec)) = (hold_id, tx.case(&case)?) else {
                return Ok(Some(format!(
                    "{action} {case}: not redone (no such case or hold id)"
                )));
            };
            rec.next_hold = rec.next_hold.max(id.saturating_add(1));
            tx.put_case(&case, &rec)?;
            let hold = Hold::Case {
                case: case.clone(),
                id: id.to_string(),
                mailboxes: all("mailbox"),
                query: get("query"),
                from: get("from").and_then(|v| v.parse().ok()),
                to: get("to").and_then(|v| v.parse().ok()),
            };
            tx.put_hold(&case_hold_key(&case, id), &stored(hold))?;
        }
        "case hold remove" => {
            if let Some(id) = hold_id {
                tx.remove_hold(&case_hold_key(&case, id))?;
            }
        }
        "case close" => {
            if let Some(mut rec) = tx.case(&case)? {
                rec.closed = Some(created);
                tx.put_case(&case, &rec)?;
            }
            for (k, h) in tx.holds()? {
                if matches!(&h.hold, Hold::Case { case: c, .. } if *c == case) {
                    tx.remove_hold(&k)?;
                }
            }
        }
        "retention add" => {
            let name = get("policy").unwrap_or_default();
            let Some(Ok(act)) = get("action").map(|a| a.parse::<policy::Action>()) else {
                return Ok(Some(format!(
                    "{action} {name}: not redone (its action is unreadable)"
                )));
            };
            let policy = Policy {
                name: name.clone(),
                action: act,
                mailboxes: all("mailbox"),
            };
            let rec = StoredPolicy {
                policy,
                created,
                actor: actor.clone(),
            };
            tx.put_policy(&name, &rec)?;
        }
        "retention remove" => {
            tx.remove_policy(&get("policy").unwrap_or_default())?;
        }
        _ => return Ok(None),
    }
    let what = get("mailbox").or(get("policy")).unwrap_or(case);
    Ok(Some(format!(
        "{action} {what} (entry {})",
        get("original seq").unwrap_or_default()
    )))
}

/// A copy as a `retention delete` entry names it: `ITEM MAILBOX / FOLDER`.
fn parse_copy(text: &str) -> Option<ItemKey> {
    let (item, rest) = text.split_once(' ')?;
    let (mailbox, folder) = rest.split_once(" / ")?;
    Some(ItemKey {
        mailbox: mailbox.to_string(),
        folder: folder.to_string(),
        item: item.parse().ok()?,
    })
}

/// What one deleting transaction did.
struct Batch {
    keys: Vec<String>,
    unreadable: Vec<String>,
    freed: Vec<[u8; 32]>,
}

/// Deletes the copies of `chunk` that no hold covers now (the holds read
/// again inside the transaction).
fn delete_batch(
    tx: &mut crate::store::Tx<'_>,
    snap: &Snapshot,
    chunk: &[(ItemKey, Option<i64>, String)],
    now: i64,
    run: u64,
    out: &mut RunOutcome,
) -> Result<Batch> {
    let holds: Vec<(Vec<u8>, Hold)> = tx.holds()?.into_iter().map(|(k, h)| (k, h.hold)).collect();
    let mut batch = Batch {
        keys: Vec::new(),
        unreadable: Vec::new(),
        freed: Vec::new(),
    };
    for (key, date, pol) in chunk {
        let again = snap.decide_with(&holds, key, *date, now);
        if !again.holds.is_empty() {
            out.held_at_deletion += 1;
            continue;
        }
        if let Some(d) = tx.dispose(key, now, pol, run)? {
            batch.freed.extend(d.freed);
            batch.unreadable.extend(d.unreadable.iter().cloned());
            out.unreadable.extend(d.unreadable);
            batch
                .keys
                .push(format!("{} {} / {}", key.item, key.mailbox, key.folder));
            out.deleted.push((
                key.item.to_string(),
                key.mailbox.clone(),
                key.folder.clone(),
                pol.clone(),
            ));
        }
    }
    Ok(batch)
}

/// Why each copy of an item may or may not be deleted at `now`.
pub fn explain(
    archive: &Archive,
    index: &Index,
    id: &ItemId,
    now: i64,
) -> Result<Vec<(String, String, Decision)>> {
    let src = archive
        .source(id)?
        .ok_or_else(|| Error::NotFound(format!("item {id}")))?;
    let snap = Snapshot::take(archive, index)?;
    let date = archive.current(id).ok().flatten().and_then(|i| i.date);
    Ok(src
        .locations
        .iter()
        .map(|(m, f)| {
            let key = ItemKey {
                mailbox: m.clone(),
                folder: f.clone(),
                item: *id,
            };
            (m.clone(), f.clone(), snap.decide(&key, date, now))
        })
        .collect())
}
