//! The hostile corpus (`fixtures/hostile/`): every file with the outcome it
//! must have, driven through the real binary. Nothing panics, nothing is
//! dropped (what is kept counts every source item, none failed), a refusal
//! names its file and changes nothing, and `verify` is clean after each.

use crate::common::{Archive, bin, fixture, n, text};
use std::path::Path;
use std::process::{Command, Output};

enum Expect {
    /// Imported: `items` source items, none failed, and (unless empty) a
    /// note of the report holds `note`.
    Kept { items: u64, note: &'static str },
    /// Refused: a non-zero exit whose message holds this; nothing filed.
    Refused(&'static str),
    /// A mapping CSV: accepted, or refused naming `file:LINE:`.
    Csv(Option<&'static str>),
    /// A KQL query: refused at exit 2 with this message and its column.
    BadQuery(&'static str),
}
use Expect::*;

const fn kept(items: u64, note: &'static str) -> Expect {
    Kept { items, note }
}

const CORPUS: &[(&str, Expect)] = &[
    (
        "json/empty.json",
        Refused("empty.json:1: column 1: invalid JSON"),
    ),
    (
        "json/truncated-object.json",
        Refused("truncated-object.json:1: column"),
    ),
    (
        "json/truncated-string.json",
        Refused("truncated-string.json:1: column 74"),
    ),
    (
        "json/null.json",
        Refused("expected a Telegram export object"),
    ),
    (
        "json/array.json",
        Refused("expected a Telegram export object"),
    ),
    (
        "json/number.json",
        Refused("expected a Telegram export object"),
    ),
    ("json/deep-arrays.json", Refused("recursion limit exceeded")),
    (
        "json/deep-objects.json",
        Refused("recursion limit exceeded"),
    ),
    ("json/messages-not-array.json", Refused("messages")),
    ("json/trailing-garbage.json", Refused("trailing characters")),
    ("json/invalid-utf8.json", Refused("UTF-8")),
    ("json/bom.json", kept(1, "")),
    ("json/bom-crlf.json", kept(1, "")),
    ("json/nul-byte-raw.json", kept(1, "control bytes")),
    ("json/id-2pow63.json", kept(1, "not a 64-bit integer")),
    ("json/id-2pow64.json", kept(1, "not a 64-bit integer")),
    ("json/id-float.json", kept(1, "not a 64-bit integer")),
    ("json/id-string.json", kept(1, "not a 64-bit integer")),
    ("json/id-missing.json", kept(1, "no id")),
    ("json/id-null.json", kept(1, "not a 64-bit integer")),
    ("json/id-min.json", kept(1, "")),
    ("json/id-negative-migrated.json", kept(2, "")),
    ("json/id-duplicates.json", kept(3, "duplicate message id")),
    ("json/message-not-object.json", kept(5, "must be an object")),
    (
        "json/chat-id-huge.json",
        kept(
            1,
            "chat id 18446744073709551616 is not a 64-bit integer: id -",
        ),
    ),
    (
        "json/chat-id-fraction.json",
        kept(1, "chat id 1.5 is not a 64-bit integer"),
    ),
    (
        "json/chat-id-text.json",
        kept(1, "chat id \"g-17\" is not a 64-bit integer"),
    ),
    (
        "json/chat-id-null.json",
        kept(1, "chat id null is not a 64-bit integer"),
    ),
    (
        "json/chat-id-object.json",
        kept(1, "is not a 64-bit integer"),
    ),
    ("json/chat-id-missing.json", kept(1, "chat has no id: id -")),
    (
        "json/chat-id-after-messages.json",
        kept(
            1,
            "chat id \"99999999999999999999999\" is not a 64-bit integer",
        ),
    ),
    ("json/name-number-overflow.json", kept(1, "")),
    ("json/owner-number-overflow.json", kept(1, "")),
    (
        "json/chat-id-huge-in-account.json",
        kept(2, "is not a 64-bit integer"),
    ),
    ("json/lone-surrogate.json", kept(1, "lone UTF-16 surrogate")),
    (
        "json/lone-low-surrogate.json",
        kept(1, "lone UTF-16 surrogate"),
    ),
    ("json/hex-escape.json", kept(1, "escapes repaired")),
    ("json/unquoted-document-id.json", kept(1, "quoted")),
    ("json/nul-escape.json", kept(1, "")),
    ("json/bidi-override.json", kept(1, "")),
    ("json/formula-sender.json", kept(1, "")),
    ("json/text-array-odd.json", kept(1, "")),
    ("json/text-not-string.json", kept(2, "")),
    ("json/type-unknown.json", kept(1, "unknown message type")),
    ("json/type-unsupported.json", kept(1, "")),
    ("json/duplicate-keys.json", kept(1, "")),
    (
        "json/duplicate-messages.json",
        Refused(
            "duplicate-messages.json:2: column 11: invalid JSON: a second 'messages' list in one chat",
        ),
    ),
    ("json/date-max.json", kept(1, "")),
    ("json/date-min.json", kept(1, "")),
    ("json/date-overflow.json", kept(1, "not a number")),
    ("json/date-text.json", kept(1, "not a number")),
    ("json/date-number.json", kept(1, "")),
    ("json/date-zero.json", kept(1, "placeholder")),
    (
        "json/date-year-9999.json",
        kept(1, "date '9999-12-31T23:59:59' is not a date"),
    ),
    ("json/date-garbage-local.json", kept(1, "is not a date")),
    ("json/edited-max.json", kept(1, "")),
    ("json/file-size-huge.json", kept(1, "not in the export")),
    ("json/file-size-negative.json", kept(1, "")),
    ("json/duration-huge.json", kept(1, "")),
    ("json/from-id-odd.json", kept(4, "")),
    ("json/reactions-odd.json", kept(1, "")),
    ("json/media-absolute.json", kept(1, "outside the export")),
    ("json/media-traversal.json", kept(2, "outside the export")),
    ("json/media-nul.json", kept(1, "outside the export")),
    ("json/media-not-string.json", kept(2, "")),
    ("json/account-bad-owner.json", kept(1, "")),
    ("json/account-list-not-array.json", Refused("list")),
    ("json/account-empty.json", kept(0, "")),
    ("html/no-history.html", Refused("div.history")),
    ("html/empty.html", Refused("div.history")),
    ("html/unclosed.html", kept(1, "")),
    ("html/bad-date.html", kept(1, "")),
    ("html/deep-divs.html", kept(1, "")),
    ("html/script.html", kept(1, "")),
    ("html/entities.html", kept(1, "")),
    ("html/not-utf8.html", Refused("UTF-8")),
    ("botapi/invalid-line.jsonl", Refused("line 2")),
    ("botapi/no-update-id.jsonl", Refused("update_id")),
    (
        "botapi/chat-missing.jsonl",
        kept(2, "a message without a chat: kept as its raw text"),
    ),
    ("botapi/deleted-ids-not-array.jsonl", kept(2, "")),
    ("botapi/entities-out-of-range.jsonl", kept(1, "")),
    ("botapi/date-huge.jsonl", kept(2, "")),
    ("botapi/not-ok.json", Refused("not ok")),
    ("botapi/bom.jsonl", kept(1, "")),
    ("csv/bom.csv", Csv(None)),
    ("csv/crlf-bad-line.csv", Csv(Some(":3:"))),
    ("csv/cr-only.csv", Csv(Some(":4:"))),
    ("csv/missing-columns.csv", Csv(Some(":1:"))),
    ("csv/dot-dot-mailbox.csv", Csv(Some(":2:"))),
    ("csv/hidden-mailbox.csv", Csv(Some(":2:"))),
    ("csv/phone-two-mailboxes.csv", Csv(Some(":3:"))),
    ("csv/unbalanced-quote.csv", Csv(Some(":2:"))),
    ("csv/ragged.csv", Csv(Some(":2:"))),
    ("csv/not-utf8.csv", Csv(Some(":2:"))),
    ("csv/formula-mailbox.csv", Csv(None)),
    ("csv/empty.csv", Csv(Some(":1:"))),
    ("kql/deep-parens.txt", BadQuery("nests deeper")),
    ("kql/many-minus.txt", BadQuery("nests deeper")),
    ("kql/many-not.txt", BadQuery("nests deeper")),
    ("kql/near-chain.txt", BadQuery("nests deeper")),
    ("kql/too-long.txt", BadQuery("longer than")),
    ("kql/unclosed.txt", BadQuery("never closed")),
    ("kql/stray-close.txt", BadQuery("unexpected ')'")),
    ("kql/bad-date.txt", BadQuery("not a date")),
    ("kql/huge-size.txt", BadQuery("not a number")),
    ("kql/near-huge.txt", BadQuery("from 1 to")),
    ("zip/symlink-entry.zip", kept(1, "symbolic link")),
    ("zip/traversal-entry.zip", kept(1, "outside the export")),
    ("zip/absolute-entry.zip", kept(1, "outside the export")),
    ("zip/no-result.zip", Refused("no result.json")),
    ("zip/not-a-zip.zip", Refused("zip")),
];

/// A crash is a signal or Rust's panic exit code: never an answer.
fn assert_no_crash(name: &str, out: &Output) {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        out.status.signal().is_none(),
        "{name}: killed by a signal: {}",
        text(out)
    );
    assert_ne!(
        out.status.code(),
        Some(101),
        "{name}: panicked: {}",
        text(out)
    );
    assert!(!text(out).contains("panicked"), "{name}: {}", text(out));
}

fn verify_clean(name: &str, a: &Archive) {
    let out = a.run(&["verify"]);
    assert!(out.status.success(), "{name}: verify: {}", text(&out));
}

fn import(name: &str, path: &Path, expect: &Expect) {
    let a = Archive::new();
    let out = a.run(&[
        "import",
        &path.display().to_string(),
        "--mailbox",
        "custodian@corp.example",
        "--json",
    ]);
    assert_no_crash(name, &out);
    match expect {
        Kept { items, note } => {
            assert!(out.status.success(), "{name}: {}", text(&out));
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let t = &report["totals"];
            assert_eq!(n(t, "available_from_source"), *items, "{name}: {t}");
            assert_eq!(n(t, "failed"), 0, "{name}: something was dropped: {t}");
            let notes: Vec<&str> = report["files"][0]["anomalies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["what"].as_str().unwrap())
                .collect();
            assert!(
                note.is_empty() || notes.iter().any(|w| w.contains(note)),
                "{name}: no note with {note:?} in {notes:?}"
            );
        }
        Refused(msg) => {
            assert!(!out.status.success(), "{name}: accepted: {}", text(&out));
            assert!(
                text(&out).contains(msg),
                "{name}: {msg:?} not in {}",
                text(&out)
            );
            if let Ok(report) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
                assert_eq!(n(&report["totals"], "imported"), 0, "{name}");
            }
        }
        _ => unreachable!(),
    }
    if Path::new(&a.path().join("archive.redb")).exists() {
        verify_clean(name, &a);
    }
}

#[test]
fn every_hostile_file_has_its_outcome() {
    let root = fixture("hostile");
    let query_archive = Archive::new();
    query_archive.ok(&["init"]);
    assert!(CORPUS.len() >= 60, "{} files", CORPUS.len());
    let mut failed = Vec::new();
    for (name, expect) in CORPUS {
        let one = std::panic::catch_unwind(|| run_one(&root, &query_archive, name, expect));
        if let Err(e) = one {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(msg);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} failed:\n{}",
        failed.len(),
        CORPUS.len(),
        failed.join("\n---\n")
    );
}

fn run_one(root: &Path, query_archive: &Archive, name: &str, expect: &Expect) {
    {
        let path = root.join(name);
        assert!(path.is_file(), "{name} is missing");
        match expect {
            Kept { .. } | Refused(_) => import(name, &path, expect),
            Csv(want) => {
                let a = Archive::new();
                let out = a.run(&[
                    "import",
                    &fixture("exports/single-chat").display().to_string(),
                    "--mapping",
                    &path.display().to_string(),
                ]);
                assert_no_crash(name, &out);
                match want {
                    None => assert!(out.status.success(), "{name}: {}", text(&out)),
                    Some(line) => {
                        assert!(!out.status.success(), "{name}: {}", text(&out));
                        let file = path.file_name().unwrap().to_str().unwrap();
                        assert!(
                            text(&out).contains(&format!("{file}{line}")),
                            "{name}: {line} not in {}",
                            text(&out)
                        );
                        assert!(
                            !a.path().join("archive.redb").exists() || {
                                verify_clean(name, &a);
                                true
                            }
                        );
                    }
                }
            }
            BadQuery(msg) => {
                let q = std::fs::read_to_string(&path).unwrap();
                let out = query_archive.run(&["search", &q]);
                assert_no_crash(name, &out);
                assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out));
                assert!(text(&out).contains(msg), "{name}: {}", text(&out));
                assert!(text(&out).contains("column "), "{name}: {}", text(&out));
            }
        }
    }
}

/// What git cannot hold: links, FIFOs and devices inside an export
/// directory. Nothing outside the export is read, nothing blocks, and each
/// attachment keeps its metadata with the reason.
#[test]
fn links_fifos_and_devices_in_an_export_are_not_read() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "ZQXJ-SECRET-1").unwrap();
    std::fs::create_dir(outside.path().join("etc")).unwrap();
    std::fs::write(outside.path().join("etc/passwd"), "ZQXJ-SECRET-2").unwrap();
    let export = tempfile::tempdir().unwrap();
    let e = export.path();
    std::fs::create_dir_all(e.join("photos")).unwrap();
    std::fs::create_dir_all(e.join("files")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        e.join("photos/photo_2@03-03-2024_09-00-00.jpg"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path().join("etc"), e.join("files/x")).unwrap();
    let fifo = Command::new("mkfifo")
        .arg(e.join("files/fifo"))
        .status()
        .unwrap();
    assert!(fifo.success());
    // A character device (as root, which CI is); elsewhere the FIFO stands in.
    let dev = Command::new("mknod")
        .arg(e.join("files/zero"))
        .args(["c", "1", "5"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !dev {
        eprintln!("note: mknod not permitted here: the device case did not run");
    }
    let msgs = [
        ("photo", "photos/photo_2@03-03-2024_09-00-00.jpg"),
        ("file", "files/x/passwd"),
        ("file", "files/fifo"),
        ("file", "files/zero"),
    ];
    let messages: Vec<String> = msgs
        .iter()
        .enumerate()
        .map(|(i, (k, p))| {
            format!(
                r#"{{"id":{},"type":"message","date_unixtime":"1709456400","from":"M","from_id":"user4242","text":"t{i}","{k}":"{p}"}}"#,
                i + 1
            )
        })
        .collect();
    std::fs::write(
        e.join("result.json"),
        format!(
            r#"{{"name":"Links","type":"personal_chat","id":4242,"messages":[{}]}}"#,
            messages.join(",")
        ),
    )
    .unwrap();
    let a = Archive::new();
    let report = a.import(&[e], &["--mailbox", "custodian@corp.example"]);
    assert_eq!(n(&report["totals"], "failed"), 0, "{report}");
    assert_eq!(
        n(&report["totals"], "attachments_without_content"),
        4,
        "{report}"
    );
    let notes = report.to_string();
    assert!(
        notes.contains("is a symbolic link: not followed"),
        "{notes}"
    );
    assert!(
        notes.contains("passes through the symbolic link 'files/x'"),
        "{notes}"
    );
    assert!(notes.contains("is a FIFO, not a regular file"), "{notes}");
    if dev {
        assert!(notes.contains("is a character device"), "{notes}");
    }
    // No byte from outside reached the archive or an export of it.
    let out = tempfile::tempdir().unwrap();
    let pkg = out.path().join("pkg");
    a.ok(&[
        "export",
        "kind:externaldata",
        "--out",
        &pkg.display().to_string(),
    ]);
    for f in crate::common::files_under(&pkg)
        .into_iter()
        .chain(crate::common::files_under(a.path()))
    {
        let hit = crate::common::holds(&f, b"ZQXJ-SECRET");
        assert!(!hit, "{} holds bytes from outside the export", f.display());
    }
    verify_clean("links", &a);
    // A result.json that is itself a link is refused.
    let linked = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(e.join("result.json"), linked.path().join("result.json")).unwrap();
    let out = a.run(&["import", &linked.path().display().to_string()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("symbolic link"), "{}", text(&out));
    let _ = bin();
}

/// What the hostile texts become in a package a reviewer opens: formulas
/// are text, hidden characters visible, and `i64::MAX` and the year 9999
/// are dates like any other.
#[test]
fn hostile_texts_are_neutral_in_the_package() {
    let package = |file: &str| {
        let a = Archive::new();
        a.import(
            &[&fixture("hostile/json").join(file)],
            &["--mailbox", "custodian@corp.example"],
        );
        let pkg = a.path().join("pkg");
        a.ok(&[
            "export",
            "kind:externaldata",
            "--out",
            &pkg.display().to_string(),
            "--transcripts",
        ]);
        (a, pkg)
    };
    let (_a, pkg) = package("formula-sender.json");
    let results = std::fs::read_to_string(pkg.join("Results.csv")).unwrap();
    // Each cell, read as a spreadsheet reads it, starts with no formula.
    let mut rows = csv::Reader::from_reader(results.as_bytes());
    let row = rows.records().next().unwrap().unwrap();
    assert!(row.iter().any(|c| c.starts_with("'=HYPERLINK(")), "{row:?}");
    assert!(
        !row.iter().any(|c| c.starts_with(['=', '+', '-', '@'])),
        "{row:?}"
    );
    let dat = std::fs::read_to_string(pkg.join("export.dat")).unwrap();
    assert!(dat.contains("\u{FE}'=HYPERLINK("), "{dat}");

    let (_a, pkg) = package("bidi-override.json");
    for f in crate::common::files_under(&pkg) {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".eml") {
            continue;
        }
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).to_string();
        assert!(!text.contains('\u{202E}'), "{name} holds a raw override");
    }
    let manifest = std::fs::read_to_string(pkg.join("Manifest.xml")).unwrap();
    assert!(manifest.contains("Ad[U+202E]min"), "{manifest}");

    let (a, pkg) = package("date-max.json");
    let results = std::fs::read_to_string(pkg.join("Results.csv")).unwrap();
    assert!(
        results.contains("Sun, 04 Dec 292277026596 15:30:07 +0000"),
        "{results}"
    );
    // The last day of 9999 is a day like any other.
    let out = a.run(&["retention", "run", "--dry-run", "--now", "9999-12-31"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = a.run(&["explain", "tg:0:4242:1", "--now", "9999-12-31T23:59:59Z"]);
    assert!(out.status.success(), "{}", text(&out));
}
