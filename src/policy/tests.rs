//! The retention principles and hold precedence, table-driven, plus the
//! properties every schedule must keep.

use super::*;
use crate::time::DAY;
use proptest::prelude::*;

const T0: i64 = 1_600_000_000; // the item's date in most cases
const Y: i64 = 365 * DAY;

fn item(mailbox: &str) -> Facts {
    Facts {
        mailbox: mailbox.into(),
        date: Some(T0),
    }
}

fn pol(name: &str, action: Action, mailboxes: &[&str]) -> Policy {
    Policy {
        name: name.into(),
        action,
        mailboxes: mailboxes.iter().map(|s| s.to_string()).collect(),
    }
}

fn retain(d: u32) -> Action {
    Action::Retain { days: d }
}
fn delete(d: u32) -> Action {
    Action::Delete { days: d }
}
fn rtd(d: u32) -> Action {
    Action::RetainThenDelete { days: d }
}

fn lit(m: &str, days: Option<u32>) -> Hold {
    Hold::Litigation {
        mailbox: m.into(),
        days,
    }
}

fn case(m: &str, query: Option<&str>, from: Option<i64>, to: Option<i64>) -> Hold {
    Hold::Case {
        case: "Acme v. Us".into(),
        id: "h1".into(),
        mailboxes: vec![m.into()],
        query: query.map(str::to_string),
        from,
        to,
    }
}

struct Case {
    name: &'static str,
    item: Facts,
    holds: Vec<Hold>,
    matches: Vec<Match>,
    policies: Vec<Policy>,
    now: i64,
    verdict: Verdict,
    principle: Principle,
}

fn run(c: &Case) {
    let m = c.matches.clone();
    let d = decide(&c.item, &c.holds, &c.policies, c.now, &|i| {
        m.get(i).copied().unwrap_or(Match::No)
    });
    assert_eq!(
        (d.verdict, d.principle),
        (c.verdict, c.principle),
        "{}: {d}",
        c.name
    );
}

fn keep(until: Option<i64>) -> Verdict {
    Verdict::Keep { until }
}

