//! Live capture through the Telegram Bot API: `getUpdates` responses
//! (`{"ok": true, "result": [update, ...]}`) or JSON lines of updates, as a
//! capture process writes them.
//!
//! What this source adds over exports: edits arrive as whole new messages
//! (`edited_message`, ...) and become new versions of the same item; deletions
//! arrive as `deleted_business_messages` and become deletion events linked to
//! the original items, which stay. Differences from exports, kept in mind:
//! - chat ids are in Bot API form (channels and supergroups `-100` + id, basic
//!   groups `-id`), so these items never share ids with export items;
//! - dates are epoch integers (UTC); deletions carry no date;
//! - entity offsets count UTF-16 code units;
//! - files arrive as `file_id`s: their content is not downloaded here, and each
//!   attachment says so.

use crate::error::{Error, Result};
use crate::model::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

pub const FORMAT: &str = "telegram-bot-api";

/// Whether the start of a file looks like Bot API updates.
pub fn sniff(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head.strip_prefix(super::BOM).unwrap_or(head));
    let t = text.trim_start();
    (t.starts_with('{') && t[1..].trim_start().starts_with("\"ok\""))
        || text.contains("\"update_id\"")
}

/// Calls `f` with each update's JSON text and where it was (line, or element
/// of `result`), streaming JSON lines; a `getUpdates` response is read whole
/// (the Bot API returns at most 100 updates per call).
pub fn read_updates(path: &Path, f: &mut dyn FnMut(&str, &str) -> Result<()>) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    if reader
        .fill_buf()
        .map_err(|e| Error::io(path, e))?
        .starts_with(super::BOM)
    {
        reader.consume(super::BOM.len());
    }
    let head = reader.fill_buf().map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8_lossy(head);
    if text.trim_start().starts_with('{')
        && text.trim_start()[1..].trim_start().starts_with("\"ok\"")
    {
        let mut all = String::new();
        reader
            .read_to_string(&mut all)
            .map_err(|e| Error::io(path, e))?;
        let v: Value = serde_json::from_str(&all).map_err(|e| Error::InputLine {
            path: path.to_path_buf(),
            line: e.line() as u64,
            message: format!("column {}: invalid JSON: {e}", e.column()),
        })?;
        if v.get("ok") != Some(&Value::Bool(true)) {
            return Err(Error::input(path, "a getUpdates response that is not ok"));
        }
        let Some(list) = v.get("result").and_then(Value::as_array) else {
            return Err(Error::input(
                path,
                "a getUpdates response without a result list",
            ));
        };
        for (i, u) in list.iter().enumerate() {
            f(&u.to_string(), &format!("result[{i}]"))?;
        }
        return Ok(());
    }
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        f(&line, &format!("line {}", n + 1))?;
    }
    Ok(())
}

/// Reads a capture file into `out`: each update's items, connections
/// learnt on the way (they scope the business messages after them).
pub fn produce(path: &Path, out: &mut dyn super::Produce) -> Result<()> {
    let mut known = Connections::new();
    read_updates(path, &mut |text, at| match convert(text, at, &known) {
        Ok(Converted::Items(items)) => {
            for (item, _) in items {
                out.item(item)?;
            }
            Ok(())
        }
        Ok(Converted::Connection(c)) => {
            let what = "business connection updates carry no item".to_string();
            known.insert(c.id.clone(), c);
            out.not_item(what)
        }
        Ok(Converted::Skipped(kind)) => {
            out.not_item(format!("updates of kind {kind} carry no item"))
        }
        Ok(Converted::Unknown(kind)) => out.item(unreadable(
            text,
            format!("{at}: an update of unknown kind '{kind}'"),
        )),
        Err(reason) => out.item(unreadable(text, reason)),
    })
}

/// Checks one update's JSON; the error names where it is.
pub fn check(path: &Path, text: &str, at: &str) -> Result<()> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::input(path, format!("{at}: invalid JSON: {e}")))?;
    if v.get("update_id").and_then(Value::as_i64).is_none() {
        return Err(Error::input(
            path,
            format!("{at}: not a Bot API update (no update_id)"),
        ));
    }
    Ok(())
}

/// A business account's connection of the bot, as an update reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub id: String,
    pub user: Person,
    pub user_id: i64,
    pub user_chat_id: Option<i64>,
    pub date: Option<i64>,
    pub enabled: bool,
    /// The rights granted: the names of those set.
    pub rights: Vec<String>,
}

