//! Telegram Desktop's HTML export (`messages.html`, `messages2.html`, ...): a
//! fallback for chats that were not exported as JSON.
//!
//! The HTML lacks epoch times, peer ids, sizes and MIME types, so items from it
//! are poorer, and each says so in its anomalies:
//! - time comes from `div.date.details[title="DD.MM.YYYY HH:MM:SS UTC+HH:MM"]`.
//!   Telegram writes that offset with a known daylight-saving error, so when the
//!   importer is given a zone (`--tz`) the wall time is read in that zone
//!   instead, which gets DST right;
//! - a `joined` message (same sender as the one before) has no sender name: the
//!   previous sender carries over;
//! - there is no chat id: one is derived from the chat's name (negative, so it
//!   never meets a real id), and there are no user ids, so its items map through
//!   the custodian's address only.
//!
//! A page is read whole (Telegram splits exports into pages of at most 1,000
//! messages), and only a small tag scanner is used: the exporter's markup is
//! regular.

use super::telegram::{SeenIds, Zone, derived_chat_id};
use crate::canon::{self, Canon};
use crate::error::{Error, Result};
use crate::model::*;
use std::path::{Path, PathBuf};

pub const FORMAT: &str = "telegram-desktop-html";

/// The pages of an HTML export in a directory, in reading order.
pub fn pages(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut pages: Vec<(u32, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(rest) = name
            .strip_prefix("messages")
            .and_then(|r| r.strip_suffix(".html"))
        {
            super::refuse_link(&p)?;
            let n = if rest.is_empty() {
                1
            } else {
                rest.parse().unwrap_or(u32::MAX)
            };
            pages.push((n, p));
        }
    }
    pages.sort();
    Ok(pages.into_iter().map(|(_, p)| p).collect())
}

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    Open { name: &'a str, attrs: &'a str },
    Close { name: &'a str },
    Text(&'a str),
}

/// Splits HTML into tags and text. Comments, doctype and `<script>` bodies are
/// dropped.
fn tokens(html: &str) -> Vec<(usize, Token<'_>)> {
    let mut out = Vec::new();
    let b = html.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<' {
            if html[i..].starts_with("<!--") {
                i = html[i..].find("-->").map_or(b.len(), |e| i + e + 3);
                continue;
            }
            let end = html[i..].find('>').map_or(b.len(), |e| i + e);
            let inner = &html[i + 1..end.min(b.len())];
            if let Some(name) = inner.strip_prefix('/') {
                out.push((i, Token::Close { name: name.trim() }));
            } else if !inner.starts_with('!') && !inner.starts_with('?') {
                let inner = inner.strip_suffix('/').unwrap_or(inner);
                let (name, attrs) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
                out.push((i, Token::Open { name, attrs }));
                if name.eq_ignore_ascii_case("script") || name.eq_ignore_ascii_case("style") {
                    let close = format!("</{name}");
                    let from = end + 1;
                    i = html[from.min(b.len())..]
                        .find(&close)
                        .map_or(b.len(), |e| from + e);
                    continue;
                }
            }
            i = end + 1;
        } else {
            let end = html[i..].find('<').map_or(b.len(), |e| i + e);
            out.push((i, Token::Text(&html[i..end])));
            i = end;
        }
    }
    out
}

fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = attrs;
    while let Some(pos) = rest.find(name) {
        let before_ok = pos == 0 || rest.as_bytes()[pos - 1].is_ascii_whitespace();
        let after = &rest[pos + name.len()..];
        if before_ok && let Some(v) = after.trim_start().strip_prefix('=') {
            let v = v.trim_start();
            let q = v.chars().next()?;
            if q == '"' || q == '\'' {
                let body = &v[1..];
                return body.find(q).map(|e| &body[..e]);
            }
            return Some(v.split_whitespace().next().unwrap_or(""));
        }
        rest = &rest[pos + name.len()..];
    }
    None
}

fn has_class(attrs: &str, class: &str) -> bool {
    attr(attrs, "class").is_some_and(|c| c.split_whitespace().any(|x| x == class))
}

