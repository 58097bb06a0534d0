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

/// The most bytes an encoded [`ItemId`] takes (format 9 on; 29 before).
pub const ITEM_ID_MAX: usize = 9 + 9 + 9 + 5 + 1;

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

/// An unsigned number in order: how many bytes it needs (0 to 8), then
/// those bytes, big-endian (a smaller number never needs more bytes).
pub fn put_var_u64(out: &mut Vec<u8>, v: u64) {
    let n = 8 - (v.leading_zeros() / 8) as usize;
    out.push(n as u8);
    out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
}

/// A signed number in order: `0x80 + n` then the `n` bytes of a number
/// `>= 0`; `0x7F - n` then the low `n` bytes of a negative one, where `n`
/// is the bytes `!v` needs (so that the larger a negative number's
/// magnitude, the smaller its first byte).
pub fn put_var_i64(out: &mut Vec<u8>, v: i64) {
    let u = if v >= 0 { v as u64 } else { !(v as u64) };
    let n = 8 - (u.leading_zeros() / 8) as usize;
    out.push(if v >= 0 {
        0x80 + n as u8
    } else {
        0x7F - n as u8
    });
    out.extend_from_slice(&(v as u64).to_be_bytes()[8 - n..]);
}

/// An [`ItemId`] (format 9 on): `scope` and `dup` as [`put_var_u64`],
/// `chat` and `message` as [`put_var_i64`], then the part's byte.
pub fn put_item_id(out: &mut Vec<u8>, id: &ItemId) {
    put_var_u64(out, id.scope);
    put_var_i64(out, id.chat);
    put_var_i64(out, id.message);
    put_var_u64(out, u64::from(id.dup));
    out.push(id.part as u8);
}

pub fn item_id_bytes(id: &ItemId) -> Vec<u8> {
    let mut out = Vec::with_capacity(ITEM_ID_MAX);
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
    read_ledger_key(bytes, Reader::item_id)
}

/// A ledger key with its item id read by `id`.
fn read_ledger_key<'a>(
    bytes: &'a [u8],
    id: fn(&mut Reader<'a>) -> Result<ItemId>,
) -> Result<(String, String, ItemId, u32)> {
    if bytes.first() != Some(&b'l') {
        return Err(Reader::bad("ledger key kind"));
    }
    whole(&bytes[1..], |r| {
        let target = r.string()?;
        let mailbox = r.string()?;
        let id = id(r)?;
        Ok((target, mailbox, id, u32::from_be_bytes(r.take::<4>()?)))
    })
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
        whole(bytes, |r| r.item_key(Reader::item_id))
    }
}

/// The encoded [`ItemKey`] of `item` filed in `mailbox`/`folder`.
pub fn item_key(mailbox: &str, folder: &str, item: &ItemId) -> Vec<u8> {
    let mut out = Vec::with_capacity(mailbox.len() + folder.len() + 4 + ITEM_ID_MAX);
    put_str(&mut out, mailbox);
    put_str(&mut out, folder);
    put_item_id(&mut out, item);
    out
}

/// The key of an `items` row: the name numbers of the mailbox and the
/// folder (see `store::names`), each as [`put_var_u64`] (format 9 on; u32
/// big-endian before), then the item.
pub fn filing_key(mailbox: u32, folder: u32, item: &ItemId) -> Vec<u8> {
    let mut out = filing_prefix(mailbox, Some(folder));
    put_item_id(&mut out, item);
    out
}

/// The first bytes of every `items` key of `mailbox` (and `folder`).
pub fn filing_prefix(mailbox: u32, folder: Option<u32>) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + ITEM_ID_MAX);
    put_var_u64(&mut out, mailbox.into());
    if let Some(f) = folder {
        put_var_u64(&mut out, f.into());
    }
    out
}

/// Reads an `items` key: the mailbox's and folder's name numbers and the
/// item (this format's, or an older one's in a migration).
pub type FilingKeyReader = fn(&[u8]) -> Result<(u32, u32, ItemId)>;

/// The mailbox's and folder's name numbers and the item of an `items` key.
pub fn decode_filing_key(bytes: &[u8]) -> Result<(u32, u32, ItemId)> {
    whole(bytes, |r| Ok((r.var_u32()?, r.var_u32()?, r.item_id()?)))
}

pub fn decode_item_id(bytes: &[u8]) -> Result<ItemId> {
    whole(bytes, Reader::item_id)
}

