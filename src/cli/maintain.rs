//! The archive's upkeep: `verify` and `reindex` (through the service), and `init`, `backup`, `restore`, `recover` and `compact`, which work on the archive's files.

use super::*;

pub(super) fn run(
    command: Command,
    service: &Service,
    who: &Principal,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    match command {
        Command::Reindex(f) => {
            let t = std::time::Instant::now();
            let done = service.reindex(who)?;
            if f.json {
                emit(
                    out,
                    &json!({"documents": done.documents, "watermark": done.watermark, "seconds": t.elapsed().as_secs_f64()}),
                )?;
            } else {
                w(
                    out,
                    format_args!(
                        "indexed {} items in {:.1} s\n",
                        done.documents,
                        t.elapsed().as_secs_f64()
                    ),
                )?;
            }
            Ok(Outcome::Ok)
        }
        Command::Verify(f) => {
            let v = service.verify(who)?;
            for n in &v.notes {
                note!(err, "{n}");
            }
            let checked = &v.checked;
            if f.json {
                emit(
                    out,
                    &json!({"checked": checked, "errors": v.errors, "problems": v.problems}),
                )?;
            } else {
                for p in &v.problems {
                    w(
                        out,
                        format_args!("{}: {}: {}\n", p.severity, p.subject, p.problem),
                    )?;
                }
                w(
                    out,
                    format_args!(
                        "checked {} items, {} versions, {} filings, {} blobs ({} bytes), {} index documents: {}\n",
                        checked.items,
                        checked.versions,
                        checked.filings,
                        checked.blobs,
                        checked.blob_bytes,
                        checked.documents,
                        if v.errors == 0 {
                            "no problems".to_string()
                        } else {
                            format!("{} problem(s)", v.errors)
                        }
                    ),
                )?;
            }
            Ok(if v.errors == 0 {
                Outcome::Ok
            } else {
                Outcome::Partial
            })
        }
        _ => Err(Error::Internal("not a command of this group".into())),
    }
}

/// The commands that work on the archive's files themselves (never
/// through a server), as `actor`.
pub(super) fn run_direct(
    command: Command,
    dir: &std::path::Path,
    actor: &str,
    args: Vec<String>,
    out: &mut dyn Write,
) -> Result<Outcome> {
    let actor = || actor.to_string();
    match command {
        Command::Init(f) => {
            let created = !Archive::exists(dir);
            let archive = open_archive(dir, false, &actor())?;
            if created {
                let service = Service::new(archive, now);
                service.record_init(&Principal::local(&actor()), dir)?;
            }
            if f.json {
                emit(
                    out,
                    &json!({"archive": dir.display().to_string(), "created": created}),
                )?;
            } else if created {
                w(
                    out,
                    format_args!("created an empty archive in {}\n", dir.display()),
                )?;
            } else {
                w(
                    out,
                    format_args!("{} already holds an archive\n", dir.display()),
                )?;
            }
            Ok(Outcome::Ok)
        }
        Command::Backup { dest, out: f } => {
            let archive = open_reading(dir, &actor(), false)?;
            let ctx = RunContext {
                actor: actor(),
                args,
                clock: &now,
            };
            let (s, recorded) = crate::backup::backup(&archive, &dest, &ctx)?;
            say_recorded(&recorded);
            if f.json {
                emit_value(out, &s)?;
            } else {
                w(
                    out,
                    format_args!(
                        "backup {}: {} pack bytes in {} pack(s), {} blob file(s) ({} bytes), {} catalogue row(s) written, {} removed, {} destroyed record(s) zeroed, {} file(s) removed; {} audit entries\n",
                        dest.display(),
                        s.pack_bytes,
                        s.packs,
                        s.blob_files,
                        s.blob_bytes,
                        s.rows_written,
                        s.rows_removed,
                        s.records_zeroed,
                        s.files_removed,
                        s.audit_seq
                    ),
                )?;
            }
            Ok(Outcome::Ok)
        }
        Command::Recover {
            journal,
            from,
            mapping,
            out: f,
        } => {
            let mapping = match &mapping {
                Some(p) => Mapping::from_path(p)?,
                None => Mapping::default(),
            };
            let archive = open_archive(dir, true, &actor())?;
            let ctx = RunContext {
                actor: actor(),
                args,
                clock: &now,
            };
            let r = crate::backup::recover(
                &archive,
                journal.as_deref(),
                from.as_deref(),
                &mapping,
                &ctx,
            )?;
            if r.items.is_some() {
                Index::open(&archive)?.close()?;
            }
            print_recovered(out, &r, f.json)?;
            Ok(if r.partial() {
                Outcome::Partial
            } else {
                Outcome::Ok
            })
        }
        Command::Restore {
            backup,
            replace,
            out: f,
        } => {
            let ctx = RunContext {
                actor: actor(),
                args,
                clock: &now,
            };
            let s = crate::backup::restore(&backup, dir, replace, &ctx)?;
            if f.json {
                emit_value(out, &s)?;
            } else {
                w(
                    out,
                    format_args!(
                        "restored {} (a backup of {} taken {}) into {}: {} pack(s), {} blob file(s), {} audit entries{}\nthe search index is rebuilt by the next command that uses it\n",
                        backup.display(),
                        s.mark.source,
                        iso(s.mark.taken),
                        dir.display(),
                        s.packs,
                        s.blob_files,
                        s.mark.audit_seq,
                        s.replaced
                            .as_ref()
                            .map(|p| format!("; the archive that was there is now {}", p.display()))
                            .unwrap_or_default()
                    ),
                )?;
            }
            Ok(Outcome::Ok)
        }
        Command::Compact(a) => {
            let archive = open_archive(dir, true, &actor())?;
            let ctx = RunContext {
                actor: actor(),
                args,
                clock: &now,
            };
            let mut done = crate::compaction::compact(&archive, a.below, &ctx)?;
            let (_archive, catalogue) =
                crate::compaction::compact_catalogue(archive, a.catalogue_below, &ctx)?;
            done.catalogue = catalogue;
            if a.f.json {
                emit_value(out, &done)?;
            } else {
                print_compacted(out, &done)?;
            }
            Ok(Outcome::Ok)
        }
        _ => Err(Error::Internal("not a command of this group".into())),
    }
}

/// `compact` in a server that holds the archive: the packs are compacted;
/// the catalogue's rewrite, which needs the archive to itself, is not.
pub(super) fn compact_in_server(
    service: &Service,
    who: &Principal,
    a: CompactArgs,
    args: Vec<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    let done = service.compact_packs(who, a.below, args)?;
    if a.f.json {
        emit_value(out, &done)?;
    } else {
        print_compacted(out, &done)?;
    }
    note!(
        err,
        "note: the catalogue was not rewritten: that needs the archive to itself (stop the server, then run compact)"
    );
    Ok(Outcome::Ok)
}
