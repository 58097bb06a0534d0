//! `tgvault backup`, `restore` and `recover`: a duplicate of the archive
//! kept apart (SEC 17a-4(f)), brought up to date incrementally, the way back
//! from it, and what the damaged archive still holds put back after it. How the copy stays consistent beside a writer is in
//! `store::backup`; here each is checked and put on the audit trail.

use crate::error::{Error, Result};
use crate::import::RunContext;
use crate::mapping::Mapping;
use crate::report::ImportReport;
use crate::store::Archive;
use crate::store::audit::{Event, Recorded, Recovered};
use crate::store::backup::{BackupStats, RestoreStats};
use crate::store::salvage::Salvage;
use std::path::Path;

/// Brings the backup in `dest` up to date. The entry goes on the trail, or,
/// when another process holds the archive (this one then reads it
/// read-only), into its pending entries, appended by the next writer.
pub fn backup(archive: &Archive, dest: &Path, ctx: &RunContext) -> Result<(BackupStats, Recorded)> {
    let params = vec![("to".to_string(), dest.display().to_string())];
    let result = archive.backup_to(dest, (ctx.clock)());
    let (counts, outcome) = match &result {
        Ok(s) => (
            vec![
                ("passes".into(), u64::from(s.passes)),
                ("packs copied".into(), s.packs),
                ("pack bytes".into(), s.pack_bytes),
                ("blob files".into(), s.blob_files),
                ("blob bytes".into(), s.blob_bytes),
                ("catalogue rows written".into(), s.rows_written),
                ("catalogue rows removed".into(), s.rows_removed),
                ("records zeroed".into(), s.records_zeroed),
                ("files removed".into(), s.files_removed),
                ("audit entries".into(), s.audit_seq),
            ],
            "ok".to_string(),
        ),
        Err(e) => (vec![], format!("failed: {e}")),
    };
    let recorded = archive.audit_read(Event {
        time: (ctx.clock)(),
        actor: ctx.actor.clone(),
        action: "backup".into(),
        params,
        counts,
        outcome,
    })?;
    Ok((result?, recorded))
}

/// Brings the backup in `from` back as the archive in `target`; with
/// `replace`, an archive already there is moved aside (never deleted) to a
/// sibling directory named after the time. The restored archive's trail
/// records the restore.
pub fn restore(
    from: &Path,
    target: &Path,
    replace: bool,
    ctx: &RunContext,
) -> Result<RestoreStats> {
    let now = (ctx.clock)();
    let aside = replace.then(|| {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "archive".into());
        target.with_file_name(format!(
            "{name}.replaced-{}",
            crate::time::iso(now).replace(':', "")
        ))
    });
    if aside.as_ref().is_some_and(|a| a.exists()) {
        return Err(Error::Usage(format!(
            "{}: already exists; try again in a second",
            aside.as_ref().expect("checked").display()
        )));
    }
    let stats = crate::store::backup::restore(from, target, aside.as_deref())?;
    let archive = Archive::open_existing(target)?;
    let mut params = vec![
        ("from".to_string(), from.display().to_string()),
        ("backup of".to_string(), stats.mark.source.clone()),
        ("taken".to_string(), crate::time::iso(stats.mark.taken)),
    ];
    if let Some(a) = &stats.replaced {
        params.push(("replaced archive moved to".into(), a.display().to_string()));
    }
    archive.audit(Event {
        time: now,
        actor: ctx.actor.clone(),
        action: "restore".into(),
        params,
        counts: vec![
            ("audit entries in the backup".into(), stats.mark.audit_seq),
            ("packs".into(), stats.packs),
            ("pack bytes".into(), stats.pack_bytes),
            ("blob files".into(), stats.blob_files),
        ],
        outcome: "ok".into(),
    })?;
    Ok(stats)
}

/// What `tgvault recover` put back.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecoverOutcome {
    /// The audit entries from the journal.
    #[serde(flatten)]
    pub journal: Recovered,
    /// The journal read, if any.
    pub journal_path: Option<String>,
    /// The item versions filed again from the packs (with `from`).
    pub items: Option<ImportReport>,
    /// Holds, cases and policies changed since the backup, put back in
    /// force (each as `ACTION WHAT (entry N)`).
    pub settings: Vec<String>,
    /// Copies retention had destroyed since the backup, destroyed again.
    pub redone: crate::retention::RunOutcome,
}

