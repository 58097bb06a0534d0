//! The frame of a pack record (packs from format 4 on): each record says what
//! it holds and how, so that a damaged archive's packs can be read without
//! the catalogue, and contents are stored compressed where that pays.
//!
//! ```text
//! "TGR" version(1) kind(1) coding(1) payload_len(u32 LE) content_len(u32 LE) hash(8) payload
//! ```
//!
//! `kind` is `v` (an item version: `codec(model::Item)`), `g` (item
//! versions stored together, `store::group`), `b` (an inline attachment
//! blob), `f` (a filing log) or `d` (a zstd dictionary, stored as it is,
//! ahead of the first record compressed with it); `coding` 0 stores the content as it is,
//! 1 as one zstd frame, which names its dictionary (if any) by id. A record's
//! content and payload are each under 4 GiB (inline blobs are at most 1 MiB;
//! an item version is one message). `hash` is the first 8 bytes of the
//! SHA-256 of the header's first 14 bytes and the payload, every stored byte
//! (version 2; version 1, written by formats 4 to 7, hashed the content).
//! Readers check each content against the catalogue's full hash; the prefix
//! lets a scan of a pack tell a whole record from a damaged one without the
//! catalogue, and `verify` name a damaged byte that left the content as it
//! was.
//!
//! Whether to compress is decided by trying: the content (for a large blob,
//! its first [`TRIAL`] bytes) is compressed, and kept compressed only when
//! that saves at least 1/32 of it, so JPEG, MP4 or ZIP contents are stored
//! as they are whatever their names say.
//!
//! Item versions are small (a message is about 1 KB encoded): alone, zstd
//! shrinks one to about half; with a dictionary trained on the archive's
//! first [`SAMPLE_BYTES`] of versions, to about a fifth. So the framer
//! collects those versions (compressing them without one), trains a 64 KiB
//! dictionary from them once, and uses it for every version after. The
//! archive keeps its dictionaries in the `dicts` table and, for readers
//! without the catalogue, as `d` records in the packs.

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use zstd::zstd_safe::{CCtx, CDict, DCtx, DDict};

pub const MAGIC: [u8; 3] = *b"TGR";
/// The frame version written: 2 hashes the stored bytes (header and
/// payload), 1 (format 4 to 7) hashed the content.
pub const VERSION: u8 = 2;
pub const HEADER: usize = 22;

/// The first bytes of every record written.
const LEAD: [u8; 4] = [MAGIC[0], MAGIC[1], MAGIC[2], VERSION];

/// Whether `lead` starts a record of a frame version this build reads.
fn is_lead(lead: &[u8]) -> bool {
    lead.len() >= 4 && lead[..3] == MAGIC && matches!(lead[3], 1 | 2)
}

/// A version-2 record's hash prefix: SHA-256 over its header's first 14
/// bytes and its payload, so that every stored byte is covered.
fn stored_hash(head: &[u8], payload: &[u8]) -> [u8; 8] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(&head[..14]);
    h.update(payload);
    let h: [u8; 32] = h.finalize().into();
    [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]
}

/// zstd's level. With versions in 32 KiB groups, level 3 stores the 1M
/// bench's packs 6% smaller than level 1 at the same import time, and
/// level 6 another 5% smaller for 10% more import time (see docs/perf.md).
const LEVEL: i32 = 3;

/// A blob larger than this is tried on its first `TRIAL` bytes first.
const TRIAL: usize = 64 * 1024;

