//! Connectors: sources that bring items in by themselves. Each kind is one
//! module behind [`Source`]; this module holds what they share: the
//! settings an administrator gives, the run that files what a source hands
//! over (its position committed with the items it covers), the admin log
//! (one run record per sync, or per UTC day of a continuous connector), and
//! retrying transient failures with backoff.

pub mod bot;
pub mod secret;
pub mod sftp;
pub mod smtp;

use crate::error::{Error, Result};
use crate::import::capture::{Captured, Filed, file_captured};
use crate::mapping::Mapping;
use crate::report::{Anomaly, Counters, Failure, FileReport, FileStatus};
use crate::store::Archive;
use crate::store::records::{
    ConnectionRecord, ConnectorPosition, ConnectorRecord, ConnectorState, RunRecord, RunStatus,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The kinds of connector there are.
pub const KINDS: &[&str] = &[bot::KIND, sftp::KIND, smtp::KIND];

/// How long a run goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Take what the source has now, then end (`tgvault sync`).
    Once,
    /// Go on until stopped (inside `tgvault serve`).
    Continuous,
}

/// Why a source could not give what it has.
#[derive(Debug)]
pub enum SourceError {
    /// Worth retrying: a timeout, a 5xx, a dropped connection, a rate limit
    /// (with the wait the source asked for).
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying will not help (credentials refused): the connector stops.
    Permanent(String),
    /// The archive failed: the run stops.
    Archive(Error),
}

impl From<Error> for SourceError {
    fn from(e: Error) -> Self {
        SourceError::Archive(e)
    }
}

/// What one step of a source did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// It handed over this many source records.
    Took(u64),
    /// It had nothing now.
    Empty,
}

/// A source of items: one kind of connector.
pub trait Source {
    /// Asks the source for what it has (waiting up to its poll time when
    /// `wait`), and hands it to `sink` with the position after it.
    fn step(&mut self, sink: &mut Sink<'_>, wait: bool) -> Result<Step, SourceError>;
}

/// What a source hands over in one step, filed in one transaction.
#[derive(Default)]
pub struct Batch {
    pub items: Vec<Captured>,
    pub position: ConnectorPosition,
    /// Business connections reported, by id.
    pub connections: Vec<(String, ConnectionRecord)>,
    /// Source records that failed alone, with why (the position still
    /// moves past them).
    pub failures: Vec<Failure>,
    /// Source records that carry no item.
    pub not_items: u64,
    /// Notes about the source, by kind (a rate limit met, a file refused).
    pub notes: Vec<String>,
    /// A span without contact in which items may have been lost.
    pub loss: Option<(i64, i64)>,
    /// Whether the source has more at once (this batch was a full page).
    pub more: bool,
}

/// Where a source files what it took: the archive, the run, the mapping.
pub struct Sink<'a> {
    archive: &'a Archive,
    name: &'a str,
    run: u64,
    mapping: Mapping,
    clock: &'a dyn Fn() -> i64,
    /// Called after each committed batch, with whether the source has more
    /// at once (the search index catches up, now or soon).
    committed: &'a dyn Fn(bool),
    /// Transient failures met since the last committed batch.
    retried: Vec<String>,
}

