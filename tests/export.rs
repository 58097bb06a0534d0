//! eDiscovery export through the CLI, read back by a real client: Python's
//! standard `email` and `mailbox` packages parse every message, and the
//! attachment bytes and the reports are checked against the archive.

use crate::common::*;
use std::path::Path;
use std::process::Command;

const CHECK: &str = r##"
import csv, email, email.policy, hashlib, json, mailbox, os, sys
out, fmt = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(os.path.join(out, "Results.csv"), newline="", encoding="utf-8")))
report = {"rows": len(rows), "messages": 0, "attachments": {}, "items": [], "problems": []}
def check(msg, where):
    item = msg["X-Tgvault-Item"].split(";")[0]
    report["items"].append(item)
    for h in ["From", "Date", "Subject", "Message-ID", "X-Telegram-Chat-Id", "X-Tgvault-SHA256"]:
        if msg[h] is None:
            report["problems"].append(f"{where}: no {h}")
    body = msg.get_body(preferencelist=("plain",))
    if body is None or not body.get_content().strip():
        report["problems"].append(f"{where}: no text body")
    for part in msg.iter_attachments():
        data = part.get_payload(decode=True)
        sha = hashlib.sha256(data).hexdigest()
        if sha != part["X-Tgvault-SHA256"]:
            report["problems"].append(f"{where}: attachment {part.get_filename()} hashes to {sha}")
        report["attachments"][part.get_filename()] = sha
    report["messages"] += 1
if fmt == "eml":
    for r in rows:
        path = os.path.join(out, r["Exported Path"])
        raw = open(path, "rb").read()
        if hashlib.sha256(raw).hexdigest() != r["SHA-256"]:
            report["problems"].append(f"{path}: SHA-256 differs from Results.csv")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        if msg["X-Tgvault-Item"].split(";")[0] != r["Item Identity"]:
            report["problems"].append(f"{path}: item {msg['X-Tgvault-Item']} vs {r['Item Identity']}")
        check(msg, path)
else:
    for path in sorted({r["Exported Path"] for r in rows}):
        for msg in mailbox.mbox(os.path.join(out, path), factory=lambda f: email.message_from_binary_file(f, policy=email.policy.default)):
            check(msg, path)
import xml.etree.ElementTree as ET
root = ET.parse(os.path.join(out, "Manifest.xml")).getroot()
msgs = [d for d in root.iter("Document") if d.get("DocType") == "Message"]
report["manifest_messages"] = len(msgs)
report["manifest_relationships"] = len(list(root.iter("Relationship")))
for d in msgs:
    tags = {t.get("TagName"): t.get("TagValue") for t in d.iter("Tag")}
    for name in ["#From", "#To", "#Subject"]:
        if name not in tags:
            report["problems"].append(f"{d.get('DocID')}: no {name}")
    ext = d.find("Files/File/ExternalFile")
    if fmt == "eml":
        path = os.path.join(out, ext.get("FilePath"), ext.get("FileName"))
        if hashlib.sha256(open(path, "rb").read()).hexdigest() != ext.get("Hash"):
            report["problems"].append(f"{path}: hash differs from Manifest.xml")
dat = open(os.path.join(out, "export.dat"), encoding="utf-8", newline="").read().split("\r\n")
dat = [l for l in dat if l]
report["dat_rows"] = len(dat) - 1
for l in dat:
    fields = l.split("\x14")
    if len(fields) != 12 or not all(f.startswith("\u00fe") and f.endswith("\u00fe") for f in fields):
        report["problems"].append(f"export.dat: bad line {l[:60]!r}")
print(json.dumps(report))
"##;

/// The package read back by Python's email and mailbox packages; `None`
/// (said loudly) where no python3 is installed, but under CI.
fn python_check(out: &Path, format: &str) -> Option<serde_json::Value> {
    let o = match Command::new("python3")
        .args(["-c", CHECK, out.to_str().unwrap(), format])
        .output()
    {
        Ok(o) => o,
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but python3 is missing (scripts/test installs it)")
        }
        Err(_) => {
            eprintln!(
                "SKIPPED: python3 is not installed; the package was not read back by Python's email package"
            );
            return None;
        }
    };
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(serde_json::from_slice(&o.stdout).unwrap())
}

/// `xmllint --noout`: well-formed XML, by libxml2's own checker.
fn xmllint(path: &Path) {
    match Command::new("xmllint").arg("--noout").arg(path).output() {
        Ok(o) => assert!(
            o.status.success(),
            "xmllint: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but xmllint is missing (scripts/test installs libxml2-utils)")
        }
        Err(_) => {
            eprintln!("SKIPPED: xmllint is not installed; Manifest.xml was not checked by it")
        }
    }
}

