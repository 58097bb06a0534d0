//! Running one compiled query over the index's segments: the total (every
//! matching copy) and the first hits, newest first or by relevance.
//!
//! A query is first taken apart ([`split`]) into what must match (the
//! *positive* query) and what must not (its top-level exclusions, from
//! `a AND NOT b`). Per segment, the exclusions become a bitset, and:
//!
//! - **the total**: a term whose documents count one copy each is counted
//!   from its document frequency; anything else is set into a bitset of
//!   matches ([`Plain`]: a disjunction part by part, frequent terms
//!   intersected as bitsets, a term straight from its posting blocks), the
//!   exclusions and deleted documents are cleared, and the bits (or the
//!   copies they stand for) are counted;
//! - **newest first**: the segment's zones (runs of [`ZONE`] documents, each
//!   with its latest date, see [`Zones`]) are visited from the latest; once
//!   `limit` hits are kept, a zone whose latest date is older than the worst
//!   kept ends the search, so only the zones holding recent items are read
//!   (a frequent term seeks straight into them instead of filling bits);
//! - **by relevance**: a disjunction of terms, or a conjunction of frequent
//!   ones, is scored term at a time ([`TermSum`]), counting as it goes; a
//!   single term or a conjunction with a rare term is ranked by tantivy's
//!   block-max WAND, which skips blocks that cannot enter the top (the total
//!   is counted apart, exclusions and deleted documents filtered as hits are
//!   offered); any other query is counted and ranked in one scored pass, as
//!   a second pass would cost as much as the first.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use tantivy::columnar::{Cardinality, Column, StrColumn};
use tantivy::fieldnorm::FieldNormReader;
use tantivy::index::SegmentId;
use tantivy::query::{
    AllQuery, Bm25Weight, BooleanQuery, EnableScoring, Occur, Query as TQuery, TermQuery, Weight,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, DocId, DocSet, Score, Searcher, SegmentReader, TERMINATED, Term};

/// Documents per zone of a segment's date map.
pub(super) const ZONE: u32 = 1024;

/// What a run produces besides the total.
#[derive(Clone, Copy, Debug)]
pub(super) enum Want {
    Count,
    Newest(usize),
    Relevance(usize),
}

/// The total and the best hits: (score, date, address), best first.
pub(super) struct Found {
    pub total: u64,
    pub top: Vec<(f32, i64, DocAddress)>,
}

/// A query apart: every `positive` match that no `negatives` query matches.
pub(super) struct Split {
    positive: Box<dyn TQuery>,
    negatives: Vec<Box<dyn TQuery>>,
}

/// Takes a query apart into its required and excluded parts, flattening
/// nested conjunctions: `a AND (b AND NOT c)` is `a AND b`, excluding `c`.
pub(super) fn split(q: Box<dyn TQuery>) -> Split {
    let mut musts = Vec::new();
    let mut negatives = Vec::new();
    flatten(q, &mut musts, &mut negatives);
    let positive: Box<dyn TQuery> = match musts.len() {
        0 => Box::new(AllQuery),
        1 => musts.pop().expect("one"),
        _ => Box::new(BooleanQuery::new(
            musts.into_iter().map(|q| (Occur::Must, q)).collect(),
        )),
    };
    Split {
        positive,
        negatives,
    }
}

fn flatten(q: Box<dyn TQuery>, musts: &mut Vec<Box<dyn TQuery>>, nots: &mut Vec<Box<dyn TQuery>>) {
    if let Some(b) = q.downcast_ref::<BooleanQuery>() {
        let clauses = b.clauses();
        if !clauses.is_empty() && clauses.iter().all(|(o, _)| *o != Occur::Should) {
            for (occur, sub) in clauses {
                match occur {
                    Occur::MustNot => nots.push(sub.box_clone()),
                    _ => flatten(sub.box_clone(), musts, nots),
                }
            }
            return;
        }
    }
    musts.push(q);
}

/// A boolean query's clauses.
type Clauses = [(Occur, Box<dyn TQuery>)];

