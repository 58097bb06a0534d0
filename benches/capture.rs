//! Live capture: the Bot API connector against the loopback Bot API double
//! of the tests (on 127.0.0.1, answering as fast as it is asked).
//!
//! `cargo bench --bench capture [-- --kind bot|smtp|sftp]` (all three by
//! default):
//! 1. bot: queues `--updates N` business messages (default 20,000; every 20th
//!    with a 4 KiB photo to fetch) and times one `sync` taking them all:
//!    updates per second;
//! 2. runs the connector continuously (as `tgvault serve` does) and pushes
//!    `--probes P` updates one at a time (default 200), each with a word of
//!    its own, timing from the push until a search finds it: p50, p99;
//! 3. smtp: `--mails N` messages (default 20,000, ~1 KB each) sent by 4
//!    clients at once, each waiting for its `250` (given once committed)
//!    before the next: messages per second;
//! 4. sftp: a delivery package of `--emls N` EML files (default 10,000) in
//!    the drop of a real sshd on 127.0.0.1 (root, Debian's openssh-server),
//!    taken by one `sync`: items per second, fetch included.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use tgvault::connector::Mode;
use tgvault::index::search::Sort;
use tgvault::service::{ConnectorAdd, Principal, SearchRequest, Service};
use tgvault::store::Archive;

#[path = "../tests/botdouble.rs"]
#[allow(dead_code)]
mod botdouble;
#[path = "../tests/ports.rs"]
mod ports;
#[path = "../tests/sshd.rs"]
#[allow(dead_code)]
mod sshd;
mod util;
use util::{arg, peak_rss_mib};

const TOKEN: &str = "4242:bench-token";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn message(id: i64, text: &str) -> serde_json::Value {
    json!({"business_connection_id": "bc", "message_id": id,
           "from": {"id": 1001, "is_bot": false, "first_name": "Ann"},
           "chat": {"id": 1001, "type": "private", "first_name": "Ann"},
           "date": 1764979200 + id, "text": text})
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = arg(&args, "--kind");
    let want = |k: &str| kind.as_deref().is_none_or(|w| w == k);
    if want("bot") {
        bot(&args);
    }
    if want("smtp") {
        smtp(&args);
    }
    if want("sftp") {
        sftp(&args);
    }
}

fn eml(i: u64) -> String {
    format!(
        "From: Ann Adams +15550001 <ann@corp.example>\r\nTo: Bob External <bob@outside.example>\r\n\
Subject: deal {i}\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{i}@tm.example>\r\n\
X-TELEMESSAGE-ArchiveMessageID: {i}\r\nX-TELEMESSAGE-THREAD_ID: 77\r\nX-TELEMESSAGE-Network: Telegram\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nmessage {i}: the quarterly numbers are in, {}\r\n",
        "please review the attached figures before the call. ".repeat(12)
    )
}

/// One SMTP client sending `mails` over one connection, each waiting for
/// its reply.
fn smtp_client(port: u16, from: u64, mails: u64) {
    use std::io::{BufRead, BufReader, Write};
    let conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_nodelay(true).unwrap();
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    let expect = |r: &mut BufReader<std::net::TcpStream>, code: &str| loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "{line}");
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect(&mut r, "220");
    w.write_all(b"EHLO bench\r\n").unwrap();
    expect(&mut r, "250");
    for i in from..from + mails {
        let body = eml(i);
        w.write_all(b"MAIL FROM:<gw@tm.example>\r\nRCPT TO:<archive@corp.example>\r\nDATA\r\n")
            .unwrap();
        expect(&mut r, "250");
        expect(&mut r, "250");
        expect(&mut r, "354");
        w.write_all(body.as_bytes()).unwrap();
        w.write_all(b".\r\n").unwrap();
        expect(&mut r, "250");
    }
    w.write_all(b"QUIT\r\n").unwrap();
}

fn smtp(args: &[String]) {
    let mails: u64 = arg(args, "--mails").map_or(20_000, |v| v.parse().unwrap());
    let work = tempfile::tempdir().unwrap();
    let service = Arc::new(Service::new(
        Archive::open(&work.path().join("a")).unwrap(),
        now,
    ));
    let who = Principal::local("os:bench");
    let port = ports::free_port();
    let mut settings = std::collections::BTreeMap::new();
    settings.insert("listen".to_string(), format!("127.0.0.1:{port}"));
    settings.insert("recipient".to_string(), "archive@corp.example".to_string());
    settings.insert("org-domain".to_string(), "corp.example".to_string());
    let req = ConnectorAdd {
        kind: "telemessage-smtp".into(),
        name: "mail".into(),
        settings,
        mapping: None,
        mailbox: None,
    };
    service.connector_add(&who, &req).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (s, stop) = (service.clone(), stop.clone());
        std::thread::spawn(move || s.run_connector("mail", Mode::Continuous, &stop))
    };
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|c| std::thread::spawn(move || smtp_client(port, 1 + c * mails / 4, mails / 4)))
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Release);
    runner.join().unwrap();
    let runs = service.connector_log(&who, "mail", None).unwrap();
    let imported: u64 = runs
        .iter()
        .flat_map(|r| &r.files)
        .map(|f| f.counters.imported)
        .sum();
    assert_eq!(imported, mails / 4 * 4);
    println!(
        "smtp: {} messages from 4 clients in {secs:.2} s: {:.0} messages/s, peak RSS {:.0} MiB",
        mails / 4 * 4,
        (mails / 4 * 4) as f64 / secs,
        peak_rss_mib()
    );
}

