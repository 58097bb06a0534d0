//! Conformance: every real export in `../shared/samples/telegram-export/` imports,
//! with the counts read from each file by hand, and imports again as nothing new.

use crate::common::*;

struct Expect {
    file: &'static str,
    messages: u64,
    service_events: u64,
    calls: u64,
    unsupported: u64,
    attachments: u64,
    /// Attachments whose content is not stored: placeholders, and paths to media
    /// files the sample repositories did not keep.
    without_content: u64,
}

const EXPECT: &[Expect] = &[
    Expect {
        file: "Tkonverter__examples__result.SYNTHETIC.json",
        messages: 25,
        service_events: 57,
        calls: 4,
        unsupported: 1,
        attachments: 12,
        without_content: 12,
    },
    Expect {
        file: "chat-analytics__tests_samples_telegram__DM_2A_7M.json",
        messages: 6,
        service_events: 1,
        calls: 1,
        unsupported: 0,
        attachments: 2,
        without_content: 2,
    },
    Expect {
        file: "chat-analytics__tests_samples_telegram__MultiChat_2C_6M.SYNTHETIC.json",
        messages: 5,
        service_events: 0,
        calls: 1,
        unsupported: 0,
        attachments: 1,
        without_content: 1,
    },
    Expect {
        file: "langchain-community__telegram_chat_json__result.json",
        messages: 6,
        service_events: 0,
        calls: 0,
        unsupported: 0,
        attachments: 0,
        without_content: 0,
    },
    Expect {
        file: "tele_dashboard__sample.json",
        messages: 250,
        service_events: 6,
        calls: 0,
        unsupported: 0,
        attachments: 46,
        without_content: 46,
    },
    Expect {
        file: "telegram-chat-parser__tests_data__private_channel.json",
        messages: 5,
        service_events: 2,
        calls: 0,
        unsupported: 0,
        attachments: 0,
        without_content: 0,
    },
    Expect {
        file: "telegram-chat-parser__tests_data__public_supergroup.json",
        messages: 1,
        service_events: 3,
        calls: 0,
        unsupported: 0,
        attachments: 0,
        without_content: 0,
    },
    Expect {
        file: "telegram-chat-parser__tests_data__saved.json",
        messages: 20,
        service_events: 1,
        calls: 0,
        unsupported: 0,
        attachments: 9,
        without_content: 9,
    },
];

#[test]
fn every_json_sample_imports_with_its_counts_and_reimports_as_nothing() {
    let Some(dir) = samples_dir() else { return };
    let mut seen = 0;
    for e in EXPECT {
        let a = Archive::new();
        let path = dir.join(e.file);
        let rep = a.import(&[&path], &["--mailbox", "custodian@corp.example"]);
        let t = totals(&rep);
        let what = format!("{}: {t}", e.file);
        assert_eq!(n(t, "messages"), e.messages, "{what}");
        assert_eq!(n(t, "service_events"), e.service_events, "{what}");
        assert_eq!(n(t, "calls"), e.calls, "{what}");
        assert_eq!(n(t, "unsupported"), e.unsupported, "{what}");
        assert_eq!(n(t, "attachments"), e.attachments, "{what}");
        assert_eq!(
            n(t, "attachments_without_content"),
            e.without_content,
            "{what}"
        );
        let items = e.messages + e.service_events + e.calls + e.unsupported;
        assert_eq!(n(t, "available_from_source"), items, "{what}");
        assert_eq!(n(t, "failed"), 0, "{what}");
        assert_eq!(n(t, "quarantined"), 0, "{what}");
        assert_eq!(
            n(t, "imported") + n(t, "partially_imported"),
            items,
            "{what}"
        );
        assert_balanced(t);
        // Every item is filed once in the custodian's mailbox.
        let listed = a.json_lines(&["ls", "custodian@corp.example"]);
        assert_eq!(listed.len() as u64, items, "{what}");

        let again = a.import(&[&path], &["--mailbox", "custodian@corp.example"]);
        let t2 = totals(&again);
        assert_eq!(
            n(t2, "imported") + n(t2, "partially_imported"),
            0,
            "re-import of {}: {t2}",
            e.file
        );
        assert_eq!(n(t2, "skipped"), items, "re-import of {}: {t2}", e.file);
        assert_balanced(t2);
        seen += 1;
    }
    // Every JSON sample in the folder is covered by a row above.
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(seen, on_disk, "a JSON sample has no expected counts");
}

