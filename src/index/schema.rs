//! The fields of a search document and how one is built from a source row.
//!
//! One document per source item (not per mailbox copy): the copies of an item
//! share its content, so indexing it once keeps fan-out free. Where the item
//! is filed is a multi-valued field (`loc`); searches expand a matching
//! document into its mailbox copies (see `search`). No field is stored: hits
//! are read back from the archive, which checks their hashes.

use super::tokenizer;
use crate::model::{Body, Item, ItemId, Part, Person};
use crate::store::DocSource;
use std::borrow::Cow;
use tantivy::columnar::Column;
use tantivy::fastfield::FastFieldReaders;
use tantivy::schema::{
    BytesOptions, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{DocId, TantivyDocument, Term};

/// Bumped whenever a field or the way documents are built changes: an index
/// built by another version is rebuilt from the store when opened.
pub const SCHEMA_VERSION: u32 = 9;

/// Separates mailbox and folder in a `loc` value.
pub const LOC_SEP: &str = "\u{0}";
/// The `loc` value of a quarantined item.
pub const QUARANTINE_LOC: &str = "\u{0}quarantine";

#[derive(Clone, Copy, Debug)]
pub struct Fields {
    /// The encoded `ItemId` (`store::key`), indexed (to replace the document).
    pub id: Field,
    /// The `ItemId` again, as fast columns to read hits by: its `scope`,
    /// `chat`, `message`, and `dup << 8 | part`. A bytes column would keep a
    /// dictionary of every id; numbers in import order pack to a few bits.
    pub id_scope: Field,
    pub id_chat: Field,
    pub id_message: Field,
    pub id_dup: Field,
    /// `SourceRecord::stamp` of the row the document was built from.
    pub stamp: Field,
    /// How many copies the item has (1 for a quarantined item).
    pub nloc: Field,
    /// `mailbox \0 folder` of each copy, or [`QUARANTINE_LOC`].
    pub loc: Field,
    // Tokenized, with positions. Free text searches `text` (what the item
    // says), `subject`, `from` and `attachmentnames`.
    pub text: Field,
    /// Neighbouring token pairs of every `text` value (no positions): the
    /// fast path of phrases (see `tokenizer::PairTokenizer`).
    pub pairs: Field,
    pub subject: Field,
    pub from: Field,
    pub to: Field,
    pub attachmentnames: Field,
    /// The chat id (`chat:` also searches `subject`, the title).
    pub chat: Field,
    /// The `X-TELEMESSAGE-*` headers of every version, each word a token
    /// `name \u{1} word` (name in lower case; see [`header_token`]), with
    /// positions: `x-telemessage-network:telegram` is a term, a phrase a
    /// phrase within one header.
    pub headers: Field,
    // Keywords, lower-cased, whole.
    pub chattype: Field,
    pub kind: Field,
    pub itemclass: Field,
    pub senderid: Field,
    pub phone: Field,
    pub event: Field,
    pub call: Field,
    // Numbers, dates (UTC seconds), flags. Numbers are fast fields only:
    // tantivy answers a range over a fast field from its column, so terms
    // for them would never be read.
    /// The date, absent when unknown; also the sort key (an absent date
    /// sorts as `i64::MIN`).
    pub sent: Field,
    pub size: Field,
    pub duration: Field,
    pub hasattachment: Field,
    pub edited: Field,
    pub deleted: Field,
    /// The item could not be read when indexed (damaged): only its identity
    /// and locations are in the document. Holds treat it as matching.
    pub unindexed: Field,
}

/// The `ItemId` of each document of a segment, from its id columns.
pub struct IdColumns {
    scope: Column<u64>,
    chat: Column<i64>,
    message: Column<i64>,
    dup: Column<u64>,
}

impl IdColumns {
    pub fn open(ff: &FastFieldReaders) -> tantivy::Result<IdColumns> {
        Ok(IdColumns {
            scope: ff.u64("id_scope")?,
            chat: ff.i64("id_chat")?,
            message: ff.i64("id_message")?,
            dup: ff.u64("id_dup")?,
        })
    }

    /// The id of `doc`; `None` when a column lacks it or its part is
    /// unknown (a damaged index).
    pub fn get(&self, doc: DocId) -> Option<ItemId> {
        let dup = self.dup.first(doc)?;
        Some(ItemId {
            scope: self.scope.first(doc)?,
            chat: self.chat.first(doc)?,
            message: self.message.first(doc)?,
            dup: u32::try_from(dup >> 8).ok()?,
            part: Part::from_byte((dup & 0xff) as u8)?,
        })
    }
}

impl Fields {
    pub fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer::NAME)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let fast = NumericOptions::default().set_fast();
        // A keyword or flag is one token per document: its length norm is
        // the same for every document that has it, so BM25 scores it the
        // same without one (a byte per document per field saved).
        let keyword = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        );
        let flag = NumericOptions::default().set_indexed();
        let fields = Fields {
            id: b.add_bytes_field("id", BytesOptions::default().set_indexed()),
            id_scope: b.add_u64_field("id_scope", fast.clone()),
            id_chat: b.add_i64_field("id_chat", fast.clone()),
            id_message: b.add_i64_field("id_message", fast.clone()),
            id_dup: b.add_u64_field("id_dup", fast.clone()),
            stamp: b.add_u64_field("stamp", fast.clone()),
            nloc: b.add_u64_field("nloc", fast.clone()),
            loc: b.add_text_field("loc", keyword.clone().set_fast("raw")),
            text: b.add_text_field("text", text.clone()),
            pairs: b.add_text_field(
                "pairs",
                TextOptions::default().set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer(tokenizer::PAIRS)
                        .set_index_option(IndexRecordOption::Basic)
                        .set_fieldnorms(false),
                ),
            ),
            subject: b.add_text_field("subject", text.clone()),
            from: b.add_text_field("from", text.clone()),
            to: b.add_text_field("to", text.clone()),
            attachmentnames: b.add_text_field("attachmentnames", text.clone()),
            chat: b.add_text_field("chat", text.clone()),
            headers: b.add_text_field("headers", text),
            chattype: b.add_text_field("chattype", keyword.clone()),
            kind: b.add_text_field("kind", keyword.clone()),
            itemclass: b.add_text_field("itemclass", keyword.clone()),
            senderid: b.add_text_field("senderid", keyword.clone()),
            phone: b.add_text_field("phone", keyword.clone()),
            event: b.add_text_field("event", keyword.clone()),
            call: b.add_text_field("call", keyword.clone()),
            sent: b.add_i64_field("sent", fast.clone()),
            size: b.add_u64_field("size", fast.clone()),
            duration: b.add_u64_field("duration", fast),
            hasattachment: b.add_bool_field("hasattachment", flag.clone()),
            edited: b.add_bool_field("edited", flag.clone()),
            deleted: b.add_bool_field("deleted", flag.clone()),
            unindexed: b.add_bool_field("unindexed", flag.clone()),
        };
        (b.build(), fields)
    }

    pub fn id_term(&self, id_bytes: &[u8]) -> Term {
        Term::from_field_bytes(self.id, id_bytes)
    }

    /// The search document of a source row.
    pub fn document(&self, src: &DocSource) -> TantivyDocument {
        let mut d = TantivyDocument::new();
        // Values made up here are written into one buffer (the document
        // copies them) instead of a new string each.
        let mut buf = String::new();
        let mut put = |d: &mut TantivyDocument, field, parts: &[&str]| {
            buf.clear();
            for p in parts {
                buf.push_str(p);
            }
            d.add_text(field, &buf);
        };
        let mut peer_text = String::new();
        let mut num = itoa::Buffer::new();
        d.add_bytes(self.id, &crate::store::key::item_id_bytes(&src.id));
        d.add_u64(self.id_scope, src.id.scope);
        d.add_i64(self.id_chat, src.id.chat);
        d.add_i64(self.id_message, src.id.message);
        d.add_u64(
            self.id_dup,
            (u64::from(src.id.dup) << 8) | src.id.part as u64,
        );
        d.add_u64(self.stamp, src.stamp());
        d.add_u64(self.nloc, src.rec.locations.len().max(1) as u64);
        if src.rec.locations.is_empty() {
            d.add_text(self.loc, QUARANTINE_LOC);
        }
        for (m, f) in &src.rec.locations {
            put(&mut d, self.loc, &[m, LOC_SEP, f]);
        }
        let Some(cur) = src.current() else {
            d.add_bool(self.unindexed, true);
            d.add_text(self.kind, "externaldata");
            return d;
        };
        d.add_bool(self.unindexed, false);

        // Text of every version, each distinct text once: an edit never hides
        // what was said before it.
        let mut texts: Vec<Cow<'_, str>> = Vec::new();
        for v in &src.versions {
            for t in item_texts(v) {
                if !t.is_empty() && !texts.contains(&t) {
                    texts.push(t);
                }
            }
        }
        for t in &texts {
            d.add_text(self.text, t);
            d.add_text(self.pairs, t);
        }
        if let Some(n) = &cur.chat.name {
            d.add_text(self.subject, n);
        }
        d.add_text(self.chat, num.format(cur.chat.id));
        d.add_text(self.chattype, lower(&cur.chat.kind));

        let mut key = String::new();
        let mut address = |p: &Person| -> Option<&str> {
            key.clear();
            p.write_key(&mut key);
            src.rec
                .addresses
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, m)| m.as_str())
        };
        let sender_address = cur.sender.as_ref().and_then(&mut address);
        if let Some(s) = &cur.sender {
            for t in person_texts(s, sender_address) {
                d.add_text(self.from, t);
            }
            if let Some(p) = s.peer {
                p.write_to(&mut peer_text);
                d.add_text(self.senderid, &peer_text);
                if let Some(n) = p.user_id() {
                    d.add_text(self.senderid, num.format(n));
                }
            }
            if let Some(r) = &s.raw_id {
                d.add_text(self.senderid, lower(r));
            }
        }
        let mut others: Vec<&Person> = Vec::new();
        for p in cur.participants.iter().chain(match &cur.body {
            Body::Call(c) => c.participants.iter(),
            _ => [].iter(),
        }) {
            let is_sender = cur.sender.as_ref().is_some_and(|s| s.same_as(p));
            if !is_sender && !others.iter().any(|o| o.same_as(p)) {
                others.push(p);
            }
        }
        for p in &others {
            for t in person_texts(p, address(p)) {
                d.add_text(self.to, t);
            }
        }
        for (m, _) in &src.rec.locations {
            if Some(m.as_str()) != sender_address {
                d.add_text(self.to, m);
            }
        }
        let mut phones: Vec<String> = cur
            .participants
            .iter()
            .chain(cur.sender.iter())
            .filter_map(|p| p.phone.as_deref())
            .filter_map(crate::mapping::normalize_phone)
            .collect();
        if let Body::Message(m) = &cur.body
            && let Some(c) = &m.contact
            && let Some(ph) = c.phone.as_deref().and_then(crate::mapping::normalize_phone)
        {
            phones.push(ph);
        }
        phones.sort();
        phones.dedup();
        for ph in phones {
            d.add_text(self.phone, ph);
        }

        self.add_headers(&mut d, src);
        let kind = cur.kind();
        d.add_text(self.kind, "externaldata");
        d.add_text(self.kind, kind.as_str());
        if !cur.attachments.is_empty() {
            d.add_text(self.kind, "attachment");
        }
        put(
            &mut d,
            self.itemclass,
            &["ipm.externaldata.telegram.", kind.as_str()],
        );
        for a in &cur.attachments {
            if let Some(n) = &a.file_name {
                d.add_text(self.attachmentnames, n);
            }
        }
        match &cur.body {
            Body::Service(e) => d.add_text(self.event, lower(&e.action)),
            Body::Deletion(_) => d.add_text(self.event, "deletion"),
            Body::Call(c) => {
                d.add_text(self.call, lower(&c.outcome));
                d.add_text(self.call, lower(&c.kind));
                if let Some(s) = c.duration_seconds {
                    d.add_u64(self.duration, s);
                }
            }
            _ => {}
        }
        if let Some(t) = cur.date {
            d.add_i64(self.sent, t);
        }
        d.add_u64(self.size, item_size(cur));
        d.add_bool(self.hasattachment, !cur.attachments.is_empty());
        let edited = src.versions.len() > 1 || src.versions.iter().any(|v| v.edited.is_some());
        d.add_bool(self.edited, edited);
        d.add_bool(self.deleted, src.deleted);
        d
    }
}

