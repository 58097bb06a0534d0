//! The import's optional aids, each on by default: media prefetch (see
//! `pagecache`) and the converting thread's lower priority. Nothing stored
//! depends on them (the same bytes are written and read either way); they
//! exist to be measured one against the other (the benches' `--without`
//! option), so that each stays only while it pays.

use std::sync::atomic::{AtomicBool, Ordering};

static CACHE_HINTS: AtomicBool = AtomicBool::new(true);
static CONVERTER_PRIORITY: AtomicBool = AtomicBool::new(true);

/// Turns the aids named in `names` (`hints`, `nice`) off; returns a name it
/// does not know.
pub fn disable(names: &[&str]) -> Result<(), String> {
    for n in names {
        let flag = match *n {
            "hints" => &CACHE_HINTS,
            "nice" => &CONVERTER_PRIORITY,
            other => return Err(format!("'{other}' is not hints or nice")),
        };
        flag.store(false, Ordering::Relaxed);
    }
    Ok(())
}

/// Whether the import asks which media files are cached and prefetches
/// the others.
pub fn cache_hints() -> bool {
    CACHE_HINTS.load(Ordering::Relaxed)
}

/// Whether the converting thread runs below the later stages.
pub fn converter_priority() -> bool {
    CONVERTER_PRIORITY.load(Ordering::Relaxed)
}
