//! The KQL lexer and recursive-descent parser; the grammar is in the module
//! documentation of [`super`].

use super::*;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Word(String),
    Phrase(String),
    Op(Cmp),
    Range,
    Minus,
    Plus,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    /// Character offset of the token's first character.
    offset: usize,
    /// Whether white space (or the start) comes right before it.
    spaced: bool,
}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        offset,
        message: message.into(),
    })
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | '"' | ':' | '=' | '<' | '>')
}

fn lex(input: &str) -> Result<Vec<Token>, ParseError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut spaced = true;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let push = |out: &mut Vec<Token>, tok: Tok, spaced: bool| {
            out.push(Token {
                tok,
                offset: start,
                spaced,
            })
        };
        if c.is_whitespace() {
            spaced = true;
            i += 1;
            continue;
        }
        match c {
            '(' => {
                push(&mut out, Tok::LParen, spaced);
                i += 1;
                // What follows an opening parenthesis starts a term.
                spaced = true;
                continue;
            }
            ')' => {
                push(&mut out, Tok::RParen, spaced);
                i += 1;
            }
            '"' => {
                let Some(len) = chars[i + 1..].iter().position(|&c| c == '"') else {
                    return err(i, "unterminated phrase: a '\"' has no closing '\"'");
                };
                let phrase: String = chars[i + 1..i + 1 + len].iter().collect();
                push(&mut out, Tok::Phrase(phrase), spaced);
                i += len + 2;
            }
            ':' | '=' => {
                push(&mut out, Tok::Op(Cmp::Eq), spaced);
                i += 1;
            }
            '<' | '>' => {
                let or_equal = chars.get(i + 1) == Some(&'=');
                let cmp = match (c, or_equal) {
                    ('<', false) => Cmp::Lt,
                    ('<', true) => Cmp::Le,
                    ('>', false) => Cmp::Gt,
                    _ => Cmp::Ge,
                };
                push(&mut out, Tok::Op(cmp), spaced);
                i += if or_equal { 2 } else { 1 };
            }
            '.' if chars.get(i + 1) == Some(&'.') => {
                push(&mut out, Tok::Range, spaced);
                i += 2;
            }
            // After white space, or right after a phrase or ')': a word
            // never begins with '-' or '+', so the printed form of a query
            // (which puts a space there) reads back the same.
            '-' | '+'
                if (spaced
                    || matches!(
                        out.last(),
                        Some(Token {
                            tok: Tok::Phrase(_) | Tok::RParen,
                            ..
                        })
                    ))
                    // ... and only before what can begin a term: a '-'
                    // before ')' or an operator is a word of its own.
                    && chars
                        .get(i + 1)
                        .is_some_and(|&n| is_word_char(n) || n == '"' || n == '(') =>
            {
                push(
                    &mut out,
                    if c == '-' { Tok::Minus } else { Tok::Plus },
                    spaced,
                );
                i += 1;
                spaced = true;
                continue;
            }
            _ => {
                let mut j = i;
                while j < chars.len()
                    && (is_word_char(chars[j])
                        || (chars[j] == ':' && datetime_so_far(&chars[i..j])))
                    && !(chars[j] == '.' && chars.get(j + 1) == Some(&'.'))
                {
                    j += 1;
                }
                if j == i {
                    // A lone '.' or similar: take it as a one-character word.
                    j = i + 1;
                }
                push(&mut out, Tok::Word(chars[i..j].iter().collect()), spaced);
                i = j;
            }
        }
        spaced = false;
    }
    Ok(out)
}

/// Whether `s` is the start of a date-time (`2021-07-01T10` or
/// `2021-07-01T10:00`), whose colons belong to the word.
fn datetime_so_far(s: &[char]) -> bool {
    s.len() >= 12
        && s[4] == '-'
        && s[7] == '-'
        && s[10] == 'T'
        && s.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_digit() || *c == ':')
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    len: usize,
    /// Operators and parentheses open around the current position.
    depth: usize,
}

