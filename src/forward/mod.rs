//! Forwarding: every filed copy delivered to its mailbox at a target (an
//! IMAP store; Microsoft Graph is to come), into a folder of the same name,
//! as the RFC 5322 bytes `export` writes for it, exactly once.
//!
//! Exactly once rests on the ledger (`store::forward`): one row per version
//! of a copy per target. A batch of rows is committed `Sending` before the
//! target is asked; each becomes `Delivered` (with the target's id) only
//! after the target confirmed, or `Failed` with why. A row found `Sending`
//! (a crash between the target's answer and the ledger's commit) is in
//! doubt: the message is looked up at the target by its `X-Tgvault-Item`
//! header before anything is sent again.

pub mod imap;

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

/// Checks a new target's settings and makes its record: the URL parses,
/// the secret file is the owner's alone (its path is kept, never its
/// contents), the CA file reads, the query parses.
pub fn configure(
    kind: &str,
    settings: BTreeMap<String, String>,
    mailboxes: Vec<String>,
    query: Option<String>,
    now: i64,
) -> Result<ForwardTarget> {
    if kind != "imap" {
        return Err(Error::Usage(format!(
            "unknown forwarding target kind '{kind}' (imap)"
        )));
    }
    for k in settings.keys() {
        if !IMAP_OPTIONS.contains(&k.as_str()) {
            return Err(Error::Usage(format!("imap takes no option '{k}'")));
        }
    }
    let mut settings = settings;
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
        let (in_doubt, attempts) = match row.map(|r| (&r.delivery, r.attempts)) {
            Some((Delivery::Delivered { .. }, _)) => {
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
    /// Why the target stops: every mailbox tried was refused for good (the
    /// credentials, the certificate). `None` when any mailbox got in.
    pub permanent: Option<String>,
}

/// The settings an IMAP pass needs, read once.
struct ImapTarget {
    endpoint: imap::Endpoint,
    tls: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
    user: String,
    template: Option<String>,
    password: String,
}

impl ImapTarget {
    fn new(t: &ForwardTarget) -> Result<ImapTarget> {
        let get = |k: &str| {
            t.setting(k)
                .map(str::to_string)
                .ok_or_else(|| Error::Corrupt(format!("the target has no {k}")))
        };
        let endpoint = imap::Endpoint::parse(&get("url")?).map_err(Error::Usage)?;
        let ca = t.setting("ca-file").map(Path::new);
        let tls = imap::tls_config(ca).map_err(Error::Usage)?;
        let password = secret::read(Path::new(&get("password-file")?))?;
        Ok(ImapTarget {
            endpoint,
            tls,
            user: get("user")?,
            template: t.setting("login-template").map(str::to_string),
            password,
        })
    }

    /// The login that files into `mailbox`.
    fn login(&self, mailbox: &str) -> String {
        match &self.template {
            Some(t) => t
                .replace("{mailbox}", mailbox)
                .replace("{user}", &self.user),
            None => self.user.clone(),
        }
    }
}

/// Delivers what `plan` found, mailbox by mailbox, committing the ledger a
/// batch at a time. `stop` ends the pass between batches.
pub fn deliver(
    archive: &Archive,
    name: &str,
    target: &ForwardTarget,
    plan: Vec<Pending>,
    run: u64,
    now: &dyn Fn() -> i64,
    stop: &dyn Fn() -> bool,
) -> Result<Outcome> {
    let imap = ImapTarget::new(target)?;
    let mut by_mailbox: BTreeMap<String, Vec<Pending>> = BTreeMap::new();
    for p in plan {
        by_mailbox.entry(p.mailbox.clone()).or_default().push(p);
    }
    let mut out = Outcome::default();
    let (mut refused, mut opened) = (None, false);
    for (mailbox, copies) in by_mailbox {
        if stop() {
            out.left += copies.len() as u64;
            continue;
        }
        let login = imap.login(&mailbox);
        let session = imap::Session::open(&imap.endpoint, imap.tls.clone(), &login, &imap.password);
        let mut session = match session {
            Ok(s) => {
                opened = true;
                s
            }
            Err(e) => {
                if let imap::ImapError::Permanent(why) = &e {
                    refused.get_or_insert_with(|| why.clone());
                }
                out.notes.push(format!("{mailbox}: {e}"));
                out.left += copies.len() as u64;
                continue;
            }
        };
        for batch in copies.chunks(BATCH) {
            if stop() {
                out.left += batch.len() as u64;
                continue;
            }
            if !deliver_batch(archive, name, &mut session, batch, run, now, &mut out)? {
                break;
            }
        }
        session.logout();
    }
    if !opened {
        out.permanent = refused;
    }
    Ok(out)
}

/// One batch: marked `Sending`, sent (or found, when in doubt), then marked
/// as the target answered. False when the connection broke (what was not
/// answered stays `Sending`, in doubt, for the next pass).
fn deliver_batch(
    archive: &Archive,
    name: &str,
    session: &mut imap::Session,
    batch: &[Pending],
    run: u64,
    now: &dyn Fn() -> i64,
    out: &mut Outcome,
) -> Result<bool> {
    let sending: Vec<(&Pending, Delivery)> = batch.iter().map(|p| (p, Delivery::Sending)).collect();
    record(archive, name, &sending, run, now())?;
    let mut answered: Vec<(&Pending, Delivery)> = Vec::new();
    let broken = send_batch(archive, session, batch, &mut answered).err();
    record(archive, name, &answered, run, now())?;
    for (p, d) in &answered {
        match d {
            Delivery::Delivered { .. } => out.counters.imported += 1,
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
    if let Some(e) = broken {
        out.notes.push(format!("{}: {e}", batch[0].mailbox));
        out.left += (batch.len() - answered.len()) as u64;
        return Ok(false);
    }
    Ok(true)
}

/// Sends a batch (one mailbox's copies): those in doubt looked up first,
/// then the rest folder by folder, all their APPENDs sent before the
/// answers are read. What the target answered goes into `answered`; a
/// broken connection ends the batch.
fn send_batch<'a>(
    archive: &Archive,
    session: &mut imap::Session,
    batch: &'a [Pending],
    answered: &mut Vec<(&'a Pending, Delivery)>,
) -> std::result::Result<(), imap::ImapError> {
    // Messages wait in memory until their APPENDs go out together: at most
    // BATCH of them, and at most PIPELINE_BYTES.
    let mut group: Vec<(&Pending, Vec<u8>)> = Vec::new();
    let mut bytes = 0;
    for p in batch {
        let header = crate::export::eml::item_header(&p.id, p.version, &p.mailbox);
        if p.in_doubt
            && let Some(remote) = session.find(&p.folder, HEADER, &header)?
        {
            answered.push((p, Delivery::Delivered { remote }));
            continue;
        }
        // The version planned, though an import may have added one since:
        // the message names the version its ledger row is for.
        let message = Copy::load_upto(archive, &p.id, p.version as usize)
            .and_then(|c| c.message(archive, &p.mailbox));
        match message {
            Ok(m) => {
                if group.first().is_some_and(|(g, _)| g.folder != p.folder)
                    || bytes + m.len() > PIPELINE_BYTES
                {
                    append_group(session, &mut group, answered)?;
                    bytes = 0;
                }
                bytes += m.len();
                group.push((p, m));
            }
            Err(e) => answered.push((
                p,
                Delivery::Failed {
                    reason: format!("the message could not be written: {e}"),
                },
            )),
        }
    }
    append_group(session, &mut group, answered)
}

/// Files a group of one folder's messages (emptied) and notes the answers.
fn append_group<'a>(
    session: &mut imap::Session,
    group: &mut Vec<(&'a Pending, Vec<u8>)>,
    answered: &mut Vec<(&'a Pending, Delivery)>,
) -> std::result::Result<(), imap::ImapError> {
    let Some((first, _)) = group.first() else {
        return Ok(());
    };
    let folder = first.folder.clone();
    let messages: Vec<(Option<i64>, &[u8])> =
        group.iter().map(|(p, m)| (p.date, m.as_slice())).collect();
    let answers = session.append_all(&folder, &messages);
    for ((p, _), a) in group.iter().zip(answers) {
        let d = match a {
            Ok(imap::Appended { remote: Some(r) }) => Delivery::Delivered { remote: r },
            // Without UIDPLUS the server names no id: look it up.
            Ok(imap::Appended { remote: None }) => {
                let header = crate::export::eml::item_header(&p.id, p.version, &p.mailbox);
                let found = session.find(&folder, HEADER, &header)?;
                Delivery::Delivered {
                    remote: found.unwrap_or_default(),
                }
            }
            Err(imap::ImapError::Refused(why)) => Delivery::Failed { reason: why },
            Err(e) => return Err(e),
        };
        answered.push((p, d));
    }
    group.clear();
    Ok(())
}

/// Commits the ledger rows of `rows` (one attempt each) in one transaction.
fn record(
    archive: &Archive,
    name: &str,
    rows: &[(&Pending, Delivery)],
    run: u64,
    at: i64,
) -> Result<()> {
    archive.write(|tx| {
        for (p, d) in rows {
            let rec = LedgerRecord {
                delivery: d.clone(),
                attempts: p.attempts + 1,
                at,
                run,
            };
            tx.put_ledger_row(name, &p.mailbox, &p.id, p.version, &rec)?;
        }
        Ok(())
    })
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
    let imap = ImapTarget::new(target)?;
    let delivered: Vec<(String, ItemId, u32, String)> = archive
        .ledger(name, None)?
        .into_iter()
        .filter_map(|(m, id, v, r)| match r.delivery {
            Delivery::Delivered { remote } => Some((m, id, v, remote)),
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
    let mut by_mailbox: BTreeMap<&str, Vec<&(String, ItemId, u32, String)>> = BTreeMap::new();
    for row in delivered.iter().step_by(step) {
        by_mailbox.entry(row.0.as_str()).or_default().push(row);
    }
    for (mailbox, rows) in by_mailbox {
        let login = imap.login(mailbox);
        let mut session =
            match imap::Session::open(&imap.endpoint, imap.tls.clone(), &login, &imap.password) {
                Ok(s) => s,
                Err(e) => {
                    for (m, id, v, _) in rows {
                        out.problems
                            .push((m.clone(), id.to_string(), *v, e.to_string()));
                    }
                    continue;
                }
            };
        for (m, id, v, remote) in rows {
            out.checked += 1;
            if let Some(why) = check_one(archive, &mut session, m, id, *v, remote)? {
                out.problems.push((m.clone(), id.to_string(), *v, why));
            }
        }
        session.logout();
    }
    Ok(out)
}

/// Why one delivered copy is not at the target as it was sent, if it is not.
fn check_one(
    archive: &Archive,
    session: &mut imap::Session,
    mailbox: &str,
    id: &ItemId,
    version: u32,
    remote: &str,
) -> Result<Option<String>> {
    let folder = archive
        .source(id)?
        .and_then(|s| {
            s.locations
                .into_iter()
                .find(|(m, _)| m == mailbox)
                .map(|(_, f)| f)
        })
        .unwrap_or_else(|| crate::model::DEFAULT_FOLDER.to_string());
    let got = session.fetch(&folder, remote);
    let got = match got {
        Ok(g) => g,
        Err(e) => return Ok(Some(format!("not read: {e}"))),
    };
    let Some(got) = got else {
        return Ok(Some(format!(
            "missing in '{folder}' (recorded as {remote})"
        )));
    };
    let want =
        Copy::load_upto(archive, id, version as usize).and_then(|c| c.message(archive, mailbox))?;
    Ok((got != want).then(|| {
        format!(
            "different: {} bytes at the target, {} written",
            got.len(),
            want.len()
        )
    }))
}
