//! The one tokenizer of every text field, and of the words of a query.
//!
//! Telegram business chats mix scripts in one message: Latin, Cyrillic, Arabic,
//! Hebrew, Devanagari, Chinese, Japanese, emoji. No stemming and no stop words:
//! a legal search must find the word typed, in any language, and never drop
//! one. The rules:
//!
//! - A *word* is a run of letters, digits and combining marks (any script
//!   that separates words with spaces or punctuation), lower-cased.
//! - Chinese characters, kana, and the scripts written without spaces (Thai,
//!   Lao, Khmer, Myanmar) give one token per character. A query's word in such
//!   a script becomes a phrase of its characters, so `東京` finds exactly the
//!   texts holding those two characters side by side; no dictionary is needed
//!   and nothing is missed (Lucene's CJK analyzers take the same route with
//!   bigrams; unigrams plus phrases find the same texts).
//! - An emoji is a token of its own, without skin-tone modifiers or variation
//!   selectors, so `👍` finds `👍🏽`.
//! - Everything else (white space, punctuation, other symbols) separates.
//! - Tokens longer than [`MAX_TOKEN_BYTES`] (base64 blobs, long URLs) are skipped.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The name the tokenizer is registered under.
pub const NAME: &str = "tgvault";

/// Longer tokens are not indexed.
pub const MAX_TOKEN_BYTES: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Word,
    /// One token per character.
    Single,
    Emoji,
    /// Belongs to the emoji before it (modifier, variation selector, joiner).
    EmojiPart,
    Separator,
}

fn class(c: char) -> Class {
    let u = c as u32;
    if c.is_ascii() {
        return if c.is_ascii_alphanumeric() {
            Class::Word
        } else {
            Class::Separator
        };
    }
    match u {
        // Han, CJK extensions and compatibility ideographs, kana.
        0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF
        | 0x20000..=0x2FFFF
        | 0x3040..=0x30FF
        | 0x31F0..=0x31FF
        | 0xFF66..=0xFF9F
        // Thai, Lao, Myanmar, Khmer.
        | 0x0E00..=0x0EFF
        | 0x1000..=0x109F
        | 0x1780..=0x17FF => Class::Single,
        0x1F3FB..=0x1F3FF | 0xFE00..=0xFE0F | 0x200D | 0x20E3 | 0xE0020..=0xE007F => {
            Class::EmojiPart
        }
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF => Class::Emoji,
        // Latin-1 punctuation, general punctuation, arrows, math and technical
        // symbols, box drawing, shapes, CJK punctuation, full-width punctuation.
        0x00A0..=0x00BF
        | 0x00D7
        | 0x00F7
        | 0x2000..=0x206F
        | 0x2190..=0x23FF
        | 0x2500..=0x25FF
        | 0x3000..=0x303F
        | 0xFF00..=0xFF0F
        | 0xFF1A..=0xFF20
        | 0xFF3B..=0xFF40
        | 0xFF5B..=0xFF65
        | 0xFFF0..=0xFFFF => Class::Separator,
        _ if c.is_whitespace() || c.is_control() => Class::Separator,
        _ => Class::Word,
    }
}

/// Splits `text` into `(byte start, byte end, token)` with the rules above.
pub fn tokens(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut word_start: Option<usize> = None;
    let flush = |out: &mut Vec<(usize, usize, String)>, start: usize, end: usize| {
        if end - start <= MAX_TOKEN_BYTES {
            out.push((start, end, text[start..end].to_lowercase()));
        }
    };
    for (i, c) in text.char_indices() {
        let cl = class(c);
        if cl != Class::Word
            && let Some(s) = word_start.take()
        {
            flush(&mut out, s, i);
        }
        match cl {
            Class::Word => {
                word_start.get_or_insert(i);
            }
            Class::Single | Class::Emoji => {
                out.push((i, i + c.len_utf8(), c.to_lowercase().collect()));
            }
            Class::EmojiPart => {
                // Widen the emoji before it so highlights cover the whole glyph.
                if let Some(last) = out.last_mut()
                    && last.1 == i
                {
                    last.1 = i + c.len_utf8();
                }
            }
            Class::Separator => {}
        }
    }
    if let Some(s) = word_start {
        flush(&mut out, s, text.len());
    }
    out
}

#[derive(Clone, Default)]
pub struct MultiTokenizer;

pub struct MultiTokenStream {
    tokens: std::vec::IntoIter<(usize, usize, String)>,
    token: Token,
    position: usize,
}

impl Tokenizer for MultiTokenizer {
    type TokenStream<'a> = MultiTokenStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> MultiTokenStream {
        MultiTokenStream {
            tokens: tokens(text).into_iter(),
            token: Token::default(),
            position: 0,
        }
    }
}

impl TokenStream for MultiTokenStream {
    fn advance(&mut self) -> bool {
        match self.tokens.next() {
            Some((from, to, text)) => {
                self.token.offset_from = from;
                self.token.offset_to = to;
                self.token.text = text;
                self.token.position = self.position;
                self.token.position_length = 1;
                self.position += 1;
                true
            }
            None => false,
        }
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::tokens;

    fn words(s: &str) -> Vec<String> {
        tokens(s).into_iter().map(|t| t.2).collect()
    }

    #[test]
    fn scripts_split_as_documented() {
        assert_eq!(words("Hello, World! it's"), ["hello", "world", "it", "s"]);
        assert_eq!(words("Привет МИР"), ["привет", "мир"]);
        assert_eq!(words("مرحبا بالعالم"), ["مرحبا", "بالعالم"]);
        assert_eq!(words("नमस्ते दुनिया"), ["नमस्ते", "दुनिया"]);
        assert_eq!(words("会议在東京"), ["会", "议", "在", "東", "京"]);
        assert_eq!(words("abcカタカナ1"), ["abc", "カ", "タ", "カ", "ナ", "1"]);
        assert_eq!(words("ok👍🏽 done🎉"), ["ok", "👍", "done", "🎉"]);
        assert_eq!(words("a—b → c…d"), ["a", "b", "c", "d"]);
        assert_eq!(words("ÉCOLE straße"), ["école", "straße"]);
        assert_eq!(words(""), Vec::<String>::new());
    }

    #[test]
    fn offsets_point_into_the_text() {
        let s = "x 👍🏽 東";
        for (a, b, _) in tokens(s) {
            assert!(s.is_char_boundary(a) && s.is_char_boundary(b));
        }
        assert_eq!(tokens(s)[1].0..tokens(s)[1].1, 2..10);
    }

    #[test]
    fn long_tokens_are_skipped() {
        let long = "a".repeat(101);
        assert_eq!(words(&format!("x {long} y")), ["x", "y"]);
    }
}
