//! The item model: what the archive keeps for every Telegram item, independent of
//! the format it came from and of the mailboxes it is filed in.
//!
//! An [`Item`] is immutable content: the same source item with the same content
//! always encodes to the same bytes (and so the same SHA-256). Edits produce a new
//! `Item` value, stored as a new version of the same [`ItemId`]; deletions are
//! separate items of kind [`Body::Deletion`] that point at the original.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The archive folder every connector item is filed into, as in Purview.
pub const DEFAULT_FOLDER: &str = "Telegram Archiver";

/// Identity of a source item, stable across re-imports of the same export.
///
/// Message ids in Telegram are unique only within their chat, and for personal
/// chats and basic groups only within one account: `scope` is the owning account's
/// user id for those (0 when the export does not say), and 0 for channels and
/// supergroups whose ids are global. `dup` disambiguates duplicate ids inside one
/// chat of one file (0 for the first occurrence). `part` tells an item from the
/// deletion event recorded against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ItemId {
    pub scope: u64,
    pub chat: i64,
    pub message: i64,
    pub dup: u32,
    pub part: Part,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Part {
    Item = 0,
    Deletion = 1,
    /// A message whose own id is unusable (absent, not an integer, past
    /// 2^63) or that could not be read at all: `message` is made from a
    /// hash of its text.
    Unnumbered = 2,
}

impl Part {
    /// The part whose discriminant is `b`.
    pub fn from_byte(b: u8) -> Option<Part> {
        match b {
            0 => Some(Part::Item),
            1 => Some(Part::Deletion),
            2 => Some(Part::Unnumbered),
            _ => None,
        }
    }
}

impl ItemId {
    pub fn new(scope: u64, chat: i64, message: i64) -> Self {
        ItemId {
            scope,
            chat,
            message,
            dup: 0,
            part: Part::Item,
        }
    }
}

/// Printed as `tg:SCOPE:CHAT:MESSAGE`, with `:DUP` when `dup > 0` and a trailing
/// `:deleted` for a deletion event.
impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tg:{}:{}:{}", self.scope, self.chat, self.message)?;
        if self.dup > 0 {
            write!(f, ":{}", self.dup)?;
        }
        match self.part {
            Part::Item => {}
            Part::Deletion => f.write_str(":deleted")?,
            Part::Unnumbered => f.write_str(":unnumbered")?,
        }
        Ok(())
    }
}

impl FromStr for ItemId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("'{s}' is not an item id (expected tg:SCOPE:CHAT:MESSAGE[:DUP])");
        let rest = s.strip_prefix("tg:").ok_or_else(bad)?;
        let mut parts: Vec<&str> = rest.split(':').collect();
        let mut part = Part::Item;
        match parts.last() {
            Some(&"deleted") => part = Part::Deletion,
            Some(&"unnumbered") => part = Part::Unnumbered,
            _ => {}
        }
        if part != Part::Item {
            parts.pop();
        }
        if !(3..=4).contains(&parts.len()) {
            return Err(bad());
        }
        Ok(ItemId {
            scope: parts[0].parse().map_err(|_| bad())?,
            chat: parts[1].parse().map_err(|_| bad())?,
            message: parts[2].parse().map_err(|_| bad())?,
            dup: match parts.get(3) {
                Some(d) => d.parse().map_err(|_| bad())?,
                None => 0,
            },
            part,
        })
    }
}

/// A Telegram peer, normalised from the three sender-id eras of the export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Peer {
    User(i64),
    Chat(i64),
    Channel(i64),
}

impl Peer {
    /// Parses `"user123"`, `"channel123"`, `"chat123"` (2021 and later) and the
    /// numeric forms of older exports: a plain number below 2^32 is a user; the
    /// 2020-21 exporter shifted users by 2^32 and chats/channels by 2^33 (the two
    /// cannot be told apart after the shift: such peers come out as `Channel`).
    pub fn parse_str(s: &str) -> Option<Peer> {
        let num = |p: &str| p.parse::<i64>().ok().filter(|n| *n >= 0);
        if let Some(r) = s.strip_prefix("user") {
            num(r).map(Peer::User)
        } else if let Some(r) = s.strip_prefix("channel") {
            num(r).map(Peer::Channel)
        } else if let Some(r) = s.strip_prefix("chat") {
            num(r).map(Peer::Chat)
        } else {
            num(s).map(Peer::from_number)
        }
    }

