//! Kill tests for the writers besides import (which `crash` covers):
//! SIGKILL at random points of a retention run and of an export, at least
//! 20 times each. After every kill `verify` is clean and the audit trail
//! accounts for every change that committed: each deleted copy is listed by
//! a `retention delete` entry, and every export started is on the trail
//! with its outcome (completed, or interrupted) once the archive is next
//! opened; a package cut short says so.

use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MESSAGES: u64 = 12_000;

fn cli(archive: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("--archive")
        .arg(archive)
        .args(args)
        .env_remove("TGVAULT_ARCHIVE")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn ok(archive: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("--archive")
        .arg(archive)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn audit(archive: &Path) -> Vec<Value> {
    ok(archive, &["audit", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Starts `cmd` `kills` times (more if a run ends before its kill), each
/// killed after a random share of the last whole run's length; calls
/// `check` after each kill. Returns how many runs were killed.
fn kill_repeatedly(
    what: &str,
    full: Duration,
    kills: usize,
    mut cmd: impl FnMut(usize) -> Command,
    mut check: impl FnMut(usize),
) -> usize {
    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("{what}: one run takes {full:?}; kill-point seed {rng}");
    let (mut killed, mut span) = (0, full);
    for round in 0..kills * 4 {
        if killed >= kills {
            break;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let at = span.mul_f64((rng % 1000) as f64 / 1000.0);
        let started = Instant::now();
        let mut child = cmd(round).spawn().unwrap();
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_some() {
            span = started.elapsed();
        } else {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        check(round);
    }
    killed
}

fn imported_archive(tmp: &Path) -> std::path::PathBuf {
    let export = tmp.join("export");
    tgvault::synth::write_export(
        &export,
        &tgvault::synth::SynthSpec {
            messages: MESSAGES,
            chats: 4,
            attachment_permille: 50,
            max_attachment_bytes: 4096,
            seed: 11,
        },
    )
    .unwrap();
    let archive = tmp.join("archive");
    ok(
        &archive,
        &[
            "import",
            export.to_str().unwrap(),
            "--mailbox",
            "owner@corp.example",
        ],
    );
    archive
}

fn stored_copies(archive: &Path) -> u64 {
    let a = tgvault::store::Archive::open_existing(archive).unwrap();
    a.table_sizes()
        .unwrap()
        .into_iter()
        .find(|(t, _)| *t == "items")
        .unwrap()
        .1
}

#[test]
fn a_killed_retention_run_audits_every_deletion_that_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = imported_archive(tmp.path());
    ok(
        &archive,
        &["retention", "add", "purge", "--delete-after", "1"],
    );
    let run = ["retention", "run", "--now", "2100-01-01"];
    let (full, probe, _) = timed_on_a_copy(tmp.path(), &archive, &run);
    assert_eq!(stored_copies(&probe), 0);

    let killed = kill_repeatedly(
        "retention",
        full,
        20,
        |_| cli(&archive, &run),
        |round| {
            ok(&archive, &["verify"]);
            let deleted: usize = audit(&archive)
                .iter()
                .filter(|e| e["action"] == "retention delete")
                .map(|e| {
                    e["params"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|p| p[0] == "deleted")
                        .count()
                })
                .sum();
            let gone = MESSAGES - stored_copies(&archive);
            assert_eq!(
                deleted as u64, gone,
                "round {round}: deletions not on the trail"
            );
        },
    );
    assert!(killed >= 20, "only {killed} runs were killed mid-way");
    // Every run killed is on the trail as interrupted.
    ok(&archive, &run);
    assert_eq!(stored_copies(&archive), 0);
    let trail = audit(&archive);
    let interrupted = trail
        .iter()
        .filter(|e| e["action"] == "retention interrupted")
        .count();
    // A kill before the run's record committed leaves nothing to report;
    // every run that was recorded and did not finish is on the trail once.
    let recorded = ok(&archive, &["runs", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "retention" && r["status"] == "interrupted")
        .count();
    assert_eq!(interrupted, recorded, "{killed} runs killed");
    assert!(interrupted <= killed, "{interrupted} of {killed}");
    ok(&archive, &["verify"]);
    // Nothing is searchable any more.
    assert_eq!(
        ok(&archive, &["search", "kind:externaldata", "--count"]).trim(),
        "0"
    );
}

#[test]
fn a_killed_export_is_on_the_trail_and_its_package_says_it_is_not_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = imported_archive(tmp.path());
    let out_dir = |round: usize| tmp.path().join(format!("pkg-{round}"));
    let export = |dir: &Path| {
        vec![
            "export".to_string(),
            "kind:externaldata".to_string(),
            "--out".to_string(),
            dir.display().to_string(),
        ]
    };
    let probe = tmp.path().join("probe-pkg");
    let t = Instant::now();
    let args = export(&probe);
    ok(
        &archive,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let full = t.elapsed();
    assert_eq!(
        tgvault::export::status::read(&probe).as_deref(),
        Some("complete")
    );

    let mut completed = 1;
    let killed = kill_repeatedly(
        "export",
        full,
        20,
        |round| {
            let args = export(&out_dir(round));
            cli(
                &archive,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        },
        |round| {
            let pkg = out_dir(round);
            match tgvault::export::status::read(&pkg).as_deref() {
                Some("complete") => completed += 1,
                // Killed before its first byte, or while writing.
                None => assert!(
                    !pkg.exists()
                        || crate::common::files_under(&pkg).iter().all(|f| f
                            .file_name()
                            .unwrap()
                            .to_string_lossy()
                            .starts_with(".Export Status")),
                    "round {round}: a package without a status"
                ),
                Some(s) => assert_eq!(s, "in progress", "round {round}"),
            }
            ok(&archive, &["verify"]);
        },
    );
    assert!(killed >= 20, "only {killed} exports were killed mid-way");
    let trail = audit(&archive);
    let count = |a: &str| trail.iter().filter(|e| e["action"] == a).count();
    // Each export started has its outcome: completed, or interrupted (an
    // export killed before its run began is not on the trail, and wrote
    // nothing).
    assert_eq!(
        count("export started"),
        count("export") + count("export interrupted"),
        "{trail:?}"
    );
    // Killed between the trail's outcome and the status's rename, a package
    // still says "in progress": the trail may count more, never fewer.
    assert!(
        count("export") >= completed,
        "{} < {completed}",
        count("export")
    );
}

#[test]
fn a_killed_remap_audits_what_it_moved_and_a_killed_reindex_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    tgvault::synth::write_export(
        &export,
        &tgvault::synth::SynthSpec {
            messages: MESSAGES,
            chats: 4,
            attachment_permille: 20,
            max_attachment_bytes: 2048,
            seed: 5,
        },
    )
    .unwrap();
    // Nothing maps: every item waits in quarantine.
    let archive = tmp.path().join("archive");
    ok(&archive, &["import", export.to_str().unwrap()]);
    let csv = tmp.path().join("users.csv");
    std::fs::write(
        &csv,
        "mobile_number,mailbox\n+15550000000,owner@corp.example\n",
    )
    .unwrap();
    let remap = ["quarantine", "remap", "--mapping", csv.to_str().unwrap()];
    let (full, probe, _) = timed_on_a_copy(tmp.path(), &archive, &remap);
    assert_eq!(
        stored_copies(&probe),
        MESSAGES,
        "the remap files everything"
    );

    let killed = kill_repeatedly(
        "remap",
        full,
        20,
        |_| cli(&archive, &remap),
        |round| {
            ok(&archive, &["verify"]);
            // Every copy filed is listed by a remap batch of the trail.
            let moved: usize = audit(&archive)
                .iter()
                .filter(|e| e["action"] == "remap batch")
                .map(|e| {
                    e["params"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|p| p[0] == "filed")
                        .count()
                })
                .sum();
            assert_eq!(moved as u64, stored_copies(&archive), "round {round}");
        },
    );
    assert!(killed >= 20, "only {killed} remaps were killed mid-way");
    ok(&archive, &remap);
    assert_eq!(stored_copies(&archive), MESSAGES);

    // Reindex, killed over and over: the next open makes every stored copy
    // searchable again, and the index agrees with the store.
    let t = Instant::now();
    ok(&archive, &["reindex"]);
    let full = t.elapsed();
    let killed = kill_repeatedly(
        "reindex",
        full,
        20,
        |_| cli(&archive, &["reindex"]),
        |round| {
            let count = ok(&archive, &["search", "kind:externaldata", "--count"]);
            assert_eq!(count.trim(), MESSAGES.to_string(), "round {round}");
            ok(&archive, &["verify"]);
        },
    );
    assert!(killed >= 20, "only {killed} reindexes were killed mid-way");
}

/// Copies filed in `mailbox`, by `mailboxes`.
fn copies_in(archive: &Path, mailbox: &str) -> u64 {
    ok(archive, &["mailboxes", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["mailbox"] == mailbox)
        .map(|v| v["items"].as_u64().unwrap())
        .sum()
}

/// A retention run that leaves its pack mostly dead ends by moving the live
/// rest into a new pack: killed anywhere in it (deleting, moving, zeroing,
/// dropping the pack), no live record is lost and the archive verifies.
#[test]
fn a_killed_compaction_loses_no_live_record() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = imported_archive(tmp.path());
    // A second, larger export for another mailbox, then deleted. Its first
    // ids are the first export's (one generator): those items gain a
    // version and keep their owner copy; the rest go, so that less than
    // half of the pack stays live.
    let other = tmp.path().join("other");
    tgvault::synth::write_export(
        &other,
        &tgvault::synth::SynthSpec {
            messages: 4 * MESSAGES,
            chats: 4,
            attachment_permille: 50,
            max_attachment_bytes: 4096,
            seed: 12,
        },
    )
    .unwrap();
    let other_chats = other.to_str().unwrap();
    ok(
        &archive,
        &["import", other_chats, "--mailbox", "other@corp.example"],
    );
    ok(
        &archive,
        &[
            "retention",
            "add",
            "purge",
            "--delete-after",
            "1",
            "--mailbox",
            "other@corp.example",
        ],
    );
    let run = ["retention", "run", "--now", "2100-01-01"];
    let (full, _, out) = timed_on_a_copy(tmp.path(), &archive, &run);
    assert!(out.contains("1 rewritten"), "the run compacts: {out}");
    let killed = kill_repeatedly(
        "compaction",
        full,
        20,
        |_| cli(&archive, &run),
        |round| {
            ok(&archive, &["verify"]);
            assert_eq!(
                copies_in(&archive, "owner@corp.example"),
                MESSAGES,
                "round {round}"
            );
        },
    );
    assert!(killed >= 20, "only {killed} runs were killed mid-way");
    ok(&archive, &run);
    ok(&archive, &["compact"]);
    ok(&archive, &["verify"]);
    assert_eq!(copies_in(&archive, "other@corp.example"), 0);
    assert_eq!(copies_in(&archive, "owner@corp.example"), MESSAGES);
    assert!(!archive.join("packs/00000001.pack").exists());
}

/// How long `args` takes on a copy of `archive` (made in `tmp/probe`), the
/// copy, and what the command printed.
fn timed_on_a_copy(tmp: &Path, archive: &Path, args: &[&str]) -> (Duration, PathBuf, String) {
    let probe = tmp.join("probe");
    assert!(
        Command::new("cp")
            .args(["-a", archive.to_str().unwrap(), probe.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    let t = Instant::now();
    let out = ok(&probe, args);
    (t.elapsed(), probe, out)
}

#[test]
fn a_killed_catalogue_rewrite_leaves_the_old_catalogue_or_the_new() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = imported_archive(tmp.path());
    let db = archive.join("archive.redb");
    let before = std::fs::metadata(&db).unwrap().len();
    let compact = ["compact", "--catalogue-below", "100"];
    let (full, probe, out) = timed_on_a_copy(tmp.path(), &archive, &compact);
    assert!(out.contains("catalogue rewritten"), "{out}");
    assert!(
        std::fs::metadata(probe.join("archive.redb")).unwrap().len() < before,
        "{out}"
    );
    let killed = kill_repeatedly(
        "catalogue rewrite",
        full,
        20,
        |_| cli(&archive, &compact),
        |round| {
            ok(&archive, &["verify"]);
            assert_eq!(stored_copies(&archive), MESSAGES, "round {round}");
            assert!(
                !archive.join("archive.redb.compacting").exists(),
                "round {round}: the next open removes a leftover"
            );
        },
    );
    assert!(killed >= 20, "only {killed} runs were killed mid-way");
    ok(&archive, &compact);
    ok(&archive, &["verify"]);
    assert_eq!(
        ok(&archive, &["search", "deal", "--count"]),
        ok(&probe, &["search", "deal", "--count"])
    );
    let trail = audit(&archive);
    assert!(trail.iter().any(|e| e["action"] == "compact catalogue"));
}
