//! Backups and read-only archives, through the binary: a backup taken while
//! an import runs in another process restores to a clean archive holding
//! every item once; the next backup copies about what changed; retention's
//! destruction reaches the backup; a backup opens read-only and verifies,
//! and is never written; everything is owner-only whatever the umask; an
//! archive on a read-only mount is searched, listed, shown, exported,
//! verified and audited, its reads recorded in the read log.

use crate::common::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn tgvault(archive: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.arg("--archive")
        .arg(archive)
        .args(args)
        .env_remove("TGVAULT_ARCHIVE");
    c
}

fn run(archive: &Path, args: &[&str]) -> Output {
    tgvault(archive, args).output().unwrap()
}

fn ok(archive: &Path, args: &[&str]) -> String {
    let out = run(archive, args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(archive: &Path, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(archive, &a)).unwrap()
}

fn synth(dir: &Path, messages: u64, max_attachment: u64, seed: u64) -> PathBuf {
    tgvault::synth::write_export(
        dir,
        &tgvault::synth::SynthSpec {
            messages,
            chats: 3,
            // Large files are few (blob files over 1 MiB), small ones many.
            attachment_permille: if max_attachment > 1 << 20 { 150 } else { 60 },
            max_attachment_bytes: max_attachment,
            seed,
        },
    )
    .unwrap();
    dir.to_path_buf()
}

/// Every stored copy as `(mailbox, folder, item)`, from the catalogue.
fn copies(archive: &Path) -> Vec<String> {
    let a = tgvault::store::Archive::open_read_only(archive).unwrap();
    let mut out = Vec::new();
    for (mailbox, _, _) in a.folders().unwrap() {
        a.for_each_filing(&mailbox, None, |key, _| {
            out.push(format!("{}/{}/{}", key.mailbox, key.folder, key.item));
            Ok(())
        })
        .unwrap();
    }
    out.sort();
    out.dedup();
    out
}

/// `DIR/archive`, the full-account fixture imported with its user map.
fn full_account(dir: &Path) -> PathBuf {
    let archive = dir.join("archive");
    let (full, users) = (fixture("exports/full-account"), fixture("users.csv"));
    ok(
        &archive,
        &[
            "import",
            full.to_str().unwrap(),
            "--mapping",
            users.to_str().unwrap(),
        ],
    );
    archive
}

/// The archive `restore --replace` moved aside, in `dir`.
fn replaced(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("archive.replaced-")
        })
        .unwrap()
}

/// A backup an older build made (format 5) is brought up to this format by
/// the next backup pass into it: it then opens read-only and verifies, and
/// restores to an archive that verifies.
#[test]
fn the_next_backup_brings_a_backup_of_an_older_format_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let backup = tmp.path().join("backup");
    copy_tree(&fixture("archive-format5"), &archive);
    copy_tree(&fixture("backup-format5"), &backup);
    // The archive migrates on open; the old backup does not open read-only.
    let multilingual = fixture("exports/multilingual");
    ok(
        &archive,
        &[
            "import",
            multilingual.to_str().unwrap(),
            "--mailbox",
            "custodian@corp.example",
        ],
    );
    let out = run(&backup, &["verify"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("the next `tgvault backup` into it"), "{said}");
    let stats = json(&archive, &["backup", backup.to_str().unwrap()]);
    assert!(stats["rows_written"].as_u64().unwrap() > 0, "{stats}");
    let v = json(&backup, &["verify"]);
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(
        v["checked"]["items"],
        json(&archive, &["verify"])["checked"]["items"]
    );
    let restored = tmp.path().join("restored");
    ok(&restored, &["restore", backup.to_str().unwrap()]);
    verify_clean(&restored, &[]);
    assert_eq!(copies(&restored), copies(&archive));
}

fn verify_clean(archive: &Path, extra: &[&str]) {
    let mut a = vec!["verify"];
    a.extend_from_slice(extra);
    let v = json(archive, &a);
    assert_eq!(v["errors"], 0, "{v}");
}

