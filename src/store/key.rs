//! Typed keys and their byte encoding: the only place that knows key bytes.
//!
//! Every encoding is order-preserving: comparing the encoded bytes
//! lexicographically (as redb does for `&[u8]` keys) gives the same order as
//! comparing the typed tuples. Strings are escaped (`00` becomes `00 FF`) and
//! terminated by `00 01`, so a prefix sorts before its extensions; signed integers
//! are big-endian with the sign bit flipped; unsigned ones are big-endian.

use crate::error::{Error, Result};
use crate::model::{ItemId, Part};

/// Where one copy of an item is filed: mailbox, folder, item.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ItemKey {
    pub mailbox: String,
    pub folder: String,
    pub item: ItemId,
}

/// Length of an encoded [`ItemId`].
pub const ITEM_ID_LEN: usize = 8 + 8 + 8 + 4 + 1;

pub fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut rest = s.as_bytes();
    while let Some(i) = memchr::memchr(0, rest) {
        out.extend_from_slice(&rest[..=i]);
        out.push(0xFF);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(&[0, 1]);
}

pub fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

pub fn put_item_id(out: &mut Vec<u8>, id: &ItemId) {
    out.extend_from_slice(&id.scope.to_be_bytes());
    put_i64(out, id.chat);
    put_i64(out, id.message);
    out.extend_from_slice(&id.dup.to_be_bytes());
    out.push(id.part as u8);
}

pub fn item_id_bytes(id: &ItemId) -> Vec<u8> {
    let mut out = Vec::with_capacity(ITEM_ID_LEN);
    put_item_id(&mut out, id);
    out
}

/// `holds` key of a mailbox's litigation hold: `lit 00 MAILBOX`.
pub fn litigation_key(mailbox: &str) -> Vec<u8> {
    let mut k = b"lit\0".to_vec();
    k.extend_from_slice(mailbox.as_bytes());
    k
}

/// `holds` key of a case's hold: `case 00 NAME 00 ID` (eight decimal digits).
pub fn case_hold_key(case: &str, id: u32) -> Vec<u8> {
    let mut k = b"case\0".to_vec();
    k.extend_from_slice(case.as_bytes());
    k.push(0);
    k.extend_from_slice(format!("{id:08}").as_bytes());
    k
}

/// What a row of the `access` table is about: the first byte of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessKind {
    User = b'u' as isize,
    Token = b't' as isize,
    Member = b'm' as isize,
}

/// `kind ++ str(name)`: a user (`u`) or a token by its id (`t`).
pub fn access_key(kind: AccessKind, name: &str) -> Vec<u8> {
    let mut out = vec![kind as u8];
    put_str(&mut out, name);
    out
}

/// `m ++ str(case) ++ str(user)`: a user's membership of a case.
pub fn member_key(case: &str, user: &str) -> Vec<u8> {
    let mut out = access_key(AccessKind::Member, case);
    put_str(&mut out, user);
    out
}

/// The names an `access` key holds after its kind byte (one, or two for a
/// membership).
pub fn decode_access_key(bytes: &[u8]) -> Result<(AccessKind, Vec<String>)> {
    let kind = match bytes.first() {
        Some(b'u') => AccessKind::User,
        Some(b't') => AccessKind::Token,
        Some(b'm') => AccessKind::Member,
        _ => return Err(Reader::bad("access key kind")),
    };
    Ok((kind, names_after_kind(bytes)?))
}

/// What a row of the `connectors` table is about: the first byte of its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectorRow {
    /// `c ++ str(name)`: the connector's settings and state.
    Config = b'c' as isize,
    /// `p ++ str(name)`: its position in its source.
    Position = b'p' as isize,
    /// `b ++ str(name) ++ str(id)`: a business connection its source reported.
    Connection = b'b' as isize,
}

/// `kind ++ str(name) [++ str(sub)]`: a row of the `connectors` table.
pub fn connector_key(kind: ConnectorRow, name: &str, sub: Option<&str>) -> Vec<u8> {
    let mut out = vec![kind as u8];
    put_str(&mut out, name);
    if let Some(s) = sub {
        put_str(&mut out, s);
    }
    out
}

/// A `forward` key: `t ++ str(target)` (the target's settings), or
/// `l ++ str(target) ++ str(mailbox) ++ item_id(29) ++ u32 version` (one
/// ledger row: a version of a copy at a target).
pub fn forward_target_key(name: &str) -> Vec<u8> {
    let mut out = vec![b't'];
    put_str(&mut out, name);
    out
}