/// Item versions a dictionary is trained from, in bytes...
pub const SAMPLE_BYTES: usize = 2 << 20;
/// ...and at least this many of them.
const MIN_SAMPLES: usize = 500;
/// A sample is at most this long (a long message teaches no more).
const SAMPLE_MAX: usize = 16 * 1024;
const DICT_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Version,
    Blob,
    Dict,
    /// A filing log: where a transaction filed copies (`store::filings`).
    Filings,
    /// Item versions stored together (`store::group`).
    Group,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Version => b'v',
            Kind::Blob => b'b',
            Kind::Dict => b'd',
            Kind::Filings => b'f',
            Kind::Group => b'g',
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            b'v' => Some(Kind::Version),
            b'b' => Some(Kind::Blob),
            b'd' => Some(Kind::Dict),
            b'f' => Some(Kind::Filings),
            b'g' => Some(Kind::Group),
            _ => None,
        }
    }
}

/// The archive's zstd dictionaries, by id: what readers decompress with.
#[derive(Default)]
pub struct Dicts(RwLock<HashMap<u32, Arc<DDict<'static>>>>);

/// A dictionary as the `dicts` table keeps it: one zstd frame of its
/// bytes (no dictionary), about a third of its size. A value that is not
/// a zstd frame is a dictionary as format 8 and before kept it.
pub fn stored_dict(dict: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(dict, LEVEL).unwrap_or_else(|_| dict.to_vec())
}

/// A `dicts` value's dictionary (see [`stored_dict`]).
pub fn dict_of_stored(value: &[u8]) -> Result<Vec<u8>> {
    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    if !value.starts_with(&ZSTD_MAGIC) {
        return Ok(value.to_vec());
    }
    zstd::bulk::decompress(value, DICT_MAX)
        .map_err(|e| Error::Corrupt(format!("a zstd dictionary in `dicts`: {e}")))
}

/// The most bytes a stored dictionary may expand to (they are 64 KiB).
const DICT_MAX: usize = 1 << 20;

impl Dicts {
    /// Adds a dictionary (its id is in its bytes); one zstd cannot load is
    /// refused.
    pub fn add(&self, bytes: &[u8]) -> Result<u32> {
        let id = dict_id(bytes)?;
        let d = DDict::try_create(bytes)
            .ok_or_else(|| Error::Corrupt(format!("zstd dictionary {id} cannot be loaded")))?;
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(d));
        Ok(id)
    }

    fn get(&self, id: u32) -> Option<Arc<DDict<'static>>> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.get(&id).cloned()
    }
}

/// A dictionary's id, from its header.
pub fn dict_id(bytes: &[u8]) -> Result<u32> {
    zstd::zstd_safe::get_dict_id_from_dict(bytes)
        .map(|id| id.get())
        .ok_or_else(|| Error::Corrupt("a zstd dictionary without an id".into()))
}

fn cdict(bytes: &[u8]) -> Result<CDict<'static>> {
    CDict::try_create(bytes, LEVEL)
        .ok_or_else(|| Error::Corrupt("a zstd dictionary that cannot be loaded".into()))
}

fn zstd_error(code: usize) -> String {
    zstd::zstd_safe::get_error_name(code).to_string()
}

