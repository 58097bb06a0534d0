//! `tgvault forward ...`: forwarding every filed copy to its mailbox at a
//! target, the targets, their passes and their status.

use super::{JsonFlag, Outcome, emit, w};
use crate::error::Result;
use crate::service::{ForwardAdd, Principal, Service};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// `forward add`: the kind's options, and the scope for all.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// `imap` or `graph`
    kind: String,
    name: String,
    /// imap: the server, imaps://HOST[:PORT] (TLS, always verified)
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// imap: the account to log in as
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// imap: a file holding the password (owner-only)
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// imap: the login for a mailbox, e.g. `{mailbox}*{user}` for a Dovecot
    /// master user [default: the user]
    #[arg(long, value_name = "TEMPLATE")]
    login_template: Option<String>,
    /// imap: the CA certificates (PEM) the server's certificate must chain
    /// to [default: the system's]
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// graph: the tenant (its id or a domain)
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
    /// graph: the application's client id
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    /// graph: a file holding the client secret (owner-only)
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    /// graph: the token authority [default: https://login.microsoftonline.com]
    #[arg(long, value_name = "URL")]
    authority: Option<String>,
    /// graph: the Graph endpoint [default: https://graph.microsoft.com]
    #[arg(long, value_name = "URL")]
    graph_url: Option<String>,
    /// graph: requests per mailbox per window, N/SECONDS [default: 10000/600]
    #[arg(long, value_name = "N/SECONDS")]
    request_budget: Option<String>,
    /// graph: MiB uploaded per mailbox per window, N/SECONDS [default: 150/300]
    #[arg(long, value_name = "MIB/SECONDS")]
    upload_budget: Option<String>,
    /// graph: the largest attachment the target takes; a larger one is
    /// replaced by a note [default: 150]
    #[arg(long, value_name = "MIB")]
    max_attachment_mib: Option<String>,
    /// Only copies in this mailbox (repeatable) [default: every mailbox]
    #[arg(long, value_name = "ADDR")]
    mailbox: Vec<String>,
    /// Only copies of items this KQL query matches
    #[arg(long, value_name = "KQL")]
    query: Option<String>,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Subcommand, Debug)]
