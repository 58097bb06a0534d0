//! Groups of item versions (format 8): the versions a write transaction
//! stores go into pack records of kind `g`, many to a record, so that zstd
//! compresses each with its neighbours (the same chat, sender and JSON
//! shape) as context instead of alone. At 1M messages a version takes about
//! 40% fewer bytes this way than in a record of its own (see docs/perf.md).
//!
//! A group's content is its members back to back, each `len (u32 LE) ++
//! bytes`, the bytes `codec(model::Item)`. A version's `at` is its group's
//! record; the member is the one whose SHA-256 is the version's `content`,
//! so finding it is checking it. A version larger than [`MEMBER_MAX`] is a
//! record (`v`) of its own, so that reading a small one never inflates a
//! large one.
//!
//! Destruction stays exact: a transaction that destroys a member writes the
//! group's other live members into a new group and zeroes the whole old
//! record once it commits (`Tx::settle_groups`).

use super::pack::{Kind, PackRef, UNPLACED};
use super::records::Version;
use super::{SourceRow, Tx, codec, item_id_bytes};
use crate::error::{Error, Result};
use std::ops::Range;
use std::sync::OnceLock;

/// A group is closed once its members hold this many bytes.
pub const TARGET: usize = 32 * 1024;

/// A version larger than this is a record of its own.
pub const MEMBER_MAX: usize = 16 * 1024;

/// The group a transaction is filling.
#[derive(Default)]
pub struct Open {
    bytes: Vec<u8>,
    members: Vec<([u8; 32], Range<usize>)>,
}

impl Open {
    pub fn add(&mut self, content: &[u8], sha: &[u8; 32]) {
        self.bytes
            .extend_from_slice(&(content.len() as u32).to_le_bytes());
        let start = self.bytes.len();
        self.bytes.extend_from_slice(content);
        self.members.push((*sha, start..self.bytes.len()));
    }

    /// Bytes of content so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member whose SHA-256 is `sha`.
    pub fn member(&self, sha: &[u8; 32]) -> Option<&[u8]> {
        self.members
            .iter()
            .find(|(s, _)| s == sha)
            .map(|(_, r)| &self.bytes[r.clone()])
    }

    /// The group's content; the group is empty again.
    pub fn take(&mut self) -> Vec<u8> {
        self.members.clear();
        std::mem::take(&mut self.bytes)
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.members.clear();
    }
}

/// A group record's content, split into its members; each member is hashed
/// the first time a lookup passes it (a group read for one version hashes
/// about half of it).
pub struct Group {
    content: Vec<u8>,
    members: Vec<(OnceLock<[u8; 32]>, Range<usize>)>,
}

impl Group {
    /// Splits `content`; a length that runs past the end is an error, never
    /// a panic.
    pub fn parse(content: Vec<u8>) -> std::result::Result<Group, String> {
        let members = split(&content)?
            .into_iter()
            .map(|r| (OnceLock::new(), r))
            .collect();
        Ok(Group { content, members })
    }

    fn sha(&self, i: usize) -> &[u8; 32] {
        let (sha, r) = &self.members[i];
        sha.get_or_init(|| crate::model::sha256(&self.content[r.clone()]))
    }

    /// The member whose SHA-256 is `sha`.
    pub fn find(&self, sha: &[u8; 32]) -> Option<&[u8]> {
        (0..self.members.len())
            .find(|&i| self.sha(i) == sha)
            .map(|i| &self.content[self.members[i].1.clone()])
    }

    /// Every member with its SHA-256, in the order they were added.
    pub fn members(&self) -> impl Iterator<Item = (&[u8; 32], &[u8])> {
        (0..self.members.len()).map(|i| (self.sha(i), &self.content[self.members[i].1.clone()]))
    }
}