/// How records are framed, with a compression context kept between them.
pub struct Framer {
    cctx: CCtx<'static>,
    /// The dictionary item versions are compressed with, and its id.
    dict: Option<(u32, CDict<'static>)>,
    /// One trained here that the catalogue does not hold yet: id and bytes.
    unsaved: Option<(u32, Vec<u8>)>,
    samples: Vec<u8>,
    sample_lens: Vec<usize>,
    scratch: Vec<u8>,
}

impl Framer {
    /// A framer that compresses item versions with `dict` (the archive's
    /// dictionary), or trains one when there is none.
    pub fn new(dict: Option<&[u8]>) -> Result<Framer> {
        let dict = match dict {
            Some(bytes) => Some((dict_id(bytes)?, cdict(bytes)?)),
            None => None,
        };
        Ok(Framer {
            cctx: CCtx::try_create().ok_or_else(|| Error::Internal("zstd: no context".into()))?,
            dict,
            unsaved: None,
            samples: Vec::new(),
            sample_lens: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// A dictionary trained here that the catalogue does not hold yet.
    pub fn unsaved(&self) -> Option<&(u32, Vec<u8>)> {
        self.unsaved.as_ref()
    }

    /// The catalogue holds the trained dictionary now.
    pub fn saved(&mut self) {
        self.unsaved = None;
    }

    /// Notes an item version's content for training; once enough are in,
    /// trains the dictionary and adds it to `dicts`. A failed training is
    /// logged and tried again on the next samples.
    pub fn sample(&mut self, content: &[u8], dicts: &Dicts) {
        if self.dict.is_some() {
            return;
        }
        let take = &content[..content.len().min(SAMPLE_MAX)];
        self.samples.extend_from_slice(take);
        self.sample_lens.push(take.len());
        if self.samples.len() < SAMPLE_BYTES || self.sample_lens.len() < MIN_SAMPLES {
            return;
        }
        let trained = zstd::dict::from_continuous(&self.samples, &self.sample_lens, DICT_BYTES)
            .map_err(|e| Error::Internal(format!("zstd training: {e}")))
            .and_then(|bytes| Ok((dicts.add(&bytes)?, cdict(&bytes)?, bytes)));
        self.samples = Vec::new();
        self.sample_lens = Vec::new();
        match trained {
            Ok((id, c, bytes)) => {
                tracing::info!(dict = id, bytes = bytes.len(), "zstd dictionary trained");
                self.dict = Some((id, c));
                self.unsaved = Some((id, bytes));
            }
            Err(e) => tracing::warn!(error = %e, "no zstd dictionary this time"),
        }
    }

    /// The record for `content`, appended to `out`.
    pub fn frame(&mut self, kind: Kind, content: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let too_big = || {
            Error::Usage(format!(
                "a record of {} bytes is past the 4 GiB a pack record holds",
                content.len()
            ))
        };
        let content_len = u32::try_from(content.len()).map_err(|_| too_big())?;
        let compressed = self.try_compress(kind, content)?;
        let payload = if compressed {
            &self.scratch[..]
        } else {
            content
        };
        let payload_len = u32::try_from(payload.len()).map_err(|_| too_big())?;
        let start = out.len();
        out.extend_from_slice(&LEAD);
        out.push(kind.byte());
        out.push(u8::from(compressed));
        out.extend_from_slice(&payload_len.to_le_bytes());
        out.extend_from_slice(&content_len.to_le_bytes());
        let hash = stored_hash(&out[start..], payload);
        out.extend_from_slice(&hash);
        out.extend_from_slice(payload);
        Ok(())
    }

    /// Whether `content` compresses enough to be kept so (then it is in
    /// `scratch`). Blobs are not like messages: no dictionary for them.
    fn try_compress(&mut self, kind: Kind, content: &[u8]) -> Result<bool> {
        let with_dict = matches!(kind, Kind::Version | Kind::Group);
        if content.len() > TRIAL && !self.saves(&content[..TRIAL], with_dict)? {
            return Ok(false);
        }
        self.saves(content, with_dict)
    }

    fn saves(&mut self, content: &[u8], with_dict: bool) -> Result<bool> {
        self.scratch.clear();
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(content.len()));
        let out = match (&self.dict, with_dict) {
            (Some((_, d)), true) => self
                .cctx
                .compress_using_cdict(&mut self.scratch, content, d),
            _ => self.cctx.compress(&mut self.scratch, content, LEVEL),
        };
        out.map_err(|code| Error::Internal(format!("zstd: {}", zstd_error(code))))?;
        Ok(self.scratch.len() + content.len() / 32 < content.len())
    }
}

/// A record's header.
struct Head {
    kind: Kind,
    coding: u8,
    payload_len: usize,
    content_len: usize,
}

fn head(record: &[u8]) -> std::result::Result<Head, &'static str> {
    if record.len() < HEADER {
        return Err("shorter than a record's header");
    }
    if !is_lead(record) {
        return Err("not a record (no TGR1 or TGR2 header)");
    }
    let u32_at = |i: usize| u32::from_le_bytes(record[i..i + 4].try_into().expect("4 bytes"));
    let h = Head {
        kind: Kind::from_byte(record[4]).ok_or("record of an unknown kind")?,
        coding: record[5],
        payload_len: u32_at(6) as usize,
        content_len: u32_at(10) as usize,
    };
    if h.coding > 1 {
        return Err("unknown coding");
    }
    if h.coding == 0 && h.payload_len != h.content_len {
        return Err("its lengths do not agree");
    }
    Ok(h)
}

/// The content of a framed record (exactly one). `what` names the record in
/// errors; a damaged record is [`Error::Corrupt`], never a panic or an
/// allocation its header asks for.
pub fn unframe(record: &[u8], dicts: &Dicts, what: &dyn std::fmt::Display) -> Result<Vec<u8>> {
    unframe_kind(record, dicts, what).map(|(_, content)| content)
}

/// [`unframe`], with the record's kind.
pub fn unframe_kind(
    record: &[u8],
    dicts: &Dicts,
    what: &dyn std::fmt::Display,
) -> Result<(Kind, Vec<u8>)> {
    let bad = |why: &str| Error::Corrupt(format!("{what}: {why}"));
    let h = head(record).map_err(bad)?;
    if record.len() - HEADER != h.payload_len {
        return Err(bad("its length does not match its header"));
    }
    let content = decode(&h, &record[HEADER..], dicts).map_err(|why| bad(&why))?;
    Ok((h.kind, content))
}

/// Whether a framed record (exactly one) is whole: its header reads, its
/// content decodes and matches the header's hash prefix, and the bit of
/// zstd's frame header that zstd never sets is clear. Reads do not ask this
/// (each content is checked against the catalogue's full hash, so a damaged
/// byte that leaves it as it was hides nothing); `verify` does, so that it
/// names those bytes too.
pub fn check(record: &[u8], dicts: &Dicts) -> std::result::Result<(), String> {
    let h = head(record).map_err(String::from)?;
    if record.len() - HEADER != h.payload_len {
        return Err("its length does not match its header".into());
    }
    let payload = &record[HEADER..];
    if h.coding == 1 && payload.get(4).is_some_and(|fhd| fhd & 0x10 != 0) {
        return Err("its compressed bytes are damaged (a header bit zstd never sets)".into());
    }
    let content = decode(&h, payload, dicts)?;
    if !matches_hash(record, &content) {
        return Err("its bytes do not match its header's hash".into());
    }
    Ok(())
}

/// Whether `record`'s hash prefix matches it: its stored bytes (version 2)
/// or its decoded `content` (version 1).
fn matches_hash(record: &[u8], content: &[u8]) -> bool {
    let prefix = &record[14..HEADER];
    if record[3] == 1 {
        crate::model::sha256(content)[..8] == *prefix
    } else {
        stored_hash(record, &record[HEADER..]) == *prefix
    }
}

thread_local! {
    /// A decompression context per thread, kept between records.
    static DCTX: std::cell::RefCell<Option<DCtx<'static>>> = const { std::cell::RefCell::new(None) };
}

fn decode(h: &Head, payload: &[u8], dicts: &Dicts) -> std::result::Result<Vec<u8>, String> {
    if h.coding == 0 {
        return Ok(payload.to_vec());
    }
    // The frame's own size must agree with the header before anything is
    // allocated for it, and nothing expands past zstd's limit (a block of
    // 128 KiB takes at least 4 bytes).
    let size = zstd::zstd_safe::get_frame_content_size(payload);
    if !matches!(size, Ok(Some(n)) if n == h.content_len as u64)
        || h.content_len > payload.len().saturating_mul(1 << 15)
    {
        return Err("its compressed bytes are damaged (sizes disagree)".into());
    }
    let dict = match zstd::zstd_safe::get_dict_id_from_frame(payload) {
        Some(id) => Some(dicts.get(id.get()).ok_or_else(|| {
            format!("compressed with zstd dictionary {id}, which the archive lacks")
        })?),
        None => None,
    };
    let mut out = Vec::with_capacity(h.content_len);
    DCTX.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = DCtx::try_create();
        }
        let dctx = cell.as_mut().ok_or("zstd: no context")?;
        match &dict {
            Some(d) => dctx.decompress_using_ddict(&mut out, payload, d),
            None => dctx.decompress(&mut out, payload),
        }
        .map_err(|code| {
            format!(
                "its compressed bytes are damaged (zstd: {})",
                zstd_error(code)
            )
        })
        .map(drop)
    })?;
    if out.len() != h.content_len {
        return Err("its content length does not match its header".into());
    }
    Ok(out)
}