#[test]
fn retention_principles_and_hold_precedence() {
    let a = "alice@corp.example";
    let b = "bob@corp.example";
    let d = |days: i64| T0 + days * DAY;
    let cases = vec![
        // --- no policy, one policy
        Case {
            name: "nothing applies",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![],
            now: d(9999),
            verdict: keep(None),
            principle: Principle::NoDeletionPolicy,
        },
        Case {
            name: "delete after 30 days, day 29",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("P", delete(30), &[])],
            now: d(29),
            verdict: keep(Some(d(30))),
            principle: Principle::DeletionPeriod,
        },
        Case {
            name: "delete after 30 days, day 30",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("P", delete(30), &[])],
            now: d(30),
            verdict: Verdict::Delete,
            principle: Principle::DeletionPeriod,
        },
        Case {
            name: "retain only, during",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("R", retain(365), &[])],
            now: d(100),
            verdict: keep(None),
            principle: Principle::RetentionPeriod,
        },
        Case {
            name: "retain only, after: nothing deletes",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("R", retain(365), &[])],
            now: d(400),
            verdict: keep(None),
            principle: Principle::NoDeletionPolicy,
        },
        Case {
            name: "retain then delete, during",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("RD", rtd(365), &[])],
            now: d(364),
            verdict: keep(Some(d(365))),
            principle: Principle::RetentionPeriod,
        },
        Case {
            name: "retain then delete, after",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("RD", rtd(365), &[])],
            now: d(365),
            verdict: Verdict::Delete,
            principle: Principle::DeletionPeriod,
        },
        Case {
            name: "policy scoped to another mailbox",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("P", delete(1), &[b])],
            now: d(10),
            verdict: keep(None),
            principle: Principle::NoDeletionPolicy,
        },
        // --- principle 1: retention wins over deletion
        Case {
            name: "retain 5y + delete 1y: kept at 2y",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("R", rtd(5 * 365), &[]), pol("D", delete(365), &[])],
            now: T0 + 2 * Y,
            verdict: keep(Some(T0 + 5 * Y)),
            principle: Principle::RetentionWinsOverDeletion,
        },
        Case {
            name: "retain 5y + delete 1y: deleted at 5y",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("R", rtd(5 * 365), &[]), pol("D", delete(365), &[])],
            now: T0 + 5 * Y,
            verdict: Verdict::Delete,
            principle: Principle::ShortestDeletion,
        },
        Case {
            name: "retain-only 7y + delete 3y: kept at 4y",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![
                pol("R", retain(7 * 365), &[]),
                pol("D", delete(3 * 365), &[]),
            ],
            now: T0 + 4 * Y,
            verdict: keep(Some(T0 + 7 * Y)),
            principle: Principle::RetentionWinsOverDeletion,
        },
        Case {
            name: "retain-only 7y + delete 3y: deleted at 7y",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![
                pol("R", retain(7 * 365), &[]),
                pol("D", delete(3 * 365), &[]),
            ],
            now: T0 + 7 * Y,
            verdict: Verdict::Delete,
            principle: Principle::DeletionPeriod,
        },
        Case {
            name: "scoped retention beats org-wide deletion",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("R", retain(3650), &[a]), pol("D", delete(30), &[])],
            now: d(100),
            verdict: keep(Some(d(3650))),
            principle: Principle::RetentionWinsOverDeletion,
        },
        // --- principle 2: the longest retention wins
        Case {
            name: "retain-then-delete 5y and 10y: kept at 7y",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("R5", rtd(5 * 365), &[]), pol("R10", rtd(10 * 365), &[])],
            now: T0 + 7 * Y,
            verdict: keep(Some(T0 + 10 * Y)),
            principle: Principle::RetentionWinsOverDeletion,
        },
        Case {
            name: "retain-then-delete 5y and 10y: deleted at 10y",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("R5", rtd(5 * 365), &[]), pol("R10", rtd(10 * 365), &[])],
            now: T0 + 10 * Y,
            verdict: Verdict::Delete,
            principle: Principle::ShortestDeletion,
        },
        Case {
            name: "two retain-only periods",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("R1", retain(100), &[]), pol("R2", retain(200), &[])],
            now: d(150),
            verdict: keep(None),
            principle: Principle::LongestRetention,
        },
        // --- principle 3: explicit inclusion wins over implicit
        Case {
            name: "scoped delete 10y beats org-wide delete 5y (at 6y)",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![
                pol("Org", delete(5 * 365), &[]),
                pol("Alice", delete(10 * 365), &[a]),
            ],
            now: T0 + 6 * Y,
            verdict: keep(Some(T0 + 10 * Y)),
            principle: Principle::ExplicitInclusion,
        },
        Case {
            name: "scoped delete 10y, at 10y",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![
                pol("Org", delete(5 * 365), &[]),
                pol("Alice", delete(10 * 365), &[a]),
            ],
            now: T0 + 10 * Y,
            verdict: Verdict::Delete,
            principle: Principle::ExplicitInclusion,
        },
        Case {
            name: "scoped delete 1y beats org-wide 5y",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![
                pol("Org", delete(5 * 365), &[]),
                pol("Alice", delete(365), &[a]),
            ],
            now: T0 + Y,
            verdict: Verdict::Delete,
            principle: Principle::ExplicitInclusion,
        },
        Case {
            name: "scoped to bob: org-wide applies to alice",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![
                pol("Org", delete(5 * 365), &[]),
                pol("Bob", delete(365), &[b]),
            ],
            now: T0 + 2 * Y,
            verdict: keep(Some(T0 + 5 * Y)),
            principle: Principle::DeletionPeriod,
        },
        // --- principle 4: the shortest deletion period wins
        Case {
            name: "org-wide delete 5y and 10y",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![
                pol("D5", delete(5 * 365), &[]),
                pol("D10", delete(10 * 365), &[]),
            ],
            now: T0 + 5 * Y,
            verdict: Verdict::Delete,
            principle: Principle::ShortestDeletion,
        },
        Case {
            name: "two scoped deletes",
            item: item(a),
            holds: vec![],
            matches: vec![],
            policies: vec![pol("A1", delete(100), &[a]), pol("A2", delete(50), &[a])],
            now: d(60),
            verdict: Verdict::Delete,
            principle: Principle::ShortestDeletion,
        },
        // --- holds above everything
        Case {
            name: "litigation hold forever beats deletion",
            item: item(a),
            holds: vec![lit(a, None)],
            matches: vec![],
            policies: vec![pol("D", delete(1), &[])],
            now: d(5000),
            verdict: keep(None),
            principle: Principle::Hold,
        },
        Case {
            name: "litigation hold 90 days, day 89",
            item: item(a),
            holds: vec![lit(a, Some(90))],
            matches: vec![],
            policies: vec![pol("D", delete(30), &[])],
            now: d(89),
            verdict: keep(None),
            principle: Principle::Hold,
        },
        Case {
            name: "litigation hold 90 days, day 90: expired",
            item: item(a),
            holds: vec![lit(a, Some(90))],
            matches: vec![],
            policies: vec![pol("D", delete(30), &[])],
            now: d(90),
            verdict: Verdict::Delete,
            principle: Principle::DeletionPeriod,
        },
        Case {
            name: "litigation hold on another mailbox",
            item: item(a),
            holds: vec![lit(b, None)],
            matches: vec![],
            policies: vec![pol("D", delete(30), &[])],
            now: d(31),
            verdict: Verdict::Delete,
            principle: Principle::DeletionPeriod,
        },
        Case {
            name: "case hold without query",
            item: item(a),
            holds: vec![case(a, None, None, None)],
            matches: vec![],
            policies: vec![pol("D", delete(1), &[])],
            now: d(10),
            verdict: keep(None),
            principle: Principle::Hold,
        },
        Case {
            name: "query hold, item matches",
            item: item(a),
            holds: vec![case(a, Some("merger"), None, None)],
            matches: vec![Match::Yes],
            policies: vec![pol("D", delete(1), &[])],
            now: d(10),
            verdict: keep(None),
            principle: Principle::Hold,
        },
        Case {
            name: "query hold, item does not match",
            item: item(a),
            holds: vec![case(a, Some("merger"), None, None)],
            matches: vec![Match::No],
            policies: vec![pol("D", delete(1), &[])],
            now: d(10),
            verdict: Verdict::Delete,
            principle: Principle::DeletionPeriod,
        },
        Case {
            name: "query hold, item unindexed: held",
            item: item(a),
            holds: vec![case(a, Some("merger"), None, None)],
            matches: vec![Match::Unindexed],
            policies: vec![pol("D", delete(1), &[])],
            now: d(10),
            verdict: keep(None),
            principle: Principle::Hold,
        },
        Case {
            name: "case hold date range excludes the item",
            item: item(a),
            holds: vec![case(a, None, Some(d(1)), Some(d(5)))],
            matches: vec![],
            policies: vec![pol("D", delete(1), &[])],
            now: d(10),
            verdict: Verdict::Delete,
            principle: Principle::DeletionPeriod,
        },
        Case {
            name: "case hold date range includes the item",
            item: item(a),
            holds: vec![case(a, None, Some(d(-1)), Some(d(1)))],
            matches: vec![],
            policies: vec![pol("D", delete(1), &[])],
            now: d(10),
            verdict: keep(None),
            principle: Principle::Hold,
        },
        Case {
            name: "hold beats retention end too",
            item: item(a),
            holds: vec![case(a, None, None, None)],
            matches: vec![],
            policies: vec![pol("RD", rtd(10), &[])],
            now: d(11),
            verdict: keep(None),
            principle: Principle::Hold,
        },
        Case {
            name: "query holds ORed: second matches",
            item: item(a),
            holds: vec![
                case(a, Some("x"), None, None),
                case(a, Some("y"), None, None),
            ],
            matches: vec![Match::No, Match::Yes],
            policies: vec![pol("D", delete(1), &[])],
            now: d(10),
            verdict: keep(None),
            principle: Principle::Hold,
        },
        // --- unknown dates
        Case {
            name: "no date: never deleted by a period",
            item: Facts {
                mailbox: a.into(),
                date: None,
            },
            holds: vec![],
            matches: vec![],
            policies: vec![pol("D", delete(1), &[])],
            now: d(9999),
            verdict: keep(None),
            principle: Principle::UnknownDate,
        },
        Case {
            name: "no date under a 30-day litigation hold: held",
            item: Facts {
                mailbox: a.into(),
                date: None,
            },
            holds: vec![lit(a, Some(30))],
            matches: vec![],
            policies: vec![],
            now: d(9999),
            verdict: keep(None),
            principle: Principle::Hold,
        },
        // --- mailbox names compare case-insensitively
        Case {
            name: "scoped policy, mailbox case differs",
            item: item("Alice@Corp.Example"),
            holds: vec![],
            matches: vec![],
            policies: vec![
                pol("Org", delete(5 * 365), &[]),
                pol("Alice", delete(365), &[a]),
            ],
            now: T0 + Y,
            verdict: Verdict::Delete,
            principle: Principle::ExplicitInclusion,
        },
    ];
    assert!(cases.len() >= 30);
    for c in &cases {
        run(c);
    }
}

