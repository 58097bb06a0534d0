//! The `telemessage-sftp` connector against a real OpenSSH server, started
//! here on 127.0.0.1 with its own configuration and host key in a temporary
//! directory (Debian's openssh-server; scripts/test installs it).

use crate::common::*;
use crate::sshd::{Sshd, keygen};
use crate::telemessage::{deliveries, manifest_of, package, users};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn account() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string()
}

fn add_sftp(
    a: &Archive,
    s: &Sshd,
    name: &str,
    known: &Path,
    map: &Path,
    every: &str,
) -> std::process::Output {
    let port = s.port.to_string();
    let user = account();
    a.run(&[
        "connector",
        "add",
        "telemessage-sftp",
        name,
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--user",
        &user,
        "--key-file",
        s.path("client").to_str().unwrap(),
        "--known-hosts",
        known.to_str().unwrap(),
        "--path",
        s.path("drop").to_str().unwrap(),
        "--every",
        every,
        "--org-domain",
        "corp.example",
        "--mapping",
        map.to_str().unwrap(),
    ])
}

#[test]
fn packages_come_from_an_sftp_drop_once_each_and_a_bad_one_is_refused_whole() {
    let Some(s) = Sshd::start() else { return };
    let a = Archive::new();
    a.ok(&["init"]);
    let work = tempfile::tempdir().unwrap();
    let map = users(work.path());
    let drop = s.path("drop");
    let files = deliveries();
    package(
        &drop,
        "202612010000-TeleMessage_1_0100.zip",
        &files,
        Some(&manifest_of(&files)),
    );
    let two: Vec<(String, Vec<u8>)> = files.iter().take(2).cloned().collect();
    let wrong = manifest_of(&two).replace("Count: 2", "Count: 9");
    package(
        &drop,
        "202612010000-TeleMessage_2_0100.zip",
        &two,
        Some(&wrong),
    );
    let out = add_sftp(&a, &s, "drop", &s.path("known_hosts"), &map, "24h");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = a.run(&["sync", "drop", "--json"]);
    let synced: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        out.status.code(),
        Some(1),
        "the refused package fails the run: {synced}"
    );
    let c = &synced["counters"];
    assert_eq!(n(c, "available_from_source"), 5, "{c}");
    assert_eq!(n(c, "quarantined"), 2, "{c}");
    assert_balanced(c);
    let first = a.json(&["show", "tg:0:4411:1001"]);
    assert_eq!(first["deleted_by"], "tg:0:4411:1001:deleted");
    let log = a.json(&["connector", "log", "drop"]);
    let failures = log[0]["files"][0]["failures"].to_string();
    assert!(
        failures.contains("TeleMessage_2_0100.zip") && failures.contains("Count is 9"),
        "{failures}"
    );
    let status = a.json(&["connector", "status", "drop"]);
    assert_eq!(status[0]["schedule"], "every 24h", "{status}");
    assert!(status[0]["next_run"].is_string(), "{status}");

    // The next pass takes only what is new.
    let three: Vec<(String, Vec<u8>)> = vec![files[1].clone()];
    package(
        &drop,
        "202612020000-TeleMessage_3_0100.zip",
        &three,
        Some(&manifest_of(&three)),
    );
    let again: Value = serde_json::from_str(a.ok(&["sync", "drop", "--json"]).trim()).unwrap();
    let c = &again["counters"];
    assert_eq!(n(c, "available_from_source"), 1, "{c}");
    assert_eq!(
        n(c, "skipped"),
        n(c, "available_for_import"),
        "the same delivery: {c}"
    );
    let shown = a.json(&["connector", "show", "drop"]);
    assert_eq!(shown["position"], 3, "{shown}");
    a.ok(&["verify"]);
}

#[test]
fn an_unknown_host_key_refuses_the_connection_and_secrets_are_checked() {
    let Some(s) = Sshd::start() else { return };
    let a = Archive::new();
    a.ok(&["init"]);
    let work = tempfile::tempdir().unwrap();
    let map = users(work.path());
    // A known-hosts file that names another key for this server.
    keygen(&work.path().join("other"));
    let other = std::fs::read_to_string(work.path().join("other.pub")).unwrap();
    let wrong = work.path().join("known_hosts");
    std::fs::write(&wrong, format!("[127.0.0.1]:{} {other}", s.port)).unwrap();
    let out = add_sftp(&a, &s, "mitm", &wrong, &map, "24h");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = a.run(&["sync", "mitm", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let state = a.json(&["connector", "show", "mitm"])["state"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        state.starts_with("failed:")
            && state.contains("host key")
            && state.contains("refused to connect"),
        "{state}"
    );
    // A key file others can read is refused, naming it.
    let open = work.path().join("open_key");
    std::fs::copy(s.path("client"), &open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = a.run(&[
        "connector",
        "add",
        "telemessage-sftp",
        "loose",
        "--host",
        "127.0.0.1",
        "--user",
        "x",
        "--key-file",
        open.to_str().unwrap(),
        "--known-hosts",
        wrong.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("open_key"));
    // The private key's text is nowhere in the archive.
    let key = std::fs::read_to_string(s.path("client")).unwrap();
    let line = key.lines().nth(1).unwrap();
    for f in files_under(a.path()) {
        assert!(!holds(&f, line.as_bytes()), "{} holds the key", f.display());
    }
}

#[test]
fn killed_during_passes_the_server_takes_each_package_once() {
    let Some(s) = Sshd::start() else { return };
    let a = Archive::new();
    a.ok(&["init"]);
    let work = tempfile::tempdir().unwrap();
    let map = users(work.path());
    let dir = s.path("drop");
    let (packages, per) = (8u32, 300u32);
    for p in 0..packages {
        let files: Vec<(String, Vec<u8>)> = (0..per)
            .map(|i| {
                let id = 10_000 + p * per + i;
                let body = format!("Content-Type: text/plain\r\n\r\npackage {p} item {i}\r\n");
                let from = "Ann Adams +15550001 <ann@corp.example>";
                let to = "Bob External <bob@outside.example>";
                let head = format!(
                    "From: {from}\r\nTo: {to}\r\nSubject: p{p}\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n\
X-TELEMESSAGE-ArchiveMessageID: {id}\r\nX-TELEMESSAGE-THREAD_ID: 4411\r\n"
                );
                (format!("{i:04}.eml"), format!("{head}{body}").into_bytes())
            })
            .collect();
        let name = format!("20261201{p:04}-TeleMessage_{p}_0100.zip");
        package(&dir, &name, &files, Some(&manifest_of(&files)));
    }
    let added = add_sftp(&a, &s, "drop", &s.path("known_hosts"), &map, "1s");
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    for i in 0..4u64 {
        let server = crate::server::Server::start(&a);
        std::thread::sleep(std::time::Duration::from_millis(150 + 120 * i));
        let pid = rustix::process::Pid::from_raw(server.child_id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        drop(server);
    }
    let server = crate::server::Server::start(&a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let shown = a.json(&["connector", "show", "drop"]);
        if shown["position"] == packages {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{shown}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    server.stop();
    a.ok(&["verify"]);
    let mut imported = 0;
    for r in a.json(&["connector", "log", "drop"]).as_array().unwrap() {
        assert_balanced(&r["totals"]);
        imported += n(&r["totals"], "imported");
    }
    assert_eq!(
        imported,
        u64::from(packages * per),
        "each item of each package once"
    );
    let ann = a.json_lines(&["ls", "ann.adams@corp.example"]);
    assert_eq!(ann.len(), (packages * per) as usize);
}
