//! Forwarding to a real Dovecot: every filed copy lands in its mailbox's
//! `Telegram Archiver` folder as the bytes `export` writes, once; a second
//! pass sends nothing; kills at random points leave every copy there
//! exactly once; secrets stay secret.

use crate::common::*;
use crate::dovecot::{Dovecot, MASTER, MASTER_PASSWORD, master_password_file};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const FOLDER: &str = "Telegram Archiver";

pub(crate) fn mailboxes(a: &Archive) -> Vec<String> {
    a.json_lines(&["mailboxes"])
        .iter()
        .map(|m| m["mailbox"].as_str().unwrap().to_string())
        .collect()
}

/// An archive of the full-account fixture, mapped by `fixtures/users.csv`.
pub(crate) fn full_account() -> Archive {
    let a = Archive::new();
    let users = fixture("users.csv");
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", users.to_str().unwrap()],
    );
    a
}

/// A Dovecot with a user for each of the archive's mailboxes, and those.
fn dovecot_for(a: &Archive) -> Option<(Dovecot, Vec<String>)> {
    let boxes = mailboxes(a);
    let refs: Vec<&str> = boxes.iter().map(String::as_str).collect();
    Dovecot::start(&refs).map(|d| (d, boxes))
}

fn add_target(a: &Archive, d: &Dovecot, secrets: &Path, extra: &[&str]) {
    let mut args = d.target_args("dc", secrets);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    a.ok(&args);
}

/// `export`'s message of every copy, by mailbox: the bytes, by item.
pub(crate) fn exported(a: &Archive) -> BTreeMap<String, BTreeSet<Vec<u8>>> {
    let out = tempfile::tempdir().unwrap();
    let pkg = out.path().join("pkg");
    a.ok(&[
        "export",
        "kind:externaldata",
        "--out",
        pkg.to_str().unwrap(),
    ]);
    let mut by_box: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for f in files_under(&pkg.join("Items")) {
        if f.extension().is_some_and(|e| e == "eml") {
            let rel = f.strip_prefix(pkg.join("Items")).unwrap();
            let mailbox = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .to_string();
            by_box
                .entry(mailbox)
                .or_default()
                .insert(std::fs::read(&f).unwrap());
        }
    }
    by_box
}

pub(crate) fn run_json(a: &Archive, args: &[&str]) -> Value {
    let mut all = vec!["forward"];
    all.extend(args);
    all.push("--json");
    serde_json::from_str(a.ok(&all).lines().next().unwrap()).unwrap()
}

