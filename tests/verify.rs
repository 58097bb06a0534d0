//! `verify` finds tampering: one flipped byte in an item's stored content, in a
//! small blob (both in a pack file), or in a blob file is named, and the exit
//! code says so; so is a pack file cut short.

use crate::common::*;

fn flip(path: &std::path::Path, needle: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {}", path.display()));
    bytes[at + needle.len() / 2] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// Copies the store of archive `from` (the redb file and the packs) into `to`.
fn copy_store(from: &Archive, to: &Archive) {
    std::fs::copy(
        from.path().join("archive.redb"),
        to.path().join("archive.redb"),
    )
    .unwrap();
    let packs = to.path().join("packs");
    std::fs::create_dir_all(&packs).unwrap();
    for e in std::fs::read_dir(from.path().join("packs")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), packs.join(e.file_name())).unwrap();
    }
}

fn first_pack(a: &Archive) -> std::path::PathBuf {
    a.path().join("packs/00000001.pack")
}

fn verify(a: &Archive) -> (i32, serde_json::Value) {
    let out = a.run(&["verify", "--json"]);
    let v = serde_json::from_slice(&out.stdout).expect("verify prints JSON");
    (out.status.code().unwrap(), v)
}

fn problems(v: &serde_json::Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}: {}",
                p["severity"].as_str().unwrap(),
                p["subject"].as_str().unwrap(),
                p["problem"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_clean_archive_verifies_and_each_flipped_byte_is_named() {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    let (code, v) = verify(&a);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["errors"], 0);
    assert_eq!(v["checked"]["items"], 27);
    assert_eq!(v["checked"]["filings"], 42);
    assert_eq!(v["checked"]["blobs"], 3);

    // One byte of one message's text, inside its pack.
    let b = Archive::new();
    copy_store(&a, &b);
    flip_record(&first_pack(&b), b"Board approves the merger");
    let (code, v) = verify(&b);
    assert_eq!(code, 1);
    let p = problems(&v);
    // The item, and the record's own check.
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(
        p[0].starts_with("error tg:1000001:1000002:11:") && p[0].contains("SHA-256"),
        "{p:?}"
    );
    assert!(
        p[1].starts_with("error packs/00000001.pack: the record at bytes")
            && p[1].contains("do not match its header's hash"),
        "{p:?}"
    );
    // Reading the item is refused too, not served.
    let out = b.run(&["show", "tg:1000001:1000002:11"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match its SHA-256"));

    // One byte of a small attachment (the PDF), also in the pack.
    let c = Archive::new();
    copy_store(&a, &c);
    flip_record(&first_pack(&c), b"/Type/Catalog/Pages");
    let (code, v) = verify(&c);
    assert_eq!(code, 1);
    let p = problems(&v);
    let pdf = std::fs::read(fixture(
        "exports/full-account/chats/chat_01/files/Q3 report (final).pdf",
    ))
    .unwrap();
    let sha = hex::encode(tgvault::model::sha256(&pdf));
    assert!(
        p.iter().any(|x| x.contains(&sha)
            && (x.contains("does not match its hash") || x.contains("damaged"))),
        "{p:?}"
    );

    // A pack cut short: what it lost is named, and so is the cut.
    let d = Archive::new();
    copy_store(&a, &d);
    let pack = first_pack(&d);
    let len = std::fs::metadata(&pack).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let (code, v) = verify(&d);
    assert_eq!(code, 1);
    let p = problems(&v);
    assert!(
        p.iter().any(|x| x.contains("00000001.pack")
            && x.contains(&format!(
                "holds {} bytes; the archive committed {len}",
                len - 10
            ))),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|x| x.contains("past the end of the pack file")),
        "{p:?}"
    );
}

/// A flipped byte in a filing log (the packs' record of where each copy was
/// filed) is named with the copies it leaves unlogged; reading goes on, and
/// `compact` mends the log from the catalogue.
#[test]
fn a_damaged_filing_log_is_named_and_reads_go_on() {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    let before = a.ok(&["search", "merger"]);
    let pack = first_pack(&a);
    let logs: Vec<_> = scan_pack(&pack)
        .into_iter()
        .filter(|f| f.kind == tgvault::store::frame::Kind::Filings)
        .collect();
    assert!(!logs.is_empty(), "the import wrote no filing log");
    let mut bytes = std::fs::read(&pack).unwrap();
    let f = &logs[0];
    let header = tgvault::store::frame::HEADER;
    bytes[f.offset + header + (f.len - header) / 2] ^= 0x01;
    std::fs::write(&pack, bytes).unwrap();
    let (code, v) = verify(&a);
    assert_eq!(code, 1);
    let p = problems(&v);
    assert!(
        p.iter()
            .any(|x| x.starts_with("error filing log at pack 1 ") && x.contains("SHA-256")),
        "{p:?}"
    );
    // The record's own check names its bytes too.
    let record = format!(
        "error packs/00000001.pack: the record at bytes {}..{}: its bytes do not match",
        f.offset,
        f.offset + f.len
    );
    assert!(p.iter().any(|x| x.starts_with(&record)), "{p:?}");
    assert!(
        p.iter().all(|x| x.starts_with("error filing log at")
            || x.starts_with(&record)
            || x.contains("no filing log in the packs names it")),
        "{p:?}"
    );
    assert_eq!(a.ok(&["search", "merger"]), before);
    // `compact` writes the log anew from the catalogue, and says so.
    let out = a.ok(&["compact"]);
    assert!(
        out.contains(&format!(
            "filing log mended: 1 damaged logs dropped, {} copies logged anew",
            p.len() - 2
        )),
        "{out}"
    );
    let (code, v) = verify(&a);
    assert_eq!(code, 0, "{v}");
    assert!(a.ok(&["audit"]).contains("copies logged anew="));
    // A whole log is left alone.
    assert!(!a.ok(&["compact"]).contains("filing log mended"));
}

#[test]
fn blob_files_are_checked_and_strays_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir_all(export.join("files")).unwrap();
    let big = vec![42u8; (1 << 20) + 10];
    std::fs::write(export.join("files/big.bin"), &big).unwrap();
    std::fs::write(
        export.join("result.json"),
        r#"{"name":"X","type":"private_group","id":7,"messages":[{"id":1,"type":"message","date_unixtime":"1700000000","from":"A","from_id":"user5","file":"files/big.bin","text":"big"}]}"#,
    )
    .unwrap();
    let a = Archive::new();
    a.import(&[&export], &["--mailbox", "a@corp.example"]);
    let sha = hex::encode(tgvault::model::sha256(&big));
    let stray = a.path().join("blobs/sha256/ab/ab00");
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, b"left over").unwrap();
    let (code, v) = verify(&a);
    assert_eq!(code, 0, "{v}");
    let p = problems(&v);
    assert!(
        p.len() == 1 && p[0].starts_with("warning") && p[0].contains("ab00"),
        "{p:?}"
    );

    // Compressed (it is one byte, repeated): a flipped byte of the frame.
    let file = a
        .path()
        .join("blobs/sha256")
        .join(&sha[..2])
        .join(format!("{sha}.zst"));
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let (code, v) = verify(&a);
    assert_eq!(code, 1);
    assert!(
        problems(&v)
            .iter()
            .any(|x| x.starts_with(&format!("error blob {sha}"))),
        "{v}"
    );
}

