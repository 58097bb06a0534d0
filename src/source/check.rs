//! The checking pass over a Telegram Desktop export: a strict, streaming
//! validator that accepts exactly what [`super::telegram::parse`] accepts
//! (reading through [`super::repair::RepairReader`]), without building values.
//!
//! It reads the raw bytes once and checks, in one state machine:
//! - JSON's grammar (RFC 8259): objects, arrays, strings and their escapes,
//!   numbers, literals, nothing but whitespace after the top value;
//! - the repairs the importer makes, counted as it does: `\xHH` escapes, raw
//!   control bytes in strings (not line breaks), unquoted values after a
//!   colon;
//! - UTF-8 everywhere (the serde-based parser skips it inside strings it
//!   ignores, which let a bad message fail the import half-way);
//! - the export's shape: the top value is an object; `chats`/`left_chats`
//!   are objects whose `list` is an array of chat objects; `messages` is an
//!   array; the top object has `messages` or `chats`. (A chat's `id` may be
//!   anything: one that is missing or not an integer is derived.)
//!
//! Errors name the line and column. serde_json reads a reader a byte at a
//! time through a trait call; this runs over 256 KiB blocks, at several times
//! the speed, which matters because the import cannot commit before it ends.

use super::repair::RepairStats;
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// What a valid export holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Elements of every `messages` array.
    pub items: u64,
    pub repairs: RepairStats,
}

/// serde_json's nesting limit.
const MAX_DEPTH: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The top object (a single chat, or the account).
    Root,
    /// A chat in a chat list (`left`: of `left_chats`).
    Chat { left: bool },
    /// The value of `chats` or `left_chats`.
    ChatLists { left: bool },
    /// Its `list`.
    ChatArray { left: bool },
    /// A `messages` array.
    Messages,
    /// No rule.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// After `{`: a key or `}`.
    FirstKey,
    /// After `,` in an object.
    Key,
    Colon,
    /// After `[`: a value or `]`.
    FirstValue,
    Value,
    CommaOrEnd,
}

/// What a key means for the value after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Messages,
    Chats { left: bool },
    List,
    Other,
}

struct Frame {
    is_object: bool,
    role: Role,
    expect: Expect,
    key: Key,
    /// A chat object's `messages` key was read (a second one is refused:
    /// which list the export meant cannot be told).
    had_messages: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lex {
    /// Between tokens.
    Structure,
    /// After a colon: whitespace, then the value (or a bare one).
    AfterColon,
    /// Inside an unquoted value after a colon; its first bytes so far.
    Bare,
    InString,
    Escape,
    /// After `\u` (4 digits) or `\x` (2 digits): digits still to come.
    Hex(u8),
    /// Inside a number, in one of its grammar states.
    Number(Num),
    /// Inside `true`, `false` or `null`: the literal and how far.
    Literal(&'static [u8], u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Num {
    /// After `-`.
    Minus,
    /// After a leading `0`.
    Zero,
    Int,
    /// After `.`.
    Dot,
    Frac,
    /// After `e`/`E`.
    Exp,
    /// After the exponent's sign.
    ExpSign,
    ExpInt,
}

impl Num {
    fn complete(self) -> bool {
        matches!(self, Num::Zero | Num::Int | Num::Frac | Num::ExpInt)
    }
}

/// Bytes that stop a run inside a string.
const STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

fn json_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A key as the parser reads it (`raw` with its quotes): the bytes between
/// them unless it has escapes.
fn key_name(raw: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    let inner = raw.get(1..raw.len().saturating_sub(1))?;
    if !inner.contains(&b'\\') {
        return std::str::from_utf8(inner)
            .ok()
            .map(std::borrow::Cow::Borrowed);
    }
    serde_json::from_slice::<String>(raw)
        .ok()
        .map(std::borrow::Cow::Owned)
}

/// Checks the export JSON `reader` yields; `path` names it in errors.
pub fn check<R: Read>(mut reader: R, path: &Path) -> Result<Checked> {
    let mut c = Checker {
        path,
        out: Checked::default(),
        stack: Vec::new(),
        lex: Lex::Structure,
        done: false,
        shape: false,
        bare: Vec::new(),
        capturing: false,
        cap: Vec::new(),
        utf8_carry: Vec::new(),
        lines: 1,
        column_base: 0,
    };
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = loop {
            match reader.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::input(path, format!("read failed: {e}"))),
            }
        };
        if n == 0 {
            break;
        }
        c.chunk(&buf[..n])?;
    }
    c.finish()
}

