//! Telegram Desktop's JSON export (`result.json`), streamed.
//!
//! [`parse`] walks the file with serde without ever holding more than one
//! message: each message is handed to a [`Sink`] as its raw JSON text (kept
//! verbatim as evidence), together with the header of its chat. Both shapes are
//! accepted: a single-chat export (the root is the chat) and a full-account export
//! (`personal_information`, `chats.list`, `left_chats.list`). Unknown keys are
//! skipped. The bytes pass through [`super::repair::RepairReader`] first.
//!
//! [`ChatContext::convert`] turns one raw message into a [`crate::model::Item`]:
//! the three sender-id eras, string-or-array `text`, `date` without
//! `date_unixtime` (read in an explicit zone, recorded on the item), placeholder
//! times, media placeholders, duplicate ids, calls and their direction.

use super::json::{self, Json, Object};
use super::repair::{RepairReader, RepairStats};
use crate::canon::{self, Canon};
use crate::error::{Error, Result};
use crate::model::*;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::path::Path;

pub const FORMAT: &str = "telegram-desktop-json";

/// A chat as its header describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatHeader {
    /// The `id`, when it is a 64-bit integer.
    pub id: Option<i64>,
    /// The `id`'s JSON text, when it is anything else (past 64 bits, a
    /// fraction, text, null, an object): the chat's id is derived from it.
    pub id_text: Option<String>,
    pub name: Option<String>,
    pub kind: Option<String>,
    /// Listed under `left_chats`.
    pub left: bool,
}

impl ChatHeader {
    /// Takes the JSON text of the chat's `name`, `type` or `id` (the last of
    /// each wins). A number serde cannot hold (`1e999`) is kept as its text.
    pub fn set_field(&mut self, key: &str, raw: &str) {
        let v = serde_json::from_str::<Value>(raw).ok();
        let text = || raw.trim().to_string();
        match key {
            "name" => self.name = v.map_or_else(|| Some(text()), |v| as_string(&v)),
            "type" => self.kind = v.map_or_else(|| Some(text()), |v| as_string(&v)),
            _ => {
                // The text as written: serde would round a long number.
                self.id = v.as_ref().and_then(as_i64);
                self.id_text = self.id.is_none().then(text);
            }
        }
    }

    /// Whether an `id` key was seen, readable or not.
    pub fn has_id(&self) -> bool {
        self.id.is_some() || self.id_text.is_some()
    }

    /// The chat's id, and why it was derived when it was. A chat whose id is
    /// missing or not a 64-bit integer keeps its messages: its id is derived
    /// (negative, so that it never meets a real one) from the id's text, or
    /// else from the chat's name, as HTML exports derive theirs.
    pub fn resolve_id(&self) -> (i64, Option<String>) {
        if let Some(id) = self.id {
            return (id, None);
        }
        let (seed, why) = match (&self.id_text, &self.name) {
            (Some(text), _) => (
                format!("telegram-json-chat-id:{text}"),
                format!("chat id {} is not a 64-bit integer", clip(text)),
            ),
            (None, Some(name)) => (
                format!("telegram-json-chat-name:{name}"),
                "chat has no id".to_string(),
            ),
            (None, None) => (
                "telegram-json-chat-name:".to_string(),
                "chat has no id and no name".to_string(),
            ),
        };
        let id = derived_chat_id(seed.as_bytes());
        let basis = if self.id_text.is_some() {
            "its text"
        } else {
            "its name"
        };
        (id, Some(format!("{why}: id {id} derived from {basis}")))
    }
}

/// A negative id from a hash: never a real chat's.
pub(crate) fn derived_chat_id(seed: &[u8]) -> i64 {
    -hash63(&sha256(seed)).max(1)
}

/// At most 64 characters of an id's text, for a message.
fn clip(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// The export's owner, from `personal_information`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub user_id: Option<i64>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_number: Option<String>,
    pub username: Option<String>,
}

impl Owner {
    /// Reads `personal_information` from its JSON text. A field serde cannot
    /// hold (a number past `f64`) is left out; the others are read.
    pub fn from_json(raw: &str) -> Owner {
        let fields: BTreeMap<String, Box<RawValue>> = serde_json::from_str(raw).unwrap_or_default();
        let v = |k: &str| {
            fields
                .get(k)
                .and_then(|r| serde_json::from_str::<Value>(r.get()).ok())
        };
        let s = |k: &str| v(k).as_ref().and_then(as_string);
        Owner {
            user_id: v("user_id").as_ref().and_then(as_i64),
            first_name: s("first_name"),
            last_name: s("last_name"),
            phone_number: s("phone_number"),
            username: s("username"),
        }
    }