/// The first bytes of every ledger row of `target` (and `mailbox`).
pub fn ledger_prefix(target: &str, mailbox: Option<&str>) -> Vec<u8> {
    let mut out = vec![b'l'];
    put_str(&mut out, target);
    if let Some(m) = mailbox {
        put_str(&mut out, m);
    }
    out
}

pub fn ledger_key(target: &str, mailbox: &str, id: &ItemId, version: u32) -> Vec<u8> {
    let mut out = ledger_prefix(target, Some(mailbox));
    out.extend_from_slice(&item_id_bytes(id));
    out.extend_from_slice(&version.to_be_bytes());
    out
}

/// A ledger key's mailbox, item and version (after its target).
pub fn decode_ledger_key(bytes: &[u8]) -> Result<(String, String, ItemId, u32)> {
    if bytes.first() != Some(&b'l') {
        return Err(Reader::bad("ledger key kind"));
    }
    let mut r = Reader(&bytes[1..]);
    let target = r.string()?;
    let mailbox = r.string()?;
    let rest = r.0;
    if rest.len() < 4 {
        return Err(Reader::bad("ledger key"));
    }
    let (id, v) = rest.split_at(rest.len() - 4);
    let version = u32::from_be_bytes(v.try_into().expect("four bytes"));
    Ok((target, mailbox, decode_item_id(id)?, version))
}

/// The strings of a key after its kind byte.
pub fn decode_names(bytes: &[u8]) -> Result<Vec<String>> {
    names_after_kind(bytes)
}

/// The names in a `connectors` key after its kind byte.
pub fn decode_connector_key(bytes: &[u8]) -> Result<(ConnectorRow, Vec<String>)> {
    let kind = match bytes.first() {
        Some(b'c') => ConnectorRow::Config,
        Some(b'p') => ConnectorRow::Position,
        Some(b'b') => ConnectorRow::Connection,
        _ => return Err(Reader::bad("connector key kind")),
    };
    Ok((kind, names_after_kind(bytes)?))
}

/// The strings a key holds after its kind byte.
fn names_after_kind(bytes: &[u8]) -> Result<Vec<String>> {
    let mut r = Reader(bytes.get(1..).unwrap_or_default());
    let mut names = Vec::new();
    while !r.0.is_empty() {
        names.push(r.string()?);
    }
    Ok(names)
}

/// The prefix shared by every key of one mailbox folder (or, with `folder`
/// `None`, of one mailbox).
pub fn folder_prefix(mailbox: &str, folder: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, mailbox);
    if let Some(f) = folder {
        put_str(&mut out, f);
    }
    out
}

impl ItemKey {
    pub fn encode(&self) -> Vec<u8> {
        item_key(&self.mailbox, &self.folder, &self.item)
    }

    pub fn decode(bytes: &[u8]) -> Result<ItemKey> {
        let mut r = Reader(bytes);
        let mailbox = r.string()?;
        let folder = r.string()?;
        let item = r.item_id()?;
        r.end()?;
        Ok(ItemKey {
            mailbox,
            folder,
            item,
        })
    }
}

/// The encoded [`ItemKey`] of `item` filed in `mailbox`/`folder`.
pub fn item_key(mailbox: &str, folder: &str, item: &ItemId) -> Vec<u8> {
    let mut out = Vec::with_capacity(mailbox.len() + folder.len() + 4 + ITEM_ID_LEN);
    put_str(&mut out, mailbox);
    put_str(&mut out, folder);
    put_item_id(&mut out, item);
    out
}

/// The key of an `items` row (format 6): the name numbers of the mailbox and
/// the folder (see `store::names`), big-endian, then the item.
pub fn filing_key(mailbox: u32, folder: u32, item: &ItemId) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + ITEM_ID_LEN);
    out.extend_from_slice(&mailbox.to_be_bytes());
    out.extend_from_slice(&folder.to_be_bytes());
    put_item_id(&mut out, item);
    out
}

/// The mailbox's and folder's name numbers and the item of an `items` key.
pub fn decode_filing_key(bytes: &[u8]) -> Result<(u32, u32, ItemId)> {
    let number = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if bytes.len() != 8 + ITEM_ID_LEN {
        return Err(Error::Corrupt(format!(
            "items key {} has {} bytes, not {}",
            hex::encode(bytes),
            bytes.len(),
            8 + ITEM_ID_LEN
        )));
    }
    Ok((
        number(&bytes[..4]),
        number(&bytes[4..8]),
        decode_item_id(&bytes[8..])?,
    ))
}