impl Sink<'_> {
    pub fn archive(&self) -> &Archive {
        self.archive
    }

    pub fn name(&self) -> &str {
        self.name
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Files `batch` with its position and the run's counters, in one
    /// transaction.
    pub fn file(&mut self, batch: Batch) -> Result<()> {
        let Batch {
            items,
            position,
            connections,
            failures,
            not_items,
            notes,
            loss,
            more,
        } = batch;
        let any = !items.is_empty();
        let now = self.now();
        let (name, run) = (self.name, self.run);
        let retried = std::mem::take(&mut self.retried);
        let captured = connections.clone();
        file_captured(
            self.archive,
            run,
            &self.mapping,
            crate::model::DEFAULT_FOLDER,
            items,
            |tx, filed: &Filed| {
                tx.put_connector_position(name, &position)?;
                for (id, c) in &connections {
                    tx.put_connection(name, id, c)?;
                }
                let mut rec = tx.run(run)?;
                if let Some(f) = rec.files.first_mut() {
                    let mut c = filed.counters.clone();
                    c.not_items += not_items;
                    f.counters.add(&c);
                    f.failures.extend(failures.iter().cloned());
                    merge_notes(&mut f.anomalies, &filed.anomalies, &notes, &retried);
                }
                tx.put_run(&rec)?;
                if let Some(mut c) = tx.connector(name)? {
                    c.last_contact = Some(now);
                    if any {
                        c.last_capture = Some(now);
                    }
                    c.losses.extend(loss);
                    count_hour(&mut c.hourly, now, filed.counters.available_from_source);
                    tx.put_connector(name, &c)?;
                }
                Ok(())
            },
        )?;
        for (id, c) in captured {
            self.audit_connection(&id, &c)?;
        }
        (self.committed)(more);
        Ok(())
    }

    /// Records a business connection on the audit trail: which account
    /// connected the bot, with what rights, enabled or not.
    fn audit_connection(&self, id: &str, c: &ConnectionRecord) -> Result<()> {
        let mut params = vec![
            ("connector".to_string(), self.name.to_string()),
            ("connection".to_string(), id.to_string()),
            ("user_id".to_string(), c.user_id.to_string()),
            ("enabled".to_string(), c.enabled.to_string()),
        ];
        if let Some(u) = &c.username {
            params.push(("username".into(), u.clone()));
        }
        params.extend(c.rights.iter().map(|r| ("right".to_string(), r.clone())));
        self.archive.audit(crate::store::audit::Event {
            time: self.now(),
            actor: format!("connector:{}", self.name),
            action: "business connection".into(),
            params,
            counts: vec![],
            outcome: if c.enabled { "enabled" } else { "disabled" }.into(),
        })?;
        Ok(())
    }
}

/// Adds this batch's notes to the run's, counting each kind once.
fn merge_notes(into: &mut Vec<Anomaly>, found: &[Anomaly], notes: &[String], retried: &[String]) {
    let mut add = |what: &str, n: u64| match into.iter_mut().find(|a| a.what == what) {
        Some(a) => a.count += n,
        None => into.push(Anomaly {
            what: what.to_string(),
            count: n,
        }),
    };
    for a in found {
        add(&a.what, a.count);
    }
    for n in notes {
        add(n, 1);
    }
    for r in retried {
        add(&format!("retried after: {r}"), 1);
    }
}

/// Adds `n` items to the hour `now` falls in, forgetting hours older than
/// a day.
fn count_hour(hourly: &mut Vec<(i64, u64)>, now: i64, n: u64) {
    let hour = now.div_euclid(3600);
    hourly.retain(|(h, _)| *h > hour - 25);
    match hourly.last_mut() {
        Some((h, c)) if *h == hour => *c += n,
        _ if n > 0 => hourly.push((hour, n)),
        _ => {}
    }
}

/// The UTC day `t` falls in (days since 1970-01-01).
pub fn day_of(t: i64) -> i64 {
    t.div_euclid(86_400)
}

/// Who runs a connector, and how it tells the rest of the service.
pub struct Runner<'a> {
    pub archive: &'a Archive,
    pub clock: &'a dyn Fn() -> i64,
    pub committed: &'a dyn Fn(bool),
    pub stop: &'a AtomicBool,
}

/// How a run ended.
#[derive(Debug)]
pub struct RunEnd {
    pub run: Option<u64>,
    pub status: String,
    /// Whether anything failed: the run, an item, or the connector.
    pub failed: bool,
    pub counters: Counters,
}

