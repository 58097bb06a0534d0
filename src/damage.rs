//! Damaged files meet code that panics: redb (the catalogue) and tantivy (the
//! search index) assume their own files are whole, and a flipped byte can
//! make them index past a page or unwrap a bad length. [`guard`] turns such a
//! panic into [`Error::Corrupt`] naming the damaged part and what to do; a
//! panic anywhere else is a bug of tgvault and goes on as a panic.
//!
//! The origin is told by the panic's source location: a file of the redb
//! crate, or of a crate of tantivy's family. The hook set by
//! [`quiet_guarded_panics`] keeps the message of a guarded panic of that
//! origin off stderr (the guard reports it); every other panic is printed.

use crate::error::{Error, Result};
use std::cell::Cell;
use std::path::Path;

thread_local! {
    /// The origins the innermost [`guard`] on this thread catches (a mask
    /// of [`Origin`] bits; 0 outside any guard).
    static CATCHES: Cell<u8> = const { Cell::new(0) };
    /// The origin of the last panic on this thread.
    static ORIGIN: Cell<Option<Origin>> = const { Cell::new(None) };
}

/// Where a panic came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The redb crate: the catalogue.
    Redb = 1,
    /// A crate of tantivy's family: the search index.
    Tantivy = 2,
    /// Another crate from the registry.
    Dependency = 4,
}

impl Origin {
    /// The origin of a panic at source file `file`; `None` for tgvault's own
    /// code and the standard library.
    fn of(file: &str) -> Option<Origin> {
        let mut parts = Path::new(file)
            .components()
            .filter_map(|c| c.as_os_str().to_str());
        // Registry paths: `.../registry/src/INDEX/CRATE-VERSION/src/...`.
        parts.find(|c| *c == "registry")?;
        parts.next().filter(|c| *c == "src")?;
        let krate = parts.nth(1)?;
        Some(if krate.starts_with("redb-") {
            Origin::Redb
        } else if ["tantivy", "ownedbytes-", "bitpacking-"]
            .iter()
            .any(|p| krate.starts_with(p))
        {
            Origin::Tantivy
        } else {
            Origin::Dependency
        })
    }
}

static HOOK: std::sync::Once = std::sync::Once::new();

/// Installs the panic hook (once per process; [`guard`] makes sure of it).
pub fn quiet_guarded_panics() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let origin = info.location().and_then(|l| Origin::of(l.file()));
            ORIGIN.set(origin);
            if origin.is_none_or(|o| CATCHES.get() & o as u8 == 0) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`. A panic from one of the `catches` origins (damaged bytes met
/// by redb or tantivy) becomes the error `describe` gives for its origin and
/// message; any other panic goes on, printed as usual.
pub fn guard<T>(
    f: impl FnOnce() -> Result<T>,
    catches: &[Origin],
    describe: impl FnOnce(Origin, &str) -> Error,
) -> Result<T> {
    quiet_guarded_panics();
    let mask = catches.iter().fold(0, |m, o| m | *o as u8);
    let was = CATCHES.replace(mask);
    ORIGIN.set(None);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHES.set(was);
    match r {
        Ok(v) => v,
        Err(p) => match ORIGIN.take().filter(|o| mask & *o as u8 != 0) {
            Some(origin) => {
                let what = p
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| p.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                Err(describe(origin, what))
            }
            None => std::panic::resume_unwind(p),
        },
    }
}

/// [`guard`] for a command on the archive in `dir`: a panic from redb is the
/// damaged catalogue's error, one from tantivy the damaged index's.
pub fn guard_archive<T>(dir: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    guard(
        f,
        &[Origin::Redb, Origin::Tantivy],
        |origin, what| match origin {
            Origin::Redb => catalogue_damaged(dir, what),
            _ => index_damaged(&dir.join("index"), what),
        },
    )
}

/// The error for a panic a damaged catalogue caused in `dir`'s archive.
pub fn catalogue_damaged(dir: &Path, what: &str) -> Error {
    Error::Corrupt(format!(
        "{}: the catalogue is damaged ({what}); restore the latest backup, then \
         `tgvault recover --from` this archive's folder brings back what its packs hold",
        dir.join("archive.redb").display()
    ))
}

/// The error for a panic a damaged search index caused in `dir`.
pub fn index_damaged(dir: &Path, what: &str) -> Error {
    Error::Corrupt(format!(
        "{}: the search index is damaged ({what}); `tgvault reindex` rebuilds it from the archive",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_placed_by_its_crate() {
        let reg = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        let of = |c: &str| Origin::of(&format!("{reg}/{c}/src/lib.rs"));
        assert_eq!(of("redb-4.6.0"), Some(Origin::Redb));
        assert_eq!(of("tantivy-sstable-0.6.0"), Some(Origin::Tantivy));
        assert_eq!(of("zip-2.1.0"), Some(Origin::Dependency));
        assert_eq!(Origin::of("src/store/mod.rs"), None);
        assert_eq!(Origin::of("/work/redb-4.6.0/src/lib.rs"), None);
        assert_eq!(
            Origin::of("/rustc/abc/library/core/src/slice/index.rs"),
            None
        );
    }

    #[test]
    fn a_panic_of_tgvaults_own_code_goes_on() {
        let r = std::panic::catch_unwind(|| {
            guard(
                || -> Result<()> { panic!("tgvault's own") },
                &[Origin::Redb, Origin::Tantivy, Origin::Dependency],
                |_, w| Error::Internal(w.into()),
            )
        });
        assert!(r.is_err());
        assert_eq!(CATCHES.get(), 0, "the guard is left");
    }
}
