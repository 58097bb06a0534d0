//! A forward pass into an IMAP store: one session per mailbox, a ledger
//! commit per batch, the batch's APPENDs pipelined, copies in doubt looked
//! up by their header before anything is sent again.

use super::{BATCH, DeliveredRow, HEADER, Outcome, PIPELINE_BYTES, Pass, Pending, Verified, imap};
use crate::connector::secret;
use crate::error::{Error, Result};
use crate::model::ItemId;
use crate::store::Archive;
use crate::store::records::{Delivery, ForwardTarget};
use std::collections::BTreeMap;
use std::path::Path;

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

    fn open(&self, mailbox: &str) -> std::result::Result<imap::Session, imap::ImapError> {
        let login = self.login(mailbox);
        imap::Session::open(&self.endpoint, self.tls.clone(), &login, &self.password)
    }
}

/// Delivers what `plan` found, mailbox by mailbox, committing the ledger a
/// batch at a time.
pub(super) fn deliver(pass: &Pass, target: &ForwardTarget, plan: Vec<Pending>) -> Result<Outcome> {
    let imap = ImapTarget::new(target)?;
    let mut by_mailbox: BTreeMap<String, Vec<Pending>> = BTreeMap::new();
    for p in plan {
        by_mailbox.entry(p.mailbox.clone()).or_default().push(p);
    }
    let mut out = Outcome::default();
    let (mut refused, mut opened) = (None, false);
    for (mailbox, copies) in by_mailbox {
        if (pass.stop)() {
            out.left += copies.len() as u64;
            continue;
        }
        let mut session = match imap.open(&mailbox) {
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
            if (pass.stop)() {
                out.left += batch.len() as u64;
                continue;
            }
            if !deliver_batch(pass, &mut session, batch, &mut out)? {
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
    pass: &Pass,
    session: &mut imap::Session,
    batch: &[Pending],
    out: &mut Outcome,
) -> Result<bool> {
    let sending: Vec<(&Pending, Delivery)> = batch.iter().map(|p| (p, Delivery::Sending)).collect();
    pass.record(&sending)?;
    let mut answered: Vec<(&Pending, Delivery)> = Vec::new();
    let broken = send_batch(pass, session, batch, &mut answered).err();
    pass.record(&answered)?;
    pass.tally(&answered, out);
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
    pass: &Pass,
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
        match pass.message(p) {
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

/// Reads each row's message back (a session per mailbox) and compares it
/// with the bytes `export` writes.
pub(super) fn check(
    archive: &Archive,
    target: &ForwardTarget,
    by_mailbox: BTreeMap<&str, Vec<&DeliveredRow>>,
    out: &mut Verified,
) -> Result<()> {
    let imap = ImapTarget::new(target)?;
    for (mailbox, rows) in by_mailbox {
        let mut session = match imap.open(mailbox) {
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
    Ok(())
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
    let folder = folder_of(archive, id, mailbox)?;
    let got = match session.fetch(&folder, remote) {
        Ok(g) => g,
        Err(e) => return Ok(Some(format!("not read: {e}"))),
    };
    let Some(got) = got else {
        return Ok(Some(format!(
            "missing in '{folder}' (recorded as {remote})"
        )));
    };
    let want = crate::export::Copy::load_upto(archive, id, version as usize)
        .and_then(|c| c.message(archive, mailbox))?;
    Ok((got != want).then(|| {
        format!(
            "different: {} bytes at the target, {} written",
            got.len(),
            want.len()
        )
    }))
}

/// The folder a mailbox's copy of an item is filed in.
fn folder_of(archive: &Archive, id: &ItemId, mailbox: &str) -> Result<String> {
    Ok(archive
        .source(id)?
        .and_then(|s| {
            s.locations
                .into_iter()
                .find(|(m, _)| m == mailbox)
                .map(|(_, f)| f)
        })
        .unwrap_or_else(|| crate::model::DEFAULT_FOLDER.to_string()))
}