    pub fn person(&self) -> Person {
        let name = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Person {
            peer: self.user_id.map(Peer::User),
            raw_id: None,
            name: (!name.is_empty()).then_some(name),
            username: self.username.clone().filter(|u| !u.is_empty()),
            phone: self.phone_number.clone().filter(|p| !p.is_empty()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    SingleChat,
    FullAccount,
}

/// Receives the parts of an export as the parser meets them.
pub trait Sink {
    fn owner(&mut self, owner: Owner) -> Result<()>;
    fn chat_start(&mut self, chat: &ChatHeader) -> Result<()>;
    /// `raw` is the message's JSON text, exactly as it stands in the file.
    fn message(&mut self, chat: &ChatHeader, raw: &str) -> Result<()>;
    /// A sink that only needs to know a message was there says so: the parser
    /// then checks each message without copying its text, and calls
    /// [`Sink::counted`] instead of [`Sink::message`].
    fn counts_only(&self) -> bool {
        false
    }
    fn counted(&mut self) {}
}

/// Streams `reader` into `sink`. `path` names the file in errors, which give
/// the line and column of a syntax error. The importer runs the faster
/// [`super::check`] and [`super::split`] instead; this serde-based reader is
/// the reference their tests compare them with.
pub fn parse<R: Read, S: Sink>(
    reader: R,
    sink: &mut S,
    path: &Path,
) -> Result<(Shape, RepairStats)> {
    let mut repair = RepairReader::new(reader);
    let mut sink_error = None;
    let shape = {
        // serde_json reads a reader byte by byte; a BufReader gives it the
        // buffered fast path.
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(
            64 * 1024,
            &mut repair,
        ));
        let result = RootSeed {
            sink,
            err: &mut sink_error,
            depth: 0,
        }
        .deserialize(&mut de)
        .and_then(|shape| de.end().map(|_| shape));
        match (result, sink_error) {
            (_, Some(e)) => return Err(e),
            (Ok(Some(shape)), None) => shape,
            (Ok(None), None) => {
                return Err(Error::input(
                    path,
                    "not a Telegram Desktop export: the top-level object has neither \
                     'messages' nor 'chats'",
                ));
            }
            (Err(e), None) => return Err(json_error(path, &e)),
        }
    };
    Ok((shape, repair.stats))
}

fn json_error(path: &Path, e: &serde_json::Error) -> Error {
    if e.is_io() {
        return Error::input(path, format!("read failed: {e}"));
    }
    let msg = e.to_string();
    // serde_json appends " at line L column C"; keep the message, put the line first.
    let text = msg.split(" at line ").next().unwrap_or(&msg).to_string();
    Error::InputLine {
        path: path.to_path_buf(),
        line: e.line() as u64,
        message: format!("column {}: invalid JSON: {text}", e.column()),
    }
}

struct RootSeed<'a, S> {
    sink: &'a mut S,
    err: &'a mut Option<Error>,
    depth: u8,
}

fn sink_failed<E: de::Error>(slot: &mut Option<Error>, e: Error) -> E {
    *slot = Some(e);
    E::custom("aborted by the importer")
}

impl<'de, S: Sink> DeserializeSeed<'de> for RootSeed<'_, S> {
    type Value = Option<Shape>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

pub(crate) fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl<'de, S: Sink> Visitor<'de> for RootSeed<'_, S> {
    type Value = Option<Shape>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Telegram export object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let RootSeed { sink, err, depth } = self;
        let mut header = ChatHeader {
            left: depth == 2,
            ..Default::default()
        };
        let mut shape = None;
        let mut buffered: Option<Vec<Box<RawValue>>> = None;
        let mut had_messages = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" | "type" | "id" => {
                    header.set_field(&key, map.next_value::<Box<RawValue>>()?.get())
                }
                "messages" => {
                    if had_messages {
                        return Err(de::Error::custom("a second 'messages' list in one chat"));
                    }
                    had_messages = true;
                    shape = Some(Shape::SingleChat);
                    if header.has_id() {
                        sink.chat_start(&header)
                            .map_err(|e| sink_failed::<A::Error>(err, e))?;
                        map.next_value_seed(MessagesSeed {
                            sink: &mut *sink,
                            err: &mut *err,
                            header: &header,
                        })?;
                    } else {
                        // The header comes after the messages (never seen from
                        // Telegram Desktop), or there is none: hold them until
                        // the chat's object ends.
                        buffered = Some(map.next_value()?);
                    }
                }
                "personal_information" if depth == 0 => {
                    let v: Box<RawValue> = map.next_value()?;
                    sink.owner(Owner::from_json(v.get()))
                        .map_err(|e| sink_failed::<A::Error>(err, e))?;
                }
                "chats" | "left_chats" if depth == 0 => {
                    shape = Some(Shape::FullAccount);
                    map.next_value_seed(ChatListSeed {
                        sink: &mut *sink,
                        err: &mut *err,
                        left: key == "left_chats",
                    })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(messages) = buffered {
            sink.chat_start(&header)
                .map_err(|e| sink_failed::<A::Error>(err, e))?;
            for raw in messages {
                sink.message(&header, raw.get())
                    .map_err(|e| sink_failed::<A::Error>(err, e))?;
            }
        }
        Ok(shape)
    }
}

struct ChatListSeed<'a, S> {
    sink: &'a mut S,
    err: &'a mut Option<Error>,
    left: bool,
}

impl<'de, S: Sink> DeserializeSeed<'de> for ChatListSeed<'_, S> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: Sink> Visitor<'de> for ChatListSeed<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with a chat list")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == "list" {
                map.next_value_seed(ChatSeqSeed {
                    sink: &mut *self.sink,
                    err: &mut *self.err,
                    left: self.left,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct ChatSeqSeed<'a, S> {
    sink: &'a mut S,
    err: &'a mut Option<Error>,
    left: bool,
}

impl<'de, S: Sink> DeserializeSeed<'de> for ChatSeqSeed<'_, S> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: Sink> Visitor<'de> for ChatSeqSeed<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of chats")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(RootSeed {
                sink: &mut *self.sink,
                err: &mut *self.err,
                depth: if self.left { 2 } else { 1 },
            })?
            .is_some()
        {}
        Ok(())
    }
}

struct MessagesSeed<'a, S> {
    sink: &'a mut S,
    err: &'a mut Option<Error>,
    header: &'a ChatHeader,
}

impl<'de, S: Sink> DeserializeSeed<'de> for MessagesSeed<'_, S> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: Sink> Visitor<'de> for MessagesSeed<'_, S> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of messages")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.sink.counts_only() {
            while seq.next_element::<IgnoredAny>()?.is_some() {
                self.sink.counted();
            }
            return Ok(());
        }
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            self.sink
                .message(self.header, raw.get())
                .map_err(|e| sink_failed::<A::Error>(self.err, e))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- conversion

/// The three sentences Telegram writes in place of a path when it did not
/// export a file, recognised by their opening words.
fn placeholder_reason(v: &str) -> Option<String> {
    let t = v.trim();
    let is = t.starts_with('(')
        && t.ends_with(')')
        && ["(File ", "(Photo ", "(Story "]
            .iter()
            .any(|p| t.starts_with(p));
    is.then(|| t.trim_start_matches('(').trim_end_matches(')').to_string())
}

