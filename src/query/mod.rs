//! KQL, the query language of Microsoft Purview Content Search, as a pure
//! parser: `&str -> Query`, no I/O, no index. `Query`'s `Display` prints
//! canonical KQL that parses back to the same tree.
//!
//! # Grammar
//!
//! ```text
//! query       := or
//! or          := and ( "OR" and )*
//! and         := unary ( "AND"? unary )*          a space means AND
//! unary       := "NOT" unary | "-" unary | "+" unary | near
//! near        := primary ( "NEAR" ( "(" n ")" )? primary )*     n defaults to 8
//! primary     := "(" or ")" | restriction | text
//! restriction := PROPERTY op value                no space on either side of op
//! op          := ":" | "=" | "<" | ">" | "<=" | ">="
//! value       := text | VALUE ".." VALUE          ranges: dates and numbers
//! text        := WORD | "PHRASE" | PREFIX*        a prefix needs 3 characters
//! ```
//!
//! - `AND`, `OR`, `NOT` and `NEAR` are operators only in upper case; in lower
//!   case they are words.
//! - `prop: value` (a space after the colon) is free text: the words `prop` and
//!   `value`, as in Purview.
//! - `-x` is `NOT x`; `+x` requires `x`, which in a conjunction is just `x`.
//! - `*` is a prefix wildcard only, at the end of a word of 3 or more characters.
//! - Every `X-TELEMESSAGE-*` header of a TeleMessage delivery is a text
//!   property of its own name (`x-telemessage-network:telegram`).
//! - Property names are case-insensitive; dates are UTC: `sent:2021-07-01` is the
//!   whole day, `sent>=2021-01-01`, `received:2021-01-01..2021-03-31`; sizes take
//!   an optional `KB`, `MB` or `GB` suffix. A range that ends before it starts
//!   does not parse (it would silently match nothing).
//!
//! An input that cannot be parsed gives a [`ParseError`] with the column (in
//! characters, from 1) where it went wrong.

mod parser;

pub use parser::{MAX_CHARS, MAX_DEPTH, parse};

use std::fmt;

/// Where and why a query could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 0-based character offset into the query.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.offset + 1, self.message)
    }
}

impl std::error::Error for ParseError {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Every part must match (at least two parts).
    And(Vec<Query>),
    /// Any part may match (at least two parts).
    Or(Vec<Query>),
    Not(Box<Query>),
    /// Both sides within `distance` words of each other.
    Near {
        left: Box<Query>,
        right: Box<Query>,
        distance: u32,
    },
    /// Free text, searched in every text field.
    Text(Text),
    Restriction {
        property: Property,
        cmp: Cmp,
        value: Value,
    },
    /// A header property (see [`HEADER_PREFIX`]) contains `value`; `name`
    /// is in lower case.
    Header {
        name: String,
        value: Text,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Text {
    Word(String),
    Phrase(String),
    /// The characters before `*`.
    Prefix(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    /// `:` or `=`: contains (text), equals (numbers, booleans), within (a day, a range).
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Text(Text),
    Date(DateValue),
    DateRange(DateValue, DateValue),
    Number(u64),
    NumberRange(u64, u64),
    Bool(bool),
}

/// A day (`2021-07-01`) or an instant (`2021-07-01T10:00:00Z`), UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateValue {
    Day(jiff::civil::Date),
    Instant(i64),
}

impl DateValue {
    /// The first second this value covers.
    pub fn start(&self) -> i64 {
        match self {
            DateValue::Day(d) => day_start(*d),
            DateValue::Instant(t) => *t,
        }
    }

    /// The first second after this value (a day covers 86,400 seconds).
    pub fn end(&self) -> i64 {
        match self {
            DateValue::Day(d) => day_start(*d) + 86_400,
            DateValue::Instant(t) => t + 1,
        }
    }
}

fn day_start(d: jiff::civil::Date) -> i64 {
    crate::time::day_start(i64::from(d.year()), d.month() as u8, d.day() as u8)
}

/// What a header property's name starts with: every `X-TELEMESSAGE-*`
/// header an item carries is a text property of that name, in any case
/// (`x-telemessage-network:telegram`).
pub const HEADER_PREFIX: &str = "x-telemessage-";

/// Whether `name` (a header's, or a property's a user typed) names a header
/// property: the prefix, in any case, and at least one character more.
pub fn is_header_property(name: &str) -> bool {
    name.len() > HEADER_PREFIX.len()
        && name.is_char_boundary(HEADER_PREFIX.len())
        && name[..HEADER_PREFIX.len()].eq_ignore_ascii_case(HEADER_PREFIX)
}

/// What kind of value a property takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    Date,
    Number,
    Bool,
}

macro_rules! properties {
    ($($variant:ident = $name:literal, $kind:ident;)*) => {
        /// The properties a query may restrict.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Property { $($variant),* }

        impl Property {
            pub const ALL: &'static [Property] = &[$(Property::$variant),*];

            pub fn name(&self) -> &'static str {
                match self { $(Property::$variant => $name),* }
            }

            pub fn kind(&self) -> ValueKind {
                match self { $(Property::$variant => ValueKind::$kind),* }
            }

            /// Looks a property up by name, ignoring case.
            pub fn from_name(s: &str) -> Option<Property> {
                let l = s.to_ascii_lowercase();
                match l.as_str() { $($name => Some(Property::$variant),)* _ => None }
            }
        }
    };
}

