//! Reading another archive's packs and blob files without its catalogue:
//! what `tgvault recover --from` files again after a damaged catalogue was
//! replaced by a backup's. Framed pack records describe themselves
//! (`frame::scan`), so every whole item version and inline blob is found;
//! records retention destroyed are zeros and are not. Packs written by
//! format 3 (bare records, before `meta/framed_from`) cannot be read
//! without their catalogue and are reported, not guessed at.

use super::blob::{BlobDir, StagedBlob};
use super::filings::FilingLog;
use super::frame::{self, Dicts, Kind};
use super::group;
use super::{Archive, codec, pack};
use crate::error::{Error, Result};
use crate::model::{Item, ItemId};
use std::collections::HashMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The packs and blob files of an archive whose catalogue is not used.
pub struct Salvage {
    dir: PathBuf,
    /// Pack files in id order.
    packs: Vec<(u32, PathBuf)>,
    /// Inline blobs found in the packs: hash -> (pack, offset, record length).
    blobs: HashMap<[u8; 32], (u32, u64, usize)>,
    dicts: Dicts,
    /// Where the filing logs say each item was filed: name indexes into
    /// `names` (mailbox, folder).
    filed: HashMap<ItemId, Vec<(u32, u32)>>,
    names: Vec<String>,
}

/// One item version found in a pack.
pub struct Found {
    pub item: Item,
    /// `packs/NNNNNNNN.pack at OFFSET`.
    pub place: String,
    /// `(mailbox, folder)` of each copy the packs' filing logs name (none
    /// in packs written before format 7).
    pub filed: Vec<(String, String)>,
}

impl Salvage {
    /// Lists `dir`'s packs and finds every whole inline blob in them (a
    /// first pass, so that a version can find its blob wherever it lies).
    /// The dictionaries come from the packs themselves and from `archive`
    /// (a restored backup of the same archive holds the same ones).
    pub fn open(dir: &Path, archive: &Archive) -> Result<Salvage> {
        let packs_dir = dir.join("packs");
        let mut packs = Vec::new();
        for e in fs::read_dir(&packs_dir).map_err(|e| Error::io(&packs_dir, e))? {
            let path = e.map_err(|e| Error::io(&packs_dir, e))?.path();
            if let Some(id) = pack::id_of(&path) {
                packs.push((id, path));
            }
        }
        packs.sort();
        let dicts = Dicts::default();
        for bytes in archive.dictionaries()? {
            dicts.add(&bytes)?;
        }
        let mut s = Salvage {
            dir: dir.to_path_buf(),
            packs,
            blobs: HashMap::new(),
            dicts,
            filed: HashMap::new(),
            names: Vec::new(),
        };
        s.find_blobs_and_filings()?;
        Ok(s)
    }

    /// The first pass: every whole inline blob and filing log.
    fn find_blobs_and_filings(&mut self) -> Result<()> {
        let mut names: HashMap<String, u32> = HashMap::new();
        for (id, path) in self.packs.clone() {
            let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            for f in frame::scan(&bytes, &self.dicts) {
                let (true, Ok(content)) = (f.whole, &f.content) else {
                    continue;
                };
                match f.kind {
                    Kind::Blob => {
                        let sha = crate::model::sha256(content);
                        self.blobs.insert(sha, (id, f.offset as u64, f.len));
                    }
                    Kind::Filings => {
                        // A log that does not decode is reported by the
                        // versions it leaves unplaced (they are quarantined).
                        if let Ok(log) = codec::decode::<FilingLog>(content) {
                            self.add_filings(&log, &mut names);
                        }
                    }
                    Kind::Version | Kind::Group | Kind::Dict => {}
                }
            }
        }
        Ok(())
    }

    fn add_filings(&mut self, log: &FilingLog, names: &mut HashMap<String, u32>) {
        let mut number = |name: &str| {
            let next = names.len() as u32;
            *names.entry(name.to_string()).or_insert_with(|| {
                self.names.push(name.to_string());
                next
            })
        };
        for (id, m, f) in log.each().flatten() {
            let place = (number(m), number(f));
            let places = self.filed.entry(id).or_default();
            if !places.contains(&place) {
                places.push(place);
            }
        }
    }

    fn filed(&self, id: &ItemId) -> Vec<(String, String)> {
        let name = |i: u32| self.names[i as usize].clone();
        self.filed
            .get(id)
            .map(|places| places.iter().map(|&(m, f)| (name(m), name(f))).collect())
            .unwrap_or_default()
    }