/// Seen message ids of one chat, as sorted disjoint inclusive intervals, so that
/// memory grows with the gaps in the id sequence, not with the chat's length.
#[derive(Default)]
pub struct SeenIds {
    ranges: BTreeMap<i64, i64>,
    repeats: HashMap<i64, u32>,
}

impl SeenIds {
    /// Records `id` and returns how many times it was seen before.
    pub fn see(&mut self, id: i64) -> u32 {
        if let Some((_, &end)) = self.ranges.range(..=id).next_back()
            && end >= id
        {
            let n = self.repeats.entry(id).or_insert(0);
            *n += 1;
            return *n;
        }
        let mut start = id;
        let mut end = id;
        if let Some((&s, &e)) = self.ranges.range(..id).next_back()
            && e.checked_add(1) == Some(id)
        {
            start = s;
        }
        if let Some(next) = id.checked_add(1)
            && let Some(&e) = self.ranges.get(&next)
        {
            self.ranges.remove(&next);
            end = e;
        }
        self.ranges.insert(start, end);
        0
    }
}

/// How local `date` values are read when an export has no `date_unixtime`.
#[derive(Clone, Debug)]
pub struct Zone {
    pub name: String,
    tz: jiff::tz::TimeZone,
}

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    /// An IANA zone name (`Europe/Berlin`), `UTC`, or a fixed offset (`+02:00`).
    pub fn parse(name: &str) -> Result<Zone> {
        if name.eq_ignore_ascii_case("utc") || name == "Z" {
            return Ok(Zone::utc());
        }
        let tz = if let Some(rest) = name.strip_prefix(['+', '-']) {
            let sign = if name.starts_with('-') { -1 } else { 1 };
            let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
            let secs = match (h.parse::<i32>(), m.parse::<i32>()) {
                (Ok(h), Ok(m)) if h <= 25 && m < 60 => sign * (h * 3600 + m * 60),
                _ => {
                    return Err(Error::Usage(format!(
                        "time zone '{name}' is not a UTC offset"
                    )));
                }
            };
            let off = jiff::tz::Offset::from_seconds(secs)
                .map_err(|e| Error::Usage(format!("time zone '{name}': {e}")))?;
            jiff::tz::TimeZone::fixed(off)
        } else {
            jiff::tz::TimeZone::get(name)
                .map_err(|e| Error::Usage(format!("unknown time zone '{name}': {e}")))?
        };
        Ok(Zone {
            name: name.to_string(),
            tz,
        })
    }

    pub fn local_to_epoch(&self, s: &str) -> Option<i64> {
        let dt: jiff::civil::DateTime = s.trim().parse().ok()?;
        Some(
            dt.to_zoned_datetime(self.tz.clone())
                .ok()?
                .timestamp()
                .as_second(),
        )
    }
}

/// What one file taught us about its chats, and the state kept while reading it.
pub struct ChatContext {
    chat: Chat,
    scope: u64,
    owner: Option<Person>,
    /// The other side of a one-to-one chat.
    peer: Option<Person>,
    zone: Zone,
    seen: SeenIds,
    /// Why the chat's id was derived, noted on each of its items.
    derived_id: Option<String>,
    /// Scratch space for a message's canonical form (reused).
    canonical: Vec<u8>,
}

const ONE_TO_ONE: &[&str] = &[
    "personal_chat",
    "bot_chat",
    "saved_messages",
    "replies",
    "verification_codes",
];

impl ChatContext {
    pub fn new(header: &ChatHeader, owner: Option<&Owner>, zone: Zone) -> ChatContext {
        let kind = header.kind.clone().unwrap_or_else(|| "unknown".into());
        let (id, derived_id) = header.resolve_id();
        // Channels and supergroups number their messages globally; everything
        // else numbers them per account.
        let global = kind.contains("supergroup") || kind.contains("channel");
        let owner_id = owner.and_then(|o| o.user_id).unwrap_or(0);
        let scope = if global { 0 } else { owner_id.max(0) as u64 };
        let peer = (kind == "personal_chat" || kind == "bot_chat").then(|| Person {
            // A derived id names no user.
            peer: derived_id.is_none().then_some(Peer::User(id)),
            name: header.name.clone(),
            ..Default::default()
        });
        ChatContext {
            chat: Chat {
                id,
                name: header.name.clone(),
                kind,
            },
            scope,
            owner: owner.map(Owner::person),
            peer,
            zone,
            seen: SeenIds::default(),
            derived_id,
            canonical: Vec::new(),
        }
    }

    fn is_one_to_one(&self) -> bool {
        ONE_TO_ONE.contains(&self.chat.kind.as_str())
    }

