//! One archived item as an RFC 5322 message, written deterministically: the
//! same item always gives the same bytes (Message-ID, boundary and dates come
//! from the item, never from the clock or a random source). Every body part
//! is base64, so no line of the message can look like an mbox separator and
//! any text survives transport; attachments are streamed from their blobs.

use crate::error::{Error, Result};
use crate::model::{Body, Item, ItemId, Person};
use base64::Engine;
use std::io::{Read, Write};

/// Where a person's address comes from.
pub struct People<'a> {
    /// `(Person::key, mailbox)` from the source row.
    pub addresses: &'a [(String, String)],
}

impl People<'_> {
    /// The mapped mailbox, else a stable address under `telegram.invalid`.
    pub fn address(&self, p: &Person) -> String {
        let k = p.key();
        if let Some((_, m)) = self.addresses.iter().find(|(kk, _)| *kk == k) {
            return m.clone();
        }
        let local: String = match (&p.peer, &p.raw_id) {
            (Some(peer), _) => format!("tg-{peer}"),
            (None, Some(r)) => format!("tg-{}", r),
            (None, None) => "tg-unknown".into(),
        }
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
        format!("{local}@telegram.invalid")
    }

    pub fn mailbox(&self, p: &Person) -> String {
        let addr = self.address(p);
        match &p.name {
            Some(n) if !n.is_empty() => format!("{} <{addr}>", display_name(n)),
            _ => addr,
        }
    }
}

/// A header word: quoted ASCII, or an RFC 2047 encoded word for anything else.
fn display_name(s: &str) -> String {
    if s.is_ascii() && !s.chars().any(|c| c.is_ascii_control()) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        encoded_words(s)
    }
}

