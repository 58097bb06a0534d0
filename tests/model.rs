//! Retention and holds against a simple model: random sequences of imports,
//! litigation holds, policy changes and retention runs (dates and periods
//! drawn over the whole range of their types), run through the library as
//! the CLI runs them. After every step: nothing a hold covers is gone, the
//! index holds exactly what the store does, and every deleted copy is on
//! the audit trail (a `retention delete` entry lists each tombstone).

use std::collections::{BTreeMap, BTreeSet};
use tgvault::Result;
use tgvault::import::{ImportOptions, RunContext};
use tgvault::index::Index;
use tgvault::mapping::Mapping;
use tgvault::policy::{Action, Policy};
use tgvault::store::Archive;

const MAILBOXES: [&str; 3] = ["a@corp.example", "b@corp.example", "c@corp.example"];
const DAY: i128 = 86_400;

/// A xorshift generator: the failing seed is printed, and reruns with it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A time anywhere in `i64`, the edges and today's range drawn often.
    fn time(&mut self) -> i64 {
        match self.below(6) {
            0 => self.next() as i64,
            1 => i64::MAX - self.below(400 * 86_400) as i64,
            2 => i64::MIN + self.below(400 * 86_400) as i64,
            _ => 1_000_000_000 + self.below(4_000_000_000) as i64,
        }
    }
    fn days(&mut self) -> u32 {
        match self.below(4) {
            0 => self.next() as u32,
            1 => u32::MAX - self.below(10) as u32,
            _ => self.below(20_000) as u32,
        }
    }
}

/// What the model knows of one filed copy.
struct Copy {
    mailbox: String,
    /// The date the item was exported with (`None`: a placeholder).
    date: Option<i64>,
}

fn held(holds: &BTreeMap<String, Option<u32>>, c: &Copy, now: i64) -> bool {
    match holds.get(&c.mailbox) {
        None => false,
        Some(None) => true,
        Some(Some(days)) => match c.date {
            None => true,
            Some(t) => i128::from(now) < i128::from(t) + i128::from(*days) * DAY,
        },
    }
}

fn write_export(dir: &std::path::Path, chat: i64, first: i64, dates: &[Option<i64>]) {
    let messages: Vec<String> = dates
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let date = match d {
                Some(t) => format!(r#""date_unixtime":"{t}""#),
                None => r#""date":"1970-01-01T00:00:00","date_unixtime":"0""#.into(),
            };
            format!(
                r#"{{"id":{},"type":"message",{date},"from":"P","from_id":"user77","text":"step {}"}}"#,
                first + i as i64,
                first + i as i64
            )
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("result.json"),
        format!(
            r#"{{"name":"M","type":"personal_chat","id":{chat},"messages":[{}]}}"#,
            messages.join(",")
        ),
    )
    .unwrap();
}

fn check(archive: &Archive, model: &BTreeMap<String, Copy>, step: usize) -> Result<()> {
    let mut index = Index::open(archive)?;
    index.catch_up(archive)?;
    let mut problems = Vec::new();
    index.verify(archive, &mut |p| {
        problems.push(format!("{}: {}", p.subject, p.problem))
    })?;
    assert!(
        problems.is_empty(),
        "step {step}: index and store differ: {problems:?}"
    );
    index.close()?;
    // Every tombstone is on the trail, and nothing else is.
    let tombstones: BTreeSet<String> = archive
        .tombstones()?
        .into_iter()
        .map(|(k, _)| format!("{} {} / {}", k.item, k.mailbox, k.folder))
        .collect();
    let audited: BTreeSet<String> = archive
        .audit_entries(None)?
        .into_iter()
        .filter(|e| e.event.action == "retention delete")
        .flat_map(|e| e.event.params)
        .filter(|(k, _)| k == "deleted")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        tombstones, audited,
        "step {step}: deletions and the trail differ"
    );
    // The model's copies minus the tombstoned ones are what the store holds.
    let mut stored = BTreeSet::new();
    archive.for_each_copy(|k, _| {
        stored.insert(format!("{} {} / {}", k.item, k.mailbox, k.folder));
        Ok(())
    })?;
    let expected: BTreeSet<String> = model
        .keys()
        .filter(|k| !tombstones.contains(*k))
        .cloned()
        .collect();
    assert_eq!(
        stored, expected,
        "step {step}: the store lost or gained copies"
    );
    Ok(())
}

