//! Content-addressed attachment blobs. Small blobs (up to [`INLINE_MAX`]) travel
//! in memory and are appended to a pack file (see `pack`) by the same
//! transaction as the items that use them; larger ones are streamed to a file
//! under `blobs/sha256/`, made durable, and only then referenced by a transaction.
//! Either way the bytes are hashed while they are read, so no blob is ever held
//! whole in memory above the inline limit.

use crate::error::{Error, Result};
use crate::model::BlobRef;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Blobs up to this size are stored in pack files, larger ones as files.
pub const INLINE_MAX: u64 = 1 << 20;

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

    pub fn path_of(&self, sha: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(sha);
        self.root.join("sha256").join(&hex[..2]).join(&hex)
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
            let mut out = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
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
            out.sync_all().map_err(|e| Error::io(&tmp, e))?;
            let r = BlobRef {
                sha256: hasher.finalize().into(),
                size,
            };
            let dest = self.path_of(&r.sha256);
            if dest.exists() {
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
