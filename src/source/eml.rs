//! TeleMessage deliveries: one chat message per RFC 5322 message (EML),
//! alone or in a delivery package (a ZIP of EML files with a `.mf`
//! manifest). Parsed with mail-parser; the delivered bytes are kept
//! verbatim as an attachment of the item (they need not be UTF-8).
//!
//! What a delivery becomes:
//! - participants from `From`, `To` and `Cc`, each as TeleMessage writes
//!   them (`First Last Mobile <email>`): the name, the mobile number when
//!   the display name ends with one, and the e-mail address (as
//!   `raw_id = "mailto:ADDR"`, which mapping reads as the item's e-mail
//!   address property);
//! - every `X-TELEMESSAGE-*` header, `Thread-Index`, the subject and the
//!   Message-ID as labelled texts (searchable, shown with the item);
//! - the item id from `X-TELEMESSAGE-THREAD_ID` (the chat) and
//!   `X-TELEMESSAGE-ArchiveMessageID` (the message), numbers as they are,
//!   anything else hashed; without an archive id, from the Message-ID and
//!   the date; without either, from the bytes;
//! - a subject starting `DELETED – READ`, `– UNREAD` or `– UNKNOWN` (en
//!   dash, or a hyphen) is a deletion event for the message it names.

use crate::model::*;
use mail_parser::{MessageParser, MimeHeaders};

pub const FORMAT: &str = "telemessage-eml";

/// The labelled texts' key for the delivered subject.
const SUBJECT: &str = "subject";

/// Turns one delivered message into an item; what cannot be read as MIME
/// is kept whole, with why, for the quarantine. `name` names it in notes
/// (its file name in a package).
pub fn convert(bytes: &[u8], name: &str) -> Item {
    let parsed = MessageParser::default().parse(bytes);
    let raw = String::from_utf8_lossy(bytes).into_owned();
    let fingerprint = sha256(bytes);
    let mut item = match parsed {
        Some(m) if looks_like_mail(&m) => from_message(&m, name, fingerprint),
        _ => unreadable(name, fingerprint),
    };
    item.attachments.insert(0, delivered(bytes, name));
    item.raw = raw;
    item
}

/// Whether the parse found a message: headers that a delivery has.
fn looks_like_mail(m: &mail_parser::Message) -> bool {
    m.from().is_some() || m.date().is_some() || m.message_id().is_some()
}

/// The delivered bytes, verbatim, as the item's first attachment.
fn delivered(bytes: &[u8], name: &str) -> Attachment {
    let mut a = Attachment::new(AttachmentKind::File, None);
    a.file_name = Some(file_name(name));
    a.mime_type = Some("message/rfc822".into());
    a.title = Some("the message as delivered".into());
    a.declared_size = Some(bytes.len() as u64);
    a.inline = Some(bytes.to_vec());
    a
}

fn file_name(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    if base.to_ascii_lowercase().ends_with(".eml") {
        base.to_string()
    } else {
        format!("{base}.eml")
    }
}

fn unreadable(name: &str, fingerprint: [u8; 32]) -> Item {
    let why = format!(
        "{name}: not a MIME message (no From, Date or Message-ID header): kept as delivered"
    );
    Item::kept_whole(FORMAT, String::new(), fingerprint, why)
}

/// A positive 63-bit number from the first bytes of a hash.
fn hash63(h: &[u8; 32]) -> i64 {
    crate::model::hash63(h).max(1)
}

/// A header's number as it is when it is one, else a hash of its text.
fn number(text: &str) -> i64 {
    let t = text.trim();
    match t.parse::<i64>() {
        Ok(n) if n > 0 => n,
        _ => hash63(&sha256(t.as_bytes())),
    }
}