/// `q` as a disjunction (`all` false) or a conjunction (`all` true) of at
/// least two clauses, the boolean shapes the executor treats apart.
fn combination(q: &dyn TQuery) -> Option<(bool, &Clauses)> {
    let c = q.downcast_ref::<BooleanQuery>()?.clauses();
    if c.len() < 2 {
        return None;
    }
    if c.iter().all(|(o, _)| *o == Occur::Should) {
        Some((false, c))
    } else if c.iter().all(|(o, _)| *o == Occur::Must) {
        Some((true, c))
    } else {
        None
    }
}

/// The terms of `clauses`, when every one is a term query.
fn terms_of(clauses: &Clauses) -> Option<Vec<&Term>> {
    clauses
        .iter()
        .map(|(_, q)| q.downcast_ref::<TermQuery>().map(TermQuery::term))
        .collect()
}

/// A term is frequent when it is in more than one document in this many.
const FREQUENT: u64 = 16;

/// Whether every one of `terms` is frequent: their intersection is then
/// cheaper as bitsets, or term at a time, than by seeking through lists that
/// skip little.
fn all_frequent(searcher: &Searcher, terms: &[&Term]) -> tantivy::Result<bool> {
    let docs = searcher.num_docs();
    for t in terms {
        if searcher.doc_freq(t)? * FREQUENT <= docs {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether block-max WAND ranks `q` (tantivy prunes a term, and a
/// conjunction or a disjunction of terms).
fn prunable(q: &dyn TQuery) -> bool {
    q.downcast_ref::<TermQuery>().is_some()
        || combination(q).is_some_and(|(_, c)| terms_of(c).is_some())
}

/// A segment's documents as bits.
struct Bits(Vec<u64>);

impl Bits {
    fn new(max_doc: u32) -> Bits {
        Bits(vec![0; (max_doc as usize).div_ceil(64)])
    }

    /// Sets each of `docs` (ascending): a word is written once per run of
    /// documents in it, not once per document.
    fn insert_sorted(&mut self, docs: &[DocId]) {
        let mut word = usize::MAX;
        let mut acc = 0u64;
        for &d in docs {
            let w = (d / 64) as usize;
            if w != word {
                if word != usize::MAX {
                    self.0[word] |= acc;
                }
                word = w;
                acc = 0;
            }
            acc |= 1 << (d % 64);
        }
        if word != usize::MAX {
            self.0[word] |= acc;
        }
    }

    fn and(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= *b;
        }
    }

    fn and_not(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= !*b;
        }
    }

    fn len(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Clears every document `keep` refuses.
    fn retain(&mut self, keep: impl Fn(DocId) -> bool) {
        for (i, word) in self.0.iter_mut().enumerate() {
            let mut rest = *word;
            while rest != 0 {
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                if !keep(i as u32 * 64 + bit) {
                    *word &= !(1 << bit);
                }
            }
        }
    }

    #[inline]
    fn contains(&self, d: DocId) -> bool {
        self.0[(d / 64) as usize] & (1 << (d % 64)) != 0
    }

    /// The documents in `lo..hi` (`lo` a multiple of 64), ascending.
    fn each_in(&self, lo: u32, hi: u32, mut f: impl FnMut(DocId)) {
        let end = (hi as usize).div_ceil(64).min(self.0.len());
        for w in (lo as usize / 64)..end {
            let mut word = self.0[w];
            while word != 0 {
                let d = w as u32 * 64 + word.trailing_zeros();
                word &= word - 1;
                if d < hi {
                    f(d);
                }
            }
        }
    }
}

/// A segment's date map: the latest date (`sent`) of each zone of [`ZONE`]
/// documents, and the zones from the latest.
pub(super) struct Zones {
    latest: Vec<i64>,
    by_latest: Vec<u32>,
}

impl Zones {
    fn compute(order: &Column<i64>, max_doc: u32) -> Zones {
        let n = max_doc.div_ceil(ZONE);
        let mut latest = Vec::with_capacity(n as usize);
        let mut buf = vec![0i64; ZONE as usize];
        let full = order.get_cardinality() == Cardinality::Full;
        for z in 0..n {
            let lo = z * ZONE;
            let hi = (lo + ZONE).min(max_doc);
            let max = if full {
                let vals = &mut buf[..(hi - lo) as usize];
                order.values.get_range(lo as u64, vals);
                vals.iter().copied().max().unwrap_or(i64::MIN)
            } else {
                (lo..hi)
                    .map(|d| order.first(d).unwrap_or(i64::MIN))
                    .max()
                    .unwrap_or(i64::MIN)
            };
            latest.push(max);
        }
        let mut by_latest: Vec<u32> = (0..n).collect();
        by_latest.sort_by_key(|z| Reverse(latest[*z as usize]));
        Zones { latest, by_latest }
    }
}

/// What a search needs of a segment beside its postings: its sort and copy
/// columns (opening a column reads its block index, which costs more than a
/// term lookup) and its date map. Segments never change, so this is worked
/// out once per segment and kept ([`SegmentCache`]).
pub(super) struct SegmentInfo {
    /// The `ItemId` of each document.
    pub id: super::schema::IdColumns,
    /// The `loc` values of each document.
    pub loc: Option<StrColumn>,
    /// The `sent` column, the sort key (a document without a date sorts as
    /// `i64::MIN`).
    order: Column<i64>,
    /// `None` when every document stands for one copy.
    nloc: Option<Column<u64>>,
    /// Worked out by the first newest-first search (it reads the whole
    /// date column).
    zones: OnceLock<Zones>,
}

impl SegmentInfo {
    fn zones(&self, max_doc: u32) -> &Zones {
        self.zones
            .get_or_init(|| Zones::compute(&self.order, max_doc))
    }
}

/// The [`SegmentInfo`] of the segments searched so far (dropped with their
/// segments).
#[derive(Default)]
pub(super) struct SegmentCache(Mutex<HashMap<SegmentId, Arc<SegmentInfo>>>);

impl SegmentCache {
    pub fn get(
        &self,
        searcher: &Searcher,
        seg: &SegmentReader,
    ) -> tantivy::Result<Arc<SegmentInfo>> {
        let segment = seg.segment_id();
        if let Some(z) = self.lock().get(&segment) {
            return Ok(z.clone());
        }
        let ff = seg.fast_fields();
        let id = super::schema::IdColumns::open(ff)?;
        let loc = ff.str("loc")?;
        // A segment where no document has a date has no `sent` column.
        let order = ff
            .column_opt::<i64>("sent")?
            .unwrap_or_else(|| Column::build_empty_column(seg.max_doc()));
        let nloc = Some(ff.u64("nloc")?).filter(|c| c.max_value() > 1);
        let info = Arc::new(SegmentInfo {
            id,
            loc,
            order,
            nloc,
            zones: OnceLock::new(),
        });
        let mut map = self.lock();
        let live: Vec<SegmentId> = searcher
            .segment_readers()
            .iter()
            .map(|s| s.segment_id())
            .collect();
        map.retain(|k, _| live.contains(k));
        map.insert(segment, info.clone());
        Ok(info)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SegmentId, Arc<SegmentInfo>>> {
        // The map holds derived data only: a panic elsewhere leaves it usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How the positive query's matches are found without scores.
enum Plain {
    /// By tantivy's own evaluation of the query (a term: its postings).
    One(Leaf),
    /// A disjunction: each part's matches set into one bitset.
    AnyOf(Vec<Leaf>),
    /// A conjunction of frequent terms: the intersection of their bitsets,
    /// cheaper than seeking through lists that skip little.
    AllOf(Vec<Leaf>),
}

/// A query whose matches are set into a bitset: a term straight from its
/// postings, 128 documents a block, anything else through tantivy.
struct Leaf {
    weight: Box<dyn Weight>,
    term: Option<Term>,
}

impl Leaf {
    fn new(searcher: &Searcher, q: &dyn TQuery) -> tantivy::Result<Leaf> {
        Ok(Leaf {
            weight: q.weight(EnableScoring::disabled_from_searcher(searcher))?,
            term: q.downcast_ref::<TermQuery>().map(|t| t.term().clone()),
        })
    }

    /// Sets every document this matches in `bits` (deleted ones too).
    fn fill(&self, seg: &SegmentReader, bits: &mut Bits) -> tantivy::Result<()> {
        let Some(term) = &self.term else {
            return self
                .weight
                .for_each_no_score(seg, &mut |batch| bits.insert_sorted(batch));
        };
        let postings = seg
            .inverted_index(term.field())?
            .read_block_postings(term, IndexRecordOption::Basic)?;
        let Some(mut block) = postings else {
            return Ok(());
        };
        let mut left = block.doc_freq();
        while left > 0 && !block.docs().is_empty() {
            bits.insert_sorted(block.docs());
            left = left.saturating_sub(block.docs().len() as u32);
            block.advance();
        }
        Ok(())
    }
}

impl Plain {
    fn new(searcher: &Searcher, q: &dyn TQuery) -> tantivy::Result<Plain> {
        let leaves = |c: &Clauses| {
            c.iter()
                .map(|(_, q)| Leaf::new(searcher, &**q))
                .collect::<tantivy::Result<Vec<_>>>()
        };
        match combination(q) {
            Some((false, c)) => return Ok(Plain::AnyOf(leaves(c)?)),
            Some((true, c)) => {
                if let Some(terms) = terms_of(c)
                    && all_frequent(searcher, &terms)?
                {
                    return Ok(Plain::AllOf(leaves(c)?));
                }
            }
            None => {}
        }
        Ok(Plain::One(Leaf::new(searcher, q)?))
    }

    /// The segment's matches.
    fn matches(&self, seg: &SegmentReader) -> tantivy::Result<Bits> {
        let mut bits = Bits::new(seg.max_doc());
        match self {
            Plain::One(leaf) => leaf.fill(seg, &mut bits)?,
            Plain::AnyOf(leaves) => {
                for leaf in leaves {
                    leaf.fill(seg, &mut bits)?;
                }
            }
            Plain::AllOf(leaves) => {
                leaves[0].fill(seg, &mut bits)?;
                for leaf in &leaves[1..] {
                    let mut other = Bits::new(seg.max_doc());
                    leaf.fill(seg, &mut other)?;
                    bits.and(&other);
                }
            }
        }
        Ok(bits)
    }
}

/// Runs `q` over every segment. `fixed`: the plan has fixed one location, so
/// each document counts one copy (otherwise its `nloc`).
pub(super) fn run(
    searcher: &Searcher,
    cache: &SegmentCache,
    q: &Split,
    fixed: bool,
    want: Want,
) -> tantivy::Result<Found> {
    let negatives = q
        .negatives
        .iter()
        .map(|n| Leaf::new(searcher, &**n))
        .collect::<tantivy::Result<Vec<_>>>()?;
    // By relevance: terms summed a window at a time (which counts too), or
    // block-max WAND (with the total counted apart), or one scored pass that
    // counts too.
    let mut terms = None;
    let (plain, scored) = match want {
        Want::Relevance(_) => {
            terms = TermSum::new(searcher, &*q.positive)?;
            if terms.is_some() {
                (None, None)
            } else {
                let scored = q
                    .positive
                    .weight(EnableScoring::enabled_from_searcher(searcher))?;
                let plain = if prunable(&*q.positive) {
                    Some(Plain::new(searcher, &*q.positive)?)
                } else {
                    None
                };
                (plain, Some(scored))
            }
        }
        _ => (Some(Plain::new(searcher, &*q.positive)?), None),
    };
    // A term is counted from its document frequency.
    let term = q.positive.downcast_ref::<TermQuery>().is_some();
    let mut total = 0u64;
    let mut top: Vec<(f32, i64, DocAddress)> = Vec::new();
    for (ord, seg) in searcher.segment_readers().iter().enumerate() {
        let ord = ord as u32;
        let info = cache.get(searcher, seg)?;
        let excluded = if negatives.is_empty() {
            None
        } else {
            let mut bits = Bits::new(seg.max_doc());
            for leaf in &negatives {
                leaf.fill(seg, &mut bits)?;
            }
            Some(bits)
        };
        let alive = seg.alive_bitset();
        let keep = Keep {
            excluded: excluded.as_ref(),
            alive,
        };
        let copies = Copies {
            nloc: if fixed { None } else { info.nloc.as_ref() },
        };
        // The total, and the matches as bits where they are needed: a term
        // whose documents count one copy each is counted from its document
        // frequency and, newest first, read zone by zone when it is frequent
        // enough for a few zones to hold the hits.
        let mut matched = None;
        let mut newest_hits = None;
        match (&plain, copies.nloc, excluded.is_none()) {
            (Some(plain @ Plain::One(leaf)), None, true) if term => {
                let w = &leaf.weight;
                let n = w.count(seg)?;
                total += u64::from(n);
                if let Want::Newest(limit) = want {
                    // Seek when a few zones should hold `limit` matches.
                    let per_zone = f64::from(n) * f64::from(ZONE) / f64::from(seg.max_doc().max(1));
                    if per_zone * (SEEKS / 2) as f64 >= limit as f64 {
                        newest_hits = newest_by_seeking(&**w, seg, &info, &keep, limit)?;
                    }
                    if newest_hits.is_none() {
                        matched = Some(plain_matches(seg, plain, &keep)?);
                    }
                }
            }
            (Some(plain), _, _) => {
                let bits = plain_matches(seg, plain, &keep)?;
                total += copies.count(&bits);
                matched = Some(bits);
            }
            (None, _, _) => {}
        }
        match want {
            Want::Count => {}
            Want::Newest(limit) => {
                let hits = match newest_hits {
                    Some(hits) => hits,
                    None => {
                        let matched = matched.as_ref().expect("set without scores");
                        newest(&info, matched, seg.max_doc(), limit)
                    }
                };
                for (date, doc) in hits {
                    top.push((0.0, date, DocAddress::new(ord, doc)));
                }
            }
            Want::Relevance(limit) => {
                let mut best = TopScores::new(limit);
                if let Some(terms) = &terms {
                    total += terms.rank(seg, &keep, &copies, &mut best)?;
                } else if plain.is_some() {
                    let scored = scored.as_ref().expect("set for relevance");
                    scored.for_each_pruning(Score::MIN, seg, &mut |doc, score| {
                        if keep.doc(doc) {
                            best.offer(score, doc);
                        }
                        best.threshold()
                    })?;
                } else {
                    let scored = scored.as_ref().expect("set for relevance");
                    let mut scorer = scored.scorer(seg, 1.0)?;
                    let mut doc = scorer.doc();
                    while doc != TERMINATED {
                        if keep.doc(doc) {
                            total += copies.of(doc);
                            let score = scorer.score();
                            if score > best.threshold() {
                                best.offer(score, doc);
                            }
                        }
                        doc = scorer.advance();
                    }
                }
                for (score, doc) in best.into_vec() {
                    top.push((score, 0, DocAddress::new(ord, doc)));
                }
            }
        }
    }
    match want {
        Want::Count => {}
        Want::Newest(limit) => {
            top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.2.cmp(&b.2)));
            top.truncate(limit);
        }
        Want::Relevance(limit) => {
            top.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
            top.truncate(limit);
        }
    }
    Ok(Found { total, top })
}

/// Documents per window of term-at-a-time scoring (its scores stay in the
/// first-level cache).
const WINDOW: u32 = 4096;

/// A disjunction of terms, or a conjunction of frequent ones, ranked term at
/// a time: window by window, each term's postings add its BM25 score into a
/// dense array, and the window's matches are then counted and offered. This
/// reads each posting once and never merges lists per document, which on
/// frequent terms costs a fraction of a document-at-a-time union (where
/// block-max WAND skips little, as every block holds a high score). The
/// scores are tantivy's: the same BM25 weights, summed in clause order.
struct TermSum {
    terms: Vec<(Term, Bm25Weight)>,
    /// A conjunction: a match needs every term.
    all: bool,
}

impl TermSum {
    fn new(searcher: &Searcher, q: &dyn TQuery) -> tantivy::Result<Option<TermSum>> {
        let Some((all, c)) = combination(q) else {
            return Ok(None);
        };
        let Some(terms) = terms_of(c) else {
            return Ok(None);
        };
        if all && !all_frequent(searcher, &terms)? {
            // Rare terms: the intersection's seeking skips most postings.
            return Ok(None);
        }
        let terms = terms
            .into_iter()
            .map(|t| {
                Ok((
                    t.clone(),
                    Bm25Weight::for_terms(searcher, std::slice::from_ref(t))?,
                ))
            })
            .collect::<tantivy::Result<Vec<_>>>()?;
        Ok(Some(TermSum { terms, all }))
    }

    /// Offers the segment's matches that `keep` accepts to `best`; returns
    /// the copies they stand for.
    fn rank(
        &self,
        seg: &SegmentReader,
        keep: &Keep<'_>,
        copies: &Copies<'_>,
        best: &mut TopScores,
    ) -> tantivy::Result<u64> {
        let max_doc = seg.max_doc();
        let mut lists = Vec::with_capacity(self.terms.len());
        for (term, weight) in &self.terms {
            let postings = seg
                .inverted_index(term.field())?
                .read_block_postings(term, IndexRecordOption::WithFreqs)?;
            let Some(postings) = postings else {
                if self.all {
                    return Ok(0);
                }
                continue;
            };
            let norms = match seg.fieldnorms_readers().get_field(term.field())? {
                Some(n) => n,
                None => FieldNormReader::constant(max_doc, 1),
            };
            // A block of postings, and the next of its documents to read.
            lists.push((postings, 0usize, norms, weight));
        }
        let words = (WINDOW / 64) as usize;
        let mut scores = vec![0f32; WINDOW as usize];
        let mut window = vec![0u64; words];
        let mut term_bits = vec![0u64; words];
        let mut n = 0u64;
        let mut base = 0;
        while base < max_doc && !lists.is_empty() {
            let end = base.saturating_add(WINDOW).min(max_doc);
            window.fill(0);
            for (i, (block, at_doc, norms, weight)) in lists.iter_mut().enumerate() {
                let bits: &mut [u64] = if self.all && i > 0 {
                    term_bits.fill(0);
                    &mut term_bits
                } else {
                    &mut window
                };
                loop {
                    let docs = block.docs();
                    let mut k = *at_doc;
                    while k < docs.len() && docs[k] < end {
                        let d = docs[k];
                        let at = (d - base) as usize;
                        scores[at] += weight.score(norms.fieldnorm_id(d), block.freq(k));
                        bits[at / 64] |= 1 << (at % 64);
                        k += 1;
                    }
                    if k < docs.len() || docs.is_empty() {
                        *at_doc = k;
                        break;
                    }
                    block.advance();
                    *at_doc = 0;
                }
                if self.all && i > 0 {
                    for (w, t) in window.iter_mut().zip(&term_bits) {
                        *w &= *t;
                    }
                }
            }
            let first = (base / 64) as usize;
            for (wi, word) in window.iter().enumerate() {
                let mut rest = keep.word(first + wi, *word);
                if copies.nloc.is_none() {
                    n += u64::from(rest.count_ones());
                }
                let threshold = best.threshold();
                while rest != 0 {
                    let at = wi * 64 + rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    let d = base + at as u32;
                    if copies.nloc.is_some() {
                        n += copies.of(d);
                    }
                    if scores[at] > threshold {
                        best.offer(scores[at], d);
                    }
                }
            }
            scores.fill(0.0);
            base = end;
        }
        Ok(n)
    }
}

/// Which matches count: not excluded, not deleted.
struct Keep<'a> {
    excluded: Option<&'a Bits>,
    alive: Option<&'a tantivy::fastfield::AliveBitSet>,
}

impl Keep<'_> {
    #[inline]
    fn doc(&self, d: DocId) -> bool {
        self.excluded.is_none_or(|b| !b.contains(d)) && self.alive.is_none_or(|a| a.is_alive(d))
    }

    /// The documents of `word` (the segment's word `index`) that count.
    #[inline]
    fn word(&self, index: usize, mut word: u64) -> u64 {
        if let Some(b) = self.excluded {
            word &= !b.0.get(index).copied().unwrap_or(0);
        }
        if let Some(a) = self.alive {
            let mut rest = word;
            while rest != 0 {
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                if !a.is_alive(index as u32 * 64 + bit) {
                    word &= !(1 << bit);
                }
            }
        }
        word
    }
}

/// The segment's matches of `plain` that `keep` accepts.
fn plain_matches(seg: &SegmentReader, plain: &Plain, keep: &Keep<'_>) -> tantivy::Result<Bits> {
    let mut bits = plain.matches(seg)?;
    if let Some(ex) = keep.excluded {
        bits.and_not(ex);
    }
    if let Some(a) = keep.alive {
        bits.retain(|d| a.is_alive(d));
    }
    Ok(bits)
}

/// How many copies a document stands for.
struct Copies<'a> {
    /// `None`: one each (a fixed location, or no item of the segment in
    /// more than one place).
    nloc: Option<&'a Column<u64>>,
}

impl Copies<'_> {
    #[inline]
    fn of(&self, doc: DocId) -> u64 {
        self.nloc.map_or(1, |c| c.first(doc).unwrap_or(1))
    }

    /// The copies the documents of `bits` stand for.
    fn count(&self, bits: &Bits) -> u64 {
        let Some(c) = self.nloc else {
            return bits.len();
        };
        let mut n = 0;
        let mut docs: Vec<DocId> = Vec::with_capacity(1024);
        let mut vals: Vec<Option<u64>> = Vec::with_capacity(1024);
        let mut flush = |docs: &mut Vec<DocId>| {
            vals.clear();
            vals.resize(docs.len(), None);
            c.first_vals(docs, &mut vals);
            n += vals.iter().map(|v| v.unwrap_or(1)).sum::<u64>();
            docs.clear();
        };
        bits.each_in(0, u32::MAX, |d| {
            docs.push(d);
            if docs.len() == 1024 {
                flush(&mut docs);
            }
        });
        flush(&mut docs);
        n
    }
}

