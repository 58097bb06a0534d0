//! Content-addressed attachment blobs. Small blobs (up to [`INLINE_MAX`]) travel
//! in memory and are appended to a pack file (see `pack`) by the same
//! transaction as the items that use them; larger ones are streamed to a file
//! under `blobs/sha256/`, made durable, and only then referenced by a transaction.
//! Either way the bytes are hashed while they are read, so no blob is ever held
//! whole in memory above the inline limit.
//!
//! A blob file is compressed when its first MiB compresses by a tenth or
//! more (decided by trying, never by the file's name or type): it is then
//! one zstd frame in `HEX.zst`, which `zstd -d` opens; otherwise the bytes
//! as they came in `HEX`. JPEG, MP4, ZIP and the like stay as they are.

use crate::error::{Error, Result};
use crate::model::BlobRef;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Blobs up to this size are stored in pack files, larger ones as files.
pub const INLINE_MAX: u64 = 1 << 20;

/// The zstd level of compressed blob files (the packs' level).
const LEVEL: i32 = 3;

/// A blob file is compressed when its first MiB compresses to at most this
/// many tenths of its size.
const WORTH_TENTHS: usize = 9;

/// The suffix of a compressed blob file.
const ZST: &str = "zst";

/// One blob's file, as it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobFile {
    /// The bytes as they came.
    Plain(PathBuf),
    /// One zstd frame.
    Zstd(PathBuf),
}

impl BlobFile {
    pub fn path(&self) -> &Path {
        match self {
            BlobFile::Plain(p) | BlobFile::Zstd(p) => p,
        }
    }

    /// A reader of the blob's bytes (decompressed).
    pub fn open(&self) -> Result<Box<dyn Read + Send>> {
        let f = File::open(self.path()).map_err(|e| Error::io(self.path(), e))?;
        Ok(match self {
            BlobFile::Plain(_) => Box::new(io::BufReader::new(f)),
            BlobFile::Zstd(p) => {
                Box::new(zstd::stream::read::Decoder::new(f).map_err(|e| Error::io(p, e))?)
            }
        })
    }
}

/// A blob read from the source, ready to be referenced by an item.
pub enum StagedBlob {
    /// Bytes to be appended to a pack by the filing transaction.
    Inline(BlobRef, Vec<u8>),
    /// Already durable in the blob directory.
    File(BlobRef),
}

impl StagedBlob {
    pub fn blob_ref(&self) -> BlobRef {
        match self {
            StagedBlob::Inline(r, _) | StagedBlob::File(r) => *r,
        }
    }

    /// The hash of a blob staged as a file (to remove if it is not filed).
    pub fn file_sha(&self) -> Option<[u8; 32]> {
        match self {
            StagedBlob::File(r) => Some(r.sha256),
            StagedBlob::Inline(..) => None,
        }
    }
}

pub struct BlobDir {
    root: PathBuf,
    tmp_seq: AtomicU64,
}

impl BlobDir {
    pub fn new(archive_dir: &Path) -> BlobDir {
        BlobDir {
            root: archive_dir.join("blobs"),
            tmp_seq: AtomicU64::new(0),
        }
    }

