//! The canonical forms of a source item's raw text, and the fingerprint
//! taken over them: the same source record imported again has the same
//! fingerprint however its file was laid out.
//!
//! Sources compute an item's fingerprint here; the store derives it here
//! again from the item's `raw` text instead of keeping 32 random bytes per
//! version (see `store::codec::encode_item`). Pure functions of their input.

use crate::model::TimeBasis;
use serde::{Deserialize, Serialize};

/// How raw text becomes the bytes its fingerprint hashes. The stored form of
/// an item names one (a `u8`), so variants are only ever added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Canon {
    /// JSON without white space outside strings (Telegram Desktop JSON).
    Minified,
    /// The bytes as they are (Bot API updates, delivered mail).
    Exact,
    /// Every run of white space one space, none at either end (HTML exports).
    Words,
}

impl Canon {
    /// Every form, in the order a stored item's is looked for.
    pub const ALL: [Canon; 3] = [Canon::Minified, Canon::Exact, Canon::Words];
}

/// The fingerprint of `raw` in form `canon`: SHA-256 of the canonical bytes,
/// followed by `\n` and the zone's name when the item's time was read in a
/// zone (the same record read under another zone assumption is another
/// version). `scratch` is cleared and left holding the hashed bytes.
pub fn fingerprint(canon: Canon, raw: &str, time: &TimeBasis, scratch: &mut Vec<u8>) -> [u8; 32] {
    match canon {
        Canon::Minified => minify_into(raw, scratch),
        Canon::Exact => {
            scratch.clear();
            scratch.extend_from_slice(raw.as_bytes());
        }
        Canon::Words => words_into(raw, scratch),
    }
    if let TimeBasis::LocalTime { zone } = time {
        scratch.push(b'\n');
        scratch.extend_from_slice(zone.as_bytes());
    }
    crate::model::sha256(scratch)
}

/// The form of `raw` whose fingerprint is `want`, if one is.
pub fn form_of(want: &[u8; 32], raw: &str, time: &TimeBasis) -> Option<Canon> {
    let mut scratch = Vec::new();
    Canon::ALL
        .into_iter()
        .find(|&c| fingerprint(c, raw, time, &mut scratch) == *want)
}

/// JSON text without white space outside strings into `out` (cleared
/// first), copying a run at a time: strings whole (found with `memchr`),
/// and the layout between them without its white space. Text that is not
/// JSON is treated the same way, byte for byte.
pub fn minify_into(json: &str, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(json.len());
    let bytes = json.as_bytes();
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        let start = i;
        i = bytes[i..]
            .iter()
            .position(|&b| matches!(b, b' ' | b'\n' | b'\r' | b'\t' | b'"'))
            .map_or(n, |k| i + k);
        out.extend_from_slice(&bytes[start..i]);
        if i == n {
            break;
        }
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        // A string: up to its closing quote, escapes included.
        let open = i;
        i += 1;
        loop {
            match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                // An escape: step over the escaped byte too (a backslash at
                // the very end leaves nothing to search).
                Some(k) if bytes[i + k] == b'\\' => i = (i + k + 2).min(n),
                Some(k) => {
                    i += k + 1;
                    break;
                }
                None => {
                    i = n;
                    break;
                }
            }
        }
        out.extend_from_slice(&bytes[open..i]);
    }
}

/// `text`'s words (split at Unicode white space) joined by one space, into
/// `out` (cleared first).
pub fn words_into(text: &str, out: &mut Vec<u8>) {
    out.clear();
    for (k, w) in text.split_whitespace().enumerate() {
        if k > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(w.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minify(json: &str) -> Vec<u8> {
        let mut out = Vec::new();
        minify_into(json, &mut out);
        out
    }

    #[test]
    fn minify_keeps_strings_and_drops_layout() {
        assert_eq!(
            minify("{ \"a b\" : [1, \"x\\\" y\"],\n \"c\": 2 }"),
            b"{\"a b\":[1,\"x\\\" y\"],\"c\":2}"
        );
    }

    /// The byte-at-a-time definition the run-copying [`minify_into`] must match.
    fn minify_reference(json: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut in_str, mut esc) = (false, false);
        for &b in json.as_bytes() {
            if in_str {
                out.push(b);
                if esc {
                    esc = false;
                } else if b == b'\\' {
                    esc = true;
                } else if b == b'"' {
                    in_str = false;
                }
            } else if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                in_str = b == b'"';
                out.push(b);
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn minify_matches_its_definition(s in "[ \\n\\t\\r\"\\\\a{}:,1é]{0,40}") {
            proptest::prop_assert_eq!(minify(&s), minify_reference(&s));
        }
    }

    #[test]
    fn words_are_joined_by_one_space() {
        let mut out = Vec::new();
        words_into("  a\n\tb  c ", &mut out);
        assert_eq!(out, b"a b c");
    }

    #[test]
    fn a_form_is_found_only_when_it_gives_the_fingerprint() {
        let raw = "{ \"id\": 1,\n  \"text\": \"a  b\" }";
        let zone = TimeBasis::LocalTime {
            zone: "Europe/Berlin".into(),
        };
        let mut s = Vec::new();
        for time in [TimeBasis::Epoch, zone] {
            for c in Canon::ALL {
                let fp = fingerprint(c, raw, &time, &mut s);
                assert_eq!(form_of(&fp, raw, &time), Some(c), "{c:?}");
            }
            assert_eq!(form_of(&[9; 32], raw, &time), None);
        }
        // The zone is part of what is hashed.
        let fp = fingerprint(Canon::Minified, raw, &TimeBasis::Epoch, &mut s);
        let other = TimeBasis::LocalTime { zone: "UTC".into() };
        assert_eq!(form_of(&fp, raw, &other), None);
    }
}
