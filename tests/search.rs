//! KQL through `tgvault search`, on an archive built from the fixtures and the
//! real sample exports: each query against the exact set of copies it must
//! find, written `SCOPE:CHAT:MESSAGE@mailbox` (the mailbox's local part up to
//! the first dot; `q` for the quarantine).

use crate::common::{Archive, fixture, samples_dir};
use std::collections::BTreeSet;

enum Want {
    /// Exactly these copies.
    Hits(&'static str),
    /// Every copy in the archive (too many to list).
    Everything,
}
use Want::*;

/// `(query, uses the samples, expected)`.
const CASES: &[(&str, bool, Want)] = &[
    // Non-Latin text, case-insensitivity, emoji.
    ("東京", false, Hits("0:7700001:1@carol")),
    ("会議", false, Hits("0:7700001:1@carol")),
    ("上海办公室", false, Hits("0:7700001:2@carol")),
    ("مرحبا", false, Hits("0:7700001:3@carol")),
    ("नमस्ते", false, Hits("0:7700001:4@carol")),
    ("Письмо", false, Hits("0:7700001:9@carol")),
    ("письмо", false, Hits("0:7700001:9@carol")),
    ("ПРИВЕТ", false, Hits("1000001:2000001:2@alice")),
    (
        "заметку",
        true,
        Hits("0:10001:30@samples 0:10001:58@samples 0:10001:59@samples"),
    ),
    (
        "👍",
        false,
        Hits("0:7700001:5@carol 1000001:1000002:10@alice 1000001:1000002:10@bob"),
    ),
    // Phrases.
    ("\"wire instructions\"", false, Hits("1000001:1000006:1@q")),
    ("\"instructions wire\"", false, Hits("")),
    ("\"sign the contract\"", false, Hits("0:7700001:2@carol")),
    ("\"EOD positions\"", false, Hits("0:-1001234567890:77@jon")),
    // Boolean operators, and lower case `and`/`or` as words.
    ("salt and pepper", false, Hits("0:7700001:6@carol")),
    ("budget and forecast", false, Hits("")),
    ("budget AND forecast", false, Hits("0:7700001:7@carol")),
    ("budget forecast", false, Hits("0:7700001:7@carol")),
    (
        "merger OR whiteboard",
        false,
        Hits(
            "1000001:1000002:11@alice 1000001:1000002:11@bob 1000001:1000002:5@alice 1000001:1000002:5@bob",
        ),
    ),
    ("merger or whiteboard", false, Hits("")),
    ("contract -draft", false, Hits("0:7700001:2@carol")),
    ("contract NOT draft", false, Hits("0:7700001:2@carol")),
    ("+contract draft", false, Hits("0:7700001:8@carol")),
    (
        "(merger OR whiteboard) AND from:alice",
        false,
        Hits("1000001:1000002:11@alice 1000001:1000002:11@bob"),
    ),
    // NEAR.
    ("budget NEAR(12) forecast", false, Hits("0:7700001:7@carol")),
    ("forecast NEAR(12) budget", false, Hits("0:7700001:7@carol")),
    ("budget NEAR forecast", false, Hits("")),
    ("budget NEAR(1) approved", false, Hits("0:7700001:7@carol")),
    // Prefix wildcards.
    ("shipp*", false, Hits("0:7700001:6@carol")),
    (
        "merg*",
        false,
        Hits("1000001:1000002:11@alice 1000001:1000002:11@bob"),
    ),
    (
        "confirm*",
        false,
        Hits("1000001:1000006:1@q 1000001:1000006:2@q"),
    ),
    ("контракт*", false, Hits("0:7700001:8@carol")),
    // People.
    (
        "from:alice subject:\"deal team\"",
        false,
        Hits("1000001:2000001:1@alice 1000001:2000001:5@alice"),
    ),
    (
        "from:alice.adams@corp.example subject:\"bob brown\" kind:message",
        false,
        Hits(
            "1000001:1000002:1@alice 1000001:1000002:1@bob 1000001:1000002:7@alice 1000001:1000002:7@bob \
             1000001:1000002:9@alice 1000001:1000002:9@bob 1000001:1000002:11@alice 1000001:1000002:11@bob",
        ),
    ),
    (
        "from:\"Dan Diaz\"",
        false,
        Hits(
            "1000001:2000001:10@alice 1000001:2000001:2@alice 1000001:2000001:4:1@alice \
             1000001:2000001:4@alice 1000001:2000001:9@alice",
        ),
    ),
    (
        "FROM:alice subject:\"market watch\"",
        false,
        Hits("0:3000001:2@alice"),
    ),
    (
        "to:bob.brown@corp.example",
        false,
        Hits(
            "1000001:1000002:11@alice 1000001:1000002:11@bob 1000001:1000002:1@alice 1000001:1000002:1@bob \
             1000001:1000002:3@alice 1000001:1000002:3@bob 1000001:1000002:7@alice 1000001:1000002:7@bob \
             1000001:1000002:9@alice 1000001:1000002:9@bob",
        ),
    ),
    (
        "recipients:hana.hill@corp.example",
        false,
        Hits("0:5550001:2:deleted@hana 0:5550001:2:deleted@ivan 0:5550001:2@hana 0:5550001:2@ivan"),
    ),
    (
        "participants:erin",
        true,
        Hits(
            "0:3000001:-999000000@alice 0:3000001:-999000000@erin 0:3000001:-999000001@alice \
             0:3000001:-999000001@erin",
        ),
    ),
    ("cc:alice", false, Hits("")),
    ("bcc:alice", false, Hits("")),
    (
        "senderid:user1000004",
        false,
        Hits(
            "1000001:2000001:10@alice 1000001:2000001:2@alice 1000001:2000001:4:1@alice \
             1000001:2000001:4@alice 1000001:2000001:9@alice",
        ),
    ),
    (
        "senderid:1000004 NOT attachmentnames:passwd",
        false,
        Hits(
            "1000001:2000001:2@alice 1000001:2000001:4:1@alice 1000001:2000001:4@alice \
             1000001:2000001:9@alice",
        ),
    ),
    (
        "phone:\"+1 555 010-0001\" subject:\"market watch\" kind:event",
        false,
        Hits("0:3000001:-999000000@alice 0:3000001:-999000000@erin 0:3000001:1@alice"),
    ),
    // Dates, UTC, and their boundaries.
    (
        "sent:2025-01-01",
        false,
        Hits("0:7700001:2@carol 0:7700001:3@carol"),
    ),
    (
        "sent:2024-12-31..2025-01-01",
        false,
        Hits("0:7700001:1@carol 0:7700001:2@carol 0:7700001:3@carol"),
    ),
    (
        "sent<2025-01-01 subject:global",
        false,
        Hits("0:7700001:1@carol"),
    ),
    (
        "sent<=2024-12-31 subject:global",
        false,
        Hits("0:7700001:1@carol"),
    ),
    (
        "sent>2025-01-04 subject:global",
        false,
        Hits("0:7700001:9@carol"),
    ),
    (
        "received:2025-01-02",
        false,
        Hits("0:7700001:4@carol 0:7700001:5@carol"),
    ),
    (
        "sent>=2025-01-01T12:00:00Z subject:global",
        false,
        Hits(
            "0:7700001:3@carol 0:7700001:4@carol 0:7700001:5@carol 0:7700001:6@carol \
             0:7700001:7@carol 0:7700001:8@carol 0:7700001:9@carol",
        ),
    ),
    // Kinds and classes.
    (
        "kind:call",
        true,
        Hits(
            "0:10001:38@samples 0:10001:39@samples 0:10001:50@samples 0:10001:53@samples \
             0:700000000:3674@samples 100000001:700000002:2003@samples 1000001:1000002:3@alice \
             1000001:1000002:3@bob 1000001:1000002:4@alice 1000001:1000002:4@bob \
             1000001:2000001:6@alice 1000001:2000001:6@bob",
        ),
    ),
    (
        "Kind:Call AND mailbox:alice.adams@corp.example",
        false,
        Hits("1000001:1000002:3@alice 1000001:1000002:4@alice 1000001:2000001:6@alice"),
    ),
    (
        "kind:event subject:\"deal team\"",
        false,
        Hits("1000001:2000001:1@alice 1000001:2000001:5@alice"),
    ),
    (
        "kind:deletion",
        false,
        Hits("0:5550001:2:deleted@hana 0:5550001:2:deleted@ivan"),
    ),
    (
        "itemclass:ipm.externaldata.telegram.call subject:\"bob brown\"",
        false,
        Hits(
            "1000001:1000002:3@alice 1000001:1000002:3@bob 1000001:1000002:4@alice 1000001:1000002:4@bob",
        ),
    ),
    // Every copy in the archive: counted against `tgvault mailboxes` below.
    ("kind:externaldata", true, Everything),
    ("itemclass:ipm.externaldata.telegram*", true, Everything),
    // Size, attachments.
    ("size:48213..48300", false, Hits("0:7700001:8@carol")),
    (
        "size>40000 subject:global",
        false,
        Hits("0:7700001:8@carol"),
    ),
    (
        "size>=47KB subject:global",
        false,
        Hits("0:7700001:8@carol"),
    ),
    (
        "hasattachment:true subject:global",
        false,
        Hits("0:7700001:8@carol"),
    ),
    (
        "hasattachment:false subject:global",
        false,
        Hits(
            "0:7700001:1@carol 0:7700001:2@carol 0:7700001:3@carol 0:7700001:4@carol \
             0:7700001:5@carol 0:7700001:6@carol 0:7700001:7@carol 0:7700001:9@carol",
        ),
    ),
    (
        "attachmentnames:passwd",
        false,
        Hits("1000001:2000001:10@alice"),
    ),
    (
        "attachmentnames:\"q3 report\"",
        false,
        Hits("1000001:1000002:1@alice 1000001:1000002:1@bob"),
    ),
    // Folders and mailboxes.
    (
        "folder:\"Telegram Archiver\" subject:global",
        false,
        Hits(
            "0:7700001:1@carol 0:7700001:2@carol 0:7700001:3@carol 0:7700001:4@carol 0:7700001:5@carol \
             0:7700001:6@carol 0:7700001:7@carol 0:7700001:8@carol 0:7700001:9@carol",
        ),
    ),
    ("folder:inbox", false, Hits("")),
    (
        "folder:quarantine",
        false,
        Hits("1000001:1000006:1@q 1000001:1000006:2@q 1000001:1000006:3@q 1000001:1000006:4@q"),
    ),
    (
        "mailbox:erin.evans@corp.example",
        false,
        Hits("0:3000001:-999000000@erin 0:3000001:-999000001@erin"),
    ),
    (
        "mailbox:bob.brown@corp.example AND kind:call",
        false,
        Hits("1000001:1000002:3@bob 1000001:1000002:4@bob 1000001:2000001:6@bob"),
    ),
    (
        "kind:call subject:\"bob brown\" NOT mailbox:bob.brown@corp.example",
        false,
        Hits("1000001:1000002:3@alice 1000001:1000002:4@alice"),
    ),
    (
        "mailbox:carol* sent<2025-01-02",
        false,
        Hits("0:7700001:1@carol 0:7700001:2@carol 0:7700001:3@carol"),
    ),
    // Chat-native properties.
    (
        "chat:\"market watch\"",
        false,
        Hits(
            "0:3000001:-999000000@alice 0:3000001:-999000000@erin 0:3000001:-999000001@alice \
             0:3000001:-999000001@erin 0:3000001:1@alice 0:3000001:2@alice",
        ),
    ),
    (
        "chat:7700001 sent:2025-01-03",
        false,
        Hits("0:7700001:6@carol 0:7700001:7@carol"),
    ),
    (
        "chattype:public_supergroup",
        true,
        Hits(
            "0:3000001:-999000000@alice 0:3000001:-999000000@erin 0:3000001:-999000001@alice \
             0:3000001:-999000001@erin 0:3000001:1@alice 0:3000001:2@alice \
             0:9888888888:-999675685@samples 0:9888888888:-999678449@samples \
             0:9888888888:-999678450@samples 0:9888888888:1@samples",
        ),
    ),
    (
        "event:pin_message subject:\"deal team\"",
        false,
        Hits("1000001:2000001:5@alice"),
    ),
    (
        "event:migrate* subject:\"market watch\"",
        false,
        Hits("0:3000001:-999000000@alice 0:3000001:-999000000@erin 0:3000001:1@alice"),
    ),
    (
        "edited:true subject:\"frank fox\"",
        false,
        Hits("1000001:1000006:2@q"),
    ),
    (
        "edited:true subject:\"bob brown\"",
        false,
        Hits("1000001:1000002:2@alice 1000001:1000002:2@bob"),
    ),
    (
        "deleted:true",
        false,
        Hits("0:5550001:2@hana 0:5550001:2@ivan"),
    ),
    (
        "call:missed",
        false,
        Hits("1000001:1000002:4@alice 1000001:1000002:4@bob"),
    ),
    (
        "duration>=1000 subject:\"deal team\"",
        false,
        Hits("1000001:2000001:6@alice 1000001:2000001:6@bob"),
    ),
    (
        "duration:125",
        false,
        Hits("1000001:1000002:3@alice 1000001:1000002:3@bob"),
    ),
    // `prop: value` with a space is free text: the words "to" and "alice".
    ("to: alice", true, Hits("0:10001:51@samples")),
];

/// Queries that must not parse, with the column the error points at.
const ERRORS: &[(&str, usize)] = &[
    ("from:(", 7),
    ("\"unterminated", 1),
    ("ab*", 1),
    ("sent>=notadate", 7),
    ("size:abc", 6),
    ("(a OR b", 1),
    ("a AND", 3),
    ("hasattachment:maybe", 15),
    ("a NEAR(x) b", 8),
    ("nosuch:thing", 1),
];

fn hits(a: &Archive, query: &str) -> (BTreeSet<String>, u64) {
    let mut set = BTreeSet::new();
    let mut total = None;
    for v in a.json_lines(&["search", query, "--limit", "100000"]) {
        match v.get("item") {
            Some(item) => {
                let mailbox = v["mailbox"].as_str().unwrap_or_default();
                let local = mailbox.split(['@', '.']).next().unwrap_or_default();
                let local = if local.is_empty() { "q" } else { local };
                let id = item.as_str().unwrap_or_default().trim_start_matches("tg:");
                assert!(
                    set.insert(format!("{id}@{local}")),
                    "{query}: a hit repeats"
                );
            }
            None => total = v["total"].as_u64(),
        }
    }
    (set, total.expect("a total line"))
}

#[test]
fn kql_table_on_fixtures_and_samples() {
    let a = Archive::new();
    let f = |p: &str| fixture(p).display().to_string();
    let users = f("users.csv");
    a.ok(&["import", &f("exports/full-account"), "--mapping", &users]);
    a.ok(&[
        "import",
        &f("exports/single-chat-edited"),
        "--mapping",
        &users,
        "--owner",
        "1000001",
    ]);
    a.ok(&[
        "import",
        &f("botapi/updates.jsonl"),
        "--mapping",
        &f("botapi/users.csv"),
    ]);
    a.ok(&[
        "import",
        &f("exports/multilingual"),
        "--mailbox",
        "Carol.Chen@corp.example",
    ]);
    let samples = samples_dir();
    if let Some(dir) = &samples {
        let mut args = vec!["import".to_string()];
        for e in std::fs::read_dir(dir).expect("samples") {
            let p = e.expect("entry").path();
            if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("json" | "html")
            ) {
                args.push(p.display().to_string());
            }
        }
        args.extend(["--mailbox".into(), "samples@corp.example".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        a.ok(&args);
    }
    // Every copy: the sum of the folder counts plus the quarantine.
    let filed: u64 = a
        .json_lines(&["mailboxes"])
        .iter()
        .map(|r| r["items"].as_u64().expect("items"))
        .sum();
    let quarantined = a.json_lines(&["quarantine"]).len() as u64;
    assert!(CASES.len() >= 60, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for (query, uses_samples, want) in CASES {
        if *uses_samples && samples.is_none() {
            continue;
        }
        let (got, total) = hits(&a, query);
        assert_eq!(total, got.len() as u64, "{query}: total vs hits listed");
        match want {
            Hits(list) => {
                let want: BTreeSet<String> = list.split_whitespace().map(String::from).collect();
                if got != want {
                    failures.push(format!(
                        "{query}\n   missing: {:?}\n   extra:   {:?}",
                        want.difference(&got).collect::<Vec<_>>(),
                        got.difference(&want).collect::<Vec<_>>()
                    ));
                }
            }
            Everything => {
                if total != filed + quarantined {
                    failures.push(format!(
                        "{query}: {total} copies, the archive holds {}",
                        filed + quarantined
                    ));
                }
            }
        }
    }
    for (query, column) in ERRORS {
        let out = a.run(&["search", query]);
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !err.contains(&format!("column {column}:")) {
            failures.push(format!(
                "{query}: want a parse error at column {column}, got {err}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} KQL case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // --count and --mailbox agree with the listing.
    let n = a.ok(&[
        "search",
        "kind:call",
        "--count",
        "--mailbox",
        "Bob.Brown@corp.example",
    ]);
    assert_eq!(n.trim(), "3");
    // Searches are on the audit trail.
    let audit = a.json_lines(&["audit"]);
    assert!(audit.iter().any(|e| e["action"] == "search"));
    // Newest first (the default): any top N is the start of the full
    // listing, which runs from the newest date down.
    let listing = |limit: &str| -> Vec<(String, String, String)> {
        a.json_lines(&["search", "kind:externaldata", "--limit", limit])
            .into_iter()
            .filter(|v| v.get("item").is_some())
            .map(|v| {
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                (s("date"), s("item"), s("mailbox"))
            })
            .collect()
    };
    let all = listing("100000");
    assert!(all.len() > 100, "{}", all.len());
    assert!(all.windows(2).all(|w| w[0].0 >= w[1].0), "not newest first");
    for n in [1usize, 3, 10, 49, 50, 51, 100] {
        assert_eq!(listing(&n.to_string()), all[..n], "top {n}");
    }
    // Store and index agree.
    a.ok(&["verify"]);
}

#[test]
fn index_is_rebuilt_and_caught_up_from_the_store() {
    let a = Archive::new();
    let users = fixture("users.csv").display().to_string();
    a.ok(&[
        "import",
        &fixture("exports/full-account").display().to_string(),
        "--mapping",
        &users,
    ]);
    let count = |q: &str| {
        a.ok(&["search", q, "--count"])
            .trim()
            .parse::<u64>()
            .expect("count")
    };
    let before = count("kind:externaldata");
    assert!(before > 0);
    // A query may begin with `-` (an excluded term) without `--` before it,
    // and options still parse after it.
    let excluded = count("-deal");
    assert!(excluded > 0 && excluded < before);
    assert_eq!(excluded, count("NOT deal"));
    let out = a.ok(&["search", "-deal", "--json", "--limit", "1"]);
    assert_eq!(out.lines().count(), 2, "one hit and the total: {out}");
    // A missing index is rebuilt from the store on the next open.
    std::fs::remove_dir_all(a.path().join("index")).expect("remove index");
    assert_eq!(count("kind:externaldata"), before);
    // reindex rebuilds in place.
    let out = a.json(&["reindex"]);
    assert_eq!(out["documents"].as_u64(), Some(27));
    assert_eq!(count("kind:externaldata"), before);
    // A damaged index (its files removed behind its back) is reported by
    // verify, and reindex repairs it.
    for e in std::fs::read_dir(a.path().join("index")).expect("index dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "idx") {
            std::fs::write(&p, b"garbage").expect("damage");
        }
    }
    let out = a.run(&["verify"]);
    assert!(!out.status.success(), "verify must fail on a damaged index");
    a.ok(&["reindex"]);
    a.ok(&["verify"]);
}

/// Once the index has committed the store's changes, the change log keeps
/// only its latest row, emptied: none of what was applied stays in the
/// catalogue, and the next import's changes still reach the index.
#[test]
fn the_change_log_keeps_nothing_the_index_committed() {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mailbox", "m@corp.example"],
    );
    let logged = || {
        let store = tgvault::store::Archive::open_existing(a.path()).expect("open");
        (
            store.last_change().unwrap(),
            store.changes_after(0, 1000).unwrap().len(),
        )
    };
    let (last, left) = logged();
    assert!(last > 0);
    assert_eq!(left, 0, "applied changes left in the log");
    let count = || {
        a.ok(&["search", "kind:externaldata", "--count"])
            .trim()
            .to_string()
    };
    let before = count();
    a.import(
        &[&fixture("exports/multilingual")],
        &["--mailbox", "m@corp.example"],
    );
    assert_ne!(count(), before);
    let (again, left) = logged();
    assert!(again > last);
    assert_eq!(left, 0);
}

/// Items without a date leave a segment with no date column: searches still
/// run newest first (undated last), by relevance, and by date range.
#[test]
fn an_archive_whose_items_have_no_date_is_searched() {
    let a = Archive::new();
    let export = a.path().with_extension("nodate.json");
    std::fs::write(
        &export,
        r#"{"name": "No dates", "type": "personal_chat", "id": 77, "messages": [
 {"id": 1, "type": "message", "from": "A", "from_id": "user5", "text": "alpha contract"},
 {"id": 2, "type": "message", "from": "B", "from_id": "user6", "text": "beta contract"}]}"#,
    )
    .expect("write export");
    a.ok(&[
        "import",
        export.to_str().expect("utf-8"),
        "--mailbox",
        "desk@corp.example",
    ]);
    let (set, total) = hits(&a, "contract");
    assert_eq!(total, 2, "{set:?}");
    assert_eq!(hits(&a, "beta OR alpha").1, 2);
    assert_eq!(hits(&a, "sent<2100-01-01").1, 0);
    assert_eq!(hits(&a, "NOT sent<2100-01-01").1, 2);
    // Dated items join them: a range finds those alone, the undated sort last.
    a.ok(&[
        "import",
        &fixture("exports/single-chat").display().to_string(),
        "--mailbox",
        "desk@corp.example",
    ]);
    let dated = hits(&a, "sent>1990-01-01").1;
    assert!(dated > 0);
    let all = a.json_lines(&["search", "NOT nosuchword", "--limit", "100000"]);
    let dates: Vec<Option<&str>> = all
        .iter()
        .filter(|v| v.get("item").is_some())
        .map(|v| v["date"].as_str())
        .collect();
    assert_eq!(dates.len() as u64, dated + 2);
    assert!(dates[0].is_some(), "{dates:?}");
    let first_undated = dates
        .iter()
        .position(|d| d.is_none())
        .expect("undated hits");
    assert!(
        dates[first_undated..].iter().all(|d| d.is_none()),
        "{dates:?}"
    );
}

/// The search executor (date maps, exclusions as bitsets, term-at-a-time
/// and pruned ranking) against a plain walk of every match, on a generated
/// archive whose documents are not in date order (chat after chat) and span
/// two imports, the second replacing documents of the first.
#[test]
fn newest_first_and_relevance_agree_with_a_full_walk() {
    use tantivy::collector::TopDocs;
    use tgvault::index::Index;
    use tgvault::index::search::{Location, SearchOptions, Sort};
    use tgvault::synth::{SynthSpec, write_export};

    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = tgvault::store::Archive::open(&tmp.path().join("archive")).expect("archive");
    for (seed, messages) in [(3, 6_000), (11, 2_500)] {
        let export = tmp.path().join(format!("export-{seed}"));
        let spec = SynthSpec {
            messages,
            chats: 12,
            attachment_permille: 0,
            max_attachment_bytes: 1,
            seed,
        };
        write_export(&export, &spec).expect("export");
        let mut opts = tgvault::import::ImportOptions::new(tgvault::mapping::Mapping::default());
        opts.custodian_address = Some("custodian@corp.example".into());
        let clock = || 0i64;
        let ctx = tgvault::import::RunContext {
            actor: "test".into(),
            args: vec![],
            clock: &clock,
        };
        let mut index = Index::open(&archive).expect("index");
        index
            .follow(&archive, |tell| {
                opts.committed = Some(tell);
                tgvault::import::import(&archive, &[export], &opts, &ctx)
            })
            .expect("import");
        index.close().expect("close");
    }
    let index = Index::open(&archive).expect("index");
    // The second export holds the same account's chats with other texts:
    // its items are new versions, whose documents replace the first ones.
    let deleted: u32 = index
        .searcher()
        .unwrap()
        .segment_readers()
        .iter()
        .map(|s| s.num_deleted_docs())
        .sum();
    assert!(deleted > 0, "no document was replaced");
    let date = |id: &tgvault::model::ItemId| -> i64 {
        archive
            .current(id)
            .expect("read")
            .and_then(|i| i.date)
            .unwrap_or(i64::MIN)
    };
    for kql in [
        "deal",
        "deal OR report",
        "(deal OR price) AND NOT meeting",
        "NOT deal",
        "\"deal report\"",
        "bud*",
        "deal AND client",
        "kind:externaldata",
        "deal NOT mailbox:nobody@corp.example",
    ] {
        let q = tgvault::query::parse(kql).expect("parse");
        let mut every: Vec<(i64, tgvault::model::ItemId, Location)> = Vec::new();
        index
            .for_each_match(&archive, &q, &[], |id, loc| {
                every.push((date(&id), id, loc));
                Ok(())
            })
            .expect("walk");
        assert!(!every.is_empty(), "{kql}: matches nothing");
        let count = index.count(&archive, &q, &[]).expect("count");
        assert_eq!(count, every.len() as u64, "{kql}: count");
        every.sort_by_key(|e| std::cmp::Reverse(e.0));
        let search = |limit, sort| {
            let opts = SearchOptions {
                mailboxes: vec![],
                limit,
                sort,
            };
            index.search(&archive, &q, &opts).expect("search")
        };
        for limit in [1, 50, 700] {
            let r = search(limit, Sort::Date);
            assert_eq!(r.total, every.len() as u64, "{kql}: total");
            let got: Vec<i64> = r.hits.iter().map(|h| date(&h.id)).collect();
            let want: Vec<i64> = every.iter().take(limit).map(|e| e.0).collect();
            assert_eq!(got, want, "{kql}: the {limit} newest dates");
            for h in &r.hits {
                assert!(
                    every.iter().any(|e| e.1 == h.id && e.2 == h.location),
                    "{kql}: {} is not a match",
                    h.id
                );
            }
        }
        // Relevance: the same scores as tantivy's own top-k on the query
        // (a location query runs per folder, which the highlight query
        // does not, so only its total is compared).
        if kql.contains("mailbox:") {
            continue;
        }
        let searcher = index.searcher().unwrap();
        let tq = index.highlight_query(&q).expect("compile");
        let top = searcher
            .search(&*tq, &TopDocs::with_limit(50).order_by_score())
            .expect("top docs");
        let r = search(50, Sort::Relevance);
        assert_eq!(r.total, every.len() as u64, "{kql}: total by relevance");
        let got: Vec<f32> = r.hits.iter().map(|h| h.score).collect();
        let want: Vec<f32> = top.iter().map(|(s, _)| *s).collect();
        assert_eq!(got.len(), want.len(), "{kql}: relevance hits");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{kql}: scores {got:?} vs {want:?}"
            );
        }
    }
}