#[test]
fn the_explanation_names_holds_unconditional_first_and_policies() {
    let a = "alice@corp.example";
    let holds = vec![case(a, Some("merger"), None, None), lit(a, None)];
    let d = decide(
        &item(a),
        &holds,
        &[pol("D", delete(1), &[])],
        T0 + 10 * DAY,
        &|_| Match::Yes,
    );
    assert_eq!(d.holds.len(), 2);
    assert!(d.holds[0].starts_with("litigation hold"), "{:?}", d.holds);
    let text = d.to_string();
    assert!(
        text.starts_with("kept: an item on hold is never deleted"),
        "{text}"
    );
    assert!(text.contains("policy D"), "{text}");
}

fn arb_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (1u32..400).prop_map(|d| Action::Retain { days: d }),
        (1u32..400).prop_map(|d| Action::Delete { days: d }),
        (1u32..400).prop_map(|d| Action::RetainThenDelete { days: d }),
    ]
}

fn arb_setup() -> impl Strategy<Value = (Vec<Policy>, Vec<Hold>, Vec<Match>, i64)> {
    let mb = prop::sample::select(vec!["a@x.example", "b@x.example"]);
    let policy = (arb_action(), proptest::option::of(mb.clone()))
        .prop_map(|(a, m)| pol("p", a, &m.into_iter().collect::<Vec<_>>()));
    let hold = prop_oneof![
        (mb.clone(), proptest::option::of(1u32..400)).prop_map(|(m, d)| lit(m, d)),
        (
            mb,
            proptest::option::of(Just("q")),
            proptest::option::of(-50i64..50),
            proptest::option::of(-50i64..50)
        )
            .prop_map(|(m, q, f, t)| case(
                m,
                q,
                f.map(|f| T0 + f * DAY),
                t.map(|t| T0 + t * DAY)
            )),
    ];
    let matches = prop::collection::vec(
        prop_oneof![Just(Match::Yes), Just(Match::No), Just(Match::Unindexed)],
        4,
    );
    (
        prop::collection::vec(policy, 0..4),
        prop::collection::vec(hold, 0..3),
        matches,
        0i64..900,
    )
}

