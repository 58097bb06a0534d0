//! KQL over the index: compiling a parsed [`Query`] into tantivy queries, and
//! running it over mailbox copies.
//!
//! A document is a source item; a hit is one copy of it in one mailbox folder
//! (or the item in the quarantine). A query that does not mention `mailbox:`
//! or `folder:` runs once and each matching document stands for all its
//! copies. A query that does runs once per folder of the archive, with every
//! `mailbox:`/`folder:` restriction replaced by true or false for that folder,
//! and only that folder's copies count: `alice NOT mailbox:bob@corp.com`
//! means exactly the copies outside Bob's mailbox.
//!
//! Matching rules (documented for users in the README):
//! - free text searches the message text (every version), the chat title,
//!   attachment names and the sender;
//! - words are tokenized like the documents ([`super::tokenizer`]); a word
//!   that makes several tokens (`e-mail`, `東京`) is a phrase;
//! - `NEAR(n)`: the two words at most `n` words apart; cc and bcc match nothing
//!   (a chat has no such recipients).

use super::Index;
use super::exec::{self, Want};
use super::schema::{LOC_SEP, QUARANTINE_LOC};
use super::tokenizer::tokens;
use crate::error::{Error, Result};
use crate::model::ItemId;
use crate::query::{Cmp, Property, Query, Text, Value};
use crate::store::Archive;
use std::ops::Bound;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, EnableScoring, InvertedIndexRangeQuery, Occur,
    PhrasePrefixQuery, PhraseQuery, Query as TQuery, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, DocId, Term};

/// Where a hit is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Location {
    Filed { mailbox: String, folder: String },
    Quarantine,
}

impl Location {
    fn from_loc(s: &str) -> Location {
        if s == QUARANTINE_LOC {
            return Location::Quarantine;
        }
        match s.split_once(LOC_SEP) {
            Some((m, f)) => Location::Filed {
                mailbox: m.into(),
                folder: f.into(),
            },
            None => Location::Quarantine,
        }
    }

    fn loc(&self) -> String {
        match self {
            Location::Filed { mailbox, folder } => format!("{mailbox}{LOC_SEP}{folder}"),
            Location::Quarantine => QUARANTINE_LOC.into(),
        }
    }

    fn mailbox(&self) -> &str {
        match self {
            Location::Filed { mailbox, .. } => mailbox,
            Location::Quarantine => "",
        }
    }

