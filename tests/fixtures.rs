//! The project's own fixtures: every quirk of the export format, the mapping
//! precedence, fan-out, quarantine and remap, edits, zip input, and bad input.

use crate::common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;

fn full() -> std::path::PathBuf {
    fixture("exports/full-account")
}

fn users() -> String {
    fixture("users.csv").display().to_string()
}

fn item(a: &Archive, id: &str) -> Value {
    let shown = a.json(&["show", id]);
    let versions = shown["versions"].as_array().unwrap();
    versions.last().unwrap()["item"].clone()
}

fn mailbox_counts(a: &Archive) -> Vec<(String, u64)> {
    a.json_lines(&["mailboxes"])
        .iter()
        .map(|r| (r["mailbox"].as_str().unwrap().to_string(), n(r, "items")))
        .collect()
}

#[test]
fn full_account_export_fans_out_to_every_mapped_participant() {
    let a = Archive::new();
    let rep = a.import(&[&full()], &["--mapping", &users()]);
    let t = totals(&rep);
    assert_eq!(n(t, "available_from_source"), 27, "{t}");
    // Chat with Bob: 11 items x (alice, bob); Deal Team: 11 items for alice plus
    // Bob's 2 for bob; Market Watch: 4 for alice plus Erin's 2 for erin; the
    // left channel: 1.
    assert_eq!(n(t, "available_for_import"), 42, "{t}");
    assert_eq!(n(t, "partially_imported"), 4, "{t}");
    assert_eq!(n(t, "imported"), 38, "{t}");
    assert_eq!(
        (n(t, "quarantined"), n(t, "failed"), n(t, "skipped")),
        (0, 0, 0)
    );
    assert_eq!(
        (
            n(t, "messages"),
            n(t, "service_events"),
            n(t, "calls"),
            n(t, "unsupported")
        ),
        (19, 4, 3, 1)
    );
    assert_eq!(
        (n(t, "attachments"), n(t, "attachments_without_content")),
        (6, 3)
    );
    assert_balanced(t);
    assert_eq!(
        mailbox_counts(&a),
        vec![
            ("alice.adams@corp.example".to_string(), 27),
            ("bob.brown@corp.example".to_string(), 13),
            ("erin.evans@corp.example".to_string(), 2),
        ]
    );
    // One stored copy per item version, however many mailboxes hold it.
    let locations = a.json(&["show", "tg:1000001:1000002:1"])["locations"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(locations, 2);

    let again = a.import(&[&full()], &["--mapping", &users()]);
    let t2 = totals(&again);
    assert_eq!(
        (
            n(t2, "skipped"),
            n(t2, "imported"),
            n(t2, "partially_imported")
        ),
        (42, 0, 0),
        "{t2}"
    );
}

#[test]
fn every_quirk_of_the_format_is_kept() {
    let a = Archive::new();
    a.import(&[&full()], &["--mapping", &users()]);

    let out_call = item(&a, "tg:1000001:1000002:3");
    assert_eq!(out_call["body"]["Call"]["direction"], "Outgoing");
    assert_eq!(out_call["body"]["Call"]["duration_seconds"], 125);
    assert_eq!(out_call["body"]["Call"]["outcome"], "hangup");
    let in_call = item(&a, "tg:1000001:1000002:4");
    assert_eq!(in_call["body"]["Call"]["direction"], "Incoming");
    assert_eq!(in_call["body"]["Call"]["outcome"], "missed");
    assert_eq!(in_call["body"]["Call"]["duration_seconds"], Value::Null);

    // \xHH repaired; unquoted document_id repaired and kept as an entity attribute.
    assert_eq!(
        item(&a, "tg:1000001:1000002:9")["body"]["Message"]["text"],
        "bell\u{7}character"
    );
    let sticker = item(&a, "tg:1000001:1000002:10");
    let ent = &sticker["body"]["Message"]["entities"][0];
    assert_eq!(ent["kind"], "custom_emoji");
    assert_eq!(
        ent["attrs"][0],
        serde_json::json!(["document_id", "\"stickers/AnimatedSticker.tgs\""])
    );

    // Text arrays concatenate; formatting and forwards are kept.
    let fwd = item(&a, "tg:1000001:1000002:11");
    let m = &fwd["body"]["Message"];
    assert_eq!(m["text"], "Board approves the merger — see minutes");
    assert_eq!(m["entities"][0]["kind"], "italic");
    assert_eq!(m["forwarded_from"]["name"], "Carol Chen");
    assert_eq!(m["forwarded_from"]["peer"]["User"], 1000003);
    assert_eq!(m["reactions"][0]["emoji"], "🔥");
    assert_eq!(
        item(&a, "tg:1000001:1000002:2")["body"]["Message"]["reply_to"],
        1
    );
    assert_eq!(item(&a, "tg:1000001:1000002:2")["edited"], 1706781840);

    // Unknown keys survive in the raw evidence.
    let dan = item(&a, "tg:1000001:2000001:2");
    assert!(dan["raw"].as_str().unwrap().contains("\"future_field\""));
    assert_eq!(
        dan["body"]["Message"]["text"],
        "Привет всем, встреча в 10:00"
    );

    // Duplicate ids: both kept, the second disambiguated.
    assert_eq!(
        item(&a, "tg:1000001:2000001:4")["body"]["Message"]["text"],
        "first copy of a duplicated id"
    );
    assert_eq!(
        item(&a, "tg:1000001:2000001:4:1")["body"]["Message"]["text"],
        "second copy of a duplicated id"
    );

    // `date` without `date_unixtime` is read in the given zone, and says so.
    let local = item(&a, "tg:1000001:2000001:3");
    assert_eq!(local["date"], 1705309560); // 2024-01-15T09:06:00Z
    assert_eq!(local["time_basis"]["LocalTime"]["zone"], "UTC");
    let b = Archive::new();
    b.import(
        &[&full()],
        &["--mapping", &users(), "--tz", "Europe/Berlin"],
    );
    let berlin = item(&b, "tg:1000001:2000001:3");
    assert_eq!(berlin["date"], 1705309560 - 3600);
    assert_eq!(berlin["time_basis"]["LocalTime"]["zone"], "Europe/Berlin");

    // Media: placeholders, sizes over 2^31, and paths leaving the export.
    let big = item(&a, "tg:1000001:2000001:9");
    assert_eq!(big["attachments"][0]["declared_size"], 3221225472u64);
    assert!(
        big["attachments"][0]["missing"]
            .as_str()
            .unwrap()
            .starts_with("File exceeds maximum size")
    );
    let evil = item(&a, "tg:1000001:2000001:10");
    assert!(
        evil["attachments"][0]["missing"]
            .as_str()
            .unwrap()
            .contains("outside the export")
    );
    assert_eq!(evil["attachments"][0]["content"], Value::Null);

    // A deleted account and an unsupported message are items too.
    assert_eq!(
        item(&a, "tg:1000001:2000001:7")["sender"]["name"],
        "(deleted account)"
    );
    assert_eq!(item(&a, "tg:1000001:2000001:8")["body"], "Unsupported");

    // Supergroups number messages globally (scope 0); negative ids and the
    // 2020-21 shifted numeric sender ids normalise.
    let migrated = item(&a, "tg:0:3000001:-999000001");
    assert_eq!(migrated["sender"]["peer"]["User"], 1000005);
    assert_eq!(
        item(&a, "tg:0:3000001:1")["sender"]["peer"]["Channel"],
        3000001
    );
    assert_eq!(
        item(&a, "tg:0:3000001:2")["body"]["Message"]["poll"]["answers"],
        serde_json::json!(["Buy", "Sell"])
    );
    // Left chats are imported too.
    assert_eq!(
        item(&a, "tg:0:4000001:1")["body"]["Message"]["author"],
        "Compliance Desk"
    );
}

#[test]
fn attachment_bytes_are_stored_and_read_back_verified() {
    let a = Archive::new();
    a.import(&[&full()], &["--mapping", &users()]);
    let pdf_path = full().join("chats/chat_01/files/Q3 report (final).pdf");
    let pdf = std::fs::read(&pdf_path).unwrap();
    let it = item(&a, "tg:1000001:1000002:1");
    let att = &it["attachments"][0];
    assert_eq!(att["file_name"], "Q3 report (final).pdf");
    assert_eq!(att["content"]["size"], pdf.len() as u64);
    let sha = att["content"]["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha, hex::encode(tgvault::model::sha256(&pdf)));

    let archive = tgvault::store::Archive::open(a.path()).unwrap();
    let mut key = [0u8; 32];
    hex::decode_to_slice(&sha, &mut key).unwrap();
    let mut back = Vec::new();
    archive
        .open_blob(&key)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, pdf);
}

#[test]
fn blobs_over_the_inline_limit_stream_to_files_and_are_checked_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir_all(export.join("files")).unwrap();
    // Bytes that do not compress (as a video's), and a log that does.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let big: Vec<u8> = (0..(3u32 << 20))
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect();
    let log: Vec<u8> = (0..60_000u32)
        .flat_map(|i| {
            format!(
                "2026-12-01 10:{:02}:{:02} trade {i} booked\n",
                i / 60 % 60,
                i % 60
            )
            .into_bytes()
        })
        .collect();
    std::fs::write(export.join("files/big.bin"), &big).unwrap();
    std::fs::write(export.join("files/trades.log"), &log).unwrap();
    std::fs::write(
        export.join("result.json"),
        r#"{"name":"X","type":"private_group","id":77,"messages":[
            {"id":1,"type":"message","date_unixtime":"1700000000","from":"A","from_id":"user5",
             "file":"files/big.bin","file_name":"big.bin","file_size":3145728,"text":"big"},
            {"id":2,"type":"message","date_unixtime":"1700000001","from":"A","from_id":"user5",
             "file":"files/trades.log","file_name":"trades.log","text":"log"}]}"#,
    )
    .unwrap();
    let a = Archive::new();
    let rep = a.import(&[&export], &["--mailbox", "a@corp.example"]);
    assert_eq!(n(totals(&rep), "imported"), 2);
    assert_eq!(
        n(totals(&rep), "attachment_bytes"),
        (big.len() + log.len()) as u64
    );
    let sha_of = |id: &str| {
        item(&a, id)["attachments"][0]["content"]["sha256"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let sha = sha_of("tg:0:77:1");
    let blob_file = a.path().join("blobs/sha256").join(&sha[..2]).join(&sha);
    // Stored as it came: trying to compress it gained nothing.
    assert_eq!(std::fs::read(&blob_file).unwrap(), big);
    assert!(!blob_file.with_extension("zst").exists());
    // The log is one zstd frame, a fraction of its size, that any zstd
    // reads back.
    let log_sha = sha_of("tg:0:77:2");
    let dir = a.path().join("blobs/sha256").join(&log_sha[..2]);
    assert!(!dir.join(&log_sha).exists());
    let zst = std::fs::read(dir.join(format!("{log_sha}.zst"))).unwrap();
    assert!(zst.len() * 4 < log.len(), "{} of {}", zst.len(), log.len());
    assert!(zstd::decode_all(&zst[..]).unwrap() == log);
    a.ok(&["verify"]);

    let mut key = [0u8; 32];
    hex::decode_to_slice(&sha, &mut key).unwrap();
    {
        let archive = tgvault::store::Archive::open(a.path()).unwrap();
        let mut back = Vec::new();
        archive
            .open_blob(&key)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == big);
    }
    // Flip one byte: reading the blob now fails instead of returning bad bytes.
    let mut tampered = big.clone();
    tampered[12345] ^= 1;
    std::fs::write(&blob_file, &tampered).unwrap();
    let archive = tgvault::store::Archive::open(a.path()).unwrap();
    let mut back = Vec::new();
    let err = archive
        .open_blob(&key)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap_err();
    assert!(err.to_string().contains("does not match its hash"), "{err}");
}