impl Fields {
    /// Each distinct `X-TELEMESSAGE-*` header value of every version, as
    /// one pre-tokenized value of `headers`.
    fn add_headers(&self, d: &mut TantivyDocument, src: &DocSource) {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for v in &src.versions {
            let Body::Message(m) = &v.body else { continue };
            for (name, value) in &m.extra_text {
                let pair = (name.as_str(), value.as_str());
                if !crate::query::is_header_property(name) || seen.contains(&pair) {
                    continue;
                }
                seen.push(pair);
                let name = name.to_ascii_lowercase();
                let tokens = tokenizer::tokens(value)
                    .into_iter()
                    .enumerate()
                    .map(|(position, (from, to, word))| tantivy::tokenizer::Token {
                        offset_from: from,
                        offset_to: to,
                        position,
                        text: header_token(&name, &word),
                        position_length: 1,
                    })
                    .collect();
                d.add_pre_tokenized_text(
                    self.headers,
                    tantivy::tokenizer::PreTokenizedString {
                        text: value.clone(),
                        tokens,
                    },
                );
            }
        }
    }
}

/// The `headers` term of one word (already normalized by the tokenizer) of
/// the header `name` (in lower case).
pub fn header_token(name: &str, word: &str) -> String {
    format!("{name}\u{1}{word}")
}