    pub fn from_number(n: i64) -> Peer {
        const SHIFT_USER: i64 = 1 << 32;
        const SHIFT_CHAT: i64 = 1 << 33;
        if n >= SHIFT_CHAT {
            Peer::Channel(n - SHIFT_CHAT)
        } else if n >= SHIFT_USER {
            Peer::User(n - SHIFT_USER)
        } else {
            Peer::User(n)
        }
    }

    pub fn user_id(&self) -> Option<i64> {
        match self {
            Peer::User(id) => Some(*id),
            _ => None,
        }
    }

    /// The kind's prefix and the id: `user` and 123 for `user123`.
    fn parts(&self) -> (&'static str, i64) {
        match self {
            Peer::User(id) => ("user", *id),
            Peer::Chat(id) => ("chat", *id),
            Peer::Channel(id) => ("channel", *id),
        }
    }

    /// Appends the peer as [`fmt::Display`] writes it (`user123`), without
    /// the formatting machinery (the indexer writes several per document).
    pub fn write_to(&self, out: &mut String) {
        let (prefix, id) = self.parts();
        out.push_str(prefix);
        out.push_str(itoa::Buffer::new().format(id));
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, id) = self.parts();
        f.write_str(prefix)?;
        f.write_str(itoa::Buffer::new().format(id))
    }
}

/// Someone taking part in an item, with whatever identifiers the source gave.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub peer: Option<Peer>,
    /// The id exactly as the source wrote it when it could not be normalised.
    pub raw_id: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    pub phone: Option<String>,
}

impl Person {
    /// The person's identity as one string, for the addresses a source row
    /// records: the normalised peer (`user123`), else the raw id, else the
    /// phone, else the name.
    pub fn key(&self) -> String {
        let mut k = String::new();
        self.write_key(&mut k);
        k
    }

    /// Appends [`Person::key`] to `out`.
    pub fn write_key(&self, out: &mut String) {
        match (&self.peer, &self.raw_id, &self.phone, &self.name) {
            (Some(p), ..) => p.write_to(out),
            (None, Some(r), ..) => {
                out.push_str("id:");
                out.push_str(r);
            }
            (None, None, Some(ph), _) => {
                out.push_str("phone:");
                out.push_str(ph);
            }
            (None, None, None, Some(n)) => {
                out.push_str("name:");
                out.push_str(n);
            }
            (None, None, None, None) => {}
        }
    }

    pub fn label(&self) -> String {
        match (&self.name, &self.peer, &self.raw_id) {
            (Some(n), Some(p), _) => format!("{n} ({p})"),
            (Some(n), None, Some(r)) => format!("{n} ({r})"),
            (Some(n), None, None) => n.clone(),
            (None, Some(p), _) => p.to_string(),
            (None, None, Some(r)) => r.clone(),
            (None, None, None) => "(unknown)".into(),
        }
    }

    /// Same identity: same normalised peer, or (without one) the same raw id and name.
    pub fn same_as(&self, other: &Person) -> bool {
        match (self.peer, other.peer) {
            (Some(a), Some(b)) => a == b,
            _ => self.raw_id == other.raw_id && self.name == other.name,
        }
    }
}

/// How the item's time was established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeBasis {
    /// From an epoch value in the source (`date_unixtime`, Bot API `date`).
    Epoch,
    /// From a local wall-clock `date`, read in the named time zone.
    LocalTime { zone: String },
    /// The source gave only a placeholder (epoch 0 or a 1970 date).
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chat {
    /// The chat id as the export wrote it.
    pub id: i64,
    pub name: Option<String>,
    /// Telegram's chat type (`personal_chat`, `private_group`, ...), or `unknown`.
    pub kind: String,
}

/// One immutable version of an archived item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub id: ItemId,
    pub chat: Chat,
    /// UTC seconds since the epoch; `None` when the source has only a placeholder.
    pub date: Option<i64>,
    pub time_basis: TimeBasis,
    pub edited: Option<i64>,
    pub sender: Option<Person>,
    /// Everyone the item concerns: the sender, the export's owner, and the peer of
    /// a one-to-one chat. Fan-out resolves each of them to a mailbox.
    pub participants: Vec<Person>,
    pub body: Body,
    pub attachments: Vec<Attachment>,
    /// What was odd about this item in the source (repairs, placeholders, ...).
    pub anomalies: Vec<String>,
    /// Name of the source format, e.g. `telegram-desktop-json`.
    pub source_format: String,
    /// The item exactly as the source held it (for JSON: the message object's text).
    pub raw: String,
    /// SHA-256 of the source record without insignificant white space, and of
    /// the time-zone assumption when one was needed: the same
    /// source item imported again has the same fingerprint, however the file
    /// was formatted and whether or not its media files came along.
    #[serde(with = "hex32")]
    pub fingerprint: [u8; 32],
}