    /// Calls `f` with every whole item version in the packs, in pack order.
    /// A record that is damaged, or whose content is not an item, is
    /// skipped; what was skipped is returned, each naming its pack and place.
    pub fn for_each_version(&self, mut f: impl FnMut(Found) -> Result<()>) -> Result<Vec<String>> {
        let mut damaged = Vec::new();
        for (id, path) in &self.packs {
            let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
            let name = format!("packs/{}", pack::file_name(*id));
            let found = frame::scan(&bytes, &self.dicts);
            if found.is_empty() && !bytes.iter().all(|&b| b == 0) {
                damaged.push(format!(
                    "{name}: no framed record (a pack of format 3, or damaged): its versions can only come from a backup"
                ));
            }
            for rec in found {
                let place = format!("{name} at {}", rec.offset);
                match (rec.kind, rec.whole, rec.content) {
                    (Kind::Version, true, Ok(content)) => {
                        self.found(&content, place, &mut f, &mut damaged)?
                    }
                    (Kind::Group, true, Ok(content)) => match group::split(&content) {
                        Ok(members) => {
                            for (i, m) in members.into_iter().enumerate() {
                                let place = format!("{place}, version {} of its group", i + 1);
                                self.found(&content[m], place, &mut f, &mut damaged)?;
                            }
                        }
                        Err(why) => damaged.push(format!("{place}: {why}")),
                    },
                    (_, _, Err(why)) => damaged.push(format!("{place}: {why}")),
                    (_, false, _) => {
                        damaged.push(format!("{place}: its content does not match its hash"))
                    }
                    _ => {}
                }
            }
        }
        Ok(damaged)
    }

    /// Hands `content`, an item version found at `place`, to `f`.
    fn found(
        &self,
        content: &[u8],
        place: String,
        f: &mut impl FnMut(Found) -> Result<()>,
        damaged: &mut Vec<String>,
    ) -> Result<()> {
        match codec::decode_item(content) {
            Ok(item) => {
                let filed = self.filed(&item.id);
                f(Found { item, place, filed })
            }
            Err(e) => {
                damaged.push(format!("{place}: {e}"));
                Ok(())
            }
        }
    }

    /// The archive directory these packs belong to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stages blob `sha` into `archive` from these packs or blob files;
    /// `None` when neither holds it whole.
    pub fn stage_blob(&self, archive: &Archive, sha: &[u8; 32]) -> Result<Option<StagedBlob>> {
        if let Some(&(pack, offset, len)) = self.blobs.get(sha) {
            let path = self.dir.join("packs").join(pack::file_name(pack));
            let mut record = vec![0; len];
            let mut f = fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            f.seek(SeekFrom::Start(offset))
                .and_then(|_| f.read_exact(&mut record))
                .map_err(|e| Error::io(&path, e))?;
            let content = frame::unframe(&record, &self.dicts, &path.display())?;
            return self.staged(archive, std::io::Cursor::new(content), &path, sha);
        }
        let Some(file) = BlobDir::new(&self.dir).find(sha) else {
            return Ok(None);
        };
        let path = file.path().to_path_buf();
        match file.open() {
            Ok(r) => self.staged(archive, r, &path, sha),
            Err(e) => Err(e),
        }
    }

    /// Stages `src`, unless its bytes are not those of `sha` (damaged).
    fn staged(
        &self,
        archive: &Archive,
        src: impl Read,
        path: &Path,
        sha: &[u8; 32],
    ) -> Result<Option<StagedBlob>> {
        let mut src = ReadFailed {
            inner: src,
            failed: false,
        };
        let staged = match archive.stage_blob(&mut src, path, None) {
            Ok(s) => s,
            // A compressed file that does not decompress: damaged too.
            Err(e) if src.failed => {
                tracing::warn!(error = %e, "a damaged blob file is not salvaged");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if &staged.blob_ref().sha256 == sha {
            return Ok(Some(staged));
        }
        if let StagedBlob::File(r) = &staged {
            archive.drop_unused_blob_files(&[r.sha256])?;
        }
        Ok(None)
    }
}

/// A reader that remembers whether a read failed.
struct ReadFailed<R> {
    inner: R,
    failed: bool,
}

impl<R: Read> Read for ReadFailed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let out = self.inner.read(buf);
        self.failed |= out.is_err();
        out
    }
}
