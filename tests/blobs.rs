//! Blob rows: each blob is stored once and counts the item versions that use
//! it, whether its row is still in the import's log or already folded into
//! `blobs`; an archive of format 2 (uses kept in `blob_refs`) is migrated on
//! open and verifies.

use crate::common::*;
use std::path::Path;
use tgvault::import::{ImportOptions, RunContext, import};
use tgvault::store::Archive as Store;

/// An export whose 40 messages, over two chats, carry 5 files between them
/// (message `i` holds file `i % 5`), so that most attachments repeat a blob
/// filed earlier. The second chat's messages are a year younger than the
/// first's. With `edited`, message 7 of the first chat has new text and the
/// same file: a second version using the same blob.
fn write_export(dir: &Path, edited: bool) {
    std::fs::create_dir_all(dir.join("files")).unwrap();
    for f in 0..5 {
        let bytes: Vec<u8> = (0..300 + f * 17).map(|b| (b * 7 + f) as u8).collect();
        std::fs::write(dir.join(format!("files/f{f}.bin")), bytes).unwrap();
    }
    let mut chats = Vec::new();
    for chat in 0..2 {
        let mut msgs = Vec::new();
        for i in 0..20 {
            let id = i + 1;
            let n = chat * 20 + i;
            let f = n % 5;
            let text = if edited && chat == 0 && id == 7 {
                format!("report {n} (corrected)")
            } else {
                format!("report {n}")
            };
            msgs.push(format!(
                r#"{{"id": {id}, "type": "message", "date": "{}-03-03T10:{i:02}:00", "date_unixtime": "{}",
                 "from": "Frank Fox", "from_id": "user1000006",
                 "file": "files/f{f}.bin", "file_name": "f{f}.bin", "file_size": {}, "mime_type": "application/octet-stream",
                 "text": "{text}", "text_entities": [{{"type": "plain", "text": "{text}"}}]}}"#,
                2024 + chat,
                1_709_460_000 + chat * 31_536_000 + i * 60,
                300 + f * 17
            ));
        }
        chats.push(format!(
            r#"{{"name": "Chat {chat}", "type": "personal_chat", "id": {}, "messages": [{}]}}"#,
            2_000_000 + chat,
            msgs.join(",")
        ));
    }
    std::fs::write(
        dir.join("result.json"),
        format!(
            r#"{{"chats": {{"about": "", "list": [{}]}}}}"#,
            chats.join(",")
        ),
    )
    .unwrap();
}

/// Imports `exports` one after the other in batches of 3 items, the blob log
/// folded whenever it holds `fold_at` rows; returns the verified store.
fn import_all(dir: &Path, exports: &[&Path], fold_at: usize) -> Store {
    let mut store = Store::open(dir).unwrap();
    store.set_blob_log_fold_at(fold_at);
    let mapping = tgvault::mapping::Mapping::from_path(&fixture("users.csv")).unwrap();
    let mut opts = ImportOptions::new(mapping);
    opts.custodian_address = Some("frank@corp.example".into());
    opts.batch_items = 3;
    let clock = || 1_709_500_000;
    let ctx = RunContext {
        actor: "test".into(),
        args: vec![],
        clock: &clock,
    };
    for e in exports {
        let report = import(&store, &[e.to_path_buf()], &opts, &ctx).unwrap();
        assert!(!report.has_errors(), "{e:?}: {:?}", report.files);
    }
    store
}

fn problems(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    store
        .verify(&mut |p| out.push(format!("{}: {}", p.subject, p.problem)))
        .unwrap();
    out
}

/// `blob hex -> (uses, size)` of every blob row.
fn blob_rows(store: &Store) -> std::collections::BTreeMap<String, (u64, u64)> {
    store
        .blob_metas()
        .unwrap()
        .into_iter()
        .map(|(sha, m)| (hex::encode(sha), (m.refs, m.size)))
        .collect()
}