impl Item {
    /// What two sources that captured the same version of a message agree
    /// on, whatever else each records: its date, when it was last edited,
    /// the sender, the plain text and how many attachments it has. The Bot
    /// API and a Desktop export of the same chat give one message the same
    /// id and the same key, so the second brings no new version (see
    /// `store::Tx::is_known`). Only messages have one: events, calls and
    /// deletions come from one source each.
    pub fn equivalence(&self) -> Option<[u8; 32]> {
        use sha2::Digest;
        let Body::Message(m) = &self.body else {
            return None;
        };
        let mut h = sha2::Sha256::new();
        for n in [self.date, self.edited] {
            h.update(n.map_or([0; 9], |n| {
                let mut b = [1; 9];
                b[1..].copy_from_slice(&n.to_be_bytes());
                b
            }));
        }
        let sender = self.sender.as_ref().map(Person::key).unwrap_or_default();
        for part in [sender.as_bytes(), m.text.as_bytes()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        h.update((self.attachments.len() as u64).to_be_bytes());
        Some(h.finalize().into())
    }

    /// How many attachments have their content stored.
    pub fn attachments_with_content(&self) -> u32 {
        self.attachments
            .iter()
            .filter(|a| a.content.is_some())
            .count() as u32
    }

    /// The blobs this item's attachments hold, each once, in hash order.
    pub fn blobs_used(&self) -> Vec<[u8; 32]> {
        let mut out: Vec<[u8; 32]> = self
            .attachments
            .iter()
            .filter_map(|a| a.content.map(|c| c.sha256))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// A non-negative number from the first 8 bytes of a hash: ids made from
/// content.
pub fn hash63(h: &[u8; 32]) -> i64 {
    i64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]) & i64::MAX
}

impl Item {
    /// A source record that could not be read as an item, kept whole: no
    /// participant (it waits in the quarantine, findable and exportable),
    /// an id made from its fingerprint, and why.
    pub fn kept_whole(format: &str, raw: String, fingerprint: [u8; 32], why: String) -> Item {
        let n = hash63(&fingerprint);
        Item {
            id: ItemId {
                part: Part::Unnumbered,
                ..ItemId::new(0, 0, n)
            },
            chat: Chat {
                id: 0,
                name: None,
                kind: "unknown".into(),
            },
            date: None,
            time_basis: TimeBasis::Unknown,
            edited: None,
            sender: None,
            participants: Vec::new(),
            body: Body::Unsupported,
            attachments: Vec::new(),
            anomalies: vec![why],
            source_format: format.into(),
            raw,
            fingerprint,
        }
    }

    pub fn kind(&self) -> ItemKind {
        match &self.body {
            Body::Message(_) => ItemKind::Message,
            Body::Service(_) => ItemKind::Event,
            Body::Call(_) => ItemKind::Call,
            Body::Unsupported => ItemKind::Unsupported,
            Body::Deletion(_) => ItemKind::Deletion,
        }
    }

