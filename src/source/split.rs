//! A fast splitter for a Telegram export that has already been checked.
//!
//! serde_json's reader-based parser handles one byte at a time; on the second
//! pass over a file (after [`super::check`] has checked every byte of it) the
//! importer only needs each message's text and its chat's header. This
//! scanner finds them by tracking strings, nesting and object keys, copies
//! each message's bytes out, and hands them to the same [`Sink`] as the
//! serde-based parser ([`super::telegram::parse`], which the tests hold both
//! to). It trusts its input: run it only on a file the check accepted, read
//! through the repair filter.

use super::repair::RepairReader;
use super::telegram::{ChatHeader, Owner, Sink};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// The top-level object: a chat itself, or the account wrapper.
    Root,
    /// `chats` or `left_chats`: an object holding `list`.
    ChatLists { left: bool },
    /// The `list` array of chats.
    ChatArray { left: bool },
    /// One chat object inside a list.
    Chat,
    /// A chat's `messages` array.
    Messages,
    /// Anything else: skipped.
    Skip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Key,
    Colon,
    Value,
    CommaOrEnd,
}

struct Frame {
    role: Role,
    is_object: bool,
    expect: Expect,
    key: String,
    header: ChatHeader,
    /// Messages seen before the chat's id (held until the header is complete).
    held: Vec<String>,
    /// A `messages` array was seen: the chat starts, if not before, when
    /// its object closes (an empty list included, as serde's parser does).
    has_messages: bool,
    started: bool,
}

impl Frame {
    fn new(role: Role, is_object: bool, left: bool) -> Frame {
        Frame {
            role,
            is_object,
            expect: if is_object {
                Expect::Key
            } else {
                Expect::Value
            },
            key: String::new(),
            header: ChatHeader {
                left,
                ..Default::default()
            },
            held: Vec::new(),
            has_messages: false,
            started: false,
        }
    }
}

/// What the scanner is copying, and where it goes when complete.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Capture {
    Message,
    HeaderField,
    Owner,
}