proptest! {
    #[test]
    fn a_held_item_is_never_deletable((policies, holds, matches, day) in arb_setup()) {
        let it = item("a@x.example");
        let now = T0 + day * DAY;
        let d = decide(&it, &holds, &policies, now, &|i| matches[i % matches.len()]);
        if !applying_holds(&it, &holds, now, &|i| matches[i % matches.len()]).is_empty() {
            prop_assert_ne!(d.verdict, Verdict::Delete);
            prop_assert_eq!(d.principle, Principle::Hold);
        }
    }

    #[test]
    fn an_unheld_item_becomes_deletable_when_its_time_comes_and_stays_so(
        (policies, _holds, _m, day) in arb_setup(), later in 0i64..900
    ) {
        let it = item("a@x.example");
        let now = T0 + day * DAY;
        let d = decide(&it, &[], &policies, now, &|_| Match::No);
        match d.verdict {
            Verdict::Keep { until: Some(t) } => {
                prop_assert!(t > now);
                // The first run at or after `t` deletes it.
                prop_assert_eq!(decide(&it, &[], &policies, t, &|_| Match::No).verdict, Verdict::Delete);
                prop_assert_ne!(decide(&it, &[], &policies, t - 1, &|_| Match::No).verdict, Verdict::Delete);
            }
            Verdict::Delete => {
                prop_assert_eq!(decide(&it, &[], &policies, now + later * DAY, &|_| Match::No).verdict, Verdict::Delete);
            }
            Verdict::Keep { until: None } => {
                // Nothing will ever delete it: no policy deletes it.
                prop_assert!(!policies.iter().any(|p| p.applies(&it.mailbox) && p.action.deletes()));
            }
        }
    }
}

