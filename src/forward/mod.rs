//! Forwarding: every filed copy delivered to its mailbox at a target (an
//! IMAP store, or Exchange Online through Microsoft Graph), into a folder
//! of the same name, as the RFC 5322 bytes `export` writes for it, exactly
//! once.
//!
//! Exactly once rests on the ledger (`store::forward`): one row per version
//! of a copy per target. A batch of rows is committed `Sending` before the
//! target is asked; each becomes `Delivered` (with the target's id) only
//! after the target confirmed, or `Failed` with why. A row found `Sending`
//! (a crash between the target's answer and the ledger's commit) is in
//! doubt: the message is looked up at the target by its `X-Tgvault-Item`
//! header before anything is sent again.

pub mod graph;
mod graph_pass;
pub mod imap;
mod imap_pass;

use crate::connector::secret;
use crate::error::{Error, Result};
use crate::export::Copy;
use crate::model::ItemId;
use crate::report::{Counters, Failure};
use crate::store::Archive;
use crate::store::records::{ConnectorState, Delivery, ForwardTarget, LedgerRecord};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// The header every forwarded message carries (see `export::eml`).
pub const HEADER: &str = "X-Tgvault-Item";

/// How many copies one ledger commit covers.
const BATCH: usize = 1000;

/// How many bytes of messages may wait to be sent together.
const PIPELINE_BYTES: usize = 32 << 20;

/// The options `forward add imap` takes, by name.
const IMAP_OPTIONS: &[&str] = &["url", "user", "password-file", "login-template", "ca-file"];

/// Checks a new target's settings and makes its record: the URLs parse,
/// the secret file is the owner's alone (its path is kept, never its
/// contents), the CA file reads, the query parses.
pub fn configure(
    kind: &str,
    settings: BTreeMap<String, String>,
    mailboxes: Vec<String>,
    query: Option<String>,
    now: i64,
) -> Result<ForwardTarget> {
    let mut settings = settings;
    match kind {
        "imap" => check_imap(&mut settings)?,
        "graph" => graph::check_settings(&mut settings)?,
        _ => {
            return Err(Error::Usage(format!(
                "unknown forwarding target kind '{kind}' (imap, graph)"
            )));
        }
    }
    if let Some(q) = &query {
        crate::query::parse(q).map_err(|e| Error::Usage(format!("query: {e}")))?;
    }
    Ok(ForwardTarget {
        kind: kind.into(),
        settings: settings.into_iter().collect(),
        mailboxes,
        query,
        state: ConnectorState::Active,
        created: now,
    })
}

fn check_imap(settings: &mut BTreeMap<String, String>) -> Result<()> {
    for k in settings.keys() {
        if !IMAP_OPTIONS.contains(&k.as_str()) {
            return Err(Error::Usage(format!("imap takes no option '{k}'")));
        }
    }
    for k in ["password-file", "ca-file"] {
        if let Some(v) = settings.get(k) {
            let abs = std::path::absolute(v).map_err(|e| Error::io(v, e))?;
            settings.insert(k.into(), abs.display().to_string());
        }
    }
    let need = |k: &str| {
        settings
            .get(k)
            .cloned()
            .ok_or_else(|| Error::Usage(format!("imap needs {k}")))
    };
    imap::Endpoint::parse(&need("url")?).map_err(Error::Usage)?;
    need("user")?;
    secret::check(Path::new(&need("password-file")?))?;
    if let Some(ca) = settings.get("ca-file") {
        imap::tls_config(Some(Path::new(ca))).map_err(Error::Usage)?;
    }
    if let Some(t) = settings.get("login-template")
        && !t.contains("{mailbox}")
    {
        return Err(Error::Usage(format!(
            "the login template '{t}' does not name {{mailbox}}"
        )));
    }
    Ok(())
}

/// One version of one copy to deliver.
#[derive(Clone, Debug)]
pub struct Pending {
    pub mailbox: String,
    pub folder: String,
    pub id: ItemId,
    /// Counted from 1: how many versions the item had when planned.
    pub version: u32,
    pub date: Option<i64>,
    /// Found `Sending`: look it up before sending.
    pub in_doubt: bool,
    /// When it was marked `Sending`, if it is in doubt.
    pub doubt_since: Option<i64>,
    pub attempts: u32,
}

