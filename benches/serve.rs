//! The server: a search through HTTP against the same search in process,
//! and the searches per second of 1 and of 8 concurrent HTTP clients.
//!
//! `cargo bench --bench serve` generates (or, with `--dir D`, reuses) the
//! 1,000,000-message export of the other benches and its archive, then:
//! 1. runs a query mix through `Service::search` in this process: p50, p99;
//! 2. serves the archive (`tgvault::server::serve`, in this process, on
//!    127.0.0.1) and runs the same queries through HTTP with a bearer token
//!    and a kept-alive connection: p50, p99;
//! 3. for `--seconds S` (default 10) each: one client searching back to
//!    back, then 8; searches per second and the ratio.
//!
//! Options: --messages N, --dir D, --runs R (queries per kind, default 300),
//! --seconds S.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tgvault::index::search::Sort;
use tgvault::service::{Principal, SearchRequest, Service};
use tgvault::store::Archive;

mod util;
use util::{arg, import_indexed, peak_rss_mib, spec};

const QUERIES: &[(&str, &[&str])] = &[
    (
        "common term",
        &["deal", "report", "meeting", "price", "client"],
    ),
    ("rare term", &["user5000007", "user5000031", "user5000044"]),
    (
        "phrase",
        &["\"wire transfer\"", "\"please review\"", "\"call me\""],
    ),
    (
        "boolean",
        &["(deal OR price) AND NOT budget", "contract -signed"],
    ),
];

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn request(q: &str) -> SearchRequest {
    SearchRequest {
        query: q.to_string(),
        mailboxes: vec![],
        limit: 10,
        sort: Sort::Date,
        case: None,
        count: false,
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One search through HTTP, its answer read whole.
fn http_search(
    client: &reqwest::blocking::Client,
    addr: std::net::SocketAddr,
    token: &str,
    q: &str,
) {
    let resp = client
        .get(format!(
            "http://{addr}/api/v1/search?q={}&limit=10",
            url_encode(q)
        ))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert!(resp.status().is_success());
    resp.bytes().unwrap();
}

fn report(what: &str, kind: &str, mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
    println!("  {what:<11} {kind:<12} p50 {p50:>7.3} ms  p99 {p99:>7.3} ms");
    (p50, p99)
}

fn main() {
    tgvault::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let messages: u64 = arg(&args, "--messages")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = arg(&args, "--runs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seconds: u64 = arg(&args, "--seconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let tmp = tempfile::tempdir().unwrap();
    let base: PathBuf = arg(&args, "--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let export = base.join("export");
    let dir = base.join("archive-serve");
    if !dir.join("archive.redb").is_file() {
        if !export.join("result.json").is_file() {
            tgvault::synth::write_export(&export, &spec(messages)).unwrap();
        }
        let archive = Archive::open(&dir).unwrap();
        let r = import_indexed(&archive, &export);
        println!("imported {} messages", r.totals().available_from_source);
    }

    // 1. In process.
    let admin = Principal::local("os:bench");
    let service = Service::new(Archive::open_existing(&dir).unwrap(), now);
    // Warm: the first search opens the index.
    service.search(&admin, &request("deal")).unwrap();
    let mut inproc = Vec::new();
    for (kind, qs) in QUERIES {
        let mut ms = Vec::new();
        for i in 0..runs {
            let t = Instant::now();
            service.search(&admin, &request(qs[i % qs.len()])).unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        inproc.push(report("in process", kind, ms));
    }
    // A user to search as through HTTP.
    let _ = service.user_add(&admin, "bench", &["ediscovery-manager".into()], None);
    let token = service.token_create(&admin, "bench", None).unwrap().token;

    // 2. Through HTTP, the server in this process.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let opts = tgvault::server::ServeOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            socket: None,
            incoming: None,
            max_upload: 1 << 20,
            tls: None,
            socket_group: None,
        };
        tgvault::server::serve(service, opts, |addr| tx.send(addr).unwrap()).unwrap();
    });
    let addr = rx.recv().unwrap();
    tgvault::server::install_tls_provider();
    let client = reqwest::blocking::Client::new();
    let search = |client: &reqwest::blocking::Client, q: &str| http_search(client, addr, &token, q);
    search(&client, "deal");
    for (i, (kind, qs)) in QUERIES.iter().enumerate() {
        let mut ms = Vec::new();
        for j in 0..runs {
            let t = Instant::now();
            search(&client, qs[j % qs.len()]);
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (p50, p99) = report("HTTP", kind, ms);
        println!(
            "  {:<11} {kind:<12} p50 +{:.3} ms, p99 +{:.3} ms over in process",
            "",
            p50 - inproc[i].0,
            p99 - inproc[i].1
        );
    }

    // 3. Searches per second: 1 client, then 8.
    let rate = |clients: usize| {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let (stop, count, token) = (stop.clone(), count.clone(), token.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let mut i = c;
                    while !stop.load(Ordering::Relaxed) {
                        let (_, qs) = QUERIES[i % QUERIES.len()];
                        http_search(&client, addr, &token, qs[i % qs.len()]);
                        count.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                })
            })
            .collect();
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
        for th in threads {
            th.join().unwrap();
        }
        count.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
    };
    let one = rate(1);
    let eight = rate(8);
    println!(
        "  throughput  1 client {one:.0} searches/s, 8 clients {eight:.0} searches/s: {:.2}x",
        eight / one
    );
    println!("  peak RSS    {:.0} MiB", peak_rss_mib());
    std::process::exit(0);
}
