//! Live capture: the Bot API connector against the loopback Bot API double
//! of the tests (on 127.0.0.1, answering as fast as it is asked).
//!
//! `cargo bench --bench capture`:
//! 1. queues `--updates N` business messages (default 20,000; every 20th
//!    with a 4 KiB photo to fetch) and times one `sync` taking them all:
//!    updates per second;
//! 2. runs the connector continuously (as `tgvault serve` does) and pushes
//!    `--probes P` updates one at a time (default 200), each with a word of
//!    its own, timing from the push until a search finds it: p50, p99.

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
    let updates: i64 = arg(&args, "--updates").map_or(20_000, |v| v.parse().unwrap());
    let probes: usize = arg(&args, "--probes").map_or(200, |v| v.parse().unwrap());
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
        "sync of {updates} updates ({} photos fetched): {secs:.2} s, {:.0} updates/s, peak RSS {:.0} MiB",
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
        "update to searchable over {probes} probes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
}
