//! Conversation transcripts (`--transcripts`): one readable HTML page per
//! chat in the export, its messages in order with senders, times, replies,
//! edits, deletions, calls and links to the exported attachment files.

use super::eml::rfc2822_date;
use super::safe_component;
use crate::error::{Error, Result};
use crate::model::{Body, Item};
use std::collections::BTreeMap;
use std::path::Path;

/// One item as a transcript shows it.
pub struct Entry {
    pub item: Item,
    /// Earlier versions' texts, oldest first.
    pub earlier: Vec<String>,
    pub deleted: bool,
    /// `(file name, path relative to the package)` of each attachment written.
    pub files: Vec<(String, String)>,
}

fn esc(s: &str) -> String {
    super::neutral::visible(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\n', "<br>\n")
}

fn day(t: Option<i64>) -> String {
    t.map(crate::time::day).unwrap_or_else(|| "undated".into())
}

/// Writes `Transcripts/<chat>_<id>_<first day>_<last day>.html` per chat.
pub fn write_all(out: &Path, entries: Vec<Entry>) -> Result<u64> {
    let mut chats: BTreeMap<(u64, i64), Vec<Entry>> = BTreeMap::new();
    for e in entries {
        chats
            .entry((e.item.id.scope, e.item.chat.id))
            .or_default()
            .push(e);
    }
    let dir = out.join("Transcripts");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut n = 0;
    for ((_, chat_id), mut list) in chats {
        list.sort_by_key(|e| (e.item.date.unwrap_or(i64::MAX), e.item.id));
        let first = &list[0].item;
        let name = first
            .chat
            .name
            .clone()
            .unwrap_or_else(|| format!("chat {chat_id}"));
        let dated: Vec<i64> = list.iter().filter_map(|e| e.item.date).collect();
        let (from, to) = (day(dated.first().copied()), day(dated.last().copied()));
        let file = format!("{}_{}_{from}_{to}.html", safe_component(&name), chat_id);
        let mut h = String::new();
        h.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n");
        h.push_str(&format!("<title>{} ({from} to {to})</title>\n", esc(&name)));
        h.push_str("<style>body{font-family:sans-serif;max-width:50em;margin:auto}.m{margin:.6em 0}.t{color:#666;font-size:.85em}.note{color:#a00;font-size:.85em}</style>\n</head><body>\n");
        h.push_str(&format!(
            "<h1>{}</h1>\n<p>Chat {chat_id} ({}), {} items, {from} to {to}. Times are UTC.</p>\n",
            esc(&name),
            esc(&first.chat.kind),
            list.len()
        ));
        for e in &list {
            let it = &e.item;
            let anchor = format!(
                "m{}{}",
                it.id.message,
                if it.id.dup > 0 {
                    format!("-{}", it.id.dup)
                } else {
                    String::new()
                }
            );
            let who = it.sender.as_ref().map(|s| s.label()).unwrap_or_default();
            h.push_str(&format!(
                "<div class=\"m\" id=\"{anchor}\"><span class=\"t\">{}</span> <b>{}</b>",
                it.date
                    .map(rfc2822_date)
                    .unwrap_or_else(|| "(no date)".into()),
                esc(&who)
            ));
            if let Body::Message(m) = &it.body {
                if let Some(r) = m.reply_to {
                    h.push_str(&format!(
                        " <a class=\"t\" href=\"#m{r}\">in reply to {r}</a>"
                    ));
                }
                if let Some(f) = &m.forwarded_from {
                    h.push_str(&format!(
                        " <span class=\"t\">forwarded from {}</span>",
                        esc(&f.label())
                    ));
                }
            }
            let text = match &it.body {
                Body::Message(m) => m.text.clone(),
                Body::Service(s) => format!("[{}]", s.text),
                Body::Call(c) => c.describe(),
                Body::Unsupported => "[unsupported message]".into(),
                Body::Deletion(d) => format!("[deletion event for {}]", d.target),
            };
            h.push_str(&format!("<br>\n{}", esc(&text)));
            for (fname, rel) in &e.files {
                h.push_str(&format!(
                    "<br>\n📎 <a href=\"../{}\">{}</a>",
                    esc(rel),
                    esc(fname)
                ));
            }
            for a in it.attachments.iter().filter(|a| a.content.is_none()) {
                h.push_str(&format!(
                    "<br>\n<span class=\"note\">[{} {} not in the archive: {}]</span>",
                    a.kind.as_str(),
                    esc(a.file_name.as_deref().unwrap_or("")),
                    esc(a.missing.as_deref().unwrap_or(""))
                ));
            }
            if !e.earlier.is_empty() {
                h.push_str("<br>\n<span class=\"note\">edited; earlier versions:</span>");
                for t in &e.earlier {
                    h.push_str(&format!("<br>\n<span class=\"note\">— {}</span>", esc(t)));
                }
            }
            if e.deleted {
                h.push_str("<br>\n<span class=\"note\">deleted at the source</span>");
            }
            h.push_str("</div>\n");
        }
        h.push_str("</body></html>\n");
        let path = dir.join(&file);
        std::fs::write(&path, h).map_err(|e| Error::io(&path, e))?;
        n += 1;
    }
    Ok(n)
}
