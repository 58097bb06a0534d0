//! `tgvault mailboxes`, `ls`, `show` and `search`: what the archive holds.

use super::*;

pub(super) fn run(
    command: Command,
    service: &Service,
    who: &Principal,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    match command {
        Command::Mailboxes(f) => {
            let rows = service.mailboxes(who)?;
            if f.json {
                for r in rows {
                    emit_value(out, &r)?;
                }
            } else {
                w(
                    out,
                    format_args!("{:<40} {:<24} {:>10}\n", "MAILBOX", "FOLDER", "ITEMS"),
                )?;
                for r in rows {
                    w(
                        out,
                        format_args!("{:<40} {:<24} {:>10}\n", r.mailbox, r.folder, r.items),
                    )?;
                }
            }
            Ok(Outcome::Ok)
        }
        Command::Ls {
            mailbox,
            folder,
            out: f,
        } => {
            let mailbox = mailbox.to_lowercase();
            if !f.json {
                w(
                    out,
                    format_args!(
                        "{:<34} {:<20} {:<8} {:<24} {}\n",
                        "ITEM", "DATE", "KIND", "FROM", "SUMMARY"
                    ),
                )?;
            }
            let mut n = 0u64;
            service.filings(who, &mailbox, folder.as_deref(), |key, filing, item| {
                n += 1;
                let sender = item.sender.as_ref().map(|p| p.label()).unwrap_or_default();
                if f.json {
                    emit(out, &views::filing_json(key, filing, item))
                } else {
                    w(
                        out,
                        format_args!(
                            "{:<34} {:<20} {:<8} {:<24} {}\n",
                            key.item.to_string(),
                            item.date.map(iso).unwrap_or_else(|| "(unknown)".into()),
                            filing.kind.as_str(),
                            truncate(&sender, 24),
                            item.summary()
                        ),
                    )
                }
            })?;
            if n == 0 && !f.json {
                note!(err, "tgvault: no items filed for {mailbox}");
            }
            Ok(Outcome::Ok)
        }
        Command::Show {
            item,
            history,
            out: f,
        } => {
            let id: ItemId = item.parse().map_err(Error::Usage)?;
            let view = service.item(who, &id, None)?;
            for n in &view.notes {
                note!(err, "{n}");
            }
            let src_locations = &view.locations;
            let versions: Vec<_> = view
                .versions
                .iter()
                .map(|v| (v.version.clone(), v.item.clone()))
                .collect();
            let quarantined = view.quarantine.clone().map(|r| (id, r));
            let deleted = view.deleted_by;
            if f.json {
                emit(out, &view.to_json())?;
            } else {
                let (_, cur) = versions
                    .last()
                    .ok_or_else(|| Error::Corrupt(format!("{id} has no version")))?;
                print_item(out, cur)?;
                w(out, format_args!("filed in:\n"))?;
                for (m, fo) in src_locations {
                    w(out, format_args!("  {m} / {fo}\n"))?;
                }
                if let Some((_, r)) = quarantined {
                    w(
                        out,
                        format_args!("  (quarantine, run {}): {}\n", r.run, r.reason),
                    )?;
                }
                if let Some(d) = deleted {
                    w(out, format_args!("deleted at the source: see {d}\n"))?;
                }
                w(out, format_args!("versions:\n"))?;
                for (i, (v, it)) in versions.iter().enumerate() {
                    w(
                        out,
                        format_args!(
                            "  {} sha256 {} run {}{}: {}\n",
                            i + 1,
                            hex::encode(v.content),
                            v.run,
                            v.edited
                                .map(|e| format!(" edited {}", iso(e)))
                                .unwrap_or_default(),
                            it.summary()
                        ),
                    )?;
                }
                if history {
                    for (i, (v, it)) in versions.iter().enumerate() {
                        w(
                            out,
                            format_args!(
                                "\n--- version {} (sha256 {}, run {})\n",
                                i + 1,
                                hex::encode(v.content),
                                v.run
                            ),
                        )?;
                        print_item(out, it)?;
                    }
                    if let Some(d) = deleted {
                        w(out, format_args!("\n--- deletion event {d}\n"))?;
                        if let Some(event) = &view.deletion {
                            print_item(out, event)?;
                        }
                    }
                }
            }
            Ok(Outcome::Ok)
        }
        Command::Search(a) => search(out, err, service, who, a),
        _ => Err(Error::Internal("not a command of this group".into())),
    }
}

fn search(
    out: &mut dyn Write,
    err: &mut dyn Write,
    service: &Service,
    who: &Principal,
    a: SearchArgs,
) -> Result<Outcome> {
    let req = SearchRequest {
        query: a.query.clone(),
        mailboxes: a.mailbox.iter().map(|m| m.to_lowercase()).collect(),
        limit: a.limit,
        sort: match a.sort {
            SortArg::Date => Sort::Date,
            SortArg::Relevance => Sort::Relevance,
        },
        case: a.case.clone(),
        count: a.count,
    };
    let results = service.search(who, &req)?;
    for n in &results.notes {
        note!(err, "{n}");
    }
    render_search(out, &results, &a)?;
    Ok(Outcome::Ok)
}

