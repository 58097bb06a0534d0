//! eDiscovery export throughput on a generated archive.
//!
//! `cargo bench --bench export` generates a full-account export of 100,000
//! messages (the import bench's generator: 200 chats, 5% with a file), imports
//! and indexes it, then exports every item as `.eml` and, separately, as
//! `.mbox`, reporting items per second, MB/s written and peak RSS.
//! Options: --messages N, --dir D (reuse D/export), --big-attachment-mib M
//! (instead: one message carrying an M MiB file, to show memory stays bounded).

use std::path::PathBuf;
use std::time::Instant;
use tgvault::export::{ExportOptions, Format, export};
use tgvault::import::RunContext;
use tgvault::index::Index;
use tgvault::store::Archive;
use tgvault::synth::write_export;

mod util;
use util::{arg, import_indexed, peak_rss_mib, spec, write_big};

fn main() {
    tgvault::alloc::keep_freed_memory();
    tgvault::cli::init_logging();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let messages: u64 = arg(&args, "--messages")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tmp = tempfile::tempdir().unwrap();
    let base: PathBuf = arg(&args, "--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let big: Option<u64> = arg(&args, "--big-attachment-mib").and_then(|v| v.parse().ok());
    let export_dir = base.join(if big.is_some() {
        "export-big"
    } else {
        "export"
    });
    if let Some(mib) = big {
        write_big(&export_dir, mib);
    } else if !export_dir.join("result.json").is_file() {
        let spec = spec(messages);
        write_export(&export_dir, &spec).unwrap();
    }
    let archive_dir = base.join("archive-export");
    let _ = std::fs::remove_dir_all(&archive_dir);
    let archive = Archive::open(&archive_dir).unwrap();
    import_indexed(&archive, &export_dir);
    let clock = || 0i64;
    let ctx = RunContext {
        actor: "bench".into(),
        args: vec![],
        clock: &clock,
    };
    let index = Index::open(&archive).unwrap();
    println!(
        "export bench (peak RSS after import {:.1} MiB)",
        peak_rss_mib()
    );
    for format in [Format::Eml, Format::Mbox] {
        let out = base.join(format!("package-{format:?}"));
        let _ = std::fs::remove_dir_all(&out);
        let start = Instant::now();
        let s = export(
            &archive,
            &index,
            &ExportOptions {
                query_text: "kind:externaldata".into(),
                query: tgvault::query::parse("kind:externaldata").unwrap(),
                out: out.clone(),
                mailboxes: vec![],
                format,
                case: None,
                dedup: false,
                transcripts: false,
            },
            &ctx,
        )
        .unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "  {format:?}: {} items, {:.1} MB in {secs:.2} s: {:.0} items/s, {:.1} MB/s (peak RSS so far {:.1} MiB)",
            s.items,
            s.bytes as f64 / 1e6,
            s.items as f64 / secs,
            s.bytes as f64 / 1e6 / secs,
            peak_rss_mib()
        );
        let _ = std::fs::remove_dir_all(&out);
    }
}
