//! Connectors as an administrator manages them: add, list, show, pause,
//! resume, remove, their status and admin log, and `sync` (each run once).
//! Every change is checked and audited; a connector's runs audit
//! themselves (see `crate::connector`).

use super::access::Op;
use super::{Principal, Service, lock, p, printable};
use crate::connector::{Mode, RunEnd, Runner, check_name, configure, state_text};
use crate::error::{Error, Result};
use crate::store::records::{ConnectorRecord, ConnectorState, RunRecord};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

/// What `connector add` asks for.
#[derive(Clone, Debug, Default)]
pub struct ConnectorAdd {
    pub kind: String,
    pub name: String,
    /// The kind's options, by name without `--`.
    pub settings: BTreeMap<String, String>,
    pub mapping: Option<PathBuf>,
    pub mailbox: Option<String>,
}

/// What one connector's run did, as `sync` reports it.
#[derive(Debug)]
pub struct Synced {
    pub name: String,
    pub end: RunEnd,
}

impl Service {
    pub fn connector_add(&self, who: &Principal, req: &ConnectorAdd) -> Result<Value> {
        self.check(who, Op::Connectors)?;
        check_name(&req.name)?;
        let mapping = match &req.mapping {
            Some(m) => Some(
                std::path::absolute(m)
                    .map_err(|e| Error::io(m, e))?
                    .display()
                    .to_string(),
            ),
            None => None,
        };
        let rec = configure(
            &req.kind,
            req.settings.clone(),
            mapping,
            req.mailbox.clone(),
            self.now(),
            &who.actor(),
        )?;
        let mut params = vec![p("connector", &req.name), p("kind", &rec.kind)];
        params.extend(rec.settings.iter().map(|(k, v)| p(k, v)));
        params.extend(rec.mapping.iter().map(|m| p("mapping", m)));
        params.extend(rec.mailbox.iter().map(|m| p("mailbox", m)));
        self.archive.write(|tx| {
            if tx.connector(&req.name)?.is_some() {
                return Err(Error::Conflict(format!("connector '{}' exists", req.name)));
            }
            tx.put_connector(&req.name, &rec)?;
            tx.audit(self.event(who, "connector add", params, "ok"))?;
            Ok(())
        })?;
        self.connector_json(&req.name, &rec)
    }

    fn connector_record(&self, name: &str) -> Result<ConnectorRecord> {
        self.archive
            .connector(name)?
            .ok_or_else(|| Error::NotFound(format!("connector '{}'", printable(name))))
    }

    pub fn connectors(&self, who: &Principal) -> Result<Vec<Value>> {
        self.check(who, Op::Connectors)?;
        self.record_read(who, "connector list", vec![])?;
        let mut out = Vec::new();
        for (name, rec) in self.archive.connectors()? {
            out.push(self.connector_json(&name, &rec)?);
        }
        Ok(out)
    }

    pub fn connector(&self, who: &Principal, name: &str) -> Result<Value> {
        self.check(who, Op::Connectors)?;
        let rec = self.connector_record(name)?;
        self.record_read(who, "connector show", vec![p("connector", name)])?;
        self.connector_json(name, &rec)
    }

    /// Pauses (`run` false) or resumes a connector; resuming one that
    /// failed for good clears its failure.
    pub fn connector_set_running(&self, who: &Principal, name: &str, run: bool) -> Result<Value> {
        self.check(who, Op::Connectors)?;
        let action = if run {
            "connector resume"
        } else {
            "connector pause"
        };
        let rec = self.archive.write(|tx| {
            let mut rec = tx
                .connector(name)?
                .ok_or_else(|| Error::NotFound(format!("connector '{}'", printable(name))))?;
            let was = state_text(&rec.state);
            rec.state = if run {
                ConnectorState::Active
            } else {
                ConnectorState::Paused
            };
            tx.put_connector(name, &rec)?;
            let params = vec![p("connector", name), p("was", &was)];
            tx.audit(self.event(who, action, params, "ok"))?;
            Ok(rec)
        })?;
        self.connector_json(name, &rec)
    }

