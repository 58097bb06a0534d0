//! A byte filter that repairs the two ways Telegram Desktop writes JSON that is
//! not JSON, while streaming:
//!
//! - `\xHH` escapes inside strings become `\u00HH` (only where the backslash is
//!   itself unescaped), and raw control bytes inside strings other than line
//!   breaks become `\u00HH`;
//! - an unquoted value after a colon (Telegram Desktop 4.1.1 wrote
//!   `"document_id": stickers/x.webp`) is quoted, unless it is a number, `true`,
//!   `false` or `null`.
//!
//! Line breaks are never added or removed, so the parser's line numbers are the
//! file's line numbers.

use std::io::{self, Read};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairStats {
    pub hex_escapes: u64,
    pub control_bytes: u64,
    pub bare_values: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside strings, not right after a colon.
    Structure,
    /// Outside strings, after a colon, before the value's first byte.
    AfterColon,
    /// Collecting a bare value.
    Bare,
    InString,
    /// Inside a string, after a backslash.
    Escape,
    /// Inside a string, after `\x`: `n` hex digits still to come.
    Hex(u8),
}

pub struct RepairReader<R> {
    inner: R,
    state: State,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    bare: Vec<u8>,
    eof: bool,
    pub stats: RepairStats,
}

impl<R: Read> RepairReader<R> {
    pub fn new(inner: R) -> Self {
        RepairReader {
            inner,
            state: State::Structure,
            // As large as the reader's buffer (`Input::open_json`), which
            // then hands its reads straight through instead of copying.
            inbuf: vec![0; 256 * 1024],
            out: Vec::with_capacity(280 * 1024),
            out_pos: 0,
            bare: Vec::new(),
            eof: false,
            stats: RepairStats::default(),
        }
    }

    fn flush_bare(&mut self) {
        let token = std::mem::take(&mut self.bare);
        let end = token
            .iter()
            // JSON's white space only: a form feed stays in the value.
            .rposition(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .map_or(0, |p| p + 1);
        let (value, trailing) = token.split_at(end);
        if matches!(value, b"true" | b"false" | b"null") {
            self.out.extend_from_slice(value);
        } else {
            self.stats.bare_values += 1;
            self.out.push(b'"');
            for &b in value {
                match b {
                    b'"' => self.out.extend_from_slice(b"\\\""),
                    b'\\' => self.out.extend_from_slice(b"\\\\"),
                    0..=0x1F => self.out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
                    _ => self.out.push(b),
                }
            }
            self.out.push(b'"');
        }
        self.out.extend_from_slice(trailing);
    }

    fn process(&mut self, n: usize) {
        let mut i = 0;
        while i < n {
            let b = self.inbuf[i];
            match self.state {
                State::Structure => {
                    // Copy the run up to the next byte that changes state.
                    let start = i;
                    while i < n && !matches!(self.inbuf[i], b'"' | b':') {
                        i += 1;
                    }
                    self.out.extend_from_slice(&self.inbuf[start..i]);
                    if i < n {
                        self.out.push(self.inbuf[i]);
                        self.state = if self.inbuf[i] == b'"' {
                            State::InString
                        } else {
                            State::AfterColon
                        };
                        i += 1;
                    }
                    continue;
                }
                State::InString => {
                    let start = i;
                    while i < n && !STRING_SPECIAL[self.inbuf[i] as usize] {
                        i += 1;
                    }
                    self.out.extend_from_slice(&self.inbuf[start..i]);
                    if i == n {
                        continue;
                    }
                    match self.inbuf[i] {
                        b'"' => {
                            self.out.push(b'"');
                            self.state = State::Structure;
                        }
                        b'\\' => self.state = State::Escape,
                        c => {
                            self.stats.control_bytes += 1;
                            self.out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
                        }
                    }
                    i += 1;
                    continue;
                }
                State::AfterColon => {
                    if b.is_ascii_whitespace() {
                        self.out.push(b);
                    } else if matches!(
                        b,
                        b'"' | b'{' | b'[' | b'-' | b'0'..=b'9' | b',' | b'}' | b']'
                    ) {
                        self.out.push(b);
                        self.state = if b == b'"' {
                            State::InString
                        } else {
                            State::Structure
                        };
                    } else {
                        self.bare.push(b);
                        self.state = State::Bare;
                    }
                }
                State::Bare => {
                    if matches!(b, b',' | b'}' | b']' | b'\n' | b'\r') {
                        self.flush_bare();
                        self.out.push(b);
                        self.state = State::Structure;
                    } else {
                        self.bare.push(b);
                    }
                }
                State::Escape => {
                    if b == b'x' {
                        self.stats.hex_escapes += 1;
                        self.out.extend_from_slice(b"\\u00");
                        self.state = State::Hex(2);
                    } else {
                        self.out.push(b'\\');
                        self.out.push(b);
                        self.state = State::InString;
                    }
                }
                State::Hex(left) => {
                    // Non-hex digits are passed on: the parser then reports the
                    // bad escape at its line.
                    self.out.push(b);
                    self.state = if left > 1 {
                        State::Hex(left - 1)
                    } else {
                        State::InString
                    };
                    if b == b'"' {
                        self.state = State::Structure;
                    }
                }
            }
            i += 1;
        }
    }
}

/// Bytes that end a plain run inside a string: the closing quote, a backslash,
/// and control bytes other than line breaks (which are left for the parser to
/// reject at their own line).
const STRING_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = c != b'\n' as usize && c != b'\r' as usize;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

impl<R: Read> Read for RepairReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos >= self.out.len() {
            if self.eof {
                return Ok(0);
            }
            self.out.clear();
            self.out_pos = 0;
            let n = loop {
                match self.inner.read(&mut self.inbuf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
                if self.state == State::Bare {
                    self.flush_bare();
                    self.state = State::Structure;
                }
            } else {
                self.process(n);
            }
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repair(s: &str) -> (String, RepairStats) {
        // A one-byte inner reader exercises every state across chunk boundaries.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let mut r = RepairReader::new(Trickle(s.as_bytes()));
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        (out, r.stats)
    }

    #[test]
    fn hex_escapes_become_unicode_escapes() {
        let (out, st) = repair(r#"{"text": "a\x01b\\x02"}"#);
        assert_eq!(out, r#"{"text": "a\u0001b\\x02"}"#);
        assert_eq!(st.hex_escapes, 1);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["text"], "a\u{1}b\\x02");
    }

    #[test]
    fn bare_values_are_quoted() {
        let (out, st) =
            repair("{\"document_id\": stickers/x (1).webp,\n \"n\": 5, \"t\": true, \"z\": null }");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["document_id"], "stickers/x (1).webp");
        assert_eq!(v["n"], 5);
        assert_eq!(v["t"], true);
        assert_eq!(st.bare_values, 1);
        let (out, _) = repair("{\"a\": files/x}");
        assert_eq!(out, "{\"a\": \"files/x\"}");
    }

    #[test]
    fn raw_control_bytes_in_strings_are_escaped_but_lines_kept() {
        let (out, st) = repair("{\"a\": \"x\ty\"}\n");
        assert_eq!(out, "{\"a\": \"x\\u0009y\"}\n");
        assert_eq!(st.control_bytes, 1);
    }

    #[test]
    fn valid_json_passes_unchanged() {
        let s = r#"{"a": [1, -2.5e3, "q\"u\\o\u00e9", {"b": false}], "c": null}"#;
        assert_eq!(repair(s), (s.to_string(), RepairStats::default()));
    }
}
