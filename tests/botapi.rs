//! Live capture through the Bot API: edits become versions, deletions become
//! events linked to the originals, which stay.

use crate::common::*;

#[test]
fn edits_become_versions_and_deletions_become_linked_events() {
    let a = Archive::new();
    let updates = fixture("botapi/updates.jsonl");
    let map = fixture("botapi/users.csv");
    let rep = a.import(&[&updates], &["--mapping", map.to_str().unwrap()]);
    let t = totals(&rep);
    assert_eq!(rep["files"][0]["format"], "telegram-bot-api");
    assert_eq!(n(t, "available_from_source"), 6, "{t}");
    assert_eq!(n(t, "not_items"), 1, "{t}");
    assert_eq!(n(t, "deletions"), 1, "{t}");
    // The edit, in Hana's mailbox: the update does not name the business
    // account's owner (Ivan), so only `--mailbox` would add him as custodian.
    assert_eq!(n(t, "new_versions"), 1, "{t}");
    assert_eq!(n(t, "failed"), 0, "{t}");
    assert_balanced(t);

    // The edit is a second version of message 1; the first stays.
    let shown = a.json(&["show", "tg:0:5550001:1"]);
    let v = shown["versions"].as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(
        v[0]["item"]["body"]["Message"]["text"],
        "🔥 urgent: can we move the settlement call?"
    );
    assert_eq!(
        v[1]["item"]["body"]["Message"]["text"],
        "🔥 urgent: can we move the settlement call to Friday?"
    );
    assert_eq!(v[1]["item"]["edited"], 1717232520);
    // Entity offsets count UTF-16 units: the emoji is two.
    assert_eq!(
        v[0]["item"]["body"]["Message"]["entities"][0]["text"],
        "urgent"
    );

    // The deletion is its own item, linked to the original, which is still there.
    let del = a.json(&["show", "tg:0:5550001:2:deleted"]);
    let item = &del["versions"][0]["item"];
    assert_eq!(item["body"]["Deletion"]["target"]["message"], 2);
    let orig = a.json(&["show", "tg:0:5550001:2"]);
    assert_eq!(orig["deleted_by"], "tg:0:5550001:2:deleted");
    assert!(
        a.ok(&["show", "tg:0:5550001:2"])
            .contains("deleted at the source: see tg:0:5550001:2:deleted")
    );
    assert_eq!(
        orig["versions"][0]["item"]["body"]["Message"]["text"],
        "Yes, let us not put this in writing"
    );
    // It is filed wherever the original was.
    let places = |v: &serde_json::Value| {
        let mut m: Vec<String> = v["locations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mailbox"].as_str().unwrap().to_string())
            .collect();
        m.sort();
        m
    };
    assert_eq!(places(&del), places(&orig));
    assert_eq!(
        places(&orig),
        vec!["hana.hill@corp.example", "ivan.iverson@corp.example"]
    );

    // File ids only: metadata kept, with the reason.
    let photo = a.json(&["show", "tg:0:5550001:3"]);
    let att = &photo["versions"][0]["item"]["attachments"][0];
    assert_eq!(att["width"], 1280);
    assert!(att["missing"].as_str().unwrap().contains("AgAD-large"));
    let doc = a.json(&["show", "tg:0:-1001234567890:77"]);
    assert_eq!(
        doc["versions"][0]["item"]["attachments"][0]["file_name"],
        "positions.xlsx"
    );
    assert_eq!(doc["versions"][0]["item"]["chat"]["name"], "Trading Desk");

    // Capturing the same updates again adds nothing.
    let again = a.import(&[&updates], &["--mapping", map.to_str().unwrap()]);
    let t2 = totals(&again);
    assert_eq!(
        (n(t2, "imported"), n(t2, "partially_imported")),
        (0, 0),
        "{t2}"
    );
    assert_balanced(t2);
}

#[test]
fn a_broken_update_line_is_named_and_nothing_lands() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("capture.jsonl");
    std::fs::write(&f, "{\"update_id\":1,\"message\":{\"message_id\":1,\"chat\":{\"id\":5,\"type\":\"private\"},\"date\":1}}\n{\"update_id\":2,\n").unwrap();
    let a = Archive::new();
    let out = a.run(&["import", f.to_str().unwrap(), "--mailbox", "x@corp.example"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("capture.jsonl") && err.contains("line 2"),
        "{err}"
    );
    assert!(a.json_lines(&["mailboxes"]).is_empty());
}