fn render_search(out: &mut dyn Write, results: &SearchResults, a: &SearchArgs) -> Result<()> {
    if a.count {
        if a.json {
            return emit(out, &json!({"total": results.total}));
        }
        return w(out, format_args!("{}\n", results.total));
    }
    if !a.json {
        w(
            out,
            format_args!(
                "{:<30} {:<26} {:<20} {:<20} {:<18} {}\n",
                "ITEM", "MAILBOX/FOLDER", "DATE", "FROM", "CHAT", "SNIPPET"
            ),
        )?;
    }
    for hit in &results.hits {
        if a.json {
            emit(out, &hit.to_json())?;
        } else {
            w(out, format_args!("{}\n", hit_line(hit)))?;
        }
    }
    if a.json {
        emit(
            out,
            &json!({"total": results.total, "shown": results.hits.len()}),
        )
    } else {
        w(
            out,
            format_args!("{} hit(s), {} shown\n", results.total, results.hits.len()),
        )
    }
}

/// A hit as one line of `search`'s table, highlights as [brackets]:
/// readable in any terminal and in a pipe.
fn hit_line(hit: &crate::service::SearchHit) -> String {
    if let Some(e) = &hit.error {
        return format!("{:<30} (cannot be read: {e})", hit.item.to_string());
    }
    let fragment = &hit.snippet.fragment;
    let mut marked = String::new();
    let mut at = 0;
    for &[start, end] in &hit.snippet.highlights {
        if start < at || end > fragment.len() {
            continue;
        }
        marked.push_str(&fragment[at..start]);
        marked.push('[');
        marked.push_str(&fragment[start..end]);
        marked.push(']');
        at = end;
    }
    marked.push_str(&fragment[at..]);
    let shown = if fragment.is_empty() {
        hit.summary.clone()
    } else {
        marked.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let place = if hit.mailbox.is_empty() {
        hit.folder.clone()
    } else {
        format!("{}/{}", hit.mailbox, hit.folder)
    };
    format!(
        "{:<30} {:<26} {:<20} {:<20} {:<18} {}",
        hit.item.to_string(),
        truncate(&place, 26),
        hit.date.map(iso).unwrap_or_else(|| "(unknown)".into()),
        truncate(&hit.from, 20),
        truncate(hit.chat.as_deref().unwrap_or(""), 18),
        truncate(&shown, 120),
    )
}

fn print_item(out: &mut (impl Write + ?Sized), it: &Item) -> Result<()> {
    w(out, format_args!("item:     {}\n", it.id))?;
    w(out, format_args!("kind:     {}\n", it.kind().as_str()))?;
    w(
        out,
        format_args!(
            "chat:     {} ({}, id {})\n",
            it.chat.name.as_deref().unwrap_or("(no name)"),
            it.chat.kind,
            it.chat.id
        ),
    )?;
    let basis = match &it.time_basis {
        TimeBasis::Epoch => String::new(),
        TimeBasis::LocalTime { zone } => format!(" (local time read in {zone})"),
        TimeBasis::Unknown => " (source gave a placeholder)".into(),
    };
    w(
        out,
        format_args!(
            "date:     {}{basis}\n",
            it.date.map(iso).unwrap_or_else(|| "(unknown)".into())
        ),
    )?;
    if let Some(e) = it.edited {
        w(out, format_args!("edited:   {}\n", iso(e)))?;
    }
    if let Some(s) = &it.sender {
        w(out, format_args!("from:     {}\n", s.label()))?;
    }
    let parts: Vec<String> = it.participants.iter().map(|p| p.label()).collect();
    w(out, format_args!("participants: {}\n", parts.join("; ")))?;
    match &it.body {
        Body::Message(m) => {
            if let Some(r) = m.reply_to {
                w(out, format_args!("reply to: message {r}\n"))?;
            }
            if let Some(f) = &m.forwarded_from {
                w(out, format_args!("forwarded from: {}\n", f.label()))?;
            }
            if let Some(v) = &m.via_bot {
                w(out, format_args!("via bot:  {v}\n"))?;
            }
            if let Some(p) = &m.poll {
                w(
                    out,
                    format_args!("poll:     {} [{}]\n", p.question, p.answers.join(" | ")),
                )?;
            }
            w(out, format_args!("text:\n{}\n", m.text))?;
        }
        Body::Service(e) => w(out, format_args!("event:    {} — {}\n", e.action, e.text))?,
        Body::Call(c) => w(out, format_args!("call:     {}\n", c.describe()))?,
        Body::Unsupported => w(
            out,
            format_args!("(unsupported message: only the raw JSON is kept)\n"),
        )?,
        Body::Deletion(d) => w(
            out,
            format_args!("deletion of {} ({}, {})\n", d.target, d.mode, d.read_state),
        )?,
    }
    for a in &it.attachments {
        let state = match (&a.content, &a.missing) {
            (Some(c), _) => format!("{} bytes, sha256 {}", c.size, hex::encode(c.sha256)),
            (None, Some(m)) => format!("no content: {m}"),
            (None, None) => "no content".into(),
        };
        w(
            out,
            format_args!(
                "attachment: {} {} ({})\n",
                a.kind.as_str(),
                a.file_name.as_deref().unwrap_or("(unnamed)"),
                state
            ),
        )?;
    }
    for an in &it.anomalies {
        w(out, format_args!("note:     {an}\n"))?;
    }
    Ok(())
}