/// The business connections known so far, by id: whose account a
/// business message belongs to.
pub type Connections = std::collections::HashMap<String, Connection>;

/// An attachment's file as the Bot API names it: by id, to fetch with
/// `getFile`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    /// The attachment's index in its item.
    pub index: usize,
    pub file_id: String,
}

/// What one update turned into.
pub enum Converted {
    /// Items, each with the files its attachments name.
    Items(Vec<(Item, Vec<FileRef>)>),
    /// A business connection made, changed or ended.
    Connection(Connection),
    /// An update kind that carries no message (callback queries, polls, ...).
    Skipped(String),
    /// An update of a kind this version does not know: kept whole (see
    /// [`unreadable`]) rather than passed over.
    Unknown(String),
}

const MESSAGE_KINDS: &[&str] = &[
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_message",
    "edited_business_message",
];

/// Update kinds the Bot API documents that carry no message to archive.
const OTHER_KINDS: &[&str] = &[
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
];

/// An update that could not be turned into an item, kept whole: its raw
/// text, the reason, an id made from its text, and no participant, so that
/// it waits in quarantine (findable, exportable) instead of being dropped.
pub fn unreadable(text: &str, reason: String) -> Item {
    let why = format!("{reason}: kept as its raw text");
    Item::kept_whole(FORMAT, text.to_string(), sha256(text.as_bytes()), why)
}

/// Turns one update into items. A business message is scoped to the
/// account that connected the bot, when `known` has its connection: its
/// message ids are that account's, as in the account's Desktop export, and
/// the account takes part in it.
pub fn convert(
    text: &str,
    at: &str,
    known: &Connections,
) -> std::result::Result<Converted, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("{at}: {e}"))?;
    for kind in MESSAGE_KINDS {
        if let Some(m) = v.get(*kind) {
            let owner = connection_of(m, known);
            return message(m, owner)
                .map(|i| Converted::Items(vec![i]))
                .map_err(|e| format!("{at}: {e}"));
        }
    }
    if let Some(d) = v.get("deleted_business_messages") {
        let owner = connection_of(d, known);
        return deletions(d, owner)
            .map(|items| Converted::Items(items.into_iter().map(|i| (i, vec![])).collect()))
            .map_err(|e| format!("{at}: {e}"));
    }
    if let Some(c) = v.get("business_connection") {
        return connection(c)
            .map(Converted::Connection)
            .map_err(|e| format!("{at}: {e}"));
    }
    let kind = v
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "update_id").cloned())
        .unwrap_or_else(|| "empty".into());
    if OTHER_KINDS.contains(&kind.as_str()) {
        Ok(Converted::Skipped(kind))
    } else {
        Ok(Converted::Unknown(kind))
    }
}

/// The connection a business message or deletion came through, if known.
fn connection_of<'a>(m: &Value, known: &'a Connections) -> Option<&'a Connection> {
    known.get(m.get("business_connection_id")?.as_str()?)
}

/// An update's id.
pub fn update_id(update: &Value) -> Option<i64> {
    update.get("update_id").and_then(Value::as_i64)
}

/// The business connection a business update came through.
pub fn business_connection_id(update: &Value) -> Option<&str> {
    [
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
    ]
    .iter()
    .find_map(|k| update.get(*k)?.get("business_connection_id")?.as_str())
}

/// A `BusinessConnection` object (as `getBusinessConnection` returns it).
pub fn connection(c: &Value) -> std::result::Result<Connection, String> {
    let id = s(c, "id").ok_or("a business connection without an id")?;
    let u = c
        .get("user")
        .ok_or("a business connection without a user")?;
    let user_id = u
        .get("id")
        .and_then(Value::as_i64)
        .ok_or("a business connection's user without an id")?;
    let mut rights: Vec<String> = c
        .get("rights")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.as_bool() == Some(true))
        .map(|(k, _)| k.clone())
        .collect();
    if c.get("can_reply").and_then(Value::as_bool) == Some(true)
        && !rights.iter().any(|r| r == "can_reply")
    {
        rights.push("can_reply".into());
    }
    Ok(Connection {
        id,
        user: user(u),
        user_id,
        user_chat_id: c.get("user_chat_id").and_then(Value::as_i64),
        date: c.get("date").and_then(Value::as_i64),
        enabled: c
            .get("is_enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        rights,
    })
}

