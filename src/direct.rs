//! Direct I/O (`O_DIRECT`) for bytes that pass once in bulk: the export
//! file both import passes read, pack files' appends and the index's span
//! reads of them.
//!
//! Why: on the virtual machines this archive runs on, every byte that passes
//! through the page cache costs CPU time in the kernel (a page allocated and
//! filled on write, written back and bounced on sync; filled from the disk on
//! read). Measured with `dd` on the 2-core build VM: writing 4 GB and syncing
//! cost 8.8 CPU-seconds buffered and 0.4 direct; reading 4 GB from the disk
//! cost 3.5 buffered and 0.2 direct. These bytes are read or written once, so
//! the cache does nothing for them; searches still read single records
//! through the cache (`Packs::read`).
//!
//! Direct transfers must start at a block-aligned file offset, in memory at a
//! block-aligned address, and last whole blocks. [`Aligned`] is a buffer with
//! such a window (found with `align_offset`, no `unsafe`). Where the file
//! system refuses direct I/O (tmpfs, some network file systems; every
//! non-Linux system), [`open`] says so and callers use plain reads and
//! writes: the bytes on disk are the same either way.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The alignment used for offsets, lengths and memory: 4 KiB covers devices
/// with 512-byte and 4-KiB logical blocks.
pub const BLOCK: usize = 4096;

/// Rounds `n` down to a multiple of [`BLOCK`].
pub fn align_down(n: u64) -> u64 {
    n & !(BLOCK as u64 - 1)
}

/// A zeroed byte buffer whose usable window starts at a [`BLOCK`]-aligned
/// address.
pub struct Aligned {
    mem: Vec<u8>,
    off: usize,
    cap: usize,
}

impl Aligned {
    /// A window of `cap` bytes.
    pub fn new(cap: usize) -> Aligned {
        let mem = vec![0u8; cap + BLOCK];
        let off = mem.as_ptr().align_offset(BLOCK);
        // `align_offset` on a byte pointer is below BLOCK: the window fits.
        assert!(off < BLOCK, "byte pointers can always be aligned");
        Aligned { mem, off, cap }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn bytes(&self) -> &[u8] {
        &self.mem[self.off..self.off + self.cap]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.off..self.off + self.cap]
    }

    /// The window as a vector and the window's start in it.
    pub fn into_parts(self) -> (Vec<u8>, usize) {
        (self.mem, self.off)
    }
}

/// Opens `path` for direct I/O (read and write when `write`, creating it if
/// missing), or returns `Ok(None)` when the system or the file system does
/// not offer direct I/O.
pub fn open(path: &Path, write: bool) -> io::Result<Option<File>> {
    if !crate::tuning::direct_io() {
        return Ok(None);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = OpenOptions::new();
        o.read(true);
        if write {
            o.write(true).create(true).truncate(false);
        }
        match o
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(path)
        {
            Ok(f) => Ok(Some(f)),
            Err(e) if refused(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, write, OpenOptions::new());
        Ok(None)
    }
}

/// Opens `path` for direct reads, or returns `Ok(None)` when the system or
/// the file system does not offer them: besides [`open`], one block is read,
/// since some file systems accept the flag and refuse the reads (with an
/// alignment larger than [`BLOCK`]).
pub fn open_for_reading(path: &Path) -> io::Result<Option<File>> {
    let Some(f) = open(path, false)? else {
        return Ok(None);
    };
    let mut probe = Aligned::new(BLOCK);
    match f.read_at(probe.bytes_mut(), 0) {
        Ok(_) => Ok(Some(f)),
        Err(e) if refused(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether an error means "no direct I/O here" (a file system without it, or
/// an alignment it does not accept), as opposed to a failure of the device.
pub fn refused(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidInput
}

/// Reads `len` bytes at `offset` from a file opened with [`open`]: reads the
/// whole blocks around them, and returns the buffer and where the bytes start
/// in it. Fails with `UnexpectedEof` when the file ends first.
pub fn read_at(file: &File, offset: u64, len: usize) -> io::Result<(Vec<u8>, usize)> {
    let start = align_down(offset);
    let skip = (offset - start) as usize;
    let mut buf = Aligned::new((skip + len).div_ceil(BLOCK) * BLOCK);
    if read_blocks(file, buf.bytes_mut(), start)? < skip + len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the file ends before the bytes read",
        ));
    }
    let (mem, off) = buf.into_parts();
    Ok((mem, off + skip))
}

/// Fills `buf` (aligned, whole blocks) from `at` (aligned) until it is full
/// or the file ends; returns how many bytes it holds.
fn read_blocks(file: &File, buf: &mut [u8], at: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                // Only the end of the file, which need not be aligned, gives
                // part of a block.
                if !got.is_multiple_of(BLOCK) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads a file front to back with direct I/O, a buffer of whole blocks at
/// a time, and serves it to `Read` calls of any size.
pub struct SequentialReader {
    file: File,
    buf: Aligned,
    /// The file offset of `buf`'s first byte.
    at: u64,
    /// Valid bytes in `buf`, and how many of them were served.
    have: usize,
    used: usize,
    eof: bool,
}

impl SequentialReader {
    /// `file` opened with [`open`]; `chunk` is rounded up to whole blocks.
    pub fn new(file: File, chunk: usize) -> SequentialReader {
        SequentialReader {
            file,
            buf: Aligned::new(chunk.div_ceil(BLOCK).max(1) * BLOCK),
            at: 0,
            have: 0,
            used: 0,
            eof: false,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        self.at += self.have as u64;
        self.used = 0;
        self.have = read_blocks(&self.file, self.buf.bytes_mut(), self.at)?;
        self.eof = self.have < self.buf.capacity();
        Ok(())
    }
}

impl io::Read for SequentialReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.used == self.have {
            if self.eof {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = out.len().min(self.have - self.used);
        out[..n].copy_from_slice(&self.buf.bytes()[self.used..self.used + n]);
        self.used += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unaligned_ranges_read_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let f = match open(&path, false).unwrap() {
            Some(f) => f,
            None => std::fs::File::open(&path).unwrap(),
        };
        for (at, len) in [(0, 1), (1, 4095), (4095, 2), (4096, 4096), (5000, 15_000)] {
            let (buf, from) = read_at(&f, at, len).unwrap();
            assert_eq!(
                &buf[from..from + len],
                &data[at as usize..at as usize + len]
            );
        }
        let err = read_at(&f, 19_990, 20).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_sequential_reader_reads_the_whole_file_in_any_pieces() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        for size in [0usize, 1, BLOCK - 1, BLOCK, 3 * BLOCK + 17] {
            let path = dir.path().join(format!("f{size}"));
            let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let f = open_for_reading(&path)
                .unwrap()
                .unwrap_or_else(|| std::fs::File::open(&path).unwrap());
            let mut r = SequentialReader::new(f, 2 * BLOCK);
            let mut got = Vec::new();
            let mut piece = [0u8; 1000];
            loop {
                let n = r.read(&mut piece).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&piece[..n]);
            }
            assert!(got == data, "size {size}");
        }
    }

    #[test]
    fn aligned_windows_are_aligned() {
        for cap in [0, 1, BLOCK, 3 * BLOCK + 5] {
            let a = Aligned::new(cap);
            assert_eq!(a.bytes().as_ptr().align_offset(BLOCK), 0);
            assert_eq!(a.capacity(), cap);
        }
    }
}