    fn folder(&self) -> &str {
        match self {
            Location::Filed { folder, .. } => folder,
            Location::Quarantine => "quarantine",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// Newest first; undated items last.
    Date,
    Relevance,
}

#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// Only copies in these mailboxes (none: every mailbox and the quarantine).
    pub mailboxes: Vec<String>,
    pub limit: usize,
    pub sort: Sort,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub id: ItemId,
    pub location: Location,
    pub score: f32,
}

#[derive(Clone, Debug)]
pub struct Results {
    /// Every matching copy, not only those returned.
    pub total: u64,
    pub hits: Vec<Hit>,
}

/// One query to run, and the location its hits are in (`None`: every
/// location of each matching document).
type Plan = (Box<dyn TQuery>, Option<Location>);

/// A compiled query, with the constant cases kept apart so they simplify.
enum Compiled {
    All,
    Nothing,
    Q(Box<dyn TQuery>),
}

impl Compiled {
    fn into_query(self) -> Box<dyn TQuery> {
        match self {
            Compiled::All => Box::new(AllQuery),
            Compiled::Nothing => Box::new(EmptyQuery),
            Compiled::Q(q) => q,
        }
    }
}

/// How `mailbox:` and `folder:` restrictions compile.
#[derive(Clone, Copy)]
enum LocMode<'a> {
    /// Decided for this one location.
    At(&'a Location),
    /// Ignored (true): for highlighting only.
    Ignore,
}

/// Whether a query restricts `mailbox:` or `folder:` anywhere.
fn mentions_location(q: &Query) -> bool {
    match q {
        Query::And(v) | Query::Or(v) => v.iter().any(mentions_location),
        Query::Not(x) => mentions_location(x),
        Query::Near { left, right, .. } => mentions_location(left) || mentions_location(right),
        Query::Text(_) | Query::Header { .. } => false,
        Query::Restriction { property, .. } => {
            matches!(property, Property::Mailbox | Property::Folder)
        }
    }
}

/// `value` matches `target` as text: equal ignoring case, or its words appear
/// in order among the target's words; a prefix matches the start of a word.
fn text_matches(target: &str, value: &Text) -> bool {
    let words: Vec<String> = tokens(target).into_iter().map(|t| t.2).collect();
    match value {
        Text::Word(w) | Text::Phrase(w) => {
            if target.to_lowercase() == w.to_lowercase() {
                return true;
            }
            let want: Vec<String> = tokens(w).into_iter().map(|t| t.2).collect();
            !want.is_empty() && words.windows(want.len()).any(|win| win == want.as_slice())
        }
        Text::Prefix(p) => {
            let p = p.to_lowercase();
            target.to_lowercase().starts_with(&p) || words.iter().any(|w| w.starts_with(&p))
        }
    }
}

impl Index {
    fn compile(&self, q: &Query, loc: LocMode<'_>) -> Result<Compiled> {
        let f = &self.fields;
        Ok(match q {
            Query::And(parts) => {
                let mut subs = Vec::new();
                // `a AND NOT b` excludes b's documents from a's; compiled on
                // its own, `NOT b` would be "every document but b's", which
                // the intersection would then walk.
                let mut nots = Vec::new();
                for p in parts {
                    if let Query::Not(x) = p {
                        match self.compile(x, loc)? {
                            Compiled::All => return Ok(Compiled::Nothing),
                            Compiled::Nothing => {}
                            Compiled::Q(q) => nots.push((Occur::MustNot, q)),
                        }
                        continue;
                    }
                    match self.compile(p, loc)? {
                        Compiled::Nothing => return Ok(Compiled::Nothing),
                        Compiled::All => {}
                        Compiled::Q(q) => subs.push((Occur::Must, q)),
                    }
                }
                if subs.is_empty() && !nots.is_empty() {
                    subs.push((Occur::Must, Box::new(AllQuery) as Box<dyn TQuery>));
                }
                match (subs.len(), nots.len()) {
                    (0, _) => Compiled::All,
                    (1, 0) => Compiled::Q(subs.pop().expect("one").1),
                    _ => {
                        subs.extend(nots);
                        Compiled::Q(Box::new(BooleanQuery::new(subs)))
                    }
                }
            }
            Query::Or(parts) => {
                let mut subs = Vec::new();
                for p in parts {
                    match self.compile(p, loc)? {
                        Compiled::All => return Ok(Compiled::All),
                        Compiled::Nothing => {}
                        Compiled::Q(q) => subs.push((Occur::Should, q)),
                    }
                }
                match subs.len() {
                    0 => Compiled::Nothing,
                    1 => Compiled::Q(subs.pop().expect("one").1),
                    _ => Compiled::Q(Box::new(BooleanQuery::new(subs))),
                }
            }
            Query::Not(x) => match self.compile(x, loc)? {
                Compiled::All => Compiled::Nothing,
                Compiled::Nothing => Compiled::All,
                Compiled::Q(q) => Compiled::Q(Box::new(BooleanQuery::new(vec![
                    (Occur::Must, Box::new(AllQuery) as Box<dyn TQuery>),
                    (Occur::MustNot, q),
                ]))),
            },
            Query::Near {
                left,
                right,
                distance,
            } => self.near(left, right, *distance)?,
            // The item's text, the chat title, the sender and the
            // attachment names (see `free_text_query`).
            Query::Text(t) => {
                let searcher = self.searcher()?;
                free_text_query(f, t, &|field, words, prefix| {
                    has_terms(&searcher, field, words, prefix)
                })
            }
            Query::Restriction {
                property,
                cmp,
                value,
            } => self.restriction(*property, *cmp, value, loc)?,
            Query::Header { name, value } => {
                let (words, prefix) = words_of(value);
                let words: Vec<String> = words
                    .iter()
                    .map(|w| crate::index::schema::header_token(name, w))
                    .collect();
                words_query(f.headers, &words, prefix)
            }
        })
    }

