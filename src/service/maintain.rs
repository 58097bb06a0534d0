//! The archive's upkeep through the service: `verify` (every invariant and
//! hash, the audit journal, the index against the store) and `reindex`.

use super::access::Op;
use super::search::say_recorded;
use super::{Principal, Service};
use crate::error::{Error, Result};
use crate::index::Index;
use crate::store::verify::{Checked, Problem};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub checked: Checked,
    /// Problems of severity `error`.
    pub errors: u64,
    pub problems: Vec<Problem>,
    #[serde(skip)]
    pub notes: Vec<String>,
}

fn problem(subject: &str, problem: String, error: bool) -> Problem {
    Problem {
        subject: subject.into(),
        problem,
        severity: if error { "error" } else { "warning" },
    }
}

impl Service {
    pub fn verify(&self, who: &Principal) -> Result<VerifyReport> {
        self.check(who, Op::Maintain)?;
        let mut problems = Vec::new();
        let mut checked = self.archive.verify(&mut |p| problems.push(p))?;
        for (error, what) in self.archive.journal_problems()? {
            problems.push(problem("audit journal", what, error));
        }
        if let Err(e) = crate::store::backup::mark_of(&self.archive) {
            problems.push(problem("backup", e.to_string(), true));
        }
        // Store and index must agree (the index first catches up; on a
        // read-only archive it is compared only when it has).
        self.verify_index(&mut checked, &mut problems)?;
        let errors = problems.iter().filter(|p| p.severity == "error").count() as u64;
        let outcome = if errors == 0 {
            "ok".to_string()
        } else {
            format!("{errors} problem(s)")
        };
        let mut event = self.event(who, "verify", vec![], &outcome);
        event.counts = vec![
            ("items".into(), checked.items),
            ("blobs".into(), checked.blobs),
            ("problems".into(), errors),
        ];
        let notes = say_recorded(&self.archive.audit_read(event)?)
            .into_iter()
            .collect();
        Ok(VerifyReport {
            checked,
            errors,
            problems,
            notes,
        })
    }

    fn verify_index(&self, checked: &mut Checked, problems: &mut Vec<Problem>) -> Result<()> {
        let compared = self.with_index_mut(|index| {
            if !self.archive.is_read_only() {
                index.catch_up(&self.archive)?;
            }
            let behind = index.behind(&self.archive)?;
            if behind > 0 {
                return Ok(Err(format!(
                    "not compared: it lacks the last {behind} change batch(es) and cannot catch up on a read-only archive"
                )));
            }
            let mut found = Vec::new();
            let documents = index.verify(&self.archive, &mut |p| found.push(p))?;
            Ok(Ok((documents, found)))
        });
        match compared {
            Err(Error::ReadOnly(why)) => problems.push(problem("index", why, false)),
            Err(e) => return Err(e),
            Ok(Err(why)) => problems.push(problem("index", why, false)),
            Ok(Ok((documents, found))) => {
                checked.documents = documents;
                problems.extend(found);
            }
        }
        Ok(())
    }

    /// Rewrites the packs whose live records fill less than `below` per
    /// cent (the catalogue's own rewrite needs the archive to itself).
    pub fn compact_packs(
        &self,
        who: &Principal,
        below: u8,
        args: Vec<String>,
    ) -> Result<crate::compaction::Compacted> {
        self.check(who, Op::Maintain)?;
        crate::compaction::compact(&self.archive, below, &self.ctx(who, args))
    }

    /// Rebuilds the search index from the store; the documents written.
    pub fn reindex(&self, who: &Principal) -> Result<crate::index::CatchUp> {
        self.check(who, Op::Maintain)?;
        let done = {
            let mut writer = self.index_writer();
            // The old handle lets go of the index (its merges, its lock)
            // before the index is made anew.
            if let Some(old) = writer.take() {
                old.close()?;
            }
            let (fresh, done) = Index::recreate(&self.archive, Default::default())?;
            self.install(&mut writer, fresh);
            done
        };
        let mut event = self.event(who, "reindex", vec![], "ok");
        event.counts = vec![("documents".into(), done.documents)];
        self.archive.audit(event)?;
        Ok(done)
    }
}
