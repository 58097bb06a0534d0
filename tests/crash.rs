//! Crash safety: an import killed with SIGKILL at random moments, over and over,
//! then completed, leaves every item present exactly once, and the search index
//! (caught up at the next start) finds exactly what the store holds.

use crate::common::*;
use std::process::{Command, Stdio};
use std::time::Instant;

const MESSAGES: u64 = 30_000;

#[test]
fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    tgvault::synth::write_export(
        &export,
        &tgvault::synth::SynthSpec {
            messages: MESSAGES,
            chats: 12,
            attachment_permille: 50,
            max_attachment_bytes: 8192,
            seed: 7,
        },
    )
    .unwrap();
    let archive = tmp.path().join("archive");
    let import_into = |dir: &std::path::Path| {
        let mut c = Command::new(bin());
        c.arg("--archive")
            .arg(dir)
            .args([
                "import",
                export.to_str().unwrap(),
                "--mailbox",
                "owner@corp.example",
                "--batch-items",
                "700",
                "--json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let import = || import_into(&archive);

    // How long one whole import takes here, to spread the kills over it.
    let probe_dir = tmp.path().join("probe");
    let started = Instant::now();
    let probe = import_into(&probe_dir).output().unwrap();
    assert!(probe.status.success());
    let full = started.elapsed();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test: one import takes {full:?}; kill-point seed {seed}");
    let mut rng = seed;
    let mut killed = 0;
    let mut rounds = 0;
    // Kill points are spread over the length of the latest whole run: once the
    // archive holds everything, a re-import only skips, and is quicker.
    let mut span = full;
    while killed < 20 && rounds < 80 {
        rounds += 1;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = span.mul_f64((rng % 1000) as f64 / 1000.0);
        let started = Instant::now();
        let mut child = import().spawn().unwrap();
        std::thread::sleep(at);
        match child.try_wait().unwrap() {
            Some(status) => {
                span = started.elapsed();
                eprintln!("round {rounds}: finished before the kill at {at:?} ({status})");
            }
            None => {
                child.kill().unwrap();
                killed += 1;
            }
        }
        child.wait().unwrap();
    }
    assert!(killed >= 20, "only {killed} imports were killed mid-way");

    // Restarted after the last kill: the index catches up, agrees with the
    // store, and every stored item is found.
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("--archive")
            .arg(&archive)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["search", "kind:externaldata", "--count"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let stored = tgvault::store::Archive::open(&archive)
        .unwrap()
        .table_sizes()
        .unwrap()
        .into_iter()
        .find(|(t, _)| *t == "items")
        .unwrap()
        .1;
    assert_eq!(
        found, stored,
        "searchable copies vs stored copies after the kills"
    );
    let out = run(&["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The import that finishes.
    let out = import().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = totals(&rep);
    assert_balanced(t);
    assert_eq!(n(t, "available_from_source"), MESSAGES);
    assert_eq!(n(t, "imported") + n(t, "skipped"), MESSAGES, "{t}");
    let out = run(&["search", "kind:externaldata", "--count"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        MESSAGES.to_string()
    );

    let a = tgvault::store::Archive::open(&archive).unwrap();
    let sizes: std::collections::BTreeMap<_, _> = a.table_sizes().unwrap().into_iter().collect();
    assert_eq!(sizes["items"], MESSAGES);
    assert_eq!(sizes["sources"], MESSAGES);
    assert_eq!(sizes["quarantine"], 0);
    let mut filed = 0u64;
    a.for_each_filing("owner@corp.example", None, |key, _| {
        let src = a.source(&key.item)?.expect("every filing has its source");
        assert_eq!(
            src.versions.len(),
            1,
            "{} has {} versions",
            key.item,
            src.versions.len()
        );
        assert_eq!(
            src.locations.len(),
            1,
            "{} is filed {} times",
            key.item,
            src.locations.len()
        );
        filed += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(filed, MESSAGES);
    // Same content as the import that was never interrupted.
    drop(a);
    let clean = tgvault::store::Archive::open(&probe_dir).unwrap();
    let clean_sizes: std::collections::BTreeMap<_, _> =
        clean.table_sizes().unwrap().into_iter().collect();
    for t in ["items", "sources", "blobs"] {
        assert_eq!(sizes[t], clean_sizes[t], "table {t}");
    }
    // Every killed run is on record, none left "running".
    let runs = clean.runs().unwrap();
    assert!(
        runs.iter()
            .all(|r| r.status != tgvault::store::records::RunStatus::Running)
    );
    drop(clean);
    let killed_runs = tgvault::store::Archive::open(&archive)
        .unwrap()
        .runs()
        .unwrap()
        .iter()
        .filter(|r| r.status == tgvault::store::records::RunStatus::Interrupted)
        .count();
    assert!(killed_runs >= 1, "no interrupted run recorded");
}