    fn restriction(
        &self,
        property: Property,
        cmp: Cmp,
        value: &Value,
        loc: LocMode<'_>,
    ) -> Result<Compiled> {
        let f = &self.fields;
        let text = |field: Field| match value {
            Value::Text(t) => Ok(text_query(field, t)),
            other => Err(Error::Usage(format!(
                "{}: '{other}' is not a text value",
                property.name()
            ))),
        };
        let keyword = |field: Field| match value {
            Value::Text(t) => Ok(keyword_query(field, t, |s| s.to_lowercase())),
            other => Err(Error::Usage(format!(
                "{}: '{other}' is not a text value",
                property.name()
            ))),
        };
        Ok(match property {
            Property::From => text(f.from)?,
            Property::To | Property::Recipients => text(f.to)?,
            Property::Cc | Property::Bcc => Compiled::Nothing,
            Property::Participants => any_of(vec![text(f.from)?, text(f.to)?]),
            Property::Subject => text(f.subject)?,
            Property::AttachmentNames => text(f.attachmentnames)?,
            Property::Chat => any_of(vec![text(f.subject)?, text(f.chat)?]),
            Property::Kind => keyword(f.kind)?,
            Property::ItemClass => keyword(f.itemclass)?,
            Property::ChatType => keyword(f.chattype)?,
            Property::SenderId => keyword(f.senderid)?,
            Property::Event => keyword(f.event)?,
            Property::Call => keyword(f.call)?,
            Property::Phone => match value {
                Value::Text(t) => keyword_query(f.phone, t, |s| {
                    crate::mapping::normalize_phone(s).unwrap_or_else(|| s.to_string())
                }),
                _ => Compiled::Nothing,
            },
            Property::Sent | Property::Received => date_query(f.sent, cmp, value),
            Property::Size => number_query(f.size, cmp, value),
            Property::Duration => number_query(f.duration, cmp, value),
            Property::HasAttachment | Property::Edited | Property::Deleted => {
                let field = match property {
                    Property::HasAttachment => f.hasattachment,
                    Property::Edited => f.edited,
                    _ => f.deleted,
                };
                match value {
                    Value::Bool(b) => Compiled::Q(Box::new(TermQuery::new(
                        Term::from_field_bool(field, *b),
                        IndexRecordOption::Basic,
                    ))),
                    _ => Compiled::Nothing,
                }
            }
            Property::Mailbox | Property::Folder => match loc {
                LocMode::Ignore => Compiled::All,
                LocMode::At(l) => {
                    let target = if property == Property::Mailbox {
                        l.mailbox()
                    } else {
                        l.folder()
                    };
                    let hit = match value {
                        Value::Text(t) => !target.is_empty() && text_matches(target, t),
                        _ => false,
                    };
                    if hit {
                        Compiled::All
                    } else {
                        Compiled::Nothing
                    }
                }
            },
        })
    }

    fn near(&self, left: &Query, right: &Query, distance: u32) -> Result<Compiled> {
        // Distribute over OR: (a OR b) NEAR c = (a NEAR c) OR (b NEAR c).
        if let Query::Or(parts) = left {
            let subs = parts
                .iter()
                .map(|p| self.near(p, right, distance))
                .collect::<Result<Vec<_>>>()?;
            return Ok(any_of(subs));
        }
        if let Query::Or(parts) = right {
            let subs = parts
                .iter()
                .map(|p| self.near(left, p, distance))
                .collect::<Result<Vec<_>>>()?;
            return Ok(any_of(subs));
        }
        let words = |q: &Query| -> Result<Vec<String>> {
            match q {
                Query::Text(Text::Word(w)) | Query::Text(Text::Phrase(w)) => {
                    Ok(tokens(w).into_iter().map(|t| t.2).collect())
                }
                other => Err(Error::Usage(format!(
                    "NEAR joins words or quoted phrases, not '{other}'"
                ))),
            }
        };
        let (a, b) = (words(left)?, words(right)?);
        if a.is_empty() || b.is_empty() {
            return Ok(Compiled::Nothing);
        }
        let f = &self.fields;
        let fields = [f.text, f.subject, f.from, f.attachmentnames];
        Ok(any_of(
            fields
                .into_iter()
                .map(|field| {
                    // Both ends at offset 0: tantivy then accepts them within
                    // `slop` positions of each other, in either order. Inside a
                    // phrase the words keep their order but may also be up to
                    // `slop` apart.
                    let mut terms: Vec<(usize, Term)> = Vec::new();
                    for (i, w) in a.iter().enumerate() {
                        terms.push((i, Term::from_field_text(field, w)));
                    }
                    let base = a.len() - 1;
                    for (j, w) in b.iter().enumerate() {
                        terms.push((base + j, Term::from_field_text(field, w)));
                    }
                    Compiled::Q(Box::new(PhraseQuery::new_with_offset_and_slop(
                        terms,
                        distance + 1,
                    )))
                })
                .collect(),
        ))
    }

