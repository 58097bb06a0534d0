//! The one place values become bytes. Every stored value is one format-version
//! byte followed by its bincode 2 (serde, standard config) encoding, so that the
//! encoding can be replaced later by a migration that rewrites values whose first
//! byte is an old version.

use crate::canon::{self, Canon};
use crate::error::{Error, Result};
use crate::model::{Attachment, Body, Chat, Item, ItemId, Person, TimeBasis};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The version byte written in front of every value encoded today.
pub const FORMAT_VERSION: u8 = 1;

/// The most a decode may claim to allocate, in bytes. A damaged length in a
/// value (a damaged journal, catalogue page or pending entry) must be an
/// error, not an allocation of exabytes that aborts the process; no value
/// the archive writes comes near this.
const DECODE_LIMIT: usize = 1 << 30;

fn decoding() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Room for a typical item version (about 750 bytes), so that encoding one
    // does not grow the buffer seven times over.
    let mut out = Vec::with_capacity(1024);
    out.push(FORMAT_VERSION);
    // Encoding into a Vec cannot fail for the plain data types of this crate; an
    // error here would be a programming error (e.g. an unsized sequence).
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .expect("bincode encoding into a Vec failed");
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (v, used) = decode_prefix(bytes)?;
    if used != bytes.len() {
        return Err(Error::Corrupt("value has trailing bytes".into()));
    }
    Ok(v)
}

/// The version byte of an [`Item`] stored by format 9 and later: version
/// 1's fields, but the fingerprint is a [`Print`] instead of its 32 bytes.
pub const ITEM_VERSION: u8 = 2;

/// An item's fingerprint as stored: its 32 bytes when its raw text does
/// not give them again, else the canonical form that does (2 bytes
/// instead of 33).
#[derive(Serialize, Deserialize)]
enum Print {
    Kept([u8; 32]),
    Derived(Canon),
}

/// An item's encoding for a pack (version [`ITEM_VERSION`]): the fields of
/// version 1 in order, the fingerprint, the last of them, as a [`Print`].
pub fn encode_item(item: &Item) -> Vec<u8> {
    let mut out = encode(item);
    out[0] = ITEM_VERSION;
    out.truncate(out.len() - 32);
    let print = match canon::form_of(&item.fingerprint, &item.raw, &item.time_basis) {
        Some(c) => Print::Derived(c),
        None => Print::Kept(item.fingerprint),
    };
    bincode::serde::encode_into_std_write(&print, &mut out, bincode::config::standard())
        .expect("bincode encoding into a Vec failed");
    out
}

/// The fields of an [`Item`] before its fingerprint, with `raw` as `R`:
/// bincode writes a string and a byte slice alike (length, bytes), so a
/// borrowed `&[u8]` steps over the text without copying or checking it. A
/// property test holds this and `Item` together.
#[derive(Deserialize)]
struct Head<R> {
    id: ItemId,
    chat: Chat,
    date: Option<i64>,
    time_basis: TimeBasis,
    edited: Option<i64>,
    sender: Option<Person>,
    participants: Vec<Person>,
    body: Body,
    attachments: Vec<Attachment>,
    anomalies: Vec<String>,
    source_format: String,
    raw: R,
}

impl<R> Head<R> {
    fn into_item(self, raw: String, fingerprint: [u8; 32]) -> Item {
        Item {
            id: self.id,
            chat: self.chat,
            date: self.date,
            time_basis: self.time_basis,
            edited: self.edited,
            sender: self.sender,
            participants: self.participants,
            body: self.body,
            attachments: self.attachments,
            anomalies: self.anomalies,
            source_format: self.source_format,
            raw,
            fingerprint,
        }
    }
}

/// Splits a stored item into its head and its fingerprint: version 1 ends
/// in the fingerprint's 32 bytes, version 2 in a [`Print`].
fn decode_head<'a, R: Deserialize<'a>>(bytes: &'a [u8]) -> Result<(Head<R>, Print)> {
    let corrupt =
        |e: bincode::error::DecodeError| Error::Corrupt(format!("undecodable value: {e}"));
    let (version, body) = match bytes.split_first() {
        Some((&v, body)) if v == FORMAT_VERSION || v == ITEM_VERSION => (v, body),
        Some((v, _)) => {
            return Err(Error::Corrupt(format!(
                "item has format version {v}, this build reads 1 and {ITEM_VERSION}"
            )));
        }
        None => return Err(Error::Corrupt("empty value".into())),
    };
    let (head, used): (Head<R>, usize) =
        bincode::serde::borrow_decode_from_slice(body, decoding()).map_err(corrupt)?;
    let rest = &body[used..];
    let print = if version == FORMAT_VERSION {
        Print::Kept(
            rest.try_into()
                .map_err(|_| Error::Corrupt("item's fingerprint is not 32 bytes".into()))?,
        )
    } else {
        let (print, used) = bincode::serde::decode_from_slice(rest, decoding()).map_err(corrupt)?;
        if used != rest.len() {
            return Err(Error::Corrupt("value has trailing bytes".into()));
        }
        print
    };
    Ok((head, print))
}