/// Larger is better: the date, then the lower document.
type NewestKey = (i64, Reverse<DocId>);

/// The `limit` newest documents offered (ties: the lower document first).
struct NewestPick {
    limit: usize,
    /// Candidates, cut down to the best `limit` whenever it holds twice that.
    best: Vec<NewestKey>,
    /// The worst kept key, once `limit` are kept.
    floor: Option<NewestKey>,
}

impl NewestPick {
    fn new(limit: usize) -> NewestPick {
        NewestPick {
            limit,
            best: Vec::with_capacity(2 * limit),
            floor: None,
        }
    }

    fn cut(&mut self) {
        if self.limit > 0 && self.best.len() >= self.limit {
            self.best
                .select_nth_unstable_by(self.limit - 1, |a, b| b.cmp(a));
            self.best.truncate(self.limit);
            self.floor = self.best.iter().min().copied();
        }
    }

    /// Whether no document of a zone whose latest date is `latest` can enter.
    fn done_before(&mut self, latest: i64) -> bool {
        if self.limit == 0 {
            return true;
        }
        if self.best.len() >= self.limit {
            self.cut();
        }
        self.floor.is_some_and(|f| latest < f.0)
    }

    #[inline]
    fn offer(&mut self, doc: DocId, date: i64) {
        let key = (date, Reverse(doc));
        if self.floor.is_some_and(|f| key <= f) {
            return;
        }
        self.best.push(key);
        if self.best.len() >= 2 * self.limit {
            self.cut();
        }
    }