pub fn split<R: Read, S: Sink + ?Sized>(reader: R, sink: &mut S, path: &Path) -> Result<()> {
    let mut input = RepairReader::new(reader);
    let mut buf = vec![0u8; 256 * 1024];
    let mut stack: Vec<Frame> = Vec::new();
    // Capture state: bytes of the value being copied and the nesting depth at
    // which it started.
    let mut capture: Option<(Capture, usize)> = None;
    let mut cap_buf: Vec<u8> = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    // A key being read (outside captures).
    let mut reading_key = false;
    let mut key_buf: Vec<u8> = Vec::new();
    // Inside a scalar value that is being captured (numbers, literals).
    let mut scalar = false;
    let bad = |m: &str| Error::input(path, format!("export changed while it was read: {m}"));

    loop {
        let n = input.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        let mut i = 0;
        while i < n {
            let b = buf[i];
            if in_string {
                // Fast path: copy the run up to the next quote or backslash.
                let start = i;
                if !escaped {
                    while i < n && buf[i] != b'"' && buf[i] != b'\\' {
                        i += 1;
                    }
                    if capture.is_some() {
                        cap_buf.extend_from_slice(&buf[start..i]);
                    } else if reading_key {
                        key_buf.extend_from_slice(&buf[start..i]);
                    }
                    if i == n {
                        continue;
                    }
                }
                let c = buf[i];
                if capture.is_some() {
                    cap_buf.push(c);
                } else if reading_key {
                    key_buf.push(c);
                }
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    in_string = false;
                    if reading_key {
                        reading_key = false;
                        key_buf.pop();
                        let top = stack
                            .last_mut()
                            .ok_or_else(|| bad("key outside an object"))?;
                        top.key = serde_json::from_slice::<String>(
                            &[b"\"".as_slice(), &key_buf, b"\""].concat(),
                        )
                        .map_err(|_| bad("unreadable key"))?;
                        top.expect = Expect::Colon;
                    } else if let Some((kind, depth)) = capture
                        && depth == stack.len()
                    {
                        finish_capture(kind, &mut cap_buf, &mut stack, sink, &bad)?;
                        capture = None;
                    }
                }
                i += 1;
                continue;
            }
            if scalar {
                if matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace() {
                    scalar = false;
                    if let Some((kind, depth)) = capture
                        && depth == stack.len()
                    {
                        finish_capture(kind, &mut cap_buf, &mut stack, sink, &bad)?;
                        capture = None;
                    }
                    // Fall through: the delimiter is structure.
                } else {
                    if capture.is_some() {
                        cap_buf.push(b);
                    }
                    i += 1;
                    continue;
                }
            }
            // Inside a captured container: copy and track nesting only (white
            // space, punctuation and scalars are copied a run at a time).
            if let Some((kind, depth)) = capture
                && stack.len() > depth
            {
                let start = i;
                i = super::run_end(&buf[..n], i, |b| {
                    matches!(b, b'"' | b'{' | b'[' | b'}' | b']')
                });
                cap_buf.extend_from_slice(&buf[start..i]);
                if i == n {
                    continue;
                }
                let b = buf[i];
                cap_buf.push(b);
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => stack.push(Frame::new(Role::Skip, b == b'{', false)),
                    b'}' | b']' => {
                        stack.pop();
                        if stack.len() == depth {
                            finish_capture(kind, &mut cap_buf, &mut stack, sink, &bad)?;
                            capture = None;
                        }
                    }
                    _ => {}
                }
                i += 1;
                continue;
            }
            if b.is_ascii_whitespace() {
                if capture.is_some() {
                    cap_buf.push(b);
                }
                i += 1;
                continue;
            }
            match b {
                b':' => {
                    if let Some(top) = stack.last_mut() {
                        top.expect = Expect::Value;
                    }
                }
                b',' => {
                    if let Some(top) = stack.last_mut() {
                        top.expect = if top.is_object {
                            Expect::Key
                        } else {
                            Expect::Value
                        };
                    }
                }
                b'}' | b']' => {
                    let frame = stack.pop().ok_or_else(|| bad("unbalanced brackets"))?;
                    close_frame(frame, sink)?;
                    if let Some(top) = stack.last_mut() {
                        top.expect = Expect::CommaOrEnd;
                    }
                }
                _ => {
                    let at_key = stack
                        .last()
                        .is_some_and(|t| t.is_object && t.expect == Expect::Key);
                    if at_key && b == b'"' {
                        reading_key = true;
                        key_buf.clear();
                        in_string = true;
                        i += 1;
                        continue;
                    }
                    // The start of a value.
                    let (child, what) = classify(stack.last(), b);
                    if let Some(top) = stack.last_mut() {
                        top.expect = Expect::CommaOrEnd;
                    }
                    if let Some(kind) = what {
                        capture = Some((kind, stack.len()));
                        cap_buf.clear();
                        cap_buf.push(b);
                    }
                    match b {
                        b'{' | b'[' => {
                            let left = matches!(
                                child,
                                Role::ChatLists { left: true } | Role::ChatArray { left: true }
                            ) || stack
                                .last()
                                .is_some_and(|t| t.role == Role::ChatArray { left: true });
                            let role = if capture.is_some() { Role::Skip } else { child };
                            stack.push(Frame::new(role, b == b'{', left));
                            if role == Role::Messages {
                                start_chat(&mut stack, sink, &bad)?;
                            }
                        }
                        b'"' => in_string = true,
                        _ => scalar = true,
                    }
                }
            }
            i += 1;
        }
    }
    if scalar && let Some((kind, _)) = capture {
        finish_capture(kind, &mut cap_buf, &mut stack, sink, &bad)?;
    }
    Ok(())
}

/// The role of a value starting with byte `b` inside `parent`, and whether it
/// is captured.
fn classify(parent: Option<&Frame>, b: u8) -> (Role, Option<Capture>) {
    let Some(p) = parent else {
        return (Role::Root, None);
    };
    let container = b == b'{' || b == b'[';
    match (p.role, p.key.as_str()) {
        (Role::Root | Role::Chat, "messages") if b == b'[' => (Role::Messages, None),
        (Role::Root | Role::Chat, "name" | "type") if !container => {
            (Role::Skip, Some(Capture::HeaderField))
        }
        // An id may be anything: what is not an integer is kept as text.
        (Role::Root | Role::Chat, "id") => (Role::Skip, Some(Capture::HeaderField)),
        (Role::Root, "personal_information") if b == b'{' => (Role::Skip, Some(Capture::Owner)),
        (Role::Root, "chats") if b == b'{' => (Role::ChatLists { left: false }, None),
        (Role::Root, "left_chats") if b == b'{' => (Role::ChatLists { left: true }, None),
        (Role::ChatLists { left }, "list") if b == b'[' => (Role::ChatArray { left }, None),
        (Role::ChatArray { .. }, _) if b == b'{' => (Role::Chat, None),
        (Role::Messages, _) => (Role::Skip, Some(Capture::Message)),
        _ => (Role::Skip, None),
    }
}

fn start_chat<S: Sink + ?Sized>(
    stack: &mut [Frame],
    sink: &mut S,
    bad: &dyn Fn(&str) -> Error,
) -> Result<()> {
    let n = stack.len();
    if n < 2 {
        return Err(bad("messages outside a chat"));
    }
    let chat = &mut stack[n - 2];
    chat.has_messages = true;
    if chat.header.has_id() && !chat.started {
        chat.started = true;
        sink.chat_start(&chat.header)?;
    }
    Ok(())
}