    /// Removes a connector; what it captured and its admin log stay.
    pub fn connector_remove(&self, who: &Principal, name: &str) -> Result<()> {
        self.check(who, Op::Connectors)?;
        self.archive.write(|tx| {
            if !tx.remove_connector(name)? {
                return Err(Error::NotFound(format!("connector '{}'", printable(name))));
            }
            tx.audit(self.event(who, "connector remove", vec![p("connector", name)], "ok"))?;
            Ok(())
        })
    }

    /// Each connector's (or one's) state, last capture, items in the last
    /// 24 hours, errors and possible losses.
    pub fn connector_status(&self, who: &Principal, name: Option<&str>) -> Result<Vec<Value>> {
        self.check(who, Op::Connectors)?;
        let list = match name {
            Some(n) => vec![(n.to_string(), self.connector_record(n)?)],
            None => self.archive.connectors()?,
        };
        let params = name.map(|n| vec![p("connector", n)]).unwrap_or_default();
        self.record_read(who, "connector status", params)?;
        let now = self.now();
        let runs = self.archive.runs()?;
        Ok(list
            .iter()
            .map(|(n, rec)| status_json(n, rec, &runs, now, self.is_running(n)))
            .collect())
    }

    /// A connector's runs (its admin log), oldest first, those started at
    /// or after `since` when given.
    pub fn connector_log(
        &self,
        who: &Principal,
        name: &str,
        since: Option<i64>,
    ) -> Result<Vec<RunRecord>> {
        self.check(who, Op::Connectors)?;
        let mut params = vec![p("connector", name)];
        params.extend(since.map(|s| p("since", &crate::time::iso(s))));
        self.record_read(who, "connector log", params)?;
        Ok(self
            .archive
            .runs()?
            .into_iter()
            .filter(|r| is_run_of(r, name))
            .filter(|r| since.is_none_or(|s| r.started >= s))
            .collect())
    }

    /// Runs each connector (or the one named) once: a continuous one takes
    /// everything its source has now. One that is paused, failed or already
    /// running inside the server is reported, not run.
    pub fn sync(&self, who: &Principal, name: Option<&str>) -> Result<Vec<Synced>> {
        self.check(who, Op::Connectors)?;
        let names: Vec<String> = match name {
            Some(n) => vec![self.connector_record(n).map(|_| n.to_string())?],
            None => self
                .archive
                .connectors()?
                .into_iter()
                .map(|(n, _)| n)
                .collect(),
        };
        let mut out = Vec::new();
        for n in names {
            let end = match self.run_connector(&n, Mode::Once, &self.stopping) {
                Some(end) => end?,
                None => RunEnd {
                    run: None,
                    status: "not run: it runs continuously inside the server".into(),
                    failed: false,
                    counters: Default::default(),
                },
            };
            let event = self.event(
                who,
                "sync",
                vec![
                    p("connector", &n),
                    p("run", &end.run.map(|r| r.to_string()).unwrap_or_default()),
                ],
                &end.status,
            );
            self.archive.audit(event)?;
            out.push(Synced { name: n, end });
        }
        Ok(out)
    }

    /// Runs a connector in `mode` until it ends or `stop` is set; `None`
    /// when it is running already.
    pub fn run_connector(
        &self,
        name: &str,
        mode: Mode,
        stop: &AtomicBool,
    ) -> Option<Result<RunEnd>> {
        let _running = Running::claim(&self.running, name)?;
        let clock = self.clock;
        let runner = Runner {
            archive: &self.archive,
            clock: &clock,
            committed: &|more| self.refresh_index(more),
            stop,
        };
        Some(runner.run(name, mode))
    }

    fn is_running(&self, name: &str) -> bool {
        lock(&self.running).contains(name)
    }

