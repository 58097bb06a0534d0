//! Import throughput and peak memory on a generated export.
//!
//! `cargo bench --bench import` generates a full-account export of 1,000,000
//! messages in 200 chats (realistic text lengths, 5% with a media file) and
//! imports it end to end (JSON -> committed redb store) in this process,
//! reporting messages per second, MB/s and peak RSS. Options:
//!   --messages N          size of the export (default 1000000)
//!   --big-attachment-mib M  instead, import one message carrying an M MiB file
//!   --batch N             items per write transaction (default 10000)
//!   --no-reimport         skip the second (all-duplicates) import
//!   --dir D               where to generate (default: a temp dir, removed after);
//!                         an export already in D/export is reused

use std::path::PathBuf;
use std::time::Instant;
use tgvault::import::{ImportOptions, RunContext, import};
use tgvault::mapping::Mapping;
use tgvault::store::Archive;
use tgvault::synth::write_export;

mod util;
use util::{arg, dir_bytes, peak_rss_mib, spec, write_big};

fn main() {
    tgvault::alloc::keep_freed_memory();
    tgvault::cli::init_logging();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list: nothing to list.
    }
    let messages: u64 = arg(&args, "--messages")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let big: Option<u64> = arg(&args, "--big-attachment-mib").and_then(|v| v.parse().ok());
    let tmp = tempfile::tempdir().unwrap();
    let base: PathBuf = arg(&args, "--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let export = base.join("export");
    let archive_dir = base.join("archive");
    let _ = std::fs::remove_dir_all(&archive_dir);

    let gen_start = Instant::now();
    let (items, json_bytes) = match big {
        Some(mib) => {
            write_big(&export, mib);
            (
                1,
                std::fs::metadata(export.join("result.json")).unwrap().len(),
            )
        }
        None if export.join("result.json").is_file() => {
            eprintln!("reusing the export in {}", export.display());
            (
                messages,
                std::fs::metadata(export.join("result.json")).unwrap().len(),
            )
        }
        None => {
            let spec = spec(messages);
            (messages, write_export(&export, &spec).unwrap())
        }
    };
    let input_bytes = dir_bytes(&export);
    eprintln!(
        "generated {items} messages: result.json {:.1} MB, export {:.1} MB in {:.1?} (peak RSS so far {:.1} MiB)",
        json_bytes as f64 / 1e6,
        input_bytes as f64 / 1e6,
        gen_start.elapsed(),
        peak_rss_mib()
    );

    let archive = Archive::open(&archive_dir).unwrap();
    let mut opts = ImportOptions::new(Mapping::default());
    opts.custodian_address = Some("custodian@corp.example".into());
    if let Some(b) = arg(&args, "--batch").and_then(|v| v.parse().ok()) {
        opts.batch_items = b;
    }
    let clock = || 0i64;
    let ctx = RunContext {
        actor: "bench".into(),
        args: vec![],
        clock: &clock,
    };
    util::settle();
    let start = Instant::now();
    let report = import(&archive, std::slice::from_ref(&export), &opts, &ctx).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let t = report.totals();
    assert_eq!(t.imported + t.partially_imported, items, "{t:?}");
    let archive_bytes = dir_bytes(&archive_dir);
    println!(
        "import bench ({})",
        if big.is_some() {
            "one big attachment"
        } else {
            "generated export"
        }
    );
    println!("  messages            {items}");
    println!(
        "  input               {:.1} MB (result.json {:.1} MB, attachments {:.1} MB)",
        input_bytes as f64 / 1e6,
        json_bytes as f64 / 1e6,
        t.attachment_bytes as f64 / 1e6
    );
    println!("  wall time           {secs:.2} s");
    println!("  messages/s          {:.0}", items as f64 / secs);
    println!(
        "  MB/s (input)        {:.1}",
        input_bytes as f64 / 1e6 / secs
    );
    println!("  peak RSS            {:.1} MiB", peak_rss_mib());
    println!("  archive on disk     {:.1} MB", archive_bytes as f64 / 1e6);
    let (stored, meta, frag) = archive.storage_stats().unwrap();
    println!(
        "  redb bytes          stored {:.1} MB, metadata {:.1} MB, fragmented {:.1} MB",
        stored as f64 / 1e6,
        meta as f64 / 1e6,
        frag as f64 / 1e6
    );

    if args.iter().any(|a| a == "--no-reimport") {
        return;
    }
    // Re-import: everything is skipped.
    util::settle();
    let start = Instant::now();
    let again = import(&archive, &[export], &opts, &ctx).unwrap();
    let secs2 = start.elapsed().as_secs_f64();
    assert_eq!(again.totals().skipped, items);
    println!(
        "  re-import (skip)    {:.0} messages/s",
        items as f64 / secs2
    );
    println!("  peak RSS after both {:.1} MiB", peak_rss_mib());
}