/// One record found by [`scan`].
pub struct Found {
    /// Where it starts in the scanned bytes, and its whole length.
    pub offset: usize,
    pub len: usize,
    pub kind: Kind,
    /// Its content, or why it cannot be read.
    pub content: std::result::Result<Vec<u8>, String>,
    /// Whether the content's SHA-256 starts with the header's prefix.
    pub whole: bool,
}

/// Every record in a pack's bytes, without the catalogue: from the start,
/// record after record; where a header is damaged or zeroed (a record
/// retention destroyed), on from the next `TGR1` or `TGR2`. Dictionaries come ahead of
/// the records compressed with them (`dicts` holds those of earlier packs).
pub fn scan(bytes: &[u8], dicts: &Dicts) -> Vec<Found> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + HEADER <= bytes.len() {
        let Ok(h) = head(&bytes[at..]) else {
            at = next_lead(bytes, at + 1);
            continue;
        };
        let end = at + HEADER + h.payload_len;
        if end > bytes.len() {
            at = next_lead(bytes, at + 1);
            continue;
        }
        let content = decode(&h, &bytes[at + HEADER..end], dicts);
        let whole = content
            .as_ref()
            .is_ok_and(|c| matches_hash(&bytes[at..end], c));
        if h.kind == Kind::Dict
            && whole
            && let Ok(c) = &content
        {
            let _ = dicts.add(c);
        }
        out.push(Found {
            offset: at,
            len: end - at,
            kind: h.kind,
            content,
            whole,
        });
        at = end;
    }
    out
}