#[test]
fn random_schedules_never_delete_what_is_held() -> Result<()> {
    let seed = std::env::var("TGVAULT_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("model test: seed {seed} (TGVAULT_MODEL_SEED={seed} reruns it)");
    let steps: usize = std::env::var("TGVAULT_MODEL_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let archive = Archive::open(&tmp.path().join("archive"))?;
    let clock = || 1_700_000_000;
    let ctx = RunContext {
        actor: "model".into(),
        args: vec![],
        clock: &clock,
    };
    let mut model: BTreeMap<String, Copy> = BTreeMap::new();
    let mut holds: BTreeMap<String, Option<u32>> = BTreeMap::new();
    let mut policies: Vec<String> = Vec::new();
    let mut next_id = 1i64;
    let (mut runs, mut deleted_total) = (0, 0);
    for step in 0..steps {
        let mailbox = MAILBOXES[rng.below(3) as usize].to_string();
        match rng.below(10) {
            0..=3 => {
                let n = 1 + rng.below(3) as usize;
                let dates: Vec<Option<i64>> = (0..n)
                    .map(|_| (rng.below(10) > 0).then(|| rng.time()).filter(|t| *t != 0))
                    .collect();
                let chat = 1000 + step as i64;
                let dir = tmp.path().join(format!("export-{step}"));
                write_export(&dir, chat, next_id, &dates);
                let mut opts = ImportOptions::new(Mapping::default());
                opts.custodian_address = Some(mailbox.clone());
                let report =
                    tgvault::import::import(&archive, std::slice::from_ref(&dir), &opts, &ctx)?;
                assert_eq!(report.totals().failed, 0, "step {step}");
                for (i, date) in dates.into_iter().enumerate() {
                    let key = format!(
                        "tg:0:{chat}:{} {mailbox} / Telegram Archiver",
                        next_id + i as i64
                    );
                    model.insert(
                        key,
                        Copy {
                            mailbox: mailbox.clone(),
                            date,
                        },
                    );
                }
                next_id += n as i64;
                std::fs::remove_dir_all(dir).unwrap();
                continue;
            }
            4 => {
                let days = (rng.below(3) > 0).then(|| rng.days());
                tgvault::retention::hold_set(&archive, &mailbox, days, &ctx)?;
                holds.insert(mailbox, days);
            }
            5 => {
                if holds.remove(&mailbox).is_some() {
                    tgvault::retention::hold_clear(&archive, &mailbox, &ctx)?;
                }
            }
            6 => {
                let name = format!("p{step}");
                let days = rng.days();
                let action = match rng.below(3) {
                    0 => Action::Retain { days },
                    1 => Action::Delete { days },
                    _ => Action::RetainThenDelete { days },
                };
                let scope = if rng.below(2) == 0 {
                    vec![]
                } else {
                    vec![mailbox]
                };
                tgvault::retention::policy_add(
                    &archive,
                    Policy {
                        name: name.clone(),
                        action,
                        mailboxes: scope,
                    },
                    &ctx,
                )?;
                policies.push(name);
            }
            7 => {
                if !policies.is_empty() {
                    let name = policies.remove(rng.below(policies.len() as u64) as usize);
                    tgvault::retention::policy_remove(&archive, &name, &ctx)?;
                }
            }
            _ => {
                let now = rng.time();
                let before: BTreeSet<String> = {
                    let mut s = BTreeSet::new();
                    archive.for_each_copy(|k, _| {
                        s.insert(format!("{} {} / {}", k.item, k.mailbox, k.folder));
                        Ok(())
                    })?;
                    s
                };
                let index = Index::open(&archive)?;
                let out = tgvault::retention::run(&archive, &index, now, false, &ctx)?;
                index.close()?;
                runs += 1;
                deleted_total += out.deleted.len();
                for (item, mb, folder, _) in &out.deleted {
                    let key = format!("{item} {mb} / {folder}");
                    assert!(before.contains(&key), "step {step}: {key} deleted twice");
                    let copy = &model[&key];
                    assert!(
                        !held(&holds, copy, now),
                        "step {step} (seed {seed}): {key} was held (date {:?}, hold {:?}, now {now}) and deleted",
                        copy.date,
                        holds.get(&copy.mailbox)
                    );
                }
            }
        }
        check(&archive, &model, step)?;
    }
    check(&archive, &model, steps)?;
    eprintln!(
        "model test: {steps} steps, {} copies, {runs} retention runs deleted {deleted_total}",
        model.len()
    );
    assert!(runs > 0 && !model.is_empty());
    Ok(())
}
