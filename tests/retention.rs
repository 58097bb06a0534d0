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
    // Each deleting transaction's entry lists what it deleted.
    let deleted: Vec<&str> = audit
        .iter()
        .filter(|e| e["action"] == "retention delete")
        .flat_map(|e| e["params"].as_array().unwrap())
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
    // Deleting destroys: the content is gone from the files, not only unlinked.
    let stored = |text: &str| {
        std::fs::read_dir(a.path().join("packs"))
            .unwrap()
            .any(|e| crate::common::holds(&e.unwrap().path(), text.as_bytes()))
    };
    assert!(stored("Can you confirm the wire instructions?"));
    a.ok(&["retention", "add", "purge", "--delete-after", "1"]);
    let done = a.json(&["retention", "run", "--now", "2099-01-01"]);
    assert!(!done["deleted"].as_array().unwrap().is_empty());
    assert!(
        a.json_lines(&["mailboxes"]).is_empty(),
        "every copy was due"
    );
    assert!(!stored("Can you confirm the wire instructions?"));
    assert!(!stored("Confirmed, account ending 4471"));
    a.ok(&["verify"]);
    // Bad usage is refused, naming the problem.
    let out = a.run(&["retention", "add", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = a.run(&["case", "hold", "add", "nosuch", "--mailbox", "a@b.example"]);
    assert_eq!(out.status.code(), Some(2));
    let out = a.run(&["hold", "clear", "nobody@corp.example"]);
    assert_eq!(out.status.code(), Some(2));
    // Periods are whole days, at least one (clap refuses these before any
    // request is made, so they are not on the trail).
    for args in [
        &["retention", "add", "now", "--delete-after", "0"][..],
        &["retention", "add", "now", "--retain", "0"],
        &["hold", "set", "alice.adams@corp.example", "--days", "0"],
    ] {
        assert_eq!(a.run(args).status.code(), Some(2), "{args:?}");
    }
    // Policies list in words.
    let listed = a.ok(&["retention", "list"]);
    assert!(
        listed.contains("purge") && listed.contains("delete after 1 day "),
        "{listed}"
    );
    // Each refusal is on the audit trail, with who asked and why it failed.
    let refused: Vec<serde_json::Value> = a
        .json_lines(&["audit"])
        .into_iter()
        .filter(|e| e["action"].as_str().unwrap().ends_with(" refused"))
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused[2]["outcome"]
            .as_str()
            .unwrap()
            .contains("no litigation hold")
    );
}

mod schedules {
    //! Random schedules of holds, releases, policies and runs over a real
    //! archive: no copy under a hold is ever deleted, and every copy whose
    //! deletion is due and that no hold covers is deleted by the first run
    //! after it falls due. The holds are judged here by an independent
    //! oracle (mailbox, days, and whether the item's text has the query word).

    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;
    use tgvault::import::{ImportOptions, RunContext, import};
    use tgvault::index::Index;
    use tgvault::policy::{self, Action, Hold, Policy, Verdict};
    use tgvault::store::Archive;
    use tgvault::store::key::ItemKey;

    const DAY: i64 = 86_400;
    const T0: i64 = 1_600_000_000;
    const MAILBOXES: [&str; 3] = ["a@corp.example", "b@corp.example", "c@corp.example"];

    #[derive(Clone, Debug)]
    enum Step {
        Litigation {
            mailbox: usize,
            days: Option<u32>,
        },
        Release {
            which: usize,
        },
        CaseHold {
            mailboxes: Vec<usize>,
            query: bool,
        },
        AddPolicy {
            action: Action,
            mailboxes: Vec<usize>,
        },
        RemovePolicy {
            which: usize,
        },
        Run {
            day: i64,
        },
    }