    /// Removes partial blob files left by a process that died while staging.
    /// Called with the database open, whose lock keeps other processes out.
    pub fn clear_staging(&self) -> Result<()> {
        let tmp = self.root.join("tmp");
        let entries = match fs::read_dir(&tmp) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&tmp, e)),
        };
        for e in entries {
            let p = e.map_err(|e| Error::io(&tmp, e))?.path();
            if p.extension().is_some_and(|x| x == "part") {
                fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        Ok(())
    }

    /// Where the blob's file is when stored as it came.
    pub fn path_of(&self, sha: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(sha);
        self.root.join("sha256").join(&hex[..2]).join(&hex)
    }

    /// Where the blob's file is when compressed.
    pub fn zst_path_of(&self, sha: &[u8; 32]) -> PathBuf {
        self.path_of(sha).with_extension(ZST)
    }

    /// The blob's file, whichever way it is stored; `None` when there is
    /// none.
    pub fn find(&self, sha: &[u8; 32]) -> Option<BlobFile> {
        let plain = self.path_of(sha);
        if plain.exists() {
            return Some(BlobFile::Plain(plain));
        }
        let zst = self.zst_path_of(sha);
        zst.exists().then_some(BlobFile::Zstd(zst))
    }

    /// The blob's file, or an error naming where it should be.
    pub fn file(&self, sha: &[u8; 32]) -> Result<BlobFile> {
        self.find(sha).ok_or_else(|| {
            let path = self.path_of(sha);
            Error::io(&path, io::Error::from(io::ErrorKind::NotFound))
        })
    }

    /// Removes the blob's file, whichever way it is stored; whether there
    /// was one.
    pub fn remove(&self, sha: &[u8; 32]) -> Result<bool> {
        let mut removed = false;
        for p in [self.path_of(sha), self.zst_path_of(sha)] {
            match fs::remove_file(&p) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        Ok(removed)
    }

    /// The blob named by a file name in the blob directory, and whether
    /// the file is compressed.
    pub fn parse_name(name: &str) -> Option<([u8; 32], bool)> {
        let (hex, zst) = match name.strip_suffix(".zst") {
            Some(h) => (h, true),
            None => (name, false),
        };
        let mut sha = [0u8; 32];
        hex::decode_to_slice(hex, &mut sha).ok()?;
        Some((sha, zst))
    }

    /// Reads `src` to its end, hashing as it goes. Returns the bytes inline when
    /// they fit, else streams them into the blob directory. `what` names the
    /// source in errors; `size` is its length when known (one allocation and
    /// two reads instead of a growing buffer: 50,000 files in a 1M-message
    /// import made 400,000 more read calls without it).
    pub fn stage(&self, mut src: impl Read, what: &Path, size: Option<u64>) -> Result<StagedBlob> {
        let mut hasher = Sha256::new();
        let mut head = Vec::with_capacity(size.map_or(0, |n| n.min(INLINE_MAX) as usize + 1));
        (&mut src)
            .take(INLINE_MAX + 1)
            .read_to_end(&mut head)
            .map_err(|e| Error::io(what, e))?;
        if head.len() as u64 <= INLINE_MAX {
            hasher.update(&head);
            let r = BlobRef {
                sha256: hasher.finalize().into(),
                size: head.len() as u64,
            };
            return Ok(StagedBlob::Inline(r, head));
        }
        let tmp_dir = self.root.join("tmp");
        fs::create_dir_all(&tmp_dir).map_err(|e| Error::io(&tmp_dir, e))?;
        let tmp = tmp_dir.join(format!(
            "{}-{}.part",
            std::process::id(),
            self.tmp_seq.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let compress = compresses(&head);
            let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            let mut out = Out::new(file, compress).map_err(|e| Error::io(&tmp, e))?;
            hasher.update(&head);
            out.write_all(&head).map_err(|e| Error::io(&tmp, e))?;
            let mut size = head.len() as u64;
            drop(head);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io(what, e)),
                };
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(|e| Error::io(&tmp, e))?;
                size += n as u64;
            }
            out.finish()
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&tmp, e))?;
            let r = BlobRef {
                sha256: hasher.finalize().into(),
                size,
            };
            let dest = if compress {
                self.zst_path_of(&r.sha256)
            } else {
                self.path_of(&r.sha256)
            };
            if self.find(&r.sha256).is_some() {
                fs::remove_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
            } else {
                let dir = dest.parent().expect("blob path has a parent");
                fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| Error::io(dir, e))?;
            }
            Ok(StagedBlob::File(r))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// A blob file being written: plainly or as one zstd frame.
enum Out {
    Plain(io::BufWriter<File>),
    Zstd(zstd::stream::write::Encoder<'static, File>),
}

impl Out {
    fn new(file: File, compress: bool) -> io::Result<Out> {
        Ok(if compress {
            Out::Zstd(zstd::stream::write::Encoder::new(file, LEVEL)?)
        } else {
            Out::Plain(io::BufWriter::with_capacity(256 * 1024, file))
        })
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Out::Plain(w) => w.write_all(bytes),
            Out::Zstd(w) => w.write_all(bytes),
        }
    }

    /// Ends the file (the frame's end, or the buffer written out) and
    /// hands it back, for the sync.
    fn finish(self) -> io::Result<File> {
        match self {
            Out::Plain(w) => w.into_inner().map_err(|e| e.into_error()),
            Out::Zstd(w) => w.finish(),
        }
    }
}

/// Whether a blob whose first bytes are `head` is worth compressing: they
/// compress to at most [`WORTH_TENTHS`] tenths of their size.
fn compresses(head: &[u8]) -> bool {
    let sample = &head[..head.len().min(INLINE_MAX as usize)];
    match zstd::bulk::compress(sample, LEVEL) {
        Ok(c) => c.len() * 10 <= sample.len() * WORTH_TENTHS,
        Err(_) => false,
    }
}

/// Wraps a blob's bytes and fails at the end if they do not hash to what the
/// archive recorded: a reader of a tampered blob gets an error, not bad bytes
/// silently.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: [u8; 32],
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: [u8; 32]) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected,
            done: false,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done {
            self.done = true;
            let got: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
            if got != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "blob {} does not match its hash (read {})",
                        hex::encode(self.expected),
                        hex::encode(got)
                    ),
                ));
            }
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