struct Checker<'p> {
    path: &'p Path,
    out: Checked,
    stack: Vec<Frame>,
    lex: Lex,
    /// The top value is complete.
    done: bool,
    /// The top object had `messages` or `chats`/`left_chats`.
    shape: bool,
    /// An unquoted value after a colon, so far.
    bare: Vec<u8>,
    /// Copying a key of an object whose keys matter, or an `id` value (to
    /// read it as the parser does), into `cap`.
    capturing: bool,
    cap: Vec<u8>,
    utf8_carry: Vec<u8>,
    /// Line of the current chunk's first byte, and the bytes between the
    /// last line break before it and it.
    lines: u64,
    column_base: u64,
}

impl Checker<'_> {
    fn chunk(&mut self, data: &[u8]) -> Result<()> {
        self.utf8(data)?;
        let mut i = 0;
        let n = data.len();
        while i < n {
            match self.lex {
                Lex::InString => {
                    let start = i;
                    while i < n && !STRING_STOP[data[i] as usize] {
                        i += 1;
                    }
                    if self.capturing {
                        let cap = &mut self.cap;
                        cap.extend_from_slice(&data[start..i]);
                    }
                    if i == n {
                        break;
                    }
                    let b = data[i];
                    match b {
                        b'"' => {
                            self.lex = Lex::Structure;
                            self.push_capture(b);
                            self.value_done(data, i)?;
                        }
                        b'\\' => {
                            self.lex = Lex::Escape;
                            self.push_capture(b);
                        }
                        b'\n' | b'\r' => {
                            return Err(self.err(data, i, "control character in a string"));
                        }
                        _ => {
                            // The importer writes it as \u00XX.
                            self.out.repairs.control_bytes += 1;
                            if self.capturing {
                                let cap = &mut self.cap;
                                cap.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                            }
                        }
                    }
                    i += 1;
                }
                Lex::Escape => {
                    let b = data[i];
                    self.lex = match b {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Lex::InString,
                        b'u' => Lex::Hex(4),
                        b'x' => {
                            self.out.repairs.hex_escapes += 1;
                            if self.capturing {
                                let cap = &mut self.cap;
                                cap.extend_from_slice(b"u00");
                            }
                            i += 1;
                            self.lex = Lex::Hex(2);
                            continue;
                        }
                        _ => return Err(self.err(data, i, "invalid escape")),
                    };
                    self.push_capture(b);
                    i += 1;
                }
                Lex::Hex(left) => {
                    let b = data[i];
                    if !b.is_ascii_hexdigit() {
                        return Err(self.err(data, i, "invalid escape"));
                    }
                    self.push_capture(b);
                    self.lex = if left > 1 {
                        Lex::Hex(left - 1)
                    } else {
                        Lex::InString
                    };
                    i += 1;
                }
                Lex::Number(state) => {
                    let b = data[i];
                    let next = match (state, b) {
                        (Num::Minus, b'0') => Some(Num::Zero),
                        (Num::Minus, b'1'..=b'9') => Some(Num::Int),
                        (Num::Int, b'0'..=b'9') => Some(Num::Int),
                        (Num::Zero | Num::Int, b'.') => Some(Num::Dot),
                        (Num::Dot | Num::Frac, b'0'..=b'9') => Some(Num::Frac),
                        (Num::Zero | Num::Int | Num::Frac, b'e' | b'E') => Some(Num::Exp),
                        (Num::Exp, b'+' | b'-') => Some(Num::ExpSign),
                        (Num::Exp | Num::ExpSign | Num::ExpInt, b'0'..=b'9') => Some(Num::ExpInt),
                        _ => None,
                    };
                    match next {
                        Some(s) => {
                            self.push_capture(b);
                            self.lex = Lex::Number(s);
                            i += 1;
                        }
                        None if state.complete() => {
                            // The number ends here; the byte is structure.
                            self.lex = Lex::Structure;
                            self.value_done(data, i)?;
                        }
                        None => return Err(self.err(data, i, "invalid number")),
                    }
                }
                Lex::Literal(word, at) => {
                    let b = data[i];
                    if b != word[at as usize] {
                        return Err(self.err(data, i, "expected a value"));
                    }
                    self.push_capture(b);
                    if at as usize + 1 == word.len() {
                        self.lex = Lex::Structure;
                        self.value_done(data, i)?;
                    } else {
                        self.lex = Lex::Literal(word, at + 1);
                    }
                    i += 1;
                }
                Lex::Bare => {
                    let b = data[i];
                    if matches!(b, b',' | b'}' | b']' | b'\n' | b'\r') {
                        self.end_bare();
                        self.lex = Lex::Structure;
                        self.value_done(data, i)?;
                        // The delimiter is structure: not consumed here.
                    } else {
                        self.bare.push(b);
                        i += 1;
                    }
                }
                Lex::AfterColon => {
                    let b = data[i];
                    if json_space(b) {
                        i += 1;
                    } else if matches!(
                        b,
                        b'"' | b'{' | b'[' | b'-' | b'0'..=b'9' | b',' | b'}' | b']'
                    ) || b.is_ascii_whitespace()
                    {
                        // Structure from here (a form feed is an error there).
                        self.lex = Lex::Structure;
                    } else {
                        self.start_value(data, i, true)?;
                        self.bare.clear();
                        self.bare.push(b);
                        self.lex = Lex::Bare;
                        i += 1;
                    }
                }
                Lex::Structure => {
                    let b = data[i];
                    if json_space(b) {
                        i += 1;
                        continue;
                    }
                    self.structure(data, i, b)?;
                    i += 1;
                }
            }
        }
        self.advance_position(data);
        Ok(())
    }

    fn push_capture(&mut self, b: u8) {
        if self.capturing {
            let cap = &mut self.cap;
            cap.push(b);
        }
    }

    /// A byte between tokens.
    fn structure(&mut self, data: &[u8], i: usize, b: u8) -> Result<()> {
        if self.done {
            return Err(self.err(data, i, "trailing characters"));
        }
        let Some(top) = self.stack.last() else {
            // The top value.
            self.start_value(data, i, false)?;
            return self.open(data, i, b);
        };
        let (expect, is_object, role) = (top.expect, top.is_object, top.role);
        match (expect, b) {
            (Expect::FirstKey | Expect::Key, b'"') => {
                self.set_expect(Expect::Colon);
                // Keys matter in the top object, chats and chat lists only
                // (not in messages).
                self.capturing = matches!(
                    role,
                    Role::Root | Role::Chat { .. } | Role::ChatLists { .. }
                );
                self.cap.clear();
                self.cap.push(b'"');
                self.lex = Lex::InString;
                Ok(())
            }
            (Expect::FirstKey, b'}') | (Expect::FirstValue, b']') => self.close(),
            (Expect::Colon, b':') => {
                self.set_expect(Expect::Value);
                self.lex = Lex::AfterColon;
                Ok(())
            }
            (Expect::FirstValue | Expect::Value, _) => {
                self.start_value(data, i, false)?;
                self.open(data, i, b)
            }
            (Expect::CommaOrEnd, b',') => {
                self.set_expect(if is_object {
                    Expect::Key
                } else {
                    Expect::Value
                });
                Ok(())
            }
            (Expect::CommaOrEnd, b'}') if is_object => self.close(),
            (Expect::CommaOrEnd, b']') if !is_object => self.close(),
            (Expect::FirstKey | Expect::Key, _) => Err(self.err(data, i, "expected a key")),
            (Expect::Colon, _) => Err(self.err(data, i, "expected ':'")),
            (Expect::CommaOrEnd, _) => Err(self.err(
                data,
                i,
                if is_object {
                    "expected ',' or '}'"
                } else {
                    "expected ',' or ']'"
                },
            )),
        }
    }

    fn set_expect(&mut self, e: Expect) {
        if let Some(top) = self.stack.last_mut() {
            top.expect = e;
        }
    }

    /// The first byte of a value: reads it (strings, numbers, literals,
    /// containers).
    fn open(&mut self, data: &[u8], i: usize, b: u8) -> Result<()> {
        match b {
            b'"' => {
                self.push_capture(b);
                self.lex = Lex::InString;
            }
            b'{' | b'[' => {
                if self.stack.len() >= MAX_DEPTH {
                    return Err(self.err(data, i, "recursion limit exceeded"));
                }
                let role = self.child_role();
                self.capturing = false;
                self.stack.push(Frame {
                    is_object: b == b'{',
                    role,
                    expect: if b == b'{' {
                        Expect::FirstKey
                    } else {
                        Expect::FirstValue
                    },
                    key: Key::Other,
                    had_messages: false,
                });
            }
            b'-' => {
                self.push_capture(b);
                self.lex = Lex::Number(Num::Minus);
            }
            b'0' => {
                self.push_capture(b);
                self.lex = Lex::Number(Num::Zero);
            }
            b'1'..=b'9' => {
                self.push_capture(b);
                self.lex = Lex::Number(Num::Int);
            }
            b't' | b'f' | b'n' => {
                self.push_capture(b);
                let word: &'static [u8] = match b {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                self.lex = Lex::Literal(word, 1);
            }
            _ => return Err(self.err(data, i, "expected a value")),
        }
        Ok(())
    }

    /// The role a container value opened here takes.
    fn child_role(&self) -> Role {
        let Some(top) = self.stack.last() else {
            return Role::Root;
        };
        match (top.role, top.key, top.is_object) {
            (Role::Root | Role::Chat { .. }, Key::Messages, true) => Role::Messages,
            (Role::Root, Key::Chats { left }, true) => Role::ChatLists { left },
            (Role::ChatLists { left }, Key::List, true) => Role::ChatArray { left },
            (Role::ChatArray { left }, _, false) => Role::Chat { left },
            _ => Role::Other,
        }
    }

    /// A value starts (its first byte is at `i`; `bare`: an unquoted value
    /// after a colon, which reads as a string or literal): checks the shape
    /// rules and counts messages.
    fn start_value(&mut self, data: &[u8], i: usize, bare: bool) -> Result<()> {
        let b = data[i];
        let container = if bare { None } else { Some(b) };
        let Some(top) = self.stack.last_mut() else {
            if container != Some(b'{') {
                return Err(self.err(data, i, "expected a Telegram export object"));
            }
            return Ok(());
        };
        let want = match (top.role, top.key, top.is_object) {
            (Role::Root | Role::Chat { .. }, Key::Messages, true) => {
                if top.role == Role::Root {
                    self.shape = true;
                }
                Some((b'[', "expected a list of messages"))
            }
            (Role::Root, Key::Chats { .. }, true) => {
                self.shape = true;
                Some((b'{', "expected an object with a chat list"))
            }
            (Role::ChatLists { .. }, Key::List, true) => Some((b'[', "expected a list of chats")),
            (Role::ChatArray { .. }, _, false) => Some((b'{', "expected a Telegram export object")),
            (Role::Messages, _, false) => {
                self.out.items += 1;
                None
            }
            _ => None,
        };
        if let Some((open, what)) = want
            && container != Some(open)
        {
            return Err(self.err(data, i, what));
        }
        Ok(())
    }

    /// A scalar value ended (at or before `i`).
    fn value_done(&mut self, data: &[u8], i: usize) -> Result<()> {
        let captured = std::mem::take(&mut self.capturing);
        let Some(top) = self.stack.last() else {
            self.done = true;
            return Ok(());
        };
        let (expect, role) = (top.expect, top.role);
        if expect == Expect::Colon {
            // A key.
            let key = if captured {
                match key_name(&self.cap) {
                    Some(name) => match name.as_ref() {
                        "messages" => Key::Messages,
                        "chats" if role == Role::Root => Key::Chats { left: false },
                        "left_chats" if role == Role::Root => Key::Chats { left: true },
                        "list" => Key::List,
                        _ => Key::Other,
                    },
                    None => return Err(self.err(data, i, "unreadable key")),
                }
            } else {
                Key::Other
            };
            let chat = matches!(role, Role::Root | Role::Chat { .. });
            if let Some(top) = self.stack.last_mut() {
                if chat && key == Key::Messages {
                    if top.had_messages {
                        return Err(self.err(data, i, "a second 'messages' list in one chat"));
                    }
                    top.had_messages = true;
                }
                top.key = key;
            }
            return Ok(());
        }
        if let Some(top) = self.stack.last_mut() {
            top.expect = Expect::CommaOrEnd;
        }
        Ok(())
    }

    /// The bare value in `bare` ended: a literal as it is, anything else
    /// quoted by the importer.
    fn end_bare(&mut self) {
        let end = self
            .bare
            .iter()
            .rposition(|&b| !json_space(b))
            .map_or(0, |p| p + 1);
        let value = &self.bare[..end];
        let literal = matches!(value, b"true" | b"false" | b"null");
        if !literal {
            self.out.repairs.bare_values += 1;
        }
        if self.capturing {
            let cap = &mut self.cap;
            if literal {
                cap.extend_from_slice(value);
            } else {
                // Quoted as the importer quotes it (an id written bare is
                // read as a string).
                cap.extend_from_slice(
                    serde_json::to_string(&String::from_utf8_lossy(value))
                        .unwrap_or_default()
                        .as_bytes(),
                );
            }
        }
    }

    /// `}` or `]`.
    fn close(&mut self) -> Result<()> {
        self.stack.pop();
        match self.stack.last_mut() {
            Some(top) => top.expect = Expect::CommaOrEnd,
            None => self.done = true,
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Checked> {
        match self.lex {
            Lex::Number(s) if s.complete() && self.stack.is_empty() => self.done = true,
            Lex::Bare => {
                self.end_bare();
            }
            _ => {}
        }
        if !self.utf8_carry.is_empty() {
            return Err(self.err(&[], 0, "invalid UTF-8"));
        }
        if !self.done {
            return Err(self.err(&[], 0, "EOF while parsing"));
        }
        if !self.shape {
            return Err(Error::input(
                self.path,
                "not a Telegram Desktop export: the top-level object has neither \
                 'messages' nor 'chats'",
            ));
        }
        Ok(self.out)
    }

    /// Checks that `data` continues valid UTF-8.
    fn utf8(&mut self, data: &[u8]) -> Result<()> {
        let mut rest = data;
        if !self.utf8_carry.is_empty() {
            let width = match self.utf8_carry[0] {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let take = (width - self.utf8_carry.len()).min(rest.len());
            self.utf8_carry.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.utf8_carry.len() < width {
                return Ok(());
            }
            if std::str::from_utf8(&self.utf8_carry).is_err() {
                return Err(self.err(data, 0, "invalid UTF-8"));
            }
            self.utf8_carry.clear();
        }
        // Vectorised: most of an export is text, and this runs over all of it.
        if let Err(e) = simdutf8::compat::from_utf8(rest) {
            let at = e.valid_up_to();
            if e.error_len().is_some() {
                let offset = data.len() - rest.len() + at;
                return Err(self.err(data, offset, "invalid UTF-8"));
            }
            self.utf8_carry.extend_from_slice(&rest[at..]);
        }
        Ok(())
    }

    /// Moves the position past a whole chunk.
    fn advance_position(&mut self, data: &[u8]) {
        match data.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                self.lines += data.iter().filter(|&&b| b == b'\n').count() as u64;
                self.column_base = (data.len() - last - 1) as u64;
            }
            None => self.column_base += data.len() as u64,
        }
    }

    /// An error at byte `i` of the chunk `data`.
    fn err(&self, data: &[u8], i: usize, what: &str) -> Error {
        let before = &data[..i.min(data.len())];
        let line = self.lines + before.iter().filter(|&&b| b == b'\n').count() as u64;
        let column = match before.iter().rposition(|&b| b == b'\n') {
            Some(p) => (i - p) as u64,
            None => self.column_base + i as u64 + 1,
        };
        Error::InputLine {
            path: self.path.to_path_buf(),
            line,
            message: format!("column {column}: invalid JSON: {what}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::telegram::{ChatHeader, Owner, Sink, parse};

    /// The serde-based parser's verdict: messages and repairs, or the line
    /// of its error.
    struct Count(u64);

    impl Sink for Count {
        fn owner(&mut self, _: Owner) -> Result<()> {
            Ok(())
        }
        fn chat_start(&mut self, _: &ChatHeader) -> Result<()> {
            Ok(())
        }
        fn message(&mut self, _: &ChatHeader, _: &str) -> Result<()> {
            self.0 += 1;
            Ok(())
        }
        fn counts_only(&self) -> bool {
            true
        }
        fn counted(&mut self) {
            self.0 += 1;
        }
    }

    fn serde_verdict(bytes: &[u8]) -> std::result::Result<Checked, Option<u64>> {
        let mut c = Count(0);
        match parse(bytes, &mut c, Path::new("x")) {
            Ok((_, repairs)) => Ok(Checked {
                items: c.0,
                repairs,
            }),
            Err(Error::InputLine { line, .. }) => Err(Some(line)),
            Err(_) => Err(None),
        }
    }

    /// Checks in blocks of `block` bytes (to cross every boundary).
    fn verdict(bytes: &[u8], block: usize) -> std::result::Result<Checked, Option<u64>> {
        struct Blocks<'a>(&'a [u8], usize);
        impl Read for Blocks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        match check(Blocks(bytes, block), Path::new("x")) {
            Ok(c) => Ok(c),
            Err(Error::InputLine { line, .. }) => Err(Some(line)),
            Err(_) => Err(None),
        }
    }

    fn same(bytes: &[u8]) {
        let want = serde_verdict(bytes);
        for block in [1, 3, 7, 1 << 20] {
            let got = verdict(bytes, block);
            assert_eq!(
                got.is_ok(),
                want.is_ok(),
                "{:?} (block {block}): {got:?} vs {want:?}",
                String::from_utf8_lossy(bytes)
            );
            if want.is_ok() {
                assert_eq!(got, want, "{:?}", String::from_utf8_lossy(bytes));
            }
        }
    }

    #[test]
    fn agrees_with_the_parser_on_cases() {
        let cases: &[&str] = &[
            r#"{"id":1,"messages":[{"id":1,"text":"a"},2,"x",null,[true,false]]}"#,
            r#"{"messages":[{"id":1}],"id":8,"type":"private_group","name":null}"#,
            r#"{"messages":[{"id":1}],"type":"private_group"}"#,
            r#"{"messages":[],"id":"12"}"#,
            r#"{"messages":[1],"id":"x"}"#,
            r#"{"messages":[1],"id":1.5}"#,
            r#"{"id":9,"messages":{}}"#,
            r#"{"chats":{"list":[{"id":1,"messages":[1,2]},{"id":2,"messages":[]}]},"left_chats":{"list":[{"id":3,"messages":[{}]}]}}"#,
            r#"{"chats":{"list":[5]}}"#,
            r#"{"chats":{"list":{}}}"#,
            r#"{"chats":[]}"#,
            r#"{"about":"nothing"}"#,
            r#"[1,2]"#,
            r#""x""#,
            "",
            "   ",
            r#"{"id":1,"messages":[]} trailing"#,
            r#"{"id":1,"messages":[]}   "#,
            r#"{"id":1,"messages":[{"a":1,}]}"#,
            r#"{"id":1,"messages":[1,]}"#,
            r#"{"id":1,"messages":[01]}"#,
            r#"{"id":1,"messages":[-0.5e+10, 1E3, -0, 0.0]}"#,
            r#"{"id":1,"messages":[1.]}"#,
            r#"{"id":1,"messages":[.5]}"#,
            r#"{"id":1,"messages":[tru]}"#,
            r#"{"id":1,"messages":["a\x41b", "\u00e9", "\q"]}"#,
            r#"{"id":1,"messages":["a\x41b", "\u00e9"]}"#,
            r#"{"id":1,"messages":["\x4"]}"#,
            "{\"id\":1,\"messages\":[\"bell\x07\"]}",
            "{\"id\":1,\"messages\":[\"line\nbreak\"]}",
            r#"{"id": 1, "messages": [{"d": stickers/a.webp, "e": true , "f": nul}]}"#,
            r#"{"id": 1, "messages": [{"d": stickers/a.webp}]}"#,
            r#"{"id": bare1, "messages": [1]}"#,
            r#"{"id":1 "messages":[]}"#,
            r#"{"id":1,"messages":[] "x"}"#,
            r#"{"id"1,"messages":[]}"#,
            r#"{1:2}"#,
            r#"{"id":1,"messages":[{"a":[1:2]}]}"#,
        ];
        for c in cases {
            same(c.as_bytes());
        }
    }

    #[test]
    fn errors_name_the_line() {
        let e = check(
            "{\"id\": 1,\n \"messages\": [\n {\"id\": 1,}\n]}".as_bytes(),
            Path::new("result.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("result.json:3: column 11"), "{e}");
        let e = check(
            &b"{\"id\": 1, \"messages\": [\"\xff\"]}"[..],
            Path::new("r.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn agrees_on_every_fixture_and_sample() {
        let files = crate::source::test_exports();
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            let want = serde_verdict(&bytes);
            assert!(want.is_ok(), "{}", f.display());
            assert_eq!(verdict(&bytes, 4096), want, "{}", f.display());
        }
    }

    proptest::proptest! {
        /// JSON-like noise: the same verdict as the parser, and the same
        /// count and repairs when valid.
        #[test]
        fn noise_gets_the_parsers_verdict(
            s in "\\{\"id\": ?(1|\"2\"|x),\"messages\":\\[([{}\\[\\]:,\" a-z0-9.eE+\\\\-]|\\\\x4|\\\\u00e9|\u{7}|\n|é|true|null){0,40}\\]\\}"
        ) {
            same(s.as_bytes());
        }

        /// A valid export with one byte changed, removed or doubled.
        #[test]
        fn mutations_get_the_parsers_verdict(at in 0usize..200, op in 0u8..3, byte in proptest::sample::select(b"{}[]:,\"\\ 0-eatx\n\x07".to_vec())) {
            let base = r#"{"about":"a","chats":{"about":"b","list":[{"name":"N","type":"personal_chat","id":5,"messages":[{"id":1,"text":"hi \"there\"","n":-1.5e3,"ok":true,"x":null,"e":[]},{"id":2,"d":stickers/a.webp}]}]},"left_chats":{"list":[{"id":7,"messages":[{"id":3}]}]}}"#;
            let mut b = base.as_bytes().to_vec();
            let at = at % b.len();
            match op {
                0 => b[at] = byte,
                1 => { b.remove(at); }
                _ => b.insert(at, byte),
            }
            same(&b);
        }
    }
}