    fn action() -> impl Strategy<Value = Action> {
        let days = prop::sample::select(vec![0u32, 1, 5, 30]);
        prop_oneof![
            days.clone().prop_map(|days| Action::Retain { days }),
            days.clone().prop_map(|days| Action::Delete { days }),
            days.prop_map(|days| Action::RetainThenDelete { days }),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        let boxes = prop::collection::vec(0..3usize, 0..3);
        prop_oneof![
            2 => (
                0..3usize,
                prop::option::of(prop::sample::select(vec![1u32, 5, 30]))
            )
                .prop_map(|(mailbox, days)| Step::Litigation { mailbox, days }),
            1 => (0..8usize).prop_map(|which| Step::Release { which }),
            2 => (prop::collection::vec(0..3usize, 1..3), any::<bool>())
                .prop_map(|(mailboxes, query)| Step::CaseHold { mailboxes, query }),
            3 => (action(), boxes).prop_map(|(action, mailboxes)| Step::AddPolicy { action, mailboxes }),
            1 => (0..8usize).prop_map(|which| Step::RemovePolicy { which }),
            3 => (0..45i64).prop_map(|day| Step::Run { day }),
        ]
    }

    fn base() -> &'static Path {
        static BASE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
        BASE.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let export = dir.path().join("export");
            tgvault::synth::write_export(
                &export,
                &tgvault::synth::SynthSpec {
                    messages: 80,
                    chats: 4,
                    attachment_permille: 100,
                    max_attachment_bytes: 2048,
                    seed: 11,
                },
            )
            .unwrap();
            let csv = dir.path().join("users.csv");
            std::fs::write(
                &csv,
                "mobile_number,mailbox,telegram_user_id\n\
                 +1 555 000 0000,a@corp.example,\n\
                 ,b@corp.example,2000000\n\
                 ,c@corp.example,2000001\n",
            )
            .unwrap();
            let archive = Archive::open(&dir.path().join("archive")).unwrap();
            let mut opts = ImportOptions::new(tgvault::mapping::Mapping::from_path(&csv).unwrap());
            opts.batch_items = 17;
            let clock = || T0;
            let ctx = RunContext {
                actor: "test".into(),
                args: vec![],
                clock: &clock,
            };
            import(&archive, &[export], &opts, &ctx).unwrap();
            Index::open(&archive).unwrap().close().unwrap();
            dir
        })
        .path()
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.path().is_dir() {
                copy_dir(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }

    /// Every copy with its date and whether its text has the word "deal".
    fn copies(archive: &Archive) -> BTreeMap<ItemKey, (Option<i64>, bool)> {
        let mut out = BTreeMap::new();
        archive
            .for_each_copy(|key, filing| {
                let item = archive.current(&key.item)?.unwrap();
                let text = tgvault::index::schema::item_texts(&item).join(" ");
                let deal = text.split_whitespace().any(|w| w == "deal");
                out.insert(key, (filing.date, deal));
                Ok(())
            })
            .unwrap();
        out
    }

    fn oracle_held(holds: &[Hold], key: &ItemKey, date: Option<i64>, deal: bool, now: i64) -> bool {
        holds.iter().any(|h| match h {
            Hold::Litigation { mailbox, days } => {
                *mailbox == key.mailbox
                    && match (days, date) {
                        (None, _) | (Some(_), None) => true,
                        (Some(d), Some(t)) => now < t + i64::from(*d) * DAY,
                    }
            }
            Hold::Case {
                mailboxes, query, ..
            } => mailboxes.contains(&key.mailbox) && (query.is_none() || deal),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn held_copies_survive_and_due_copies_go(steps in prop::collection::vec(step(), 4..20)) {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("archive");
            copy_dir(&base().join("archive"), &dir);
            let archive = Archive::open(&dir).unwrap();
            let clock = || T0;
            let ctx = RunContext { actor: "test".into(), args: vec![], clock: &clock };
            let mut holds: Vec<(String, Hold)> = Vec::new();
            let mut policies: Vec<Policy> = Vec::new();
            let mut case_made = false;
            let mut last_day = 0;
            for (n, s) in steps.into_iter().enumerate() {
                match s {
                    Step::Litigation { mailbox, days } => {
                        let m = MAILBOXES[mailbox];
                        tgvault::retention::hold_set(&archive, m, days, &ctx).unwrap();
                        holds.retain(|(k, _)| *k != format!("lit {m}"));
                        holds.push((format!("lit {m}"), Hold::Litigation { mailbox: m.into(), days }));
                    }
                    Step::Release { which } => {
                        if holds.is_empty() { continue; }
                        let (k, h) = holds.remove(which % holds.len());
                        match h {
                            Hold::Litigation { mailbox, .. } => tgvault::retention::hold_clear(&archive, &mailbox, &ctx).unwrap(),
                            Hold::Case { id, .. } => tgvault::retention::case_hold_remove(&archive, "C", id.parse().unwrap(), &ctx).unwrap(),
                        }
                        let _ = k;
                    }
                    Step::CaseHold { mailboxes, query } => {
                        if !case_made {
                            tgvault::retention::case_create(&archive, "C", &ctx).unwrap();
                            case_made = true;
                        }
                        let ms: Vec<String> = mailboxes.iter().map(|i| MAILBOXES[*i].to_string()).collect::<BTreeSet<_>>().into_iter().collect();
                        let q = query.then(|| "deal".to_string());
                        let id = tgvault::retention::case_hold_add(&archive, "C", ms.clone(), q.clone(), None, None, &ctx).unwrap();
                        holds.push((format!("case {id}"), Hold::Case { case: "C".into(), id: id.to_string(), mailboxes: ms, query: q, from: None, to: None }));
                    }
                    Step::AddPolicy { action, mailboxes } => {
                        let ms: Vec<String> = mailboxes.iter().map(|i| MAILBOXES[*i].to_string()).collect::<BTreeSet<_>>().into_iter().collect();
                        let p = Policy { name: format!("p{n}"), action, mailboxes: ms };
                        tgvault::retention::policy_add(&archive, p.clone(), &ctx).unwrap();
                        policies.push(p);
                    }
                    Step::RemovePolicy { which } => {
                        if policies.is_empty() { continue; }
                        let p = policies.remove(which % policies.len());
                        tgvault::retention::policy_remove(&archive, &p.name, &ctx).unwrap();
                    }
                    Step::Run { day } => {
                        // Time only moves forward.
                        let day = day.max(last_day);
                        last_day = day;
                        let now = T0 + day * DAY;
                        let before = copies(&archive);
                        let plain: Vec<Hold> = holds.iter().map(|(_, h)| h.clone()).collect();
                        let index = Index::open(&archive).unwrap();
                        tgvault::retention::run(&archive, &index, now, false, &ctx).unwrap();
                        drop(index);
                        let after = copies(&archive);
                        for (key, (date, deal)) in &before {
                            let held = oracle_held(&plain, key, *date, *deal, now);
                            let facts = policy::Facts { mailbox: key.mailbox.clone(), date: *date };
                            let due = policy::decide(&facts, &[], &policies, now, &|_| policy::Match::No).verdict == Verdict::Delete;
                            let kept = after.contains_key(key);
                            prop_assert!(!held || kept, "held copy {key:?} was deleted at day {day}");
                            prop_assert_eq!(kept, held || !due, "copy {:?} at day {}: held {}, due {}", key, day, held, due);
                        }
                    }
                }
            }
            // Whatever happened, the archive is consistent.
            let mut problems = Vec::new();
            archive.verify(&mut |p| if p.severity == "error" { problems.push(format!("{}: {}", p.subject, p.problem)) }).unwrap();
            prop_assert!(problems.is_empty(), "{:?}", problems);
        }
    }
}

/// Retention's freed space comes back: the pack it left sparse is rewritten
/// into a new one, its file goes, what was deleted is in no file, what is
/// kept still reads and verifies, and each move is on the audit trail.
#[test]
fn retention_gives_back_the_space_it_frees_and_compact_is_audited() {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    let pack1 = a.path().join("packs/00000001.pack");
    let before = std::fs::metadata(&pack1).unwrap().len();
    assert!(crate::common::holds(&pack1, b"Board approves the merger"));
    // A compaction with nothing sparse rewrites nothing.
    let idle = a.json(&["compact"]);
    assert_eq!(idle["rewritten"], serde_json::json!([]), "{idle}");
    a.ok(&["retention", "add", "purge", "--delete-after", "1"]);
    let done = a.json(&["retention", "run", "--now", "2099-01-01"]);
    let rewritten = done["compacted"]["rewritten"].as_array().unwrap();
    assert_eq!(rewritten.len(), 1, "{done}");
    assert_eq!(rewritten[0][0], 1, "{done}");
    assert!(!pack1.exists(), "the sparse pack is gone");
    let packs = crate::common::files_under(&a.path().join("packs"));
    let after: u64 = packs
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        after * 2 < before,
        "{after} bytes of packs left of {before}"
    );
    for p in &packs {
        assert!(!crate::common::holds(p, b"Board approves the merger"));
    }
    // What stays (the undated item) reads, searches and verifies.
    assert_eq!(
        a.ok(&["search", "kind:externaldata", "--count"]).trim(),
        "1"
    );
    let v = a.json(&["verify"]);
    assert_eq!(v["errors"], 0, "{v}");
    let trail = a.json_lines(&["audit"]);
    let moved = trail
        .iter()
        .find(|e| e["action"] == "compact pack")
        .expect("a compact pack entry");
    assert_eq!(moved["params"], serde_json::json!([["pack", "1"]]));
    assert!(trail.iter().filter(|e| e["action"] == "compact").count() >= 2);
    // A share outside 1..100 is refused.
    assert_eq!(a.run(&["compact", "--below", "0"]).status.code(), Some(2));
    assert_eq!(a.run(&["compact", "--below", "101"]).status.code(), Some(2));
}

/// Item versions are stored many to a pack record (a group): retention that
/// destroys one member leaves none of its bytes in any record, and the
/// members it keeps read back whole from where they were moved.
#[test]
fn destroying_one_version_of_a_group_keeps_the_others_whole() {
    let a = Archive::new();
    a.import(
        &[&fixture("exports/full-account")],
        &["--mapping", fixture("users.csv").to_str().unwrap()],
    );
    let pack = a.path().join("packs/00000001.pack");
    let group_with = |text: &[u8]| {
        crate::common::scan_pack(&pack).into_iter().find(|f| {
            f.kind == tgvault::store::frame::Kind::Group
                && f.content
                    .as_ref()
                    .is_ok_and(|c| c.windows(text.len()).any(|w| w == text))
        })
    };
    let merger = group_with(b"Board approves the merger").expect("the merger in a group");
    let thanks = group_with(b"Thanks! The numbers look good").expect("a reply in a group");
    assert_eq!(merger.offset, thanks.offset, "both in one group");

    // Everything but the merger item is held, in every mailbox.
    a.ok(&["case", "create", "keep"]);
    for m in [
        "alice.adams@corp.example",
        "bob.brown@corp.example",
        "erin.evans@corp.example",
    ] {
        a.ok(&[
            "case",
            "hold",
            "add",
            "keep",
            "--mailbox",
            m,
            "--query",
            "NOT merger",
        ]);
    }
    a.ok(&["retention", "add", "purge", "--delete-after", "1"]);
    let done = a.json(&["retention", "run", "--now", "2100-01-01"]);
    assert_eq!(done["deleted"].as_array().unwrap().len(), 2, "{done}");
    // The pack stays dense, so no compaction hides what the run itself did.
    assert_eq!(
        done["compacted"]["rewritten"],
        serde_json::json!([]),
        "{done}"
    );
    assert!(pack.exists());

    assert!(!crate::common::holds(&pack, b"Board approves the merger"));
    let moved = group_with(b"Thanks! The numbers look good").expect("the reply kept");
    assert!(moved.offset > thanks.offset, "kept members are stored anew");
    let show = a.ok(&["show", "tg:1000001:1000002:2"]);
    assert!(show.contains("Thanks! The numbers look good"), "{show}");
    assert_eq!(a.ok(&["search", "NOT merger", "--count"]).trim(), "40");
    assert_eq!(a.ok(&["search", "merger", "--count"]).trim(), "0");
    assert_eq!(a.ok(&["verify"]).lines().count(), 1);
}