/// What `read` reads from `bytes`, which it must read to the end.
fn whole<'a, T>(bytes: &'a [u8], read: impl FnOnce(&mut Reader<'a>) -> Result<T>) -> Result<T> {
    let mut r = Reader(bytes);
    let v = read(&mut r)?;
    r.end()?;
    Ok(v)
}

/// The [`ItemId`] at the start of `bytes` and the bytes after it.
pub fn take_item_id(bytes: &[u8]) -> Result<(ItemId, &[u8])> {
    let mut r = Reader(bytes);
    let id = r.item_id()?;
    Ok((id, r.0))
}

/// The keys of formats 2 to 8, whose [`ItemId`] took 29 bytes (`scope` u64
/// BE, `chat` and `message` i64 BE with the sign bit flipped, `dup` u32 BE,
/// the part) and whose `items` keys began with two u32 BE name numbers:
/// read only by the migrations, which write the keys of today.
pub mod fixed {
    use super::*;

    /// Length of an encoded [`ItemId`] of formats 2 to 8.
    pub const ITEM_ID_LEN: usize = 8 + 8 + 8 + 4 + 1;

    pub fn item_id_bytes(id: &ItemId) -> Vec<u8> {
        let mut out = Vec::with_capacity(ITEM_ID_LEN);
        out.extend_from_slice(&id.scope.to_be_bytes());
        put_i64(&mut out, id.chat);
        put_i64(&mut out, id.message);
        out.extend_from_slice(&id.dup.to_be_bytes());
        out.push(id.part as u8);
        out
    }

    pub fn decode_item_id(bytes: &[u8]) -> Result<ItemId> {
        whole(bytes, Reader::fixed_item_id)
    }