properties! {
    From = "from", Text;
    To = "to", Text;
    Cc = "cc", Text;
    Bcc = "bcc", Text;
    Participants = "participants", Text;
    Recipients = "recipients", Text;
    Subject = "subject", Text;
    Sent = "sent", Date;
    Received = "received", Date;
    Kind = "kind", Text;
    ItemClass = "itemclass", Text;
    Size = "size", Number;
    HasAttachment = "hasattachment", Bool;
    AttachmentNames = "attachmentnames", Text;
    Folder = "folder", Text;
    Mailbox = "mailbox", Text;
    Chat = "chat", Text;
    ChatType = "chattype", Text;
    SenderId = "senderid", Text;
    Phone = "phone", Text;
    Event = "event", Text;
    Edited = "edited", Bool;
    Deleted = "deleted", Bool;
    Call = "call", Text;
    Duration = "duration", Number;
}

// ------------------------------------------------------------------ printing

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Text::Word(w) => f.write_str(w),
            Text::Phrase(p) => write!(f, "\"{p}\""),
            Text::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

impl fmt::Display for DateValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateValue::Day(d) => write!(f, "{d}"),
            DateValue::Instant(t) => match jiff::Timestamp::from_second(*t) {
                Ok(ts) => write!(f, "{}", ts.strftime("%Y-%m-%dT%H:%M:%SZ")),
                Err(_) => write!(f, "{t}"),
            },
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(t) => write!(f, "{t}"),
            Value::Date(d) => write!(f, "{d}"),
            Value::DateRange(a, b) => write!(f, "{a}..{b}"),
            Value::Number(n) => write!(f, "{n}"),
            Value::NumberRange(a, b) => write!(f, "{a}..{b}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cmp::Eq => ":",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        })
    }
}

impl Query {
    /// Binding strength when printed: OR 1, AND 2, NOT 3, NEAR 4, atoms 5.
    fn precedence(&self) -> u8 {
        match self {
            Query::Or(_) => 1,
            Query::And(_) => 2,
            Query::Not(_) => 3,
            Query::Near { .. } => 4,
            Query::Text(_) | Query::Restriction { .. } | Query::Header { .. } => 5,
        }
    }

    fn write_child(&self, child: &Query, min: u8, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if child.precedence() < min {
            write!(f, "({child})")
        } else {
            write!(f, "{child}")
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::Or(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" OR ")?;
                    }
                    self.write_child(p, 2, f)?;
                }
                Ok(())
            }
            Query::And(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" AND ")?;
                    }
                    self.write_child(p, 3, f)?;
                }
                Ok(())
            }
            Query::Not(q) => {
                f.write_str("NOT ")?;
                self.write_child(q, 3, f)
            }
            Query::Near {
                left,
                right,
                distance,
            } => {
                self.write_child(left, 4, f)?;
                write!(f, " NEAR({distance}) ")?;
                self.write_child(right, 5, f)
            }
            Query::Text(t) => write!(f, "{t}"),
            Query::Restriction {
                property,
                cmp,
                value,
            } => write!(f, "{}{cmp}{value}", property.name()),
            Query::Header { name, value } => write!(f, "{name}:{value}"),
        }
    }
}

/// The same query with nested ANDs and ORs flattened into their parent, as the
/// parser builds them.
pub fn normalize(q: Query) -> Query {
    fn flat(parts: Vec<Query>, and: bool) -> Vec<Query> {
        let mut out = Vec::new();
        for p in parts.into_iter().map(normalize) {
            match p {
                Query::And(inner) if and => out.extend(inner),
                Query::Or(inner) if !and => out.extend(inner),
                other => out.push(other),
            }
        }
        out
    }
    match q {
        Query::And(parts) => {
            let mut v = flat(parts, true);
            if v.len() == 1 {
                v.remove(0)
            } else {
                Query::And(v)
            }
        }
        Query::Or(parts) => {
            let mut v = flat(parts, false);
            if v.len() == 1 {
                v.remove(0)
            } else {
                Query::Or(v)
            }
        }
        Query::Not(q) => Query::Not(Box::new(normalize(*q))),
        Query::Near {
            left,
            right,
            distance,
        } => Query::Near {
            left: Box::new(normalize(*left)),
            right: Box::new(normalize(*right)),
            distance,
        },
        other => other,
    }
}
