//! Forwarding into a real Dovecot (Debian's, on 127.0.0.1, TLS with a CA the
//! bench makes, a master user), the way `tgvault forward run` does it.
//!
//! `cargo bench --bench forward [-- --messages N]`: an export of N small
//! messages (default 10,000) between two mapped users is imported (a copy
//! each: 2N copies), then one `forward run` delivers every copy: messages
//! per second. A second `forward run` (nothing to send) times the ledger
//! walk alone.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "../tests/dovecot.rs"]
#[allow(dead_code)]
mod dovecot;
#[path = "../tests/ports.rs"]
mod ports;
#[allow(dead_code)]
mod util;
use util::{arg, tgvault};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = arg(&args, "--messages").map_or(10_000, |v| v.parse().unwrap());
    let work = tempfile::tempdir().unwrap();
    let export = dovecot::desk_export(work.path(), n);
    let archive = work.path().join("archive");
    let users = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/users.csv");
    tgvault(
        &archive,
        &[
            "import",
            export.to_str().unwrap(),
            "--mapping",
            users.to_str().unwrap(),
        ],
    );
    let boxes = ["bob.brown@corp.example", "erin.evans@corp.example"];
    let Some(d) = dovecot::Dovecot::start(&boxes) else {
        eprintln!("no Dovecot: nothing measured");
        return;
    };
    let args = d.target_args("dc", work.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tgvault(&archive, &args);
    let t = Instant::now();
    let timed = Command::new("/usr/bin/time")
        .args(["-f", "%U %S"])
        .arg(env!("CARGO_BIN_EXE_tgvault"))
        .arg("--archive")
        .arg(&archive)
        .args(["forward", "run", "--json"])
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let out = String::from_utf8_lossy(&timed.stdout).into_owned();
    let ours: f64 = String::from_utf8_lossy(&timed.stderr)
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok())
        .sum();
    println!("CPU: tgvault {ours:.1} s (user and system)");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let sent = v["counters"]["imported"].as_u64().unwrap();
    assert_eq!(v["status"], "completed", "{v}");
    println!(
        "forward run: {sent} copies into Dovecot in {secs:.2} s: {:.0} messages/s",
        sent as f64 / secs
    );
    let t = Instant::now();
    tgvault(&archive, &["forward", "run", "--json"]);
    println!(
        "forward run again (nothing to send): {:.2} s",
        t.elapsed().as_secs_f64()
    );
}