    /// An `items` key of formats 6 to 8.
    pub fn filing_key(mailbox: u32, folder: u32, item: &ItemId) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + ITEM_ID_LEN);
        out.extend_from_slice(&mailbox.to_be_bytes());
        out.extend_from_slice(&folder.to_be_bytes());
        out.extend_from_slice(&item_id_bytes(item));
        out
    }

    pub fn decode_filing_key(bytes: &[u8]) -> Result<(u32, u32, ItemId)> {
        whole(bytes, |r| {
            let m = u32::from_be_bytes(r.take::<4>()?);
            let f = u32::from_be_bytes(r.take::<4>()?);
            Ok((m, f, r.fixed_item_id()?))
        })
    }

    /// An [`ItemKey`] (`tombstones`) of formats 2 to 8.
    pub fn decode_item_key(bytes: &[u8]) -> Result<ItemKey> {
        whole(bytes, |r| r.item_key(Reader::fixed_item_id))
    }

    /// A ledger key of formats 2 to 8, written in today's form.
    pub fn ledger_key_anew(bytes: &[u8]) -> Result<Vec<u8>> {
        let (target, mailbox, id, version) = read_ledger_key(bytes, Reader::fixed_item_id)?;
        Ok(ledger_key(&target, &mailbox, &id, version))
    }
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

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take::<1>()?[0])
    }

    /// `n` bytes, big-endian, as a number; refused when a shorter form
    /// would do (`lead`: the byte a needless first byte would be), so
    /// that every number has one key.
    fn be(&mut self, n: usize, lead: u8) -> Result<u64> {
        if n > 8 || self.0.len() < n {
            return Err(Self::bad("truncated number"));
        }
        let (head, rest) = self.0.split_at(n);
        if head.first() == Some(&lead) {
            return Err(Self::bad("number not in its shortest form"));
        }
        self.0 = rest;
        Ok(head.iter().fold(0, |v, &b| (v << 8) | u64::from(b)))
    }

    fn var_u64(&mut self) -> Result<u64> {
        let n = self.byte()?;
        self.be(n.into(), 0)
    }

    fn var_u32(&mut self) -> Result<u32> {
        u32::try_from(self.var_u64()?).map_err(|_| Self::bad("number past u32"))
    }

    fn var_i64(&mut self) -> Result<i64> {
        let tag = self.byte()?;
        if tag >= 0x80 {
            let v = self.be((tag - 0x80).into(), 0)?;
            i64::try_from(v).map_err(|_| Self::bad("number past i64"))
        } else {
            let n = usize::from(0x7F - tag);
            if n > 8 {
                return Err(Self::bad("number past i64"));
            }
            // The low n bytes of a negative number: the bytes above them
            // are all ones, and the highest of the n is not (else n - 1
            // would do).
            let low = self.be(n, 0xFF)?;
            let high = if n == 8 { 0 } else { u64::MAX << (8 * n) };
            let v = (high | low) as i64;
            if v >= 0 {
                return Err(Self::bad("number past i64"));
            }
            Ok(v)
        }
    }

    fn item_id(&mut self) -> Result<ItemId> {
        let scope = self.var_u64()?;
        let chat = self.var_i64()?;
        let message = self.var_i64()?;
        let dup = u32::try_from(self.var_u64()?).map_err(|_| Self::bad("dup past u32"))?;
        self.rest_of_id(ItemId {
            dup,
            ..ItemId::new(scope, chat, message)
        })
    }

    fn item_key(&mut self, id: fn(&mut Self) -> Result<ItemId>) -> Result<ItemKey> {
        Ok(ItemKey {
            mailbox: self.string()?,
            folder: self.string()?,
            item: id(self)?,
        })
    }

    fn fixed_item_id(&mut self) -> Result<ItemId> {
        let scope = u64::from_be_bytes(self.take::<8>()?);
        let chat = self.i64()?;
        let message = self.i64()?;
        let dup = u32::from_be_bytes(self.take::<4>()?);
        self.rest_of_id(ItemId {
            dup,
            ..ItemId::new(scope, chat, message)
        })
    }

    /// `id` with its part, the last byte of either layout.
    fn rest_of_id(&mut self, id: ItemId) -> Result<ItemId> {
        let part = Part::from_byte(self.byte()?).ok_or_else(|| Self::bad("unknown item part"))?;
        Ok(ItemId { part, ..id })
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
            prop_assert_eq!(&item[..item.len() - item_id_bytes(&k.item).len()], f.as_slice());
        }

        #[test]
        fn item_ids_round_trip_and_sort_like_the_tuple(a in arb_id(), b in arb_id()) {
            let (ka, kb) = (item_id_bytes(&a), item_id_bytes(&b));
            prop_assert!(ka.len() <= ITEM_ID_MAX);
            prop_assert_eq!(decode_item_id(&ka).unwrap(), a);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(fixed::decode_item_id(&fixed::item_id_bytes(&a)).unwrap(), a);
        }

        #[test]
        fn filing_keys_round_trip_and_sort_like_the_tuple(
            a in (any::<u32>(), any::<u32>(), arb_id()),
            b in (any::<u32>(), any::<u32>(), arb_id()),
        ) {
            let (ka, kb) = (filing_key(a.0, a.1, &a.2), filing_key(b.0, b.1, &b.2));
            prop_assert_eq!(decode_filing_key(&ka).unwrap(), a);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert!(ka.starts_with(&filing_prefix(a.0, Some(a.1))));
            prop_assert_eq!(kb.starts_with(&filing_prefix(a.0, None)), a.0 == b.0);
        }

        #[test]
        fn ledger_keys_round_trip(t in "[a\u{0}é]{0,4}", m in "[b\u{0}]{0,4}", id in arb_id(), v in any::<u32>()) {
            let k = ledger_key(&t, &m, &id, v);
            prop_assert_eq!(decode_ledger_key(&k).unwrap(), (t.clone(), m.clone(), id, v));
            let mut old = ledger_prefix(&t, Some(&m));
            old.extend_from_slice(&fixed::item_id_bytes(&id));
            old.extend_from_slice(&v.to_be_bytes());
            prop_assert_eq!(fixed::ledger_key_anew(&old).unwrap(), k);
        }

        /// No byte string decodes to an id whose encoding is another: every
        /// id has one key.
        #[test]
        fn only_the_shortest_form_decodes(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(id) = decode_item_id(&bytes) {
                prop_assert_eq!(item_id_bytes(&id), bytes);
            }
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
        assert!(fixed::decode_item_id(&[0; 5]).is_err());
    }

    #[test]
    fn numbers_take_the_bytes_they_need() {
        let id = |scope, chat, message| ItemId::new(scope, chat, message);
        let len = |i: ItemId| item_id_bytes(&i).len();
        assert_eq!(len(id(0, 0, 0)), 5);
        assert_eq!(len(id(0, -1, 1)), 6);
        assert_eq!(len(id(1_000_001, 2_000_001, 12_345)), 13);
        assert_eq!(len(id(0, -1_001_234_567_890, 1)), 11);
        for v in [i64::MIN, -257, -256, -255, -1, 0, 1, 255, 256, i64::MAX] {
            let mut b = Vec::new();
            put_var_i64(&mut b, v);
            assert_eq!(Reader(&b).var_i64().unwrap(), v, "{v}");
        }
    }
}
