//! `tgvault backup` and `tgvault restore`: a duplicate of the archive kept
//! apart (SEC 17a-4(f)), brought up to date incrementally, and the way back
//! from it. How the copy stays consistent beside a writer is in
//! `store::backup`; here each is checked and put on the audit trail.

use crate::error::{Error, Result};
use crate::import::RunContext;
use crate::store::Archive;
use crate::store::audit::{Event, Recorded};
use crate::store::backup::{BackupStats, RestoreStats};
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