fn sftp(args: &[String]) {
    let emls: u64 = arg(args, "--emls").map_or(10_000, |v| v.parse().unwrap());
    let Some(s) = sshd::Sshd::start() else {
        println!("sftp: not measured (no sshd, or not root)");
        return;
    };
    let pkg = s.path("drop").join("202612010000-TeleMessage_1_0100.zip");
    {
        use std::io::Write;
        let mut z = zip::ZipWriter::new(std::fs::File::create(&pkg).unwrap());
        let mut mf = format!("Count: {emls}\r\n");
        for i in 1..=emls {
            let name = format!("{i:06}.eml");
            z.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(eml(i).as_bytes()).unwrap();
            mf.push_str(&name);
            mf.push_str("\r\n");
        }
        z.start_file("manifest.mf", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(mf.as_bytes()).unwrap();
        z.finish().unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    let service = Service::new(Archive::open(&work.path().join("a")).unwrap(), now);
    let who = Principal::local("os:bench");
    let user = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let mut settings = std::collections::BTreeMap::new();
    for (k, v) in [
        ("host", "127.0.0.1".to_string()),
        ("port", s.port.to_string()),
        ("user", user.trim().to_string()),
        ("key-file", s.path("client").display().to_string()),
        ("known-hosts", s.path("known_hosts").display().to_string()),
        ("path", s.path("drop").display().to_string()),
        ("org-domain", "corp.example".to_string()),
    ] {
        settings.insert(k.to_string(), v);
    }
    let req = ConnectorAdd {
        kind: "telemessage-sftp".into(),
        name: "drop".into(),
        settings,
        mapping: None,
        mailbox: None,
    };
    service.connector_add(&who, &req).unwrap();
    let size = std::fs::metadata(&pkg).unwrap().len();
    let t = Instant::now();
    let done = service.sync(&who, Some("drop")).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let c = &done[0].end.counters;
    assert_eq!(c.available_from_source, emls, "{:?}", done[0].end);
    println!(
        "sftp: a package of {emls} EML ({:.1} MB) fetched and filed in {secs:.2} s: {:.0} items/s, peak RSS {:.0} MiB",
        size as f64 / 1e6,
        emls as f64 / secs,
        peak_rss_mib()
    );
}

fn bot(args: &[String]) {
    let updates: i64 = arg(args, "--updates").map_or(20_000, |v| v.parse().unwrap());
    let probes: usize = arg(args, "--probes").map_or(200, |v| v.parse().unwrap());
    let work = tempfile::tempdir().unwrap();
    let token = work.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let double = botdouble::BotDouble::start(TOKEN);
    let service = Arc::new(Service::new(
        Archive::open(&work.path().join("a")).unwrap(),
        now,
    ));
    let who = Principal::local("os:bench");
    let mut settings = std::collections::BTreeMap::new();
    settings.insert("token-file".to_string(), token.display().to_string());
    settings.insert("api-url".to_string(), double.url());
    settings.insert("poll-timeout".to_string(), "5".to_string());
    let req = ConnectorAdd {
        kind: "bot".into(),
        name: "bench".into(),
        settings,
        mapping: None,
        mailbox: Some("ann@corp.example".into()),
    };
    service.connector_add(&who, &req).unwrap();
    double.push("business_connection", json!({"id": "bc", "user": {"id": 1001, "is_bot": false, "first_name": "Ann"},
        "user_chat_id": 1001, "date": 1764979200, "is_enabled": true, "rights": {"can_read_messages": true}}));
    let photo = vec![7u8; 4096];
    double.file("ph", &photo, photo.len() as u64);
    for i in 1..=updates {
        let mut m = message(i, &format!("bulk message {i} about the quarterly numbers"));
        if i % 20 == 0 {
            m["photo"] =
                json!([{"file_id": "ph", "file_unique_id": "p", "width": 64, "height": 64}]);
        }
        double.push("business_message", m);
    }
    let t = Instant::now();
    let done = service.sync(&who, Some("bench")).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let c = &done[0].end.counters;
    assert_eq!(c.available_from_source, updates as u64, "{:?}", done[0].end);
    println!(
        "bot: sync of {updates} updates ({} photos fetched): {secs:.2} s, {:.0} updates/s, peak RSS {:.0} MiB",
        updates / 20,
        updates as f64 / secs,
        peak_rss_mib()
    );

    // Continuously, as inside the server.
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (s, stop) = (service.clone(), stop.clone());
        std::thread::spawn(move || s.run_connector("bench", Mode::Continuous, &stop))
    };
    let mut lat = Vec::with_capacity(probes);
    for p in 0..probes {
        let word = format!("probe{p}x");
        let id = updates + 1 + p as i64;
        let t = Instant::now();
        double.push("business_message", message(id, &format!("{word} arrives")));
        loop {
            let r = service
                .search(
                    &who,
                    &SearchRequest {
                        query: word.clone(),
                        mailboxes: vec![],
                        limit: 1,
                        sort: Sort::Date,
                        case: None,
                        count: true,
                    },
                )
                .unwrap();
            if r.total > 0 {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{word} never became searchable"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    runner.join().unwrap();
    lat.sort_by(f64::total_cmp);
    println!(
        "bot: update to searchable over {probes} probes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
}
