//! `tgvault audit`: the audit trail.

use super::*;

pub(super) fn run(
    command: Command,
    service: &Service,
    who: &Principal,
    out: &mut dyn Write,
) -> Result<Outcome> {
    match command {
        Command::Audit { since, out: f } => {
            let since = since
                .map(|d| {
                    parse_day(&d).map_err(|_| {
                        Error::Usage(format!("--since: '{d}' is not a date (YYYY-MM-DD)"))
                    })
                })
                .transpose()?;
            for e in service.audit(who, since)? {
                if f.json {
                    emit(out, &crate::service::entry_json(&e))?;
                } else {
                    let counts: Vec<String> = e
                        .event
                        .counts
                        .iter()
                        .filter(|(_, n)| *n > 0)
                        .map(|(k, n)| format!("{k}={n}"))
                        .collect();
                    // What was acted on (a mailbox, a policy, a query), then
                    // what came of it.
                    let params: Vec<String> = e
                        .event
                        .params
                        .iter()
                        .map(|(k, v)| {
                            let v = truncate(v, 60);
                            if v.is_empty() || v.contains(char::is_whitespace) {
                                format!("{k}={v:?}")
                            } else {
                                format!("{k}={v}")
                            }
                        })
                        .collect();
                    let line = format!(
                        "{:>5} {} {:<20} {:<18} {:<8} {} {}",
                        e.seq,
                        iso(e.event.time),
                        truncate(&e.event.actor, 20),
                        e.event.action,
                        e.event.outcome,
                        params.join(" "),
                        counts.join(" ")
                    );
                    w(out, format_args!("{}\n", line.trim_end()))?;
                }
            }
            Ok(Outcome::Ok)
        }
        _ => Err(Error::Internal("not a command of this group".into())),
    }
}