/// What a pass found to do.
#[derive(Debug, Default)]
pub struct Plan {
    pub pending: Vec<Pending>,
    /// Copies the target's scope holds.
    pub copies: u64,
    /// Of them, delivered already (this version).
    pub delivered: u64,
    /// Of them, failed before and not retried now.
    pub failed_before: u64,
}

/// Every copy in the target's scope whose current version its ledger does
/// not have delivered. `allowed`: the items the target's query matches.
pub fn plan(
    archive: &Archive,
    name: &str,
    target: &ForwardTarget,
    allowed: Option<&HashSet<ItemId>>,
    retry_failed: bool,
) -> Result<Plan> {
    let ledger: HashMap<(String, ItemId, u32), LedgerRecord> = archive
        .ledger(name, None)?
        .into_iter()
        .map(|(m, id, v, r)| ((m, id, v), r))
        .collect();
    let mut out = Plan::default();
    let mut versions: HashMap<ItemId, u32> = HashMap::new();
    archive.for_each_copy(|key, filing| {
        if !target.mailboxes.is_empty() && !target.mailboxes.contains(&key.mailbox) {
            return Ok(());
        }
        if allowed.is_some_and(|a| !a.contains(&key.item)) {
            return Ok(());
        }
        out.copies += 1;
        let version = match versions.get(&key.item) {
            Some(v) => *v,
            None => {
                let n = archive
                    .source(&key.item)?
                    .map_or(0, |s| s.versions.len() as u32);
                versions.insert(key.item, n);
                n
            }
        };
        let row = ledger.get(&(key.mailbox.clone(), key.item, version));
        let doubt_since = row
            .filter(|r| matches!(r.delivery, Delivery::Sending))
            .map(|r| r.at);
        let (in_doubt, attempts) = match row.map(|r| (&r.delivery, r.attempts)) {
            Some((Delivery::Delivered { .. } | Delivery::Partial { .. }, _)) => {
                out.delivered += 1;
                return Ok(());
            }
            Some((Delivery::Failed { .. }, _)) if !retry_failed => {
                out.failed_before += 1;
                return Ok(());
            }
            Some((Delivery::Sending, a)) => (true, a),
            Some((Delivery::Failed { .. }, a)) => (false, a),
            None => (false, 0),
        };
        out.pending.push(Pending {
            mailbox: key.mailbox,
            folder: key.folder,
            id: key.item,
            version,
            date: filing.date,
            in_doubt,
            doubt_since,
            attempts,
        });
        Ok(())
    })?;
    Ok(out)
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub counters: Counters,
    pub failures: Vec<Failure>,
    /// Notes on what went wrong beyond one copy (a connection, a login).
    pub notes: Vec<String>,
    /// Copies left in doubt or not tried (a broken connection).
    pub left: u64,
    /// Why each copy delivered partially is partial, with how many.
    pub partial: BTreeMap<String, u64>,
    /// Why the target stops: every mailbox tried was refused for good (the
    /// credentials, the certificate). `None` when any mailbox got in.
    pub permanent: Option<String>,
}