#[test]
fn the_last_representable_date_is_held_and_explained() {
    // The defect: date i64::MAX, a 36,500-day hold and a 99,999,999-day
    // retain-then-delete policy overflowed into a past end and a deletion.
    let it = Facts {
        mailbox: "a@x.example".into(),
        date: Some(i64::MAX),
    };
    let holds = [lit("a@x.example", Some(36_500))];
    let policies = [pol("Long", rtd(99_999_999), &[])];
    let d = decide(&it, &holds, &policies, T0, &|_| Match::No);
    assert_eq!(d.verdict, keep(None));
    assert_eq!(d.principle, Principle::Hold);
    assert!(d.holds[0].contains("past the last time"), "{:?}", d.holds);
    let text = d.to_string();
    assert!(text.contains("+292277026596-12-04T15:30:07Z"), "{text}");
    // Without the hold, the policy's end cannot be computed: kept, and why.
    let d = decide(&it, &[], &policies, i64::MAX, &|_| Match::No);
    assert_eq!(d.verdict, keep(None));
    assert_eq!(d.principle, Principle::UncountablePeriod);
    assert!(
        d.to_string().contains("period ends past the last time"),
        "{d}"
    );
}

/// Whether a litigation hold of `days` on the item's mailbox covers it at
/// `now`, computed without overflow (the model the decision is held to).
fn litigation_covers(days: Option<u32>, date: Option<i64>, now: i64) -> bool {
    match (days, date) {
        (None, _) | (_, None) => true,
        (Some(d), Some(t)) => i128::from(now) < i128::from(t) + i128::from(d) * i128::from(DAY),
    }
}

fn any_action() -> impl Strategy<Value = Action> {
    prop_oneof![
        any::<u32>().prop_map(|d| Action::Retain { days: d }),
        any::<u32>().prop_map(|d| Action::Delete { days: d }),
        any::<u32>().prop_map(|d| Action::RetainThenDelete { days: d }),
    ]
}

/// A time anywhere in `i64`, with the edges and the plausible range drawn
/// more often than a uniform choice would.
fn any_time() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        Just(i64::MAX),
        Just(i64::MIN),
        (i64::MAX - 400 * DAY..=i64::MAX),
        (i64::MIN..i64::MIN + 400 * DAY),
        (-4_000_000_000i64..300_000_000_000),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Over the whole range of every type: nothing a hold covers is ever
    /// deletable, and a decision always prints.
    #[test]
    fn nothing_held_is_deletable_at_any_date(
        date in proptest::option::of(any_time()),
        now in any_time(),
        lit_days in proptest::option::of(any::<u32>()),
        from in proptest::option::of(any_time()),
        to in proptest::option::of(any_time()),
        actions in prop::collection::vec(any_action(), 0..4),
        scoped in any::<bool>(),
        with_case in any::<bool>(),
    ) {
        let mb = "a@x.example";
        let it = Facts { mailbox: mb.into(), date };
        let scope: &[&str] = if scoped { &[mb] } else { &[] };
        let policies: Vec<Policy> = actions.iter().map(|a| pol("p", *a, scope)).collect();
        let mut holds = vec![lit(mb, lit_days)];
        if with_case {
            holds.push(case(mb, None, from, to));
        }
        let d = decide(&it, &holds, &policies, now, &|_| Match::No);
        let case_covers = with_case
            && date.is_none_or(|t| from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e));
        if litigation_covers(lit_days, date, now) || case_covers {
            prop_assert_ne!(d.verdict, Verdict::Delete);
            prop_assert_eq!(d.principle, Principle::Hold);
        }
        // No policy's deletion comes before its period ends.
        if d.verdict == Verdict::Delete {
            let t = i128::from(date.expect("a dated item"));
            for a in actions.iter().filter(|a| a.retains()) {
                prop_assert!(i128::from(now) >= t + i128::from(a.days()) * i128::from(DAY));
            }
        }
        prop_assert!(!d.to_string().is_empty());
    }
}

proptest! {
    /// An action reads back from its text, as the audit trail records it.
    #[test]
    fn actions_read_back_from_their_text(days in any::<u32>(), kind in 0..3u8) {
        let a = match kind {
            0 => Action::Retain { days },
            1 => Action::Delete { days },
            _ => Action::RetainThenDelete { days },
        };
        prop_assert_eq!(a.to_string().parse::<Action>(), Ok(a));
    }
}

#[test]
fn text_that_is_no_action_is_refused() {
    for s in [
        "",
        "retain",
        "retain x days",
        "delete after -1 days",
        "keep 3 days",
        "retain 3 weeks",
    ] {
        assert!(s.parse::<Action>().is_err(), "{s}");
    }
}