/// RFC 2047 `=?utf-8?B?...?=` words of at most 45 input bytes each (whole
/// characters), so that folded lines stay short.
fn encoded_words(s: &str) -> String {
    let mut out = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            out.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        out.push(chunk);
    }
    out.iter()
        .map(|c| {
            format!(
                "=?utf-8?B?{}?=",
                base64::engine::general_purpose::STANDARD.encode(c.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// An unstructured header value (Subject): plain when printable ASCII.
fn unstructured(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.is_ascii() && clean.len() < 900 {
        clean
    } else {
        encoded_words(&clean)
    }
}

pub fn message_id(id: &ItemId) -> String {
    let mut s = format!("tg.{}.{}.{}", id.scope, id.chat, id.message).replace('-', "m");
    if id.dup > 0 {
        s.push_str(&format!(".{}", id.dup));
    }
    match id.part {
        crate::model::Part::Item => {}
        crate::model::Part::Deletion => s.push_str(".deleted"),
        crate::model::Part::Unnumbered => s.push_str(".unnumbered"),
    }
    format!("<{s}@tgvault.invalid>")
}

pub use crate::time::rfc5322 as rfc2822_date;

/// What the exported message says about the item beyond its current version.
pub struct Context<'a> {
    /// The mailbox whose copy this is.
    pub mailbox: &'a str,
    pub versions: &'a [(Option<i64>, Item)],
    /// The deletion event recorded against the item, if any.
    pub deletion: Option<&'a Item>,
    /// SHA-256 of the current version's stored content.
    pub sha256: [u8; 32],
    pub people: People<'a>,
}

/// The subject a mail client shows: the chat and the sender.
pub fn subject(item: &Item) -> String {
    let chat = item
        .chat
        .name
        .clone()
        .unwrap_or_else(|| format!("chat {}", item.chat.id));
    let who = item
        .sender
        .as_ref()
        .and_then(|s| s.name.clone())
        .unwrap_or_else(|| item.kind().as_str().to_string());
    format!("{chat} — {who}")
}

/// The plain-text body: the item's text, every earlier version, the
/// deletion, attachments without content.
pub fn body_text(item: &Item, cx: &Context) -> String {
    let mut b = String::new();
    match &item.body {
        Body::Message(m) => {
            if let Some(f) = &m.forwarded_from {
                b.push_str(&format!("[forwarded from {}]\n", f.label()));
            }
            if let Some(r) = m.reply_to {
                b.push_str(&format!("[in reply to message {r}]\n"));
            }
            b.push_str(&m.text);
            if let Some(p) = &m.poll {
                b.push_str(&format!("\n[poll] {}\n", p.question));
                for a in &p.answers {
                    b.push_str(&format!("  - {a}\n"));
                }
            }
            for t in crate::index::schema::item_texts(item).iter().skip(1) {
                if !t.is_empty() && !b.contains(t.as_ref()) {
                    b.push_str(&format!("\n{t}"));
                }
            }
        }
        Body::Service(e) => b.push_str(&format!("[service event: {}] {}", e.action, e.text)),
        Body::Call(c) => b.push_str(&c.describe()),
        Body::Unsupported => b.push_str("[a message type Telegram could not export]"),
        Body::Deletion(d) => b.push_str(&format!(
            "[deletion event: message {} was deleted ({}, {})]",
            d.target, d.mode, d.read_state
        )),
    }
    b.push('\n');
    for a in item.attachments.iter() {
        if let Some(c) = a.content {
            b.push_str(&format!(
                "\n[attached: {} {} ({} bytes)]",
                a.kind.as_str(),
                a.file_name.as_deref().unwrap_or("(no name)"),
                c.size
            ));
        }
    }
    for a in item.attachments.iter().filter(|a| a.content.is_none()) {
        b.push_str(&format!(
            "\n[attachment not in the archive: {} {} — {}]",
            a.kind.as_str(),
            a.file_name.as_deref().unwrap_or("(no name)"),
            a.missing.as_deref().unwrap_or("no content")
        ));
    }
    if cx.versions.len() > 1 {
        b.push_str(&format!(
            "\n\n--- {} versions (oldest first) ---\n",
            cx.versions.len()
        ));
        for (i, (edited, v)) in cx.versions.iter().enumerate() {
            let when = edited
                .map(rfc2822_date)
                .unwrap_or_else(|| "original".into());
            b.push_str(&format!(
                "\n[version {} — {when}]\n{}\n",
                i + 1,
                v.summary()
            ));
            if let Body::Message(m) = &v.body
                && m.text != v.summary()
            {
                b.push_str(&m.text);
                b.push('\n');
            }
        }
    }
    if let Some(d) = cx.deletion {
        b.push_str(&format!(
            "\n[deleted at the source{}: the deletion event is {}]\n",
            d.date
                .map(|t| format!(" on {}", rfc2822_date(t)))
                .unwrap_or_default(),
            d.id
        ));
    }
    b
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The message as HTML when its entities carry formatting (bold, links, ...):
/// each entity's text in the matching element, line breaks kept.
pub fn html_body(item: &Item) -> Option<String> {
    let Body::Message(m) = &item.body else {
        return None;
    };
    if !m.entities.iter().any(|e| e.kind != "plain") {
        return None;
    }
    let esc = |s: &str| html_escape(s).replace('\n', "<br>\n");
    let mut h =
        String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body><p>");
    // The stored entities are the formatted spans, in text order: the text
    // between them is plain.
    let mut cursor = 0;
    for e in &m.entities {
        let at = cursor + m.text[cursor..].find(e.text.as_str())?;
        h.push_str(&esc(&m.text[cursor..at]));
        cursor = at + e.text.len();
        let t = esc(&e.text);
        let href = e
            .attrs
            .iter()
            .find(|(k, _)| k == "href")
            .and_then(|(_, v)| serde_json::from_str::<String>(v).ok())
            .filter(|u| {
                u.starts_with("http://") || u.starts_with("https://") || u.starts_with("mailto:")
            });
        let piece = match e.kind.as_str() {
            "bold" => format!("<b>{t}</b>"),
            "italic" => format!("<i>{t}</i>"),
            "underline" => format!("<u>{t}</u>"),
            "strikethrough" => format!("<s>{t}</s>"),
            "code" => format!("<code>{t}</code>"),
            "pre" => format!("<pre>{t}</pre>"),
            "blockquote" => format!("<blockquote>{t}</blockquote>"),
            "spoiler" => format!("<span class=\"spoiler\">{t}</span>"),
            "text_link" => match href {
                Some(u) => format!("<a href=\"{}\">{t}</a>", html_escape(&u)),
                None => t,
            },
            "link" if e.text.starts_with("http://") || e.text.starts_with("https://") => {
                format!("<a href=\"{}\">{t}</a>", html_escape(&e.text))
            }
            _ => t,
        };
        h.push_str(&piece);
    }
    h.push_str(&esc(&m.text[cursor..]));
    h.push_str("</p></body></html>\n");
    Some(h)
}

fn base64_lines(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    for chunk in bytes.chunks(57) {
        out.write_all(
            base64::engine::general_purpose::STANDARD
                .encode(chunk)
                .as_bytes(),
        )?;
        out.write_all(b"\r\n")?;
    }
    Ok(())
}

/// Streams `r` as base64 lines.
fn base64_stream(out: &mut impl Write, mut r: impl Read) -> Result<u64> {
    let mut buf = vec![0u8; 57 * 1024];
    let mut total = 0u64;
    let mut filled = 0;
    loop {
        let n = r
            .read(&mut buf[filled..])
            .map_err(|e| Error::Internal(format!("reading a blob: {e}")))?;
        filled += n;
        total += n as u64;
        if n == 0 || filled == buf.len() {
            let whole = if n == 0 { filled } else { filled - filled % 57 };
            base64_lines(out, &buf[..whole]).map_err(|e| Error::Internal(e.to_string()))?;
            buf.copy_within(whole..filled, 0);
            filled -= whole;
            if n == 0 {
                break;
            }
        }
    }
    Ok(total)
}

/// The file name parameter of a part: plain when safe ASCII, else RFC 2231.
fn filename_params(name: &str) -> String {
    if name.is_ascii()
        && !name
            .chars()
            .any(|c| c.is_ascii_control() || c == '"' || c == '\\')
    {
        format!("filename=\"{name}\"")
    } else {
        let mut enc = String::new();
        for b in name.as_bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                enc.push(*b as char);
            } else {
                enc.push_str(&format!("%{b:02X}"));
            }
        }
        format!("filename*=utf-8''{enc}")
    }
}

/// The `X-Tgvault-Item` value of one version (counted from 1) of one copy:
/// unique at a target, and no other value holds it (an IMAP `SEARCH
/// HEADER` matches substrings), so a forwarder finds what it delivered.
pub fn item_header(id: &ItemId, version: u32, mailbox: &str) -> String {
    let mailbox: String = mailbox
        .chars()
        .map(|c| if c.is_control() || c == '>' { '?' } else { c })
        .collect();
    format!("{id}; version={version}; mailbox=<{mailbox}>")
}

/// Opens an attachment's content by its hash.
pub type BlobOpener<'a> = dyn FnMut(&[u8; 32]) -> Result<Box<dyn Read>> + 'a;

/// Writes the message. `open_blob` gives an attachment's content by hash.
pub fn write(
    out: &mut impl Write,
    item: &Item,
    cx: &Context,
    open_blob: &mut BlobOpener<'_>,
) -> Result<()> {
    let io = |e: std::io::Error| Error::Internal(format!("writing a message: {e}"));
    let mut h = String::new();
    let from = item
        .sender
        .as_ref()
        .map(|s| cx.people.mailbox(s))
        .unwrap_or_else(|| "tg-unknown@telegram.invalid".into());
    h.push_str(&format!("From: {from}\r\n"));
    let mut to: Vec<String> = Vec::new();
    for p in &item.participants {
        if item.sender.as_ref().is_some_and(|s| s.same_as(p)) {
            continue;
        }
        let m = cx.people.mailbox(p);
        if !to.contains(&m) {
            to.push(m);
        }
    }
    if !to.is_empty() {
        h.push_str(&format!("To: {}\r\n", to.join(",\r\n ")));
    }
    h.push_str(&format!(
        "Date: {}\r\n",
        rfc2822_date(item.date.unwrap_or(0))
    ));
    h.push_str(&format!("Subject: {}\r\n", unstructured(&subject(item))));
    h.push_str(&format!("Message-ID: {}\r\n", message_id(&item.id)));
    if let Body::Message(m) = &item.body
        && let Some(r) = m.reply_to
    {
        let target = ItemId {
            message: r,
            dup: 0,
            part: crate::model::Part::Item,
            ..item.id
        };
        h.push_str(&format!("In-Reply-To: {}\r\n", message_id(&target)));
    }
    h.push_str("MIME-Version: 1.0\r\n");
    h.push_str(&format!("X-Telegram-Chat-Id: {}\r\n", item.chat.id));
    h.push_str(&format!(
        "X-Telegram-Chat-Type: {}\r\n",
        unstructured(&item.chat.kind)
    ));
    h.push_str(&format!("X-Telegram-Message-Id: {}\r\n", item.id.message));
    let version = cx.versions.len() as u32;
    h.push_str(&format!(
        "X-Tgvault-Item: {}\r\n",
        item_header(&item.id, version, cx.mailbox)
    ));
    h.push_str(&format!("X-Tgvault-Kind: {}\r\n", item.kind().as_str()));
    let edited = cx.versions.len() > 1
        || cx.versions.iter().any(|(e, _)| e.is_some())
        || item.edited.is_some();
    h.push_str(&format!("X-Tgvault-Edited: {edited}\r\n"));
    h.push_str(&format!("X-Tgvault-Deleted: {}\r\n", cx.deletion.is_some()));
    if item.date.is_none() {
        h.push_str("X-Tgvault-Date-Unknown: true\r\n");
    }
    h.push_str(&format!("X-Tgvault-SHA256: {}\r\n", hex::encode(cx.sha256)));
    let boundary = format!("tgvault-{}", &hex::encode(cx.sha256)[..24]);
    h.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    out.write_all(h.as_bytes()).map_err(io)?;

    let text = body_text(item, cx);
    let plain =
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    match html_body(item) {
        None => {
            out.write_all(format!("--{boundary}\r\n{plain}").as_bytes())
                .map_err(io)?;
            base64_lines(out, text.as_bytes()).map_err(io)?;
        }
        Some(html) => {
            let alt = format!("{boundary}-alt");
            out.write_all(
                format!("--{boundary}\r\nContent-Type: multipart/alternative; boundary=\"{alt}\"\r\n\r\n--{alt}\r\n{plain}")
                    .as_bytes(),
            )
            .map_err(io)?;
            base64_lines(out, text.as_bytes()).map_err(io)?;
            out.write_all(
                format!("--{alt}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n")
                    .as_bytes(),
            )
            .map_err(io)?;
            base64_lines(out, html.as_bytes()).map_err(io)?;
            out.write_all(format!("--{alt}--\r\n").as_bytes())
                .map_err(io)?;
        }
    }
    for a in &item.attachments {
        let Some(c) = a.content else { continue };
        let name = a.display_name();
        let mime = a
            .mime_type
            .clone()
            .filter(|m| m.is_ascii() && m.contains('/') && !m.contains(['"', '\r', '\n', ';']))
            .unwrap_or_else(|| "application/octet-stream".into());
        let params = filename_params(&name);
        let head = format!(
            "--{boundary}\r\nContent-Type: {mime}\r\nContent-Disposition: attachment; {params}\r\nContent-Transfer-Encoding: base64\r\nX-Tgvault-SHA256: {}\r\n\r\n",
            hex::encode(c.sha256)
        );
        out.write_all(head.as_bytes()).map_err(io)?;
        base64_stream(out, open_blob(&c.sha256)?)?;
    }
    out.write_all(format!("--{boundary}--\r\n").as_bytes())
        .map_err(io)?;
    Ok(())
}
