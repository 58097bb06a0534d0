//! A forward pass into Microsoft Graph: mailboxes side by side, each with
//! its own [`Gate`] and 4 workers, a ledger commit per batch.
//!
//! A copy goes by `importMime` (a received item with its full MIME) when
//! its base64 fits one request and the tenant takes `importMime`. Else it
//! is rebuilt as a JSON message marked received (PR_MESSAGE_FLAGS = 1),
//! its attachments added after (upload sessions above 3 MB), and recorded
//! `Partial` with why; an attachment over the target's limit is replaced
//! by a note naming it, its size, its SHA-256 and the item.

use super::graph::{FORM_HEADER, Gate, Graph, GraphError, header_of};
use super::{DeliveredRow, HEADER, Outcome, Pass, Pending, Verified};
use crate::error::Result;
use crate::store::Archive;
use crate::store::records::{Delivery, ForwardTarget};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many copies one ledger commit covers (at Graph's pace, a crash
/// leaves at most this many of a mailbox's copies to look up).
const BATCH: usize = 100;

/// How many mailboxes a pass serves side by side.
const MAILBOXES_AT_ONCE: usize = 8;

/// What every mailbox of a pass shares.
struct Shared<'a> {
    pass: &'a Pass<'a>,
    graph: Graph,
    /// Why the tenant refused `importMime`, once it did.
    no_import: Mutex<Option<String>>,
    out: Mutex<Outcome>,
    /// A mailbox got in (its folder was found or made).
    opened: AtomicBool,
    /// The first refusal of the credentials or the application.
    refused: Mutex<Option<String>>,
}

impl Shared<'_> {
    fn note(&self, text: String, left: u64) {
        let mut o = self.out.lock().unwrap_or_else(|e| e.into_inner());
        o.notes.push(text);
        o.left += left;
    }

    fn refuse(&self, e: &GraphError) {
        if let GraphError::Permanent(why) = e {
            let mut r = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            r.get_or_insert_with(|| why.clone());
        }
    }
}