fn zip_dir(src: &Path, dest: &Path, prefix: &str) {
    let f = std::fs::File::create(dest).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for p in files_under(src) {
        let rel = p
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        z.start_file(format!("{prefix}{rel}"), opts).unwrap();
        z.write_all(&std::fs::read(&p).unwrap()).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn a_zip_a_directory_and_the_file_itself_import_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let zip_path = tmp.path().join("Telegram Export.zip");
    zip_dir(&full(), &zip_path, "DataExport_2024-02-02/");
    let from_dir = Archive::new();
    let from_zip = Archive::new();
    let from_file = Archive::new();
    let r1 = from_dir.import(&[&full()], &["--mapping", &users()]);
    let r2 = from_zip.import(&[&zip_path], &["--mapping", &users()]);
    let r3 = from_file.import(&[&full().join("result.json")], &["--mapping", &users()]);
    assert_eq!(totals(&r1), totals(&r2));
    assert_eq!(totals(&r1), totals(&r3));
    assert!(
        r2["files"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("!DataExport_2024-02-02/result.json")
    );
    // The same attachment content, read from the zip.
    let sha = |a: &Archive| {
        item(a, "tg:1000001:1000002:5")["attachments"][0]["content"]["sha256"].clone()
    };
    assert_eq!(sha(&from_dir), sha(&from_zip));
    assert_ne!(sha(&from_zip), Value::Null);
}

#[test]
fn unmapped_items_are_quarantined_then_remapped_and_edits_become_versions() {
    let a = Archive::new();
    let single = fixture("exports/single-chat");
    let rep = a.import(&[&single], &[]);
    let t = totals(&rep);
    assert_eq!((n(t, "quarantined"), n(t, "imported")), (3, 0), "{t}");
    assert_balanced(t);
    let held = a.json_lines(&["quarantine"]);
    assert_eq!(held.len(), 3);
    assert!(
        held[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no participant maps to a mailbox")
    );

    // A new mapping files Gina's messages; Frank's stays held.
    let remap = a.json(&[
        "quarantine",
        "remap",
        "--mapping",
        fixture("users-remap.csv").to_str().unwrap(),
    ]);
    let t = totals(&remap);
    assert_eq!((n(t, "imported"), n(t, "quarantined")), (2, 1), "{t}");
    assert_balanced(t);
    assert_eq!(a.json_lines(&["quarantine"]).len(), 1);
    assert_eq!(a.json_lines(&["ls", "gina.gray@corp.example"]).len(), 2);

    // A later export: message 2 edited, message 4 new, and no media folder.
    let edited = fixture("exports/single-chat-edited");
    let rep = a.import(
        &[&edited],
        &["--mapping", fixture("users-remap.csv").to_str().unwrap()],
    );
    let t = totals(&rep);
    assert_eq!(n(t, "available_for_import"), 4, "{t}");
    assert_eq!((n(t, "imported"), n(t, "new_versions")), (1, 1), "{t}");
    assert_eq!(n(t, "skipped"), 2, "{t}");
    assert_eq!(n(t, "quarantined"), 1, "{t}");
    assert_balanced(t);
    let shown = a.json(&["show", "tg:0:1000006:2"]);
    let versions = shown["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        versions[0]["item"]["body"]["Message"]["text"],
        "Confirmed, account ending 4471"
    );
    assert_eq!(
        versions[1]["item"]["body"]["Message"]["text"],
        "Confirmed, account ending 4471 (corrected: 4417)"
    );
    assert_eq!(versions[1]["item"]["edited"], 1709456940);
    // The photo that the later export lacked is still there, in the only version.
    let photo = a.json(&["show", "tg:0:1000006:3"]);
    assert_eq!(photo["versions"].as_array().unwrap().len(), 1);
    assert_ne!(
        photo["versions"][0]["item"]["attachments"][0]["content"],
        Value::Null
    );
    // The human view lists both versions too.
    let text = a.ok(&["show", "tg:0:1000006:2"]);
    assert!(
        text.contains("versions:\n  1 sha256 ") && text.contains("\n  2 sha256 "),
        "{text}"
    );
}

#[test]
fn the_custodian_resolves_through_the_csv_before_the_address() {
    // Without a CSV hit, the export's address takes every item.
    let a = Archive::new();
    let rep = a.import(&[&full()], &["--mailbox", "Custodian@Corp.Example"]);
    assert_eq!(n(totals(&rep), "quarantined"), 0);
    assert_eq!(
        mailbox_counts(&a),
        vec![("custodian@corp.example".to_string(), 27)]
    );
    // With one, the CSV wins for the owner; the address is not used.
    let b = Archive::new();
    b.import(
        &[&full()],
        &["--mapping", &users(), "--mailbox", "custodian@corp.example"],
    );
    let boxes: Vec<String> = mailbox_counts(&b).into_iter().map(|(m, _)| m).collect();
    assert!(
        !boxes.contains(&"custodian@corp.example".to_string()),
        "{boxes:?}"
    );
    assert!(boxes.contains(&"alice.adams@corp.example".to_string()));
}

#[test]
fn bad_input_names_the_line_and_changes_nothing() {
    let a = Archive::new();
    // A bad CSV line: nothing runs.
    let out = a.run(&[
        "import",
        full().to_str().unwrap(),
        "--mapping",
        fixture("bad/users-bad-phone.csv").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("users-bad-phone.csv:3:") && err.contains("+1 555 CALL"),
        "{err}"
    );
    // Not even an empty archive was created.
    let out = a.run(&["runs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no archive in"));

    // A malformed export beside a good one: the good one lands, the bad one
    // leaves nothing, the error names its line, and the exit code says so.
    let bad = fixture("bad/truncated.json");
    let out = a.run(&[
        "import",
        bad.to_str().unwrap(),
        fixture("exports/single-chat").to_str().unwrap(),
        "--mailbox",
        "x@corp.example",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("truncated.json:8: column"), "{err}");
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(rep["files"][0]["status"]["Failed"].is_string());
    assert_eq!(n(&rep["files"][0]["counters"], "available_from_source"), 0);
    assert_eq!(n(&rep["files"][1]["counters"], "imported"), 3);
    assert_eq!(mailbox_counts(&a), vec![("x@corp.example".to_string(), 3)]);
    let runs = a.json_lines(&["runs"]);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "completed with errors");

    // A large export that breaks only at its very end: the writer has filed
    // batches (and a blob file) into its open transaction by the time the
    // check fails, and all of it goes.
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("late-break");
    std::fs::create_dir_all(export.join("files")).unwrap();
    std::fs::write(export.join("files/big.bin"), vec![7u8; (1 << 20) + 5]).unwrap();
    let mut json = String::from(r#"{"name":"Late","type":"private_group","id":99,"messages":["#);
    for i in 1..=30_000 {
        if i > 1 {
            json.push(',');
        }
        let file = if i == 1 {
            r#","file":"files/big.bin""#
        } else {
            ""
        };
        json.push_str(&format!(
            r#"{{"id":{i},"type":"message","date_unixtime":"1700000000","from":"A","from_id":"user5","text":"message {i}"{file}}}"#
        ));
    }
    json.push_str(",{\"id\":");
    std::fs::write(export.join("result.json"), json).unwrap();
    let before = std::fs::read_dir(a.path().join("packs"))
        .unwrap()
        .map(|e| std::fs::metadata(e.unwrap().path()).unwrap().len())
        .sum::<u64>();
    let out = a.run(&[
        "import",
        export.to_str().unwrap(),
        "--mailbox",
        "x@corp.example",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("result.json:1: column"), "{err}");
    // Measured before anything opens the archive again (an open would cut
    // uncommitted bytes off too).
    let after = std::fs::read_dir(a.path().join("packs"))
        .unwrap()
        .map(|e| std::fs::metadata(e.unwrap().path()).unwrap().len())
        .sum::<u64>();
    assert_eq!(
        after, before,
        "nothing of the bad file is left in the packs"
    );
    assert_eq!(mailbox_counts(&a), vec![("x@corp.example".to_string(), 3)]);
    assert!(
        !a.path().join("blobs/sha256").exists()
            || std::fs::read_dir(a.path().join("blobs/sha256"))
                .unwrap()
                .all(|d| std::fs::read_dir(d.unwrap().path())
                    .unwrap()
                    .next()
                    .is_none()),
        "no blob file of the bad file is left"
    );
    a.ok(&["verify"]);

    // Requests that are wrong: exit code 2 and a sentence.
    for (args, needle) in [
        (
            vec!["import", full().to_str().unwrap(), "--tz", "Mars/Olympus"],
            "unknown time zone",
        ),
        (
            vec![
                "import",
                full().to_str().unwrap(),
                "--mailbox",
                "not an address",
            ],
            "not a mailbox address",
        ),
        (vec!["show", "tg:1:2:3"], "not found"),
        (vec!["show", "12345"], "not an item id"),
    ] {
        let out = a.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let out = a.run(&["import", "/nonexistent/export"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/export"));
}

#[test]
fn runs_are_recorded_with_their_counters() {
    let a = Archive::new();
    a.import(&[&full()], &["--mapping", &users()]);
    a.import(&[&full()], &["--mapping", &users()]);
    let runs = a.json_lines(&["runs"]);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(n(&runs[0]["totals"], "imported"), 38);
    assert_eq!(n(&runs[1]["totals"], "skipped"), 42);
    assert!(
        runs[1]["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "import")
    );
    let table = a.ok(&["runs"]);
    assert!(
        table.lines().count() == 3 && table.contains("completed"),
        "{table}"
    );
}

#[test]
fn owner_given_for_a_single_chat_export_scopes_ids_and_takes_part() {
    let a = Archive::new();
    let single = fixture("exports/single-chat");
    let rep = a.import(
        &[&single],
        &[
            "--owner",
            "user1000007",
            "--mapping",
            fixture("users-remap.csv").to_str().unwrap(),
        ],
    );
    let t = totals(&rep);
    // Gina owns the export: she takes part in every item, so nothing is quarantined.
    assert_eq!((n(t, "imported"), n(t, "quarantined")), (3, 0), "{t}");
    let ids: Vec<String> = a
        .json_lines(&["ls", "gina.gray@corp.example"])
        .iter()
        .map(|i| i["item"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        vec![
            "tg:1000007:1000006:1",
            "tg:1000007:1000006:2",
            "tg:1000007:1000006:3"
        ]
    );
    let out = a.run(&["import", single.to_str().unwrap(), "--owner", "bob"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Telegram user id"));
}

#[test]
fn only_import_and_init_create_an_archive() {
    let a = Archive::new();
    let refused = |args: &[&str]| {
        let out = a.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no archive in"), "{args:?}: {err}");
        assert!(
            !a.path().join("archive.redb").exists(),
            "{args:?} created one"
        );
    };
    // A mistyped path finds nothing and guards nothing: it is refused.
    refused(&["search", "deal", "--count"]);
    refused(&["hold", "set", "alice.adams@corp.example"]);
    refused(&["mailboxes"]);
    refused(&["verify"]);
    // init creates an empty archive, once; holds can then precede imports.
    assert_eq!(a.json(&["init"])["created"], true);
    assert_eq!(a.json(&["init"])["created"], false);
    let trail = a.json_lines(&["audit"]);
    assert_eq!(trail[0]["action"], "init", "{trail:?}");
    assert_eq!(trail.iter().filter(|e| e["action"] == "init").count(), 1);
    a.ok(&["hold", "set", "alice.adams@corp.example"]);
    assert_eq!(a.ok(&["search", "deal", "--count"]).trim(), "0");
    a.ok(&[
        "import",
        full().to_str().unwrap(),
        "--mapping",
        fixture("users.csv").to_str().unwrap(),
    ]);
    let holds = a.json_lines(&["hold", "list"]);
    assert_eq!(holds.len(), 1, "{holds:?}");
    // The trail in text names what each request acted on.
    let trail = a.ok(&["audit"]);
    assert!(
        trail
            .lines()
            .any(|l| l.contains("hold set") && l.contains("mailbox=alice.adams@corp.example")),
        "{trail}"
    );
    assert!(trail.contains("query=deal"), "{trail}");
    // A mailbox with nothing filed in it finds nothing, and says why.
    let out = a.run(&[
        "search",
        "deal",
        "--mailbox",
        "nobody@corp.example",
        "--count",
    ]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no items filed in mailbox nobody@corp.example")
    );
    let out = a.run(&[
        "search",
        "deal",
        "--mailbox",
        "alice.adams@corp.example",
        "--count",
    ]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