fn from_message(m: &mail_parser::Message, name: &str, fingerprint: [u8; 32]) -> Item {
    let header = |h: &str| -> Option<String> {
        m.headers_raw()
            .find(|(k, _)| k.eq_ignore_ascii_case(h))
            .map(|(_, v)| unfold(v))
    };
    let date = m.date().map(|d| d.to_timestamp());
    let thread = header("X-TELEMESSAGE-THREAD_ID").or_else(|| header("X-TELEMESSAGE-GroupID"));
    let chat = Chat {
        id: thread.as_deref().map_or(0, number),
        name: header("X-TELEMESSAGE-ThreadName").or_else(|| header("X-TELEMESSAGE-GROUP_NAME")),
        kind: match header("X-TELEMESSAGE-GroupID") {
            Some(_) => "private_group".into(),
            None => "personal_chat".into(),
        },
    };
    let message = match (header("X-TELEMESSAGE-ArchiveMessageID"), m.message_id()) {
        (Some(a), _) => number(&a),
        (None, Some(mid)) => number(&format!("{mid}\n{}", date.unwrap_or(0))),
        (None, None) => hash63(&fingerprint),
    };
    let id = ItemId::new(0, chat.id, message);
    let subject = m.subject().unwrap_or_default().to_string();
    let from: Vec<Person> = m.from().map(people).unwrap_or_default();
    let mut participants = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let listed = [m.to(), m.cc()].into_iter().flatten().flat_map(people);
    for p in from.iter().cloned().chain(listed) {
        if seen.insert(p.key()) {
            participants.push(p);
        }
    }
    let mut labelled = vec![(SUBJECT.to_string(), subject.clone())];
    labelled.extend(
        m.message_id()
            .map(|v| ("message-id".to_string(), v.to_string())),
    );
    for (k, v) in m.headers_raw() {
        let lower = k.to_ascii_lowercase();
        if lower.starts_with("x-telemessage-") || lower == "thread-index" {
            labelled.push((k.to_string(), unfold(v)));
        }
    }
    let mut anomalies = Vec::new();
    if date.is_none() {
        anomalies.push(format!("{name}: no Date header"));
    }
    let body = match deleted(&subject) {
        Some(state) => Body::Deletion(Deletion {
            target: id,
            mode: "unknown".into(),
            read_state: state.into(),
        }),
        None => Body::Message(Box::new(Message {
            text: text_of(m),
            extra_text: labelled,
            ..Default::default()
        })),
    };
    let id = match body {
        Body::Deletion(_) => ItemId {
            part: Part::Deletion,
            ..id
        },
        _ => id,
    };
    Item {
        id,
        chat,
        date,
        time_basis: if date.is_some() {
            TimeBasis::Epoch
        } else {
            TimeBasis::Unknown
        },
        edited: None,
        sender: from.into_iter().next(),
        participants,
        body,
        attachments: m.attachments().map(attachment).collect(),
        anomalies,
        source_format: FORMAT.into(),
        raw: String::new(),
        fingerprint,
    }
}

/// A header's raw value unfolded onto one line.
fn unfold(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The read state a `DELETED – STATE` subject names.
fn deleted(subject: &str) -> Option<&'static str> {
    let rest = subject.trim_start().strip_prefix("DELETED")?.trim_start();
    let rest = rest
        .strip_prefix('\u{2013}')
        .or_else(|| rest.strip_prefix('-'))?
        .trim_start();
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    match word.as_str() {
        "READ" => Some("read"),
        "UNREAD" => Some("unread"),
        "UNKNOWN" => Some("unknown"),
        _ => None,
    }
}

/// The message's text: its plain text parts, else its HTML ones as text.
fn text_of(m: &mail_parser::Message) -> String {
    let mut parts = Vec::new();
    for i in 0..m.text_body_count() {
        if let Some(t) = m.body_text(i) {
            parts.push(t.into_owned());
        }
    }
    parts.join("\n").trim().to_string()
}

/// The people of one address header, as TeleMessage writes them.
fn people(list: &mail_parser::Address) -> Vec<Person> {
    list.iter()
        .map(|a| {
            let (name, phone) = split_phone(a.name().unwrap_or_default());
            Person {
                peer: None,
                raw_id: a
                    .address()
                    .map(|e| format!("mailto:{}", e.trim().to_lowercase())),
                name,
                username: None,
                phone,
            }
        })
        .collect()
}

/// `First Last +15551234567` -> the name and the number.
fn split_phone(display: &str) -> (Option<String>, Option<String>) {
    let display = display.trim();
    let (head, last) = match display.rsplit_once(char::is_whitespace) {
        Some((h, l)) => (h.trim(), l),
        None => ("", display),
    };
    let digits = last.chars().filter(char::is_ascii_digit).count();
    let phone_like = digits >= 7
        && last
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.'));
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    if phone_like {
        (some(head), Some(last.to_string()))
    } else {
        (some(display), None)
    }
}

