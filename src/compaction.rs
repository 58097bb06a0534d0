//! `tgvault compact`: gives back the space retention freed, by rewriting the
//! packs whose live records fill less than a share of them (see
//! `store::compact` for how that stays crash-safe and keeps destroyed bytes
//! destroyed). Every moved pack is on the audit trail, in the transaction
//! that moved it. Retention runs it after every run that deleted something.
//! The command also rewrites the catalogue when its rows fill too little of
//! its file.

use crate::error::{Error, Result};
use crate::import::RunContext;
use crate::store::Archive;
use crate::store::audit::Event;
use serde::Serialize;

/// A pack is rewritten when its live records fill less than this share of
/// it, in per cent, unless told otherwise.
pub const DEFAULT_BELOW: u8 = 50;

/// The catalogue is rewritten when its rows fill less than this share of its
/// file, in per cent: an import's scattered inserts leave about half of it
/// unused, a rewrite about 3%.
pub const CATALOGUE_BELOW: u8 = 75;

/// What one compaction did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Compacted {
    /// Every pack, with what it held.
    pub packs: u64,
    /// The packs rewritten: id, records moved, bytes before and after.
    pub rewritten: Vec<(u32, u64, u64, u64)>,
    /// Bytes given back to the file system.
    pub freed: u64,
    /// Packs left as they are because a record in them is damaged, and why
    /// (`tgvault verify` names the item).
    pub skipped: Vec<(u32, String)>,
    /// The catalogue's file length before and after, when it was rewritten.
    pub catalogue: Option<(u64, u64)>,
    /// Filing logs found damaged, and copies logged anew from the catalogue.
    pub mended: crate::store::filings::Mended,
}

/// Rewrites every pack whose live bytes are under `below` per cent of its
/// length (the one being written to is sealed first: appends go on in a new
/// one).
pub fn compact(archive: &Archive, below: u8, ctx: &RunContext) -> Result<Compacted> {
    if !(1..=100).contains(&below) {
        return Err(Error::Usage(format!(
            "pack share {below}: a share in per cent, 1 to 100"
        )));
    }
    // The filing log first: a damaged log would keep its pack from being
    // compacted, and `recover` from placing the copies it named.
    let mended = archive.mend_filing_logs()?;
    let usage = archive.pack_usage()?;
    let mut out = Compacted {
        packs: usage.len() as u64,
        mended,
        ..Compacted::default()
    };
    for u in usage {
        let sparse = u128::from(u.live) * 100 < u128::from(u.committed) * u128::from(below);
        if u.committed == 0 || !sparse {
            continue;
        }
        let moved = match archive.compact_pack(u.pack, &mut |tx, m| {
            tx.audit(event(ctx, "compact pack", m)).map(drop)
        }) {
            Ok(moved) => moved,
            Err(Error::Corrupt(why)) => {
                tracing::warn!(pack = u.pack, %why, "pack not compacted");
                out.skipped.push((u.pack, why));
                continue;
            }
            Err(e) => return Err(e),
        };
        out.freed += moved.old_bytes.saturating_sub(moved.new_bytes);
        out.rewritten
            .push((moved.pack, moved.records, moved.old_bytes, moved.new_bytes));
    }
    archive.audit(Event {
        time: (ctx.clock)(),
        actor: ctx.actor.clone(),
        action: "compact".into(),
        params: vec![("below".into(), format!("{below}%"))],
        counts: vec![
            ("packs".into(), out.packs),
            ("rewritten".into(), out.rewritten.len() as u64),
            ("freed bytes".into(), out.freed),
            ("skipped (damaged)".into(), out.skipped.len() as u64),
            ("damaged filing logs dropped".into(), mended.dropped),
            ("copies logged anew".into(), mended.logged),
        ],
        outcome: "ok".into(),
    })?;
    Ok(out)
}

/// Rewrites the catalogue into a fresh file (see
/// `Archive::compact_catalogue`) when its rows fill less than `below` per
/// cent of it: an import's scattered inserts leave pages half full, and
/// retention's deletions leave them emptier. Audited with both lengths.
/// Returns the archive opened again, and the lengths when it was rewritten.
pub fn compact_catalogue(
    archive: Archive,
    below: u8,
    ctx: &RunContext,
) -> Result<(Archive, Option<(u64, u64)>)> {
    if !(1..=100).contains(&below) {
        return Err(Error::Usage(format!(
            "catalogue share {below}: a share in per cent, 1 to 100"
        )));
    }
    let (len, live) = archive.catalogue_usage()?;
    if u128::from(live) * 100 >= u128::from(len) * u128::from(below) {
        return Ok((archive, None));
    }
    let (archive, before, after) = archive.compact_catalogue()?;
    archive.audit(Event {
        time: (ctx.clock)(),
        actor: ctx.actor.clone(),
        action: "compact catalogue".into(),
        params: vec![("below".into(), format!("{below}%"))],
        counts: vec![
            ("bytes before".into(), before),
            ("bytes after".into(), after),
        ],
        outcome: "ok".into(),
    })?;
    Ok((archive, Some((before, after))))
}

fn event(ctx: &RunContext, action: &str, m: &crate::store::Moved) -> Event {
    Event {
        time: (ctx.clock)(),
        actor: ctx.actor.clone(),
        action: action.into(),
        params: vec![("pack".into(), m.pack.to_string())],
        counts: vec![
            ("records".into(), m.records),
            ("bytes before".into(), m.old_bytes),
            ("bytes after".into(), m.new_bytes),
        ],
        outcome: "ok".into(),
    }
}
