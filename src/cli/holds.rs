//! `tgvault hold` and `tgvault case`: litigation holds, eDiscovery cases, their holds and members.

use super::*;

pub(super) fn run(
    command: Command,
    service: &Service,
    who: &Principal,
    out: &mut dyn Write,
) -> Result<Outcome> {
    match command {
        Command::Hold { action } => {
            match action {
                HoldAction::Set { mailbox, days } => {
                    let m = mailbox_arg(&mailbox)?;
                    service.hold_set(who, &m, days)?;
                    w(
                        out,
                        format_args!(
                            "litigation hold on {m}: {}\n",
                            days.map(|d| format!("{d} days from each item's date"))
                                .unwrap_or_else(|| "forever".into())
                        ),
                    )?;
                }
                HoldAction::Clear { mailbox } => {
                    let m = mailbox_arg(&mailbox)?;
                    service.hold_clear(who, &m)?;
                    w(out, format_args!("litigation hold on {m} released\n"))?;
                }
                HoldAction::List(f) => {
                    for h in service.holds(who)? {
                        if f.json {
                            emit(out, &views::hold_json(&h))?;
                        } else {
                            w(
                                out,
                                format_args!(
                                    "{}  (placed {} by {})\n",
                                    h.hold,
                                    iso(h.created),
                                    h.actor
                                ),
                            )?;
                        }
                    }
                }
            }
            Ok(Outcome::Ok)
        }
        Command::Case { action } => {
            match action {
                CaseAction::Create { name } => {
                    service.case_create(who, &name)?;
                    w(out, format_args!("case '{name}' created\n"))?;
                }
                CaseAction::Hold {
                    action:
                        CaseHoldAction::Add {
                            case,
                            mailbox,
                            query,
                            from,
                            to,
                        },
                } => {
                    let mailboxes = mailbox
                        .iter()
                        .map(|m| mailbox_arg(m))
                        .collect::<Result<Vec<_>>>()?;
                    let from = from.as_deref().map(|d| parse_time(d, false)).transpose()?;
                    let to = to.as_deref().map(|d| parse_time(d, true)).transpose()?;
                    let req = CaseHoldRequest {
                        mailboxes,
                        query,
                        from,
                        to,
                    };
                    let id = service.case_hold_add(who, &case, req)?;
                    w(out, format_args!("case '{case}': hold {id} placed\n"))?;
                }
                CaseAction::Hold {
                    action: CaseHoldAction::Remove { case, hold },
                } => {
                    service.case_hold_remove(who, &case, hold)?;
                    w(out, format_args!("case '{case}': hold {hold} released\n"))?;
                }
                CaseAction::Close { name } => {
                    let n = service.case_close(who, &name)?;
                    w(
                        out,
                        format_args!("case '{name}' closed; {n} hold(s) released\n"),
                    )?;
                }
                CaseAction::List(f) => {
                    for (name, c) in service.cases(who)? {
                        let status = if c.closed.is_some() { "closed" } else { "open" };
                        if f.json {
                            emit(
                                out,
                                &json!({"case": name, "status": status, "created": iso(c.created), "actor": c.actor, "closed": c.closed.map(iso)}),
                            )?;
                        } else {
                            w(
                                out,
                                format_args!(
                                    "{name:<24} {status:<7} created {} by {}\n",
                                    iso(c.created),
                                    c.actor
                                ),
                            )?;
                        }
                    }
                }
                CaseAction::Member { action } => {
                    return access::member(out, service, who, action);
                }
                CaseAction::Show { name, out: f } => {
                    let (c, holds) = service.case(who, &name)?;
                    if f.json {
                        emit(
                            out,
                            &json!({"case": name, "closed": c.closed.map(iso), "created": iso(c.created), "actor": c.actor,
                            "holds": holds.iter().map(views::hold_json).collect::<Vec<_>>()}),
                        )?;
                    } else {
                        w(
                            out,
                            format_args!(
                                "case {name}: {}, created {} by {}\n",
                                if c.closed.is_some() { "closed" } else { "open" },
                                iso(c.created),
                                c.actor
                            ),
                        )?;
                        for h in &holds {
                            w(out, format_args!("  {}\n", h.hold))?;
                        }
                    }
                }
            }
            Ok(Outcome::Ok)
        }
        _ => Err(Error::Internal("not a command of this group".into())),
    }
}
