//! The CLI through a running server: a command of the service, run while
//! `tgvault serve` holds the archive, is sent over the archive's unix
//! socket and runs in the server as this process's OS user; its output and
//! exit code come back as they would have been printed here.

use super::{Cli, Command, Outcome, exit_code, run_on};
use crate::error::{Error, Result};
use crate::service::{Principal, PrincipalKind, Service};
use clap::Parser;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize)]
pub struct Request {
    /// The arguments after the program's name.
    pub args: Vec<String>,
    /// The caller's working directory, which relative paths are read from.
    pub cwd: PathBuf,
}

#[derive(Serialize, Deserialize)]
pub struct Response {
    pub stdout: String,
    pub stderr: String,
    pub exit: u8,
}

/// Runs the command in the server answering on `socket`, if one does;
/// `None` when none answers (a stale socket: the caller opens the archive).
pub fn forward(socket: &Path, args: Vec<String>) -> Result<Option<u8>> {
    if std::os::unix::net::UnixStream::connect(socket).is_err() {
        return Ok(None);
    }
    let failed = |e: reqwest::Error| Error::Internal(format!("{}: {e}", socket.display()));
    crate::server::install_tls_provider();
    let client = reqwest::blocking::Client::builder()
        .unix_socket(socket)
        .timeout(None)
        .build()
        .map_err(failed)?;
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let resp = client
        .post("http://tgvault/api/v1/cli")
        .json(&Request { args, cwd })
        .send()
        .map_err(failed)?;
    let status = resp.status();
    let text = resp.text().map_err(failed)?;
    // Refused before the command ran: say so as the command would.
    let message = || {
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.clone())
    };
    match status.as_u16() {
        401 => {
            return Err(Error::Unauthenticated(format!(
                "{} (the server on {})",
                message(),
                socket.display()
            )));
        }
        403 => return Err(Error::Forbidden(message())),
        _ => {}
    }
    let answer: Response = serde_json::from_str(&text).map_err(|_| {
        Error::Internal(format!(
            "{}: the server answered {status}: {text}",
            socket.display()
        ))
    })?;
    std::io::stdout()
        .write_all(answer.stdout.as_bytes())
        .map_err(|e| Error::io("stdout", e))?;
    eprint!("{}", answer.stderr);
    Ok(Some(answer.exit))
}

/// Runs a forwarded command in the server, as `who`.
pub fn serve(service: &Service, who: &Principal, req: &Request) -> Response {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let exit = run_parsed(service, who, req, &mut out, &mut err);
    Response {
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        exit,
    }
}

fn run_parsed(
    service: &Service,
    who: &Principal,
    req: &Request,
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
) -> u8 {
    let args = &req.args;
    let mut cli = match Cli::try_parse_from(
        std::iter::once("tgvault".to_string()).chain(args.iter().cloned()),
    ) {
        Ok(c) => c,
        Err(e) => {
            let text = e.render().to_string();
            let _ = if e.use_stderr() { err } else { out }.write_all(text.as_bytes());
            return e.exit_code() as u8;
        }
    };
    if let Command::Compact(a) = cli.command {
        return finish(
            service,
            who,
            None,
            args,
            super::maintain::compact_in_server(service, who, a, args.to_vec(), out, err),
            err,
        );
    }
    if !cli.command.on_service() {
        let _ = writeln!(
            err,
            "tgvault: this command runs only beside the archive, which a server holds: stop `tgvault serve` first"
        );
        return 2;
    }
    let paths = cli.command.paths_mut();
    if !paths.is_empty() && who.kind != PrincipalKind::Local {
        // The server reads and writes files as its own account: only for
        // the account that owns the archive (or root) may it do so.
        let _ = writeln!(
            err,
            "tgvault: the server reads and writes files only for the archive's owner: upload through the HTTP API instead"
        );
        return 3;
    }
    for p in paths {
        if p.is_relative() {
            *p = req.cwd.join(&*p);
        }
    }
    // The local administrator may name itself, as on the command line.
    let who = match (&cli.actor, who.kind) {
        (Some(a), PrincipalKind::Local) => Principal::local(a),
        _ => who.clone(),
    };
    let what = refusable(&cli.command);
    let done = run_on(service, &who, cli.command, args.to_vec(), false, out, err);
    finish(service, &who, what, args, done, err)
}

/// The exit code of a command run in the server, its error reported as the
/// CLI reports one.
fn finish(
    service: &Service,
    who: &Principal,
    what: Option<&str>,
    args: &[String],
    done: Result<Outcome>,
    err: &mut Vec<u8>,
) -> u8 {
    match done {
        Ok(Outcome::Ok) => 0,
        Ok(Outcome::Partial) => 1,
        Ok(Outcome::Exit(code)) => code,
        Err(e) => {
            if let Some(what) = what {
                let _ = service.record_refusal(who, what, &args.join(" "), &e);
            }
            let _ = writeln!(err, "tgvault: {e}");
            exit_code(&e)
        }
    }
}

/// The commands whose refused requests are on the record too.
pub(super) fn refusable(c: &Command) -> Option<&'static str> {
    match c {
        Command::Hold { .. } => Some("hold"),
        Command::Case { .. } => Some("case"),
        Command::Retention { .. } => Some("retention"),
        _ => None,
    }
}