/// `s` in lower case, borrowed when it is already (Telegram's type and
/// action names always are).
fn lower(s: &str) -> Cow<'_, str> {
    let unchanged = |c: char| {
        let mut l = c.to_lowercase();
        l.next() == Some(c) && l.next().is_none()
    };
    if s.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) || s.chars().all(unchanged) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// The size an item reports: its text in UTF-8 bytes plus each attachment's
/// stored (or declared) size.
pub fn item_size(item: &Item) -> u64 {
    let text: u64 = item_texts(item).iter().map(|t| t.len() as u64).sum();
    let files: u64 = item
        .attachments
        .iter()
        .map(|a| a.content.map(|c| c.size).or(a.declared_size).unwrap_or(0))
        .sum();
    text + files
}

/// The searchable text of one item version: the message text and every
/// caption-like field, the service event's sentence, the call's description.
/// Borrowed from the item where it is there as it is.
pub fn item_texts(item: &Item) -> Vec<Cow<'_, str>> {
    fn all(v: &[String]) -> impl Iterator<Item = Cow<'_, str>> {
        v.iter().map(|s| Cow::Borrowed(s.as_str()))
    }
    let mut out: Vec<Cow<'_, str>> = Vec::new();
    match &item.body {
        Body::Message(m) => {
            out.push(Cow::Borrowed(&m.text));
            if let Some(p) = &m.poll {
                out.push(Cow::Borrowed(&p.question));
                out.extend(all(&p.answers));
            }
            if let Some(c) = &m.contact {
                out.extend(c.first_name.as_deref().map(Cow::Borrowed));
                out.extend(c.last_name.as_deref().map(Cow::Borrowed));
                out.extend(c.phone.as_deref().map(Cow::Borrowed));
            }
            if let Some(l) = &m.location {
                out.extend(l.place_name.as_deref().map(Cow::Borrowed));
                out.extend(l.address.as_deref().map(Cow::Borrowed));
            }
            if let Some(f) = &m.forwarded_from {
                out.extend(f.name.as_deref().map(Cow::Borrowed));
            }
            out.extend(m.saved_from.as_deref().map(Cow::Borrowed));
            out.extend(m.via_bot.as_deref().map(Cow::Borrowed));
            out.extend(m.author.as_deref().map(Cow::Borrowed));
            out.extend(m.extra_text.iter().map(|(_, v)| Cow::Borrowed(v.as_str())));
        }
        Body::Service(e) => {
            out.push(Cow::Borrowed(&e.text));
            out.extend(e.title.as_deref().map(Cow::Borrowed));
            out.extend(all(&e.members));
        }
        Body::Call(c) => out.push(Cow::Owned(c.describe())),
        Body::Unsupported => {}
        Body::Deletion(d) => out.push(Cow::Owned(format!("deleted {} {}", d.target, d.mode))),
    }
    for a in &item.attachments {
        out.extend(a.performer.as_deref().map(Cow::Borrowed));
        out.extend(a.title.as_deref().map(Cow::Borrowed));
    }
    out
}