fn attachment(p: &mail_parser::MessagePart) -> Attachment {
    let mime = p
        .content_type()
        .map(|c| match c.subtype() {
            Some(s) => format!("{}/{}", c.ctype(), s),
            None => c.ctype().to_string(),
        })
        .map(|m| m.to_ascii_lowercase());
    let kind = match mime.as_deref().and_then(|m| m.split('/').next()) {
        Some("image") => AttachmentKind::Photo,
        Some("video") => AttachmentKind::Video,
        Some("audio") => AttachmentKind::Audio,
        _ => AttachmentKind::File,
    };
    let mut a = Attachment::new(kind, None);
    a.file_name = p.attachment_name().map(str::to_string);
    a.mime_type = mime;
    a.declared_size = Some(p.contents().len() as u64);
    a.inline = Some(p.contents().to_vec());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const EML: &str = "From: Ann Adams +15550001 <Ann@Corp.Example>\r\n\
To: Bob Brown +15550002 <bob@outside.example>, Cy Chen <cy@corp.example>\r\n\
Subject: quarterly numbers\r\n\
Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n\
Message-ID: <m1@telemessage>\r\n\
X-TELEMESSAGE-ArchiveMessageID: 981\r\n\
X-TELEMESSAGE-THREAD_ID: 4411\r\n\
X-TELEMESSAGE-Network: Telegram\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
the numbers are in\r\n";

    #[test]
    fn a_delivery_becomes_an_item_with_its_people_and_properties() {
        let it = convert(EML.as_bytes(), "pkg/one.eml");
        assert_eq!(it.id, ItemId::new(0, 4411, 981));
        assert_eq!(it.date, Some(1_796_119_200));
        let Body::Message(m) = &it.body else {
            panic!("{:?}", it.body)
        };
        assert_eq!(m.text, "the numbers are in");
        assert!(
            m.extra_text
                .contains(&("X-TELEMESSAGE-Network".into(), "Telegram".into()))
        );
        let ann = &it.participants[0];
        assert_eq!(ann.name.as_deref(), Some("Ann Adams"));
        assert_eq!(ann.phone.as_deref(), Some("+15550001"));
        assert_eq!(ann.raw_id.as_deref(), Some("mailto:ann@corp.example"));
        assert_eq!(it.participants.len(), 3);
        assert_eq!(it.participants[2].phone, None);
        let kept = &it.attachments[0];
        assert_eq!(kept.inline.as_deref(), Some(EML.as_bytes()));
        assert_eq!(kept.file_name.as_deref(), Some("one.eml"));
    }

    #[test]
    fn a_deleted_subject_is_a_deletion_of_the_same_message() {
        let del = EML.replace(
            "Subject: quarterly numbers",
            "Subject: DELETED \u{2013} UNREAD quarterly numbers",
        );
        let it = convert(del.as_bytes(), "two.eml");
        let Body::Deletion(d) = &it.body else {
            panic!("{:?}", it.body)
        };
        assert_eq!(d.target, ItemId::new(0, 4411, 981));
        assert_eq!(d.read_state, "unread");
        assert_eq!(it.id.part, Part::Deletion);
        assert_eq!(deleted("DELETED - READ x"), Some("read"));
        assert_eq!(deleted("DELETED ITEMS"), None);
    }

    #[test]
    fn hostile_nesting_and_huge_headers_do_not_bring_it_down() {
        let mut deep =
            String::from("From: a <a@x.example>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n");
        for i in 0..20_000 {
            deep.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        let it = convert(deep.as_bytes(), "deep.eml");
        assert_eq!(
            it.attachments[0].inline.as_ref().map(Vec::len),
            Some(deep.len())
        );
        let many: String = (0..50_000)
            .map(|i| format!("p{i} <p{i}@x.example>, "))
            .collect();
        let wide = format!("From: a <a@x.example>\r\nTo: {many}\r\n\r\nx");
        let it = convert(wide.as_bytes(), "wide.eml");
        assert!(it.participants.len() > 1_000, "{}", it.participants.len());
    }

    proptest::proptest! {
        /// Whatever bytes arrive, and whatever a damaged copy of a real
        /// delivery holds: an item, its bytes kept exactly, no panic.
        #[test]
        fn any_bytes_become_an_item_that_keeps_them(
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            at in 0usize..600,
            cut in 0usize..700,
        ) {
            let mut damaged = EML.as_bytes().to_vec();
            let i = at.min(damaged.len());
            damaged.splice(i..i, noise.iter().copied());
            damaged.truncate(cut.max(1));
            for bytes in [&noise[..], &damaged[..]] {
                let it = convert(bytes, "x.eml");
                proptest::prop_assert_eq!(it.attachments[0].inline.as_deref(), Some(bytes));
                proptest::prop_assert_eq!(it.fingerprint, sha256(bytes));
            }
        }
    }

    #[test]
    fn bytes_that_are_not_mail_are_kept_whole() {
        let junk = b"\x00\xffnot a message at all\n\n\x81";
        let it = convert(junk, "bad.eml");
        assert!(matches!(it.body, Body::Unsupported));
        assert_eq!(it.attachments[0].inline.as_deref(), Some(&junk[..]));
        assert!(
            it.anomalies[0].contains("not a MIME message"),
            "{:?}",
            it.anomalies
        );
        assert!(it.participants.is_empty());
    }
}