    /// Runs `query` and returns the first `opts.limit` hits and the total.
    pub fn search(
        &self,
        archive: &Archive,
        query: &Query,
        opts: &SearchOptions,
    ) -> Result<Results> {
        self.guard(|| self.search_unguarded(archive, query, opts))
    }

    fn search_unguarded(
        &self,
        archive: &Archive,
        query: &Query,
        opts: &SearchOptions,
    ) -> Result<Results> {
        let searcher = self.searcher()?;
        let mut hits: Vec<(f32, i64, Hit)> = Vec::new();
        let mut total = 0u64;
        for (plan, fixed) in self.plans(archive, query, &opts.mailboxes)? {
            let want = match (opts.limit, opts.sort) {
                (0, _) => Want::Count,
                (n, Sort::Date) => Want::Newest(n),
                (n, Sort::Relevance) => Want::Relevance(n),
            };
            let found = exec::run(
                &searcher,
                &self.segments,
                &exec::split(plan),
                fixed.is_some(),
                want,
            )
            .map_err(|e| self.err(e))?;
            let (count, docs) = (found.total, found.top);
            total += count;
            for (score, date, addr) in docs {
                let (id, locs) = self.read_doc(&searcher, addr)?;
                match &fixed {
                    Some(l) => hits.push((
                        score,
                        date,
                        Hit {
                            id,
                            location: l.clone(),
                            score,
                        },
                    )),
                    None => {
                        for l in locs {
                            hits.push((
                                score,
                                date,
                                Hit {
                                    id,
                                    location: l,
                                    score,
                                },
                            ));
                        }
                    }
                }
            }
        }
        match opts.sort {
            Sort::Relevance => hits.sort_by(|a, b| {
                b.0.total_cmp(&a.0)
                    .then_with(|| a.2.id.cmp(&b.2.id))
                    .then_with(|| a.2.location.cmp(&b.2.location))
            }),
            Sort::Date => hits.sort_by(|a, b| {
                b.1.cmp(&a.1)
                    .then_with(|| a.2.id.cmp(&b.2.id))
                    .then_with(|| a.2.location.cmp(&b.2.location))
            }),
        }
        hits.truncate(opts.limit);
        Ok(Results {
            total,
            hits: hits.into_iter().map(|h| h.2).collect(),
        })
    }

    /// Counts every matching copy.
    pub fn count(&self, archive: &Archive, query: &Query, mailboxes: &[String]) -> Result<u64> {
        let opts = SearchOptions {
            mailboxes: mailboxes.to_vec(),
            limit: 0,
            sort: Sort::Date,
        };
        Ok(self.search(archive, query, &opts)?.total)
    }

    /// Calls `f` for EVERY matching copy (no limit), segment by segment;
    /// returns how many there were.
    pub fn for_each_match(
        &self,
        archive: &Archive,
        query: &Query,
        mailboxes: &[String],
        f: impl FnMut(ItemId, Location) -> Result<()>,
    ) -> Result<u64> {
        self.guard(|| self.for_each_match_unguarded(archive, query, mailboxes, f))
    }

    fn for_each_match_unguarded(
        &self,
        archive: &Archive,
        query: &Query,
        mailboxes: &[String],
        mut f: impl FnMut(ItemId, Location) -> Result<()>,
    ) -> Result<u64> {
        let searcher = self.searcher()?;
        let mut n = 0;
        for (q, fixed) in self.plans(archive, query, mailboxes)? {
            self.for_each_doc(&searcher, &*q, |id, locs| {
                match &fixed {
                    Some(l) => {
                        n += 1;
                        f(id, l.clone())?
                    }
                    None => {
                        for l in locs {
                            n += 1;
                            f(id, l)?;
                        }
                    }
                }
                Ok(())
            })?;
        }
        Ok(n)
    }

