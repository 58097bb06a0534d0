//! The frame of a pack record (packs from format 4 on): each record says what
//! it holds and how, so that a damaged archive's packs can be read without
//! the catalogue, and contents are stored compressed where that pays.
//!
//! ```text
//! "TGR" version(1) kind(1) coding(1) payload_len(u32 LE) content_len(u32 LE) content_sha(8) payload
//! ```
//!
//! `kind` is `v` (an item version: `codec(model::Item)`) or `b` (an inline
//! attachment blob); `coding` 0 stores the content as it is, 1 as one zstd
//! frame. A record's content and payload are each under 4 GiB (inline
//! blobs are at most 1 MiB; an item version is one message). `content_sha` is the first 8 bytes of the content's SHA-256 (the
//! catalogue keeps all 32 and readers check those; the prefix lets a scan
//! of a pack tell a whole record from a damaged one).
//!
//! Whether to compress is decided by trying: the content (for a large blob,
//! its first [`TRIAL`] bytes) is compressed, and kept compressed only when
//! that saves at least 1/32 of it, so JPEG, MP4 or ZIP contents are stored
//! as they are whatever their names say.

use crate::error::{Error, Result};
use std::io::Read;

pub const MAGIC: [u8; 3] = *b"TGR";
pub const VERSION: u8 = 1;
pub const HEADER: usize = 22;

/// The first bytes of every record.
const LEAD: [u8; 4] = [MAGIC[0], MAGIC[1], MAGIC[2], VERSION];

/// zstd's level: 3 (its default) compressed item records to within a few
/// per cent of level 9 at several times the speed (see docs/perf.md).
const LEVEL: i32 = 3;

/// A blob larger than this is tried on its first `TRIAL` bytes first.
const TRIAL: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Version,
    Blob,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Version => b'v',
            Kind::Blob => b'b',
        }
    }
}

/// How records are framed, with a compressor kept between them.
pub struct Framer {
    zstd: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl Framer {
    pub fn new() -> Result<Framer> {
        let zstd = zstd::bulk::Compressor::new(LEVEL)
            .map_err(|e| Error::Internal(format!("zstd: {e}")))?;
        Ok(Framer {
            zstd,
            scratch: Vec::new(),
        })
    }

    /// The record for `content` (whose SHA-256 is `sha`), appended to `out`.
    pub fn frame(
        &mut self,
        kind: Kind,
        content: &[u8],
        sha: &[u8; 32],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let too_big = || {
            Error::Usage(format!(
                "a record of {} bytes is past the 4 GiB a pack record holds",
                content.len()
            ))
        };
        let content_len = u32::try_from(content.len()).map_err(|_| too_big())?;
        let compressed = self.try_compress(content)?;
        let payload = if compressed {
            &self.scratch[..]
        } else {
            content
        };
        let payload_len = u32::try_from(payload.len()).map_err(|_| too_big())?;
        out.extend_from_slice(&LEAD);
        out.push(kind.byte());
        out.push(u8::from(compressed));
        out.extend_from_slice(&payload_len.to_le_bytes());
        out.extend_from_slice(&content_len.to_le_bytes());
        out.extend_from_slice(&sha[..8]);
        out.extend_from_slice(payload);
        Ok(())
    }

    /// Whether `content` compresses enough to be kept so (then it is in
    /// `scratch`).
    fn try_compress(&mut self, content: &[u8]) -> Result<bool> {
        if content.len() > TRIAL && !self.saves(&content[..TRIAL])? {
            return Ok(false);
        }
        self.saves(content)
    }

    fn saves(&mut self, content: &[u8]) -> Result<bool> {
        let bound = zstd::zstd_safe::compress_bound(content.len());
        self.scratch.clear();
        self.scratch.reserve(bound);
        self.zstd
            .compress_to_buffer(content, &mut self.scratch)
            .map_err(|e| Error::Internal(format!("zstd: {e}")))?;
        Ok(self.scratch.len() + content.len() / 32 < content.len())
    }
}

/// A record's header.
struct Head {
    kind: u8,
    coding: u8,
    payload_len: usize,
    content_len: usize,
}

fn head(record: &[u8]) -> std::result::Result<Head, &'static str> {
    if record.len() < HEADER {
        return Err("shorter than a record's header");
    }
    if record[..4] != LEAD {
        return Err("not a record (no TGR1 header)");
    }
    let u32_at = |i: usize| u32::from_le_bytes(record[i..i + 4].try_into().expect("4 bytes"));
    let h = Head {
        kind: record[4],
        coding: record[5],
        payload_len: u32_at(6) as usize,
        content_len: u32_at(10) as usize,
    };
    if !matches!(h.kind, b'v' | b'b') {
        return Err("record of an unknown kind");
    }
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
pub fn unframe(record: &[u8], what: &dyn std::fmt::Display) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::Corrupt(format!("{what}: {why}"));
    let h = head(record).map_err(bad)?;
    if record.len() - HEADER != h.payload_len {
        return Err(bad("its length does not match its header"));
    }
    decode(&h, &record[HEADER..]).map_err(|why| bad(&why))
}