pub fn decode_item_id(bytes: &[u8]) -> Result<ItemId> {
    let mut r = Reader(bytes);
    let id = r.item_id()?;
    r.end()?;
    Ok(id)
}

/// `(mailbox, folder)` pair key of the `folders` table.
pub fn folder_key(mailbox: &str, folder: &str) -> Vec<u8> {
    folder_prefix(mailbox, Some(folder))
}

pub fn decode_folder_key(bytes: &[u8]) -> Result<(String, String)> {
    let mut r = Reader(bytes);
    let m = r.string()?;
    let f = r.string()?;
    r.end()?;
    Ok((m, f))
}

/// The smallest byte string greater than every string starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bad(what: &str) -> Error {
        Error::Corrupt(format!("malformed key: {what}"))
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        if self.0.len() < N {
            return Err(Self::bad("truncated"));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("split_at gave N bytes"))
    }

    fn string(&mut self) -> Result<String> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            match self.0.get(i) {
                None => return Err(Self::bad("unterminated string")),
                Some(0) => match self.0.get(i + 1) {
                    Some(0xFF) => {
                        out.push(0);
                        i += 2;
                    }
                    Some(1) => {
                        self.0 = &self.0[i + 2..];
                        break;
                    }
                    _ => return Err(Self::bad("bad string escape")),
                },
                Some(&b) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| Self::bad("string is not UTF-8"))
    }

    fn i64(&mut self) -> Result<i64> {
        Ok((u64::from_be_bytes(self.take::<8>()?) ^ (1 << 63)) as i64)
    }

    fn item_id(&mut self) -> Result<ItemId> {
        let scope = u64::from_be_bytes(self.take::<8>()?);
        let chat = self.i64()?;
        let message = self.i64()?;
        let dup = u32::from_be_bytes(self.take::<4>()?);
        let part =
            Part::from_byte(self.take::<1>()?[0]).ok_or_else(|| Self::bad("unknown item part"))?;
        Ok(ItemId {
            scope,
            chat,
            message,
            dup,
            part,
        })
    }

    fn end(&self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Self::bad("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_id() -> impl Strategy<Value = ItemId> {
        (
            any::<u64>(),
            any::<i64>(),
            any::<i64>(),
            any::<u32>(),
            prop_oneof![
                Just(Part::Item),
                Just(Part::Deletion),
                Just(Part::Unnumbered)
            ],
        )
            .prop_map(|(scope, chat, message, dup, part)| ItemId {
                scope,
                chat,
                message,
                dup,
                part,
            })
    }

    fn arb_key() -> impl Strategy<Value = ItemKey> {
        // Strings with NULs, 0x01 and 0xFF-adjacent characters are the hard cases.
        let s = "[a\u{0}\u{1}\u{ff}b@.é]{0,6}";
        (s, s, arb_id()).prop_map(|(mailbox, folder, item)| ItemKey {
            mailbox,
            folder,
            item,
        })
    }

    proptest! {
        #[test]
        fn item_key_round_trips(k in arb_key()) {
            prop_assert_eq!(ItemKey::decode(&k.encode()).unwrap(), k);
        }

        #[test]
        fn item_key_bytes_sort_like_the_tuple(a in arb_key(), b in arb_key()) {
            let typed = (a.mailbox.as_bytes(), a.folder.as_bytes(), a.item)
                .cmp(&(b.mailbox.as_bytes(), b.folder.as_bytes(), b.item));
            prop_assert_eq!(a.encode().cmp(&b.encode()), typed);
        }

        #[test]
        fn a_folder_key_is_its_item_keys_prefix(k in arb_key()) {
            let f = folder_key(&k.mailbox, &k.folder);
            let item = k.encode();
            prop_assert_eq!(&item[..item.len() - ITEM_ID_LEN], f.as_slice());
        }

        #[test]
        fn folder_prefix_covers_exactly_its_keys(k in arb_key(), m in "[ab\u{0}]{0,3}") {
            let p = folder_prefix(&m, None);
            prop_assert_eq!(k.encode().starts_with(&p), k.mailbox == m);
        }
    }

    #[test]
    fn prefix_end_is_an_upper_bound() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF]), None);
    }

    #[test]
    fn garbage_keys_are_errors_not_panics() {
        assert!(ItemKey::decode(&[]).is_err());
        assert!(ItemKey::decode(&[b'a', 0, 7]).is_err());
        assert!(decode_item_id(&[0; 5]).is_err());
    }
}