#[test]
fn a_backup_taken_during_an_import_restores_whole_and_the_next_copies_little() {
    let tmp = tempfile::tempdir().unwrap();
    let files = synth(&tmp.path().join("files"), 60, 3 << 20, 4);
    let big = synth(&tmp.path().join("big"), 40_000, 16 << 10, 5);
    let small = synth(&tmp.path().join("small"), 300, 2048, 9);
    let archive = tmp.path().join("archive");
    let backup = tmp.path().join("backup");
    ok(
        &archive,
        &[
            "import",
            files.to_str().unwrap(),
            "--mailbox",
            "o@corp.example",
        ],
    );

    // An import in another process; backups beside it until it ends.
    let mut import = tgvault(
        &archive,
        &[
            "import",
            big.to_str().unwrap(),
            "--mailbox",
            "o@corp.example",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut during = 0;
    while import.try_wait().unwrap().is_none() {
        let out = run(&archive, &["backup", backup.to_str().unwrap(), "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if import.try_wait().unwrap().is_none() {
            during += 1;
        }
    }
    assert!(import.wait().unwrap().success());
    assert!(during >= 1, "no backup ran while the import did");

    // The mid-import backup opens read-only, verifies, and restores.
    verify_clean(&backup, &[]);
    let mid = tmp.path().join("restored-mid");
    ok(&mid, &["restore", backup.to_str().unwrap()]);
    verify_clean(&mid, &[]);
    assert!(copies(&mid).len() <= copies(&archive).len());

    // The full backup: the first after the import ends.
    let full = json(&archive, &["backup", backup.to_str().unwrap()]);
    // A small import, then the next backup copies a small share.
    ok(
        &archive,
        &[
            "import",
            small.to_str().unwrap(),
            "--mailbox",
            "o@corp.example",
        ],
    );
    let first = tmp.path().join("first");
    let first_stats = json(&archive, &["backup", first.to_str().unwrap()]);
    let next = json(&archive, &["backup", backup.to_str().unwrap()]);
    let bytes = |v: &Value| v["pack_bytes"].as_u64().unwrap() + v["blob_bytes"].as_u64().unwrap();
    eprintln!(
        "backup bytes: whole {} (catch-up after the import {}), after a 300-message import {}",
        bytes(&first_stats),
        bytes(&full),
        bytes(&next)
    );
    assert!(
        first_stats["blob_files"].as_u64().unwrap() > 0,
        "{first_stats}"
    );
    assert!(
        bytes(&next) * 20 < bytes(&first_stats),
        "the second backup copied {} of {}",
        bytes(&next),
        bytes(&first_stats)
    );

    // Restored from the latest backup: every item once, nothing else.
    let restored = tmp.path().join("restored");
    ok(&restored, &["restore", backup.to_str().unwrap()]);
    verify_clean(&restored, &[]);
    assert_eq!(copies(&restored), copies(&archive));
    assert_eq!(
        ok(&restored, &["search", "kind:externaldata", "--count"]),
        ok(&archive, &["search", "kind:externaldata", "--count"])
    );
    // The mid-import restore converges when the import is run again.
    ok(
        &mid,
        &[
            "import",
            files.to_str().unwrap(),
            "--mailbox",
            "o@corp.example",
        ],
    );
    ok(
        &mid,
        &[
            "import",
            big.to_str().unwrap(),
            "--mailbox",
            "o@corp.example",
        ],
    );
    ok(
        &mid,
        &[
            "import",
            small.to_str().unwrap(),
            "--mailbox",
            "o@corp.example",
        ],
    );
    assert_eq!(copies(&mid), copies(&archive));
    // Both are on the trail: the archive's backups, the restore's restore.
    let trail = |a: &Path| -> Vec<String> {
        ok(a, &["audit", "--json"])
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["action"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert!(trail(&archive).iter().filter(|a| *a == "backup").count() >= during + 3);
    assert!(trail(&restored).contains(&"restore".to_string()));
}

#[test]
fn retention_destruction_reaches_the_backup_and_a_backup_is_never_written() {
    let tmp = tempfile::tempdir().unwrap();
    let export = synth(&tmp.path().join("x"), 2_000, 2048, 3);
    let archive = tmp.path().join("archive");
    let backup = tmp.path().join("backup");
    ok(
        &archive,
        &[
            "import",
            export.to_str().unwrap(),
            "--mailbox",
            "o@corp.example",
        ],
    );
    ok(&archive, &["backup", backup.to_str().unwrap()]);
    let text = std::fs::read_to_string(export.join("result.json")).unwrap();
    let needle = text
        .split("\"text\": \"")
        .nth(5)
        .and_then(|t| t.split('"').next())
        .unwrap()
        .to_string();
    let in_backup = |n: &str| files_under(&backup).iter().any(|p| holds(p, n.as_bytes()));
    assert!(in_backup(&needle), "{needle}");

    ok(
        &archive,
        &["retention", "add", "purge", "--delete-after", "1"],
    );
    ok(&archive, &["retention", "run", "--now", "2100-01-01"]);
    let s = json(&archive, &["backup", backup.to_str().unwrap()]);
    assert!(s["rows_removed"].as_u64().unwrap() > 0, "{s}");
    assert!(!in_backup(&needle), "destroyed text is still in the backup");
    verify_clean(&backup, &[]);

    // A backup is only read: writing commands refuse, reads work.
    let before = std::fs::read(backup.join("archive.redb")).unwrap();
    for args in [
        vec!["hold", "set", "o@corp.example"],
        vec!["import", export.to_str().unwrap()],
        vec!["reindex"],
    ] {
        let out = run(&backup, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("a backup of"));
    }
    ok(&backup, &["audit"]);
    assert!(
        std::fs::read(backup.join("archive.redb")).unwrap() == before,
        "the backup's catalogue changed"
    );

    // Refused targets: a non-empty directory, another archive's backup,
    // the archive itself.
    let other = tmp.path().join("other");
    ok(&other, &["init"]);
    let elsewhere = tmp.path().join("elsewhere");
    ok(&other, &["backup", elsewhere.to_str().unwrap()]);
    for dest in [export.as_path(), elsewhere.as_path(), archive.as_path()] {
        let out = run(&archive, &["backup", dest.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", dest.display());
    }
    // Restoring over an archive needs --replace, which keeps the old one.
    let out = run(&other, &["restore", backup.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    ok(&other, &["restore", backup.to_str().unwrap(), "--replace"]);
    let kept: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("other.replaced-")
        })
        .collect();
    assert_eq!(kept.len(), 1);
    verify_clean(&other, &[]);
}

fn modes_under(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![(
        dir.to_path_buf(),
        std::fs::metadata(dir).unwrap().permissions().mode(),
    )];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(modes_under(&p));
        } else {
            out.push((
                p.clone(),
                std::fs::metadata(&p).unwrap().permissions().mode(),
            ));
        }
    }
    out
}

#[test]
fn backups_and_restores_are_owner_only_whatever_the_umask() {
    for umask in ["000", "077"] {
        let tmp = tempfile::tempdir().unwrap();
        let export = synth(&tmp.path().join("x"), 50, 3 << 20, 1);
        let archive = tmp.path().join("archive");
        let (backup, restored) = (tmp.path().join("b"), tmp.path().join("r"));
        let sh = |args: &str| {
            let st = Command::new("sh")
                .arg("-c")
                .arg(format!("umask {umask}; exec \"$0\" {args} >/dev/null"))
                .arg(bin())
                .status()
                .unwrap();
            assert!(st.success(), "{args}");
        };
        sh(&format!(
            "--archive {} import {} --mailbox o@corp.example",
            archive.display(),
            export.display()
        ));
        sh(&format!(
            "--archive {} backup {}",
            archive.display(),
            backup.display()
        ));
        sh(&format!(
            "--archive {} restore {}",
            restored.display(),
            backup.display()
        ));
        sh(&format!("--archive {} verify", restored.display()));
        for dir in [&backup, &restored] {
            let modes = modes_under(dir);
            assert!(
                modes
                    .iter()
                    .any(|(p, _)| p.to_string_lossy().contains("sha256"))
            );
            for (p, m) in modes {
                let want = if p.is_dir() { 0o700 } else { 0o600 };
                assert_eq!(m & 0o777, want, "umask {umask}: {}", p.display());
            }
        }
    }
}

/// A read-only view of `dir`: a read-only bind mount where this process
/// may mount (root, as CI is), else a `chmod -R a-w` copy.
struct ReadOnly {
    path: PathBuf,
    mounted: bool,
}

impl ReadOnly {
    fn of(dir: &Path, at: &Path) -> ReadOnly {
        std::fs::create_dir_all(at).unwrap();
        let bind = Command::new("mount")
            .arg("--bind")
            .arg(dir)
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if bind {
            let ro = Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(at)
                .status()
                .unwrap();
            assert!(ro.success());
            return ReadOnly {
                path: at.to_path_buf(),
                mounted: true,
            };
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but a read-only bind mount cannot be made"
        );
        eprintln!("note: no bind mount here (not root): a chmod -R a-w copy stands in");
        let st = Command::new("cp")
            .arg("-a")
            .arg(dir)
            .arg(at.join("c"))
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("chmod")
            .args(["-R", "a-w"])
            .arg(at.join("c"))
            .status()
            .unwrap();
        assert!(st.success());
        ReadOnly {
            path: at.join("c"),
            mounted: false,
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.path).status();
        } else {
            let _ = Command::new("chmod")
                .args(["-R", "u+w"])
                .arg(&self.path)
                .status();
        }
    }
}

#[test]
fn an_archive_on_read_only_storage_is_read_and_its_reads_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = Archive::new();
    archive.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    let count = archive.ok(&["search", "report", "--count"]);
    let before = archive.ok(&["audit", "--json"]);
    let ro = ReadOnly::of(archive.path(), &tmp.path().join("ro"));
    let log = tmp.path().join("reads.jsonl");
    let r = |args: &[&str]| {
        tgvault(&ro.path, args)
            .env("TGVAULT_READ_LOG", &log)
            .output()
            .unwrap()
    };
    let ok_ro = |args: &[&str]| {
        let out = r(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // Found by itself, and with --read-only.
    let hits = ok_ro(&["search", "report", "--json"]);
    assert!(hits.lines().count() > 1, "{hits}");
    assert_eq!(
        ok_ro(&["--read-only", "search", "report", "--count"]),
        count
    );
    let first: Value = serde_json::from_str(hits.lines().next().unwrap()).unwrap();
    let id = first["item"].as_str().unwrap().to_string();
    assert!(ok_ro(&["show", &id]).contains(&id));
    assert!(!ok_ro(&["mailboxes"]).is_empty());
    let mailbox = ok_ro(&["mailboxes", "--json"])
        .lines()
        .next()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["mailbox"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .unwrap();
    assert!(!ok_ro(&["ls", &mailbox]).is_empty());
    let v: Value = serde_json::from_str(&ok_ro(&["verify", "--json"])).unwrap();
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(ok_ro(&["audit", "--json"]), before);
    let out = tmp.path().join("package");
    ok_ro(&["export", "report", "--out", out.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(out.join("Export Status.txt"))
            .unwrap()
            .contains("complete")
    );

    // Writes fail clearly; nothing changed.
    let w = r(&["hold", "set", &mailbox]);
    assert_eq!(
        w.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&w.stderr)
    );
    assert!(String::from_utf8_lossy(&w.stderr).contains("read-only"));

    // Every read is in the read log, anchored to the trail's last entry.
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l["event"]["action"].as_str().unwrap())
        .collect();
    for want in ["search", "verify", "export started", "export"] {
        assert!(actions.contains(&want), "{want} not in {actions:?}");
    }
    let last: Value = serde_json::from_str(before.lines().last().unwrap()).unwrap();
    assert!(
        lines.iter().all(|l| l["after_seq"] == last["seq"]),
        "{lines:?}"
    );
    drop(ro);
    assert_eq!(archive.ok(&["audit", "--json"]), before);
}

#[test]
fn reads_beside_a_writer_are_put_on_the_trail_by_the_next_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let export = synth(&tmp.path().join("x"), 30_000, 2048, 2);
    let archive = tmp.path().join("archive");
    // An index to read beside the import.
    let (full, users) = (fixture("exports/full-account"), fixture("users.csv"));
    ok(
        &archive,
        &[
            "import",
            full.to_str().unwrap(),
            "--mapping",
            users.to_str().unwrap(),
        ],
    );
    let mut import = tgvault(
        &archive,
        &[
            "import",
            export.to_str().unwrap(),
            "--mailbox",
            "o@corp.example",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut searched = 0;
    while import.try_wait().unwrap().is_none() {
        let out = run(&archive, &["search", "kind:externaldata", "--count"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        searched += 1;
    }
    assert!(import.wait().unwrap().success());
    assert!(searched > 0);
    // The next writer (this audit's open) appends what waited.
    let trail = ok(&archive, &["audit", "--json"]);
    let searches = trail
        .lines()
        .filter(|l| l.contains("\"action\":\"search\""))
        .count();
    assert_eq!(searches, searched, "{trail}");
    assert!(
        !archive
            .join("audit-pending")
            .read_dir()
            .unwrap()
            .any(|_| true)
    );
    verify_clean(&archive, &[]);
}

#[test]
fn after_a_damaged_catalogue_restore_and_recover_give_back_every_audit_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, backup) = (full_account(tmp.path()), tmp.path().join("backup"));
    ok(&archive, &["hold", "set", "erin.evans@corp.example"]);
    ok(&archive, &["retention", "add", "old", "--retain", "30"]);
    ok(&archive, &["backup", backup.to_str().unwrap()]);
    // Work after the backup: on the trail, and in the journal; the holds,
    // cases and policies it changes are back in force after the recover.
    ok(&archive, &["hold", "set", "alice.adams@corp.example"]);
    ok(&archive, &["hold", "clear", "erin.evans@corp.example"]);
    ok(&archive, &["search", "report"]);
    ok(&archive, &["case", "create", "merger"]);
    ok(
        &archive,
        &[
            "case",
            "hold",
            "add",
            "merger",
            "--mailbox",
            "bob.brown@corp.example",
            "--query",
            "deal",
        ],
    );
    ok(&archive, &["case", "create", "closed-one"]);
    ok(&archive, &["case", "close", "closed-one"]);
    ok(&archive, &["retention", "remove", "old"]);
    ok(
        &archive,
        &[
            "retention",
            "add",
            "purge",
            "--retain",
            "365",
            "--then-delete",
        ],
    );
    verify_clean(&archive, &[]);
    let state = |archive: &Path| {
        [
            ok(archive, &["hold", "list", "--json"]),
            ok(archive, &["case", "list", "--json"]),
            ok(archive, &["retention", "list", "--json"]),
        ]
    };
    let settings = state(&archive);
    let before: Vec<Value> = ok(&archive, &["audit", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    // The catalogue is damaged beyond use.
    let db = archive.join("archive.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().take(8192) {
        *b = 0xA5;
    }
    std::fs::write(&db, bytes).unwrap();
    assert!(!run(&archive, &["audit"]).status.success());

    // Restore the backup over it (the damaged archive is kept aside), then
    // recover what the journal holds past the backup.
    ok(
        &archive,
        &["restore", backup.to_str().unwrap(), "--replace"],
    );
    let aside = replaced(tmp.path());
    let journal = aside.join("audit.journal");
    let r = json(
        &archive,
        &["recover", "--journal", journal.to_str().unwrap()],
    );
    let since_backup: Vec<&Value> = before
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() > r["common_seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        r["appended"].as_u64().unwrap(),
        since_backup.len() as u64,
        "{r}"
    );
    assert!(since_backup.len() >= 4, "{since_backup:?}");
    let after: Vec<Value> = ok(&archive, &["audit", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for e in since_backup {
        let hash = e["hash"].as_str().unwrap();
        assert!(
            after.iter().any(|a| a["action"] == "recovered entry"
                && a["params"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p[0] == "original hash" && p[1] == hash)),
            "entry {} not put back",
            e["seq"]
        );
    }
    assert_eq!(state(&archive), settings, "{r}");
    assert_eq!(r["settings"].as_array().unwrap().len(), 8, "{r}");
    // Once only: a second recover puts nothing back, and changes nothing.
    ok(&archive, &["hold", "clear", "alice.adams@corp.example"]);
    let settings = state(&archive);
    let again = json(
        &archive,
        &["recover", "--journal", journal.to_str().unwrap()],
    );
    assert_eq!(again["appended"], 0, "{again}");
    assert_eq!(state(&archive), settings);
    verify_clean(&archive, &[]);
    // A journal of another archive shares nothing and is refused.
    let other = tmp.path().join("other");
    ok(&other, &["init"]);
    let out = run(
        &archive,
        &[
            "recover",
            "--journal",
            other.join("audit.journal").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

/// Every item version the catalogue holds, as `item sha256`, and every item
/// in the quarantine.
fn versions_and_quarantine(archive: &Path) -> (Vec<String>, Vec<String>) {
    let a = tgvault::store::Archive::open_read_only(archive).unwrap();
    let mut versions = Vec::new();
    let mut ids = Vec::new();
    a.for_each_stamp(|id, _| {
        ids.push(id);
        Ok(())
    })
    .unwrap();
    for id in ids {
        for v in a.source(&id).unwrap().unwrap().versions {
            versions.push(format!("{id} {}", hex::encode(v.content)));
        }
    }
    versions.sort();
    let mut held: Vec<String> = a
        .quarantine()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    held.sort();
    (versions, held)
}

#[test]
fn after_a_damaged_catalogue_restore_and_recover_give_back_every_item_version() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let backup = tmp.path().join("backup");
    // The owner and a few senders mapped by user id: most items are filed,
    // some quarantined.
    let users = tmp.path().join("users.csv");
    std::fs::write(
        &users,
        "mobile_number,mailbox,telegram_user_id,telegram_username\n\
         ,owner@corp.example,1000000,\n,u1@corp.example,1000001,\n,u3@corp.example,1000003,\n",
    )
    .unwrap();
    let import = |export: &Path| {
        ok(
            &archive,
            &[
                "import",
                export.to_str().unwrap(),
                "--mapping",
                users.to_str().unwrap(),
            ],
        )
    };
    import(&synth(&tmp.path().join("s1"), 1500, 2 << 20, 7));
    ok(&archive, &["backup", backup.to_str().unwrap()]);
    // After the backup: new items with inline blobs and blob files, and
    // new versions of items the backup holds (the same ids, other texts).
    import(&synth(&tmp.path().join("s2"), 2400, 2 << 20, 8));
    import(&fixture("exports/single-chat"));
    import(&fixture("exports/single-chat-edited"));
    let (versions, held) = versions_and_quarantine(&archive);
    let filed = copies(&archive);
    let (at_backup, _) = versions_and_quarantine(&backup);
    assert!(versions.len() > at_backup.len() + 1000);

    let db = archive.join("archive.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().take(8192) {
        *b = 0xA5;
    }
    std::fs::write(&db, bytes).unwrap();
    ok(
        &archive,
        &["restore", backup.to_str().unwrap(), "--replace"],
    );
    let aside = replaced(tmp.path());
    let r = json(
        &archive,
        &[
            "recover",
            "--from",
            aside.to_str().unwrap(),
            "--mapping",
            users.to_str().unwrap(),
        ],
    );
    let counters = &r["items"]["files"][0]["counters"];
    assert_eq!(counters["failed"], 0, "{r}");
    assert!(r["appended"].as_u64().unwrap() >= 3, "{r}");

    // Every version is back, once; each item is filed or quarantined, and
    // never filed where it was not.
    let (after, held_after) = versions_and_quarantine(&archive);
    assert_eq!(after, versions);
    let filed_after = copies(&archive);
    // Here each copy comes back where it was: the synthetic chats are the
    // owner's personal chats and groups (its scope), and the mapping names
    // the owner and the senders.
    assert_eq!(filed_after.len(), filed.len(), "{counters}");
    assert!(
        counters["new_versions"].as_u64().unwrap() >= 1000,
        "{counters}"
    );
    for c in &filed_after {
        assert!(filed.contains(c), "{c} was not filed there before");
    }
    for id in held {
        assert!(held_after.contains(&id), "{id} left the quarantine");
    }
    let items: std::collections::BTreeSet<&str> =
        after.iter().map(|v| v.split(' ').next().unwrap()).collect();
    for id in items {
        assert!(
            held_after.iter().any(|h| h == id) || filed_after.iter().any(|c| c.ends_with(id)),
            "{id} is neither filed nor quarantined"
        );
    }
    // The blobs came back with them: a search finds the new items and
    // verify reads every version and blob.
    verify_clean(&archive, &[]);
    // Once only: a second recover adds nothing.
    let again = json(&archive, &["recover", "--from", aside.to_str().unwrap()]);
    let c = &again["items"]["files"][0]["counters"];
    assert_eq!(c["imported"], 0, "{again}");
    assert_eq!(c["quarantined"], 0, "{again}");
    assert_eq!(versions_and_quarantine(&archive).0, versions);
    let trail = ok(&archive, &["audit", "--json"]);
    assert!(trail.contains("\"recover batch\""));
}

/// A copy that reached its mailbox only through the export's custodian
/// (`--mailbox`) is placed again by `recover` from the packs' filing logs,
/// even after compaction moved them, and not quarantined.
#[test]
fn recover_files_each_copy_where_the_filing_log_says_custodians_included() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("archive");
    let backup = tmp.path().join("backup");
    let into = |export: &Path, mailbox: &str| {
        ok(
            &archive,
            &["import", export.to_str().unwrap(), "--mailbox", mailbox],
        )
    };
    into(
        &synth(&tmp.path().join("s1"), 300, 64 << 10, 3),
        "desk@corp.example",
    );
    ok(&archive, &["backup", backup.to_str().unwrap()]);
    // After the backup: a new export for another custodian, and the first
    // one again for a second (new copies of items the backup holds).
    into(
        &synth(&tmp.path().join("s2"), 700, 64 << 10, 4),
        "trader@corp.example",
    );
    into(&tmp.path().join("s1"), "audit@corp.example");
    ok(&archive, &["compact", "--below", "100"]);
    let filed = copies(&archive);
    let (versions, held) = versions_and_quarantine(&archive);
    assert!(held.is_empty());
    assert!(filed.iter().any(|c| c.starts_with("trader@corp.example/")));
    assert!(filed.iter().any(|c| c.starts_with("audit@corp.example/")));

    std::fs::write(archive.join("archive.redb"), vec![0xA5; 16384]).unwrap();
    ok(
        &archive,
        &["restore", backup.to_str().unwrap(), "--replace"],
    );
    let aside = replaced(tmp.path());
    let r = json(&archive, &["recover", "--from", aside.to_str().unwrap()]);
    let counters = &r["items"]["files"][0]["counters"];
    assert_eq!(counters["failed"], 0, "{r}");
    assert_eq!(counters["quarantined"], 0, "{r}");
    let back = copies(&archive);
    let missing: Vec<&String> = filed.iter().filter(|c| !back.contains(c)).collect();
    let extra: Vec<&String> = back.iter().filter(|c| !filed.contains(c)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} copies not put back (first {:?}), {} put where they were not (first {:?}); {counters}",
        missing.len(),
        missing.first(),
        extra.len(),
        extra.first()
    );
    let (after, held_after) = versions_and_quarantine(&archive);
    assert_eq!(after, versions);
    assert!(held_after.is_empty(), "{} quarantined", held_after.len());
    verify_clean(&archive, &[]);
}

#[test]
fn what_retention_destroyed_since_the_backup_is_destroyed_again_by_recover_unless_held() {
    let tmp = tempfile::tempdir().unwrap();
    let (archive, backup) = (full_account(tmp.path()), tmp.path().join("backup"));
    ok(&archive, &["backup", backup.to_str().unwrap()]);
    let all = copies(&archive);
    ok(
        &archive,
        &["retention", "add", "purge", "--delete-after", "365"],
    );
    let done = json(&archive, &["retention", "run", "--now", "2030-01-01"]);
    let deleted = done["deleted"].as_array().unwrap();
    // All but the item without a date, which no period can end.
    assert_eq!(deleted.len(), all.len() - 1);

    // The catalogue is lost; the backup brings every destroyed copy back.
    std::fs::write(archive.join("archive.redb"), vec![0xA5; 65536]).unwrap();
    ok(
        &archive,
        &["restore", backup.to_str().unwrap(), "--replace"],
    );
    assert_eq!(copies(&archive), all);
    // A hold placed now keeps Alice's copies whatever the journal says.
    ok(&archive, &["hold", "set", "alice.adams@corp.example"]);
    let alice = deleted
        .iter()
        .filter(|d| d[1] == "alice.adams@corp.example")
        .count();
    assert!(alice > 0 && alice < deleted.len());
    let aside = replaced(tmp.path());
    let r = json(&archive, &["recover", "--from", aside.to_str().unwrap()]);
    assert_eq!(r["redone"]["copies"], deleted.len() as u64, "{r}");
    let again_deleted = r["redone"]["deleted"].as_array().unwrap();
    assert_eq!(again_deleted.len(), deleted.len() - alice, "{r}");
    assert_eq!(r["redone"]["held_at_deletion"], alice as u64, "{r}");
    assert!(
        again_deleted
            .iter()
            .all(|d| d[1] != "alice.adams@corp.example")
    );
    let left = copies(&archive);
    assert_eq!(left.len(), all.len() - again_deleted.len());
    for d in again_deleted {
        let copy = format!(
            "{}/{}/{}",
            d[1].as_str().unwrap(),
            d[2].as_str().unwrap(),
            d[0].as_str().unwrap()
        );
        assert!(!left.contains(&copy), "{copy} is back");
    }
    assert_eq!(
        ok(&archive, &["search", "kind:externaldata", "--count"]).trim(),
        left.len().to_string()
    );
    verify_clean(&archive, &[]);
    // Nothing more the second time.
    let again = json(&archive, &["recover", "--from", aside.to_str().unwrap()]);
    assert_eq!(again["redone"]["deleted"].as_array().unwrap().len(), 0);
    let trail = ok(&archive, &["audit", "--json"]);
    assert!(trail.contains("\"retention redo\""));
}