#[test]
fn duplicate_ids_are_all_kept_and_reported() {
    let Some(dir) = samples_dir() else { return };
    let a = Archive::new();
    let rep = a.import(
        &[&dir.join("tele_dashboard__sample.json")],
        &["--mailbox", "custodian@corp.example"],
    );
    let anomalies = rep["files"][0]["anomalies"].as_array().unwrap();
    // The first notes of a kind are shown whole, naming their item; the
    // rest are counted under the kind.
    let find = |needle: &str| {
        let matching: Vec<&serde_json::Value> = anomalies
            .iter()
            .filter(|x| x["what"].as_str().unwrap().contains(needle))
            .collect();
        (!matching.is_empty()).then(|| matching.iter().map(|x| n(x, "count")).sum::<u64>())
    };
    assert!(
        anomalies
            .iter()
            .any(|x| x["what"].as_str().unwrap().starts_with("tg:")),
        "notes name their item: {anomalies:?}"
    );
    assert_eq!(find("duplicate message id"), Some(255));
    assert_eq!(find("placeholder"), Some(256));
    assert!(find("is not a Telegram id").is_some());
    // The 256 items share one message id; the 2nd..256th carry a disambiguator.
    let items = a.json_lines(&["ls", "custodian@corp.example"]);
    assert_eq!(items.len(), 256);
    let ids: std::collections::BTreeSet<String> = items
        .iter()
        .map(|i| i["item"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 256);
    assert!(ids.contains("tg:0:69420:69420") && ids.contains("tg:0:69420:69420:255"));
    // The placeholder epoch made the importer fall back to the local date.
    let shown = a.json(&["show", "tg:0:69420:69420:1"]);
    let item = &shown["versions"][0]["item"];
    assert_eq!(item["date"], 1647861071); // 2022-03-21T11:11:11 read as UTC
    assert_eq!(item["time_basis"]["LocalTime"]["zone"], "UTC");
}

#[test]
fn full_account_sample_resolves_its_owner_and_call_direction() {
    let Some(dir) = samples_dir() else { return };
    let a = Archive::new();
    let csv = a.path().join("users.csv");
    std::fs::write(
        &csv,
        "mobile_number,mailbox,telegram_user_id\n,test.user@corp.example,100000001\n",
    )
    .unwrap();
    let rep = a.import(
        &[&dir.join("chat-analytics__tests_samples_telegram__MultiChat_2C_6M.SYNTHETIC.json")],
        &["--mapping", csv.to_str().unwrap()],
    );
    let t = totals(&rep);
    assert_eq!(n(t, "quarantined"), 0, "{t}");
    assert_eq!(a.json_lines(&["ls", "test.user@corp.example"]).len(), 6);
    // Charlie (not the owner) started the call in the group: incoming.
    let call = a.json(&["show", "tg:100000001:700000002:2003"]);
    let body = &call["versions"][0]["item"]["body"]["Call"];
    assert_eq!(body["direction"], "Incoming");
    assert_eq!(body["duration_seconds"], 120);
    assert_eq!(body["outcome"], "unknown");
}

#[test]
fn the_html_export_imports_and_a_zone_fixes_its_dst_error() {
    let Some(dir) = samples_dir() else { return };
    let html = dir.join("langchain-community__telegram_chat_html__messages.html");
    let a = Archive::new();
    let rep = a.import(&[&html], &["--mailbox", "custodian@corp.example"]);
    let t = totals(&rep);
    assert_eq!(
        (n(t, "messages"), n(t, "imported"), n(t, "failed")),
        (4, 4, 0),
        "{t}"
    );
    assert_eq!(rep["files"][0]["format"], "telegram-desktop-html");
    let items = a.json_lines(&["ls", "custodian@corp.example"]);
    assert_eq!(items.len(), 4);
    // The fourth message is "joined": its sender comes from the third.
    assert_eq!(items[3]["from"], "Jimmeny Marvelton");
    assert_eq!(items[1]["summary"], "Hi nemesis");
    let again = a.import(&[&html], &["--mailbox", "custodian@corp.example"]);
    assert_eq!(n(totals(&again), "skipped"), 4);

    // The title says UTC-08:00 for a summer date in California (a DST error);
    // read in the real zone, the first message's time matches the JSON export
    // of the same chat (date_unixtime 1692821483).
    let b = Archive::new();
    b.import(
        &[&html],
        &[
            "--mailbox",
            "custodian@corp.example",
            "--tz",
            "America/Los_Angeles",
        ],
    );
    let first = &b.json_lines(&["ls", "custodian@corp.example"])[0];
    assert_eq!(first["date"], "2023-08-23T20:11:23Z");
    let json = Archive::new();
    json.import(
        &[&dir.join("langchain-community__telegram_chat_json__result.json")],
        &["--mailbox", "custodian@corp.example"],
    );
    assert_eq!(
        json.json_lines(&["ls", "custodian@corp.example"])[0]["date"],
        "2023-08-23T20:11:23Z"
    );
}