pub enum ForwardAction {
    /// Add a target: KIND is `imap` (needs --url, --user, --password-file)
    /// or `graph` (needs --tenant, --client-id, --secret-file)
    Add(Box<AddArgs>),
    /// List targets
    List(JsonFlag),
    /// Show a target and its settings
    Show {
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Stop forwarding to a target until it is resumed
    Pause { name: String },
    /// Forward to a paused target again
    Resume { name: String },
    /// Remove a target; its ledger (what was delivered) stays
    Remove { name: String },
    /// Deliver every copy not yet delivered, to each active target (or
    /// NAME), then exit
    Run {
        name: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// A pass of NAME now: what is pending and in doubt, and with --failed
    /// what the target refused before
    Retry {
        name: String,
        /// Send again the copies that failed
        #[arg(long)]
        failed: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Read back what NAME's ledger says was delivered (a sample, or
    /// --all) and report anything missing or different at the target
    Verify {
        name: String,
        /// Every delivered copy, not a sample
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// NAME's ledger: a row per version of each copy, with its state, the
    /// target's id, why (failed or partial) and the attempts
    Ledger {
        name: String,
        /// Only rows in this state: delivered, partial, failed, in-doubt
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
        /// Only this mailbox's rows
        #[arg(long, value_name = "ADDR")]
        mailbox: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Per target and mailbox: copies, delivered, pending, failed, in
    /// doubt, the oldest pending
    Status {
        name: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

impl ForwardAction {
    /// The files it names, to resolve before a server reads them.
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            ForwardAction::Add(a) => a
                .password_file
                .iter_mut()
                .chain(a.ca_file.iter_mut())
                .chain(a.secret_file.iter_mut())
                .collect(),
            _ => vec![],
        }
    }

    pub fn writes(&self) -> bool {
        !matches!(
            self,
            ForwardAction::List(_)
                | ForwardAction::Show { .. }
                | ForwardAction::Status { .. }
                | ForwardAction::Ledger { .. }
                | ForwardAction::Verify { .. }
        )
    }
}

pub fn run(
    out: &mut (impl Write + ?Sized),
    service: &Service,
    who: &Principal,
    action: ForwardAction,
) -> Result<Outcome> {
    match action {
        ForwardAction::Add(a) => add(out, service, who, *a)?,
        ForwardAction::List(f) => {
            let list = service.forward_targets(who)?;
            if f.json {
                emit(out, &Value::Array(list))?;
            } else {
                for t in &list {
                    let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
                    w(
                        out,
                        format_args!("{:<20} {:<6} {}\n", s("name"), s("kind"), s("state")),
                    )?;
                }
            }
        }
        ForwardAction::Show { name, out: f } => {
            let v = service.forward_target(who, &name)?;
            if f.json {
                emit(out, &v)?;
            } else {
                w(
                    out,
                    format_args!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default()),
                )?;
            }
        }
        ForwardAction::Pause { name } => {
            service.forward_set_running(who, &name, false)?;
            w(out, format_args!("target '{name}' paused\n"))?;
        }
        ForwardAction::Resume { name } => {
            service.forward_set_running(who, &name, true)?;
            w(out, format_args!("target '{name}' resumed\n"))?;
        }
        ForwardAction::Remove { name } => {
            service.forward_remove(who, &name)?;
            w(
                out,
                format_args!("target '{name}' removed; its ledger stays\n"),
            )?;
        }
        ForwardAction::Run { name, out: f } => {
            return passes(out, service, who, name.as_deref(), false, f.json);
        }
        ForwardAction::Retry {
            name,
            failed,
            out: f,
        } => {
            return passes(out, service, who, Some(&name), failed, f.json);
        }
        ForwardAction::Verify { name, all, out: f } => {
            let v = service.forward_verify(who, &name, all)?;
            if f.json {
                emit(out, &serde_json::to_value(&v).unwrap_or_default())?;
            } else {
                w(
                    out,
                    format_args!(
                        "{name}: {} of {} delivered copies read back, {} problems\n",
                        v.checked,
                        v.delivered,
                        v.problems.len()
                    ),
                )?;
                for (m, id, version, why) in &v.problems {
                    w(out, format_args!("  {m} {id} version {version}: {why}\n"))?;
                }
            }
            if !v.problems.is_empty() {
                return Ok(Outcome::Partial);
            }
        }
        ForwardAction::Ledger {
            name,
            state,
            mailbox,
            out: f,
        } => {
            let rows = service.forward_ledger(who, &name, state.as_deref(), mailbox.as_deref())?;
            if f.json {
                for r in &rows {
                    emit(out, r)?;
                }
            } else {
                for r in &rows {
                    let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
                    let detail = r["why"].as_str().or(r["remote"].as_str()).unwrap_or("");
                    w(
                        out,
                        format_args!(
                            "{} {} v{} {:<9} attempts {} {}\n",
                            s("mailbox"),
                            s("item"),
                            r["version"],
                            s("state"),
                            r["attempts"],
                            detail
                        ),
                    )?;
                }
            }
        }
        ForwardAction::Status { name, out: f } => {
            let list = service.forward_status(who, name.as_deref())?;
            if f.json {
                emit(out, &Value::Array(list))?;
            } else {
                for t in &list {
                    w(
                        out,
                        format_args!(
                            "{} ({}): {} copies, {} delivered ({} partial), {} pending, {} failed\n",
                            t["target"].as_str().unwrap_or(""),
                            t["state"].as_str().unwrap_or(""),
                            t["copies"],
                            t["delivered"],
                            t["partial"],
                            t["pending"],
                            t["failed"]
                        ),
                    )?;
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

fn add(
    out: &mut (impl Write + ?Sized),
    service: &Service,
    who: &Principal,
    a: AddArgs,
) -> Result<()> {
    let mut settings = BTreeMap::new();
    let path = |p: Option<PathBuf>| p.map(|p| p.display().to_string());
    let given = [
        ("url", a.url),
        ("user", a.user),
        ("password-file", path(a.password_file)),
        ("login-template", a.login_template),
        ("ca-file", path(a.ca_file)),
        ("tenant", a.tenant),
        ("client-id", a.client_id),
        ("secret-file", path(a.secret_file)),
        ("authority", a.authority),
        ("graph-url", a.graph_url),
        ("request-budget", a.request_budget),
        ("upload-budget", a.upload_budget),
        ("max-attachment-mib", a.max_attachment_mib),
    ];
    for (k, v) in given {
        if let Some(v) = v {
            settings.insert(k.to_string(), v);
        }
    }
    let req = ForwardAdd {
        kind: a.kind,
        name: a.name,
        settings,
        mailboxes: a.mailbox,
        query: a.query,
    };
    let v = service.forward_add(who, &req)?;
    if a.out.json {
        emit(out, &v)
    } else {
        w(
            out,
            format_args!("target '{}' added ({}): active\n", req.name, req.kind),
        )
    }
}

/// `forward run` and `forward retry`: one line (or JSON object) per target.
fn passes(
    out: &mut (impl Write + ?Sized),
    service: &Service,
    who: &Principal,
    name: Option<&str>,
    retry_failed: bool,
    as_json: bool,
) -> Result<Outcome> {
    let done = service.forward_run(who, name, retry_failed)?;
    let mut failed = false;
    for d in &done {
        failed |= d.failed() && d.run.is_some();
        if as_json {
            emit(out, &d.to_json())?;
        } else {
            let c = &d.counters;
            w(
                out,
                format_args!(
                    "{}: {} (copies {}, delivered now {}, delivered before {}, failed {})\n",
                    d.name, d.status, c.available_from_source, c.imported, c.skipped, c.failed
                ),
            )?;
            for n in &d.notes {
                w(out, format_args!("  {n}\n"))?;
            }
        }
    }
    Ok(if failed {
        Outcome::Partial
    } else {
        Outcome::Ok
    })
}
