//! `tgvault connector ...` and `tgvault sync`: connectors that capture by
//! themselves, their status and admin log.

use super::{JsonFlag, Outcome, emit, w};
use crate::error::Result;
use crate::service::views::run_json;
use crate::service::{ConnectorAdd, Principal, Service};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// `connector add`: the kind's options, and the map and mailbox for all.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// `bot`, `telemessage-sftp` or `telemessage-smtp`
    kind: String,
    name: String,
    /// bot: a file holding the bot's token, readable by its owner only
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// bot: the Bot API's base URL (a local Bot API server's)
    /// [default: https://api.telegram.org]
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// bot: how long one getUpdates waits for updates, in seconds [default: 10]
    #[arg(long, value_name = "SECONDS")]
    poll_timeout: Option<String>,
    /// telemessage-sftp: the SFTP server's host name or address
    #[arg(long, value_name = "HOST")]
    host: Option<String>,
    /// telemessage-sftp: its port [default: 22]
    #[arg(long, value_name = "PORT")]
    port: Option<String>,
    /// telemessage-sftp: the account to log in as
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// telemessage-sftp: the private key to log in with (owner-only)
    #[arg(long, value_name = "FILE", conflicts_with = "password_file")]
    key_file: Option<PathBuf>,
    /// telemessage-sftp: a file holding the password (owner-only)
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// telemessage-sftp: the known-hosts file the server's key must be in
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// telemessage-sftp: the drop's folder on the server [default: .]
    #[arg(long, value_name = "DIR")]
    path: Option<String>,
    /// telemessage-sftp: how often to look (15m, 24h, 7d) [default: 24h]
    #[arg(long, value_name = "PERIOD")]
    every: Option<String>,
    /// telemessage-smtp: the address and port to accept SMTP on
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// telemessage-smtp: an address mail is accepted for (repeatable)
    #[arg(long, value_name = "ADDR")]
    recipient: Vec<String>,
    /// telemessage-smtp: a PEM certificate chain, to offer STARTTLS
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// telemessage-smtp: its PEM private key
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// An e-mail domain of the organisation (repeatable): a delivered
    /// e-mail's address there is a mailbox; others get no copy
    #[arg(long = "org-domain", value_name = "DOMAIN")]
    org_domain: Vec<String>,
    /// The user map (CSV) its items are mapped through
    #[arg(long, value_name = "CSV")]
    mapping: Option<PathBuf>,
    /// The custodian's mailbox when the map names none
    #[arg(long, value_name = "ADDR")]
    mailbox: Option<String>,
    #[command(flatten)]
    out: JsonFlag,
}

