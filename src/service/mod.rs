//! The service layer: every user-facing operation as one function that takes
//! the principal acting, checks its permission ([`access`]), acts, and
//! appends its audit entry. The CLI and the HTTP server (`crate::server`)
//! call these and only render; a refusal is on the audit trail with who,
//! what and when.
//!
//! A [`Service`] owns one opened archive and, once something searches, its
//! index: searches share the index (a read lock each), and the index is
//! brought up to date under the write lock when the store moved on.

pub mod access;
mod audit;
mod browse;
mod cases;
mod connectors;
mod export;
mod forward;
pub use forward::{ForwardAdd, Forwarded};
mod imports;
mod maintain;
mod open;
mod retention;
mod search;
mod users;
mod values;
pub mod views;

pub use audit::entry_json;
pub use browse::{ItemView, MailboxRow, VersionView};
pub use cases::CaseHoldRequest;
pub use cases::case_json;
pub use connectors::{ConnectorAdd, Synced};
pub use imports::ImportRequest;
pub use maintain::VerifyReport;
pub use open::settle;
pub use retention::policy_action;
pub use search::{SearchHit, SearchRequest, SearchResults, parse_query};
pub use users::{NewToken, UserView, parse_roles};
pub use values::{mailbox_arg, parse_day, parse_time};

use crate::error::{Error, Result};
use crate::import::RunContext;
use crate::index::Index;
use crate::store::Archive;
use crate::store::audit::{Event, Recorded};
use access::{Op, Role};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// Someone with the archive's files in hand (the CLI without a server,
    /// or the archive directory's owner through the server's socket): the
    /// local administrator.
    Local,
    /// A user of the `access` table (an API token, or an OS account named
    /// with `--os-user`).
    User,
}

/// Who is acting: its name, its roles and the cases it is a member of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub kind: PrincipalKind,
    pub roles: BTreeSet<Role>,
    pub cases: BTreeSet<String>,
}

impl Principal {
    /// The local administrator (`actor` names it on the trail).
    pub fn local(actor: &str) -> Principal {
        Principal {
            name: actor.to_string(),
            kind: PrincipalKind::Local,
            roles: [Role::ComplianceAdmin].into(),
            cases: BTreeSet::new(),
        }
    }

    /// How the audit trail names it: `user:NAME` for a user, the local
    /// actor's own name (`os:USER`, or what `--actor` says) otherwise.
    pub fn actor(&self) -> String {
        match self.kind {
            PrincipalKind::Local => self.name.clone(),
            PrincipalKind::User => format!("user:{}", self.name),
        }
    }
}

/// A mutex whose data a panic cannot leave half-changed (a cache, a set of
/// names): taken even after a panic elsewhere.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A verified token's principal and expiry.
type Verified = (Principal, Option<i64>);

pub struct Service {
    archive: Archive,
    /// The handle that writes the index (imports, retention, catching up).
    writer: Mutex<Option<Index>>,
    /// The handle searches use (the writer's index shared, or on a
    /// read-only archive its own); the lock is held only to clone it.
    reader: RwLock<Option<Arc<Index>>>,
    clock: fn() -> i64,
    /// The principal of each token whose secret verified, by the token's
    /// SHA-256, with the token's expiry (Argon2 is slow by design). This
    /// service is the archive's one writer: every change to users, roles,
    /// memberships or tokens goes through it and empties this.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    /// Set when the server is stopping: an import stops after the batch it
    /// is filing (as a killed one would, to be completed by running it again).
    stopping: Arc<AtomicBool>,
    /// The connectors running now (in the server, or a `sync`).
    running: Mutex<HashSet<String>>,
    /// When a connector's commit last brought the index up to date.
    last_refresh: Mutex<Option<std::time::Instant>>,
}

pub(crate) fn p(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// A name from a request as an audit entry may quote it: at most 80
/// characters, control characters escaped.
pub fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_default).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

