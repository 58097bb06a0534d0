//! TeleMessage deliveries imported from packages (a zip of EML files and a
//! `.mf` manifest) and single EML files: participants mapped by mobile
//! number, then by the organisation's e-mail addresses; outsiders get no
//! copy; the delivered bytes kept verbatim; a bad package refused whole.

use crate::common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

const ANN: &str = "Ann Adams +15550001 <ann@corp.example>";
const BOB: &str = "Bob External +15559999 <bob@gmail.example>";

fn eml(from: &str, to: &str, subject: &str, id: u32, body: &[u8], extra: &str) -> Vec<u8> {
    let mut m = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Tue, 1 Dec 2026 10:{:02}:00 +0000\r\n\
Message-ID: <{id}@telemessage.example>\r\nX-TELEMESSAGE-ArchiveMessageID: {id}\r\n\
X-TELEMESSAGE-THREAD_ID: 4411\r\nX-TELEMESSAGE-ThreadName: Deal room\r\n\
X-TELEMESSAGE-Network: Telegram\r\nX-TELEMESSAGE-MessageType: text\r\n{extra}",
        id % 60
    )
    .into_bytes();
    m.extend_from_slice(body);
    m
}

/// The test's deliveries: a message with a photo, one in Latin-1, the
/// deletion of the first, one between outsiders only, and bytes that are
/// not mail.
pub fn deliveries() -> Vec<(String, Vec<u8>)> {
    let photo_b64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let multipart = format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nterm sheet attached, sign by Friday\r\n--b1\r\n\
Content-Type: image/png\r\nContent-Disposition: attachment; filename=\"sheet.png\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{photo_b64}\r\n--b1--\r\n"
    );
    let mut latin1 = b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nun caf".to_vec();
    latin1.extend_from_slice(&[0xE9]);
    latin1.extend_from_slice(b" demain pour la signature\r\n");
    let plain = b"Content-Type: text/plain\r\n\r\n";
    let mut outsiders = plain.to_vec();
    outsiders.extend_from_slice(b"between outsiders only\r\n");
    vec![
        (
            "20261201-001.eml".into(),
            eml(ANN, BOB, "Deal room", 1001, multipart.as_bytes(), ""),
        ),
        (
            "20261201-002.eml".into(),
            eml(
                BOB,
                ANN,
                "Deal room",
                1002,
                &latin1,
                "X-TELEMESSAGE-ArchiveSource: Mobile App\r\n",
            ),
        ),
        (
            "20261201-003.eml".into(),
            eml(ANN, BOB, "DELETED \u{2013} READ Deal room", 1001, plain, ""),
        ),
        (
            "20261201-004.eml".into(),
            eml(
                BOB,
                "Carl Other <carl@other.example>",
                "x",
                1004,
                &outsiders,
                "",
            ),
        ),
        (
            "20261201-005.eml".into(),
            b"\x00\x01 this is not a message\n".to_vec(),
        ),
    ]
}