fn next_lead(bytes: &[u8], from: usize) -> usize {
    let mut at = from.min(bytes.len());
    while let Some(i) = memchr::memmem::find(&bytes[at..], &MAGIC) {
        if is_lead(&bytes[at + i..]) {
            return at + i;
        }
        at += i + 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    /// A dictionary is kept compressed in `dicts` and read back whole; one
    /// kept as it is (format 8 and before) reads as it is; a damaged frame
    /// is an error, not a panic.
    #[test]
    fn stored_dictionaries_read_back_in_either_form() {
        let dict: Vec<u8> = (0..65_536u32)
            .map(|i| b"payment budget invoice "[(i % 23) as usize])
            .collect();
        let stored = super::stored_dict(&dict);
        assert!(stored.len() < dict.len() / 3, "{}", stored.len());
        assert_eq!(super::dict_of_stored(&stored).unwrap(), dict);
        assert_eq!(super::dict_of_stored(&dict).unwrap(), dict);
        for at in 0..stored.len() {
            let mut b = stored.clone();
            b[at] ^= 0x10;
            let _ = super::dict_of_stored(&b);
        }
    }

    use super::*;
    use sha2::Digest;

    fn sha(b: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(b).into()
    }

    fn framed(content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Framer::new(None)
            .unwrap()
            .frame(Kind::Version, content, &mut out)
            .unwrap();
        out
    }

    #[test]
    fn text_is_compressed_and_noise_is_stored_as_it_is() {
        let text = "a message about the quarterly report, again and again. ".repeat(40);
        let rec = framed(text.as_bytes());
        assert_eq!(rec[5], 1);
        assert!(
            rec.len() < text.len() / 4,
            "{} of {}",
            rec.len(),
            text.len()
        );
        assert_eq!(
            unframe(&rec, &Dicts::default(), &"t").unwrap(),
            text.as_bytes()
        );
        // Bytes with no redundancy (as in a JPEG), past the trial size too.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let rec = framed(&noise);
        assert_eq!(rec[5], 0);
        assert_eq!(rec.len(), noise.len() + HEADER);
        assert_eq!(unframe(&rec, &Dicts::default(), &"n").unwrap(), noise);
        assert_eq!(unframe(&framed(b""), &Dicts::default(), &"e").unwrap(), b"");
    }

    #[test]
    fn a_scan_finds_every_record_and_steps_over_damage() {
        let contents: Vec<Vec<u8>> = (0..6)
            .map(|i| format!("record {i}: ").repeat(i * 20 + 1).into_bytes())
            .collect();
        let mut pack = Vec::new();
        let mut starts = Vec::new();
        for c in &contents {
            starts.push(pack.len());
            pack.extend(framed(c));
        }
        let found = scan(&pack, &Dicts::default());
        assert_eq!(found.len(), 6);
        for (f, c) in found.iter().zip(&contents) {
            assert!(f.whole);
            assert_eq!(f.content.as_ref().unwrap(), c);
        }
        // Record 2 zeroed (as retention leaves it), record 4's payload hit.
        pack[starts[2]..starts[3]].fill(0);
        pack[starts[4] + HEADER + 3] ^= 0x40;
        let found = scan(&pack, &Dicts::default());
        let offsets: Vec<usize> = found.iter().map(|f| f.offset).collect();
        assert_eq!(
            offsets,
            [starts[0], starts[1], starts[3], starts[4], starts[5]]
        );
        assert!(!found[3].whole);
        assert!(found.iter().enumerate().all(|(i, f)| f.whole == (i != 3)));
    }

    #[test]
    fn every_damaged_byte_is_an_error_or_the_same_content() {
        let text = "hello, compliance; ".repeat(30);
        let rec = framed(text.as_bytes());
        for i in 0..rec.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = rec.clone();
                bad[i] ^= flip;
                // A damaged header is refused (or, for the hash prefix,
                // left to the reader's full-hash check); a damaged payload
                // is refused or yields content that full check refuses.
                match unframe(&bad, &Dicts::default(), &"x") {
                    Ok(c) if i < 14 => panic!("byte {i} ^ {flip:#x} read as {} bytes", c.len()),
                    Ok(c) if i >= HEADER => assert_ne!(sha(&c), sha(text.as_bytes())),
                    _ => {}
                }
                // `verify`'s check names every one, the prefix included.
                assert!(
                    check(&bad, &Dicts::default()).is_err(),
                    "byte {i} ^ {flip:#x}"
                );
            }
        }
        for n in 0..rec.len() {
            let _ = unframe(&rec[..n], &Dicts::default(), &"cut");
        }
        assert!(check(&rec, &Dicts::default()).is_ok());
        // A record of frame version 1 (formats 4 to 7: the prefix hashes
        // the content) reads and checks as before.
        let mut v1 = rec.clone();
        v1[3] = 1;
        v1[14..HEADER].copy_from_slice(&sha(text.as_bytes())[..8]);
        assert_eq!(
            unframe(&v1, &Dicts::default(), &"v1").unwrap(),
            text.as_bytes()
        );
        assert!(check(&v1, &Dicts::default()).is_ok());
        let found = scan(&[v1.clone(), rec.clone()].concat(), &Dicts::default());
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|f| f.whole));
        // A header that claims an enormous length allocates nothing for it.
        let mut huge = rec.clone();
        huge[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unframe(&huge, &Dicts::default(), &"h").is_err());
    }
}