    /// A one-line human summary for listings.
    pub fn summary(&self) -> String {
        let s = match &self.body {
            Body::Message(m) if !m.text.is_empty() => m.text.clone(),
            Body::Message(m) => match (&m.poll, self.attachments.first()) {
                (Some(p), _) => format!("[poll] {}", p.question),
                (None, Some(a)) => format!(
                    "[{}] {}",
                    a.kind.as_str(),
                    a.file_name.clone().unwrap_or_default()
                ),
                (None, None) => String::new(),
            },
            Body::Service(e) => e.text.clone(),
            Body::Call(c) => c.describe(),
            Body::Unsupported => "[unsupported message]".into(),
            Body::Deletion(d) => format!("[deleted {}] {}", d.target, d.mode),
        };
        let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.chars().count() > 80 {
            let cut: String = one_line.chars().take(79).collect();
            format!("{cut}…")
        } else {
            one_line
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ItemKind {
    Message,
    Event,
    Call,
    Unsupported,
    Deletion,
}

impl ItemKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ItemKind::Message => "message",
            ItemKind::Event => "event",
            ItemKind::Call => "call",
            ItemKind::Unsupported => "unsupported",
            ItemKind::Deletion => "deletion",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    Message(Box<Message>),
    Service(ServiceEvent),
    Call(Call),
    /// Telegram's `unsupported` message: the export has only its id.
    Unsupported,
    Deletion(Deletion),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The full plain text: every part of `text` concatenated.
    pub text: String,
    pub entities: Vec<Entity>,
    pub reply_to: Option<i64>,
    pub reply_to_peer: Option<i64>,
    pub forwarded_from: Option<Person>,
    pub saved_from: Option<String>,
    pub via_bot: Option<String>,
    /// Channel post signature.
    pub author: Option<String>,
    pub reactions: Vec<Reaction>,
    pub poll: Option<Poll>,
    pub contact: Option<Contact>,
    pub location: Option<Location>,
    /// Other labelled texts worth searching (todo items, invoice titles, ...).
    pub extra_text: Vec<(String, String)>,
}

/// A formatted span of the text; `attrs` keeps every other key (href, user_id,
/// language, document_id, collapsed, ...) as `(key, JSON value text)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    pub kind: String,
    pub text: String,
    pub attrs: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub kind: String,
    pub emoji: Option<String>,
    pub document_id: Option<String>,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Poll {
    pub question: String,
    pub answers: Vec<String>,
    pub closed: bool,
    pub total_voters: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Latitude and longitude as the source wrote them (kept as text: exact).
    pub latitude: Option<String>,
    pub longitude: Option<String>,
    pub place_name: Option<String>,
    pub address: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEvent {
    /// Telegram's action name (`create_group`, `pin_message`, ...), or `custom`.
    pub action: String,
    pub actor: Option<Person>,
    pub title: Option<String>,
    pub members: Vec<String>,
    pub message_id: Option<i64>,
    /// A readable sentence for the event.
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// `phone_call`, `conference_call`, `group_call`, `group_call_scheduled`.
    pub kind: String,
    pub started: Option<i64>,
    pub duration_seconds: Option<u64>,
    /// `missed`, `busy`, `hangup`, `disconnect`, `active`, `scheduled`, ... or `unknown`.
    pub outcome: String,
    pub direction: Direction,
    pub participants: Vec<Person>,
}

impl Call {
    pub fn describe(&self) -> String {
        let dur = match self.duration_seconds {
            Some(d) => format!(", {d} s"),
            None => String::new(),
        };
        format!(
            "[{} {}] {}{}",
            self.direction.as_str(),
            self.kind.replace('_', " "),
            self.outcome,
            dur
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Outgoing,
    Incoming,
    Unknown,
}

impl Direction {
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::Outgoing => "outgoing",
            Direction::Incoming => "incoming",
            Direction::Unknown => "direction unknown",
        }
    }
}

/// A deletion seen by live capture: a new event linked to the original, which stays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub target: ItemId,
    /// `for_all`, `for_me`, or `unknown`.
    pub mode: String,
    /// `read`, `unread`, or `unknown`, as capture vendors report it.
    pub read_state: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttachmentKind {
    Photo,
    File,
    Video,
    VideoMessage,
    Voice,
    Audio,
    Animation,
    Sticker,
    Thumbnail,
    ContactCard,
}

impl AttachmentKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AttachmentKind::Photo => "photo",
            AttachmentKind::File => "file",
            AttachmentKind::Video => "video",
            AttachmentKind::VideoMessage => "video_message",
            AttachmentKind::Voice => "voice",
            AttachmentKind::Audio => "audio",
            AttachmentKind::Animation => "animation",
            AttachmentKind::Sticker => "sticker",
            AttachmentKind::Thumbnail => "thumbnail",
            AttachmentKind::ContactCard => "contact_card",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub kind: AttachmentKind,
    pub file_name: Option<String>,
    /// The path the source gave, relative to the export.
    pub source_path: Option<String>,
    pub mime_type: Option<String>,
    /// The size the source declared (u64: documents can exceed 2^31).
    pub declared_size: Option<u64>,
    pub width: Option<u64>,
    pub height: Option<u64>,
    pub duration_seconds: Option<u64>,
    pub performer: Option<String>,
    pub title: Option<String>,
    /// The stored content, when the export had it.
    pub content: Option<BlobRef>,
    /// Why there is no content, when there is none.
    pub missing: Option<String>,
    /// The content itself, for a source that holds it in the item (a part
    /// of a delivered e-mail): staged by the importer, never stored here.
    #[serde(skip)]
    pub inline: Option<Vec<u8>>,
}

impl Attachment {
    /// The file name to show or write: the source's, else `<kind>.bin`.
    pub fn display_name(&self) -> String {
        self.file_name
            .clone()
            .unwrap_or_else(|| format!("{}.bin", self.kind.as_str()))
    }

    /// An attachment known by its path in the export (if any), its file name
    /// taken from the path, every other field empty.
    pub fn new(kind: AttachmentKind, source_path: Option<String>) -> Attachment {
        Attachment {
            kind,
            file_name: source_path
                .as_deref()
                .and_then(|p| p.rsplit('/').next())
                .map(str::to_string),
            source_path,
            mime_type: None,
            declared_size: None,
            width: None,
            height: None,
            duration_seconds: None,
            performer: None,
            title: None,
            content: None,
            missing: None,
            inline: None,
        }
    }
}

/// A content-addressed blob: SHA-256 of the bytes, and their length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    #[serde(with = "hex32")]
    pub sha256: [u8; 32],
    pub size: u64,
}

/// SHA-256 of a byte string: the one hash of the archive (content addresses,
/// item hashes, source fingerprints).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// SHA-256 values as hex text in human-readable formats (JSON output) and as
/// 32 raw bytes in binary ones (the stored codec).
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(v))
        } else {
            serde::Serialize::serialize(v, s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            let mut out = [0u8; 32];
            hex::decode_to_slice(&s, &mut out).map_err(D::Error::custom)?;
            Ok(out)
        } else {
            <[u8; 32]>::deserialize(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_id_round_trips_through_text() {
        for id in [
            ItemId::new(0, 5, -999678450),
            ItemId {
                dup: 3,
                ..ItemId::new(42, 69420, 69420)
            },
            ItemId {
                part: Part::Deletion,
                ..ItemId::new(1, 2, 3)
            },
        ] {
            assert_eq!(id.to_string().parse::<ItemId>().unwrap(), id);
        }
        assert!("tg:1:2".parse::<ItemId>().is_err());
        assert!("x:1:2:3".parse::<ItemId>().is_err());
    }

    #[test]
    fn peers_and_keys_write_as_displayed() {
        for (peer, text) in [
            (Peer::User(6565661032), "user6565661032"),
            (Peer::Chat(-5), "chat-5"),
            (Peer::Channel(i64::MAX), "channel9223372036854775807"),
        ] {
            assert_eq!(peer.to_string(), text);
            let p = Person {
                peer: Some(peer),
                ..Person::default()
            };
            assert_eq!(p.key(), text);
        }
        let raw = Person {
            raw_id: Some("x1".into()),
            phone: Some("+1".into()),
            ..Person::default()
        };
        assert_eq!(raw.key(), "id:x1");
        let phone = Person {
            phone: Some("+1".into()),
            name: Some("A".into()),
            ..Person::default()
        };
        assert_eq!(phone.key(), "phone:+1");
        let name = Person {
            name: Some("A".into()),
            ..Person::default()
        };
        assert_eq!(name.key(), "name:A");
        assert_eq!(Person::default().key(), "");
    }

    #[test]
    fn peers_of_every_era_normalise() {
        assert_eq!(
            Peer::parse_str("user6565661032"),
            Some(Peer::User(6565661032))
        );
        assert_eq!(Peer::parse_str("channel77"), Some(Peer::Channel(77)));
        assert_eq!(Peer::parse_str("chat9"), Some(Peer::Chat(9)));
        assert_eq!(Peer::parse_str("12345"), Some(Peer::User(12345)));
        assert_eq!(
            Peer::parse_str(&((1i64 << 32) + 777).to_string()),
            Some(Peer::User(777))
        );
        assert_eq!(
            Peer::parse_str(&((1i64 << 33) + 1447061072).to_string()),
            Some(Peer::Channel(1447061072))
        );
        assert_eq!(Peer::parse_str("user000AX6969"), None);
        assert_eq!(Peer::parse_str("user-5"), None);
    }
}
