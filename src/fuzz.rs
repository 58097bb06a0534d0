//! One entry point per parser for the fuzz targets in `fuzz/` (and for the
//! unit test that replays their corpora). Each takes arbitrary bytes and
//! panics only when a property the parser promises is broken; an error is
//! an answer, not a finding.

use crate::source::telegram::{ChatContext, ChatHeader, Owner, Sink, Zone};
use crate::source::{check, split};
use std::path::Path;

/// A Telegram Desktop `result.json`: the checking pass and the converting
/// pass agree. What the check accepts, the splitter reads whole, with the
/// same number of messages, and every message converts into an item.
pub fn telegram_json(data: &[u8]) {
    let path = Path::new("fuzz.json");
    let Ok(checked) = check::check(data, path) else {
        return;
    };
    struct Convert {
        owner: Option<Owner>,
        chat: Option<ChatContext>,
        messages: u64,
    }
    impl Sink for Convert {
        fn owner(&mut self, owner: Owner) -> crate::Result<()> {
            self.owner = Some(owner);
            Ok(())
        }
        fn chat_start(&mut self, chat: &ChatHeader) -> crate::Result<()> {
            self.chat = Some(ChatContext::new(chat, self.owner.as_ref(), Zone::utc()));
            Ok(())
        }
        fn message(&mut self, _: &ChatHeader, raw: &str) -> crate::Result<()> {
            let ctx = self.chat.as_mut().expect("a message inside a chat");
            let item = ctx.convert(raw);
            assert_eq!(item.raw, raw, "the raw message is kept as it stands");
            self.messages += 1;
            Ok(())
        }
    }
    let mut sink = Convert {
        owner: None,
        chat: None,
        messages: 0,
    };
    if let Err(e) = split::split(data, &mut sink, path) {
        panic!("the check accepted what the converting pass refuses: {e}");
    }
    assert_eq!(
        sink.messages, checked.items,
        "the passes count different messages"
    );
    let (mut fast, mut serde) = (Events::default(), Events::default());
    split::split(data, &mut fast, path).expect("split again");
    if let Err(e) = crate::source::telegram::parse(data, &mut serde, path) {
        panic!("the check accepted what the serde parser refuses: {e}");
    }
    assert_eq!(
        fast.0, serde.0,
        "the splitter and the serde parser disagree"
    );
}

/// What a parser told its sink, in order.
#[derive(Default)]
struct Events(Vec<String>);

impl Sink for Events {
    fn owner(&mut self, owner: Owner) -> crate::Result<()> {
        self.0.push(format!("owner {owner:?}"));
        Ok(())
    }
    fn chat_start(&mut self, chat: &ChatHeader) -> crate::Result<()> {
        self.0
            .push(format!("chat {chat:?} {:?}", chat.resolve_id()));
        Ok(())
    }
    fn message(&mut self, chat: &ChatHeader, raw: &str) -> crate::Result<()> {
        self.0.push(format!("message in {:?}: {raw}", chat.id));
        Ok(())
    }
}

/// One page of an HTML export: any text parses or is refused, and each
/// item it yields prints.
pub fn html(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut chat = crate::source::html::HtmlChat::new(None);
    let _ = chat.page(text, Path::new("fuzz.html"), &mut |item| {
        let _ = item.id.to_string();
        Ok(())
    });
}

/// One Bot API update: checked, and what the check accepts converts or says
/// why not.
pub fn botapi(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if crate::source::botapi::check(Path::new("fuzz.jsonl"), text, "line 1").is_ok() {
        let _ = crate::source::botapi::convert(text, "line 1", &Default::default());
    }
}

/// The user-map CSV: read or refused with a line number.
pub fn mapping_csv(data: &[u8]) {
    if let Err(e) = crate::mapping::Mapping::from_reader(data, Path::new("fuzz.csv")) {
        assert!(!e.to_string().is_empty());
    }
}

/// KQL: what parses prints as a query that parses to the same tree. The
/// printed form spells operators out (`-a` prints as `NOT a`), so it may be
/// longer than the limit on what a user may type; it is shown, never parsed
/// again by tgvault, and the property is checked where it is within it.
pub fn kql(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(q) = crate::query::parse(text) {
        let printed = q.to_string();
        if printed.chars().count() > crate::query::MAX_CHARS {
            return;
        }
        let again = crate::query::parse(&printed)
            .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
        assert_eq!(again, q, "{text:?} printed as {printed:?}");
    }
}

/// A target: bytes in, a panic when a property breaks.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/` names them.
pub const TARGETS: &[(&str, Target)] = &[
    ("telegram_json", telegram_json),
    ("html", html),
    ("botapi", botapi),
    ("mapping_csv", mapping_csv),
    ("kql", kql),
];

#[cfg(test)]
mod tests {
    /// Every input of every target's corpus (seeds, and each crash found,
    /// kept there) runs without breaking a property.
    #[test]
    fn the_fuzz_corpora_replay_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut ran = 0;
        for (name, target) in super::TARGETS {
            let dir = root.join(name);
            let entries =
                std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            for e in entries {
                let path = e.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(
                    outcome.is_ok(),
                    "{name}: {} breaks a property",
                    path.display()
                );
                ran += 1;
            }
        }
        assert!(ran >= 30, "only {ran} corpus inputs");
    }

    /// The hostile JSON files hold the two parsers to each other too.
    #[test]
    fn the_hostile_json_files_keep_the_parsers_agreed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hostile/json");
        let mut ran = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| super::telegram_json(&data));
            assert!(outcome.is_ok(), "{} breaks a property", path.display());
            ran += 1;
        }
        assert!(ran >= 50, "only {ran} hostile JSON files");
    }
    use std::path::Path;
}