pub fn package(
    dir: &Path,
    name: &str,
    files: &[(String, Vec<u8>)],
    manifest: Option<&str>,
) -> PathBuf {
    let path = dir.join(name);
    let mut w = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    for (n, bytes) in files {
        w.start_file(n.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(bytes).unwrap();
    }
    if let Some(m) = manifest {
        w.start_file("manifest.mf", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(m.as_bytes()).unwrap();
    }
    w.finish().unwrap();
    path
}

pub fn manifest_of(files: &[(String, Vec<u8>)]) -> String {
    let mut m = format!(
        "Count: {}\r\nCreated: 2026-12-01T00:00:00Z\r\n",
        files.len()
    );
    for (n, _) in files {
        m.push_str(n);
        m.push_str("\r\n");
    }
    m
}

pub fn users(dir: &Path) -> PathBuf {
    let p = dir.join("users.csv");
    std::fs::write(
        &p,
        "mobile_number,mailbox\n+15550001,ann.adams@corp.example\n",
    )
    .unwrap();
    p
}

fn sha_hex(bytes: &[u8]) -> String {
    hex::encode(tgvault::model::sha256(bytes))
}

#[test]
fn a_delivery_package_files_to_the_organisation_and_keeps_each_delivery_verbatim() {
    let a = Archive::new();
    let work = tempfile::tempdir().unwrap();
    let files = deliveries();
    let pkg = package(
        work.path(),
        "202612010000-TeleMessage_1_0100.zip",
        &files,
        Some(&manifest_of(&files)),
    );
    let map = users(work.path());
    let args = [
        "--mapping",
        map.to_str().unwrap(),
        "--org-domain",
        "corp.example",
    ];
    let rep = a.import(&[&pkg], &args);
    let t = totals(&rep);
    assert_eq!(rep["files"][0]["format"], "telemessage-eml", "{rep}");
    assert_eq!(n(t, "available_from_source"), 5, "{t}");
    assert_eq!(n(t, "deletions"), 1, "{t}");
    // Between outsiders only, and not mail at all: the quarantine.
    assert_eq!(n(t, "quarantined"), 2, "{t}");
    assert_balanced(t);

    // Ann by her mobile number (the map first); outsiders get no mailbox.
    let boxes = a.ok(&["mailboxes"]);
    assert!(boxes.contains("ann.adams@corp.example"), "{boxes}");
    assert!(
        !boxes.contains("gmail") && !boxes.contains("other.example"),
        "{boxes}"
    );
    let first = a.json(&["show", "tg:0:4411:1001"]);
    assert_eq!(first["deleted_by"], "tg:0:4411:1001:deleted", "{first}");
    let item = &first["versions"][0]["item"];
    assert_eq!(
        item["body"]["Message"]["text"],
        "term sheet attached, sign by Friday"
    );
    let props = item["body"]["Message"]["extra_text"].to_string();
    assert!(
        props.contains("X-TELEMESSAGE-Network") && props.contains("Deal room"),
        "{props}"
    );
    // The delivery itself, verbatim, and its photo as a blob.
    let atts = item["attachments"].as_array().unwrap();
    assert_eq!(atts[0]["mime_type"], "message/rfc822");
    assert_eq!(atts[0]["content"]["sha256"], sha_hex(&files[0].1));
    assert_eq!(atts[1]["file_name"], "sheet.png");
    assert_eq!(atts[1]["content"]["size"], 70, "{}", atts[1]);
    // Latin-1 text read as text; its bytes kept as they came.
    let second = a.json(&["show", "tg:0:4411:1002"]);
    let it = &second["versions"][0]["item"];
    assert_eq!(
        it["body"]["Message"]["text"],
        "un café demain pour la signature"
    );
    assert_eq!(
        it["attachments"][0]["content"]["sha256"],
        sha_hex(&files[1].1)
    );
    // Searchable by text and by a property's value.
    let count = |q: &str| -> u64 {
        let out = a.ok(&["search", q, "--count"]);
        let n = out.split_whitespace().next().and_then(|w| w.parse().ok());
        n.unwrap_or_else(|| panic!("{q}: {out}"))
    };
    assert_eq!(count("signature"), 1);
    // Every X-TELEMESSAGE-* header is a property of its own name, in any
    // case; its words match within that header only.
    // (Two filed, and the one between outsiders in the quarantine.)
    assert_eq!(count("x-telemessage-network:telegram"), 3);
    assert_eq!(count("X-TELEMESSAGE-ArchiveSource:\"mobile app\""), 1);
    assert_eq!(count("x-telemessage-archivesource:mob*"), 1);
    assert_eq!(count("x-telemessage-threadname:\"room deal\""), 0);
    assert_eq!(count("x-telemessage-network:room"), 0);
    assert_eq!(count("x-telemessage-nosuchheader:telegram"), 0);
    let out = a.run(&["search", "x-telemessage-network>telegram"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("takes ':' or '='"), "{}", text(&out));
    let quarantine: Vec<Value> = a.json_lines(&["quarantine"]);
    let reasons: String = quarantine.iter().map(|q| q["reason"].to_string()).collect();
    assert!(
        reasons.contains("carl@other.example") || reasons.contains("Carl Other"),
        "{reasons}"
    );
    a.ok(&["verify"]);

    // The same package again adds nothing.
    let again = a.import(&[&pkg], &args);
    let t = totals(&again);
    assert_eq!(n(t, "imported") + n(t, "quarantined"), 0, "{t}");
}

#[test]
fn a_package_that_breaks_its_manifest_is_refused_whole() {
    let a = Archive::new();
    let work = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = deliveries().into_iter().take(2).collect();
    let map = users(work.path());
    let mut bad = Vec::new();
    let wrong_count = manifest_of(&files).replace("Count: 2", "Count: 3");
    bad.push((
        package(work.path(), "count.zip", &files, Some(&wrong_count)),
        "Count is 3",
    ));
    let missing =
        format!("{}20261201-009.eml\r\n", manifest_of(&files)).replace("Count: 2", "Count: 2");
    bad.push((
        package(work.path(), "missing.zip", &files, Some(&missing)),
        "20261201-009.eml is listed but not in the package",
    ));
    let mut with_empty = files.clone();
    with_empty.push(("20261201-010.eml".into(), vec![]));
    bad.push((
        package(
            work.path(),
            "empty.zip",
            &with_empty,
            Some(&manifest_of(&with_empty)),
        ),
        "20261201-010.eml is empty",
    ));
    bad.push((
        package(work.path(), "none.zip", &files, None),
        "without its manifest",
    ));
    for (pkg, why) in &bad {
        let out = a.run(&[
            "import",
            pkg.to_str().unwrap(),
            "--mapping",
            map.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", pkg.display());
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        let status = rep["files"][0]["status"].to_string();
        assert!(
            status.contains(why) && status.contains("refused whole"),
            "{status}"
        );
        assert_eq!(n(totals(&rep), "available_from_source"), 0);
    }
    assert!(
        !a.ok(&["mailboxes"]).contains("corp.example"),
        "nothing of a refused package is filed"
    );
    // A manifest beside the zip does as well as one inside.
    let beside = package(
        work.path(),
        "202612020000-TeleMessage_2_0100.zip",
        &files,
        None,
    );
    std::fs::write(beside.with_extension("mf"), manifest_of(&files)).unwrap();
    let rep = a.import(&[&beside], &["--mapping", map.to_str().unwrap()]);
    assert_eq!(n(totals(&rep), "available_from_source"), 2, "{rep}");
    // A single EML file imports as well.
    let one = work.path().join("single.eml");
    std::fs::write(
        &one,
        eml(
            ANN,
            BOB,
            "solo",
            2001,
            b"Content-Type: text/plain\r\n\r\nalone\r\n",
            "",
        ),
    )
    .unwrap();
    let rep = a.import(&[&one], &["--mapping", map.to_str().unwrap()]);
    assert_eq!(n(totals(&rep), "imported"), 1, "{rep}");
    assert_eq!(
        a.json(&["show", "tg:0:4411:2001"])["locations"][0]["mailbox"],
        "ann.adams@corp.example"
    );
}

/// An SMTP connector `mail` on a free port, for archive@corp.example; the port.
fn add_smtp(a: &Archive, map: &Path, extra: &[&str]) -> u16 {
    let port = crate::ports::free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "connector",
        "add",
        "telemessage-smtp",
        "mail",
        "--listen",
        &listen,
    ];
    args.extend([
        "--recipient",
        "archive@corp.example",
        "--mapping",
        map.to_str().unwrap(),
    ]);
    args.extend(extra);
    a.ok(&args);
    port
}

/// Python's smtplib sends each file to `rcpt`, over STARTTLS when `tls`;
/// prints one JSON line per message: the reply, or the refusal.
const SENDER: &str = r#"
import json, smtplib, ssl, sys
port, rcpt, tls = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "tls"
for path in sys.argv[4:]:
    data = open(path, "rb").read()
    for attempt in range(60):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.ehlo()
                if tls:
                    s.starttls(context=ssl._create_unverified_context())
                    s.ehlo()
                s.mail("gateway@telemessage.example")
                code, msg = s.rcpt(rcpt)
                if code != 250:
                    print(json.dumps({"file": path, "refused": code, "text": msg.decode()}))
                    break
                code, msg = s.data(data)
                print(json.dumps({"file": path, "code": code, "text": msg.decode()}))
                break
        except (smtplib.SMTPException, OSError) as e:
            import time
            time.sleep(0.5)
    else:
        print(json.dumps({"file": path, "failed": "no answer"}))
    sys.stdout.flush()
"#;

fn send(port: u16, rcpt: &str, tls: bool, files: &[PathBuf]) -> Vec<Value> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(SENDER)
        .arg(port.to_string())
        .arg(rcpt)
        .arg(if tls { "tls" } else { "plain" })
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn deliveries_by_smtp_are_answered_only_once_committed() {
    if !have("python3", "SMTP delivery") || !have("openssl", "SMTP delivery") {
        return;
    }
    let a = Archive::new();
    a.ok(&["init"]);
    let work = tempfile::tempdir().unwrap();
    let map = users(work.path());
    let (cert, key) = self_signed(work.path());
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let tls = [
        "--org-domain",
        "corp.example",
        "--tls-cert",
        c,
        "--tls-key",
        k,
    ];
    let port = add_smtp(&a, &map, &tls);
    let files: Vec<PathBuf> = deliveries()
        .into_iter()
        .map(|(n, b)| {
            let p = work.path().join(n);
            std::fs::write(&p, b).unwrap();
            p
        })
        .collect();
    let s = crate::server::Server::start(&a);
    // Not one of the archive's addresses: refused at RCPT.
    let refused = send(port, "someone@corp.example", false, &files[..1]);
    assert_eq!(refused[0]["refused"], 550, "{refused:?}");
    // Plain and over STARTTLS: each 250 names the item it committed.
    let plain = send(port, "archive@corp.example", false, &files[..2]);
    let tls = send(port, "archive@corp.example", true, &files[2..]);
    for r in plain.iter().chain(&tls) {
        assert_eq!(r["code"], 250, "{r}");
        assert!(
            r["text"].as_str().unwrap().contains("committed: tg:"),
            "{r}"
        );
    }
    assert!(
        plain[0]["text"]
            .as_str()
            .unwrap()
            .contains("tg:0:4411:1001"),
        "{plain:?}"
    );
    // Committed means searchable and shown, as from a package.
    let first = a.json(&["show", "tg:0:4411:1001"]);
    assert_eq!(first["deleted_by"], "tg:0:4411:1001:deleted");
    let att = &first["versions"][0]["item"]["attachments"][0];
    assert_eq!(
        att["content"]["sha256"],
        sha_hex(&std::fs::read(&files[0]).unwrap())
    );
    // Sent again (a sender that missed the 250): nothing twice.
    let again = send(port, "archive@corp.example", false, &files[..2]);
    assert_eq!(again[0]["code"], 250);
    let log = a.json(&["connector", "log", "mail"]);
    let t = &log.as_array().unwrap().last().unwrap()["totals"];
    assert_eq!(n(t, "available_from_source"), 7, "{t}");
    assert_eq!(n(t, "quarantined"), 2, "{t}");
    assert_balanced(t);
    a_large_delivery_is_kept_whole(&a, port, work.path());
    s.stop();
    a.ok(&["verify"]);
}

/// 24 MB of media, over Purview's 10 MB limit: accepted, filed, and its
/// attachment and the delivery itself stored whole.
fn a_large_delivery_is_kept_whole(a: &Archive, port: u16, dir: &Path) {
    use base64::Engine;
    let media: Vec<u8> = (0..24_000_000u64)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&media);
    let mut body = String::from(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b9\"\r\n\r\n--b9\r\n\
Content-Type: text/plain\r\n\r\nthe full site survey\r\n--b9\r\nContent-Type: video/mp4\r\n\
Content-Disposition: attachment; filename=\"survey.mp4\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    );
    for line in encoded.as_bytes().chunks(76) {
        body.push_str(std::str::from_utf8(line).unwrap());
        body.push_str("\r\n");
    }
    body.push_str("--b9--\r\n");
    let path = dir.join("large.eml");
    let delivery = eml(ANN, BOB, "Deal room", 3001, body.as_bytes(), "");
    std::fs::write(&path, &delivery).unwrap();
    let sent = send(port, "archive@corp.example", false, &[path]);
    assert_eq!(sent[0]["code"], 250, "{sent:?}");
    let item = a.json(&["show", "tg:0:4411:3001"]);
    let atts = &item["versions"][0]["item"]["attachments"];
    assert_eq!(atts[0]["content"]["size"], delivery.len() as u64, "{atts}");
    assert_eq!(atts[0]["content"]["sha256"], sha_hex(&delivery));
    assert_eq!(atts[1]["file_name"], "survey.mp4");
    assert_eq!(atts[1]["content"]["sha256"], sha_hex(&media), "{atts}");
}

#[test]
fn killed_while_mail_arrives_the_server_files_each_message_once() {
    if !have("python3", "SMTP delivery") {
        return;
    }
    let a = Archive::new();
    a.ok(&["init"]);
    let work = tempfile::tempdir().unwrap();
    let map = users(work.path());
    let port = add_smtp(&a, &map, &[]);
    let messages = 60u32;
    let files: Vec<PathBuf> = (0..messages)
        .map(|i| {
            let p = work.path().join(format!("m{i}.eml"));
            let body = format!("Content-Type: text/plain\r\n\r\nwave {i} of the mail\r\n");
            std::fs::write(&p, eml(ANN, BOB, "wave", 5000 + i, body.as_bytes(), "")).unwrap();
            p
        })
        .collect();
    let sender = {
        let files = files.clone();
        std::thread::spawn(move || send(port, "archive@corp.example", false, &files))
    };
    for i in 0..6 {
        let s = crate::server::Server::start(&a);
        std::thread::sleep(std::time::Duration::from_millis(300 + 170 * i));
        let pid = rustix::process::Pid::from_raw(s.child_id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        drop(s);
    }
    let s = crate::server::Server::start(&a);
    let answers = sender.join().unwrap();
    assert_eq!(answers.len(), messages as usize);
    for r in &answers {
        assert_eq!(r["code"], 250, "{r}");
    }
    s.stop();
    a.ok(&["verify"]);
    for i in 0..messages {
        let v = a.json(&["show", &format!("tg:0:4411:{}", 5000 + i)]);
        assert_eq!(v["versions"].as_array().unwrap().len(), 1, "message {i}");
    }
    let mut imported = 0;
    for r in a.json(&["connector", "log", "mail"]).as_array().unwrap() {
        assert_balanced(&r["totals"]);
        imported += n(&r["totals"], "imported");
    }
    assert_eq!(
        imported, messages as u64,
        "each message filed once, in Ann's mailbox"
    );
}

#[test]
fn hostile_smtp_clients_get_errors_and_file_nothing() {
    use std::io::{BufRead, BufReader, Write};
    let a = Archive::new();
    a.ok(&["init"]);
    let work = tempfile::tempdir().unwrap();
    let port = add_smtp(&a, &users(work.path()), &[]);
    let s = crate::server::Server::start(&a);
    let talk = |lines: &[&[u8]]| -> Vec<String> {
        let conn = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(c) => break c,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut r = BufReader::new(conn.try_clone().unwrap());
        let mut w = conn;
        let mut replies = Vec::new();
        let mut greeting = String::new();
        r.read_line(&mut greeting).unwrap();
        for l in lines {
            if w.write_all(l).and_then(|_| w.write_all(b"\r\n")).is_err() {
                break;
            }
            let mut reply = String::new();
            if r.read_line(&mut reply).unwrap_or(0) == 0 {
                break;
            }
            replies.push(reply.trim().to_string());
        }
        replies
    };
    let long = vec![b'A'; 10_000];
    let r = talk(&[
        b"\x00\xff\xfe garbage",
        b"DATA",
        b"RCPT TO:<archive@corp.example>",
        &long,
        b"NOOP",
    ]);
    assert!(r[0].starts_with("502"), "{r:?}");
    assert!(r[1].starts_with("503"), "DATA before MAIL: {r:?}");
    assert!(r[2].starts_with("503"), "RCPT before MAIL: {r:?}");
    assert!(
        r[3].starts_with("500") && r[3].contains("too long"),
        "{r:?}"
    );
    assert!(r[4].starts_with("250"), "the session goes on: {r:?}");
    // A message cut off in the middle of DATA is not filed.
    let r = talk(&[
        b"HELO x",
        b"MAIL FROM:<a@b.example>",
        b"RCPT TO:<archive@corp.example>",
        b"DATA",
    ]);
    assert!(r[3].starts_with("354"), "{r:?}");
    s.stop();
    let log = a.json(&["connector", "log", "mail"]);
    let from_source: u64 = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| n(&r["totals"], "available_from_source"))
        .sum();
    assert_eq!(from_source, 0, "{log}");
}