/// The longest query accepted, in characters.
pub const MAX_CHARS: usize = 20_000;
/// The deepest nesting accepted: parentheses, `NOT`, `-`, `+` and `NEAR`
/// each add a level. Everything that walks a query tree recurses, so the
/// bound keeps every walk's stack small whatever the input.
pub const MAX_DEPTH: usize = 100;

const OPERATORS: &[&str] = &["AND", "OR", "NOT", "NEAR"];

/// Parses a KQL query.
pub fn parse(input: &str) -> Result<Query, ParseError> {
    if let Some((at, _)) = input.char_indices().nth(MAX_CHARS) {
        let column = input[..at].chars().count();
        return err(
            column,
            format!("the query is longer than {MAX_CHARS} characters"),
        );
    }
    let toks = lex(input)?;
    let len = input.chars().count();
    if toks.is_empty() {
        return err(0, "the query is empty");
    }
    let mut p = Parser {
        toks,
        pos: 0,
        len,
        depth: 0,
    };
    let q = p.or()?;
    if let Some(t) = p.peek() {
        return match t.tok {
            Tok::RParen => err(t.offset, "unexpected ')': no '(' to close"),
            _ => err(t.offset, "unexpected text after the query"),
        };
    }
    Ok(q)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&Token> {
        self.toks.get(self.pos + n)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// Enters one more level of nesting at the token at `offset`.
    fn descend(&mut self, offset: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(
                offset,
                format!("the query nests deeper than {MAX_DEPTH} levels"),
            );
        }
        Ok(())
    }

    fn at_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Word(x), .. }) if x == w)
    }

    fn or(&mut self) -> Result<Query, ParseError> {
        let mut parts = vec![self.and()?];
        while self.at_word("OR") {
            let op = self.next().expect("peeked");
            if self.ends_operand() {
                return err(op.offset, "OR needs a term after it");
            }
            parts.push(self.and()?);
        }
        Ok(join(parts, false))
    }

    /// Whether nothing that can start an operand comes next.
    fn ends_operand(&self) -> bool {
        match self.peek() {
            None => true,
            Some(t) => {
                matches!(t.tok, Tok::RParen)
                    || matches!(&t.tok, Tok::Word(w) if w == "OR" || w == "AND")
            }
        }
    }

    fn and(&mut self) -> Result<Query, ParseError> {
        let mut parts = vec![self.unary()?];
        loop {
            match self.peek() {
                None => break,
                Some(t) if t.tok == Tok::RParen => break,
                Some(Token {
                    tok: Tok::Word(w), ..
                }) if w == "OR" => break,
                Some(Token {
                    tok: Tok::Word(w),
                    offset,
                    ..
                }) if w == "AND" => {
                    let offset = *offset;
                    self.next();
                    if self.ends_operand() {
                        return err(offset, "AND needs a term after it");
                    }
                    parts.push(self.unary()?);
                }
                Some(_) => parts.push(self.unary()?),
            }
        }
        Ok(join(parts, true))
    }

    fn unary(&mut self) -> Result<Query, ParseError> {
        let Some((tok, offset)) = self.peek().map(|t| (t.tok.clone(), t.offset)) else {
            return self.near();
        };
        let negate = match tok {
            Tok::Word(ref w) if w == "NOT" => true,
            Tok::Minus => true,
            Tok::Plus => false,
            _ => return self.near(),
        };
        self.next();
        if negate && tok != Tok::Minus && self.ends_operand() {
            return err(offset, "NOT needs a term after it");
        }
        self.descend(offset)?;
        let q = self.unary()?;
        self.depth -= 1;
        Ok(if negate { Query::Not(Box::new(q)) } else { q })
    }

    fn near(&mut self) -> Result<Query, ParseError> {
        let mut left = self.primary()?;
        let depth = self.depth;
        while self.at_word("NEAR") {
            let op = self.next().expect("peeked");
            // Each NEAR wraps the tree built so far one level deeper.
            self.descend(op.offset)?;
            let mut distance = 8;
            if let Some(Token {
                tok: Tok::LParen,
                spaced: false,
                ..
            }) = self.peek()
            {
                self.next();
                let n = self.next();
                distance = match n.as_ref().map(|t| &t.tok) {
                    Some(Tok::Word(w)) => match w.parse::<u32>() {
                        Ok(d) if d > 0 => d,
                        _ => {
                            return err(
                                n.map_or(self.len, |t| t.offset),
                                "NEAR(n) takes a whole number from 1 to 4294967295",
                            );
                        }
                    },
                    _ => {
                        return err(
                            op.offset,
                            "NEAR(n) takes a whole number from 1 to 4294967295",
                        );
                    }
                };
                match self.next() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => {}
                    _ => return err(op.offset, "NEAR(n) is missing its ')'"),
                }
            }
            if self.ends_operand() {
                return err(op.offset, "NEAR needs a term after it");
            }
            let right = self.primary()?;
            left = Query::Near {
                left: Box::new(left),
                right: Box::new(right),
                distance,
            };
        }
        self.depth = depth;
        Ok(left)
    }

    fn primary(&mut self) -> Result<Query, ParseError> {
        let Some(t) = self.next() else {
            return err(self.len, "a term is missing at the end");
        };
        match t.tok {
            Tok::LParen => {
                if matches!(
                    self.peek(),
                    Some(Token {
                        tok: Tok::RParen,
                        ..
                    })
                ) {
                    return err(t.offset, "empty parentheses");
                }
                self.descend(t.offset)?;
                let q = self.or()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token {
                        tok: Tok::RParen, ..
                    }) => Ok(q),
                    _ => err(t.offset, "this '(' is never closed"),
                }
            }
            Tok::RParen => err(t.offset, "unexpected ')'"),
            Tok::Phrase(p) => Ok(Query::Text(Text::Phrase(p))),
            Tok::Op(c) => err(
                t.offset,
                format!("unexpected '{c}': a property name must come right before it"),
            ),
            Tok::Range => err(
                t.offset,
                "unexpected '..': a range needs a property, as in sent:2021-01-01..2021-03-31",
            ),
            Tok::Minus | Tok::Plus => err(t.offset, "unexpected operator"),
            Tok::Word(w) => {
                if OPERATORS.contains(&w.as_str()) {
                    return err(t.offset, format!("{w} needs a term before it"));
                }
                let op = self.peek().cloned();
                if let Some(Token {
                    tok: Tok::Op(cmp),
                    spaced: false,
                    ..
                }) = op
                {
                    let value_follows = matches!(
                        self.peek_at(1),
                        Some(Token {
                            tok: Tok::Word(_) | Tok::Phrase(_),
                            spaced: false,
                            ..
                        })
                    );
                    self.next();
                    if !value_follows {
                        // `to: alice`: free text, as in Purview.
                        return text(&w, t.offset);
                    }
                    if is_header_property(&w) {
                        return self.header(&w, cmp, t.offset);
                    }
                    let Some(property) = Property::from_name(&w) else {
                        return err(
                            t.offset,
                            format!("unknown property '{w}' (put text in quotes to search for it)"),
                        );
                    };
                    return self.value(property, cmp, t.offset);
                }
                text(&w, t.offset)
            }
        }
    }

    /// The value of a header property: text, with `:` or `=`.
    fn header(&mut self, name: &str, cmp: Cmp, at: usize) -> Result<Query, ParseError> {
        let first = self.next().expect("a value token was checked");
        if cmp != Cmp::Eq {
            return err(
                at,
                format!("{name} takes ':' or '='; comparisons apply to dates and numbers"),
            );
        }
        if let Some(Token {
            tok: Tok::Range,
            spaced: false,
            ..
        }) = self.peek()
        {
            return err(at, format!("{name} does not take a range"));
        }
        let value = match first.tok {
            Tok::Phrase(p) => Text::Phrase(p),
            Tok::Word(w) => match text(&w, first.offset)? {
                Query::Text(t) => t,
                _ => unreachable!("text() builds text"),
            },
            _ => unreachable!("value tokens are words or phrases"),
        };
        Ok(Query::Header {
            name: name.to_ascii_lowercase(),
            value,
        })
    }

    fn value(&mut self, property: Property, cmp: Cmp, at: usize) -> Result<Query, ParseError> {
        let first = self.next().expect("a value token was checked");
        let range_end = if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::Range,
                spaced: false,
                ..
            })
        ) {
            let dots = self.next().expect("peeked");
            match self.next() {
                Some(Token {
                    tok: Tok::Word(w),
                    spaced: false,
                    offset,
                }) => Some((w, offset)),
                _ => return err(dots.offset, "a range needs a value on each side of '..'"),
            }
        } else {
            None
        };
        if range_end.is_some() && cmp != Cmp::Eq {
            return err(at, "a range goes with ':' only");
        }
        let word = |tok: &Tok| match tok {
            Tok::Word(w) => Some(w.clone()),
            Tok::Phrase(p) => Some(p.clone()),
            _ => None,
        };
        let raw = word(&first.tok).expect("value tokens are words or phrases");
        let value = match property.kind() {
            ValueKind::Text => {
                if cmp != Cmp::Eq {
                    return err(
                        at,
                        format!(
                            "{} takes ':' or '='; comparisons apply to dates and numbers",
                            property.name()
                        ),
                    );
                }
                if range_end.is_some() {
                    return err(at, format!("{} does not take a range", property.name()));
                }
                match first.tok {
                    Tok::Phrase(p) => Value::Text(Text::Phrase(p)),
                    _ => match text(&raw, first.offset)? {
                        Query::Text(t) => Value::Text(t),
                        _ => unreachable!("text() builds text"),
                    },
                }
            }
            ValueKind::Date => {
                let a = date(&raw, first.offset)?;
                match range_end {
                    Some((w, o)) => {
                        let b = date(&w, o)?;
                        // An empty range is a mistake, not a search for nothing.
                        if b.end() <= a.start() {
                            return err(o, "the range ends before it starts");
                        }
                        Value::DateRange(a, b)
                    }
                    None => Value::Date(a),
                }
            }
            ValueKind::Number => {
                let a = number(&raw, first.offset)?;
                match range_end {
                    Some((w, o)) => {
                        let b = number(&w, o)?;
                        if b < a {
                            return err(o, "the range ends before it starts");
                        }
                        Value::NumberRange(a, b)
                    }
                    None => Value::Number(a),
                }
            }
            ValueKind::Bool => {
                if cmp != Cmp::Eq || range_end.is_some() {
                    return err(
                        at,
                        format!("{} takes ':' and true or false", property.name()),
                    );
                }
                match raw.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "1" => Value::Bool(true),
                    "false" | "no" | "0" => Value::Bool(false),
                    _ => {
                        return err(
                            first.offset,
                            format!("{} takes true or false, not '{raw}'", property.name()),
                        );
                    }
                }
            }
        };
        Ok(Query::Restriction {
            property,
            cmp,
            value,
        })
    }
}

