//! Search: import throughput with indexing, indexing alone, and query latency.
//!
//! `cargo bench --bench search` generates a full-account export of 1,000,000
//! messages (the import bench's generator), then in this one process:
//! 1. imports it with the index following the store (as `tgvault import`
//!    does): messages per second end to end, peak RSS;
//! 2. rebuilds the index from the store alone (`tgvault reindex`): documents
//!    per second, the "index alone" rate;
//! 3. runs each query of the mix many times (varying its words): p50 and p99.
//!
//! Options: --messages N (default 1000000; 10000000 for the large run),
//! --dir D (reuse D/export), --runs R (queries per kind, default 200),
//! --queries-only (with --dir: reuse the archive of an earlier run, measure
//! queries only), --import-only (stop after step 1, e.g. to profile it,
//! then report the archive at rest: what the import wrote and the sizes
//! after `compact`, against the export),
//! --query KQL (repeatable: measure these queries instead of the mix),
//! --without hints,nice (turn those aids of the import off, see
//! `tuning`), --attachment-permille P (messages with a file, per mille;
//! default 50, 0 for a text-only export).

use std::path::PathBuf;
use std::time::Instant;
use tgvault::index::Index;
use tgvault::index::search::{SearchOptions, Sort};
use tgvault::store::Archive;
use tgvault::synth::write_export;

mod util;
use util::{
    RssSampler, arg, content_bytes, dir_bytes, import_indexed, peak_rss_mib, print_cpu, settle,
    spec, written_mib,
};

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Words of the generator's vocabulary: common (in ~1 message in 5) and
/// rare (the generator's chat names and sender names are the rare terms).
const COMMON: &[&str] = &["deal", "report", "meeting", "price", "client", "budget"];

