//! Media prefetch: a reader of many small files (an export's media) finds
//! out whether a file would make it wait for the disk ([`cached`]), and
//! starts the reads of those that would ([`fetch`]), so that it converts
//! what is ready first and reads the rest once it has arrived. These are
//! hints: the same bytes are read either way.

use std::fs::File;

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