/// Delivers what `plan` found, a batch of one mailbox's copies per ledger
/// commit. `stop` ends the pass between batches.
pub fn deliver(
    archive: &Archive,
    name: &str,
    target: &ForwardTarget,
    plan: Vec<Pending>,
    run: u64,
    now: &(dyn Fn() -> i64 + Sync),
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Outcome> {
    let pass = Pass {
        archive,
        name,
        run,
        now,
        stop,
    };
    // Nothing to send: no client, no secret read, no connection.
    if plan.is_empty() {
        return Ok(Outcome::default());
    }
    pass.settle(&plan);
    match target.kind.as_str() {
        "graph" => graph_pass::deliver(&pass, target, plan),
        _ => imap_pass::deliver(&pass, target, plan),
    }
}

/// What every batch of a pass needs.
pub(crate) struct Pass<'a> {
    pub archive: &'a Archive,
    pub name: &'a str,
    pub run: u64,
    pub now: &'a (dyn Fn() -> i64 + Sync),
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

/// How long after a copy was marked `Sending` the target may still file it:
/// a pass that was killed leaves requests the target is still working
/// through (pipelined APPENDs in the server's buffer, an import under way).
/// A copy in doubt is looked up only once this has passed since its mark,
/// so that the lookup sees what the dead pass's requests filed.
pub const SETTLE_SECONDS: i64 = 3;

impl Pass<'_> {
    /// Waits until every copy in doubt was marked at least
    /// [`SETTLE_SECONDS`] ago (at most that long; not past a stop).
    fn settle(&self, plan: &[Pending]) {
        let Some(latest) = plan.iter().filter_map(|p| p.doubt_since).max() else {
            return;
        };
        let wait = (latest + SETTLE_SECONDS - (self.now)()).clamp(0, SETTLE_SECONDS);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(wait as u64);
        while std::time::Instant::now() < until && !(self.stop)() {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Commits the ledger rows of `rows` (one attempt each) in one
    /// transaction.
    pub fn record(&self, rows: &[(&Pending, Delivery)]) -> Result<()> {
        let at = (self.now)();
        self.archive.write(|tx| {
            for (p, d) in rows {
                let rec = LedgerRecord {
                    delivery: d.clone(),
                    attempts: p.attempts + 1,
                    at,
                    run: self.run,
                };
                tx.put_ledger_row(self.name, &p.mailbox, &p.id, p.version, &rec)?;
            }
            Ok(())
        })
    }

    /// Counts what the target answered.
    pub fn tally(&self, answered: &[(&Pending, Delivery)], out: &mut Outcome) {
        for (p, d) in answered {
            match d {
                Delivery::Delivered { .. } => out.counters.imported += 1,
                Delivery::Partial { why, .. } => {
                    out.counters.partially_imported += 1;
                    *out.partial.entry(why.clone()).or_default() += 1;
                }
                Delivery::Failed { reason } => {
                    out.counters.failed += 1;
                    out.failures.push(Failure {
                        item: p.id.to_string(),
                        source_user: String::new(),
                        mailbox: p.mailbox.clone(),
                        reason: reason.clone(),
                    });
                }
                Delivery::Sending => {}
            }
        }
    }

    /// The RFC 5322 bytes of a planned version of a copy, as `export`
    /// writes them (the version planned, though an import may have added
    /// one since: the message names the version its ledger row is for).
    pub fn message(&self, p: &Pending) -> Result<Vec<u8>> {
        Copy::load_upto(self.archive, &p.id, p.version as usize)
            .and_then(|c| c.message(self.archive, &p.mailbox))
    }
}

/// What `forward verify` found.
#[derive(Debug, Default, serde::Serialize)]
pub struct Verified {
    /// Delivered rows read back.
    pub checked: u64,
    /// Of all delivered rows.
    pub delivered: u64,
    /// `(mailbox, item, version, why)` for each copy missing or different at
    /// the target, or that could not be read.
    pub problems: Vec<(String, String, u32, String)>,
}

/// Reads back what the ledger says was delivered (every row with `all`,
/// else at most `sample` spread over the ledger) and compares each with
/// the message `export` writes for that version of that copy.
pub fn verify(
    archive: &Archive,
    name: &str,
    target: &ForwardTarget,
    all: bool,
    sample: usize,
) -> Result<Verified> {
    let delivered: Vec<DeliveredRow> = archive
        .ledger(name, None)?
        .into_iter()
        .filter_map(|(m, id, v, r)| match r.delivery {
            Delivery::Delivered { remote } | Delivery::Partial { remote, .. } => {
                Some((m, id, v, remote))
            }
            _ => None,
        })
        .collect();
    let mut out = Verified {
        delivered: delivered.len() as u64,
        ..Default::default()
    };
    let step = if all || delivered.len() <= sample {
        1
    } else {
        delivered.len().div_ceil(sample.max(1))
    };
    let mut by_mailbox: BTreeMap<&str, Vec<&DeliveredRow>> = BTreeMap::new();
    for row in delivered.iter().step_by(step) {
        by_mailbox.entry(row.0.as_str()).or_default().push(row);
    }
    match target.kind.as_str() {
        "graph" => graph_pass::check(archive, target, by_mailbox, &mut out)?,
        _ => imap_pass::check(archive, target, by_mailbox, &mut out)?,
    }
    Ok(out)
}

/// A delivered row to read back: mailbox, item, version, the target's id.
pub(crate) type DeliveredRow = (String, ItemId, u32, String);
