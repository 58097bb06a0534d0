//! `tgvault retention` (policies and runs) and `explain`.

use super::*;

pub(super) fn run(
    command: Command,
    service: &Service,
    who: &Principal,
    args: Vec<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    match command {
        Command::Retention { action } => {
            match action {
                RetentionAction::Add {
                    name,
                    retain,
                    delete_after,
                    then_delete,
                    mailbox,
                } => {
                    let action = crate::service::policy_action(retain, delete_after, then_delete)
                        .map_err(|_| {
                            Error::Usage(
                                "give --retain DAYS, --delete-after DAYS, or --retain DAYS --then-delete"
                                    .into(),
                            )
                        })?;
                    let mailboxes = mailbox
                        .iter()
                        .map(|m| mailbox_arg(m))
                        .collect::<Result<Vec<_>>>()?;
                    let policy = crate::policy::Policy {
                        name: name.clone(),
                        action,
                        mailboxes,
                    };
                    service.policy_add(who, policy)?;
                    w(out, format_args!("policy '{name}' added\n"))?;
                }
                RetentionAction::Remove { name } => {
                    service.policy_remove(who, &name)?;
                    w(out, format_args!("policy '{name}' removed\n"))?;
                }
                RetentionAction::List(f) => {
                    for sp in service.policies(who)? {
                        let scope = if sp.policy.mailboxes.is_empty() {
                            "organisation-wide".to_string()
                        } else {
                            sp.policy.mailboxes.join(", ")
                        };
                        if f.json {
                            emit(out, &views::policy_json(&sp))?;
                        } else {
                            w(
                                out,
                                format_args!(
                                    "{:<24} {:<30} {scope}\n",
                                    sp.policy.name,
                                    sp.policy.action.to_string()
                                ),
                            )?;
                        }
                    }
                }
                RetentionAction::Run {
                    dry_run,
                    now: at,
                    out: f,
                } => {
                    let at = match at {
                        Some(t) => parse_time(&t, false)?,
                        None => now(),
                    };
                    let done = service.retention_run(who, at, dry_run, args)?;
                    if f.json {
                        emit_value(out, &done)?;
                    } else {
                        for u in &done.unreadable {
                            note!(
                                err,
                                "warning: destroyed without being read (damaged): {u}; the uses of its attachments could not be released (see `tgvault verify`)"
                            );
                        }
                        for (item, m, fo, pol) in &done.deleted {
                            w(
                                out,
                                format_args!(
                                    "{} {item} {m} / {fo} (policy {pol})\n",
                                    if dry_run { "would delete" } else { "deleted" }
                                ),
                            )?;
                        }
                        w(
                            out,
                            format_args!(
                                "{} copies: {} {}, {} held, {} kept{}\n",
                                done.copies,
                                done.deleted.len(),
                                if dry_run {
                                    "would be deleted"
                                } else {
                                    "deleted"
                                },
                                done.held,
                                done.kept,
                                if done.held_at_deletion > 0 {
                                    format!(
                                        ", {} held when re-checked at deletion",
                                        done.held_at_deletion
                                    )
                                } else {
                                    String::new()
                                }
                            ),
                        )?;
                        if let Some(c) = &done.compacted {
                            print_compacted(out, c)?;
                        }
                    }
                }
            }
            Ok(Outcome::Ok)
        }
        Command::Explain {
            item,
            now: at,
            out: f,
        } => {
            let id: ItemId = item.parse().map_err(Error::Usage)?;
            let at = match at {
                Some(t) => parse_time(&t, false)?,
                None => now(),
            };
            let decisions = service.explain(who, &id, at)?;
            if decisions.is_empty() {
                w(
                    out,
                    format_args!(
                        "{id} is filed in no mailbox (quarantine): retention never deletes it\n"
                    ),
                )?;
            }
            for (m, fo, d) in decisions {
                if f.json {
                    emit(out, &views::decision_json(&id, &m, &fo, &d))?;
                } else {
                    w(out, format_args!("{m} / {fo}: {d}\n"))?;
                }
            }
            Ok(Outcome::Ok)
        }
        _ => Err(Error::Internal("not a command of this group".into())),
    }
}