    /// Turns one raw message into an item. Attachment content is not read here:
    /// each attachment with a `source_path` and no `missing` reason is for the
    /// caller to load.
    ///
    /// Nothing the export holds is lost: a message that cannot be read as a
    /// message (not JSON, not an object) becomes an item of its raw text
    /// with the reason, and one without a usable id gets an id made from its
    /// content ([`Part::Unnumbered`]).
    pub fn convert(&mut self, raw: &str) -> Item {
        let mut anomalies: Vec<String> = self.derived_id.iter().cloned().collect();
        let repaired;
        let v = match json::parse(raw) {
            Ok(v) => v,
            Err(e) => {
                let Some(fixed) = json::replace_lone_surrogates(raw) else {
                    return self.unreadable(raw, format!("message is not valid JSON: {e}"));
                };
                repaired = fixed;
                match json::parse(&repaired) {
                    Ok(v) => {
                        anomalies.push(
                            "text holds a lone UTF-16 surrogate escape, read as U+FFFD (the raw message keeps it)"
                                .to_string(),
                        );
                        v
                    }
                    Err(e) => {
                        return self.unreadable(raw, format!("message is not valid JSON: {e}"));
                    }
                }
            }
        };
        let Some(obj) = v.as_object() else {
            return self.unreadable(
                raw,
                format!("a message must be an object, found {}", snippet(raw)),
            );
        };
        let id = match obj.get("id").and_then(|v| v.as_i64()) {
            Some(msg_id) => {
                let dup = self.seen.see(msg_id);
                if dup > 0 {
                    anomalies.push(format!(
                        "duplicate message id {msg_id} in chat {} (occurrence {}): kept as its own item",
                        self.chat.id,
                        dup + 1
                    ));
                }
                ItemId {
                    dup,
                    ..ItemId::new(self.scope, self.chat.id, msg_id)
                }
            }
            None => {
                let shown = obj.get("id").map_or_else(
                    || "no id".to_string(),
                    |v| format!("id {}", snippet(&v.to_value().to_string())),
                );
                anomalies.push(format!(
                    "message has {shown}, not a 64-bit integer: kept under an id made from its content"
                ));
                self.unnumbered_id(raw)
            }
        };
        let s = |k: &str| obj.get(k).and_then(Json::string);

        // Time.
        let (date, time_basis) =
            self.time(obj.get("date_unixtime"), s("date"), &mut anomalies, "date");
        let edited = match obj.get("edited_unixtime").or(obj.get("edited")) {
            None => None,
            Some(_) => {
                self.time(
                    obj.get("edited_unixtime"),
                    s("edited"),
                    &mut anomalies,
                    "edited",
                )
                .0
            }
        };

        let kind = s("type").unwrap_or_else(|| "message".into());
        let sender = if kind == "service" {
            person(obj.get("actor"), obj.get("actor_id"), &mut anomalies)
        } else {
            person(obj.get("from"), obj.get("from_id"), &mut anomalies)
        };
        let mut attachments = attachments(obj);
        let body = match kind.as_str() {
            "message" => Body::Message(Box::new(message(obj, &mut anomalies))),
            "unsupported" => Body::Unsupported,
            "service" => self.service(obj, sender.as_ref(), date),
            other => {
                anomalies.push(format!(
                    "unknown message type '{other}': kept with its raw JSON"
                ));
                Body::Unsupported
            }
        };
        for a in &mut attachments {
            if a.missing.is_some() {
                anomalies.push(format!("{} not in the export", a.kind.as_str()));
            }
        }
        let mut participants: Vec<Person> = Vec::new();
        let mut add = |p: &Person| {
            if !participants.iter().any(|q| q.same_as(p)) {
                participants.push(p.clone());
            }
        };
        if let Some(p) = &sender {
            add(p);
        }
        if let Some(p) = &self.owner {
            add(p);
        }
        if let Some(p) = &self.peer {
            add(p);
        }
        if let Body::Call(c) = &body {
            for p in &c.participants {
                add(p);
            }
        }
        let fingerprint =
            canon::fingerprint(Canon::Minified, raw, &time_basis, &mut self.canonical);
        Item {
            id,
            chat: self.chat.clone(),
            date,
            time_basis,
            edited,
            sender,
            participants,
            body,
            attachments,
            anomalies,
            source_format: FORMAT.into(),
            raw: raw.to_string(),
            fingerprint,
        }
    }

    /// The id of a message whose own id cannot be used: from its minified
    /// text, so that importing the same export again finds the same item.
    fn unnumbered_id(&mut self, raw: &str) -> ItemId {
        canon::minify_into(raw, &mut self.canonical);
        let n = hash63(&sha256(&self.canonical));
        ItemId {
            part: Part::Unnumbered,
            ..ItemId::new(self.scope, self.chat.id, n)
        }
    }

    /// A message that cannot be read as one, kept as its raw text with the
    /// reason, filed where the chat's items are.
    fn unreadable(&mut self, raw: &str, reason: String) -> Item {
        let id = self.unnumbered_id(raw);
        let fingerprint = sha256(&self.canonical);
        let participants = self.owner.iter().chain(&self.peer).cloned().collect();
        Item {
            id,
            chat: self.chat.clone(),
            date: None,
            time_basis: TimeBasis::Unknown,
            edited: None,
            sender: None,
            participants,
            body: Body::Unsupported,
            attachments: Vec::new(),
            anomalies: std::iter::once(format!("{reason}: kept as its raw text"))
                .chain(self.derived_id.iter().cloned())
                .collect(),
            source_format: FORMAT.into(),
            raw: raw.to_string(),
            fingerprint,
        }
    }

    fn time(
        &self,
        unix: Option<&Json<'_>>,
        local: Option<String>,
        anomalies: &mut Vec<String>,
        what: &str,
    ) -> (Option<i64>, TimeBasis) {
        let epoch = unix.and_then(Json::int);
        if let Some(e) = epoch
            && e != 0
        {
            return (Some(e), TimeBasis::Epoch);
        }
        if unix.is_some() && epoch.is_none() {
            anomalies.push(format!("{what}_unixtime is not a number"));
        }
        if epoch == Some(0) {
            anomalies.push(format!("{what}_unixtime is the placeholder 0"));
        }
        match local {
            Some(l) if l.starts_with("1970-") => {
                anomalies.push(format!("{what} is the 1970 placeholder"));
                (None, TimeBasis::Unknown)
            }
            Some(l) => match self.zone.local_to_epoch(&l) {
                Some(e) => {
                    anomalies.push(format!(
                        "{what} read as local time in {} (no {what}_unixtime)",
                        self.zone.name
                    ));
                    (
                        Some(e),
                        TimeBasis::LocalTime {
                            zone: self.zone.name.clone(),
                        },
                    )
                }
                None => {
                    anomalies.push(format!("{what} '{l}' is not a date"));
                    (None, TimeBasis::Unknown)
                }
            },
            None => {
                if epoch.is_none() {
                    anomalies.push(format!("no {what}"));
                }
                (None, TimeBasis::Unknown)
            }
        }
    }