#[derive(Subcommand, Debug)]
pub enum ConnectorAction {
    /// Add a connector: KIND is `bot` (the Telegram Bot API, business
    /// connections; needs --token-file), `telemessage-sftp` (TeleMessage
    /// packages from an SFTP drop; needs --host, --user, --key-file or
    /// --password-file, --known-hosts) or `telemessage-smtp` (TeleMessage
    /// deliveries by e-mail; needs --listen and --recipient)
    Add(Box<AddArgs>),
    /// List connectors
    List(JsonFlag),
    /// Show a connector, its settings, position and business connections
    Show {
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Stop a connector capturing until it is resumed
    Pause { name: String },
    /// Start a paused (or failed) connector again
    Resume { name: String },
    /// Remove a connector; what it captured and its admin log stay
    Remove { name: String },
    /// Per connector: state, last capture, items in the last 24 hours,
    /// errors, possible losses
    Status {
        name: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// A connector's runs (its admin log), with their counters and failures
    Log {
        name: String,
        /// Only runs started on or after this date (YYYY-MM-DD, UTC)
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

impl ConnectorAction {
    /// The files it names, to resolve before a server reads them.
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            ConnectorAction::Add(a) => a
                .token_file
                .iter_mut()
                .chain(a.mapping.iter_mut())
                .chain(a.tls_cert.iter_mut())
                .chain(a.tls_key.iter_mut())
                .chain(a.key_file.iter_mut())
                .chain(a.password_file.iter_mut())
                .chain(a.known_hosts.iter_mut())
                .collect(),
            _ => vec![],
        }
    }

    pub fn writes(&self) -> bool {
        !matches!(
            self,
            ConnectorAction::List(_)
                | ConnectorAction::Show { .. }
                | ConnectorAction::Status { .. }
                | ConnectorAction::Log { .. }
        )
    }
}

pub fn run(
    out: &mut (impl Write + ?Sized),
    service: &Service,
    who: &Principal,
    action: ConnectorAction,
) -> Result<Outcome> {
    match action {
        ConnectorAction::Add(a) => {
            let AddArgs {
                kind,
                name,
                token_file,
                api_url,
                poll_timeout,
                host,
                port,
                user,
                key_file,
                password_file,
                known_hosts,
                path,
                every,
                listen,
                recipient,
                tls_cert,
                tls_key,
                org_domain,
                mapping,
                mailbox,
                out: f,
            } = *a;
            let mut settings = BTreeMap::new();
            let list = |v: Vec<String>| (!v.is_empty()).then(|| v.join(","));
            let given = [
                ("token-file", token_file.map(|p| p.display().to_string())),
                ("api-url", api_url),
                ("poll-timeout", poll_timeout),
                ("host", host),
                ("port", port),
                ("user", user),
                ("key-file", key_file.map(|p| p.display().to_string())),
                (
                    "password-file",
                    password_file.map(|p| p.display().to_string()),
                ),
                ("known-hosts", known_hosts.map(|p| p.display().to_string())),
                ("path", path),
                ("every", every),
                ("listen", listen),
                ("recipient", list(recipient)),
                ("tls-cert", tls_cert.map(|p| p.display().to_string())),
                ("tls-key", tls_key.map(|p| p.display().to_string())),
                ("org-domain", list(org_domain)),
            ];
            for (k, v) in given {
                if let Some(v) = v {
                    settings.insert(k.to_string(), v);
                }
            }
            let req = ConnectorAdd {
                kind,
                name,
                settings,
                mapping,
                mailbox,
            };
            let v = service.connector_add(who, &req)?;
            if f.json {
                emit(out, &v)?;
            } else {
                w(
                    out,
                    format_args!("connector '{}' added ({}): active\n", req.name, req.kind),
                )?;
            }
        }
        ConnectorAction::List(f) => {
            let list = service.connectors(who)?;
            if f.json {
                emit(out, &Value::Array(list))?;
            } else {
                for c in &list {
                    w(
                        out,
                        format_args!(
                            "{:<20} {:<8} {}\n",
                            s(c, "name"),
                            s(c, "kind"),
                            s(c, "state")
                        ),
                    )?;
                }
            }
        }
        ConnectorAction::Show { name, out: f } => {
            let v = service.connector(who, &name)?;
            if f.json {
                emit(out, &v)?;
            } else {
                show(out, &v)?;
            }
        }
        ConnectorAction::Pause { name } => {
            service.connector_set_running(who, &name, false)?;
            w(out, format_args!("connector '{name}' paused\n"))?;
        }
        ConnectorAction::Resume { name } => {
            service.connector_set_running(who, &name, true)?;
            w(out, format_args!("connector '{name}' resumed\n"))?;
        }
        ConnectorAction::Remove { name } => {
            service.connector_remove(who, &name)?;
            w(
                out,
                format_args!("connector '{name}' removed; what it captured stays\n"),
            )?;
        }
        ConnectorAction::Status { name, out: f } => {
            let list = service.connector_status(who, name.as_deref())?;
            if f.json {
                emit(out, &Value::Array(list))?;
            } else {
                for c in &list {
                    status(out, c)?;
                }
            }
        }
        ConnectorAction::Log {
            name,
            since,
            out: f,
        } => {
            let since = since.map(|d| crate::service::parse_day(&d)).transpose()?;
            let runs = service.connector_log(who, &name, since)?;
            if f.json {
                emit(out, &Value::Array(runs.iter().map(run_json).collect()))?;
            } else {
                for r in &runs {
                    log_line(out, &run_json(r))?;
                }
            }
        }
    }
    Ok(Outcome::Ok)
}

/// `tgvault sync [NAME]`.
pub fn sync(
    out: &mut (impl Write + ?Sized),
    service: &Service,
    who: &Principal,
    name: Option<String>,
    as_json: bool,
) -> Result<Outcome> {
    let done = service.sync(who, name.as_deref())?;
    let mut failed = false;
    for d in &done {
        failed |= d.end.failed;
        let c = &d.end.counters;
        if as_json {
            emit(
                out,
                &json!({"connector": d.name, "run": d.end.run, "status": d.end.status, "counters": c}),
            )?;
        } else {
            w(
                out,
                format_args!(
                    "{}: {} (from source {}, imported {}, skipped {}, quarantined {}, failed {})\n",
                    d.name,
                    d.end.status,
                    c.available_from_source,
                    c.imported,
                    c.skipped,
                    c.quarantined,
                    c.failed
                ),
            )?;
        }
    }
    Ok(if failed {
        Outcome::Partial
    } else {
        Outcome::Ok
    })
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("-")
}

fn show(out: &mut (impl Write + ?Sized), v: &Value) -> Result<()> {
    w(
        out,
        format_args!(
            "connector {} ({}): {}\n",
            s(v, "name"),
            s(v, "kind"),
            s(v, "state")
        ),
    )?;
    if let Some(set) = v["settings"].as_object() {
        for (k, val) in set {
            w(
                out,
                format_args!("  {k}: {}\n", val.as_str().unwrap_or_default()),
            )?;
        }
    }
    w(
        out,
        format_args!(
            "  mapping: {}\n  mailbox: {}\n  position: {}\n",
            s(v, "mapping"),
            s(v, "mailbox"),
            v["position"]
        ),
    )?;
    for c in v["connections"].as_array().into_iter().flatten() {
        w(
            out,
            format_args!(
                "  business connection {}: user {} ({}) {}, rights: {}\n",
                s(c, "id"),
                c["user_id"],
                s(c, "user"),
                if c["enabled"] == true {
                    "enabled"
                } else {
                    "disabled"
                },
                c["rights"]
                    .as_array()
                    .map(|r| r
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
        )?;
    }
    Ok(())
}

fn status(out: &mut (impl Write + ?Sized), c: &Value) -> Result<()> {
    w(
        out,
        format_args!(
            "{} ({}): {}{}\n  last contact {}, last capture {}, items in the last 24 h: {}, failed items: {}\n",
            s(c, "name"),
            s(c, "kind"),
            s(c, "state"),
            if c["running"] == true {
                ", running"
            } else {
                ""
            },
            s(c, "last_contact"),
            s(c, "last_capture"),
            c["items_last_24h"],
            c["failed_items_last_24h"],
        ),
    )?;
    if let Some(e) = c["last_error"].as_object() {
        w(
            out,
            format_args!(
                "  last error at {}: {}\n",
                e["at"].as_str().unwrap_or("-"),
                e["error"].as_str().unwrap_or("-")
            ),
        )?;
    }
    for l in c["possible_losses"].as_array().into_iter().flatten() {
        w(
            out,
            format_args!(
                "  POSSIBLE LOSS: no contact from {} to {}\n",
                s(l, "from"),
                s(l, "to")
            ),
        )?;
    }
    Ok(())
}

fn log_line(out: &mut (impl Write + ?Sized), r: &Value) -> Result<()> {
    let t = &r["totals"];
    w(
        out,
        format_args!(
            "run {} {} {} -> {}: from source {}, for import {}, imported {}, partially {}, skipped {}, failed {}, quarantined {}, versions {}, deletions {}, bytes {}\n",
            r["run"],
            s(r, "status"),
            s(r, "started"),
            s(r, "finished"),
            t["available_from_source"],
            t["available_for_import"],
            t["imported"],
            t["partially_imported"],
            t["skipped"],
            t["failed"],
            t["quarantined"],
            t["new_versions"],
            t["deletions"],
            t["attachment_bytes"],
        ),
    )?;
    for f in r["files"].as_array().into_iter().flatten() {
        for x in f["failures"].as_array().into_iter().flatten() {
            w(
                out,
                format_args!("  failed {}: {}\n", s(x, "item"), s(x, "reason")),
            )?;
        }
        for a in f["anomalies"].as_array().into_iter().flatten() {
            w(
                out,
                format_args!("  note ({}x): {}\n", a["count"], s(a, "what")),
            )?;
        }
    }
    Ok(())
}
