//! Connectors: the Bot API connector against a loopback double of the Bot
//! API, through `tgvault connector`, `sync` and `serve`; faults, a wrong
//! token, secrets, and kills at random points.

use crate::botdouble::{BotDouble, Fault};
use crate::common::*;
use crate::server::Server;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const TOKEN: &str = "7700123456:AAH-double-secret-token-Zq9";
const HANA: i64 = 5550001;
const IVAN: i64 = 5550002;

fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn user(id: i64) -> Value {
    let (first, last, username) = if id == HANA {
        ("Hana", "Hill", "hanahill")
    } else {
        ("Ivan", "Iverson", "ivan_i")
    };
    json!({"id": id, "is_bot": false, "first_name": first, "last_name": last, "username": username})
}

fn hana_chat() -> Value {
    json!({"id": HANA, "type": "private", "first_name": "Hana", "last_name": "Hill"})
}

fn connection(enabled: bool) -> Value {
    json!({"id": "bc-ivan", "user": user(IVAN), "user_chat_id": IVAN, "date": 1764979200,
           "rights": {"can_reply": true, "can_read_messages": true, "can_delete_all_messages": false},
           "is_enabled": enabled})
}

fn business(id: i64, from: i64, text: &str) -> Value {
    json!({"business_connection_id": "bc-ivan", "message_id": id, "from": user(from),
           "chat": hana_chat(), "date": 1764979200 + id, "text": text})
}

/// A connector `name` against `double`, its token in an owner-only file
/// in `secrets`.
fn add_bot(
    a: &Archive,
    secrets: &Path,
    double: &BotDouble,
    name: &str,
    token: &str,
    extra: &[&str],
) {
    let token = secret_file(secrets, &format!("{name}.token"), token, 0o600);
    let mut args = vec![
        "connector",
        "add",
        "bot",
        name,
        "--token-file",
        token.to_str().unwrap(),
    ];
    let url = double.url();
    let map = fixture("botapi/users.csv");
    args.extend(["--api-url", &url, "--mapping", map.to_str().unwrap()]);
    args.extend(extra);
    a.ok(&args);
}

/// How many copies a query matches.
fn count(a: &Archive, q: &str) -> u64 {
    let out = a.ok(&["search", q, "--count"]);
    out.split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no count in {out}"))
}

/// Every file's bytes under `dir` hold `needle` nowhere.
fn nowhere_in(dir: &Path, needle: &str) {
    for f in files_under(dir) {
        assert!(
            !holds(&f, needle.as_bytes()),
            "{} holds the secret",
            f.display()
        );
    }
}