impl Runner<'_> {
    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Runs connector `name` in `mode`; returns when it has taken what its
    /// source has (`Once`), when stopped, paused or removed, or when it
    /// fails for good (its state then says why).
    pub fn run(&self, name: &str, mode: Mode) -> Result<RunEnd> {
        let rec = self
            .archive
            .connector(name)?
            .ok_or_else(|| Error::NotFound(format!("connector '{name}'")))?;
        if rec.state != ConnectorState::Active {
            return Ok(RunEnd {
                run: None,
                status: format!("not run: {}", state_text(&rec.state)),
                failed: matches!(rec.state, ConnectorState::Failed(_)),
                counters: Counters::default(),
            });
        }
        let domains: Vec<String> = rec
            .settings
            .get("org-domain")
            .map(|d| d.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let mapping = match &rec.mapping {
            Some(p) => Mapping::from_path(std::path::Path::new(p))?,
            None => Mapping::default(),
        }
        .with_org_domains(&domains)?;
        // The run is on record before the source opens: a source that will
        // not open (a secret refused, a port taken) fails a run the admin
        // log shows.
        let mut run = self.open_run(name, &rec)?;
        let mut source = match open_source(self.archive, name, &rec) {
            Ok(s) => s,
            Err(SourceError::Permanent(why)) => return self.fail(name, Some(run.0), &why),
            Err(SourceError::Transient { reason, .. }) => {
                return self.fail(name, Some(run.0), &reason);
            }
            Err(SourceError::Archive(e)) => {
                self.close_run(name, run.0, RunStatus::Failed)?;
                return Err(e);
            }
        };
        let mut sink = Sink {
            archive: self.archive,
            name,
            run: run.0,
            mapping,
            clock: self.clock,
            committed: self.committed,
            retried: Vec::new(),
        };
        let mut backoff = Backoff::default();
        loop {
            if self.stopping() {
                return self.close_run(name, run.0, RunStatus::Interrupted);
            }
            if !self.still_active(name)? {
                return self.close_run(name, run.0, RunStatus::Completed);
            }
            if mode == Mode::Continuous && day_of(self.now()) != run.1 {
                self.close_run(name, run.0, RunStatus::Completed)?;
                let rec = self.archive.connector(name)?.unwrap_or(rec.clone());
                run = self.open_run(name, &rec)?;
                sink.run = run.0;
            }
            match source.step(&mut sink, mode == Mode::Continuous) {
                Ok(Step::Took(_)) => backoff.reset(),
                Ok(Step::Empty) if mode == Mode::Once => {
                    return self.close_run(name, run.0, RunStatus::Completed);
                }
                Ok(Step::Empty) => backoff.reset(),
                Err(SourceError::Transient { reason, .. })
                    if mode == Mode::Once && backoff.tries + 1 >= ONCE_TRIES =>
                {
                    // A sync ends: the next one starts where this one stopped.
                    let why = format!("gave up after {ONCE_TRIES} tries: {reason}");
                    self.note_error(name, &why)?;
                    return self.give_up(name, run.0, &why);
                }
                Err(SourceError::Transient {
                    reason,
                    retry_after,
                }) => {
                    tracing::warn!(connector = name, "{reason}; retrying");
                    self.note_error(name, &reason)?;
                    sink.retried.push(reason);
                    self.sleep(retry_after.unwrap_or_else(|| backoff.next()));
                }
                Err(SourceError::Permanent(why)) => return self.fail(name, Some(run.0), &why),
                Err(SourceError::Archive(e)) => {
                    self.close_run(name, run.0, RunStatus::Failed)?;
                    return Err(e);
                }
            }
        }
    }

    /// Ends a run that could not reach its source; the connector stays
    /// active.
    fn give_up(&self, name: &str, run: u64, why: &str) -> Result<RunEnd> {
        self.archive.write(|tx| {
            let mut rec = tx.run(run)?;
            if let Some(f) = rec.files.first_mut() {
                f.status = FileStatus::Failed(why.to_string());
            }
            tx.put_run(&rec)
        })?;
        self.close_run(name, run, RunStatus::Failed)
    }

    fn still_active(&self, name: &str) -> Result<bool> {
        Ok(self
            .archive
            .connector(name)?
            .is_some_and(|c| c.state == ConnectorState::Active))
    }

    /// Sleeps `d`, waking early when stopped.
    fn sleep(&self, d: Duration) {
        let until = std::time::Instant::now() + d;
        while !self.stopping() {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    /// Starts the run record a connector files into.
    fn open_run(&self, name: &str, rec: &ConnectorRecord) -> Result<(u64, i64)> {
        let now = self.now();
        let day = day_of(now);
        let actor = format!("connector:{name}");
        let args = vec![name.to_string(), rec.kind.clone()];
        self.archive.write(|tx| {
            let id = tx.start_run("connector", &actor, args, now)?;
            let mut run = tx.run(id)?;
            run.files = vec![FileReport {
                path: format!("{} {name}", rec.kind),
                format: rec.kind.clone(),
                status: FileStatus::Imported,
                counters: Counters::default(),
                failures: vec![],
                anomalies: vec![],
            }];
            tx.put_run(&run)?;
            if let Some(mut c) = tx.connector(name)? {
                c.run = Some((id, day));
                tx.put_connector(name, &c)?;
            }
            Ok((id, day))
        })
    }

    /// Closes a run record and puts it on the audit trail.
    fn close_run(&self, name: &str, run: u64, status: RunStatus) -> Result<RunEnd> {
        let now = self.now();
        let rec = self.archive.write(|tx| {
            let mut rec: RunRecord = tx.run(run)?;
            let failed = rec.files.iter().any(|f| !f.failures.is_empty());
            rec.status = match status {
                RunStatus::Completed if failed => RunStatus::CompletedWithErrors,
                s => s,
            };
            rec.finished = Some(now);
            tx.put_run(&rec)?;
            tx.fold_blob_log()?;
            let c = rec
                .files
                .first()
                .map(|f| f.counters.clone())
                .unwrap_or_default();
            tx.audit(crate::store::audit::Event {
                time: now,
                actor: format!("connector:{name}"),
                action: "connector run".into(),
                params: vec![
                    ("connector".into(), name.to_string()),
                    ("run".into(), run.to_string()),
                ],
                counts: c.audit_counts(),
                outcome: rec.status.as_str().into(),
            })?;
            Ok(rec)
        })?;
        Ok(RunEnd {
            run: Some(run),
            status: rec.status.as_str().to_string(),
            failed: !matches!(rec.status, RunStatus::Completed | RunStatus::Interrupted),
            counters: rec
                .files
                .first()
                .map(|f| f.counters.clone())
                .unwrap_or_default(),
        })
    }

    fn note_error(&self, name: &str, why: &str) -> Result<()> {
        let now = self.now();
        self.archive.write(|tx| {
            if let Some(mut c) = tx.connector(name)? {
                c.last_error = Some((now, why.to_string()));
                tx.put_connector(name, &c)?;
            }
            Ok(())
        })
    }

    /// Stops a connector for good: its state says why, its run failed.
    fn fail(&self, name: &str, run: Option<u64>, why: &str) -> Result<RunEnd> {
        let now = self.now();
        self.archive.write(|tx| {
            if let Some(mut c) = tx.connector(name)? {
                c.state = ConnectorState::Failed(why.to_string());
                c.last_error = Some((now, why.to_string()));
                tx.put_connector(name, &c)?;
            }
            if let Some(run) = run {
                let mut rec = tx.run(run)?;
                if let Some(f) = rec.files.first_mut() {
                    f.status = FileStatus::Failed(why.to_string());
                }
                tx.put_run(&rec)?;
            }
            Ok(())
        })?;
        tracing::error!(connector = name, "stopped: {why}");
        match run {
            Some(run) => self.close_run(name, run, RunStatus::Failed),
            None => Ok(RunEnd {
                run: None,
                status: format!("failed: {why}"),
                failed: true,
                counters: Counters::default(),
            }),
        }
    }
}

pub fn state_text(s: &ConnectorState) -> String {
    match s {
        ConnectorState::Active => "active".into(),
        ConnectorState::Paused => "paused".into(),
        ConnectorState::Failed(why) => format!("failed: {why}"),
    }
}

/// The source a connector's record describes.
fn open_source(
    archive: &Archive,
    name: &str,
    rec: &ConnectorRecord,
) -> Result<Box<dyn Source>, SourceError> {
    match rec.kind.as_str() {
        bot::KIND => Ok(Box::new(bot::BotSource::open(archive, name, rec)?)),
        smtp::KIND => Ok(Box::new(smtp::SmtpSource::open(archive, name, rec)?)),
        sftp::KIND => Ok(Box::new(sftp::SftpSource::open(archive, name, rec)?)),
        other => Err(SourceError::Permanent(format!(
            "connector kind '{other}' is not known to this version"
        ))),
    }
}

/// Checks a new connector's settings; the record to store.
pub fn configure(
    kind: &str,
    settings: BTreeMap<String, String>,
    mapping: Option<String>,
    mailbox: Option<String>,
    now: i64,
    actor: &str,
) -> Result<ConnectorRecord> {
    let settings = match kind {
        bot::KIND => bot::configure(settings)?,
        smtp::KIND => smtp::configure(settings)?,
        sftp::KIND => sftp::configure(settings)?,
        other => {
            return Err(Error::Usage(format!(
                "unknown connector kind '{other}' (known: {})",
                KINDS.join(", ")
            )));
        }
    };
    if let Some(m) = &mapping {
        Mapping::from_path(std::path::Path::new(m))?;
    }
    let mailbox = match mailbox {
        Some(m) => Some(
            crate::mapping::normalize_mailbox(&m)
                .ok_or_else(|| Error::Usage(format!("mailbox: '{m}' is not a mailbox address")))?,
        ),
        None => None,
    };
    Ok(ConnectorRecord {
        kind: kind.to_string(),
        settings,
        mapping,
        mailbox,
        state: ConnectorState::Active,
        created: now,
        actor: actor.to_string(),
        run: None,
        last_contact: None,
        last_capture: None,
        last_error: None,
        losses: vec![],
        hourly: vec![],
    })
}

/// Refuses the first option a kind does not take, naming those it does.
fn refuse_unknown(kind: &str, given: &BTreeMap<String, String>, takes: &str) -> Result<()> {
    match given.keys().next() {
        Some(k) => Err(Error::Usage(format!(
            "a {kind} connector takes no --{k} (it takes {takes})"
        ))),
        None => Ok(()),
    }
}

/// A path a setting names, made absolute (a server reads it later, from
/// its own working directory).
fn absolute(p: &str) -> Result<String> {
    std::path::absolute(p)
        .map(|p| p.display().to_string())
        .map_err(|e| Error::io(std::path::Path::new(p), e))
}

/// Whether `name` can name a connector: letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "'{}' cannot name a connector: use up to 64 letters, digits, '.', '_' or '-'",
            crate::service::printable(name)
        )))
    }
}

/// How many times in a row a `sync` tries a source that fails transiently
/// before its run ends (waiting 1 + 2 + 4 + 8 s between).
const ONCE_TRIES: u32 = 5;

/// Waits between retries: 1 s, doubling to 60 s.
#[derive(Default)]
struct Backoff {
    tries: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let secs = 1u64 << self.tries.min(6);
        self.tries += 1;
        Duration::from_secs(secs.min(60))
    }

    fn reset(&mut self) {
        self.tries = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.next().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        b.reset();
        assert_eq!(b.next().as_secs(), 1);
    }

    #[test]
    fn hourly_counts_keep_a_day() {
        let mut h = Vec::new();
        count_hour(&mut h, 3600 * 10, 3);
        count_hour(&mut h, 3600 * 10 + 5, 2);
        count_hour(&mut h, 3600 * 11, 0);
        assert_eq!(h, [(10, 5)]);
        count_hour(&mut h, 3600 * 40, 1);
        assert_eq!(h, [(40, 1)]);
    }

    #[test]
    fn connector_names_are_plain() {
        assert!(check_name("desk-1.bot_2").is_ok());
        for bad in ["", "a b", "../x", "x\0", &"n".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
