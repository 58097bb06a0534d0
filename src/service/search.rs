//! Search: KQL over every mailbox copy, or within a case (the copies its
//! holds cover, decided as retention decides them).

use super::access::Op;
use super::{Principal, Service, p};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::index::search::{Location, SearchOptions, Snippet, Sort};
use crate::model::ItemId;
use crate::store::key::ItemKey;
use serde::Serialize;
use serde_json::json;

#[derive(Clone, Debug)]
pub struct SearchRequest {
    pub query: String,
    /// Only copies in these mailboxes (none: all, and the quarantine).
    pub mailboxes: Vec<String>,
    pub limit: usize,
    pub sort: Sort,
    /// Only the copies this case's holds cover.
    pub case: Option<String>,
    /// Only the total.
    pub count: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SearchHit {
    pub item: ItemId,
    /// Empty for a quarantined copy.
    pub mailbox: String,
    pub folder: String,
    pub date: Option<i64>,
    pub from: String,
    pub chat: Option<String>,
    pub score: f32,
    pub snippet: Snippet,
    pub summary: String,
    /// Why the item could not be read (a damaged item is still a hit).
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SearchResults {
    /// Every matching copy, not only those returned.
    pub total: u64,
    pub hits: Vec<SearchHit>,
    /// What the caller should know about the results (`note: ...`).
    pub notes: Vec<String>,
}

impl SearchHit {
    /// The hit as `search --json` prints it and the HTTP API returns it.
    pub fn to_json(&self) -> serde_json::Value {
        if let Some(e) = &self.error {
            return json!({"item": self.item.to_string(), "error": e});
        }
        json!({
            "item": self.item.to_string(), "mailbox": self.mailbox, "folder": self.folder,
            "date": self.date.map(crate::time::iso), "from": self.from, "chat": self.chat,
            "score": self.score, "snippet": self.snippet.fragment, "highlights": self.snippet.highlights,
        })
    }
}

/// The KQL of a request, or the error with a caret under its position.
pub fn parse_query(q: &str) -> Result<crate::query::Query> {
    crate::query::parse(q).map_err(|e| {
        Error::Usage(format!(
            "query: {e}\n  {q}\n  {}^",
            " ".repeat(q.chars().take(e.offset).count())
        ))
    })
}

impl Service {
    pub fn search(&self, who: &Principal, req: &SearchRequest) -> Result<SearchResults> {
        match &req.case {
            Some(c) => self.check(who, Op::CaseSearch(c))?,
            None => self.check(who, Op::Search)?,
        }
        let query = parse_query(&req.query)?;
        let mut notes = self.unknown_mailboxes(&req.mailboxes)?;
        let (total, hits) = self.with_index(|index| {
            let behind = index.behind(&self.archive)?;
            if behind > 0 {
                notes.push(format!("note: the search index lacks the last {behind} change batch(es) of the archive (opened read-only, it cannot catch up): recent items may be missing from results"));
            }
            self.run_search(index, &query, req)
        })?;
        let mut params = vec![p("query", &req.query)];
        params.extend(req.mailboxes.iter().map(|m| p("mailbox", m)));
        params.extend(req.case.iter().map(|c| p("case", c)));
        let mut event = self.event(who, "search", params, "ok");
        event.counts = vec![("hits".into(), total)];
        notes.extend(say_recorded(&self.archive.audit_read(event)?));
        Ok(SearchResults { total, hits, notes })
    }

    /// A mistyped mailbox finds nothing: say so, so that "no hits" is not
    /// read as "nothing there".
    fn unknown_mailboxes(&self, mailboxes: &[String]) -> Result<Vec<String>> {
        if mailboxes.is_empty() {
            return Ok(vec![]);
        }
        let known: std::collections::BTreeSet<String> = self
            .archive
            .folders()?
            .into_iter()
            .map(|(m, _, _)| m)
            .collect();
        Ok(mailboxes
            .iter()
            .filter(|m| !known.contains(*m))
            .map(|m| format!("note: the archive has no items filed in mailbox {m}"))
            .collect())
    }

    fn run_search(
        &self,
        index: &Index,
        query: &crate::query::Query,
        req: &SearchRequest,
    ) -> Result<(u64, Vec<SearchHit>)> {
        let mut opts = SearchOptions {
            mailboxes: req.mailboxes.clone(),
            limit: if req.count { 0 } else { req.limit },
            sort: req.sort,
        };
        let results = match &req.case {
            None => index.search(&self.archive, query, &opts)?,
            Some(case) => {
                // Every match in the requested order, then those the case's
                // holds cover.
                let snap = crate::retention::Snapshot::case(&self.archive, index, case)?;
                opts.limit = index.count(&self.archive, query, &req.mailboxes)? as usize;
                let mut all = index.search(&self.archive, query, &opts)?;
                let now = self.now();
                let mut kept = Vec::new();
                for hit in all.hits {
                    let Location::Filed { mailbox, folder } = &hit.location else {
                        continue;
                    };
                    let key = ItemKey {
                        mailbox: mailbox.clone(),
                        folder: folder.clone(),
                        item: hit.id,
                    };
                    let date = self.archive.filing(&key)?.and_then(|f| f.date);
                    if snap.holds_copy(&key, date, now) {
                        kept.push(hit);
                    }
                }
                all.total = kept.len() as u64;
                kept.truncate(if req.count { 0 } else { req.limit });
                all.hits = kept;
                all
            }
        };
        if req.count {
            return Ok((results.total, vec![]));
        }
        let snippets = index.snippets(query)?;
        let hits = results
            .hits
            .iter()
            .map(|hit| self.hit(hit, &snippets))
            .collect();
        Ok((results.total, hits))
    }

    fn hit(
        &self,
        hit: &crate::index::search::Hit,
        snippets: &crate::index::search::Snippets,
    ) -> SearchHit {
        let (mailbox, folder) = match &hit.location {
            Location::Filed { mailbox, folder } => (mailbox.clone(), folder.clone()),
            Location::Quarantine => (String::new(), "(quarantine)".to_string()),
        };
        let mut out = SearchHit {
            item: hit.id,
            mailbox,
            folder,
            date: None,
            from: String::new(),
            chat: None,
            score: hit.score,
            snippet: Snippet::default(),
            summary: String::new(),
            error: None,
        };
        let item = match self.archive.current(&hit.id) {
            Ok(Some(item)) => item,
            Ok(None) => {
                out.error = Some(format!("{} is listed but has no source record", hit.id));
                return out;
            }
            Err(e) => {
                out.error = Some(e.to_string());
                return out;
            }
        };
        out.date = item.date;
        out.from = item.sender.as_ref().map(|s| s.label()).unwrap_or_default();
        out.chat = item.chat.name.clone();
        out.snippet = snippets.of(&item);
        out.summary = item.summary();
        out
    }
}

/// What the caller should be told about where a read's entry went.
pub(crate) fn say_recorded(r: &crate::store::audit::Recorded) -> Option<String> {
    use crate::store::audit::Recorded;
    match r {
        Recorded::Trail(_) => None,
        Recorded::Pending(p) => Some(format!(
            "note: recorded in {} (the archive's next writer puts it on the trail)",
            p.display()
        )),
        Recorded::ReadLog(p) => Some(format!(
            "note: the archive cannot be written: this is recorded in the read log {}",
            p.display()
        )),
        Recorded::Nowhere(why) => Some(format!("warning: this read is recorded nowhere: {why}")),
    }
}