/// The members' ranges in a group's content.
pub fn split(content: &[u8]) -> std::result::Result<Vec<Range<usize>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < content.len() {
        let Some(len) = content.get(at..at + 4) else {
            return Err(format!("a group member's length is cut off at byte {at}"));
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let start = at + 4;
        if len > content.len() - start {
            return Err(format!(
                "a group member at byte {at} runs past the group's end"
            ));
        }
        out.push(start..start + len);
        at = start + len;
    }
    if out.is_empty() {
        return Err("an empty group".into());
    }
    Ok(out)
}

impl Tx<'_> {
    /// Stores a version's content and returns its place: [`UNPLACED`] for a
    /// member of the open group (set when it closes), or a record of its own
    /// for a large one. The caller writes the row next.
    pub(super) fn store_content(&mut self, content: &[u8], sha: &[u8; 32]) -> Result<PackRef> {
        if content.len() > MEMBER_MAX {
            return self.pack.append(Kind::Version, content);
        }
        self.pack.add_member(content, sha);
        Ok(UNPLACED)
    }

    /// Closes the open group once it is full. Called before a row is read
    /// for writing, so that no row in hand holds a place the close sets.
    pub(super) fn make_room(&mut self) -> Result<()> {
        if self.pack.group_full() {
            self.close_group()?;
        }
        Ok(())
    }

    /// Appends the open group as one record and writes the rows that wait
    /// for its place.
    pub(super) fn close_group(&mut self) -> Result<()> {
        let Some(at) = self.pack.close_group()? else {
            if self.unplaced.is_empty() {
                return Ok(());
            }
            return Err(Error::Internal(
                "source rows wait for a group that holds nothing".into(),
            ));
        };
        for (idb, bytes) in std::mem::take(&mut self.unplaced) {
            let mut versions = SourceRow::versions_of(&bytes)?;
            for v in versions.iter_mut().filter(|v| v.at == UNPLACED) {
                v.at = at;
            }
            let bytes = SourceRow::with_versions(&bytes, &versions)?;
            self.sources.insert(idb.as_slice(), bytes.as_slice())?;
        }
        Ok(())
    }

    /// Writes an encoded `sources` row, or keeps it until the open group
    /// closes when `unplaced` (a version of it is in that group).
    pub(super) fn put_source_bytes(
        &mut self,
        idb: &[u8],
        bytes: Vec<u8>,
        unplaced: bool,
    ) -> Result<()> {
        if unplaced {
            self.unplaced.insert(idb.to_vec(), bytes);
        } else {
            self.unplaced.remove(idb);
            self.sources.insert(idb, bytes.as_slice())?;
        }
        Ok(())
    }

    pub(super) fn remove_source(&mut self, idb: &[u8]) -> Result<()> {
        self.unplaced.remove(idb);
        self.sources.remove(idb)?;
        Ok(())
    }

    /// A version's content, checked against its hash, wherever this
    /// transaction sees it: the open group, a record it appended, or a
    /// committed one.
    pub(super) fn read_version(&mut self, v: &Version) -> Result<Vec<u8>> {
        if v.at == UNPLACED {
            return self.pack.open_member(&v.content).ok_or_else(|| {
                Error::Internal(format!(
                    "version {} is not in the open group",
                    hex::encode(v.content)
                ))
            });
        }
        match self.pack.pending_raw(&v.at)? {
            Some(raw) => self.packs.version_in(&v.at, &raw, &v.content, false),
            None => self.packs.read_version(&v.at, &v.content),
        }
    }

    /// Destroys the record of a version once this transaction commits; the
    /// other live members of its group are stored anew first
    /// ([`Tx::settle_groups`]).
    pub(super) fn destroy_version(&mut self, at: &PackRef) -> Result<()> {
        if *at == UNPLACED {
            return Err(Error::Internal(
                "a version destroyed in the transaction that stores it".into(),
            ));
        }
        self.destroyed_versions.insert(*at);
        Ok(())
    }

    /// The end of a transaction's work: each group a destroyed version was
    /// in gives its live members to the open group, each destroyed record
    /// is queued for zeroing, and the open group closes.
    pub(super) fn settle_groups(&mut self) -> Result<()> {
        for at in std::mem::take(&mut self.destroyed_versions) {
            self.keep_live_members(&at)?;
            self.destroy(&at)?;
        }
        self.close_group()
    }

    /// Stores anew each member of the group at `at` that a row still points
    /// at. A member whose bytes no longer match the version pointing at it
    /// (damaged) goes along as it is: it is destroyed only with its item,
    /// never for sharing a record (a hold keeps even damaged bytes). A group
    /// that cannot be read at all is destroyed whole: none of its members
    /// could be told apart (`verify` names them).
    fn keep_live_members(&mut self, at: &PackRef) -> Result<()> {
        let group = match self.pack.pending_raw(at)? {
            Some(raw) => self.packs.group_in(at, &raw),
            None => self.packs.read_group(at),
        };
        let group = match group {
            Ok(Some(g)) => g,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(record = %at, error = %e, "a damaged group is destroyed whole");
                return Ok(());
            }
        };
        for (sha, content) in group.members() {
            let Ok(id) = codec::item_id_of(content) else {
                tracing::warn!(record = %at, "a group member that names no item is destroyed");
                continue;
            };
            self.make_room()?;
            let idb = item_id_bytes(&id);
            let mut row = self.source_row(&idb)?;
            let versions = &mut row.rec.versions;
            let mine = versions
                .iter()
                .position(|v| v.at == *at && v.content == *sha)
                .or_else(|| {
                    versions
                        .iter()
                        .position(|v| v.at == *at && group.find(&v.content).is_none())
                });
            if let Some(i) = mine {
                versions[i].at = UNPLACED;
                self.pack.add_member(content, sha);
                self.put_source(&idb, &row)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sha256;

    #[test]
    fn members_are_found_by_their_hash_and_damage_is_an_error() {
        let mut open = Open::default();
        let a = b"first version".to_vec();
        let b = vec![7u8; 300];
        open.add(&a, &sha256(&a));
        open.add(&b, &sha256(&b));
        assert_eq!(open.member(&sha256(&b)), Some(&b[..]));
        let content = open.take();
        assert!(open.is_empty());
        assert_eq!(open.len(), 0);
        let g = Group::parse(content.clone()).unwrap();
        assert_eq!(g.find(&sha256(&a)), Some(&a[..]));
        assert_eq!(g.find(&sha256(&b)), Some(&b[..]));
        assert_eq!(g.find(&sha256(b"other")), None);
        assert_eq!(g.members().count(), 2);
        for cut in 1..content.len() {
            if cut == 4 + a.len() {
                continue; // a whole first member is a group of one
            }
            assert!(
                Group::parse(content[..cut].to_vec()).is_err(),
                "cut at {cut}"
            );
        }
        let mut long = content.clone();
        long[0] = 0xff;
        assert!(Group::parse(long).is_err());
        assert!(Group::parse(Vec::new()).is_err());
    }

    /// Any damaged byte of a framed group is an error, or the member read
    /// back is exactly what was stored: never a panic, never other bytes.
    #[test]
    fn every_damaged_byte_of_a_framed_group_is_caught() {
        use crate::store::frame::{self, Dicts, Framer, Kind};
        let members: Vec<Vec<u8>> = (0..20)
            .map(|i| format!("message {i}: the quarterly numbers look good").into_bytes())
            .collect();
        let mut open = Open::default();
        for m in &members {
            open.add(m, &sha256(m));
        }
        let content = open.take();
        let mut record = Vec::new();
        Framer::new(None)
            .unwrap()
            .frame(Kind::Group, &content, &mut record)
            .unwrap();
        let dicts = Dicts::default();
        for at in 0..record.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = record.clone();
                bad[at] ^= flip;
                let Ok((_, c)) = frame::unframe_kind(&bad, &dicts, &"test") else {
                    continue;
                };
                let Ok(g) = Group::parse(c) else { continue };
                for m in &members {
                    if let Some(found) = g.find(&sha256(m)) {
                        assert_eq!(found, &m[..]);
                    }
                }
            }
        }
    }
}