fn tree_hashes(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = files_under(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let bytes = std::fs::read(&p).unwrap();
            (rel, hex::encode(tgvault::model::sha256(&bytes)))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn eml_and_mbox_packages_read_back_in_python_and_repeat_byte_for_byte() {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    a.import(
        &[&fixture("exports/multilingual")],
        &["--mailbox", "carol@corp.example"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let one = tmp.path().join("one");
    let s = a.json(&[
        "export",
        "kind:externaldata",
        "--out",
        one.to_str().unwrap(),
    ]);
    assert_eq!(s["items"], 51);
    assert_eq!(s["errors"], 0);
    if let Some(r) = python_check(&one, "eml") {
        assert_eq!(r["problems"], serde_json::json!([]), "{r}");
        assert_eq!(r["messages"], 51);
        assert_eq!(r["manifest_messages"], 51);
        assert_eq!(r["dat_rows"], 51);
        // Each filed copy of the PDF, the photo and the voice note is a child.
        assert_eq!(r["manifest_relationships"], 6);
        // The attachment is the file of the export, byte for byte.
        let pdf = std::fs::read(fixture(
            "exports/full-account/chats/chat_01/files/Q3 report (final).pdf",
        ))
        .unwrap();
        let want = hex::encode(tgvault::model::sha256(&pdf));
        assert_eq!(r["attachments"]["Q3 report (final).pdf"], want.as_str());
    }
    xmllint(&one.join("Manifest.xml"));

    // The same archive and query give the same bytes.
    let two = tmp.path().join("two");
    a.json(&[
        "export",
        "kind:externaldata",
        "--out",
        two.to_str().unwrap(),
    ]);
    assert_eq!(tree_hashes(&one), tree_hashes(&two));
    // A non-empty directory is refused.
    let again = a.run(&[
        "export",
        "kind:externaldata",
        "--out",
        one.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));

    // mbox: one file per mailbox folder, every message parsed by `mailbox`.
    let mb = tmp.path().join("mbox");
    let s = a.json(&[
        "export",
        "merger OR mailbox:carol@corp.example",
        "--out",
        mb.to_str().unwrap(),
        "--format",
        "mbox",
    ]);
    if let Some(r) = python_check(&mb, "mbox") {
        assert_eq!(r["problems"], serde_json::json!([]), "{r}");
        assert_eq!(r["messages"], s["items"]);
    }
    assert_eq!(s["items"], 2 + 9);

    // Everything written stays inside the package.
    for (rel, _) in tree_hashes(&one) {
        assert!(!rel.contains(".."), "{rel}");
    }
    // The export is on the audit trail.
    let audit = a.json_lines(&["audit"]);
    assert!(audit.iter().any(|e| e["action"] == "export"));
}

/// The full-account fixture and the Bot API capture (edits, a deletion).
fn full_account_and_live_capture() -> Archive {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    a.import(
        &[&fixture("botapi/updates.jsonl")],
        &["--mapping", fixture("botapi/users.csv").to_str().unwrap()],
    );
    a
}

/// The exported message of each kind of item, byte for byte. Run with
/// `TGVAULT_BLESS=1` to rewrite `fixtures/golden/` after a deliberate change
/// (and read the diff).
#[test]
fn golden_messages() {
    let a = full_account_and_live_capture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pkg");
    a.json(&[
        "export",
        "kind:externaldata",
        "--out",
        out.to_str().unwrap(),
    ]);
    let cases = [
        (
            "message",
            "alice.adams@corp.example",
            "tg_1000001_2000001_2",
        ),
        (
            "reply-edited",
            "alice.adams@corp.example",
            "tg_1000001_1000002_2",
        ),
        (
            "forwarded-formatted",
            "alice.adams@corp.example",
            "tg_1000001_1000002_11",
        ),
        (
            "formatted-link",
            "alice.adams@corp.example",
            "tg_1000001_1000002_7",
        ),
        (
            "attachments",
            "alice.adams@corp.example",
            "tg_1000001_1000002_1",
        ),
        ("call", "alice.adams@corp.example", "tg_1000001_1000002_3"),
        (
            "service-event",
            "alice.adams@corp.example",
            "tg_1000001_2000001_5",
        ),
        ("deleted", "hana.hill@corp.example", "tg_0_5550001_2"),
    ];
    let bless = std::env::var_os("TGVAULT_BLESS").is_some();
    let mut differ = Vec::new();
    for (name, mailbox, file) in cases {
        let got = std::fs::read(
            out.join("Items")
                .join(mailbox)
                .join("Telegram Archiver")
                .join(format!("{file}.eml")),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let golden = fixture(&format!("golden/{name}.eml"));
        if bless {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (TGVAULT_BLESS=1 writes it)", golden.display()));
        if got != want {
            differ.push(name);
        }
    }
    assert!(differ.is_empty(), "differ from fixtures/golden: {differ:?}");
}

#[test]
fn case_scoped_and_deduplicated_exports() {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    a.ok(&["case", "create", "M"]);
    a.ok(&[
        "case",
        "hold",
        "add",
        "M",
        "--mailbox",
        "bob.brown@corp.example",
        "--query",
        "merger",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    // Only what the case holds: Bob's copy of the merger message.
    let c = tmp.path().join("case");
    let s = a.json(&[
        "export",
        "kind:externaldata",
        "--case",
        "M",
        "--out",
        c.to_str().unwrap(),
    ]);
    assert_eq!(s["items"], 1);
    assert!(
        c.join("Items/bob.brown@corp.example/Telegram Archiver/tg_1000001_1000002_11.eml")
            .is_file()
    );
    // --dedup: each item once; the other copies are reported, not lost.
    let d = tmp.path().join("dedup");
    let s = a.json(&[
        "export",
        "kind:externaldata",
        "--dedup",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert_eq!(s["items"], 27);
    assert_eq!(s["duplicates"], 15);
    let rows: Vec<Vec<String>> = csv::Reader::from_path(d.join("Results.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 42, "every copy has a row");
    let dups: Vec<&Vec<String>> = rows.iter().filter(|r| !r[10].is_empty()).collect();
    assert_eq!(dups.len(), 15);
    for r in dups {
        assert_eq!(r[10], format!("alice.adams@corp.example:{}", r[0]));
        assert!(r[9].is_empty(), "a duplicate is not written");
    }
    let out = a.run(&[
        "export",
        "x",
        "--case",
        "nosuch",
        "--out",
        tmp.path().join("n").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn transcripts_one_page_per_chat_with_working_attachment_links() {
    let a = full_account_and_live_capture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("t");
    let s = a.json(&[
        "export",
        "kind:externaldata",
        "--transcripts",
        "--out",
        out.to_str().unwrap(),
    ]);
    let pages: Vec<_> = files_under(&out.join("Transcripts"));
    assert_eq!(s["transcripts"].as_u64(), Some(pages.len() as u64));
    let bob = pages
        .iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Bob Brown_1000002_2024-02-01")
        })
        .expect("the Bob Brown chat's page");
    let html = std::fs::read_to_string(bob).unwrap();
    // In order, with the reply linked to its anchor and the call described.
    let first = html.find("the Q3 report is attached").unwrap();
    let later = html.find("Board approves the merger").unwrap();
    assert!(first < later);
    assert!(html.contains("href=\"#m1\""));
    assert!(html.contains("outgoing phone call"));
    // Every attachment link resolves to a file holding exactly that content.
    let mut links = 0;
    for part in html.split("href=\"../").skip(1) {
        let rel = &part[..part.find('"').unwrap()];
        let path = out.join(rel);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let dir_hash = rel.split('/').nth(1).unwrap();
        assert_eq!(hex::encode(tgvault::model::sha256(&bytes)), dir_hash);
        links += 1;
    }
    assert_eq!(links, 3);
    // A message deleted at the source says so.
    let hana = pages
        .iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Hana Hill")
        })
        .expect("the Hana Hill chat's page");
    assert!(
        std::fs::read_to_string(hana)
            .unwrap()
            .contains("deleted at the source")
    );
}

#[test]
fn hostile_attachment_and_chat_names_never_leave_the_package() {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/hostile-names")],
        &["--mailbox", "dan@corp.example"],
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pkg");
    let s = a.json(&[
        "export",
        "kind:externaldata",
        "--transcripts",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(s["items"], 3);
    assert_eq!(s["errors"], 0);
    let root = out.canonicalize().unwrap();
    let files = files_under(&out);
    assert!(files.len() >= 10, "{files:?}");
    for p in &files {
        let real = p.canonicalize().unwrap();
        assert!(
            real.starts_with(&root),
            "{} is outside the package",
            real.display()
        );
        for c in p.strip_prefix(&out).unwrap().components() {
            let c = c.as_os_str().to_str().unwrap();
            assert!(c.len() <= 100, "{c}");
            assert!(!c.starts_with('.'), "{c}");
            let stem = c.split('.').next().unwrap().to_ascii_uppercase();
            assert!(
                !["CON", "PRN", "AUX", "NUL"].contains(&stem.as_str()),
                "{c}"
            );
            assert!(!c.contains(['\0', '\\', ':']), "{c}");
        }
    }
    // Inside the messages the names stay as the sender wrote them (a MIME
    // parameter is not a path).
    let Some(r) = python_check(&out, "eml") else {
        return;
    };
    assert_eq!(r["problems"], serde_json::json!([]), "{r}");
    let names: Vec<&str> = r["attachments"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert!(names.contains(&"../../escape.txt"), "{names:?}");
    assert!(names.contains(&"CON"), "{names:?}");
}
