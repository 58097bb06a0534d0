//! The one place values become bytes. Every stored value is one format-version
//! byte followed by its bincode 2 (serde, standard config) encoding, so that the
//! encoding can be replaced later by a migration that rewrites values whose first
//! byte is an old version.

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

/// Decodes an encoded [`Item`] without its `raw` source text, which is left
/// empty: its bytes are stepped over, neither copied nor checked as UTF-8.
/// For the search index, which reads every item and indexes everything but
/// the source text (the text is a third of an item's bytes).
pub fn decode_item_without_raw(bytes: &[u8]) -> Result<Item> {
    /// `Item`, field for field, with `raw` borrowed as bytes: bincode writes
    /// a string and a byte slice alike (length, bytes). A property test holds
    /// the two types together.
    #[derive(Deserialize)]
    struct Indexed<'a> {
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
        #[serde(borrow)]
        _raw: &'a [u8],
        #[serde(with = "crate::model::hex32")]
        fingerprint: [u8; 32],
    }
    let body = body(bytes)?;
    let (it, used): (Indexed<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(body, decoding())
            .map_err(|e| Error::Corrupt(format!("undecodable value: {e}")))?;
    if used != body.len() {
        return Err(Error::Corrupt("value has trailing bytes".into()));
    }
    Ok(Item {
        id: it.id,
        chat: it.chat,
        date: it.date,
        time_basis: it.time_basis,
        edited: it.edited,
        sender: it.sender,
        participants: it.participants,
        body: it.body,
        attachments: it.attachments,
        anomalies: it.anomalies,
        source_format: it.source_format,
        raw: String::new(),
        fingerprint: it.fingerprint,
    })
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
        fn items_round_trip(item in arb_item()) {
            let bytes = encode(&item);
            prop_assert_eq!(bytes[0], FORMAT_VERSION);
            prop_assert_eq!(decode::<Item>(&bytes).unwrap(), item.clone());
            let without = Item { raw: String::new(), ..item };
            prop_assert_eq!(decode_item_without_raw(&bytes).unwrap(), without);
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