fn main() {
    tgvault::alloc::keep_freed_memory();
    tgvault::cli::init_logging();
    let args: Vec<String> = std::env::args().collect();
    if let Some(off) = arg(&args, "--without") {
        let names: Vec<&str> = off.split(',').filter(|n| !n.is_empty()).collect();
        tgvault::tuning::disable(&names).unwrap();
        eprintln!("without {names:?}");
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let messages: u64 = arg(&args, "--messages")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = arg(&args, "--runs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let tmp = tempfile::tempdir().unwrap();
    let base: PathBuf = arg(&args, "--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let export = base.join("export");
    let archive_dir = base.join("archive-search");
    let queries_only = args.iter().any(|a| a == "--queries-only") && archive_dir.is_dir();
    if !queries_only {
        let _ = std::fs::remove_dir_all(&archive_dir);
    }
    if export.join("result.json").is_file() {
        eprintln!("reusing the export in {}", export.display());
    } else {
        let mut spec = spec(messages);
        if let Some(p) = arg(&args, "--attachment-permille") {
            spec.attachment_permille = p.parse().unwrap();
        }
        write_export(&export, &spec).unwrap();
    }

    let archive = Archive::open(&archive_dir).unwrap();
    if !queries_only {
        build(&archive, &export);
    }
    if std::env::args().any(|a| a == "--import-only") {
        at_rest(archive, &export);
        return;
    }
    queries(&archive, runs);
}

/// The archive at rest against the export it holds: what the import wrote,
/// then the sizes after `compact` (the catalogue rewritten in key order).
fn at_rest(archive: Archive, export: &std::path::Path) {
    let input = content_bytes(export) as f64;
    let (disk, _) = written_mib();
    let parts = |a: &Archive| {
        ["archive.redb", "packs", "index"].map(|p| dir_bytes(&a.dir().join(p)) as f64)
    };
    let [cat, packs, index] = parts(&archive);
    println!(
        "  at rest             export {:.1} MB; the import wrote {:.2}x it; catalogue {:.2}x, packs {:.2}x, index {:.2}x",
        input / 1e6,
        disk * 1048576.0 / input,
        cat / input,
        packs / input,
        index / input
    );
    let (archive, _, _) = archive.compact_catalogue().unwrap();
    let [cat, packs, index] = parts(&archive);
    println!(
        "  after compact       catalogue {:.1} MB ({:.2}x), archive {:.1} MB ({:.2}x the export)",
        cat / 1e6,
        cat / input,
        (cat + packs + index) / 1e6,
        (cat + packs + index) / input
    );
}

fn build(archive: &Archive, export: &std::path::Path) {
    // 1. Import with the index following.
    settle();
    let start = Instant::now();
    let sampler = RssSampler::start();
    let report = import_indexed(archive, export);
    let with_index = start.elapsed().as_secs_f64();
    let (anon, file, cpu) = sampler.finish_with_cpu();
    print_cpu("import + index", &cpu);
    let items = report.totals().available_from_source;
    let rss_import = peak_rss_mib();
    let (disk, written) = written_mib();
    println!(
        "  import + index      wrote {disk:.0} MiB to disk, {written:.0} MiB through write calls; archive.redb {:.0} MiB, packs {:.0} MiB, index {:.0} MiB",
        mib(dir_bytes(&archive.dir().join("archive.redb"))),
        mib(dir_bytes(&archive.dir().join("packs"))),
        mib(dir_bytes(&archive.dir().join("index"))),
    );
    let (stored, meta, frag) = archive.storage_stats().unwrap();
    println!(
        "  catalogue           stored {:.1} MiB, metadata {:.1} MiB, fragmented {:.1} MiB",
        mib(stored),
        mib(meta),
        mib(frag)
    );
    for (name, [rows, stored, meta, frag]) in archive.table_stats().unwrap() {
        println!(
            "    {name:<10} {rows:>9} rows: stored {:.1} MiB ({:.0} bytes a row), metadata {:.1} MiB, fragmented {:.1} MiB",
            mib(stored),
            stored as f64 / rows.max(1) as f64,
            mib(meta),
            mib(frag)
        );
    }
    println!(
        "  import + index      peak RSS {rss_import:.1} MiB: anonymous {anon:.1} MiB, file-backed (mapped index files) {file:.1} MiB (peaks sampled every 50 ms)"
    );
    if std::env::args().any(|a| a == "--import-only") {
        println!(
            "  import + index      {with_index:.2} s, {:.0} messages/s, peak RSS {rss_import:.1} MiB",
            items as f64 / with_index
        );
        return;
    }

    // 2. The index alone, from the store.
    settle();
    let start = Instant::now();
    let sampler = RssSampler::start();
    let (index, rebuilt) = Index::recreate(archive, Default::default()).unwrap();
    index.close().unwrap();
    let alone = start.elapsed().as_secs_f64();
    let (_, _, cpu) = sampler.finish_with_cpu();
    print_cpu("index alone", &cpu);
    assert_eq!(rebuilt.documents, items);

    println!("search bench ({items} messages)");
    println!(
        "  import + index      {with_index:.2} s, {:.0} messages/s, peak RSS {rss_import:.1} MiB",
        items as f64 / with_index
    );
    println!(
        "  index alone         {alone:.2} s, {:.0} documents/s (rebuild from the store)",
        items as f64 / alone
    );
    println!(
        "  ratio               {:.2} (import with indexing / index alone)",
        alone / with_index
    );
}

fn queries(archive: &Archive, runs: usize) {
    // 3. Query latency.
    let index = Index::open(archive).unwrap();
    let rng = std::cell::Cell::new(0x9E37_79B9_7F4A_7C15u64);
    let next = |n: usize| {
        let mut x = rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng.set(x);
        (x % n as u64) as usize
    };
    type Gen<'a> = Box<dyn FnMut() -> String + 'a>;
    let args: Vec<String> = std::env::args().collect();
    let own: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--query")
        .map(|w| w[1].clone())
        .collect();
    let mut mix: Vec<(&str, bool, Gen)> = vec![
        (
            "common term",
            false,
            Box::new(|| COMMON[next(COMMON.len())].to_string()),
        ),
        (
            "rare term",
            false,
            Box::new(|| format!("user{}", 5_000_000 + next(50))),
        ),
        (
            "phrase",
            false,
            Box::new(|| {
                format!(
                    "\"{} {}\"",
                    COMMON[next(COMMON.len())],
                    COMMON[next(COMMON.len())]
                )
            }),
        ),
        (
            "prefix wildcard",
            false,
            Box::new(|| {
                let w = COMMON[next(COMMON.len())];
                format!("{}*", &w[..3])
            }),
        ),
        (
            "participants + dates",
            false,
            Box::new(|| {
                let day = 1 + next(28);
                format!(
                    "participants:user{} sent:2020-10-{day:02}..2020-11-{day:02}",
                    5_000_000 + next(50)
                )
            }),
        ),
        (
            "3-clause boolean",
            false,
            Box::new(|| {
                format!(
                    "({} OR {}) AND NOT {}",
                    COMMON[next(COMMON.len())],
                    COMMON[next(COMMON.len())],
                    COMMON[next(COMMON.len())]
                )
            }),
        ),
        (
            "count only",
            true,
            Box::new(|| COMMON[next(COMMON.len())].to_string()),
        ),
    ];
    if !own.is_empty() {
        mix = own
            .iter()
            .flat_map(|q| {
                let query = q.clone();
                let count = q.clone();
                [
                    (q.as_str(), false, Box::new(move || query.clone()) as Gen),
                    (q.as_str(), true, Box::new(move || count.clone()) as Gen),
                ]
            })
            .collect();
    }
    for sort in [Sort::Date, Sort::Relevance] {
        println!(
            "  query latency over {runs} runs each (top 50 {}, total counted):",
            match sort {
                Sort::Date => "newest first, the CLI's default",
                Sort::Relevance => "by relevance",
            }
        );
        for (name, count_only, gen_query) in mix.iter_mut() {
            let mut times = Vec::with_capacity(runs);
            let mut total = 0u64;
            for _ in 0..runs {
                let q = tgvault::query::parse(&gen_query()).unwrap();
                let t = Instant::now();
                if *count_only {
                    total += index.count(archive, &q, &[]).unwrap();
                } else {
                    let r = index
                        .search(
                            archive,
                            &q,
                            &SearchOptions {
                                mailboxes: vec![],
                                limit: 50,
                                sort,
                            },
                        )
                        .unwrap();
                    total += r.total;
                }
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "    {:<22} p50 {:>7.2} ms  p99 {:>7.2} ms  (mean hits {})",
                if *count_only && !own.is_empty() {
                    format!("{name} (count)")
                } else {
                    name.to_string()
                },
                percentile(&times, 0.5),
                percentile(&times, 0.99),
                total / runs as u64
            );
        }
    }
    println!("  peak RSS            {:.1} MiB", peak_rss_mib());
}