/// The id of a stored [`Item`] of either version (its first field), without
/// decoding the rest.
pub fn item_id_of(bytes: &[u8]) -> Result<ItemId> {
    match bytes.split_first() {
        Some((&v, body)) if v == FORMAT_VERSION || v == ITEM_VERSION => {
            bincode::serde::decode_from_slice(body, decoding())
                .map(|(id, _)| id)
                .map_err(|e| Error::Corrupt(format!("undecodable value: {e}")))
        }
        _ => Err(Error::Corrupt("not a stored item".into())),
    }
}

/// Decodes a stored [`Item`] of either version, its fingerprint derived
/// again from its raw text where only the form was stored.
pub fn decode_item(bytes: &[u8]) -> Result<Item> {
    let (mut head, print) = decode_head::<String>(bytes)?;
    let fingerprint = match print {
        Print::Kept(f) => f,
        Print::Derived(c) => canon::fingerprint(c, &head.raw, &head.time_basis, &mut Vec::new()),
    };
    let raw = std::mem::take(&mut head.raw);
    Ok(head.into_item(raw, fingerprint))
}

/// Decodes a stored [`Item`] without its `raw` source text, which is left
/// empty: its bytes are stepped over, neither copied nor checked as UTF-8.
/// For the search index, which reads every item and indexes everything but
/// the source text (the text is a third of an item's bytes). The
/// fingerprint is all zeros unless it was kept (it is derived from the
/// text); [`decode_item`] gives it.
pub fn decode_item_without_raw(bytes: &[u8]) -> Result<Item> {
    let (head, print) = decode_head::<&[u8]>(bytes)?;
    let fingerprint = match print {
        Print::Kept(f) => f,
        Print::Derived(_) => [0; 32],
    };
    Ok(head.into_item(String::new(), fingerprint))
}

/// Decodes a value at the start of `bytes`; returns it and the bytes it took
/// (version byte included), for rows that carry raw bytes after the value.
pub fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize)> {
    let (v, used) = bincode::serde::decode_from_slice(body(bytes)?, decoding())
        .map_err(|e| Error::Corrupt(format!("undecodable value: {e}")))?;
    Ok((v, used + 1))
}

/// The encoding after the version byte, which must be today's.
fn body(bytes: &[u8]) -> Result<&[u8]> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, body)) => Ok(body),
        Some((v, _)) => Err(Error::Corrupt(format!(
            "value has format version {v}, this build reads {FORMAT_VERSION}"
        ))),
        None => Err(Error::Corrupt("empty value".into())),
    }
}

