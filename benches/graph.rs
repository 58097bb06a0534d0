//! Forwarding into the loopback Graph double (`tests/graphdouble.rs`) with
//! its throttle set to Microsoft's per-mailbox limits scaled down: the
//! request budget of 10,000 per 600 s becomes `--budget` per `--window`
//! seconds (default 200 per 12 s: the same 16.7 requests/s per mailbox).
//!
//! `cargo bench --bench graph [-- --messages N --budget B --window S]`: an
//! export of N small messages (default 1,000) between two mapped users is
//! imported, then `forward run` delivers every copy twice over: once told
//! the budget (`--request-budget B/S`), once with Microsoft's defaults,
//! learning it from 429s. For each: the share of the rate the throttle
//! allows that the forwarder achieved, the 429s, and the early retries
//! (requests sent before the `Retry-After` the double gave: must be 0).

use std::path::Path;
use std::time::{Duration, Instant};

#[path = "../tests/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;
#[path = "../tests/graphdouble.rs"]
#[allow(dead_code)]
mod graphdouble;
#[path = "../tests/ports.rs"]
#[allow(dead_code)]
mod ports;
#[allow(dead_code)]
mod util;
use graphdouble::{CLIENT, GraphDouble, Options, SECRET, TENANT};
use util::{arg, tgvault};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = arg(&args, "--messages").map_or(1_000, |v| v.parse().unwrap());
    let budget: usize = arg(&args, "--budget").map_or(200, |v| v.parse().unwrap());
    let window: u64 = arg(&args, "--window").map_or(12, |v| v.parse().unwrap());
    let work = tempfile::tempdir().unwrap();
    let users = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/users.csv");
    let secret = work.path().join("graph.secret");
    std::fs::write(&secret, SECRET).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    println!("throttle: {budget} requests per {window} s per mailbox, 4 in flight");
    for (label, told) in [("told the budget", true), ("not told", false)] {
        let archive = work.path().join(format!("archive-{told}"));
        let export = dovecot::desk_export(&work.path().join(format!("x-{told}")), n);
        tgvault(
            &archive,
            &[
                "import",
                export.to_str().unwrap(),
                "--mapping",
                users.to_str().unwrap(),
            ],
        );
        let boxes: Vec<String> = tgvault(&archive, &["mailboxes", "--json"])
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["mailbox"].as_str().map(str::to_string))
            .collect();
        let mut o = Options::new(&boxes);
        o.requests = budget;
        o.window = Duration::from_secs(window);
        let g = GraphDouble::start(o);
        let url = g.url();
        let told_budget = format!("{budget}/{window}");
        let mut add = vec![
            "forward",
            "add",
            "graph",
            "g",
            "--tenant",
            TENANT,
            "--client-id",
            CLIENT,
            "--secret-file",
            secret.to_str().unwrap(),
            "--authority",
            &url,
            "--graph-url",
            &url,
        ];
        if told {
            add.extend(["--request-budget", told_budget.as_str()]);
        }
        tgvault(&archive, &add);
        let t = Instant::now();
        let out = tgvault(&archive, &["forward", "run", "--json"]);
        let secs = t.elapsed().as_secs_f64();
        let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(v["status"], "completed", "{v}");
        let sent = v["counters"]["imported"].as_u64().unwrap();
        let s = g.stats();
        let span = match (s.times.first(), s.times.last()) {
            (Some(a), Some(b)) => (*b - *a).as_secs_f64(),
            _ => 0.0,
        };
        // With at most `budget` in any window, R requests to a mailbox take
        // at least (ceil(R / budget) - 1) windows: the share is that over
        // the time they took.
        let per_box = s.accepted as f64 / boxes.len() as f64;
        let ideal = ((per_box / budget as f64).ceil() - 1.0) * window as f64;
        println!(
            "{label}: {sent} copies in {secs:.1} s; {} requests accepted over {span:.1} s, at best {ideal:.1} s: {:.1}% of the rate the throttle allows ({} mailboxes); 429: {} budget, {} concurrency; early retries: {}; most in flight: {}",
            s.accepted,
            100.0 * ideal / span.max(f64::EPSILON),
            boxes.len(),
            s.budget_429,
            s.concurrency_429,
            s.early,
            s.most_in_flight
        );
        assert_eq!(s.early, 0, "retried before Retry-After");
    }
}
