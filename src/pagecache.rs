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

use std::fs::File;

/// Tells the kernel `file` is read front to back (larger read-ahead).
pub fn sequential(file: &File) {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Sequential);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Hands the cached pages of `len` bytes at `offset` of `file` back.
pub fn release(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    if let Some(len) = std::num::NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}