    fn service(&self, obj: &Object<'_>, actor: Option<&Person>, date: Option<i64>) -> Body {
        let s = |k: &str| obj.get(k).and_then(Json::string);
        let action = s("action").unwrap_or_else(|| "custom".into());
        let actor_name = actor
            .and_then(|a| a.name.clone())
            .unwrap_or_else(|| "someone".into());
        let members: Vec<String> = obj
            .get("members")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .map(|m| m.string().unwrap_or_else(|| "(deleted account)".into()))
                    .collect()
            })
            .unwrap_or_default();
        let title = s("title").or_else(|| s("new_title"));
        let u = |k: &str| {
            obj.get(k)
                .and_then(Json::int)
                .and_then(|x| u64::try_from(x).ok())
        };
        let call = |kind: &str, duration: Option<u64>, outcome: String, started: Option<i64>| {
            let direction = self.direction(actor);
            let mut participants: Vec<Person> = actor.into_iter().cloned().collect();
            for p in [&self.owner, &self.peer].into_iter().flatten() {
                if !participants.iter().any(|q| q.same_as(p)) {
                    participants.push(p.clone());
                }
            }
            Body::Call(Call {
                kind: kind.into(),
                started,
                duration_seconds: duration,
                outcome,
                direction,
                participants,
            })
        };
        match action.as_str() {
            "phone_call" => {
                let outcome = s("discard_reason").unwrap_or_else(|| "unknown".into());
                return call("phone_call", u("duration_seconds"), outcome, date);
            }
            "conference_call" => {
                let flag = |k: &str| obj.get(k).and_then(Json::as_bool).unwrap_or(false);
                let outcome = if flag("is_missed") {
                    "missed"
                } else if flag("is_active") {
                    "active"
                } else {
                    "ended"
                };
                return call(
                    "conference_call",
                    u("duration_seconds"),
                    outcome.into(),
                    date,
                );
            }
            "group_call" => {
                let d = u("duration").or(u("duration_seconds"));
                let outcome = if d.is_some() { "ended" } else { "started" };
                return call("group_call", d, outcome.into(), date);
            }
            "group_call_scheduled" => {
                let when = obj.get("schedule_date").and_then(Json::int);
                return call(
                    "group_call_scheduled",
                    None,
                    "scheduled".into(),
                    when.or(date),
                );
            }
            _ => {}
        }
        let list = members.join(", ");
        let text = match action.as_str() {
            "create_group" | "create_channel" => match &title {
                Some(t) if list.is_empty() => format!("{actor_name} created «{t}»"),
                Some(t) => format!("{actor_name} created «{t}» with {list}"),
                None => format!("{actor_name} created the chat"),
            },
            "invite_members" => format!("{actor_name} added {list}"),
            "remove_members" => format!("{actor_name} removed {list}"),
            "join_group_by_link" => match s("inviter") {
                Some(i) => format!("{actor_name} joined by a link from {i}"),
                None => format!("{actor_name} joined by a link"),
            },
            "edit_group_title" => format!(
                "{actor_name} changed the title to «{}»",
                title.clone().unwrap_or_default()
            ),
            "pin_message" => match obj.get("message_id").and_then(Json::int) {
                Some(m) => format!("{actor_name} pinned message {m}"),
                None => format!("{actor_name} pinned a message"),
            },
            "migrate_to_supergroup" => format!("{actor_name} converted the group to a supergroup"),
            "migrate_from_group" => format!(
                "supergroup created from the group «{}»",
                title.clone().unwrap_or_default()
            ),
            "clear_history" => format!("{actor_name} cleared the history"),
            "joined_telegram" => format!("{actor_name} joined Telegram"),
            "custom" => s("information_text").unwrap_or_default(),
            other => {
                let mut t = format!("{actor_name}: {}", other.replace('_', " "));
                if let Some(ti) = &title {
                    t.push_str(&format!(" «{ti}»"));
                }
                if !list.is_empty() {
                    t.push_str(&format!(" ({list})"));
                }
                t
            }
        };
        Body::Service(ServiceEvent {
            action,
            actor: actor.cloned(),
            title,
            members,
            message_id: obj.get("message_id").and_then(Json::int),
            text,
        })
    }

    /// A call is outgoing when the owner made it; in a one-to-one chat without
    /// owner information, when the peer did not.
    fn direction(&self, actor: Option<&Person>) -> Direction {
        let Some(actor_peer) = actor.and_then(|a| a.peer) else {
            return Direction::Unknown;
        };
        if let Some(owner) = self.owner.as_ref().and_then(|o| o.peer) {
            return if owner == actor_peer {
                Direction::Outgoing
            } else {
                Direction::Incoming
            };
        }
        if self.is_one_to_one() && self.peer.is_some() {
            let id = self.chat.id;
            let is_peer = actor_peer == Peer::User(id) || actor_peer == Peer::from_number(id);
            return if is_peer {
                Direction::Incoming
            } else {
                Direction::Outgoing
            };
        }
        Direction::Unknown
    }
}

fn snippet(s: &str) -> String {
    let t: String = s.chars().take(60).collect();
    if t.len() < s.len() {
        format!("{t}…")
    } else {
        t
    }
}

fn person(
    name: Option<&Json<'_>>,
    id: Option<&Json<'_>>,
    anomalies: &mut Vec<String>,
) -> Option<Person> {
    if name.is_none() && id.is_none() {
        return None;
    }
    let name = name.and_then(Json::string);
    let raw = id.and_then(Json::string);
    let peer = match id {
        Some(Json::Number(n)) => n.as_i64().filter(|n| *n >= 0).map(Peer::from_number),
        Some(Json::String(s)) => Peer::parse_str(s),
        _ => None,
    };
    if peer.is_none() && raw.is_some() {
        anomalies.push(format!(
            "sender id '{}' is not a Telegram id: kept as written",
            raw.clone().unwrap_or_default()
        ));
    }
    Some(Person {
        peer,
        raw_id: if peer.is_none() { raw } else { None },
        name: name.or_else(|| id.is_some().then(|| "(deleted account)".into())),
        username: None,
        phone: None,
    })
}

