//! Forwarding to Microsoft Graph, against the loopback double of
//! `graphdouble.rs`: every copy filed once (by `importMime`, the bytes
//! `export` writes), the JSON fallback recorded partial, upload sessions
//! and notes for large attachments, throttling obeyed, answers lost and
//! kills survived without a copy delivered twice, secrets kept.

use crate::common::*;
use crate::forward::{exported, full_account, kill_passes, mailboxes, run_json};
use crate::graphdouble::{CLIENT, GraphDouble, Msg, Options, SECRET, TENANT};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FOLDER: &str = "Telegram Archiver";

fn secret_file(dir: &Path, secret: &str) -> PathBuf {
    let p = dir.join("graph.secret");
    std::fs::write(&p, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// `forward add graph NAME ...` pointed at the double, with `extra`.
fn graph_args(g: &GraphDouble, name: &str, secret: &Path, extra: &[&str]) -> Vec<String> {
    let url = g.url();
    let mut args: Vec<String> = ["forward", "add", "graph", name, "--tenant", TENANT]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let secret = secret.to_str().unwrap();
    for (k, v) in [
        ("--client-id", CLIENT),
        ("--secret-file", secret),
        ("--authority", &url),
        ("--graph-url", &url),
    ] {
        args.extend([k.to_string(), v.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn add_graph(a: &Archive, g: &GraphDouble, secret: &Path, extra: &[&str]) {
    let args = graph_args(g, "g", secret, extra);
    a.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// What the double holds, by mailbox: each message's `X-Tgvault-Item`,
/// none twice.
fn held_once(g: &GraphDouble, boxes: &[String]) -> BTreeMap<String, Vec<Msg>> {
    let mut out = BTreeMap::new();
    for m in boxes {
        let list = g.messages(m, FOLDER);
        let mut seen = BTreeSet::new();
        for msg in &list {
            let h = msg.item_header.clone().expect("an X-Tgvault-Item header");
            assert!(seen.insert(h.clone()), "{m}: {h} delivered twice");
            assert!(!msg.draft, "{m}: {h} is a draft");
        }
        out.insert(m.clone(), list);
    }
    out
}

/// `forward run [NAME] --json`, which may fail: its exit code and the
/// first target's line.
fn pass(a: &Archive, name: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["forward", "run"];
    args.extend(name);
    args.push("--json");
    let out = a.run(&args);
    let v = serde_json::from_str(text(&out).lines().next().unwrap_or("null")).unwrap();
    (out.status.code(), v)
}

fn count(held: &BTreeMap<String, Vec<Msg>>) -> u64 {
    held.values().map(|v| v.len() as u64).sum()
}

#[test]
fn every_copy_is_imported_as_export_writes_it_once() {
    let a = full_account();
    let boxes = mailboxes(&a);
    let g = GraphDouble::start(Options::new(&boxes));
    let secrets = tempfile::tempdir().unwrap();
    add_graph(&a, &g, &secret_file(secrets.path(), SECRET), &[]);

    let first = run_json(&a, &["run"]);
    assert_eq!(first["status"], "completed", "{first}");
    let copies = first["counters"]["available_from_source"].as_u64().unwrap();
    assert!(copies > 10, "{first}");
    assert_eq!(first["counters"]["imported"].as_u64(), Some(copies));

    // The bytes `export` writes, filed whole by importMime, once each.
    let held = held_once(&g, &boxes);
    assert_eq!(count(&held), copies);
    let want = exported(&a);
    for (m, list) in &held {
        let got: BTreeSet<Vec<u8>> = list.iter().map(|x| x.mime.clone().unwrap()).collect();
        assert_eq!(Some(&got), want.get(m), "{m}");
    }
    // One token for the whole pass; the folder made once per mailbox,
    // found on the third page of folders thereafter.
    let stats = g.stats();
    assert_eq!(stats.tokens, 1, "{stats:?}");
    assert!(stats.most_in_flight <= 4);

    // Nothing to send: nothing asked of Graph, not even a token.
    let again = run_json(&a, &["run"]);
    assert_eq!(again["counters"]["imported"], 0, "{again}");
    assert_eq!(g.stats().accepted, stats.accepted);

    // A new export's copies go on a later pass, into the same folder.
    let dir = tempfile::tempdir().unwrap();
    let users = fixture("users.csv");
    let export = crate::dovecot::desk_export(dir.path(), 6);
    a.import(&[&export], &["--mapping", users.to_str().unwrap()]);
    let third = run_json(&a, &["run"]);
    let added = third["counters"]["available_for_import"].as_u64().unwrap();
    assert!(added >= 6, "{third}");
    assert_eq!(
        third["counters"]["imported"].as_u64(),
        Some(added),
        "{third}"
    );
    for m in &boxes {
        assert!(g.folders(m, FOLDER) <= 1, "{m}: two folders");
    }
    let copies = copies + added;
    assert_eq!(count(&held_once(&g, &boxes)), copies);

    // Status, and verify reading every copy back.
    let status = a.json(&["forward", "status", "g"]);
    assert_eq!(status[0]["delivered"].as_u64(), Some(copies), "{status}");
    assert_eq!(status[0]["pending"], 0);
    let v = a.json(&["forward", "verify", "g", "--all"]);
    assert_eq!(v["checked"].as_u64(), Some(copies), "{v}");
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");

    // A copy deleted at the mailbox is reported missing.
    let (m, list) = held_once(&g, &boxes).into_iter().next().unwrap();
    g.delete(&m, &list[0].id);
    let out = a.run(&["forward", "verify", "g", "--all"]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("missing"), "{}", text(&out));

    // The secret is never shown or recorded.
    for args in [
        vec!["forward", "show", "g", "--json"],
        vec!["forward", "list", "--json"],
        vec!["audit", "--json"],
        vec!["runs", "--json"],
    ] {
        let out = a.run(&args);
        assert!(!text(&out).contains(SECRET), "{args:?} shows the secret");
    }
    a.ok(&["verify"]);
}

#[test]
fn a_tenant_without_import_mime_gets_received_json_messages_recorded_partial() {
    let a = full_account();
    let boxes = mailboxes(&a);
    let mut o = Options::new(&boxes);
    o.import_mime = false;
    let g = GraphDouble::start(o);
    let secrets = tempfile::tempdir().unwrap();
    add_graph(&a, &g, &secret_file(secrets.path(), SECRET), &[]);
    let first = run_json(&a, &["run"]);
    let copies = first["counters"]["available_from_source"].as_u64().unwrap();
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(
        first["counters"]["partially_imported"].as_u64(),
        Some(copies),
        "{first}"
    );
    let held = held_once(&g, &boxes);
    assert_eq!(count(&held), copies);
    for list in held.values() {
        for m in list {
            let j = m.json.as_ref().unwrap();
            assert!(j["receivedDateTime"].is_string(), "{j}");
            assert!(
                j["internetMessageId"]
                    .as_str()
                    .unwrap()
                    .ends_with("@tgvault.invalid>")
            );
        }
    }
    let status = a.json(&["forward", "status", "g"]);
    assert_eq!(status[0]["partial"].as_u64(), Some(copies), "{status}");
    // Why, in the run's record and in each ledger row.
    let runs = a.ok(&["runs", "--json"]);
    assert!(runs.contains("the tenant refused importMime"), "{runs}");
    let rows = a.json_lines(&["forward", "ledger", "g", "--state", "partial"]);
    assert_eq!(rows.len() as u64, copies);
    for r in &rows {
        assert!(
            r["why"].as_str().unwrap().contains("refused importMime"),
            "{r}"
        );
        assert!(r["remote"].as_str().unwrap().starts_with("msg-"), "{r}");
        assert_eq!(r["attempts"], 1, "{r}");
    }
    assert!(
        a.json_lines(&["forward", "ledger", "g", "--state", "delivered"])
            .is_empty()
    );
    let out = a.run(&["forward", "ledger", "g", "--state", "sent"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let v = a.json(&["forward", "verify", "g", "--all"]);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(run_json(&a, &["run"])["counters"]["partially_imported"], 0);
}

/// An export of one message with a file of `size` bytes (not compressible).
fn with_file(dir: &Path, name: &str, size: usize) -> (PathBuf, Vec<u8>) {
    let export = dir.join(format!("export-{name}"));
    std::fs::create_dir_all(export.join("files")).unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(export.join("files").join(name), &bytes).unwrap();
    std::fs::write(
        export.join("result.json"),
        format!(
            r#"{{"name":"Desk","type":"private_group","id":{},"messages":[
            {{"id":1,"type":"message","date_unixtime":"1700000000","from":"Bob","from_id":"user1000002",
             "file":"files/{name}","file_name":"{name}","text":"the file"}}]}}"#,
            7000 + size % 1000
        ),
    )
    .unwrap();
    (export, bytes)
}

#[test]
fn large_attachments_go_by_upload_session_and_oversized_ones_become_notes() {
    let a = Archive::new();
    let dir = tempfile::tempdir().unwrap();
    let (big, big_bytes) = with_file(dir.path(), "big.bin", 5 << 20);
    let (huge, huge_bytes) = with_file(dir.path(), "huge.bin", 9 << 20);
    let boxes = vec!["desk@corp.example".to_string()];
    a.import(&[&big, &huge], &["--mailbox", &boxes[0]]);
    // An upload budget of 4 MiB per 2 seconds (less than big.bin), which
    // the target is told.
    let mut o = Options::new(&boxes);
    o.upload_bytes = 4 << 20;
    o.upload_window = Duration::from_secs(2);
    let g = GraphDouble::start(o);
    let secrets = tempfile::tempdir().unwrap();
    add_graph(
        &a,
        &g,
        &secret_file(secrets.path(), SECRET),
        &["--max-attachment-mib", "8", "--upload-budget", "4/2"],
    );
    let first = run_json(&a, &["run"]);
    assert_eq!(first["status"], "completed", "{first}");
    assert_eq!(first["counters"]["partially_imported"], 2, "{first}");
    let held = held_once(&g, &boxes);
    let list = &held[&boxes[0]];
    assert_eq!(list.len(), 2);
    let atts: Vec<&(String, Vec<u8>)> = list.iter().flat_map(|m| &m.attachments).collect();
    let whole = atts.iter().find(|(n, _)| n == "big.bin").expect("big.bin");
    assert!(whole.1 == big_bytes, "big.bin differs at the target");
    let note = atts
        .iter()
        .find(|(n, _)| n == "huge.bin.note.txt")
        .expect("a note for huge.bin");
    let note = String::from_utf8_lossy(&note.1);
    let sha = hex::encode(tgvault::model::sha256(&huge_bytes));
    assert!(note.contains(&sha), "{note}");
    assert!(note.contains(&huge_bytes.len().to_string()), "{note}");
    assert!(!atts.iter().any(|(n, _)| n == "huge.bin"));
    // Nothing over 4 MB was sent, and the upload budget was kept.
    let stats = g.stats();
    assert_eq!(stats.too_large, 0, "{stats:?}");
    assert_eq!(stats.budget_429, 0, "{stats:?}");
    let runs = a.ok(&["runs", "--json"]);
    assert!(runs.contains("replaced by a note"), "{runs}");
}

#[test]
fn throttled_the_forwarder_waits_as_told_and_never_has_more_than_four_in_flight() {
    let a = Archive::new();
    let dir = tempfile::tempdir().unwrap();
    let users = fixture("users.csv");
    let export = crate::dovecot::desk_export(dir.path(), 60);
    a.import(&[&export], &["--mapping", users.to_str().unwrap()]);
    let boxes = mailboxes(&a);
    let mut o = Options::new(&boxes);
    // A budget far below Microsoft's, which the target is not told of, and
    // tokens that expire during the pass.
    o.requests = 25;
    o.window = Duration::from_secs(2);
    o.latency = Duration::from_millis(15);
    o.token_life = 2;
    let g = GraphDouble::start(o);
    let secrets = tempfile::tempdir().unwrap();
    add_graph(&a, &g, &secret_file(secrets.path(), SECRET), &[]);
    let first = run_json(&a, &["run"]);
    assert_eq!(first["status"], "completed", "{first}");
    let copies = first["counters"]["available_from_source"].as_u64().unwrap();
    assert!(copies >= 60, "{first}");
    assert_eq!(count(&held_once(&g, &boxes)), copies);
    let s = g.stats();
    assert!(s.budget_429 > 0, "the budget was never reached: {s:?}");
    assert_eq!(s.early, 0, "retried before Retry-After: {s:?}");
    assert_eq!(s.concurrency_429, 0, "{s:?}");
    assert!(s.most_in_flight <= 4, "{s:?}");
    assert!(s.tokens >= 2, "the token was not renewed: {s:?}");

    // Told the budget, the forwarder keeps to it: no 429 at all.
    let more = crate::dovecot::desk_export(&dir.path().join("more"), 60);
    let renamed = std::fs::read_to_string(more.join("result.json"))
        .unwrap()
        .replace("\"id\":4242", "\"id\":4343");
    std::fs::write(more.join("result.json"), renamed).unwrap();
    a.import(&[&more], &["--mapping", users.to_str().unwrap()]);
    a.ok(&["forward", "remove", "g"]);
    // A new pass cannot know what the last one spent: let its window pass.
    std::thread::sleep(Duration::from_millis(2500));
    add_graph(
        &a,
        &g,
        &secret_file(secrets.path(), SECRET),
        &["--request-budget", "25/2"],
    );
    let before = g.stats().budget_429;
    let second = run_json(&a, &["run"]);
    let added = second["counters"]["available_for_import"].as_u64().unwrap();
    assert!(added >= 60, "{second}");
    assert_eq!(
        second["counters"]["imported"].as_u64(),
        Some(added),
        "{second}"
    );
    assert_eq!(g.stats().budget_429, before, "{:?}", g.stats());
    assert_eq!(g.stats().early, 0);
}

#[test]
fn an_answer_lost_or_garbled_after_graph_filed_the_copy_is_found_not_sent_again() {
    let a = full_account();
    let boxes = mailboxes(&a);
    let g = GraphDouble::start(Options::new(&boxes));
    let secrets = tempfile::tempdir().unwrap();
    add_graph(&a, &g, &secret_file(secrets.path(), SECRET), &[]);
    g.lose_answers(3);
    g.garble_answers(2);
    let (code, first) = pass(&a, &[]);
    assert_eq!(code, Some(1), "{first}");
    assert_eq!(first["status"], "failed", "{first}");
    let status = a.json(&["forward", "status", "g"]);
    let doubt: u64 = status[0]["mailboxes"]
        .as_object()
        .unwrap()
        .values()
        .map(|m| m["in_doubt"].as_u64().unwrap())
        .sum();
    assert!(doubt >= 1, "{status}");
    // A pass meets what is left of the faults, if the first did not; in
    // the end every copy is there once.
    let mut last = Value::Null;
    for _ in 0..6 {
        last = pass(&a, &[]).1;
        if last["status"] == "completed" {
            break;
        }
    }
    assert_eq!(last["status"], "completed", "{last}");
    let copies = last["counters"]["available_from_source"].as_u64().unwrap();
    assert_eq!(count(&held_once(&g, &boxes)), copies);
    assert_eq!(g.faults_left(), 0);
}

#[test]
fn killed_at_random_points_the_graph_forwarder_files_every_copy_once() {
    let a = Archive::new();
    let dir = tempfile::tempdir().unwrap();
    let users = fixture("users.csv");
    let export = crate::dovecot::desk_export(dir.path(), 600);
    a.import(&[&export], &["--mapping", users.to_str().unwrap()]);
    let boxes = mailboxes(&a);
    let mut o = Options::new(&boxes);
    o.latency = Duration::from_millis(40);
    let g = GraphDouble::start(o);
    let secrets = tempfile::tempdir().unwrap();
    add_graph(&a, &g, &secret_file(secrets.path(), SECRET), &[]);
    let kills = kill_passes(&a, 0xA11C_E5ED, (50, 600), 10, 30);
    let last = run_json(&a, &["run"]);
    assert_eq!(last["status"], "completed", "{last}");
    let copies = last["counters"]["available_from_source"].as_u64().unwrap();
    assert_eq!(count(&held_once(&g, &boxes)), copies, "after {kills} kills");
    assert!(kills >= 5, "{kills} kills");
    eprintln!("{kills} kills");
    a.ok(&["verify"]);
}

#[test]
fn refused_credentials_stop_the_target_and_bad_settings_are_refused() {
    let a = full_account();
    let boxes = mailboxes(&a);
    let g = GraphDouble::start(Options::new(&boxes));
    let secrets = tempfile::tempdir().unwrap();
    let good = secret_file(secrets.path(), SECRET);
    let base = |secret: &Path| graph_args(&g, "bad", secret, &[]);
    let refused = |args: Vec<String>, code: i32, says: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = a.run(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    };
    // http:// only to a loopback address; no unknown or missing options.
    let mut remote = base(&good);
    remote[13] = "http://graph.example.com".into();
    refused(remote, 2, "https://");
    let mut missing = base(&good);
    missing.drain(4..6);
    refused(missing, 2, "--tenant");
    let mut odd = base(&good);
    odd.extend(["--request-budget".into(), "lots".into()]);
    refused(odd, 2, "N/SECONDS");
    // A secret others can read.
    let open = secrets.path().join("open.secret");
    std::fs::write(&open, SECRET).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(base(&open), 1, "open.secret");

    // A wrong secret: the token is refused, the target stops, nothing sent.
    let wrong_dir = tempfile::tempdir().unwrap();
    let wrong = secret_file(wrong_dir.path(), "not-the-secret");
    let args = base(&wrong);
    a.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let v = pass(&a, &["bad"]).1;
    assert_eq!(v["status"], "failed", "{v}");
    let show = a.json(&["forward", "show", "bad"]);
    assert!(
        show["state"].as_str().unwrap().contains("invalid_client")
            || show["state"].as_str().unwrap().contains("refused"),
        "{show}"
    );
    assert_eq!(g.stats().accepted, 0);
    assert!(!a.ok(&["audit", "--json"]).contains("not-the-secret"));
}

#[test]
fn copies_retention_deleted_are_not_sent_and_copies_filed_later_are() {
    let a = Archive::new();
    let dir = tempfile::tempdir().unwrap();
    let bob_only = dir.path().join("bob.csv");
    std::fs::write(
        &bob_only,
        "mobile_number,mailbox,telegram_user_id,telegram_username\n,bob.brown@corp.example,1000002,\n",
    )
    .unwrap();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", bob_only.to_str().unwrap()],
    );
    assert!(!a.json_lines(&["quarantine"]).is_empty());
    assert_eq!(mailboxes(&a), ["bob.brown@corp.example"]);
    // Every copy Bob's mailbox holds is past its time before any pass.
    a.ok(&[
        "retention",
        "add",
        "purge",
        "--delete-after",
        "1",
        "--mailbox",
        "bob.brown@corp.example",
    ]);
    a.ok(&["retention", "run"]);
    let left = a.ok(&["ls", "bob.brown@corp.example", "--json"]);
    assert_eq!(left.trim(), "", "{left}");
    let boxes: Vec<String> = ["alice.adams", "bob.brown", "erin.evans"]
        .iter()
        .map(|m| format!("{m}@corp.example"))
        .collect();
    let g = GraphDouble::start(Options::new(&boxes));
    let secrets = tempfile::tempdir().unwrap();
    add_graph(&a, &g, &secret_file(secrets.path(), SECRET), &[]);
    let first = run_json(&a, &["run"]);
    assert_eq!(first["counters"]["imported"], 0, "{first}");
    assert_eq!(g.messages(&boxes[1], FOLDER).len(), 0);

    // The quarantine filed by a fuller mapping: those copies go.
    let users = fixture("users.csv");
    a.ok(&["quarantine", "remap", "--mapping", users.to_str().unwrap()]);
    let second = run_json(&a, &["run"]);
    let filed = second["counters"]["available_for_import"].as_u64().unwrap();
    assert!(filed > 0, "{second}");
    assert_eq!(second["counters"]["imported"].as_u64(), Some(filed));
    let held = held_once(&g, &boxes);
    assert_eq!(count(&held), filed);
    assert!(held[&boxes[1]].is_empty(), "a deleted copy was sent");
}

#[test]
fn a_json_copy_interrupted_before_its_attachment_gets_it_on_the_next_pass() {
    let a = Archive::new();
    let dir = tempfile::tempdir().unwrap();
    let (big, big_bytes) = with_file(dir.path(), "big.bin", 5 << 20);
    let boxes = vec!["desk@corp.example".to_string()];
    a.import(&[&big], &["--mailbox", &boxes[0]]);
    let mut o = Options::new(&boxes);
    o.import_mime = false;
    let g = GraphDouble::start(o);
    let secrets = tempfile::tempdir().unwrap();
    add_graph(&a, &g, &secret_file(secrets.path(), SECRET), &[]);
    g.fail_attachments(1);
    let (code, first) = pass(&a, &[]);
    assert_eq!(code, Some(1), "{first}");
    // The message is there without its attachment; the row is in doubt.
    let held = held_once(&g, &boxes);
    assert_eq!(held[&boxes[0]].len(), 1);
    assert!(held[&boxes[0]][0].attachments.is_empty());
    let rows = a.json_lines(&["forward", "ledger", "g", "--state", "in-doubt"]);
    assert_eq!(rows.len(), 1, "{rows:?}");

    let second = run_json(&a, &["run"]);
    assert_eq!(second["status"], "completed", "{second}");
    let held = held_once(&g, &boxes);
    let list = &held[&boxes[0]];
    assert_eq!(list.len(), 1, "sent twice");
    assert_eq!(list[0].attachments.len(), 1);
    assert!(list[0].attachments[0].1 == big_bytes);
    let rows = a.json_lines(&["forward", "ledger", "g", "--state", "partial"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["attempts"], 2, "{rows:?}");
}
