//! A full disk, on a real file system: a small tmpfs mounted for the test
//! (root, as CI is; elsewhere the test says it did not run). An import
//! that runs out of space names the disk and the space left and commits
//! nothing half-written; an export that runs out of space is audited as
//! failed and its package does not say it is complete.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `mib` MiB, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    /// The mount point, removed after the unmount.
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but a tmpfs cannot be mounted"
            );
            eprintln!(
                "SKIPPED: cannot mount a tmpfs here (not root?): the full-disk test did not run"
            );
            return None;
        }
        Some(Tmpfs {
            path: dir.path().to_path_buf(),
            _dir: dir,
        })
    }
    fn grow(&self, mib: u32) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

fn synth(dir: &Path, messages: u64) {
    tgvault::synth::write_export(
        dir,
        &tgvault::synth::SynthSpec {
            messages,
            chats: 3,
            attachment_permille: 100,
            max_attachment_bytes: 16_384,
            seed: 3,
        },
    )
    .unwrap();
}

#[test]
fn a_full_disk_is_named_and_nothing_half_written_stays() {
    let Some(disk) = Tmpfs::mount(4) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    synth(&export, 20_000);
    let archive = disk.path.join("archive");
    let run = |args: &[&str]| {
        Command::new(bin())
            .arg("--archive")
            .arg(&archive)
            .args(args)
            .output()
            .unwrap()
    };
    let e = export.display().to_string();
    let out = run(&["import", &e, "--mailbox", "owner@corp.example"]);
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert_ne!(out.status.code(), Some(101), "{said}");
    assert!(said.contains("the disk is full"), "{said}");
    assert!(said.contains(&archive.display().to_string()), "{said}");
    assert!(said.contains("bytes free"), "{said}");
    assert!(!said.contains("Previous I/O error"), "{said}");
    // With room again, what committed is whole and the import completes.
    disk.grow(512);
    let out = run(&["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run(&["import", &e, "--mailbox", "owner@corp.example", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["search", "kind:externaldata", "--count"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "20000");
    // When the disk fills up again (something else fills it), the reading
    // commands work, their entries in the read log elsewhere.
    let searches = || {
        let out = run(&["audit", "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .matches("\"action\":\"search\"")
            .count()
    };
    let before = searches();
    let filler = disk.path.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1 << 20];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let log = tmp.path().join("reads.jsonl");
    for args in [
        vec!["search", "kind:externaldata", "--count"],
        vec!["verify"],
        vec!["mailboxes"],
        vec!["audit"],
    ] {
        let out = Command::new(bin())
            .arg("--archive")
            .arg(&archive)
            .args(&args)
            .env("TGVAULT_READ_LOG", &log)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?} on a full disk: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The search is recorded once: on the trail if it had room, else in
    // the read log.
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    std::fs::remove_file(&filler).unwrap();
    let in_log = logged.matches("\"action\":\"search\"").count();
    assert_eq!(searches() + in_log, before + 1, "{logged}");
}

#[test]
fn an_export_onto_a_full_disk_is_audited_as_failed_and_not_complete() {
    let Some(disk) = Tmpfs::mount(1) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    synth(&export, 3_000);
    let a = Archive::new();
    a.ok(&[
        "import",
        &export.display().to_string(),
        "--mailbox",
        "owner@corp.example",
    ]);
    let pkg = disk.path.join("pkg");
    let out = a.run(&[
        "export",
        "kind:externaldata",
        "--out",
        &pkg.display().to_string(),
    ]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{said}");
    assert_ne!(out.status.code(), Some(101), "{said}");
    assert!(said.contains("No space left"), "{said}");
    assert_ne!(
        tgvault::export::status::read(&pkg).as_deref(),
        Some("complete"),
        "a package cut short says it is complete"
    );
    let trail = a.json_lines(&["audit"]);
    let last = trail
        .iter()
        .rev()
        .find(|e| e["action"] == "export")
        .unwrap();
    assert!(
        last["outcome"].as_str().unwrap().starts_with("failed"),
        "{last}"
    );
    assert!(trail.iter().any(|e| e["action"] == "export started"));
}