    /// Every item indexed as unreadable (`unindexed`): holds keep them
    /// whatever their query.
    pub fn unindexed_ids(&self) -> Result<Vec<ItemId>> {
        let searcher = self.searcher()?;
        let q = TermQuery::new(
            Term::from_field_bool(self.fields.unindexed, true),
            IndexRecordOption::Basic,
        );
        let mut out = Vec::new();
        self.for_each_doc(&searcher, &q, |id, _| {
            out.push(id);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with the id and locations of every live document `q` matches.
    fn for_each_doc(
        &self,
        searcher: &tantivy::Searcher,
        q: &dyn TQuery,
        mut f: impl FnMut(ItemId, Vec<Location>) -> Result<()>,
    ) -> Result<()> {
        let weight = q
            .weight(EnableScoring::disabled_from_searcher(searcher))
            .map_err(|e| self.err(e))?;
        for (ord, seg) in searcher.segment_readers().iter().enumerate() {
            let alive = seg.alive_bitset();
            let mut docs: Vec<DocId> = Vec::new();
            weight
                .for_each_no_score(seg, &mut |batch: &[DocId]| {
                    docs.extend(
                        batch
                            .iter()
                            .filter(|d| alive.is_none_or(|a| a.is_alive(**d))),
                    )
                })
                .map_err(|e| self.err(e))?;
            for doc in docs {
                let (id, locs) = self.read_doc(searcher, DocAddress::new(ord as u32, doc))?;
                f(id, locs)?;
            }
        }
        Ok(())
    }

    /// The queries to run: one for the whole archive, or one per location
    /// (with that location fixed) when the query or `mailboxes` needs it.
    fn plans(&self, archive: &Archive, query: &Query, mailboxes: &[String]) -> Result<Vec<Plan>> {
        if mailboxes.is_empty() && !mentions_location(query) {
            return Ok(match self.compile(query, LocMode::Ignore)? {
                Compiled::Nothing => vec![],
                c => vec![(c.into_query(), None)],
            });
        }
        let mut locations: Vec<Location> = archive
            .folders()?
            .into_iter()
            .filter(|(m, _, _)| mailboxes.is_empty() || mailboxes.contains(m))
            .map(|(mailbox, folder, _)| Location::Filed { mailbox, folder })
            .collect();
        if mailboxes.is_empty() {
            locations.push(Location::Quarantine);
        }
        let mut out = Vec::new();
        for l in locations {
            let q = match self.compile(query, LocMode::At(&l))? {
                Compiled::Nothing => continue,
                c => c.into_query(),
            };
            let at: Box<dyn TQuery> = Box::new(TermQuery::new(
                Term::from_field_text(self.fields.loc, &l.loc()),
                IndexRecordOption::Basic,
            ));
            out.push((
                Box::new(BooleanQuery::new(vec![(Occur::Must, q), (Occur::Must, at)]))
                    as Box<dyn TQuery>,
                Some(l),
            ));
        }
        Ok(out)
    }

    /// The query whose terms a snippet highlights.
    #[doc(hidden)]
    pub fn highlight_query(&self, query: &Query) -> Result<Box<dyn TQuery>> {
        Ok(self.compile(query, LocMode::Ignore)?.into_query())
    }

    /// The maker of snippets for `query`'s hits.
    pub fn snippets(&self, query: &Query) -> Result<Snippets> {
        let searcher = self.searcher()?;
        let hq = self.highlight_query(query)?;
        let generator =
            tantivy::snippet::SnippetGenerator::create(&searcher, &*hq, self.fields.text)
                .map_err(|e| self.err(e))?;
        Ok(Snippets(generator))
    }

    fn read_doc(
        &self,
        searcher: &tantivy::Searcher,
        addr: DocAddress,
    ) -> Result<(ItemId, Vec<Location>)> {
        let seg = searcher.segment_reader(addr.segment_ord);
        let info = self.segments.get(searcher, seg).map_err(|e| self.err(e))?;
        let id = info
            .id
            .get(addr.doc_id)
            .ok_or_else(|| self.err(format!("document {:?} has no item id", addr)))?;
        let mut locs = Vec::new();
        if let Some(col) = &info.loc {
            let mut s = String::new();
            for ord in col.term_ords(addr.doc_id) {
                s.clear();
                col.ord_to_str(ord, &mut s).map_err(|e| self.err(e))?;
                locs.push(Location::from_loc(&s));
            }
        }
        Ok((id, locs))
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        super::index_err(&self.dir, e)
    }
}

fn any_of(mut subs: Vec<Compiled>) -> Compiled {
    if subs.iter().any(|c| matches!(c, Compiled::All)) {
        return Compiled::All;
    }
    subs.retain(|c| !matches!(c, Compiled::Nothing));
    match subs.len() {
        0 => Compiled::Nothing,
        1 => subs.pop().expect("one"),
        _ => Compiled::Q(Box::new(BooleanQuery::new(
            subs.into_iter()
                .map(|c| (Occur::Should, c.into_query()))
                .collect(),
        ))),
    }
}

/// Terms at or after `prefix` and before any longer word that does not start with it.
fn prefix_query(field: Field, prefix: &str) -> Compiled {
    let upper = format!("{prefix}\u{10FFFF}");
    Compiled::Q(Box::new(InvertedIndexRangeQuery::new(
        Bound::Included(Term::from_field_text(field, prefix)),
        Bound::Excluded(Term::from_field_text(field, &upper)),
    )))
}

/// The lower-cased words of `t`, and whether the last is a prefix.
fn words_of(t: &Text) -> (Vec<String>, bool) {
    let (s, prefix) = match t {
        Text::Word(w) | Text::Phrase(w) => (w, false),
        Text::Prefix(p) => (p, true),
    };
    (tokens(s).into_iter().map(|t| t.2).collect(), prefix)
}

/// A word, phrase or prefix in a tokenized field.
fn text_query(field: Field, t: &Text) -> Compiled {
    let (words, prefix) = words_of(t);
    words_query(field, &words, prefix)
}

/// `words` as a word, phrase or prefix (the last word) in a tokenized field.
fn words_query(field: Field, words: &[String], prefix: bool) -> Compiled {
    let mut toks: Vec<Term> = words
        .iter()
        .map(|w| Term::from_field_text(field, w))
        .collect();
    match (toks.len(), prefix) {
        (0, _) => Compiled::Nothing,
        (1, false) => Compiled::Q(Box::new(TermQuery::new(
            toks.pop().expect("one"),
            IndexRecordOption::WithFreqs,
        ))),
        (1, true) => prefix_query(field, &words[0]),
        (_, false) => Compiled::Q(Box::new(PhraseQuery::new(toks))),
        (_, true) => Compiled::Q(Box::new(PhrasePrefixQuery::new(toks))),
    }
}

/// Free text: what Purview's keyword search finds without a property, the
/// item's own text, the subject (chat title), the sender and the attachment
/// names, each a field of its own (a phrase never spans two of them). A phrase
/// in `text` also requires each neighbouring word pair in `pairs`: the
/// intersection then starts from the rarest pair, and positions are checked
/// only where every pair occurs; the answer is still the phrase query's.
/// The side fields join the query only where they hold its words (`present`):
/// a union with fields that cannot match costs a per-document merge.
fn free_text_query(
    f: &crate::index::schema::Fields,
    t: &Text,
    present: &dyn Fn(Field, &[String], bool) -> bool,
) -> Compiled {
    let (words, prefix) = words_of(t);
    let mut body = words_query(f.text, &words, prefix);
    if !prefix && words.len() >= 2 {
        let mut must: Vec<(Occur, Box<dyn TQuery>)> = crate::index::tokenizer::pairs(&words)
            .into_iter()
            .map(|p| {
                let q: Box<dyn TQuery> = Box::new(TermQuery::new(
                    Term::from_field_text(f.pairs, &p),
                    IndexRecordOption::Basic,
                ));
                (Occur::Must, q)
            })
            .collect();
        must.push((Occur::Must, body.into_query()));
        body = Compiled::Q(Box::new(BooleanQuery::new(must)));
    }
    let mut subs = vec![body];
    for field in [f.subject, f.from, f.attachmentnames] {
        if present(field, &words, prefix) {
            subs.push(words_query(field, &words, prefix));
        }
    }
    any_of(subs)
}

/// Whether some segment's `field` holds every one of `words` (with `prefix`,
/// the last as the start of a word). Errors count as present: the query then
/// decides.
fn has_terms(searcher: &tantivy::Searcher, field: Field, words: &[String], prefix: bool) -> bool {
    if words.is_empty() {
        return false;
    }
    searcher.segment_readers().iter().any(|seg| {
        let Ok(inv) = seg.inverted_index(field) else {
            return true;
        };
        let dict = inv.terms();
        let last = words.len() - 1;
        words.iter().enumerate().all(|(i, w)| {
            if prefix && i == last {
                let upper = format!("{w}\u{10FFFF}");
                match dict
                    .range()
                    .ge(w.as_bytes())
                    .lt(upper.as_bytes())
                    .into_stream()
                {
                    Ok(mut st) => st.advance(),
                    Err(_) => true,
                }
            } else {
                dict.get(w.as_bytes()).map(|o| o.is_some()).unwrap_or(true)
            }
        })
    })
}

/// A whole value (lower-cased by `norm`) in a keyword field.
fn keyword_query(field: Field, t: &Text, norm: impl Fn(&str) -> String) -> Compiled {
    match t {
        Text::Word(w) | Text::Phrase(w) => Compiled::Q(Box::new(TermQuery::new(
            Term::from_field_text(field, &norm(w)),
            IndexRecordOption::Basic,
        ))),
        Text::Prefix(p) => prefix_query(field, &norm(p)),
    }
}

fn range<T>(lo: Bound<T>, hi: Bound<T>, term: impl Fn(T) -> Term) -> Compiled {
    let map = |b: Bound<T>| match b {
        Bound::Included(v) => Bound::Included(term(v)),
        Bound::Excluded(v) => Bound::Excluded(term(v)),
        Bound::Unbounded => Bound::Unbounded,
    };
    Compiled::Q(Box::new(RangeQuery::new(map(lo), map(hi))))
}

fn date_query(field: Field, cmp: Cmp, value: &Value) -> Compiled {
    use Bound::*;
    let term = |v: i64| Term::from_field_i64(field, v);
    let (lo, hi) = match (cmp, value) {
        (Cmp::Eq, Value::Date(d)) => (Included(d.start()), Excluded(d.end())),
        (Cmp::Eq, Value::DateRange(a, b)) => (Included(a.start()), Excluded(b.end())),
        (Cmp::Lt, Value::Date(d)) => (Unbounded, Excluded(d.start())),
        (Cmp::Le, Value::Date(d)) => (Unbounded, Excluded(d.end())),
        (Cmp::Gt, Value::Date(d)) => (Included(d.end()), Unbounded),
        (Cmp::Ge, Value::Date(d)) => (Included(d.start()), Unbounded),
        _ => return Compiled::Nothing,
    };
    if let (Included(a), Excluded(b)) = (&lo, &hi)
        && a >= b
    {
        return Compiled::Nothing;
    }
    range(lo, hi, term)
}

fn number_query(field: Field, cmp: Cmp, value: &Value) -> Compiled {
    use Bound::*;
    let term = |v: u64| Term::from_field_u64(field, v);
    let (lo, hi) = match (cmp, value) {
        (Cmp::Eq, Value::Number(n)) => (Included(*n), Included(*n)),
        (Cmp::Eq, Value::NumberRange(a, b)) if a <= b => (Included(*a), Included(*b)),
        (Cmp::Lt, Value::Number(n)) => (Unbounded, Excluded(*n)),
        (Cmp::Le, Value::Number(n)) => (Unbounded, Included(*n)),
        (Cmp::Gt, Value::Number(n)) => (Excluded(*n), Unbounded),
        (Cmp::Ge, Value::Number(n)) => (Included(*n), Unbounded),
        _ => return Compiled::Nothing,
    };
    range(lo, hi, term)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_text_rules() {
        assert!(text_matches(
            "alice@corp.com",
            &Text::Word("ALICE@corp.com".into())
        ));
        assert!(text_matches(
            "Telegram Archiver",
            &Text::Word("archiver".into())
        ));
        assert!(text_matches(
            "Telegram Archiver",
            &Text::Phrase("telegram archiver".into())
        ));
        assert!(!text_matches(
            "Telegram Archiver",
            &Text::Phrase("archiver telegram".into())
        ));
        assert!(text_matches("alice@corp.com", &Text::Prefix("ali".into())));
        assert!(text_matches("alice@corp.com", &Text::Prefix("cor".into())));
        assert!(!text_matches("alice@corp.com", &Text::Word("bob".into())));
    }
}

/// A passage of an item's text around the terms a query matched: byte
/// ranges of `fragment` to highlight.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snippet {
    pub fragment: String,
    pub highlights: Vec<[usize; 2]>,
}

/// Makes the snippets of one query's hits.
pub struct Snippets(tantivy::snippet::SnippetGenerator);

impl Snippets {
    pub fn of(&self, item: &crate::model::Item) -> Snippet {
        let text = super::schema::item_texts(item).join("\n");
        let snip = self.0.snippet(&text);
        Snippet {
            fragment: snip.fragment().to_string(),
            highlights: snip
                .highlighted()
                .iter()
                .map(|r| [r.start, r.end])
                .collect(),
        }
    }
}
