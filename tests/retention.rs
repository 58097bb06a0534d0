//! Holds, cases and retention end to end through the CLI: held copies survive
//! a retention run, the others go (content, blobs and search documents) and
//! leave tombstones, `explain` says why, and the audit trail tells the story.

use crate::common::*;

fn show_code(a: &Archive, item: &str) -> Option<i32> {
    a.run(&["show", item]).status.code()
}

#[test]
fn case_hold_by_query_survives_retention_and_the_audit_tells_the_story() {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    a.ok(&["--actor", "counsel", "case", "create", "Merger"]);
    a.ok(&[
        "--actor",
        "counsel",
        "case",
        "hold",
        "add",
        "Merger",
        "--mailbox",
        "alice.adams@corp.example",
        "--query",
        "merger OR \"deal room\"",
    ]);
    a.ok(&[
        "--actor",
        "records",
        "hold",
        "set",
        "erin.evans@corp.example",
    ]);
    a.ok(&[
        "--actor",
        "records",
        "retention",
        "add",
        "purge",
        "--delete-after",
        "365",
    ]);
    a.ok(&[
        "--actor",
        "records",
        "retention",
        "add",
        "keep-bob",
        "--retain",
        "3650",
        "--mailbox",
        "bob.brown@corp.example",
    ]);

    // Explain, before anything happens.
    let why = a.json_lines(&["explain", "tg:1000001:1000002:11", "--now", "2030-01-01"]);
    let alice = why
        .iter()
        .find(|d| d["mailbox"] == "alice.adams@corp.example")
        .unwrap();
    assert_eq!(alice["delete"], false);
    assert!(
        alice["holds"][0]
            .as_str()
            .unwrap()
            .contains("case Merger hold 1")
    );
    let bob = why
        .iter()
        .find(|d| d["mailbox"] == "bob.brown@corp.example")
        .unwrap();
    assert_eq!(bob["delete"], false);
    assert_eq!(
        bob["principle"],
        "principle 1: retention wins over deletion"
    );
    let why = a.json_lines(&["explain", "tg:1000001:1000002:2", "--now", "2030-01-01"]);
    let alice = why
        .iter()
        .find(|d| d["mailbox"] == "alice.adams@corp.example")
        .unwrap();
    assert_eq!(alice["delete"], true);
    assert_eq!(alice["by"], "purge");

    // A dry run changes nothing.
    let dry = a.json(&["retention", "run", "--dry-run", "--now", "2030-01-01"]);
    assert_eq!(dry["deleted"].as_array().unwrap().len(), 24);
    assert_eq!(
        a.ok(&["search", "kind:externaldata", "--count"]).trim(),
        "42"
    );

    let done = a.json(&[
        "--actor",
        "records",
        "retention",
        "run",
        "--now",
        "2030-01-01",
    ]);
    assert_eq!(done["copies"], 42);
    assert_eq!(done["deleted"].as_array().unwrap().len(), 24);
    assert_eq!(done["held"], 4);
    // Held copies survive: the query matches at Alice's, all of Erin's.
    for kept in [
        "tg:1000001:1000002:11",
        "tg:1000001:1000002:7",
        "tg:0:3000001:-999000000",
    ] {
        assert_eq!(show_code(&a, kept), Some(0), "{kept} must survive");
    }
    // Deleted everywhere: the content is gone, and so is its search document.
    assert_eq!(show_code(&a, "tg:1000001:2000001:2"), Some(2));
    assert_eq!(a.ok(&["search", "Привет", "--count"]).trim(), "0");
    assert_eq!(
        a.ok(&["search", "kind:externaldata", "--count"]).trim(),
        "18"
    );
    // Bob's copies are retained; Alice's copy of the same item is gone.
    let bobs = a.json_lines(&["ls", "bob.brown@corp.example"]);
    assert_eq!(bobs.len(), 13);
    assert_eq!(
        a.ok(&["search", "\"numbers look good\"", "--count"]).trim(),
        "1"
    );

    // Re-importing the export does not bring disposed copies back.
    let again = a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    assert_eq!(n(totals(&again), "skipped"), 42);
    let v = a.json(&["verify"]);
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["checked"]["tombstones"], 24);

    // The audit trail tells the whole story, with each deleted key.
    let audit = a.json_lines(&["audit"]);
    let actions: Vec<&str> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "import",
        "case create",
        "case hold add",
        "hold set",
        "retention add",
        "retention run (dry)",
        "retention run",
    ] {
        assert!(actions.contains(&want), "no '{want}' in {actions:?}");
    }
    let run = audit
        .iter()
        .find(|e| e["action"] == "retention run")
        .unwrap();
    assert_eq!(run["actor"], "records");
    let deleted: Vec<&str> = run["params"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p[0] == "deleted")
        .map(|p| p[1].as_str().unwrap())
        .collect();
    assert_eq!(deleted.len(), 24);
    assert!(deleted.contains(&"tg:1000001:2000001:2 alice.adams@corp.example / Telegram Archiver"));

    // Release everything: the rest goes, blobs with it (Bob's retention still
    // runs until 2034; at 2035 it has ended).
    a.ok(&["case", "close", "Merger"]);
    a.ok(&["hold", "clear", "erin.evans@corp.example"]);
    let done = a.json(&["retention", "run", "--now", "2035-01-01"]);
    // Only the undated item stays (no period can be counted for it).
    assert_eq!(done["kept"], 1, "{done}");
    let v = a.json(&["verify"]);
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["checked"]["blobs"], 0, "freed blobs are removed");
    assert_eq!(
        a.ok(&["search", "kind:externaldata", "--count"]).trim(),
        "1"
    );
}

#[test]
fn everything_past_its_period_goes_and_bad_requests_are_refused() {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/single-chat")],
        &["--mailbox", "custodian@corp.example"],
    );
    a.ok(&["retention", "add", "purge", "--delete-after", "1"]);
    let done = a.json(&["retention", "run", "--now", "2099-01-01"]);
    assert!(!done["deleted"].as_array().unwrap().is_empty());
    a.ok(&["verify"]);
    // Bad usage is refused, naming the problem.
    let out = a.run(&["retention", "add", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = a.run(&["case", "hold", "add", "nosuch", "--mailbox", "a@b.example"]);
    assert_eq!(out.status.code(), Some(2));
    let out = a.run(&["hold", "clear", "nobody@corp.example"]);
    assert_eq!(out.status.code(), Some(2));
}