    /// Brings the search index up to what was committed, unless a writer
    /// of it is at work (it catches up itself). While a source has a
    /// backlog (`more`), at most once a second: each catching up commits
    /// the index, and a search catches up by itself anyway.
    fn refresh_index(&self, more: bool) {
        let now = std::time::Instant::now();
        {
            let mut last = lock(&self.last_refresh);
            if more
                && last.is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1))
            {
                return;
            }
            *last = Some(now);
        }
        if let Ok(mut guard) = self.writer.try_lock()
            && let Some(ix) = guard.as_mut()
        {
            match ix.catch_up(&self.archive) {
                Ok(_) => self.reader_stale(),
                Err(e) => tracing::warn!("the index did not catch up: {e}"),
            }
        }
    }

    fn connector_json(&self, name: &str, rec: &ConnectorRecord) -> Result<Value> {
        let pos = self.archive.connector_position(name)?;
        let connections: Vec<Value> = self
            .archive
            .connections(name)?
            .into_iter()
            .map(|(id, c)| {
                json!({
                    "id": id, "user_id": c.user_id, "user": c.user_name, "username": c.username,
                    "enabled": c.enabled, "rights": c.rights, "date": c.date.map(crate::time::iso),
                    "recorded": crate::time::iso(c.seen),
                })
            })
            .collect();
        Ok(json!({
            "name": name, "kind": rec.kind, "state": state_text(&rec.state),
            "settings": rec.settings, "mapping": rec.mapping, "mailbox": rec.mailbox,
            "created": crate::time::iso(rec.created), "actor": rec.actor,
            "position": pos.cursor, "connections": connections,
        }))
    }
}

/// A connector marked as running until this is dropped (however the run
/// ends, a panic included).
struct Running<'a> {
    set: &'a Mutex<HashSet<String>>,
    name: &'a str,
}

impl<'a> Running<'a> {
    /// `None` when it runs already. The mark is made only when the name was
    /// free, and the lock is let go before anything else: a mark built and
    /// dropped for a name that runs would take the lock again (a deadlock)
    /// and unmark the run that holds the name.
    fn claim(set: &'a Mutex<HashSet<String>>, name: &'a str) -> Option<Running<'a>> {
        let free = lock(set).insert(name.to_string());
        free.then(|| Running { set, name })
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(self.name);
    }
}

/// Whether `r` is one of connector `name`'s runs.
fn is_run_of(r: &RunRecord, name: &str) -> bool {
    r.kind == "connector" && r.args.first().is_some_and(|a| a == name)
}

fn status_json(
    name: &str,
    rec: &ConnectorRecord,
    runs: &[RunRecord],
    now: i64,
    running: bool,
) -> Value {
    let iso = crate::time::iso;
    let mine: Vec<&RunRecord> = runs.iter().filter(|r| is_run_of(r, name)).collect();
    let errors: u64 = mine
        .iter()
        .filter(|r| r.started >= now - 86_400)
        .flat_map(|r| &r.files)
        .map(|f| f.failures.len() as u64)
        .sum();
    let last = mine.last().map(|r| json!({
        "run": r.id, "status": r.status.as_str(), "started": iso(r.started), "finished": r.finished.map(iso),
    }));
    json!({
        "name": name, "kind": rec.kind, "state": state_text(&rec.state), "running": running,
        "last_contact": rec.last_contact.map(iso), "last_capture": rec.last_capture.map(iso),
        "items_last_24h": items_since(rec, now - 86_400),
        "failed_items_last_24h": errors,
        "last_error": rec.last_error.as_ref().map(|(t, e)| json!({"at": iso(*t), "error": e})),
        "possible_losses": rec.losses.iter().map(|(a, b)| json!({"from": iso(*a), "to": iso(*b)})).collect::<Vec<_>>(),
        "schedule": rec.settings.get("every").map_or("continuous".to_string(), |e| format!("every {e}")),
        "next_run": crate::connector::sftp::next_run(rec).map(|t| iso(t.max(now))),
        "last_run": last,
    })
}

/// Items captured since `t`, by the connector's hourly counts.
fn items_since(rec: &ConnectorRecord, t: i64) -> u64 {
    let from = t.div_euclid(3600);
    rec.hourly
        .iter()
        .filter(|(h, _)| *h > from)
        .map(|(_, n)| n)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_of_a_running_connector_is_refused_and_leaves_the_first() {
        let set = Mutex::new(HashSet::new());
        let first = Running::claim(&set, "desk").expect("free");
        assert!(Running::claim(&set, "desk").is_none());
        assert!(lock(&set).contains("desk"), "the first run is still marked");
        drop(first);
        assert!(Running::claim(&set, "desk").is_some());
    }
}
