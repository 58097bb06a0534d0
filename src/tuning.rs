//! The write path's optional aids, each on by default: direct I/O for bytes
//! that pass once, page-cache hints, and the converting thread's lower
//! priority. Nothing stored depends on them (the same bytes are written and
//! read either way); they exist to be measured one against the other (the
//! benches' `--without` option), so that each stays only while it pays.

use std::sync::atomic::{AtomicBool, Ordering};

static DIRECT_IO: AtomicBool = AtomicBool::new(true);
static CACHE_HINTS: AtomicBool = AtomicBool::new(true);
static CONVERTER_PRIORITY: AtomicBool = AtomicBool::new(true);

/// Turns the aids named in `names` (`direct`, `hints`, `nice`) off;
/// returns a name it does not know.
pub fn disable(names: &[&str]) -> Result<(), String> {
    for n in names {
        let flag = match *n {
            "direct" => &DIRECT_IO,
            "hints" => &CACHE_HINTS,
            "nice" => &CONVERTER_PRIORITY,
            other => return Err(format!("'{other}' is not direct, hints or nice")),
        };
        flag.store(false, Ordering::Relaxed);
    }
    Ok(())
}

/// Whether files that pass once are read and written with `O_DIRECT`.
pub fn direct_io() -> bool {
    DIRECT_IO.load(Ordering::Relaxed)
}

/// Whether the kernel is told about bulk reads (`posix_fadvise`) and asked
/// which media files are cached.
pub fn cache_hints() -> bool {
    CACHE_HINTS.load(Ordering::Relaxed)
}

/// Whether the converting thread runs below the later stages.
pub fn converter_priority() -> bool {
    CONVERTER_PRIORITY.load(Ordering::Relaxed)
}