#[test]
fn a_blob_is_stored_once_and_counts_the_versions_using_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    write_export(&first, false);
    write_export(&second, true);
    // Folded after every transaction, after every few, and only at the end.
    let mut seen = Vec::new();
    // The last archive stays for the retention steps below.
    let kept = Archive::new();
    for fold_at in [1, 4, 65_536] {
        let dir = match fold_at {
            65_536 => kept.path().to_path_buf(),
            n => tmp.path().join(format!("archive-{n}")),
        };
        let store = import_all(&dir, &[&first, &second, &first], fold_at);
        assert_eq!(problems(&store), Vec::<String>::new(), "fold_at {fold_at}");
        let rows = blob_rows(&store);
        // 5 blobs; 40 versions from the first export and one edit, each
        // using one: file 1 (message 7 of chat 0 holds 6 % 5) gains a use.
        assert_eq!(rows.len(), 5, "fold_at {fold_at}");
        let uses: Vec<u64> = {
            let mut by_size: Vec<(u64, u64)> = rows.values().map(|&(r, s)| (s, r)).collect();
            by_size.sort();
            by_size.into_iter().map(|(_, r)| r).collect()
        };
        assert_eq!(uses, vec![8, 9, 8, 8, 8], "fold_at {fold_at}");
        // Every blob's bytes went into the packs once: the packs of each
        // archive are the same length.
        let packs: u64 = std::fs::read_dir(dir.join("packs"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        seen.push((rows, packs));
        drop(store);
        // Opening again finds the log folded (the import's last transaction
        // folds it) and the same rows.
        let again = Store::open(&dir).unwrap();
        assert_eq!(blob_rows(&again), seen.last().unwrap().0);
        assert_eq!(
            again
                .table_sizes()
                .unwrap()
                .iter()
                .find(|(t, _)| *t == "blob_log")
                .unwrap()
                .1,
            0
        );
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");

    // Retention takes a use away per deleted version, and frees a blob with
    // its last use: first the older chat goes (20 versions and the edit),
    // then the rest.
    let dir = kept.path();
    kept.ok(&[
        "retention",
        "add",
        "old",
        "--delete-after",
        "30",
        "--mailbox",
        "frank@corp.example",
    ]);
    kept.ok(&["retention", "run", "--now", "2024-06-01"]);
    let store = Store::open(dir).unwrap();
    assert_eq!(problems(&store), Vec::<String>::new());
    let uses: Vec<u64> = blob_rows(&store).values().map(|&(r, _)| r).collect();
    assert_eq!(uses, vec![4; 5]);
    drop(store);
    kept.ok(&["retention", "run", "--now", "2026-01-01"]);
    let store = Store::open(dir).unwrap();
    assert_eq!(problems(&store), Vec::<String>::new());
    assert!(blob_rows(&store).is_empty());
}

#[test]
fn a_re_export_with_other_bytes_under_the_same_message_stores_nothing() {
    // The message is unchanged, so its version is not new, and the new
    // bytes of its file are used by no version: they are not stored.
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    write_export(&export, false);
    let dir = tmp.path().join("archive");
    let before = {
        let store = import_all(&dir, &[&export], 65_536);
        blob_rows(&store)
    };
    std::fs::write(export.join("files/f0.bin"), vec![7u8; 300]).unwrap();
    let store = import_all(&dir, &[&export], 65_536);
    assert_eq!(blob_rows(&store), before);
    assert_eq!(problems(&store), Vec::<String>::new());
    assert!(
        !crate::common::holds(&dir.join("packs/00000001.pack"), &[7u8; 300]),
        "the new bytes were stored"
    );
}

#[test]
fn a_format_2_archive_is_migrated_on_open_and_verifies() {
    let a = copy_of("archive-format2");
    let out = a.run(&["verify", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["problems"], serde_json::json!([]));
    assert_eq!(v["checked"]["items"], 31);
    assert_eq!(v["checked"]["blobs"], 4);
    // The uses came from format 2's references: re-importing the exports it
    // was made from adds nothing and leaves every count right.
    reimport_adds_nothing(&a);
    verify_clean(&a);
    // Searching works on the migrated archive (its index is built on open)
    // and answers what the format-2 build answered: 42 filed copies and 4
    // quarantined items.
    let hits = a.ok(&["search", "kind:externaldata", "--count"]);
    assert_eq!(hits.trim(), "46");
    // The migration is on the audit trail, once, after the format-2 build's
    // own entries (its import and a verify).
    let trail = a.json_lines(&["audit"]);
    let actions: Vec<&str> = trail
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "migrate").count(),
        1,
        "{actions:?}"
    );
    assert_eq!(actions[..3], ["import", "verify", "migrate"], "{actions:?}");
    let migrate = &trail[2];
    assert_eq!(
        migrate["params"],
        serde_json::json!([["from_format", "2"], ["to_format", "9"]])
    );
    assert_eq!(a.ok(&["verify"]).lines().count(), 1);
    // Format 4 frames and compresses what comes next, in a new pack; the
    // old pack's bare records are read as they are.
    let merger = a.ok(&["search", "merger", "--count"]);
    assert_ne!(merger.trim(), "0");
    let count = |q: &str| {
        a.ok(&["search", q, "--count"])
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let contract = count("contract");
    let report = a.import(
        &[&fixture("exports/multilingual")],
        &["--mailbox", "custodian@corp.example"],
    );
    assert!(n(totals(&report), "imported") > 0, "{report}");
    assert!(
        scan_pack(&a.path().join("packs/00000001.pack")).is_empty(),
        "pack 1 kept as it was"
    );
    let new = std::fs::read(a.path().join("packs/00000002.pack")).unwrap();
    let records = scan_pack(&a.path().join("packs/00000002.pack"));
    assert!(!records.is_empty() && records.iter().all(|f| f.whole));
    assert_eq!(records.iter().map(|f| f.len).sum::<usize>(), new.len());
    verify_clean(&a);
    assert_eq!(a.ok(&["search", "merger", "--count"]), merger);
    assert!(count("contract") > contract);
    // The fixture itself is untouched (the test migrated a copy).
    assert!(
        std::fs::metadata(fixture("archive-format2").join("archive.redb"))
            .unwrap()
            .len()
            > 0
    );
}

/// Format 5 (names spelt out in every `sources` row) migrates in place on
/// open: every row is rewritten with numbered names, and every read that
/// needs them (search by address and folder, show, an export's recipients,
/// a filing that adds a mailbox to an old row) answers as before.
#[test]
fn a_format_5_archive_is_migrated_on_open_and_reads_its_names() {
    let a = migrated("archive-format5", "5");
    // Every row reads back whole, with its names.
    let archive = tgvault::store::Archive::open(a.path()).unwrap();
    let mut rows = 0;
    archive
        .for_each_source(|doc| {
            rows += 1;
            assert!(!doc.rec.versions.is_empty());
            Ok(())
        })
        .unwrap();
    assert_eq!(rows, 31);
    let book = archive.address_book().unwrap();
    assert!(
        book.values().any(|m| m.contains("@")),
        "addresses read back: {book:?}"
    );
    drop(archive);
    let count = |q: &str| {
        a.ok(&["search", q, "--count"])
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(count("kind:externaldata"), 46);
    let folder = count("folder:\"Telegram Archiver\"");
    assert!(folder > 0);
    // Re-importing adds nothing; new items file beside the old.
    reimport_adds_nothing(&a);
    a.import(
        &[&fixture("exports/multilingual")],
        &["--mailbox", "custodian@corp.example"],
    );
    verify_clean(&a);
    assert!(count("kind:externaldata") > 46);
}

/// A format-7 archive (every item version a pack record of its own) opens
/// as format 8 without a rewrite: its records read as they are, new versions
/// go into groups, and compaction groups the old records anew.
#[test]
fn a_format_7_archive_is_migrated_on_open_and_compacts_into_groups() {
    let a = migrated("archive-format7", "7");
    let pack = a.path().join("packs/00000001.pack");
    let kinds = |kind| {
        scan_pack(&pack)
            .iter()
            .filter(|f| f.whole && f.kind == kind)
            .count()
    };
    assert_eq!(kinds(tgvault::store::frame::Kind::Group), 0);
    assert!(kinds(tgvault::store::frame::Kind::Version) >= 31);
    let show = a.ok(&["show", "tg:1000001:1000002:11"]);
    assert!(show.contains("Board approves the merger"), "{show}");
    reimport_adds_nothing(&a);
    a.import(
        &[&fixture("exports/multilingual")],
        &["--mailbox", "custodian@corp.example"],
    );
    assert!(
        kinds(tgvault::store::frame::Kind::Group) > 0,
        "new versions grouped"
    );
    let merger = a.ok(&["search", "merger", "--count"]);
    // Retention leaves pack 1 sparse (the merger item is held).
    hold_merger_purge_the_rest(&a);
    let done = a.json(&["retention", "run", "--now", "2099-01-01"]);
    assert!(!done["deleted"].as_array().unwrap().is_empty(), "{done}");
    a.ok(&["compact", "--below", "100"]);
    assert!(!pack.exists(), "the old pack was emptied");
    let packs = files_under(&a.path().join("packs"));
    let records: Vec<_> = packs.iter().flat_map(|p| scan_pack(p)).collect();
    assert!(
        records
            .iter()
            .all(|f| f.kind != tgvault::store::frame::Kind::Version),
        "every version in a group now"
    );
    verify_clean(&a);
    let show = a.ok(&["show", "tg:1000001:1000002:11"]);
    assert!(show.contains("Board approves the merger"), "{show}");
    assert_eq!(a.ok(&["search", "merger", "--count"]), merger);
}

/// A format-8 archive (each item's fingerprint stored whole in it) opens as
/// format 9 without a rewrite: its items read as they are, with the same
/// fingerprints that a format-9 import of the same exports derives from the
/// items' text, and importing those exports again adds nothing.
#[test]
fn a_format_8_archive_is_migrated_on_open_and_its_fingerprints_hold() {
    let old = migrated("archive-format8", "8");
    reimport_adds_nothing(&old);
    let new = Archive::new();
    new.import(
        &[
            &fixture("exports/full-account"),
            &fixture("exports/single-chat"),
            &fixture("exports/single-chat-edited"),
        ],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    let prints = |a: &Archive| -> Vec<(String, String)> {
        let hits = a.json_lines(&["search", "kind:externaldata", "--limit", "1000"]);
        let mut out: Vec<(String, String)> = hits
            .iter()
            .filter(|h| h.get("item").is_some())
            .flat_map(|h| {
                let id = h["item"].as_str().unwrap().to_string();
                let shown = a.json(&["show", &id]);
                shown["versions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        (
                            id.clone(),
                            v["item"]["fingerprint"].as_str().unwrap().into(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out.dedup();
        out
    };
    let (before, after) = (prints(&old), prints(&new));
    assert!(before.len() >= 25, "{before:?}");
    assert_eq!(before, after);
    // The new archive's items are stored without their fingerprints: its
    // packs are smaller by about 31 bytes a version (before compression).
    verify_clean(&new);
}

/// A copy of the fixture archive `name` (of format `from`, made by the
/// fixture's import and a verify), opened: it verifies clean with its 31
/// items and 42 filings, and its trail records the migration once, after the
/// old build's entries.
fn migrated(name: &str, from: &str) -> Archive {
    let a = copy_of(name);
    let v = a.json(&["verify"]);
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    assert_eq!(v["checked"]["items"], 31);
    assert_eq!(v["checked"]["filings"], 42);
    let trail = a.json_lines(&["audit"]);
    let actions: Vec<&str> = trail
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[..3], ["import", "verify", "migrate"], "{actions:?}");
    assert_eq!(
        trail[2]["params"],
        serde_json::json!([["from_format", from], ["to_format", "9"]])
    );
    a
}

/// Imports the exports the fixture archives were made from again: nothing
/// is new.
fn reimport_adds_nothing(a: &Archive) {
    let report = a.import(
        &[
            &fixture("exports/full-account"),
            &fixture("exports/single-chat"),
            &fixture("exports/single-chat-edited"),
        ],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    assert_eq!(n(totals(&report), "imported"), 0, "{report}");
}

fn verify_clean(a: &Archive) {
    let out = a.run(&["verify", "--json"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}");
}

/// A copy of the fixture archive `name` (its store; the index is derived).
fn copy_of(name: &str) -> Archive {
    let a = Archive::new();
    let src = fixture(name);
    for rel in ["archive.redb", "audit.journal", "packs/00000001.pack"] {
        if !src.join(rel).exists() {
            continue;
        }
        let to = a.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(rel), &to).unwrap();
    }
    a
}

/// Format 3 (bare pack records) migrates in place on open: its pack is read
/// as it is, new records are framed and compressed in a new pack, and a
/// compaction rewrites the old pack's live records in the new form.
#[test]
fn a_format_3_archive_is_migrated_on_open_and_compacts_into_framed_packs() {
    let a = copy_of("archive-format3");
    let v = a.json(&["verify"]);
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    assert_eq!(v["checked"]["items"], 31);
    let trail = a.json_lines(&["audit"]);
    let migrate: Vec<&serde_json::Value> =
        trail.iter().filter(|e| e["action"] == "migrate").collect();
    assert_eq!(migrate.len(), 1, "{trail:?}");
    assert_eq!(
        migrate[0]["params"],
        serde_json::json!([["from_format", "3"], ["to_format", "9"]])
    );
    let old = a.path().join("packs/00000001.pack");
    let bare = std::fs::read(&old).unwrap();
    assert!(scan_pack(&old).is_empty(), "format 3 records are bare");
    let merger = a.ok(&["search", "merger", "--count"]);
    // Everything but the held item (and the undated one) goes, which
    // leaves pack 1 sparse.
    hold_merger_purge_the_rest(&a);
    let done = a.json(&["retention", "run", "--now", "2099-01-01"]);
    assert!(!done["deleted"].as_array().unwrap().is_empty(), "{done}");
    // The run's own compaction, or this one, rewrites pack 1.
    a.ok(&["compact", "--below", "100"]);
    assert!(!old.exists());
    let moved: Vec<serde_json::Value> = a
        .json_lines(&["audit"])
        .into_iter()
        .filter(|e| e["action"] == "compact pack")
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0]["params"], serde_json::json!([["pack", "1"]]));
    let packs = files_under(&a.path().join("packs"));
    assert_eq!(packs.len(), 1, "{packs:?}");
    let records = scan_pack(&packs[0]);
    assert!(
        records.iter().all(|f| f.whole),
        "every record framed and whole"
    );
    let now: u64 = packs
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        now < bare.len() as u64,
        "{now} bytes, format 3 had {}",
        bare.len()
    );
    verify_clean(&a);
    assert_eq!(a.ok(&["search", "merger", "--count"]), merger);
    let show = a.ok(&["show", "tg:1000001:1000002:11"]);
    assert!(show.contains("Board approves the merger"), "{show}");
}

/// Format 4 (every blob file as it came) migrates in place on open: nothing
/// is rewritten, the migration is on the trail once, and a blob that
/// compresses is stored compressed from then on.
#[test]
fn a_format_4_archive_is_migrated_on_open_and_then_compresses_blob_files() {
    let a = migrated("archive-format4", "4");
    let merger = a.ok(&["search", "merger", "--count"]);
    assert_ne!(merger.trim(), "0");

    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir_all(export.join("files")).unwrap();
    let csv: Vec<u8> = (0..150_000u32)
        .flat_map(|i| format!("{i},EURUSD,{}.{:04}\n", 1 + i % 2, i % 9973).into_bytes())
        .collect();
    std::fs::write(export.join("files/ticks.csv"), &csv).unwrap();
    std::fs::write(
        export.join("result.json"),
        r#"{"name":"Desk","type":"private_group","id":88,"messages":[
            {"id":1,"type":"message","date_unixtime":"1700000000","from":"A","from_id":"user5",
             "file":"files/ticks.csv","file_name":"ticks.csv","text":"ticks"}]}"#,
    )
    .unwrap();
    a.import(&[&export], &["--mailbox", "desk@corp.example"]);
    let sha = hex::encode(tgvault::model::sha256(&csv));
    let zst = a
        .path()
        .join("blobs/sha256")
        .join(&sha[..2])
        .join(format!("{sha}.zst"));
    assert!(zst.exists(), "{}", zst.display());
    let v = a.json(&["verify"]);
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    // Read back whole, its hash checked.
    let archive = tgvault::store::Archive::open(a.path()).unwrap();
    let mut key = [0u8; 32];
    hex::decode_to_slice(&sha, &mut key).unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut archive.open_blob(&key).unwrap(), &mut back).unwrap();
    assert!(back == csv);
}