fn join(mut parts: Vec<Query>, and: bool) -> Query {
    if parts.len() == 1 {
        return parts.remove(0);
    }
    let mut flat = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Query::And(inner) if and => flat.extend(inner),
            Query::Or(inner) if !and => flat.extend(inner),
            other => flat.push(other),
        }
    }
    if and {
        Query::And(flat)
    } else {
        Query::Or(flat)
    }
}

fn text(w: &str, offset: usize) -> Result<Query, ParseError> {
    if let Some(star) = w.find('*') {
        let stem = &w[..star];
        if star + 1 != w.len() {
            return err(
                offset + stem.chars().count(),
                "'*' is a prefix wildcard: it may only end a word",
            );
        }
        if stem.chars().count() < 3 {
            return err(offset, "a wildcard needs at least 3 characters before '*'");
        }
        return Ok(Query::Text(Text::Prefix(stem.to_string())));
    }
    Ok(Query::Text(Text::Word(w.to_string())))
}

fn date(w: &str, offset: usize) -> Result<DateValue, ParseError> {
    if let Ok(d) = w.parse::<jiff::civil::Date>()
        && !w.contains('T')
    {
        return Ok(DateValue::Day(d));
    }
    let trimmed = w.strip_suffix('Z').unwrap_or(w);
    if let Ok(dt) = trimmed.parse::<jiff::civil::DateTime>()
        && let Ok(z) = dt.to_zoned_datetime(jiff::tz::TimeZone::UTC)
    {
        return Ok(DateValue::Instant(z.timestamp().as_second()));
    }
    err(
        offset,
        format!("'{w}' is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, UTC)"),
    )
}