/// Ivan's Desktop export of his chat with Hana, after the bot captured it:
/// the versions the bot has add nothing (though the export words them
/// otherwise and lacks the media the bot fetched); the message the bot
/// never saw is filed.
fn desktop_export_adds_what_the_bot_missed(a: &Archive, dir: &Path) {
    let not_included = "(File not included. Change data exporting settings to download.)";
    let msg = |id: i64, from: i64, text: &str| {
        let name = if from == HANA {
            "Hana Hill"
        } else {
            "Ivan Iverson"
        };
        json!({"id": id, "type": "message", "date": "2025-12-06T00:00:00",
               "date_unixtime": (1764979200 + id).to_string(), "from": name,
               "from_id": format!("user{from}"), "text": text,
               "text_entities": [{"type": "plain", "text": text}]})
    };
    let mut first = msg(1, HANA, "can we move the settlement call to Friday?");
    first["edited"] = json!("2025-12-06T00:01:40");
    first["edited_unixtime"] = json!("1764979300");
    let mut photo = msg(3, HANA, "term sheet");
    photo["photo"] = json!(not_included);
    photo["width"] = json!(640);
    photo["height"] = json!(480);
    let mut video = msg(4, IVAN, "");
    video["file"] = json!(not_included);
    video["media_type"] = json!("video_file");
    video["mime_type"] = json!("video/mp4");
    let mut voice = msg(5, HANA, "");
    voice["file"] = json!(not_included);
    voice["media_type"] = json!("voice_message");
    voice["mime_type"] = json!("audio/ogg");
    let missed = msg(6, IVAN, "sent while the bot was away");
    // In Telegram Desktop's order: the account before its chats, a chat's
    // name and type before its messages.
    let owner = json!({"user_id": IVAN, "first_name": "Ivan", "last_name": "Iverson"});
    let messages = json!([first, photo, video, voice, missed]);
    let export = format!(
        "{{\"personal_information\": {owner}, \"chats\": {{\"list\": [{{\"name\": \"Hana Hill\", \
         \"type\": \"personal_chat\", \"id\": {HANA}, \"messages\": {messages}}}]}}}}"
    );
    let dir = dir.join("DataExport");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("result.json"), export).unwrap();
    let map = fixture("botapi/users.csv");
    let rep = a.import(&[&dir], &["--mapping", map.to_str().unwrap()]);
    let t = totals(&rep);
    assert_eq!(n(t, "available_from_source"), 5, "{t}");
    // Message 6, to Hana's mailbox and Ivan's; the rest the bot had.
    assert_eq!(n(t, "imported") + n(t, "partially_imported"), 2, "{t}");
    assert_eq!(n(t, "new_versions"), 0, "{t}");
    assert_eq!(n(t, "skipped"), 8, "{t}");
    let first = a.json(&["show", &format!("tg:{IVAN}:{HANA}:1")]);
    assert_eq!(first["versions"].as_array().unwrap().len(), 2, "{first}");
    let missed = a.json(&["show", &format!("tg:{IVAN}:{HANA}:6")]);
    assert_eq!(
        missed["versions"][0]["item"]["source_format"],
        "telegram-desktop-json"
    );
    a.ok(&["verify"]);
}