fn decode(h: &Head, payload: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if h.coding == 0 {
        return Ok(payload.to_vec());
    }
    let mut out = Vec::with_capacity(h.content_len.min(16 << 20));
    let mut dec = zstd::stream::read::Decoder::with_buffer(payload)
        .map_err(|e| format!("zstd: {e}"))?
        .single_frame();
    (&mut dec)
        .take(h.content_len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("its compressed bytes are damaged (zstd: {e})"))?;
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
/// retention destroyed), on from the next `TGR1`.
pub fn scan(bytes: &[u8]) -> Vec<Found> {
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
        let content = decode(&h, &bytes[at + HEADER..end]);
        let whole = content
            .as_ref()
            .is_ok_and(|c| crate::model::sha256(c)[..8] == bytes[at + 14..at + HEADER]);
        out.push(Found {
            offset: at,
            len: end - at,
            kind: if h.kind == b'v' {
                Kind::Version
            } else {
                Kind::Blob
            },
            content,
            whole,
        });
        at = end;
    }
    out
}

fn next_lead(bytes: &[u8], from: usize) -> usize {
    memchr::memmem::find(&bytes[from.min(bytes.len())..], &LEAD).map_or(bytes.len(), |i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn sha(b: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(b).into()
    }

    fn framed(content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Framer::new()
            .unwrap()
            .frame(Kind::Version, content, &sha(content), &mut out)
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
        assert_eq!(unframe(&rec, &"t").unwrap(), text.as_bytes());
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
        assert_eq!(unframe(&rec, &"n").unwrap(), noise);
        assert_eq!(unframe(&framed(b""), &"e").unwrap(), b"");
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
        let found = scan(&pack);
        assert_eq!(found.len(), 6);
        for (f, c) in found.iter().zip(&contents) {
            assert!(f.whole);
            assert_eq!(f.content.as_ref().unwrap(), c);
        }
        // Record 2 zeroed (as retention leaves it), record 4's payload hit.
        pack[starts[2]..starts[3]].fill(0);
        pack[starts[4] + HEADER + 3] ^= 0x40;
        let found = scan(&pack);
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
                match unframe(&bad, &"x") {
                    Ok(c) if i < 14 => panic!("byte {i} ^ {flip:#x} read as {} bytes", c.len()),
                    Ok(c) if i >= HEADER => assert_ne!(sha(&c), sha(text.as_bytes())),
                    _ => {}
                }
            }
        }
        for n in 0..rec.len() {
            let _ = unframe(&rec[..n], &"cut");
        }
        // A header that claims an enormous length allocates nothing for it.
        let mut huge = rec.clone();
        huge[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unframe(&huge, &"h").is_err());
    }
}
