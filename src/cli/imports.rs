//! `tgvault import`, `quarantine` (and its remap) and `runs`.

use super::*;

pub(super) fn run(
    command: Command,
    service: &Service,
    who: &Principal,
    args: Vec<String>,
    progress: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    match command {
        Command::Import(a) => {
            let mut opts = import_request(&a).options()?;
            opts.progress = progress;
            opts.batch_items = a.batch_items.max(1);
            let report = service.import(who, &a.paths, opts, args)?;
            print_report(out, &report, a.json)?;
            for f in &report.files {
                if let crate::report::FileStatus::Failed(e) = &f.status {
                    note!(err, "tgvault: {}: {e}", f.path);
                }
            }
            Ok(if report.has_errors() {
                Outcome::Partial
            } else {
                Outcome::Ok
            })
        }
        Command::Quarantine {
            action: Some(QuarantineAction::Remap { mapping, out: f }),
            ..
        } => {
            let mapping = Mapping::from_path(&mapping)?;
            let report = service.remap(who, &mapping, args)?;
            print_report(out, &report, f.json)?;
            Ok(Outcome::Ok)
        }
        Command::Quarantine {
            action: None,
            out: f,
        } => {
            let held = service.quarantine(who)?;
            if !f.json {
                w(
                    out,
                    format_args!("{:<34} {:<20} {:>5}  {}\n", "ITEM", "DATE", "RUN", "REASON"),
                )?;
            }
            for (id, rec, item) in &held {
                if f.json {
                    emit(out, &views::quarantined_json(id, rec, item))?;
                } else {
                    w(
                        out,
                        format_args!(
                            "{:<34} {:<20} {:>5}  {}\n",
                            id.to_string(),
                            item.date.map(iso).unwrap_or_else(|| "(unknown)".into()),
                            rec.run,
                            rec.reason
                        ),
                    )?;
                }
            }
            if !f.json {
                w(out, format_args!("{} item(s) in quarantine\n", held.len()))?;
            }
            Ok(Outcome::Ok)
        }
        Command::Runs(f) => {
            let runs = service.runs(who)?;
            if !f.json {
                w(
                    out,
                    format_args!(
                        "{:>4} {:<7} {:<20} {:<22} {:>9} {:>9} {:>9} {:>7} {:>6} {:>6}  {}\n",
                        "RUN",
                        "KIND",
                        "STARTED",
                        "STATUS",
                        "SOURCE",
                        "IMPORTED",
                        "SKIPPED",
                        "PARTIAL",
                        "FAILED",
                        "QUAR",
                        "ACTOR"
                    ),
                )?;
            }
            for r in runs {
                let rep = ImportReport {
                    run: r.id,
                    files: r.files.clone(),
                };
                let t = rep.totals();
                if f.json {
                    emit(out, &views::run_json(&r))?;
                } else {
                    w(
                        out,
                        format_args!(
                            "{:>4} {:<7} {:<20} {:<22} {:>9} {:>9} {:>9} {:>7} {:>6} {:>6}  {}\n",
                            r.id,
                            r.kind,
                            iso(r.started),
                            r.status.as_str(),
                            t.available_from_source,
                            t.imported,
                            t.skipped,
                            t.partially_imported,
                            t.failed,
                            t.quarantined,
                            r.actor
                        ),
                    )?;
                }
            }
            Ok(Outcome::Ok)
        }
        _ => Err(Error::Internal("not a command of this group".into())),
    }
}