#[test]
fn a_bot_connector_files_business_chats_through_faults_and_keeps_its_token_secret() {
    let a = Archive::new();
    a.ok(&["init"]);
    let double = BotDouble::start(TOKEN);
    // A token file others can read is refused, naming it; nothing is added.
    let secrets = tempfile::tempdir().unwrap();
    let open = secret_file(secrets.path(), "open.token", TOKEN, 0o644);
    let out = a.run(&[
        "connector",
        "add",
        "bot",
        "open",
        "--token-file",
        open.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("open.token") && err.contains("0644"), "{err}");
    assert!(!err.contains(TOKEN));
    assert_eq!(a.json(&["connector", "list"]), json!([]));
    add_bot(&a, secrets.path(), &double, "desk", TOKEN, &[]);

    let photo: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
    double.file("ph-1", &photo, photo.len() as u64);
    double.file("big-1", b"", 25 * 1024 * 1024);
    double.push("business_connection", connection(true));
    double.push(
        "business_message",
        business(1, HANA, "can we move the settlement call?"),
    );
    double.push(
        "business_message",
        business(2, IVAN, "let us not put this in writing"),
    );
    let mut edited = business(1, HANA, "can we move the settlement call to Friday?");
    edited["edit_date"] = json!(1764979300);
    double.push("edited_business_message", edited);
    let mut with_photo = business(3, HANA, "");
    with_photo["photo"] = json!([{"file_id": "ph-1", "file_unique_id": "p1", "width": 640, "height": 480, "file_size": 5000}]);
    with_photo["caption"] = json!("term sheet");
    double.push("business_message", with_photo);
    let mut with_video = business(4, IVAN, "");
    with_video["video"] = json!({"file_id": "big-1", "file_unique_id": "b1", "width": 1280, "height": 720, "duration": 600, "file_size": 26214400});
    double.push("business_message", with_video);
    double.push(
        "deleted_business_messages",
        json!({"business_connection_id": "bc-ivan", "chat": hana_chat(), "message_ids": [2]}),
    );
    // A local Bot API server names a file on its disk, with no size limit.
    let local = secrets.path().join("voice.ogg");
    std::fs::write(&local, b"OggS local voice note").unwrap();
    double.local_file("loc-1", &local);
    let mut with_voice = business(5, HANA, "");
    with_voice["voice"] = json!({"file_id": "loc-1", "file_unique_id": "l1", "duration": 3});
    double.push("business_message", with_voice);
    double.push(
        "callback_query",
        json!({"id": "cb1", "from": user(HANA), "chat_instance": "x", "data": "ok"}),
    );
    let unknown = double.push("future_update", json!({"something": "new"}));
    // The account turns the bot off: recorded, as its turning on was.
    double.push("business_connection", connection(false));
    for f in [
        Fault::BadGateway,
        Fault::TooMany { retry_after: 1 },
        Fault::Drop,
        Fault::Conflict,
    ] {
        double.fault(f);
    }

    // A run with a failed item exits 1 and says so.
    let out = a.run(&["sync", "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let synced: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(synced["status"], "completed with errors", "{synced}");
    let c = &synced["counters"];
    assert_eq!(n(c, "available_from_source"), 8, "{c}");
    assert_eq!(n(c, "not_items"), 3, "{c}");
    assert_eq!(n(c, "deletions"), 1, "{c}");
    assert_balanced(c);

    // Business messages carry the connected account's scope (as its
    // Desktop export numbers them) and go to both mailboxes.
    let first = a.json(&["show", &format!("tg:{IVAN}:{HANA}:1")]);
    let v = first["versions"].as_array().unwrap();
    assert_eq!(v.len(), 2, "{first}");
    assert_eq!(
        v[1]["item"]["body"]["Message"]["text"],
        "can we move the settlement call to Friday?"
    );
    let places: Vec<&str> = first["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mailbox"].as_str().unwrap())
        .collect();
    assert!(
        places.contains(&"hana.hill@corp.example") && places.contains(&"ivan.iverson@corp.example"),
        "{places:?}"
    );
    let deleted = a.json(&["show", &format!("tg:{IVAN}:{HANA}:2")]);
    assert_eq!(deleted["deleted_by"], format!("tg:{IVAN}:{HANA}:2:deleted"));
    // The photo was fetched and stored; the 25 MB video is metadata with why.
    let ph = a.json(&["show", &format!("tg:{IVAN}:{HANA}:3")]);
    let att = &ph["versions"][0]["item"]["attachments"][0];
    assert!(att["missing"].is_null(), "{att}");
    assert_eq!(att["content"]["size"], 5000, "{att}");
    let vid = a.json(&["show", &format!("tg:{IVAN}:{HANA}:4")]);
    let why = vid["versions"][0]["item"]["attachments"][0]["missing"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        why.contains("file is too big") && why.contains("20 MB"),
        "{why}"
    );
    let voice = a.json(&["show", &format!("tg:{IVAN}:{HANA}:5")]);
    let att = &voice["versions"][0]["item"]["attachments"][0];
    assert_eq!(att["content"]["size"], 21, "{att}");
    assert_eq!(count(&a, "settlement"), 2);

    // The admin log: the unknown update failed alone, with its reason; the
    // faults were retried, each noted.
    let log = a.json(&["connector", "log", "desk"]);
    let run = &log[0];
    let file = &run["files"][0];
    let failures = file["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{file}");
    assert_eq!(failures[0]["item"], format!("update {unknown}"));
    assert!(
        failures[0]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown kind 'future_update'")
    );
    let notes = file["anomalies"].to_string();
    for fault in ["502", "429", "409", "getUpdates:"] {
        assert!(notes.contains(fault), "{fault} not noted: {notes}");
    }
    // The business connection is provenance on the trail.
    let trail = a.json_lines(&["audit"]);
    let conns: Vec<&Value> = trail
        .iter()
        .filter(|e| e["action"] == "business connection")
        .collect();
    assert_eq!(conns.len(), 2, "{conns:?}");
    assert_eq!(conns[0]["outcome"], "enabled");
    assert_eq!(conns[1]["outcome"], "disabled");
    let conn = conns[0];
    let params = conn["params"].to_string();
    assert!(
        params.contains(&IVAN.to_string())
            && params.contains("can_reply")
            && params.contains("can_read_messages"),
        "{params}"
    );
    assert!(!params.contains("can_delete_all_messages"), "{params}");
    let status = a.json(&["connector", "status"]);
    assert_eq!(status[0]["state"], "active");
    assert_eq!(status[0]["items_last_24h"], 8, "{status}");
    let shown = a.json(&["connector", "show", "desk"]);
    assert_eq!(shown["connections"][0]["enabled"], false, "{shown}");
    assert_eq!(status[0]["failed_items_last_24h"], 1, "{status}");

    // Nothing more at the source: nothing more filed.
    let again: Value = serde_json::from_str(a.ok(&["sync", "--json"]).trim()).unwrap();
    assert_eq!(n(&again["counters"], "available_from_source"), 0, "{again}");
    assert_eq!(double.pending(), 0);
    // The same updates from a capture file carry the same item ids: nothing
    // is filed twice.
    let capture = secrets.path().join("capture.jsonl");
    std::fs::write(&capture, double.history()).unwrap();
    let rep = a.import(
        &[&capture],
        &["--mapping", fixture("botapi/users.csv").to_str().unwrap()],
    );
    let t = totals(&rep);
    assert_eq!(n(t, "available_from_source"), 8, "{t}");
    assert_eq!(
        n(t, "imported") + n(t, "partially_imported") + n(t, "quarantined"),
        0,
        "{t}"
    );
    assert_eq!(n(t, "skipped"), n(t, "available_for_import"), "{t}");
    a.ok(&["verify"]);
    desktop_export_adds_what_the_bot_missed(&a, secrets.path());

    // The token is nowhere: not in the archive, not in what was printed.
    nowhere_in(a.path(), TOKEN);
    let everything = [
        a.ok(&["connector", "show", "desk", "--json"]),
        a.ok(&["connector", "list", "--json"]),
        a.ok(&["audit", "--json"]),
        a.ok(&["runs", "--json"]),
    ]
    .join("\n");
    assert!(!everything.contains(TOKEN));
    assert!(
        everything.contains("desk.token"),
        "the token's file is named"
    );
}

#[test]
fn a_refused_token_stops_its_connector_only_and_resume_starts_it_again() {
    let a = Archive::new();
    a.ok(&["init"]);
    let double = BotDouble::start(TOKEN);
    let secrets = tempfile::tempdir().unwrap();
    add_bot(&a, secrets.path(), &double, "good", TOKEN, &[]);
    add_bot(
        &a,
        secrets.path(),
        &double,
        "wrong",
        "7700123456:AAH-revoked",
        &[],
    );
    // No business_connection update: the connector asks getBusinessConnection.
    double.connection("bc-ivan", connection(true));
    double.push("business_message", business(1, HANA, "hello"));
    let out = a.run(&["sync", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by = |name: &str| {
        lines
            .iter()
            .find(|l| l["connector"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(by("good")["status"], "completed", "{lines:?}");
    assert_eq!(n(&by("good")["counters"], "imported"), 2);
    assert_eq!(by("wrong")["status"], "failed", "{lines:?}");
    let status = a.json(&["connector", "status", "wrong"]);
    let state = status[0]["state"].as_str().unwrap();
    assert!(
        state.starts_with("failed: getUpdates: 401") && state.contains("token was refused"),
        "{state}"
    );
    assert!(!state.contains("AAH-revoked"));
    // A failed connector is not run again until resumed.
    a.ok(&["sync", "good"]);
    let skipped = a.run(&["sync", "wrong", "--json"]);
    assert!(String::from_utf8_lossy(&skipped.stdout).contains("not run: failed"));
    a.ok(&["connector", "resume", "wrong"]);
    assert_eq!(a.json(&["connector", "show", "wrong"])["state"], "active");
    a.ok(&["connector", "pause", "good"]);
    assert_eq!(a.json(&["connector", "show", "good"])["state"], "paused");
    a.ok(&["connector", "remove", "good"]);
    let list = a.json(&["connector", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    // What it captured stays, and the trail has every change.
    assert_eq!(
        a.json(&["show", &format!("tg:{IVAN}:{HANA}:1")])["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let actions: Vec<String> = a
        .json_lines(&["audit"])
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for act in [
        "connector add",
        "connector run",
        "sync",
        "connector resume",
        "connector pause",
        "connector remove",
    ] {
        assert!(
            actions.iter().any(|x| x == act),
            "{act} not on the trail: {actions:?}"
        );
    }
}

/// A small deterministic generator (the seed is printed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn killed_at_random_points_the_server_captures_every_update_once() {
    let a = Archive::new();
    a.ok(&["init"]);
    let double = BotDouble::start(TOKEN);
    let secrets = tempfile::tempdir().unwrap();
    add_bot(
        &a,
        secrets.path(),
        &double,
        "live",
        TOKEN,
        &["--poll-timeout", "1"],
    );
    let photo: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    double.file("ph-k", &photo, photo.len() as u64);
    double.push("business_connection", connection(true));
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = Lcg(seed);
    let mut next = 1i64;
    let log = secrets.path().join("serve.log");
    // The token's server refuses now and then: errors are logged.
    double.fault(Fault::BadGateway);
    let mut edits = 0u64;
    let kills = 20;
    for _ in 0..kills {
        let s = Server::start_logging(&a, &log);
        for _ in 0..25 {
            let mut m = business(
                next,
                if next % 2 == 0 { IVAN } else { HANA },
                &format!("wave message {next}"),
            );
            if next % 10 == 0 {
                m["photo"] =
                    json!([{"file_id": "ph-k", "file_unique_id": "pk", "width": 10, "height": 10}]);
            }
            double.push("business_message", m);
            if next % 7 == 0 {
                let mut e = business(
                    next,
                    if next % 2 == 0 { IVAN } else { HANA },
                    &format!("wave message {next}, edited"),
                );
                e["edit_date"] = json!(1764990000 + next);
                double.push("edited_business_message", e);
                edits += 1;
            }
            next += 1;
        }
        // Long enough for the connector to have started (its run recorded),
        // short enough to land anywhere in the capture.
        std::thread::sleep(std::time::Duration::from_millis(500 + rng.below(1500)));
        let pid = rustix::process::Pid::from_raw(s.child_id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        drop(s);
    }
    // A last server takes the rest.
    let s = Server::start_logging(&a, &log);
    let messages = (next - 1) as u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let got = count(&a, "wave");
        if got >= messages * 2 && double.pending() == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {got} of {} copies searchable",
            messages * 2
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    s.stop();
    a.ok(&["verify"]);
    // The servers' logs name the connector and its retries, never the token.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("live"), "{logged}");
    assert!(!logged.contains(TOKEN), "the token is in the server's log");
    nowhere_in(a.path(), TOKEN);
    // Each message once, each edit once more, in both mailboxes.
    for m in 1..next {
        let v = a.json(&["show", &format!("tg:{IVAN}:{HANA}:{m}")]);
        let want = if m % 7 == 0 { 2 } else { 1 };
        assert_eq!(
            v["versions"].as_array().unwrap().len(),
            want,
            "message {m}: {v}"
        );
        assert_eq!(v["locations"].as_array().unwrap().len(), 2, "message {m}");
    }
    // The admin log adds up: every copy of every version imported once.
    let log = a.json(&["connector", "log", "live"]);
    let mut imported = 0;
    for r in log.as_array().unwrap() {
        let t = &r["totals"];
        assert_balanced(t);
        imported += n(t, "imported") + n(t, "partially_imported");
    }
    assert_eq!(imported, (messages + edits) * 2, "{log}");
    assert!(
        log.as_array().unwrap().len() > kills,
        "one run per server start at least: {} runs, {kills} kills",
        log.as_array().unwrap().len()
    );
}