impl Service {
    /// A service over an opened archive; `clock` tells the time (the
    /// library itself never asks it).
    pub fn new(archive: Archive, clock: fn() -> i64) -> Service {
        Service {
            archive,
            writer: Mutex::new(None),
            reader: RwLock::new(None),
            clock,
            verified: Mutex::new(HashMap::new()),
            stopping: Arc::new(AtomicBool::new(false)),
            running: Mutex::new(HashSet::new()),
            last_refresh: Mutex::new(None),
        }
    }

    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The service's clock, for a request that names no time of its own.
    pub fn now_for_request(&self) -> i64 {
        self.now()
    }

    fn ctx(&self, who: &Principal, args: Vec<String>) -> RunContext<'_> {
        RunContext {
            actor: who.actor(),
            args,
            clock: &self.clock,
        }
    }

    fn event(
        &self,
        who: &Principal,
        action: &str,
        params: Vec<(String, String)>,
        outcome: &str,
    ) -> Event {
        Event {
            time: self.now(),
            actor: who.actor(),
            action: action.to_string(),
            params,
            counts: vec![],
            outcome: outcome.to_string(),
        }
    }

    /// Appends an entry that must be recorded even on an archive that
    /// cannot take it (a refusal, a read): see `Archive::audit_read`.
    fn audit_event(
        &self,
        action: &str,
        params: Vec<(String, String)>,
        outcome: &str,
        actor: &str,
    ) -> Result<Recorded> {
        self.archive.audit_read(Event {
            time: self.now(),
            actor: actor.to_string(),
            action: action.to_string(),
            params,
            counts: vec![],
            outcome: outcome.to_string(),
        })
    }

    /// Records a read that lists what the archive holds (`action`, with
    /// what it asked). Where the archive cannot take the entry it goes to
    /// the pending entries or the read log; only if it can go nowhere is
    /// that logged, and the read goes on.
    fn record_read(
        &self,
        who: &Principal,
        action: &str,
        params: Vec<(String, String)>,
    ) -> Result<()> {
        let recorded = self
            .archive
            .audit_read(self.event(who, action, params, "ok"))?;
        if let Recorded::Nowhere(why) = recorded {
            tracing::warn!("{action} by {}: recorded nowhere: {why}", who.actor());
        }
        Ok(())
    }

    /// Permits `op` to `who`, or records the refusal and refuses.
    pub fn check(&self, who: &Principal, op: Op) -> Result<()> {
        if access::permits(&who.roles, &who.cases, op) {
            return Ok(());
        }
        let roles: Vec<&str> = who.roles.iter().map(|r| r.name()).collect();
        let why = if roles.is_empty() {
            format!("{} holds no role", who.actor())
        } else {
            format!(
                "{} ({}) may not {}",
                who.actor(),
                roles.join(", "),
                op.name()
            )
        };
        self.audit_event(
            "denied",
            vec![p("operation", &op.name())],
            &format!("forbidden: {why}"),
            &who.actor(),
        )?;
        Err(Error::Forbidden(why))
    }

    /// Records a request nobody could be found behind, and the error that
    /// answers it.
    pub fn refuse_anonymous(&self, why: &str) -> Error {
        match self.audit_event("authentication failed", vec![], why, "anonymous") {
            Ok(_) => Error::Unauthenticated("no valid credentials".into()),
            Err(e) => e,
        }
    }

    /// Records the creation of the archive (`init`), by `who`.
    pub fn record_init(&self, who: &Principal, dir: &std::path::Path) -> Result<()> {
        let params = vec![p("archive", &dir.display().to_string())];
        self.archive.audit(self.event(who, "init", params, "ok"))?;
        Ok(())
    }

    /// Records a hold, case or retention request refused as wrong
    /// (`Usage`, `NotFound`): `{what} refused`, with the request's words.
    pub fn record_refusal(&self, who: &Principal, what: &str, args: &str, e: &Error) -> Result<()> {
        if !matches!(e, Error::Usage(_) | Error::NotFound(_)) {
            return Ok(());
        }
        let event = self.event(
            who,
            &format!("{what} refused"),
            vec![p("args", args)],
            &e.to_string(),
        );
        self.archive.audit(event)?;
        Ok(())
    }

    fn forget_tokens(&self) {
        lock(&self.verified).clear();
    }

    fn remember_token(&self, token: &str, who: &Principal, expires: Option<i64>) {
        let h = crate::model::sha256(token.as_bytes());
        let mut cache = lock(&self.verified);
        cache.insert(h, (who.clone(), expires));
    }

    /// The principal of a token verified before, while it has not expired.
    fn token_verified(&self, token: &str) -> Option<Principal> {
        let h = crate::model::sha256(token.as_bytes());
        let cache = lock(&self.verified);
        let (who, expires) = cache.get(&h)?;
        expires.is_none_or(|e| e > self.now()).then(|| who.clone())
    }

    /// Runs `f` on the index for searching. The index is first brought up
    /// to date with the store, unless a writer of it is at work (an import
    /// following its batches): then `f` sees what it has committed so far.
    /// On a read-only archive the index is used as it is.
    fn with_index<T>(&self, f: impl FnOnce(&Index) -> Result<T>) -> Result<T> {
        if !self.archive.is_read_only()
            && let Ok(mut guard) = self.writer.try_lock()
        {
            match guard.as_mut() {
                None => self.install(&mut guard, Index::open(&self.archive)?),
                Some(ix) if ix.behind(&self.archive)? > 0 => {
                    ix.catch_up(&self.archive)?;
                    self.reader_stale();
                }
                Some(_) => {}
            }
        }
        let current = self
            .reader
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let reader = match current {
            Some(r) => r,
            None if self.archive.is_read_only() => {
                let opened = Arc::new(Index::open_for_search(&self.archive)?);
                let mut slot = self.reader.write().unwrap_or_else(PoisonError::into_inner);
                slot.get_or_insert(opened).clone()
            }
            None => {
                // Another thread is opening the writer: it installs the reader.
                let mut guard = self.index_writer();
                if guard.is_none() {
                    self.install(&mut guard, Index::open(&self.archive)?);
                }
                drop(guard);
                let slot = self.reader.read().unwrap_or_else(PoisonError::into_inner);
                slot.clone()
                    .ok_or_else(|| Error::Internal("the index's reader was not installed".into()))?
            }
        };
        f(&reader)
    }

    /// The index's writing handle. One a panic left in an unknown state is
    /// dropped: it is opened again, and catches up from the store.
    fn index_writer(&self) -> MutexGuard<'_, Option<Index>> {
        match self.writer.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                let mut g = poisoned.into_inner();
                *g = None;
                self.writer.clear_poison();
                g
            }
        }
    }

    /// Makes `index` the writing handle, and its shared view the reader.
    fn install(&self, slot: &mut Option<Index>, index: Index) {
        *self.reader.write().unwrap_or_else(PoisonError::into_inner) =
            Some(Arc::new(index.for_search()));
        *slot = Some(index);
    }

    fn reader_stale(&self) {
        if let Some(r) = self
            .reader
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            r.mark_stale();
        }
    }

    /// Runs `f` on the index's writing handle (opened and caught up first
    /// if it is not); searches go on meanwhile, on the reading handle.
    fn with_index_mut<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let mut guard = self.index_writer();
        if guard.is_none() {
            let index = Index::open(&self.archive)?;
            self.install(&mut guard, index);
        }
        let out = f(guard.as_mut().expect("opened above"));
        self.reader_stale();
        out
    }

    /// Asks the long operations under way to stop at their next safe point
    /// (an import: after the batch it is filing).
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The connectors that should be running: those active.
    pub fn active_connectors(&self) -> Result<Vec<String>> {
        Ok(self
            .archive
            .connectors()?
            .into_iter()
            .filter(|(_, c)| c.state == crate::store::records::ConnectorState::Active)
            .map(|(n, _)| n)
            .collect())
    }

    /// Ends the service: waits for the index's background merges.
    pub fn close(self) -> Result<()> {
        // A handle a panic left behind is dropped, not closed.
        let index = self.writer.into_inner().unwrap_or_default();
        match index {
            Some(ix) => ix.close(),
            None => Ok(()),
        }
    }
}