    fn finish(mut self) -> Vec<(i64, DocId)> {
        self.cut();
        self.best
            .into_iter()
            .map(|(date, Reverse(d))| (date, d))
            .collect()
    }
}

/// The `limit` newest of the `matched` documents, visiting zones from the
/// latest.
fn newest(info: &SegmentInfo, matched: &Bits, max_doc: u32, limit: usize) -> Vec<(i64, DocId)> {
    let mut pick = NewestPick::new(limit);
    let zones = info.zones(max_doc);
    for &z in &zones.by_latest {
        if pick.done_before(zones.latest[z as usize]) {
            break;
        }
        let lo = z * ZONE;
        let hi = (lo + ZONE).min(max_doc);
        matched.each_in(lo, hi, |d| {
            pick.offer(d, info.order.first(d).unwrap_or(i64::MIN));
        });
    }
    pick.finish()
}

/// Zones read by seeking before the matches are set as bits instead.
const SEEKS: usize = 8;

/// The `limit` newest documents `w` matches, found by seeking into the
/// zones from the latest; `None` when that takes more than [`SEEKS`] zones
/// (documents far from date order).
fn newest_by_seeking(
    w: &dyn Weight,
    seg: &SegmentReader,
    info: &SegmentInfo,
    keep: &Keep<'_>,
    limit: usize,
) -> tantivy::Result<Option<Vec<(i64, DocId)>>> {
    let mut pick = NewestPick::new(limit);
    let zones = info.zones(seg.max_doc());
    for (visited, &z) in zones.by_latest.iter().enumerate() {
        if pick.done_before(zones.latest[z as usize]) {
            break;
        }
        if visited == SEEKS {
            return Ok(None);
        }
        let lo = z * ZONE;
        let hi = (lo + ZONE).min(seg.max_doc());
        let mut docs = w.scorer(seg, 1.0)?;
        // A new scorer stands on its first match; seeking backwards is not
        // allowed.
        let mut d = docs.doc();
        if d < lo {
            d = docs.seek(lo);
        }
        while d < hi {
            if keep.doc(d) {
                pick.offer(d, info.order.first(d).unwrap_or(i64::MIN));
            }
            d = docs.advance();
        }
    }
    Ok(Some(pick.finish()))
}

