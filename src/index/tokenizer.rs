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

/// The name of [`PairTokenizer`].
pub const PAIRS: &str = "tgvault-pairs";

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
    let mut tokenizer = MultiTokenizer;
    let mut stream = tokenizer.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        let t = stream.token();
        out.push((t.offset_from, t.offset_to, t.text.clone()));
    }
    out
}

#[derive(Clone, Default)]
pub struct MultiTokenizer;

/// Tokens found by scanning the text in place: no allocation per token, the
/// token's buffer is reused.
pub struct MultiTokenStream<'a> {
    text: &'a str,
    at: usize,
    token: Token,
    position: usize,
}

impl Tokenizer for MultiTokenizer {
    type TokenStream<'a> = MultiTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> MultiTokenStream<'a> {
        MultiTokenStream {
            text,
            at: 0,
            token: Token::default(),
            position: 0,
        }
    }
}

impl MultiTokenStream<'_> {
    fn emit(&mut self, from: usize, to: usize) {
        let s = &self.text[from..to];
        self.token.text.clear();
        if s.is_ascii() {
            self.token.text.push_str(s);
            self.token.text.make_ascii_lowercase();
        } else {
            self.token
                .text
                .extend(s.chars().flat_map(char::to_lowercase));
        }
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.position = self.position;
        self.token.position_length = 1;
        self.position += 1;
    }
}

impl TokenStream for MultiTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let bytes = self.text.as_bytes();
        while self.at < bytes.len() {
            let rest = &self.text[self.at..];
            let c = rest.chars().next().expect("not at the end");
            let start = self.at;
            match class(c) {
                Class::Separator | Class::EmojiPart => self.at += c.len_utf8(),
                Class::Single | Class::Emoji => {
                    let mut end = start + c.len_utf8();
                    // Modifiers and joiners after an emoji widen its highlight.
                    if class(c) == Class::Emoji {
                        for n in self.text[end..].chars() {
                            if class(n) != Class::EmojiPart {
                                break;
                            }
                            end += n.len_utf8();
                        }
                    }
                    self.at = end;
                    self.emit(start, start + c.len_utf8());
                    self.token.offset_to = end;
                    return true;
                }
                Class::Word => {
                    let mut end = start;
                    for (i, n) in rest.char_indices() {
                        if class(n) != Class::Word {
                            end = start + i;
                            break;
                        }
                        end = start + i + n.len_utf8();
                    }
                    self.at = end;
                    if end - start <= MAX_TOKEN_BYTES {
                        self.emit(start, end);
                        return true;
                    }
                }
            }
        }
        false
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// Each two neighbouring tokens of [`MultiTokenizer`] as one term, `a b`
/// (a space never occurs inside a token). Indexed beside the free text, they
/// answer a phrase of common words from one short posting list per pair
/// instead of intersecting long ones and checking positions.
#[derive(Clone, Default)]
pub struct PairTokenizer;

pub struct PairTokenStream<'a> {
    inner: MultiTokenStream<'a>,
    prev: String,
    token: Token,
}

impl Tokenizer for PairTokenizer {
    type TokenStream<'a> = PairTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> PairTokenStream<'a> {
        PairTokenStream {
            inner: MultiTokenStream {
                text,
                at: 0,
                token: Token::default(),
                position: 0,
            },
            prev: String::new(),
            token: Token::default(),
        }
    }
}

impl TokenStream for PairTokenStream<'_> {
    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn advance(&mut self) -> bool {
        while self.inner.advance() {
            let cur = self.inner.token();
            if !self.prev.is_empty() {
                let t = &mut self.token;
                t.text.clear();
                t.text.push_str(&self.prev);
                t.text.push(' ');
                t.text.push_str(&cur.text);
                t.position = cur.position - 1;
            }
            let first = self.prev.is_empty();
            self.prev.clear();
            self.prev.push_str(&cur.text);
            if !first {
                return true;
            }
        }
        false
    }
}

/// The pair terms of a phrase's tokens, as [`PairTokenizer`] writes them.
pub fn pairs(tokens: &[String]) -> Vec<String> {
    tokens
        .windows(2)
        .map(|w| format!("{} {}", w[0], w[1]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::tokens;

    #[test]
    fn pairs_are_neighbouring_tokens() {
        use tantivy::tokenizer::{TokenStream, Tokenizer};
        let mut t = super::PairTokenizer;
        let mut s = t.token_stream("Board approves 東京 merger!");
        let mut got = Vec::new();
        while s.advance() {
            got.push(s.token().text.clone());
        }
        assert_eq!(got, ["board approves", "approves 東", "東 京", "京 merger"]);
        let words: Vec<String> = tokens("approves 東京").into_iter().map(|t| t.2).collect();
        assert_eq!(super::pairs(&words), ["approves 東", "東 京"]);
    }

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