impl RecoverOutcome {
    /// Whether something could not be put back.
    pub fn partial(&self) -> bool {
        self.journal.stopped.is_some() || self.items.as_ref().is_some_and(ImportReport::has_errors)
    }
}

/// After a damaged catalogue was replaced by a backup's (`restore
/// --replace` keeps the damaged archive aside): puts back on the trail the
/// entries `journal` holds past it, and, with `from` (the archive kept
/// aside), files again every item version its packs hold that the catalogue
/// lacks, where `mapping` resolves it (see `import::salvage`). `from`
/// implies its own `audit.journal` when no `journal` is named. The holds,
/// cases and policies the journal changed are put back in force. Then what
/// retention destroyed since the backup, as the journal tells, is destroyed
/// again unless a hold now covers it (`retention::redo_deletions`).
pub fn recover(
    archive: &Archive,
    journal: Option<&Path>,
    from: Option<&Path>,
    mapping: &Mapping,
    ctx: &RunContext,
) -> Result<RecoverOutcome> {
    let journal = journal
        .map(Path::to_path_buf)
        .or_else(|| from.map(|d| d.join("audit.journal")).filter(|p| p.exists()));
    if journal.is_none() && from.is_none() {
        return Err(Error::Usage(
            "recover needs a journal or an archive to recover from".into(),
        ));
    }
    if let Some(d) = from
        && d.canonicalize().ok() == archive.dir().canonicalize().ok()
    {
        return Err(Error::Usage(format!(
            "{}: this is the archive itself; name the one kept aside by restore",
            d.display()
        )));
    }
    let mut out = RecoverOutcome::default();
    let mut before = u64::MAX;
    if let Some(j) = &journal {
        before = archive.last_audit_seq()?;
        out.journal = archive.recover_audit(j, (ctx.clock)(), &ctx.actor)?;
        out.journal_path = Some(j.display().to_string());
    }
    // Every `recovered entry` on the trail, read once: the settings are
    // redone from those this call appended, the deletions from all of them.
    let (appended, earlier): (Vec<_>, Vec<_>) = archive
        .audit_entries(None)?
        .into_iter()
        .filter(|e| e.event.action == "recovered entry")
        .partition(|e| e.seq > before);
    let appended: Vec<Event> = appended.into_iter().map(|e| e.event).collect();
    out.settings = crate::retention::redo_settings(archive, &appended, ctx)?;
    if let Some(d) = from {
        let salvage = Salvage::open(d, archive)?;
        let folder = crate::model::DEFAULT_FOLDER;
        out.items = Some(crate::import::salvage(
            archive, &salvage, mapping, folder, ctx,
        )?);
    }
    let all: Vec<Event> = earlier
        .into_iter()
        .map(|e| e.event)
        .chain(appended)
        .collect();
    out.redone = crate::retention::redo_deletions(archive, &all, ctx)?;
    archive.audit(recover_event(&out, from, ctx))?;
    Ok(out)
}

fn recover_event(out: &RecoverOutcome, from: Option<&Path>, ctx: &RunContext) -> Event {
    let mut params = Vec::new();
    if let Some(j) = &out.journal_path {
        params.push(("journal".to_string(), j.clone()));
    }
    if let Some(d) = from {
        params.push(("from".to_string(), d.display().to_string()));
    }
    let mut counts = vec![
        ("shared entries".into(), out.journal.common_seq),
        ("entries put back".into(), out.journal.appended),
        ("already put back".into(), out.journal.already),
    ];
    if let Some(r) = &out.items {
        let t = r.totals();
        counts.push(("run".into(), r.run));
        counts.push((
            "versions put back".into(),
            t.imported + t.partially_imported,
        ));
        counts.push(("versions quarantined".into(), t.quarantined));
        counts.push(("versions already held".into(), t.skipped));
        counts.push(("records unreadable".into(), t.failed));
    }
    counts.push((
        "copies deleted again".into(),
        out.redone.deleted.len() as u64,
    ));
    counts.push((
        "copies held, not deleted again".into(),
        out.redone.held_at_deletion,
    ));
    Event {
        time: (ctx.clock)(),
        actor: ctx.actor.clone(),
        action: "recover".into(),
        params,
        counts,
        outcome: out
            .journal
            .stopped
            .clone()
            .map_or("ok".into(), |s| format!("stopped: {s}")),
    }
}