/// Delivers what `plan` found.
pub(super) fn deliver(pass: &Pass, target: &ForwardTarget, plan: Vec<Pending>) -> Result<Outcome> {
    let settings: BTreeMap<String, String> = target.settings.iter().cloned().collect();
    let graph = Graph::new(&settings)?;
    // A refused credential stops the target before anything is marked.
    if let Err(e) = graph.token() {
        return Ok(Outcome {
            notes: vec![e.to_string()],
            left: plan.len() as u64,
            permanent: match e {
                GraphError::Permanent(why) => Some(why),
                _ => None,
            },
            ..Default::default()
        });
    }
    let mut by_mailbox: BTreeMap<String, Vec<Pending>> = BTreeMap::new();
    for p in plan {
        by_mailbox.entry(p.mailbox.clone()).or_default().push(p);
    }
    let shared = Shared {
        pass,
        graph,
        no_import: Mutex::new(None),
        out: Mutex::new(Outcome::default()),
        opened: AtomicBool::new(false),
        refused: Mutex::new(None),
    };
    let queue: Mutex<Vec<(String, Vec<Pending>)>> = Mutex::new(by_mailbox.into_iter().collect());
    let failed: Mutex<Option<crate::error::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..MAILBOXES_AT_ONCE {
            s.spawn(|| {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                    let Some((mailbox, copies)) = next else { break };
                    if let Err(e) = deliver_mailbox(&shared, &mailbox, &copies) {
                        failed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    let mut out = shared.out.into_inner().unwrap_or_else(|e| e.into_inner());
    if !shared.opened.load(Ordering::Acquire) {
        out.permanent = shared
            .refused
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
    }
    Ok(out)
}

/// One mailbox's copies, a batch per ledger commit; its folders found or
/// made first.
fn deliver_mailbox(sh: &Shared, mailbox: &str, copies: &[Pending]) -> Result<()> {
    let gate = Gate::new(sh.graph.limits);
    let mut folders: HashMap<String, String> = HashMap::new();
    for (i, batch) in copies.chunks(BATCH).enumerate() {
        let rest = (copies.len() - i * BATCH) as u64;
        if (sh.pass.stop)() {
            sh.out.lock().unwrap_or_else(|e| e.into_inner()).left += rest;
            return Ok(());
        }
        for p in batch {
            if folders.contains_key(&p.folder) {
                continue;
            }
            match sh.graph.folder(&gate, mailbox, &p.folder, sh.pass.stop) {
                Ok(id) => {
                    sh.opened.store(true, Ordering::Release);
                    folders.insert(p.folder.clone(), id);
                }
                Err(e) => {
                    sh.refuse(&e);
                    sh.note(format!("{mailbox}: folder '{}': {e}", p.folder), rest);
                    return Ok(());
                }
            }
        }
        if !deliver_batch(sh, &gate, &folders, batch)? {
            return Ok(());
        }
    }
    Ok(())
}

/// One batch: marked `Sending`, sent by 4 workers, then marked as Graph
/// answered. False when a copy could not be sent (a broken connection, a
/// server error): what was not answered stays `Sending`, in doubt.
fn deliver_batch(
    sh: &Shared,
    gate: &Gate,
    folders: &HashMap<String, String>,
    batch: &[Pending],
) -> Result<bool> {
    let sending: Vec<(&Pending, Delivery)> = batch.iter().map(|p| (p, Delivery::Sending)).collect();
    sh.pass.record(&sending)?;
    let next = AtomicUsize::new(0);
    let broken: Mutex<Option<GraphError>> = Mutex::new(None);
    let answered: Mutex<Vec<(&Pending, Delivery)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..sh.graph.limits.in_flight {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::AcqRel);
                    let stopped = broken.lock().unwrap_or_else(|e| e.into_inner()).is_some();
                    if i >= batch.len() || stopped {
                        break;
                    }
                    let p = &batch[i];
                    match deliver_one(sh, gate, &folders[&p.folder], p) {
                        Ok(d) => answered
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((p, d)),
                        Err(e) => {
                            broken
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    let answered = answered.into_inner().unwrap_or_else(|e| e.into_inner());
    sh.pass.record(&answered)?;
    sh.pass.tally(
        &answered,
        &mut sh.out.lock().unwrap_or_else(|e| e.into_inner()),
    );
    let Some(e) = broken.into_inner().unwrap_or_else(|e| e.into_inner()) else {
        return Ok(true);
    };
    sh.refuse(&e);
    let left = (batch.len() - answered.len()) as u64;
    if !matches!(e, GraphError::Stopped) {
        sh.note(format!("{}: {e}", batch[0].mailbox), left);
    } else {
        sh.out.lock().unwrap_or_else(|e| e.into_inner()).left += left;
    }
    Ok(false)
}

/// Delivers one copy (or finds it, when in doubt). A refusal of this copy
/// is its `Failed` row; any other error leaves it in doubt.
fn deliver_one(
    sh: &Shared,
    gate: &Gate,
    folder: &str,
    p: &Pending,
) -> std::result::Result<Delivery, GraphError> {
    let mime = match sh.pass.message(p) {
        Ok(m) => m,
        Err(e) => {
            return Ok(Delivery::Failed {
                reason: format!("the message could not be written: {e}"),
            });
        }
    };
    let header = crate::export::eml::item_header(&p.id, p.version, &p.mailbox);
    let stop = sh.pass.stop;
    if p.in_doubt {
        let mid = crate::export::eml::message_id(&p.id);
        let found = sh
            .graph
            .find(gate, &p.mailbox, folder, &mid, &header, stop)?;
        match found {
            Some((remote, false)) => return Ok(Delivery::Delivered { remote }),
            Some((remote, true)) => return complete(sh, gate, p, &mime, remote),
            None => {}
        }
    }
    let why = match whole_or_why(sh, &mime) {
        None => match sh.graph.import_mime(gate, &p.mailbox, folder, &mime, stop) {
            Ok(remote) => return Ok(Delivery::Delivered { remote }),
            Err(GraphError::Refused(413, w)) => format!("importMime refused its size ({w})"),
            Err(GraphError::Refused(status, w)) => {
                let why = format!("the tenant refused importMime ({status} {w})");
                let mut no = sh.no_import.lock().unwrap_or_else(|e| e.into_inner());
                no.get_or_insert(why).clone()
            }
            Err(e) => return Err(e),
        },
        Some(why) => why,
    };
    as_json(sh, gate, folder, p, &mime, &header, &why)
}

/// `None` when the copy can go whole by `importMime`, else why not.
fn whole_or_why(sh: &Shared, mime: &[u8]) -> Option<String> {
    if let Some(why) = sh
        .no_import
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
    {
        return Some(why);
    }
    let encoded = mime.len().div_ceil(3) * 4;
    (encoded > sh.graph.limits.max_request).then(|| {
        format!(
            "{} bytes of MIME are over what importMime takes in one request",
            mime.len()
        )
    })
}

/// The fallback: the message rebuilt as JSON, its attachments added one
/// by one; `Partial` with why.
fn as_json(
    sh: &Shared,
    gate: &Gate,
    folder: &str,
    p: &Pending,
    mime: &[u8],
    header: &str,
    why: &str,
) -> std::result::Result<Delivery, GraphError> {
    let Some(m) = mail_parser::MessageParser::default().parse(mime) else {
        return Ok(Delivery::Failed {
            reason: "export's message could not be read back".into(),
        });
    };
    let body = json_message(&m, header);
    let remote = match sh
        .graph
        .create(gate, &p.mailbox, folder, &body, sh.pass.stop)
    {
        Ok(r) => r,
        Err(GraphError::Refused(s, w)) => {
            return Ok(Delivery::Failed {
                reason: format!("{why}; the JSON message was refused too: {s} {w}"),
            });
        }
        Err(e) => return Err(e),
    };
    attach_all(sh, gate, p, &m, remote, why, &[])
}

/// A copy found at the target after an interruption, rebuilt as JSON: its
/// missing attachments added.
fn complete(
    sh: &Shared,
    gate: &Gate,
    p: &Pending,
    mime: &[u8],
    remote: String,
) -> std::result::Result<Delivery, GraphError> {
    let why =
        whole_or_why(sh, mime).unwrap_or_else(|| "an earlier pass could not use importMime".into());
    let Some(m) = mail_parser::MessageParser::default().parse(mime) else {
        return Ok(Delivery::Partial {
            remote,
            why: format!(
                "rebuilt as a JSON message: {why}; export's message could not be read back"
            ),
        });
    };
    let have = sh
        .graph
        .attachment_names(gate, &p.mailbox, &remote, sh.pass.stop)?;
    attach_all(sh, gate, p, &m, remote, &why, &have)
}

/// Adds each attachment of `m` not named in `have`; one over the target's
/// limit becomes a note.
fn attach_all(
    sh: &Shared,
    gate: &Gate,
    p: &Pending,
    m: &mail_parser::Message,
    remote: String,
    why: &str,
    have: &[String],
) -> std::result::Result<Delivery, GraphError> {
    let mut why = format!("rebuilt as a JSON message: {why}");
    for (i, a) in m.attachments().enumerate() {
        let (name, kind) = attachment_name(a, i);
        let bytes = a.contents();
        let (name, kind, bytes) = if bytes.len() as u64 > sh.graph.limits.max_attachment {
            let note = note_for(&name, bytes, p, sh.graph.limits.max_attachment);
            why.push_str(&format!("; '{name}' replaced by a note (over the limit)"));
            (format!("{name}.note.txt"), "text/plain".to_string(), note)
        } else {
            (name, kind, bytes.to_vec())
        };
        if have.contains(&name) {
            continue;
        }
        let stop = sh.pass.stop;
        match sh
            .graph
            .attach(gate, &p.mailbox, &remote, &name, &kind, &bytes, stop)
        {
            Ok(()) => {}
            Err(GraphError::Refused(s, w)) => why.push_str(&format!("; '{name}' refused: {s} {w}")),
            Err(e) => return Err(e),
        }
    }
    Ok(Delivery::Partial { remote, why })
}

fn attachment_name(a: &mail_parser::MessagePart, i: usize) -> (String, String) {
    use mail_parser::MimeHeaders;
    let kind = a
        .content_type()
        .map(|c| match c.subtype() {
            Some(s) => format!("{}/{}", c.ctype(), s),
            None => c.ctype().to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into());
    let name = a
        .attachment_name()
        .map(str::to_string)
        .unwrap_or_else(|| format!("attachment-{}", i + 1));
    (name, kind)
}

/// The note that stands for an attachment too large for the target.
fn note_for(name: &str, bytes: &[u8], p: &Pending, limit: u64) -> Vec<u8> {
    let sha = hex::encode(sha2::Sha256::digest(bytes));
    format!(
        "The attachment '{name}' ({} bytes, SHA-256 {sha}) is over this target's limit of {limit} \
         bytes and was not attached. It is kept in the tgvault archive: item {}, version {}.\r\n",
        bytes.len(),
        p.id,
        p.version
    )
    .into_bytes()
}

/// Graph's JSON form of an exported message: marked received (not a
/// draft), its dates, people, body and `X-Tgvault-Item` kept.
fn json_message(m: &mail_parser::Message, header: &str) -> Value {
    let addr = |a: &mail_parser::Addr| {
        json!({"emailAddress": {"name": a.name().unwrap_or_default(),
                                 "address": a.address().unwrap_or_default()}})
    };
    let list = |l: Option<&mail_parser::Address>| -> Vec<Value> {
        l.map(|l| l.iter().map(addr).collect()).unwrap_or_default()
    };
    let date = m
        .date()
        .map(|d| crate::time::iso(d.to_timestamp()))
        .unwrap_or_default();
    let (kind, content) = match m.body_html(0) {
        Some(h) if m.body_text(0).is_none() => ("html", h.into_owned()),
        _ => (
            "text",
            m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        ),
    };
    let mut v = json!({
        "subject": m.subject().unwrap_or_default(),
        "body": {"contentType": kind, "content": content},
        "toRecipients": list(m.to()),
        "ccRecipients": list(m.cc()),
        "internetMessageId": m.message_id().map(|i| format!("<{i}>")),
        "internetMessageHeaders": [{"name": HEADER, "value": header},
                                   {"name": FORM_HEADER, "value": "json"}],
        "singleValueExtendedProperties": [
            {"id": "Integer 0x0E07", "value": "1"},
        ],
    });
    if let Some(from) = m.from().and_then(|f| f.first()) {
        v["from"] = addr(from);
        v["sender"] = addr(from);
    }
    if !date.is_empty() {
        v["receivedDateTime"] = json!(date);
        v["sentDateTime"] = json!(date);
        let props = v["singleValueExtendedProperties"].as_array_mut();
        if let Some(props) = props {
            props.push(json!({"id": "SystemTime 0x0E06", "value": date}));
            props.push(json!({"id": "SystemTime 0x0039", "value": date}));
        }
    }
    v
}

/// Reads each row's message back and checks it is there with its header.
pub(super) fn check(
    archive: &Archive,
    target: &ForwardTarget,
    by_mailbox: BTreeMap<&str, Vec<&DeliveredRow>>,
    out: &mut Verified,
) -> Result<()> {
    let settings: BTreeMap<String, String> = target.settings.iter().cloned().collect();
    let graph = Graph::new(&settings)?;
    let go = || false;
    for (mailbox, rows) in by_mailbox {
        let gate = Gate::new(graph.limits);
        for (m, id, v, remote) in rows {
            out.checked += 1;
            let want = crate::export::eml::item_header(id, *v, m);
            let why = match graph.message(&gate, mailbox, remote, &go) {
                Err(e) => Some(format!("not read: {e}")),
                Ok(None) => Some(format!("missing (recorded as {remote})")),
                Ok(Some(got)) => match header_of(&got, HEADER) {
                    Some(h) if h == want => subject_differs(archive, id, *v, m, &got)?,
                    Some(h) => Some(format!("different: its {HEADER} is '{h}'")),
                    None => Some(format!("different: it has no {HEADER}")),
                },
            };
            if let Some(why) = why {
                out.problems.push((m.clone(), id.to_string(), *v, why));
            }
        }
    }
    Ok(())
}

fn subject_differs(
    archive: &Archive,
    id: &crate::model::ItemId,
    version: u32,
    mailbox: &str,
    got: &Value,
) -> Result<Option<String>> {
    let mime = crate::export::Copy::load_upto(archive, id, version as usize)
        .and_then(|c| c.message(archive, mailbox))?;
    let want = mail_parser::MessageParser::default()
        .parse(&mime)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default();
    let got = got["subject"].as_str().unwrap_or_default();
    Ok((got != want).then(|| format!("different: subject '{got}', written '{want}'")))
}