/// The concatenated plain text of `text` (string or array) and its entities
/// (from `text_entities` when present, else from the array form).
fn text_and_entities(obj: &Object<'_>) -> (String, Vec<Entity>) {
    fn entity(o: &Object<'_>) -> Entity {
        Entity {
            kind: o
                .get("type")
                .and_then(Json::string)
                .unwrap_or_else(|| "plain".into()),
            text: o.get("text").and_then(Json::string).unwrap_or_default(),
            attrs: o
                .entries()
                .into_iter()
                .filter(|(k, _)| *k != "type" && *k != "text")
                .map(|(k, v)| (k.to_string(), v.to_json()))
                .collect(),
        }
    }
    let parts: Vec<Entity> = match obj.get("text") {
        Some(Json::String(s)) => vec![Entity {
            kind: "plain".into(),
            text: s.to_string(),
            attrs: vec![],
        }],
        Some(Json::Array(a)) => a
            .iter()
            .filter_map(|p| match p {
                Json::String(s) => Some(Entity {
                    kind: "plain".into(),
                    text: s.to_string(),
                    attrs: vec![],
                }),
                Json::Object(o) => Some(entity(o)),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    let text: String = parts.iter().map(|e| e.text.as_str()).collect();
    let entities = match obj.get("text_entities").and_then(Json::as_array) {
        Some(a) => a.iter().filter_map(Json::as_object).map(entity).collect(),
        None => parts,
    };
    let entities = entities
        .into_iter()
        .filter(|e| !(e.kind == "plain" && e.attrs.is_empty()))
        .collect();
    (text, entities)
}

fn message(obj: &Object<'_>, anomalies: &mut Vec<String>) -> Message {
    let s = |k: &str| obj.get(k).and_then(Json::string);
    let (text, entities) = text_and_entities(obj);
    let forwarded_from = match (obj.get("forwarded_from"), obj.get("forwarded_from_id")) {
        (None, None) => None,
        (name, id) => person(name, id, anomalies),
    };
    let reactions = obj
        .get("reactions")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .map(|r| Reaction {
                    kind: r.get("type").and_then(Json::string).unwrap_or_default(),
                    emoji: r.get("emoji").and_then(Json::string),
                    document_id: r.get("document_id").and_then(Json::string),
                    count: r.get("count").and_then(Json::as_u64).unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    let poll = obj.get("poll").and_then(Json::as_object).map(|p| Poll {
        question: p.get("question").and_then(Json::string).unwrap_or_default(),
        answers: p
            .get("answers")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.get("text").and_then(Json::string))
                    .collect()
            })
            .unwrap_or_default(),
        closed: p.get("closed").and_then(Json::as_bool).unwrap_or(false),
        total_voters: p.get("total_voters").and_then(Json::as_u64).unwrap_or(0),
    });
    let contact = obj
        .get("contact_information")
        .and_then(Json::as_object)
        .map(|c| Contact {
            first_name: c.get("first_name").and_then(Json::string),
            last_name: c.get("last_name").and_then(Json::string),
            phone: c.get("phone_number").and_then(Json::string),
        });
    let coords = obj.get("location_information").and_then(Json::as_object);
    let location = (coords.is_some()
        || obj.contains_key("place_name")
        || obj.contains_key("address"))
    .then(|| Location {
        latitude: coords.and_then(|c| c.get("latitude")).map(Json::to_json),
        longitude: coords.and_then(|c| c.get("longitude")).map(Json::to_json),
        place_name: s("place_name"),
        address: s("address"),
    });
    let mut extra_text = Vec::new();
    for k in ["game_title", "game_description", "information_text"] {
        if let Some(v) = s(k) {
            extra_text.push((k.to_string(), v));
        }
    }
    if let Some(inv) = obj.get("invoice_information").and_then(Json::as_object) {
        for k in ["title", "description"] {
            if let Some(v) = inv.get(k).and_then(Json::string) {
                extra_text.push((format!("invoice_{k}"), v));
            }
        }
    }
    if let Some(todo) = obj.get("todo_list").and_then(Json::as_object) {
        if let Some(t) = todo.get("title").and_then(Json::string) {
            extra_text.push(("todo_title".into(), t));
        }
        let items = todo.get("items").or_else(|| todo.get("answers"));
        for it in items.and_then(Json::as_array).into_iter().flatten() {
            if let Some(t) = it.get("text").and_then(Json::string) {
                extra_text.push(("todo_item".into(), t));
            }
        }
    }
    Message {
        text,
        entities,
        reply_to: obj.get("reply_to_message_id").and_then(Json::int),
        reply_to_peer: obj.get("reply_to_peer_id").and_then(Json::int),
        forwarded_from,
        saved_from: s("saved_from"),
        via_bot: s("via_bot"),
        author: s("author"),
        reactions,
        poll,
        contact,
        location,
        extra_text,
    }
}

fn attachments(obj: &Object<'_>) -> Vec<Attachment> {
    let s = |k: &str| obj.get(k).and_then(Json::string);
    let u = |k: &str| {
        obj.get(k)
            .and_then(Json::int)
            .and_then(|x| u64::try_from(x).ok())
    };
    let base = |kind: AttachmentKind, path: &str, size: Option<u64>| {
        let mut a = match placeholder_reason(path) {
            Some(reason) => Attachment {
                missing: Some(reason),
                ..Attachment::new(kind, None)
            },
            None => Attachment::new(kind, Some(path.to_string())),
        };
        a.declared_size = size;
        a
    };
    let mut out = Vec::new();
    if let Some(p) = s("photo") {
        let mut a = base(AttachmentKind::Photo, &p, u("photo_file_size"));
        a.width = u("width");
        a.height = u("height");
        a.mime_type = Some("image/jpeg".into()).filter(|_| {
            a.source_path
                .as_deref()
                .is_some_and(|p| p.ends_with(".jpg"))
        });
        out.push(a);
    }
    if let Some(p) = s("file") {
        let kind = match s("media_type").as_deref() {
            Some("sticker") => AttachmentKind::Sticker,
            Some("video_message") => AttachmentKind::VideoMessage,
            Some("voice_message") => AttachmentKind::Voice,
            Some("animation") => AttachmentKind::Animation,
            Some("video_file") => AttachmentKind::Video,
            Some("audio_file") => AttachmentKind::Audio,
            _ => AttachmentKind::File,
        };
        let mut a = base(kind, &p, u("file_size"));
        if let Some(n) = s("file_name") {
            a.file_name = Some(n);
        }
        a.mime_type = s("mime_type");
        a.width = u("width");
        a.height = u("height");
        a.duration_seconds = u("duration_seconds");
        a.performer = s("performer");
        a.title = s("title").filter(|_| obj.get("type").and_then(Json::as_str) != Some("service"));
        out.push(a);
    }
    if let Some(p) = s("thumbnail") {
        out.push(base(
            AttachmentKind::Thumbnail,
            &p,
            u("thumbnail_file_size"),
        ));
    }
    if let Some(p) = s("contact_vcard") {
        let mut a = base(
            AttachmentKind::ContactCard,
            &p,
            u("contact_vcard_file_size"),
        );
        a.mime_type = Some("text/vcard".into());
        out.push(a);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        owner: Option<Owner>,
        chats: Vec<ChatHeader>,
        messages: Vec<(Option<i64>, String)>,
    }

    impl Sink for Collect {
        fn owner(&mut self, owner: Owner) -> Result<()> {
            self.owner = Some(owner);
            Ok(())
        }
        fn chat_start(&mut self, chat: &ChatHeader) -> Result<()> {
            self.chats.push(chat.clone());
            Ok(())
        }
        fn message(&mut self, chat: &ChatHeader, raw: &str) -> Result<()> {
            self.messages.push((chat.id, raw.to_string()));
            Ok(())
        }
    }

    fn run(json: &str) -> Result<Collect> {
        let mut c = Collect::default();
        parse(json.as_bytes(), &mut c, Path::new("result.json"))?;
        Ok(c)
    }

    #[test]
    fn both_shapes_stream() {
        let c = run(r#"{"name":"A","type":"personal_chat","id":5,"messages":[{"id":1},{"id":2}]}"#)
            .unwrap();
        assert_eq!(c.chats.len(), 1);
        assert_eq!(c.messages.len(), 2);
        let c = run(
            r#"{"about":"x","personal_information":{"user_id":9,"phone_number":"+1 555"},
               "chats":{"about":"y","list":[{"id":1,"type":"private_group","messages":[{"id":1}]},
                                           {"id":2,"messages":[]}]},
               "left_chats":{"list":[{"id":3,"messages":[{"id":7}]}]}}"#,
        )
        .unwrap();
        assert_eq!(c.owner.unwrap().user_id, Some(9));
        assert_eq!(
            c.chats.iter().map(|h| (h.id, h.left)).collect::<Vec<_>>(),
            vec![(Some(1), false), (Some(2), false), (Some(3), true)]
        );
        assert_eq!(c.messages.len(), 2);
    }

    #[test]
    fn header_after_messages_is_handled() {
        let c = run(r#"{"messages":[{"id":1}],"id":8,"type":"private_group"}"#).unwrap();
        assert_eq!(c.messages, vec![(Some(8), r#"{"id":1}"#.to_string())]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = run("{\"id\": 1,\n \"messages\": [\n {\"id\": 1,}\n]}")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("result.json:3: column"), "{e}");
        let e = run("[1,2]").err().unwrap().to_string();
        assert!(e.contains("result.json"), "{e}");
        let e = run(r#"{"about": "nothing"}"#).err().unwrap().to_string();
        assert!(e.contains("neither"), "{e}");
        assert!(run(r#"{"id":1,"messages":[]} trailing"#).is_err());
        let e = run(r#"{"messages":[{"id":1}],"messages":[{"id":2}],"id":3}"#);
        let e = e.err().unwrap().to_string();
        assert!(e.contains("a second 'messages' list in one chat"), "{e}");
    }

    #[test]
    fn seen_ids_count_repeats_in_any_order() {
        let mut s = SeenIds::default();
        assert_eq!(s.see(5), 0);
        assert_eq!(s.see(7), 0);
        assert_eq!(s.see(6), 0);
        assert_eq!(s.ranges.len(), 1);
        assert_eq!(s.see(6), 1);
        assert_eq!(s.see(6), 2);
        assert_eq!(s.see(-999678450), 0);
        assert_eq!(s.see(i64::MAX), 0);
        assert_eq!(s.see(i64::MAX), 1);
    }

    fn ctx(kind: &str, owner: Option<Owner>) -> ChatContext {
        let h = ChatHeader {
            id: Some(700),
            name: Some("Bob".into()),
            kind: Some(kind.into()),
            ..Default::default()
        };
        ChatContext::new(&h, owner.as_ref(), Zone::parse("Europe/Berlin").unwrap())
    }

    fn raw(s: &str) -> &str {
        s
    }

    #[test]
    fn local_dates_use_the_zone_and_say_so() {
        let mut c = ctx("personal_chat", None);
        let it = c.convert(raw(
            r#"{"id":1,"type":"message","date":"2021-07-01T12:00:00","text":"x"}"#,
        ));
        assert_eq!(it.date, Some(1625133600)); // 10:00 UTC in summer
        assert_eq!(
            it.time_basis,
            TimeBasis::LocalTime {
                zone: "Europe/Berlin".into()
            }
        );
        let it = c.convert(raw(r#"{"id":2,"type":"message","date":"2021-07-01T12:00:00","date_unixtime":"1625140800","text":"x"}"#));
        assert_eq!(
            (it.date, it.time_basis),
            (Some(1625140800), TimeBasis::Epoch)
        );
        let it = c.convert(raw(r#"{"id":3,"type":"message","date":"1970-01-01T00:00:00","date_unixtime":"0","text":"x"}"#));
        assert_eq!((it.date, it.time_basis), (None, TimeBasis::Unknown));
    }

    #[test]
    fn text_arrays_concatenate_and_keep_entities() {
        let mut c = ctx("personal_chat", None);
        let it = c
            .convert(raw(r#"{"id":1,"type":"message","from":"A","from_id":"user1","text":["see ",{"type":"text_link","text":"here","href":"https://x.example"}," now"]}"#));
        let Body::Message(m) = &it.body else { panic!() };
        assert_eq!(m.text, "see here now");
        assert_eq!(m.entities.len(), 1);
        assert_eq!(
            m.entities[0].attrs,
            vec![("href".to_string(), "\"https://x.example\"".to_string())]
        );
    }

    #[test]
    fn calls_get_a_direction() {
        let owner = Owner {
            user_id: Some(1),
            ..Default::default()
        };
        let mut c = ctx("personal_chat", Some(owner));
        let call = r#"{"id":5,"type":"service","date_unixtime":"100","actor":"Me","actor_id":"user1","action":"phone_call","duration_seconds":56,"discard_reason":"hangup","text":""}"#;
        let it = c.convert(raw(call));
        let Body::Call(k) = &it.body else { panic!() };
        assert_eq!(
            (k.direction, k.duration_seconds, k.outcome.as_str()),
            (Direction::Outgoing, Some(56), "hangup")
        );
        let mut c = ctx("personal_chat", None);
        let it = c.convert(raw(&call.replace("user1", "user700")));
        let Body::Call(k) = &it.body else { panic!() };
        assert_eq!(k.direction, Direction::Incoming);
    }

    #[test]
    fn messages_that_cannot_be_read_are_kept_with_the_reason() {
        let mut c = ctx("private_group", None);
        // Not an object: the raw text, the reason, an id made from it.
        for text in ["[1]", "17", r#""text""#] {
            let it = c.convert(raw(text));
            assert_eq!(it.id.part, Part::Unnumbered, "{text}");
            assert_eq!(it.raw, text);
            assert!(
                it.anomalies[0].contains("must be an object"),
                "{:?}",
                it.anomalies
            );
            assert_eq!(c.convert(raw(text)).id, it.id, "the same text, the same id");
        }
        // Ids that are no 64-bit integer: the message is read, under an id
        // made from its content, and the id it had is named.
        for (id, shown) in [
            ("", "no id"),
            (r#""id":9223372036854775808,"#, "id 9223372036854775808"),
            (r#""id":18446744073709551616,"#, "id 1.8446744073709552e+19"),
            (r#""id":1.5,"#, "id 1.5"),
            (r#""id":"12","#, r#"id "12""#),
            (r#""id":null,"#, "id null"),
        ] {
            let text = format!(r#"{{{id}"type":"message","from_id":"user3","text":"hello"}}"#);
            let it = c.convert(raw(&text));
            assert_eq!(it.id.part, Part::Unnumbered, "{text}");
            assert!(it.id.message >= 0);
            let Body::Message(m) = &it.body else {
                panic!("{text}")
            };
            assert_eq!(m.text, "hello");
            assert!(
                it.anomalies
                    .iter()
                    .any(|a| a.contains(shown) && a.contains("made from its content")),
                "{text}: {:?}",
                it.anomalies
            );
        }
    }

    #[test]
    fn a_lone_surrogate_escape_is_read_as_the_replacement_character() {
        let mut c = ctx("private_group", None);
        for (escaped, text) in [
            (r"a\ud800b", "a\u{FFFD}b"),
            (r"a\udc00", "a\u{FFFD}"),
            (r"\ud800\ud800\udc00", "\u{FFFD}\u{10000}"),
            (r"\\ud800", r"\ud800"),
        ] {
            let msg = format!(r#"{{"id":5,"type":"message","text":"{escaped}"}}"#);
            let it = c.convert(raw(&msg));
            assert_eq!(it.id.message, 5);
            let Body::Message(m) = &it.body else {
                panic!("{msg}")
            };
            assert_eq!(m.text, text, "{msg}");
            assert_eq!(it.raw, msg, "the raw message keeps the escape");
        }
    }

    #[test]
    fn placeholders_become_reasons() {
        let mut c = ctx("private_group", None);
        let it = c
            .convert(raw(r#"{"id":9,"type":"message","photo":"(File not included. Change data exporting settings to download.)","text":""}"#));
        assert_eq!(
            it.attachments[0].missing.as_deref(),
            Some("File not included. Change data exporting settings to download.")
        );
        assert!(it.attachments[0].source_path.is_none());
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "(\\(File [a-z ]{0,10}\\)|[a-z0-9/_.@ -]{0,12}|user[0-9]{1,4}|1970-01-01T00:00:00|2021-03-22T17:06:53)".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            let keys = prop::sample::select(vec![
                "id",
                "type",
                "date",
                "date_unixtime",
                "edited",
                "edited_unixtime",
                "from",
                "from_id",
                "actor",
                "actor_id",
                "action",
                "text",
                "text_entities",
                "photo",
                "file",
                "file_name",
                "file_size",
                "media_type",
                "thumbnail",
                "poll",
                "answers",
                "question",
                "reactions",
                "members",
                "duration_seconds",
                "duration",
                "discard_reason",
                "is_missed",
                "schedule_date",
                "location_information",
                "contact_information",
                "todo_list",
                "items",
                "forwarded_from",
                "forwarded_from_id",
                "reply_to_message_id",
                "message_id",
                "title",
                "invoice_information",
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys, inner, 0..8).prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever a message holds, converting it gives an item or a failure
        /// row, never a panic.
        #[test]
        fn any_message_converts_or_fails_cleanly(v in arb_json(), kind in proptest::sample::select(vec!["personal_chat", "private_group", "public_channel"])) {
            let mut c = ctx(kind, Some(Owner { user_id: Some(1), ..Default::default() }));
            let _ = c.convert(&v.to_string());
            let mut obj = v;
            if let Value::Object(m) = &mut obj {
                m.insert("id".into(), Value::from(7));
                m.insert("type".into(), Value::from("service"));
            }
            let _ = c.convert(&obj.to_string());
        }
    }
}