/// The `k` best-scored documents (ties: the lower document first).
struct TopScores {
    k: usize,
    heap: BinaryHeap<Reverse<(Ranked, Reverse<DocId>)>>,
}

/// A score that orders totally.
#[derive(Clone, Copy, PartialEq)]
struct Ranked(f32);

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl TopScores {
    fn new(k: usize) -> TopScores {
        TopScores {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// The score a document must beat to enter.
    #[inline]
    fn threshold(&self) -> Score {
        if self.heap.len() < self.k {
            Score::MIN
        } else {
            self.heap.peek().map_or(Score::MAX, |Reverse((s, _))| s.0)
        }
    }

    fn offer(&mut self, score: Score, doc: DocId) {
        if self.k == 0 {
            return;
        }
        let key = Reverse((Ranked(score), Reverse(doc)));
        if self.heap.len() < self.k {
            self.heap.push(key);
        } else if self.heap.peek().is_some_and(|worst| key < *worst) {
            self.heap.pop();
            self.heap.push(key);
        }
    }

    fn into_vec(self) -> Vec<(Score, DocId)> {
        self.heap
            .into_iter()
            .map(|Reverse((s, Reverse(d)))| (s.0, d))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_iterate_a_range() {
        let mut b = Bits::new(3000);
        b.insert_sorted(&[0, 63, 64, 1023]);
        b.insert_sorted(&[1024, 2047, 2999]);
        assert_eq!(b.len(), 7);
        let mut other = Bits::new(3000);
        other.insert_sorted(&[63, 1024, 2999]);
        let mut both = Bits(b.0.clone());
        both.and(&other);
        assert_eq!(both.len(), 3);
        both.retain(|d| d != 1024);
        assert_eq!(both.len(), 2);
        b.and_not(&other);
        assert_eq!(b.len(), 4);
        assert!(!b.contains(63) && b.contains(0));
        b.insert_sorted(&[63, 1024, 2999]);
        let mut got = Vec::new();
        b.each_in(1024, 2048, |d| got.push(d));
        assert_eq!(got, vec![1024, 2047]);
        got.clear();
        b.each_in(2048, 3000, |d| got.push(d));
        assert_eq!(got, vec![2999]);
        assert!(b.contains(63) && !b.contains(62));
    }

    #[test]
    fn top_scores_keep_the_best_and_lower_documents_on_ties() {
        let mut t = TopScores::new(2);
        assert_eq!(t.threshold(), Score::MIN);
        for (s, d) in [(1.0, 5), (3.0, 1), (2.0, 9), (2.0, 3), (0.5, 0)] {
            t.offer(s, d);
        }
        assert_eq!(t.threshold(), 2.0);
        let mut v = t.into_vec();
        v.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert_eq!(v, vec![(3.0, 1), (2.0, 3)]);
    }
}