#[cfg(test)]
mod tests {
    /// No flipped bit in an encoded audit entry makes decoding allocate
    /// what a damaged length claims (which aborts the process): each is a
    /// value or an error.
    #[test]
    fn a_damaged_length_is_an_error_not_an_abort() {
        let entry = crate::store::audit::Entry {
            seq: 7,
            event: crate::store::audit::Event {
                time: 1_700_000_000,
                actor: "os:root".into(),
                action: "search".into(),
                // A length of 237 (0xED) becomes 0xFD, bincode's mark of a
                // u64 length, when bit 4 flips: the text after it is read
                // as the length.
                params: vec![
                    ("arg".into(), "x".repeat(237)),
                    ("query".into(), "deal".into()),
                ],
                counts: vec![("hits".into(), 17)],
                outcome: "ok".into(),
            },
            prev: [3; 32],
            hash: [4; 32],
        };
        let bytes = super::encode(&entry);
        for at in 1..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[at] ^= 1 << bit;
                let _ = super::decode::<crate::store::audit::Entry>(&b);
            }
        }
    }

    use super::*;
    use crate::model::*;
    use proptest::prelude::*;

    fn arb_person() -> impl Strategy<Value = Option<Person>> {
        proptest::option::of(
            (any::<Option<i64>>(), any::<Option<String>>(), ".{0,8}").prop_map(
                |(id, raw_id, name)| Person {
                    peer: id.map(Peer::User),
                    raw_id,
                    name: Some(name),
                    username: None,
                    phone: None,
                },
            ),
        )
    }

    fn arb_item() -> impl Strategy<Value = Item> {
        (
            any::<(u64, i64, i64, u32)>(),
            any::<Option<i64>>(),
            ".{0,40}",
            arb_person(),
            any::<Option<u64>>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..3),
        )
            .prop_map(|((s, c, m, d), date, text, sender, size, blobs)| Item {
                id: ItemId {
                    dup: d,
                    ..ItemId::new(s, c, m)
                },
                chat: Chat {
                    id: c,
                    name: Some(text.chars().rev().collect()),
                    kind: "private_group".into(),
                },
                date,
                time_basis: TimeBasis::LocalTime { zone: "UTC".into() },
                edited: date.map(|d| d.wrapping_add(1)),
                sender: sender.clone(),
                participants: sender.into_iter().collect(),
                body: Body::Message(Box::new(Message {
                    text: text.clone(),
                    entities: vec![Entity {
                        kind: "bold".into(),
                        text,
                        attrs: vec![("href".into(), "\"x\"".into())],
                    }],
                    ..Default::default()
                })),
                attachments: blobs
                    .into_iter()
                    .map(|h| Attachment {
                        kind: AttachmentKind::File,
                        file_name: Some("a.pdf".into()),
                        source_path: None,
                        mime_type: None,
                        declared_size: size,
                        width: None,
                        height: None,
                        duration_seconds: None,
                        performer: None,
                        title: None,
                        content: Some(BlobRef {
                            sha256: h,
                            size: size.unwrap_or(0),
                        }),
                        missing: None,
                        inline: None,
                    })
                    .collect(),
                anomalies: vec![],
                source_format: "test".into(),
                raw: format!("{{\"date\": {date:?}, \"é\": \"{s}\"}}"),
                fingerprint: [7; 32],
            })
    }

    proptest! {
        #[test]
        fn items_round_trip(item in arb_item(), form in 0..3usize) {
            // Version 1, as formats 2 to 8 stored it.
            let v1 = encode(&item);
            prop_assert_eq!(v1[0], FORMAT_VERSION);
            prop_assert_eq!(decode::<Item>(&v1).unwrap(), item.clone());
            prop_assert_eq!(decode_item(&v1).unwrap(), item.clone());
            let without = Item { raw: String::new(), ..item.clone() };
            prop_assert_eq!(decode_item_without_raw(&v1).unwrap(), without.clone());
            // Version 2, a fingerprint its text does not give: kept whole.
            let kept = encode_item(&item);
            prop_assert_eq!(kept[0], ITEM_VERSION);
            prop_assert_eq!(kept.len(), v1.len() + 1);
            prop_assert_eq!(decode_item(&kept).unwrap(), item.clone());
            prop_assert_eq!(item_id_of(&kept).unwrap(), item.id);
            prop_assert_eq!(item_id_of(&v1).unwrap(), item.id);
            prop_assert_eq!(decode_item_without_raw(&kept).unwrap(), without);
            // Version 2, a fingerprint of the text: only its form stored.
            let c = Canon::ALL[form];
            let fp = canon::fingerprint(c, &item.raw, &item.time_basis, &mut Vec::new());
            let item = Item { fingerprint: fp, ..item };
            let derived = encode_item(&item);
            prop_assert_eq!(derived.len(), v1.len() - 30);
            prop_assert_eq!(decode_item(&derived).unwrap(), item.clone());
            let without = Item { raw: String::new(), fingerprint: [0; 32], ..item };
            prop_assert_eq!(decode_item_without_raw(&derived).unwrap(), without);
        }
    }

    /// Every flipped bit of a stored item is an error or an item, never a
    /// panic or an allocation a damaged length claims.
    #[test]
    fn a_damaged_item_is_an_error_not_a_panic() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let item =
            proptest::strategy::ValueTree::current(&arb_item().new_tree(&mut runner).unwrap());
        let fp = canon::fingerprint(
            Canon::Minified,
            &item.raw,
            &item.time_basis,
            &mut Vec::new(),
        );
        for item in [
            item.clone(),
            Item {
                fingerprint: fp,
                ..item
            },
        ] {
            let bytes = encode_item(&item);
            for at in 0..bytes.len() {
                for bit in 0..8 {
                    let mut b = bytes.clone();
                    b[at] ^= 1 << bit;
                    let _ = decode_item(&b);
                    let _ = decode_item_without_raw(&b);
                }
            }
        }
    }

    #[test]
    fn other_versions_and_garbage_are_refused() {
        let mut bytes = encode(&42u64);
        bytes[0] = 9;
        assert!(
            decode::<u64>(&bytes)
                .unwrap_err()
                .to_string()
                .contains("version 9")
        );
        assert!(decode::<u64>(&[]).is_err());
        let mut long = encode(&42u64);
        long.push(0);
        assert!(decode::<u64>(&long).is_err());
    }
}
