//! A JSON value that borrows from the text it was read from: what the
//! converter reads each message into.
//!
//! `serde_json::Value` would do, and gives the same answers, but it copies
//! every key and string into its own allocation and builds a `BTreeMap` per
//! object, for each of millions of messages, most of whose members are read
//! once. Here a string without escapes is a slice of the message's text, and
//! an object is a vector of members in document order.
//!
//! The accessors answer as `Value`'s do, which a property test holds them to:
//! a key that occurs twice means its last occurrence, an object's members
//! listed or printed come in key order, numbers are serde_json's own
//! [`serde_json::Number`].

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// An object's members in document order (a repeated key stays repeated; the
/// accessors take the last, as `Value` keeps it).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

/// Reads `text` as one JSON value.
pub(crate) fn parse(text: &str) -> serde_json::Result<Json<'_>> {
    serde_json::from_str(text)
}

/// `text` with every `\\u` escape of a lone UTF-16 surrogate (a high one
/// not followed by a low one, or a low one alone) replaced by `\\ufffd`;
/// `None` when there is none. serde_json refuses such escapes, which
/// Telegram writes for text cut inside a surrogate pair.
pub(crate) fn replace_lone_surrogates(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let unit = |i: usize| -> Option<u16> {
        let hex = b.get(i..i + 6)?;
        if hex[0] != b'\\' || hex[1] != b'u' {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()
    };
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(u) = unit(i) else {
            // Any other escape: skip the backslash and what it escapes.
            i += 2;
            continue;
        };
        let paired = (0xD800..0xDC00).contains(&u)
            && unit(i + 6).is_some_and(|l| (0xDC00..0xE000).contains(&l));
        if paired {
            i += 12;
        } else if (0xD800..0xE000).contains(&u) {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len()));
            o.push_str(&text[copied..i]);
            o.push_str("\\ufffd");
            i += 6;
            copied = i;
        } else {
            i += 6;
        }
    }
    let mut o = out?;
    o.push_str(&text[copied..]);
    Some(o)
}

impl<'a> Object<'a> {
    pub(crate) fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The members as `Value` has them: in key order, each key once (its last
    /// occurrence).
    pub(crate) fn entries(&self) -> Vec<(&str, &Json<'a>)> {
        let mut all: Vec<(usize, &str, &Json<'a>)> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (i, k.as_ref(), v))
            .collect();
        // By key, later occurrences first; then keep the first of each key.
        all.sort_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)));
        all.dedup_by(|later, earlier| later.1 == earlier.1);
        all.into_iter().map(|(_, k, v)| (k, v)).collect()
    }

    fn to_value(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_value()))
                .collect(),
        )
    }
}

impl<'a> Json<'a> {
    /// A member of an object; `None` for anything else.
    pub(crate) fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(o) => o.get(key),
            _ => None,
        }
    }

    pub(crate) fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Json::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// A string, or a number written as one (Telegram writes some ids and
    /// times either way).
    pub(crate) fn string(&self) -> Option<String> {
        match self {
            Json::String(s) => Some(s.to_string()),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// An integer, or a string holding one.
    pub(crate) fn int(&self) -> Option<i64> {
        match self {
            Json::Number(n) => n.as_i64(),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as compact JSON, exactly as `Value` prints it.
    pub(crate) fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    pub(crate) fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.to_string()),
            Json::Array(a) => Value::Array(a.iter().map(Json::to_value).collect()),
            Json::Object(o) => o.to_value(),
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Json<'de>, E> {
        // As `Value` does: a float JSON cannot hold becomes null.
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s)))
    }
    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        Deserialize::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Json::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(Key(k)) = map.next_key()? {
            out.push((k, map.next_value()?));
        }
        Ok(Json::Object(Object(out)))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// JSON texts with what makes `Value` and a borrowing reader differ if
    /// either is careless: repeated keys, escapes in keys and strings,
    /// numbers of every kind, nesting.
    fn arb_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            Just("1.50".to_string()),
            Just("-0".to_string()),
            "[a-z é\\\\\"/]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just(r#""a\/b\u00e9\n""#.to_string()),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            let key = prop_oneof![
                Just(r#""id""#.to_string()),
                Just(r#""text""#.to_string()),
                Just(r#""type""#.to_string()),
                Just(r#""\u0069d""#.to_string()),
                Just(r#""b""#.to_string()),
                Just(r#""a""#.to_string()),
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[{}]", v.join(", "))),
                prop::collection::vec((key, inner), 0..6).prop_map(|m| {
                    let members: Vec<String> =
                        m.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    format!("{{{}}}", members.join(",\n "))
                }),
            ]
        })
    }

    fn check(text: &str) -> Result<(), TestCaseError> {
        let value: Value = serde_json::from_str(text).unwrap();
        let json = parse(text).unwrap();
        prop_assert_eq!(json.to_value(), value.clone());
        prop_assert_eq!(json.to_json(), value.to_string());
        prop_assert_eq!(json.string(), super::super::telegram::as_string(&value));
        prop_assert_eq!(json.int(), super::super::telegram::as_i64(&value));
        prop_assert_eq!(json.as_u64(), value.as_u64());
        prop_assert_eq!(json.as_bool(), value.as_bool());
        prop_assert_eq!(json.as_str(), value.as_str());
        if let (Some(o), Some(m)) = (json.as_object(), value.as_object()) {
            let listed: Vec<(String, Value)> = o
                .entries()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_value()))
                .collect();
            let want: Vec<(String, Value)> =
                m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(listed, want);
            for k in ["id", "text", "type", "a", "b", "zz"] {
                prop_assert_eq!(o.get(k).map(Json::to_value), m.get(k).cloned());
                prop_assert_eq!(o.contains_key(k), m.contains_key(k));
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn answers_as_serde_json_value_does(text in arb_text()) {
            check(&text)?;
        }

        #[test]
        fn rejects_what_value_rejects(text in "[\\[\\]{}:,\"a0-9 \\\\]{0,24}") {
            prop_assert_eq!(parse(&text).is_ok(), serde_json::from_str::<Value>(&text).is_ok());
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let j = parse(r#"{"a": "plain", "b": "esc\naped"}"#).unwrap();
        assert!(matches!(
            j.get("a"),
            Some(Json::String(Cow::Borrowed("plain")))
        ));
        assert!(matches!(j.get("b"), Some(Json::String(Cow::Owned(_)))));
        check(r#"{"id": 1, "\u0069d": 2, "a": {"b": [1, 2.5, "x"]}}"#).unwrap();
    }
}