fn number(w: &str, offset: usize) -> Result<u64, ParseError> {
    let upper = w.to_ascii_uppercase();
    let (digits, unit) = match upper.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&upper[..i], &upper[i..]),
        None => (upper.as_str(), ""),
    };
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return err(offset, format!("'{w}' is not a number (units: KB, MB, GB)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .map_or_else(|| err(offset, format!("'{w}' is not a number")), Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn w(s: &str) -> Query {
        Query::Text(Text::Word(s.into()))
    }

    fn check(input: &str, expect: Query) {
        assert_eq!(parse(input), Ok(expect), "{input}");
    }

    fn check_err(input: &str, column: usize, needle: &str) {
        let e = parse(input).expect_err(input);
        assert_eq!(e.offset + 1, column, "{input}: {e}");
        assert!(e.message.contains(needle), "{input}: {e}");
    }

    #[test]
    fn operators_and_precedence() {
        check("a b", Query::And(vec![w("a"), w("b")]));
        check(
            "a AND b OR c",
            Query::Or(vec![Query::And(vec![w("a"), w("b")]), w("c")]),
        );
        check(
            "a (b OR c)",
            Query::And(vec![w("a"), Query::Or(vec![w("b"), w("c")])]),
        );
        check("a and b", Query::And(vec![w("a"), w("and"), w("b")]));
        check(
            "NOT a -b +c",
            Query::And(vec![
                Query::Not(Box::new(w("a"))),
                Query::Not(Box::new(w("b"))),
                w("c"),
            ]),
        );
        check(
            "a NEAR b",
            Query::Near {
                left: Box::new(w("a")),
                right: Box::new(w("b")),
                distance: 8,
            },
        );
        check(
            "\"x y\" NEAR(3) z",
            Query::Near {
                left: Box::new(Query::Text(Text::Phrase("x y".into()))),
                right: Box::new(w("z")),
                distance: 3,
            },
        );
        check("merg*", Query::Text(Text::Prefix("merg".into())));
        check("2021-01-01", w("2021-01-01"));
        check("a-b", w("a-b"));
        // A sign before ')' is a word, and prints so that it reads back
        // the same (found by fuzzing: "-)" read back as a sign before ')').
        let q = parse("(a - )").unwrap();
        assert_eq!(q, Query::And(vec![w("a"), w("-")]));
        assert_eq!(parse(&q.to_string()).unwrap(), q);
    }

    #[test]
    fn header_properties() {
        let h = |n: &str, t| Query::Header {
            name: n.into(),
            value: t,
        };
        check(
            "X-TELEMESSAGE-Network:Telegram",
            h("x-telemessage-network", Text::Word("Telegram".into())),
        );
        check(
            "x-telemessage-threadname=\"deal room\"",
            h("x-telemessage-threadname", Text::Phrase("deal room".into())),
        );
        check(
            "x-telemessage-sid:abc*",
            h("x-telemessage-sid", Text::Prefix("abc".into())),
        );
        let q = parse("x-telemessage-network:telegram OR a").unwrap();
        assert_eq!(parse(&q.to_string()).unwrap(), q);
        check_err("x-telemessage-sid>5", 1, "takes ':' or '='");
        check_err("x-telemessage-sid:1..5", 1, "does not take a range");
        check_err("x-telemessage-:a", 1, "unknown property");
        check_err("x-telemessage-sid:ab*", 19, "at least 3 characters");
    }

    #[test]
    fn restrictions() {
        let r = |p, c, v| Query::Restriction {
            property: p,
            cmp: c,
            value: v,
        };
        check(
            "from:alice@corp.example",
            r(
                Property::From,
                Cmp::Eq,
                Value::Text(Text::Word("alice@corp.example".into())),
            ),
        );
        check(
            "Subject=\"deal room\"",
            r(
                Property::Subject,
                Cmp::Eq,
                Value::Text(Text::Phrase("deal room".into())),
            ),
        );
        let d = |s: &str| s.parse::<jiff::civil::Date>().unwrap();
        check(
            "sent>=2021-01-01",
            r(
                Property::Sent,
                Cmp::Ge,
                Value::Date(DateValue::Day(d("2021-01-01"))),
            ),
        );
        check(
            "received:2021-01-01..2021-03-31",
            r(
                Property::Received,
                Cmp::Eq,
                Value::DateRange(
                    DateValue::Day(d("2021-01-01")),
                    DateValue::Day(d("2021-03-31")),
                ),
            ),
        );
        check(
            "sent<2021-07-01T10:00:00Z",
            r(
                Property::Sent,
                Cmp::Lt,
                Value::Date(DateValue::Instant(1625133600)),
            ),
        );
        check(
            "size>10KB",
            r(Property::Size, Cmp::Gt, Value::Number(10240)),
        );
        check(
            "size:1..100",
            r(Property::Size, Cmp::Eq, Value::NumberRange(1, 100)),
        );
        check(
            "hasattachment:true",
            r(Property::HasAttachment, Cmp::Eq, Value::Bool(true)),
        );
        check(
            "itemclass:ipm.externaldata.telegram*",
            r(
                Property::ItemClass,
                Cmp::Eq,
                Value::Text(Text::Prefix("ipm.externaldata.telegram".into())),
            ),
        );
        // A space after the colon: free text.
        check("to: alice", Query::And(vec![w("to"), w("alice")]));
        // Right after a phrase or ')', '-' and '+' are operators, as after
        // a space (found by fuzzing: the printed form put a space there).
        check(
            "\"a\"-b",
            Query::And(vec![
                Query::Text(Text::Phrase("a".into())),
                Query::Not(Box::new(w("b"))),
            ]),
        );
        check("(a)+b", Query::And(vec![w("a"), w("b")]));
    }

    #[test]
    fn errors_point_at_the_problem() {
        check_err("", 1, "empty");
        check_err("a AND", 3, "AND needs");
        check_err("(a OR b", 1, "never closed");
        check_err("a OR b)", 7, "unexpected ')'");
        check_err("\"open phrase", 1, "unterminated");
        check_err("ab*", 1, "at least 3");
        check_err("a*bc", 2, "may only end");
        check_err("foo:bar", 1, "unknown property 'foo'");
        check_err("sent>=yesterday", 7, "not a date");
        check_err("from>alice", 1, "comparisons apply");
        check_err("size>10XB", 6, "not a number");
        check_err("a NEAR(x) b", 8, "whole number");
        check_err("a NEAR(0) b", 8, "from 1 to");
        check_err("a NEAR(4294967296) b", 8, "from 1 to 4294967295");
        check_err("OR a", 1, "needs a term before");
        check_err("hasattachment:maybe", 15, "true or false");
        check_err("()", 1, "empty parentheses");
        check_err("a ..", 3, "unexpected '..'");
        check_err("sent:2024-02-01..2024-01-31", 18, "ends before it starts");
        check_err("size:10KB..1KB", 12, "ends before it starts");
    }

    #[test]
    fn depth_and_length_are_bounded_at_their_column() {
        // Each class of nesting, far past the bound: an error, not a stack
        // overflow, naming the column where the bound was passed.
        for (input, offset) in [
            (format!("{}a", "(".repeat(10_000)), MAX_DEPTH),
            (format!("{}a", "-".repeat(2_000)), MAX_DEPTH),
            (format!("{}a", "+".repeat(2_000)), MAX_DEPTH),
            (format!("{}a", "NOT ".repeat(2_000)), 4 * MAX_DEPTH),
            (format!("a{}", " NEAR a".repeat(2_000)), 2 + 7 * MAX_DEPTH),
        ] {
            let e = parse(&input).expect_err(&input[..20]);
            assert!(e.message.contains("nests deeper"), "{e}");
            assert_eq!(e.offset, offset, "{}", &input[..20]);
        }
        // Up to the bound, nesting parses.
        let ok = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let long = "a ".repeat(MAX_CHARS);
        let e = parse(&long).unwrap_err();
        assert_eq!(e.offset, MAX_CHARS);
        assert!(e.message.contains("longer than"), "{e}");
    }

    fn arb_text() -> impl Strategy<Value = Text> {
        let word =
            "[a-z0-9@][a-z0-9@.ё中]{0,6}".prop_filter("no ranges", |s: &String| !s.contains(".."));
        prop_oneof![
            word.clone().prop_map(Text::Word),
            "[a-z ]{1,8}".prop_map(Text::Phrase),
            "[a-z]{3,6}".prop_map(Text::Prefix),
        ]
    }

    fn arb_leaf() -> impl Strategy<Value = Query> {
        let day = (2000i16..2030, 1i8..13, 1i8..29)
            .prop_map(|(y, m, d)| DateValue::Day(jiff::civil::date(y, m, d)));
        let date = prop_oneof![day, (946684800i64..1900000000).prop_map(DateValue::Instant)];
        let cmp = prop_oneof![
            Just(Cmp::Eq),
            Just(Cmp::Lt),
            Just(Cmp::Le),
            Just(Cmp::Gt),
            Just(Cmp::Ge)
        ];
        prop_oneof![
            arb_text().prop_map(Query::Text),
            (
                arb_text(),
                prop::sample::select(vec![
                    Property::From,
                    Property::Subject,
                    Property::Chat,
                    Property::AttachmentNames
                ])
            )
                .prop_map(|(t, p)| Query::Restriction {
                    property: p,
                    cmp: Cmp::Eq,
                    value: Value::Text(t)
                }),
            (date.clone(), cmp.clone()).prop_map(|(d, c)| Query::Restriction {
                property: Property::Sent,
                cmp: c,
                value: Value::Date(d)
            }),
            (date.clone(), date).prop_map(|(a, b)| Query::Restriction {
                property: Property::Received,
                cmp: Cmp::Eq,
                // A range that ends before it starts does not parse.
                value: if b.end() <= a.start() {
                    Value::DateRange(b, a)
                } else {
                    Value::DateRange(a, b)
                }
            }),
            (any::<u32>(), cmp).prop_map(|(n, c)| Query::Restriction {
                property: Property::Size,
                cmp: c,
                value: Value::Number(n as u64)
            }),
            any::<bool>().prop_map(|b| Query::Restriction {
                property: Property::Edited,
                cmp: Cmp::Eq,
                value: Value::Bool(b)
            }),
        ]
    }

    fn arb_query() -> impl Strategy<Value = Query> {
        arb_leaf().prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 2..4).prop_map(Query::And),
                prop::collection::vec(inner.clone(), 2..4).prop_map(Query::Or),
                inner.clone().prop_map(|q| Query::Not(Box::new(q))),
                (arb_text(), arb_text(), 1u32..20).prop_map(|(a, b, d)| Query::Near {
                    left: Box::new(Query::Text(a)),
                    right: Box::new(Query::Text(b)),
                    distance: d,
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_tree(q in arb_query()) {
            let q = normalize(q);
            let printed = q.to_string();
            let back = parse(&printed);
            prop_assert_eq!(back.as_ref(), Ok(&q), "printed as {}", printed);
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