fn finish_capture<S: Sink + ?Sized>(
    kind: Capture,
    bytes: &mut Vec<u8>,
    stack: &mut [Frame],
    sink: &mut S,
    bad: &dyn Fn(&str) -> Error,
) -> Result<()> {
    // The buffer is validated in place and cleared afterwards, so that its
    // allocation serves the next message.
    let text = simdutf8::basic::from_utf8(bytes).map_err(|_| bad("text is not UTF-8"))?;
    match kind {
        Capture::Message => {
            let n = stack.len();
            // stack[n-1] is the messages array, stack[n-2] its chat.
            let (chat_frames, _) = stack.split_at_mut(n - 1);
            let chat = chat_frames
                .last_mut()
                .ok_or_else(|| bad("message outside a chat"))?;
            if chat.started {
                sink.message(&chat.header, text)?;
            } else {
                chat.held.push(text.to_string());
            }
        }
        Capture::HeaderField => {
            let chat = stack
                .last_mut()
                .ok_or_else(|| bad("header outside a chat"))?;
            let key = std::mem::take(&mut chat.key);
            chat.header.set_field(&key, text);
            chat.key = key;
        }
        Capture::Owner => sink.owner(Owner::from_json(text))?,
    }
    bytes.clear();
    Ok(())
}

/// A chat closes: messages held for a late header, or for none, go out now.
fn close_frame<S: Sink + ?Sized>(frame: Frame, sink: &mut S) -> Result<()> {
    if frame.has_messages && !frame.started {
        sink.chat_start(&frame.header)?;
        for raw in &frame.held {
            sink.message(&frame.header, raw)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::telegram::parse;
    use serde_json::Value;

    #[derive(Default, Debug, PartialEq)]
    struct Events(Vec<String>);

    impl Sink for Events {
        fn owner(&mut self, o: Owner) -> Result<()> {
            self.0.push(format!("owner {o:?}"));
            Ok(())
        }
        fn chat_start(&mut self, c: &ChatHeader) -> Result<()> {
            self.0.push(format!("chat {c:?}"));
            Ok(())
        }
        fn message(&mut self, c: &ChatHeader, raw: &str) -> Result<()> {
            // Compare values, not layout: the splitter copies bytes verbatim.
            let v: Value = serde_json::from_str(raw).unwrap();
            self.0.push(format!("msg {:?} {v}", c.id));
            Ok(())
        }
    }

    fn both(json: &[u8]) -> (Events, Events) {
        let mut a = Events::default();
        let mut b = Events::default();
        parse(json, &mut a, Path::new("x")).unwrap();
        split(json, &mut b, Path::new("x")).unwrap();
        (a, b)
    }

    #[test]
    fn splits_like_the_validating_parser() {
        let cases: &[&str] = &[
            r#"{"name":"A","type":"personal_chat","id":5,"messages":[{"id":1,"text":"a \" } ] {"},{"id":2,"x":[1,{"y":"]"}]}]}"#,
            r#"{"messages":[{"id":1}],"id":8,"type":"private_group","name":null}"#,
            r#"{ "about" : "x", "personal_information" : {"user_id": 9, "phone_number": "+1 555"},
               "contacts": {"list": [{"messages": [1]}]},
               "chats": {"about": "y", "list": [{"id": 1, "type": "private_group", "messages": [{"id": 1}, 7, "s"]},
                                               {"id": 2, "messages": []}]},
               "left_chats": {"list": [{"name": "L", "id": 3, "messages": [{"id": 7, "n": -1.5e3, "t": true}]}]}}"#,
            "{\"id\": 1, \"messages\": [{\"id\": 1, \"text\": \"bell\\x07\", \"d\": stickers/a.webp}]}",
        ];
        for c in cases {
            let (a, b) = both(c.as_bytes());
            assert_eq!(a, b, "{c}");
            assert!(!a.0.is_empty());
        }
    }

    #[test]
    fn splits_every_fixture_and_sample_like_the_parser() {
        let files = crate::source::test_exports();
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            let (a, b) = both(&bytes);
            assert_eq!(a, b, "{}", f.display());
        }
    }

    proptest::proptest! {
        /// The splitter trusts validated input, but a file that changed between
        /// the passes must give an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut e = Events::default();
            let _ = split(bytes.as_slice(), &mut e, Path::new("x"));
        }

        #[test]
        fn json_shaped_noise_never_panics(s in "[{}\\[\\]:,\"a-z0-9 \\\\]{0,120}") {
            let mut e = Events::default();
            let _ = split(s.as_bytes(), &mut e, Path::new("x"));
        }
    }
}