/// What `from:`/`to:` match for a person: name, username, ids, phone, address.
fn person_texts<'p>(p: &'p Person, address: Option<&'p str>) -> Vec<Cow<'p, str>> {
    let mut out: Vec<Cow<'p, str>> = Vec::new();
    out.extend(p.name.as_deref().map(Cow::Borrowed));
    out.extend(
        p.username
            .as_deref()
            .map(|u| Cow::Borrowed(u.trim_start_matches('@'))),
    );
    if let Some(peer) = p.peer {
        out.push(Cow::Owned(peer.to_string()));
    }
    out.extend(p.raw_id.as_deref().map(Cow::Borrowed));
    out.extend(
        p.phone
            .as_deref()
            .and_then(crate::mapping::normalize_phone)
            .map(Cow::Owned),
    );
    out.extend(address.map(Cow::Borrowed));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_borrows_only_what_to_lowercase_keeps() {
        for s in [
            "pin_message",
            "Missed",
            "ǅemal",
            "ΟΔΟΣ",
            "straße",
            "",
            "İx",
            "user123",
        ] {
            assert_eq!(lower(s), s.to_lowercase(), "{s}");
        }
        assert!(matches!(lower("phone_call"), Cow::Borrowed(_)));
        assert!(matches!(lower("ǅemal"), Cow::Owned(_)));
    }
}
