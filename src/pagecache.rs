//! Hints to the kernel's page cache for data read once in bulk.
//!
//! An import streams the export through the page cache once (twice counting
//! the checking pass), and the index reads every item it files back from the
//! packs once. Left alone, those pages fill the cache and push out what is
//! read again (the archive's B-trees, the index); the kernel then reclaims
//! memory instead of reusing the pages just read. The bulk readers hand their
//! pages back as soon as they are done with them. These are hints: nothing
//! read or written changes, and on a system without them the same bytes are
//! read. Only clean pages that no process maps are dropped.
//!
//! The other way round, [`cached`] and [`fetch`] let a reader of many small files (an
//! export's media) find out whether a file would make it wait for the disk,
//! and start the reads of those that would, so that it can read them later.

use std::fs::File;

/// Tells the kernel `file` is read front to back (larger read-ahead).
pub fn sequential(file: &File) {
    if !crate::tuning::cache_hints() {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Sequential);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Hands the cached pages of `len` bytes at `offset` of `file` back.
pub fn release(file: &File, offset: u64, len: u64) {
    if !crate::tuning::cache_hints() {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}

/// Whether `file` can be read without waiting for the disk: its first page
/// is in the page cache (one small read of a cached page when it is; true
/// wherever the system cannot tell).
pub fn cached(file: &File) -> bool {
    if !crate::tuning::cache_hints() {
        return true;
    }
    #[cfg(target_os = "linux")]
    {
        let mut byte = [0u8; 1];
        let probe = rustix::io::preadv2(
            file,
            &mut [std::io::IoSliceMut::new(&mut byte)],
            0,
            rustix::io::ReadWriteFlags::NOWAIT,
        );
        probe != Err(rustix::io::Errno::AGAIN)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        true
    }
}

/// Asks the kernel to start reading the first `len` bytes of `file` into the
/// page cache, without waiting for them.
pub fn fetch(file: &File, len: u64) {
    if !crate::tuning::cache_hints() {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, 0, Some(len), rustix::fs::Advice::WillNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, len);
}