/// Decodes the character references the exporter writes.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let ent = &rest[1..e];
            let c = match ent {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" | "#39" => '\'',
                "nbsp" => '\u{a0}',
                _ => {
                    let num = ent.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)?
                }
            };
            Some((c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reading state carried from page to page of one export.
pub struct HtmlChat {
    chat: Chat,
    last_sender: Option<Person>,
    seen: SeenIds,
    /// A zone given by the user: read wall times in it rather than trusting the
    /// offset in the title.
    zone: Option<Zone>,
}

/// Reads every page of an HTML export, in order, into `out`.
pub fn read(
    pages: &[PathBuf],
    zone: Option<Zone>,
    out: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<()> {
    let mut chat = HtmlChat::new(zone);
    for page in pages {
        let text = std::fs::read_to_string(page).map_err(|e| Error::io(page, e))?;
        chat.page(&text, page, out)?;
    }
    Ok(())
}

impl HtmlChat {
    pub fn new(zone: Option<Zone>) -> HtmlChat {
        HtmlChat {
            chat: Chat {
                id: 0,
                name: None,
                kind: "unknown".into(),
            },
            last_sender: None,
            seen: SeenIds::default(),
            zone,
        }
    }

    /// Parses one page, calling `out` with each item in order. `path` names the
    /// page in errors.
    pub fn page(
        &mut self,
        html: &str,
        path: &Path,
        out: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let toks = tokens(html);
        if !toks.iter().any(
            |(_, t)| matches!(t, Token::Open { name: "div", attrs } if has_class(attrs, "history")),
        ) {
            return Err(Error::input(
                path,
                "not a Telegram HTML export: no div.history",
            ));
        }
        // The chat's name: the page header's bold text.
        if self.chat.name.is_none()
            && let Some(pos) = toks.iter().position(|(_, t)| matches!(t, Token::Open { name: "div", attrs } if has_class(attrs, "page_header")))
        {
            let name = toks[pos..]
                .iter()
                .skip_while(|(_, t)| !matches!(t, Token::Open { name: "div", attrs } if has_class(attrs, "bold")))
                .find_map(|(_, t)| match t {
                    Token::Text(s) if !s.trim().is_empty() => Some(unescape(s.trim())),
                    _ => None,
                });
            if let Some(n) = name {
                self.chat.id = derived_chat_id(format!("telegram-html-chat:{n}").as_bytes());
                self.chat.name = Some(n);
            }
        }
        let mut i = 0;
        while i < toks.len() {
            let (start, tok) = &toks[i];
            let Token::Open { name: "div", attrs } = tok else {
                i += 1;
                continue;
            };
            if !has_class(attrs, "message") {
                i += 1;
                continue;
            }
            // The message's extent: up to the matching </div>.
            let mut depth = 0;
            let mut j = i;
            while j < toks.len() {
                match &toks[j].1 {
                    Token::Open { name: "div", .. } => depth += 1,
                    Token::Close { name: "div" } => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let end = toks.get(j + 1).map_or(html.len(), |(p, _)| *p);
            let raw = &html[*start..end];
            if let Some(item) = self.message(attrs, &toks[i..=j.min(toks.len() - 1)], raw, path)? {
                out(item)?;
            }
            i = j + 1;
        }
        Ok(())
    }

    fn message(
        &mut self,
        attrs: &str,
        toks: &[(usize, Token)],
        raw: &str,
        path: &Path,
    ) -> Result<Option<Item>> {
        let id_attr = attr(attrs, "id").unwrap_or("");
        let Some(msg_id) = id_attr
            .strip_prefix("message")
            .and_then(|n| n.parse::<i64>().ok())
        else {
            return Err(Error::input(
                path,
                format!("a message div has no usable id ('{id_attr}')"),
            ));
        };
        let service = has_class(attrs, "service");
        // Date separators are service divs with negative ids: presentation only.
        if service && msg_id < 0 {
            return Ok(None);
        }
        let mut anomalies =
            vec!["from an HTML export: no epoch time, peer ids, sizes or MIME types".to_string()];
        let dup = self.seen.see(msg_id);
        if dup > 0 {
            anomalies.push(format!(
                "duplicate message id {msg_id} (occurrence {}): kept as its own item",
                dup + 1
            ));
        }
        // Walk the message's tokens, noting which div class each text sits in.
        let mut stack: Vec<String> = Vec::new();
        let mut date_title: Option<String> = None;
        let mut from: Option<String> = None;
        let mut text = String::new();
        let mut service_text = String::new();
        let mut attachments = Vec::new();
        let mut in_text = 0usize;
        for (_, t) in toks {
            match t {
                Token::Open { name, attrs } => {
                    let class = attr(attrs, "class").unwrap_or("").to_string();
                    if *name == "div" && class.split_whitespace().any(|c| c == "date") {
                        date_title = attr(attrs, "title").map(str::to_string);
                    }
                    if *name == "a"
                        && let Some(href) = attr(attrs, "href")
                        && !href.starts_with("http")
                        && !href.starts_with('#')
                        && !href.starts_with("javascript")
                    {
                        attachments.push(html_attachment(&class, href));
                    }
                    if *name == "br" && in_text > 0 {
                        text.push('\n');
                    }
                    if *name == "div" {
                        if class.split_whitespace().any(|c| c == "text") {
                            in_text += 1;
                        }
                        stack.push(class);
                    }
                }
                Token::Close { name: "div" } => {
                    if let Some(c) = stack.pop()
                        && c.split_whitespace().any(|c| c == "text")
                    {
                        in_text = in_text.saturating_sub(1);
                    }
                }
                Token::Close { .. } => {}
                Token::Text(s) => {
                    let top = stack.last().map(String::as_str).unwrap_or("");
                    let classes: Vec<&str> = top.split_whitespace().collect();
                    if in_text > 0 {
                        text.push_str(&unescape(s));
                    } else if classes.contains(&"from_name") {
                        let n = unescape(s.trim());
                        if !n.is_empty() {
                            from = Some(n);
                        }
                    } else if service && classes.contains(&"details") {
                        service_text.push_str(&unescape(s));
                    }
                }
            }
        }
        let sender = match from {
            Some(name) => {
                let p = Person {
                    name: Some(name),
                    ..Default::default()
                };
                self.last_sender = Some(p.clone());
                Some(p)
            }
            None if !service => {
                if self.last_sender.is_some() {
                    anomalies.push("sender carried over from the previous message (joined)".into());
                }
                self.last_sender.clone()
            }
            None => None,
        };
        let (date, time_basis) = self.time(date_title.as_deref(), &mut anomalies);
        let text = text.trim().to_string();
        let body = if service {
            let t = service_text
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            Body::Service(ServiceEvent {
                action: "html_service".into(),
                actor: None,
                title: None,
                members: vec![],
                message_id: None,
                text: t,
            })
        } else {
            Body::Message(Box::new(Message {
                text,
                ..Default::default()
            }))
        };
        Ok(Some(Item {
            id: ItemId {
                dup,
                ..ItemId::new(0, self.chat.id, msg_id)
            },
            chat: self.chat.clone(),
            date,
            time_basis: time_basis.clone(),
            edited: None,
            participants: sender.clone().into_iter().collect(),
            sender,
            body,
            attachments,
            anomalies,
            source_format: FORMAT.into(),
            raw: raw.to_string(),
            fingerprint: canon::fingerprint(Canon::Words, raw, &time_basis, &mut Vec::new()),
        }))
    }

    fn time(&self, title: Option<&str>, anomalies: &mut Vec<String>) -> (Option<i64>, TimeBasis) {
        let Some(title) = title else {
            anomalies.push("no date".into());
            return (None, TimeBasis::Unknown);
        };
        // "23.08.2023 13:11:23 UTC-08:00"
        let mut parts = title.split_whitespace();
        let (Some(d), Some(t)) = (parts.next(), parts.next()) else {
            anomalies.push(format!("date '{title}' is not readable"));
            return (None, TimeBasis::Unknown);
        };
        let offset = parts
            .next()
            .and_then(|o| o.strip_prefix("UTC"))
            .unwrap_or("+00:00");
        let dmy: Vec<&str> = d.split('.').collect();
        if dmy.len() != 3 {
            anomalies.push(format!("date '{title}' is not readable"));
            return (None, TimeBasis::Unknown);
        }
        let local = format!("{}-{}-{}T{t}", dmy[2], dmy[1], dmy[0]);
        let zone = match &self.zone {
            Some(z) => z.clone(),
            None => match Zone::parse(offset) {
                Ok(z) => z,
                Err(_) => {
                    anomalies.push(format!("date '{title}' has an unreadable offset"));
                    return (None, TimeBasis::Unknown);
                }
            },
        };
        if self.zone.is_none() {
            anomalies.push(
                "date read with the offset in the HTML title, which Telegram writes with a known DST error (name the zone it was taken in to read it there)".into(),
            );
        }
        match zone.local_to_epoch(&local) {
            Some(e) => (
                Some(e),
                TimeBasis::LocalTime {
                    zone: zone.name.clone(),
                },
            ),
            None => {
                anomalies.push(format!("date '{title}' is not readable"));
                (None, TimeBasis::Unknown)
            }
        }
    }
}

fn html_attachment(class: &str, href: &str) -> Attachment {
    let c: Vec<&str> = class.split_whitespace().collect();
    let kind = if c.contains(&"photo_wrap") {
        AttachmentKind::Photo
    } else if c.contains(&"video_file_wrap") {
        AttachmentKind::Video
    } else if c.contains(&"media_voice_message") {
        AttachmentKind::Voice
    } else if c.contains(&"animated_wrap") {
        AttachmentKind::Animation
    } else if c.contains(&"sticker_wrap") {
        AttachmentKind::Sticker
    } else if c.contains(&"media_video") {
        AttachmentKind::VideoMessage
    } else if c.contains(&"media_audio_file") {
        AttachmentKind::Audio
    } else {
        AttachmentKind::File
    };
    Attachment::new(kind, Some(unescape(href)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<html><body><div class="page_header"><div class="content"><div class="text bold">
Deal &amp; Co
</div></div></div><div class="history">
<div class="message service" id="message-1"><div class="body details">
1 March 2024
</div></div>
<div class="message default clearfix" id="message5"><div class="body">
<div class="pull_right date details" title="01.03.2024 10:00:00 UTC+01:00">10:00</div>
<div class="from_name">
Ann
</div>
<div class="media_wrap clearfix"><a class="photo_wrap clearfix pull_left" href="photos/photo_1@01-03-2024_10-00-00.jpg"><img class="photo" src="photos/x_thumb.jpg"/></a></div>
<div class="text">
line one<br>line &lt;two&gt; <a href="https://x.example">link</a>
</div></div></div>
<div class="message default clearfix joined" id="message6"><div class="body">
<div class="pull_right date details" title="01.03.2024 10:01:00 UTC+01:00">10:01</div>
<div class="text">
second
</div></div></div>
<div class="message service" id="message7"><div class="body details">
Ann pinned a message
</div></div>
</div></body></html>"#;

    fn items(zone: Option<Zone>) -> Vec<Item> {
        let mut out = Vec::new();
        let mut chat = HtmlChat::new(zone);
        chat.page(PAGE, Path::new("messages.html"), &mut |i| {
            out.push(i);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn reads_messages_joined_senders_services_and_media() {
        let it = items(None);
        assert_eq!(it.len(), 3);
        assert_eq!(it[0].chat.name.as_deref(), Some("Deal & Co"));
        assert!(it[0].chat.id < 0);
        let Body::Message(m) = &it[0].body else {
            panic!()
        };
        assert_eq!(m.text, "line one\nline <two> link");
        assert_eq!(it[0].date, Some(1709283600)); // 09:00Z
        assert_eq!(it[0].attachments[0].kind, AttachmentKind::Photo);
        assert_eq!(
            it[0].attachments[0].source_path.as_deref(),
            Some("photos/photo_1@01-03-2024_10-00-00.jpg")
        );
        assert_eq!(it[1].sender.as_ref().unwrap().name.as_deref(), Some("Ann"));
        assert!(it[1].anomalies.iter().any(|a| a.contains("joined")));
        let Body::Service(s) = &it[2].body else {
            panic!()
        };
        assert_eq!(s.text, "Ann pinned a message");
        assert_eq!(it[2].id.message, 7);
    }

    #[test]
    fn a_given_zone_overrides_the_title_offset() {
        let it = items(Some(Zone::parse("UTC").unwrap()));
        assert_eq!(it[0].date, Some(1709287200)); // 10:00Z
    }

    #[test]
    fn entities_decode() {
        assert_eq!(
            unescape("a &amp; b &#39;c&#x27; &bogus; &"),
            "a & b 'c' &bogus; &"
        );
    }

    #[test]
    fn pages_that_are_not_exports_are_refused() {
        let mut chat = HtmlChat::new(None);
        let e = chat
            .page(
                "<html><body>hi</body></html>",
                Path::new("x.html"),
                &mut |_| Ok(()),
            )
            .unwrap_err();
        assert!(e.to_string().contains("no div.history"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_pages_never_panic(s in "(<div class=\"(message|history|text|from_name|date details) ?\" (id=\"message-?[0-9]{1,3}\")?( title=\"[0-9.: UTC+-]{0,30}\")?>|</div>|<a href=\"[a-z/.]{0,10}\">|&[a-z#0-9]{0,6};?|[a-zé ]{0,8}|<br>|<){0,40}") {
            let mut chat = HtmlChat::new(None);
            let _ = chat.page(&s, Path::new("m.html"), &mut |_| Ok(()));
        }
    }
}