/// The id scope of a chat's messages: the connected account's for a
/// one-to-one chat, as its export numbers them.
fn scope_of(chat: &Chat, owner: Option<&Connection>) -> u64 {
    match owner {
        Some(o) if chat.kind == "personal_chat" => o.user_id.max(0) as u64,
        _ => 0,
    }
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn chat_of(c: &Value) -> std::result::Result<Chat, String> {
    let id = c
        .get("id")
        .and_then(Value::as_i64)
        .ok_or("a chat without an id")?;
    let kind = match c.get("type").and_then(Value::as_str) {
        Some("private") => "personal_chat",
        Some("group") => "private_group",
        Some("supergroup") => "supergroup",
        Some("channel") => "channel",
        _ => "unknown",
    };
    let name = s(c, "title").or_else(|| {
        let n = [s(c, "first_name"), s(c, "last_name")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!n.is_empty()).then_some(n)
    });
    Ok(Chat {
        id,
        name,
        kind: kind.into(),
    })
}

fn user(u: &Value) -> Person {
    let name = [s(u, "first_name"), s(u, "last_name")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    Person {
        peer: u.get("id").and_then(Value::as_i64).map(Peer::User),
        raw_id: None,
        name: (!name.is_empty()).then_some(name).or_else(|| s(u, "title")),
        username: s(u, "username"),
        phone: None,
    }
}

/// Splits `text` by entities whose offsets count UTF-16 code units.
fn entities(text: &str, list: Option<&Value>) -> Vec<Entity> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let mut out = Vec::new();
    for e in list.and_then(Value::as_array).into_iter().flatten() {
        let (Some(off), Some(len)) = (
            e.get("offset").and_then(Value::as_u64),
            e.get("length").and_then(Value::as_u64),
        ) else {
            continue;
        };
        let (off, len) = (off as usize, len as usize);
        let Some(slice) = units.get(off..off.saturating_add(len)) else {
            continue;
        };
        out.push(Entity {
            kind: s(e, "type").unwrap_or_else(|| "unknown".into()),
            text: String::from_utf16_lossy(slice),
            attrs: e
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !matches!(k.as_str(), "type" | "offset" | "length"))
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        });
    }
    out
}

fn message_id(chat: &Chat, m: &Value, scope: u64) -> std::result::Result<ItemId, String> {
    let id = m
        .get("message_id")
        .and_then(Value::as_i64)
        .ok_or("a message without a message_id")?;
    Ok(ItemId::new(scope, chat.id, id))
}