#[test]
fn the_audit_trail_is_chained_and_a_changed_entry_is_named() {
    let a = Archive::new();
    let full = fixture("exports/full-account");
    let users = fixture("users.csv");
    a.ok(&[
        "--actor",
        "Jane Compliance",
        "import",
        full.to_str().unwrap(),
        "--mapping",
        users.to_str().unwrap(),
    ]);
    a.ok(&[
        "import",
        full.to_str().unwrap(),
        "--mapping",
        users.to_str().unwrap(),
    ]);
    let (code, _) = verify(&a);
    assert_eq!(code, 0);
    let entries = a.json_lines(&["audit"]);
    assert_eq!(entries.len(), 3, "two imports and a verify");
    assert_eq!(entries[0]["actor"], "Jane Compliance");
    assert_eq!(entries[0]["action"], "import");
    assert_eq!(entries[0]["counts"]["imported"], 38);
    assert_eq!(entries[1]["counts"]["skipped"], 42);
    assert_eq!(entries[2]["action"], "verify");
    assert_eq!(entries[0]["prev"], "0".repeat(64));
    for pair in entries.windows(2) {
        assert_eq!(pair[1]["prev"], pair[0]["hash"]);
    }
    assert_eq!(a.json_lines(&["audit", "--since", "2999-01-01"]).len(), 0);

    // Change one byte of the first entry (a counter's name exists only there).
    let b = Archive::new();
    copy_store(&a, &b);
    flip(&b.path().join("archive.redb"), b"files_failed");
    let (code, v) = verify(&b);
    assert_eq!(code, 1);
    let p = problems(&v);
    assert!(
        p.iter()
            .any(|x| x.starts_with("error audit entry ") && x.contains("changed")),
        "{p:?}"
    );
}