#[test]
fn every_copy_lands_once_as_export_writes_it_and_a_second_pass_sends_nothing() {
    let a = full_account();
    let Some((d, boxes)) = dovecot_for(&a) else {
        return;
    };
    assert!(boxes.len() >= 3, "{boxes:?}");
    let secrets = tempfile::tempdir().unwrap();

    // A password file others can read is refused, naming it.
    let open = secrets.path().join("open.password");
    std::fs::write(&open, MASTER_PASSWORD).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let url = d.url();
    let out = a.run(&[
        "forward",
        "add",
        "imap",
        "x",
        "--url",
        &url,
        "--user",
        MASTER,
        "--password-file",
        open.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("open.password"), "{}", text(&out));
    // Only imaps://.
    let pw = master_password_file(secrets.path());
    let out = a.run(&[
        "forward",
        "add",
        "imap",
        "x",
        "--url",
        "imap://127.0.0.1:143",
        "--user",
        MASTER,
        "--password-file",
        pw.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    add_target(&a, &d, secrets.path(), &[]);
    let first = run_json(&a, &["run"]);
    let c = &first["counters"];
    assert_eq!(first["status"], "completed", "{first}");
    let copies = c["available_from_source"].as_u64().unwrap();
    assert!(copies > 20, "{first}");
    assert_eq!(c["imported"].as_u64().unwrap(), copies, "{first}");

    // What each mailbox holds is what export writes for its copies.
    let want = exported(&a);
    let mut total = 0;
    for m in &boxes {
        let got: Vec<Vec<u8>> = d.fetch_all(m, FOLDER).into_iter().map(|(_, b)| b).collect();
        total += got.len();
        let set: BTreeSet<Vec<u8>> = got.iter().cloned().collect();
        assert_eq!(set.len(), got.len(), "{m}: a message twice");
        assert!(
            set == want[m],
            "{m}: {} messages, export has {}",
            set.len(),
            want[m].len()
        );
    }
    assert_eq!(total as u64, copies);

    // Again: nothing sent.
    let again = run_json(&a, &["run"]);
    assert_eq!(again["counters"]["imported"], 0, "{again}");
    assert_eq!(
        again["counters"]["skipped"].as_u64().unwrap(),
        copies,
        "{again}"
    );
    let status: Vec<Value> = serde_json::from_str(&a.ok(&["forward", "status", "--json"])).unwrap();
    assert_eq!(
        status[0]["delivered"].as_u64().unwrap(),
        copies,
        "{status:?}"
    );
    assert_eq!(status[0]["pending"], 0, "{status:?}");

    // Read back: all there as sent. Then one changed at the server (its
    // flags kept, its bytes replaced) and one removed are named.
    let ok = a.ok(&["forward", "verify", "dc", "--all", "--json"]);
    let v: Value = serde_json::from_str(ok.trim()).unwrap();
    assert_eq!(v["checked"].as_u64().unwrap(), copies, "{v}");
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    let maildir = d
        .path("mail")
        .join(&boxes[0])
        .join("Maildir")
        .join(".Telegram Archiver")
        .join("cur");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&maildir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    std::fs::remove_file(&files[0]).unwrap();
    let out = a.run(&["forward", "verify", "dc", "--all", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = v["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{v}");
    assert!(problems[0][3].as_str().unwrap().contains("missing"), "{v}");

    // An edit recorded after delivery goes as a new message; the first stays.
    let custodian = ["--mailbox", boxes[0].as_str()];
    a.import(&[&fixture("exports/single-chat")], &custodian);
    run_json(&a, &["run"]);
    a.import(&[&fixture("exports/single-chat-edited")], &custodian);
    let after = run_json(&a, &["run"]);
    assert!(
        after["counters"]["imported"].as_u64().unwrap() >= 1,
        "{after}"
    );
    let mut versions = 0;
    for m in &boxes {
        for (_, b) in d.fetch_all(m, FOLDER) {
            let s = String::from_utf8_lossy(&b);
            versions += usize::from(s.contains("; version=2; mailbox="));
        }
    }
    assert!(versions >= 1, "no second version delivered");

    // Refused credentials stop that target (until resumed), not the others.
    let wrong = secrets.path().join("wrong.password");
    std::fs::write(&wrong, "Wr0ng-Pass-31\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ca = d.path("ca.pem");
    a.ok(&[
        "forward",
        "add",
        "imap",
        "bad",
        "--url",
        &url,
        "--user",
        MASTER,
        "--password-file",
        wrong.to_str().unwrap(),
        "--login-template",
        "{mailbox}*{user}",
        "--ca-file",
        ca.to_str().unwrap(),
    ]);
    let out = a.run(&["forward", "run", "bad", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains("Wr0ng-Pass-31"));
    let shown = a.json(&["forward", "show", "bad"]);
    let state = shown["state"].as_str().unwrap();
    assert!(
        state.starts_with("failed: login as") && state.contains("refused"),
        "{shown}"
    );
    let again = run_json(&a, &["run", "bad"]);
    assert_eq!(
        again["run"],
        Value::Null,
        "a failed target is not run: {again}"
    );
    assert_eq!(a.json(&["forward", "show", "dc"])["state"], "active");
    a.ok(&["forward", "resume", "bad"]);
    assert_eq!(a.json(&["forward", "show", "bad"])["state"], "active");
    a.ok(&["forward", "remove", "bad"]);

    // The password is nowhere: the archive, the trail, what was printed.
    let everything = [
        a.ok(&["forward", "show", "dc", "--json"]),
        a.ok(&["audit", "--json"]),
        a.ok(&["runs", "--json"]),
    ]
    .join("\n");
    assert!(!everything.contains(MASTER_PASSWORD));
    for f in files_under(a.path()) {
        assert!(!holds(&f, MASTER_PASSWORD.as_bytes()), "{}", f.display());
    }
    a.ok(&["verify"]);
}

/// Runs `forward run` again and again, each killed at a random moment
/// (`ms.0` plus up to `ms.1` milliseconds) unless it ended first, until
/// `kills` kills or `rounds` rounds: how many kills.
pub(crate) fn kill_passes(a: &Archive, seed: u64, ms: (u64, u64), kills: u32, rounds: u32) -> u32 {
    let mut seed = seed;
    let mut killed = 0;
    for _ in 0..rounds {
        let mut child = std::process::Command::new(bin())
            .args(["--archive", a.path().to_str().unwrap(), "forward", "run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(std::time::Duration::from_millis(ms.0 + seed % ms.1));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        if killed >= kills {
            break;
        }
    }
    killed
}

#[test]
fn killed_at_random_points_the_forwarder_delivers_every_copy_exactly_once() {
    let a = Archive::new();
    let users = fixture("users.csv");
    let map = ["--mapping", users.to_str().unwrap()];
    a.import(&[&fixture("exports/full-account")], &map);
    // Enough copies that a pass takes a while: 1,500 messages between Bob
    // and Erin, a copy each.
    let dir = tempfile::tempdir().unwrap();
    let export = crate::dovecot::desk_export(dir.path(), 1500);
    a.import(&[&export], &map);
    let Some((d, boxes)) = dovecot_for(&a) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    add_target(&a, &d, secrets.path(), &[]);
    let kills = kill_passes(&a, 0x51ED_2701, (20, 400), 20, 60);
    // Then to the end.
    let last = run_json(&a, &["run"]);
    assert_eq!(last["status"], "completed", "{last}");
    let copies = last["counters"]["available_from_source"].as_u64().unwrap();
    let mut total = 0u64;
    for m in &boxes {
        let mut seen = BTreeSet::new();
        for (_, b) in d.fetch_all(m, FOLDER) {
            let s = String::from_utf8_lossy(&b).to_string();
            let h = s
                .lines()
                .find(|l| l.starts_with("X-Tgvault-Item: "))
                .unwrap()
                .to_string();
            assert!(seen.insert(h.clone()), "{m}: {h} delivered twice");
            total += 1;
        }
    }
    assert_eq!(total, copies, "after {kills} kills");
    eprintln!("{kills} kills");
    a.ok(&["verify"]);
}

#[test]
fn the_server_forwards_what_is_filed_by_itself() {
    let a = full_account();
    let Some((d, boxes)) = dovecot_for(&a) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    add_target(&a, &d, secrets.path(), &["--mailbox", boxes[0].as_str()]);
    let s = crate::server::Server::start(&a);
    let mut got = 0;
    for _ in 0..100 {
        got = d.fetch_all(&boxes[0], FOLDER).len();
        if got > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    s.stop();
    assert!(got > 0, "nothing forwarded by the server");
    // Only the mailbox the target names.
    assert!(d.fetch_all(&boxes[1], FOLDER).is_empty());
    let runs = a.json_lines(&["runs"]);
    assert!(
        runs.iter()
            .any(|r| r["kind"] == "forward" && r["actor"] == "forwarder"),
        "{runs:?}"
    );
}

/// An IMAP server that misbehaves in one way (`mode`), over TLS with the
/// CA of `dir`: Python's ssl and socketserver, one connection at a time.
const HOSTILE: &str = r#"
import socket, ssl, sys, threading
port_file, cert, key, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
open(port_file, "w").write(str(srv.getsockname()[1]))
def serve(c):
    try:
        c = ctx.wrap_socket(c, server_side=True)
        f = c.makefile("rb")
        if mode == "endless":
            c.sendall(b"* OK " + b"x" * (3 << 20))
            return
        c.sendall(b"* OK hostile ready\r\n")
        while True:
            line = f.readline()
            if not line:
                return
            tag, _, rest = line.decode(errors="replace").partition(" ")
            cmd = rest.split(" ")[0].upper().strip()
            if cmd == "CAPABILITY":
                c.sendall(b"* CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS MULTIAPPEND\r\n" + tag.encode() + b" OK done\r\n")
            elif cmd == "LOGIN":
                c.sendall(tag.encode() + b" OK logged in\r\n")
            elif cmd == "APPEND":
                if mode == "huge-literal":
                    c.sendall(b"* 1 FETCH (BODY[] {99999999999}\r\n")
                elif mode == "close":
                    c.close()
                    return
                elif mode == "bad":
                    c.sendall(tag.encode() + b" BAD [\xff\xfe] nonsense \x00 here\r\n")
                elif mode == "garbage":
                    c.sendall(b"\x00\x01\x02 not imap {12}\r\n" + tag.encode() + b" OK [APPENDUID x y] huh\r\n")
                return
            else:
                c.sendall(tag.encode() + b" OK\r\n")
    except Exception:
        pass
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

#[test]
fn a_hostile_imap_server_breaks_nothing() {
    if !have("python3", "a hostile IMAP server") || !have("openssl", "a hostile IMAP server") {
        return;
    }
    let a = full_account();
    let dir = tempfile::tempdir().unwrap();
    crate::dovecot::make_ca(dir.path());
    let pw = master_password_file(dir.path());
    for mode in ["endless", "huge-literal", "close", "bad", "garbage"] {
        let port_file = dir.path().join(format!("{mode}.port"));
        let mut server = std::process::Command::new("python3")
            .arg("-c")
            .arg(HOSTILE)
            .arg(&port_file)
            .arg(dir.path().join("server.pem"))
            .arg(dir.path().join("server.key"))
            .arg(mode)
            .spawn()
            .unwrap();
        let mut port = String::new();
        for _ in 0..100 {
            port = std::fs::read_to_string(&port_file).unwrap_or_default();
            if !port.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let url = format!("imaps://127.0.0.1:{port}");
        let ca = dir.path().join("ca.pem");
        a.ok(&[
            "forward",
            "add",
            "imap",
            mode,
            "--url",
            &url,
            "--user",
            "u",
            "--password-file",
            pw.to_str().unwrap(),
            "--ca-file",
            ca.to_str().unwrap(),
        ]);
        let out = a.run(&["forward", "run", mode, "--json"]);
        let _ = server.kill();
        let _ = server.wait();
        let said = text(&out);
        assert!(!said.contains("panicked"), "{mode}: {said}");
        let v: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{mode}: {e}: {said}"));
        let c = &v["counters"];
        // Refused one by one ("bad"), or the connection given up: never
        // recorded as delivered.
        assert_eq!(c["imported"], 0, "{mode}: {v}");
        assert_ne!(v["status"], "completed", "{mode}: {v}");
        a.ok(&["forward", "pause", mode]);
    }
    a.ok(&["verify"]);
}

/// A TeleMessage delivery and its later deletion: the deletion is a copy of
/// its own and goes after the message, which stays as it was delivered.
#[test]
fn a_deletion_recorded_after_delivery_goes_as_its_own_message() {
    use crate::telemessage::{deliveries, manifest_of, package, users};
    let a = Archive::new();
    let work = tempfile::tempdir().unwrap();
    let map = users(work.path());
    let files = deliveries();
    let (first, deletion) = (files[..2].to_vec(), files[2..3].to_vec());
    let args = [
        "--mapping",
        map.to_str().unwrap(),
        "--org-domain",
        "corp.example",
    ];
    let pkg = package(
        work.path(),
        "202612010000-TeleMessage_1_0100.zip",
        &first,
        Some(&manifest_of(&first)),
    );
    a.import(&[&pkg], &args);
    let ann = "ann.adams@corp.example";
    let Some(d) = Dovecot::start(&[ann]) else {
        return;
    };
    let secrets = tempfile::tempdir().unwrap();
    add_target(&a, &d, secrets.path(), &[]);
    run_json(&a, &["run"]);
    let before = d.fetch_all(ann, FOLDER);
    assert_eq!(before.len(), 2, "the message and the reply");
    let pkg = package(
        work.path(),
        "202612020000-TeleMessage_2_0100.zip",
        &deletion,
        Some(&manifest_of(&deletion)),
    );
    a.import(&[&pkg], &args);
    let after = run_json(&a, &["run"]);
    assert_eq!(after["counters"]["imported"], 1, "{after}");
    let now = d.fetch_all(ann, FOLDER);
    assert_eq!(now.len(), 3);
    // What was delivered is untouched; the new one is the deletion event.
    assert!(now[..2] == before[..], "a delivered message changed");
    let last = String::from_utf8_lossy(&now[2].1).to_string();
    assert!(
        last.contains("X-Tgvault-Kind: deletion") && last.contains(":deleted; version=1"),
        "{last}"
    );
}