fn message(
    m: &Value,
    owner: Option<&Connection>,
) -> std::result::Result<(Item, Vec<FileRef>), String> {
    let chat = chat_of(m.get("chat").ok_or("a message without a chat")?)?;
    let id = message_id(&chat, m, scope_of(&chat, owner))?;
    let sender = m.get("from").map(user).or_else(|| {
        m.get("sender_chat").map(|c| Person {
            peer: c.get("id").and_then(Value::as_i64).map(Peer::Channel),
            name: s(c, "title"),
            ..Default::default()
        })
    });
    let text = s(m, "text").filter(|t| !t.is_empty());
    let (text, ents) = match (text, s(m, "caption")) {
        (Some(t), _) => {
            let e = entities(&t, m.get("entities"));
            (t, e)
        }
        (None, Some(c)) => {
            let e = entities(&c, m.get("caption_entities"));
            (c, e)
        }
        (None, None) => (String::new(), vec![]),
    };
    let forwarded_from =
        m.get("forward_origin")
            .map(|o| match o.get("type").and_then(Value::as_str) {
                Some("user") => o.get("sender_user").map(user).unwrap_or_default(),
                Some("chat") | Some("channel") => o
                    .get("sender_chat")
                    .or_else(|| o.get("chat"))
                    .map(user)
                    .unwrap_or_default(),
                _ => Person {
                    name: s(o, "sender_user_name"),
                    ..Default::default()
                },
            });
    let mut attachments = Vec::new();
    let mut files = Vec::new();
    let file_kinds: [(&str, AttachmentKind); 8] = [
        ("document", AttachmentKind::File),
        ("video", AttachmentKind::Video),
        ("voice", AttachmentKind::Voice),
        ("audio", AttachmentKind::Audio),
        ("animation", AttachmentKind::Animation),
        ("sticker", AttachmentKind::Sticker),
        ("video_note", AttachmentKind::VideoMessage),
        ("photo", AttachmentKind::Photo),
    ];
    for (key, kind) in file_kinds {
        // A photo comes as sizes: the largest is the photo.
        let f = match m.get(key) {
            Some(Value::Array(sizes)) => sizes.last(),
            other => other,
        };
        let Some(f) = f else { continue };
        let mut a = Attachment::new(kind, None);
        a.file_name = s(f, "file_name");
        a.mime_type = s(f, "mime_type");
        a.declared_size = f.get("file_size").and_then(Value::as_u64);
        a.width = f.get("width").and_then(Value::as_u64);
        a.height = f.get("height").and_then(Value::as_u64);
        a.duration_seconds = f.get("duration").and_then(Value::as_u64);
        a.performer = s(f, "performer");
        a.title = s(f, "title");
        let file_id = s(f, "file_id").unwrap_or_default();
        a.missing = Some(format!(
            "the Bot API delivers files as ids; not downloaded (file_id {file_id})"
        ));
        if !file_id.is_empty() {
            files.push(FileRef {
                index: attachments.len(),
                file_id,
            });
        }
        attachments.push(a);
    }
    let mut participants: Vec<Person> = sender.iter().cloned().collect();
    if chat.kind == "personal_chat" {
        let peer = Person {
            peer: Some(Peer::User(chat.id)),
            name: chat.name.clone(),
            ..Default::default()
        };
        if !participants.iter().any(|p| p.same_as(&peer)) {
            participants.push(peer);
        }
    }
    if let Some(o) = owner
        && !participants.iter().any(|p| p.same_as(&o.user))
    {
        participants.push(o.user.clone());
    }
    let raw = m.to_string();
    let item = Item {
        id,
        date: m.get("date").and_then(Value::as_i64),
        time_basis: TimeBasis::Epoch,
        edited: m.get("edit_date").and_then(Value::as_i64),
        sender,
        participants,
        body: Body::Message(Box::new(Message {
            text,
            entities: ents,
            reply_to: m
                .get("reply_to_message")
                .and_then(|r| r.get("message_id"))
                .and_then(Value::as_i64),
            forwarded_from,
            via_bot: m.get("via_bot").and_then(|b| s(b, "username")),
            author: s(m, "author_signature"),
            ..Default::default()
        })),
        attachments,
        anomalies: vec![],
        source_format: FORMAT.into(),
        fingerprint: sha256(raw.as_bytes()),
        raw,
        chat,
    };
    Ok((item, files))
}

fn deletions(d: &Value, owner: Option<&Connection>) -> std::result::Result<Vec<Item>, String> {
    let chat = chat_of(
        d.get("chat")
            .ok_or("deleted_business_messages without a chat")?,
    )?;
    let ids = d
        .get("message_ids")
        .and_then(Value::as_array)
        .ok_or("deleted_business_messages without message_ids")?;
    let mut out = Vec::new();
    for m in ids {
        let Some(mid) = m.as_i64() else {
            return Err(format!("message id {m} is not a number"));
        };
        let target = ItemId::new(scope_of(&chat, owner), chat.id, mid);
        let raw =
            serde_json::json!({ "deleted_business_messages": d, "message_id": mid }).to_string();
        let mut participants = Vec::new();
        if chat.kind == "personal_chat" {
            participants.push(Person {
                peer: Some(Peer::User(chat.id)),
                name: chat.name.clone(),
                ..Default::default()
            });
        }
        if let Some(o) = owner {
            participants.push(o.user.clone());
        }
        out.push(Item {
            id: ItemId {
                part: Part::Deletion,
                ..target
            },
            chat: chat.clone(),
            date: None,
            time_basis: TimeBasis::Unknown,
            edited: None,
            sender: None,
            participants,
            body: Body::Deletion(Deletion {
                target,
                mode: "unknown".into(),
                read_state: "unknown".into(),
            }),
            attachments: vec![],
            anomalies: vec!["the Bot API does not date deletions".into()],
            source_format: FORMAT.into(),
            fingerprint: sha256(raw.as_bytes()),
            raw,
        });
    }
    Ok(out)
}
