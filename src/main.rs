//! The `tgvault` binary: parse arguments, run, map the outcome to an exit code
//! (0 success, 1 some input failed or an error, 2 the request was wrong, 3
//! not permitted).

use clap::Parser;
use std::process::ExitCode;
use tgvault::Error;
use tgvault::cli::{Cli, Outcome, run};

// The importer and the indexer allocate on one thread and free on another;
// glibc's allocator serialises that on its arena locks (measured: a tenth of
// a reindex spent in futex calls).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Private by construction: everything this process creates (the
    // archive, its packs, blobs and index, export packages) is its owner's
    // alone, 0700 folders and 0600 files, whatever umask it was started with.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    tgvault::alloc::keep_freed_memory();
    tgvault::cli::init_logging();
    tgvault::damage::quiet_guarded_panics();
    let cli = Cli::parse();
    let dir = cli
        .archive
        .clone()
        .unwrap_or_else(tgvault::cli::default_archive_dir);
    // What a damaged catalogue or index makes redb or tantivy do is an
    // error naming the damage; a panic of tgvault's own stays a panic.
    let outcome = tgvault::damage::guard_archive(&dir, || run(cli));
    match outcome {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(1),
        Ok(Outcome::Exit(code)) => ExitCode::from(code),
        // A reader that stopped listening (`tgvault ls ... | head`) is not an error.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tgvault: {e}");
            ExitCode::from(tgvault::cli::exit_code(&e))
        }
    }
}