/// Retention destroys what it cannot read: a damaged version is deleted all
/// the same and reported (the uses of its attachments cannot be known, so
/// they are not released), and the rest of the run goes on.
#[test]
fn retention_destroys_a_damaged_version_and_says_so() {
    let b = with_damaged_merger_item();
    b.ok(&["retention", "add", "purge", "--delete-after", "1"]);
    let out = b.run(&["retention", "run", "--now", "2100-01-01"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("destroyed without being read (damaged): tg:1000001:1000002:11 version 1"),
        "{err}"
    );
    // Only the one undated item stays (no period can be counted for it).
    let out = b.ok(&["search", "kind:externaldata", "--count"]);
    assert_eq!(out.trim(), "1");
    assert_eq!(b.ok(&["search", "merger", "--count"]).trim(), "0");
    let trail = b.json_lines(&["audit"]);
    assert!(
        trail.iter().any(|e| e["action"] == "retention delete"
            && e["params"].to_string().contains("destroyed unread")),
        "{trail:?}"
    );
    // Nothing of the damaged bytes stays: the pack no longer holds them.
    for p in files_under(&b.path().join("packs")) {
        assert!(!holds(&p, b"Board approv"), "{}", p.display());
    }
}

/// The archive and every package are their owner's alone, whatever the
/// umask; `verify` warns about any part others can read or change.
#[test]
fn archive_and_packages_are_owner_only_under_any_umask() {
    use std::os::unix::fs::PermissionsExt;
    for umask in ["000", "022", "077"] {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("archive");
        let pkg = dir.path().join("pkg");
        let script = format!(
            "umask {umask} && {bin} --archive {a} import {e} --mapping {m} >/dev/null && \\
             {bin} --archive {a} export kind:externaldata --out {p} --transcripts >/dev/null",
            bin = bin(),
            a = archive.display(),
            e = fixture("exports/full-account").display(),
            m = fixture("users.csv").display(),
            p = pkg.display(),
        );
        let ok = std::process::Command::new("sh")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(ok.success(), "umask {umask}");
        for root in [&archive, &pkg] {
            for f in files_under(root).into_iter().chain([root.clone()]) {
                let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
                assert_eq!(
                    mode & 0o077,
                    0,
                    "umask {umask}: {} is {mode:o}",
                    f.display()
                );
            }
        }
        let out = std::process::Command::new(bin())
            .args(["--archive", archive.to_str().unwrap(), "verify", "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
        // Opened up by hand: named, as warnings (what lies in a folder others
        // cannot enter is out of their reach).
        let pack = archive.join("packs/00000001.pack");
        std::fs::set_permissions(&pack, std::fs::Permissions::from_mode(0o644)).unwrap();
        for d in [&archive, &archive.join("packs")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        let out = std::process::Command::new(bin())
            .args(["--archive", archive.to_str().unwrap(), "verify", "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let p = problems(&v);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p.iter().all(|p| p.starts_with("warning ")), "{p:?}");
        assert!(
            p.iter()
                .any(|p| p.contains("00000001.pack") && p.contains("0644")),
            "{p:?}"
        );
    }
}

/// Compaction never copies a damaged record: the pack stays as it is, the
/// command says why, and `verify` still names the item.
#[test]
fn compaction_leaves_a_pack_with_a_damaged_record_alone() {
    let b = with_damaged_merger_item();
    // The damaged item is held; everything else goes, which leaves the
    // pack sparse, so the run's compaction tries it.
    hold_merger_purge_the_rest(&b);
    let out = b.run(&["retention", "run", "--now", "2100-01-01", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &done["compacted"];
    assert_eq!(c["rewritten"], serde_json::json!([]), "{done}");
    assert_eq!(c["skipped"][0][0], 1, "{done}");
    assert!(first_pack(&b).exists());
    let (code, v) = verify(&b);
    assert_eq!(code, 1);
    assert!(
        problems(&v)
            .iter()
            .any(|p| p.starts_with("error tg:1000001:1000002:11:")),
        "{v}"
    );
}

/// An archive of the full-account fixture whose item 11 ("Board approves the
/// merger") has one flipped bit in its pack record.
fn with_damaged_merger_item() -> Archive {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    let b = Archive::new();
    copy_store(&a, &b);
    flip_record(&first_pack(&b), b"Board approves the merger");
    b
}

/// Copies the whole archive directory `from` into `to` (both exist).
fn copy_all(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.path().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_all(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Single flipped bytes at many offsets of every file of an archive
/// (catalogue, pack, index files, audit journal): no command panics (exit
/// 101, or a panic message), every flip in an index file or the journal is
/// named by `verify`, and one in the catalogue or a pack that `verify` does
/// not name changes nothing the reading commands print.
#[test]
fn no_damaged_byte_makes_a_command_panic_and_verify_names_index_and_journal_damage() {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    a.ok(&["verify"]);
    let files: Vec<std::path::PathBuf> = files_under(a.path())
        .into_iter()
        .filter(|p| {
            let rel = p
                .strip_prefix(a.path())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            !rel.ends_with(".lock")
                && !rel.ends_with("meta.json")
                && !rel.ends_with(".managed.json")
        })
        .collect();
    // What the reading commands print from the whole archive: a flip
    // verify does not name must leave it unchanged.
    let reads: [&[&str]; 3] = [
        &["search", "report"],
        &["ls", "alice.adams@corp.example"],
        &["show", "tg:1000001:1000002:11", "--history"],
    ];
    let whole: Vec<Vec<u8>> = reads.iter().map(|r| a.run(r).stdout).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let (mut flips, mut named) = (0, 0);
    for file in &files {
        let rel = file.strip_prefix(a.path()).unwrap().to_path_buf();
        let len = std::fs::metadata(file).unwrap().len();
        // A flip in the catalogue's free pages touches nothing; one in a
        // pack may fall in a part of a compressed record that decompresses
        // to the same bytes (verify has then checked every version against
        // its SHA-256: the content is whole). Index and journal flips are
        // always named.
        let must_name = !rel.ends_with("archive.redb") && !rel.starts_with("packs");
        for _ in 0..25 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let at = (rng % len) as usize;
            let c = Archive::new();
            copy_all(a.path(), c.path());
            let mut bytes = std::fs::read(c.path().join(&rel)).unwrap();
            bytes[at] ^= 0x10;
            std::fs::write(c.path().join(&rel), bytes).unwrap();
            let mut verify_failed = false;
            let mut printed = Vec::new();
            for args in [
                vec!["verify"],
                vec!["search", "report"],
                vec!["ls", "alice.adams@corp.example"],
                vec!["show", "tg:1000001:1000002:11", "--history"],
                vec!["audit"],
            ] {
                let out = c.run(&args);
                if reads.iter().any(|r| r[..] == args[..]) {
                    printed.push(out.stdout.clone());
                }
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    matches!(out.status.code(), Some(0..=2)) && !err.contains("panicked"),
                    "{} byte {at}: {args:?} {}: {err}",
                    rel.display(),
                    out.status
                );
                if args[0] == "verify" {
                    verify_failed = out.status.code() == Some(1);
                }
            }
            flips += 1;
            if verify_failed {
                named += 1;
            }
            assert!(
                verify_failed || !must_name,
                "{} byte {at}: verify found nothing",
                rel.display()
            );
            // In the catalogue and the packs, a flip verify passes over
            // (free pages, the unused end of a page, a compressed stretch
            // that decodes the same) changes nothing anyone reads.
            assert!(
                verify_failed || printed == whole,
                "{} byte {at}: verify found nothing, but what commands print changed",
                rel.display()
            );
        }
    }
    eprintln!(
        "{flips} flips over {} files, {named} named by verify",
        files.len()
    );
}
