//! The IMAP side of forwarding: a small blocking client for the commands a
//! forwarder needs (RFC 3501 `LOGIN`, `CREATE`, `APPEND`, `EXAMINE`,
//! `UID SEARCH`; RFC 4315's `APPENDUID`; RFC 7888's `LITERAL+`), over TLS
//! that is always verified.
//!
//! Why our own: `async-imap`'s `append` returns no `APPENDUID`, and the
//! blocking `imap` crate returns it only in an alpha that is looking for
//! maintainers; the six commands are a few hundred lines (ARCHITECTURE.md).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// The longest response line read (a hostile server cannot make us hold
/// more).
const MAX_LINE: usize = 1 << 20;

/// How long a read or write may wait.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Why an IMAP exchange failed, by what the forwarder must do.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The connection failed or broke: try again later (what was under way
    /// is in doubt).
    #[error("{0}")]
    Transient(String),
    /// The server refused the credentials or the TLS check failed: stop
    /// this target until an administrator acts.
    #[error("{0}")]
    Permanent(String),
    /// The server refused this one message (`NO` or `BAD` to its `APPEND`).
    #[error("{0}")]
    Refused(String),
}

type Result<T> = std::result::Result<T, ImapError>;

fn transient(what: &str, e: impl std::fmt::Display) -> ImapError {
    ImapError::Transient(format!("{what}: {e}"))
}

/// Where the server is: `imaps://HOST[:PORT]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Reads an `imaps://` URL; anything else is refused (the forwarder
    /// never speaks IMAP in the clear).
    pub fn parse(url: &str) -> std::result::Result<Endpoint, String> {
        let rest = url
            .strip_prefix("imaps://")
            .ok_or_else(|| format!("'{url}' is not an imaps:// URL"))?;
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains(['/', '@', '?', '#']) {
            return Err(format!("'{url}': expected imaps://HOST[:PORT]"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse()
                    .map_err(|_| format!("'{url}': the port is not a number"))?,
            ),
            _ => (rest, 993),
        };
        Ok(Endpoint {
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
        })
    }
}

/// The TLS settings: the CA certificates in `ca_file` (PEM), or the
/// system's trust store.
pub fn tls_config(
    ca_file: Option<&std::path::Path>,
) -> std::result::Result<Arc<ClientConfig>, String> {
    crate::server::install_tls_provider();
    let config = match ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("{}: {e}", path.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no certificate in it", path.display()));
            }
            ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
        None => {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err("no CA certificates on this system: give --ca-file".into());
            }
            ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// What an `APPEND` the server took says about the new message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// `UIDVALIDITY/UID`, when the server has UIDPLUS.
    pub remote: Option<String>,
}

/// One logged-in session.
pub struct Session {
    conn: BufReader<StreamOwned<ClientConnection, TcpStream>>,
    /// The literals of the responses read since the last command, raw.
    literals: Vec<Vec<u8>>,
    tag: u32,
    literal_plus: bool,
    uidplus: bool,
    multiappend: bool,
}

/// A tagged response: `OK`, `NO` or `BAD`, and its text.
struct Done {
    status: String,
    text: String,
}

impl Done {
    fn ok(&self) -> bool {
        self.status == "OK"
    }
}

impl Session {
    /// Connects, checks the server's certificate, reads its capabilities
    /// and logs in.
    pub fn open(
        at: &Endpoint,
        tls: Arc<ClientConfig>,
        user: &str,
        password: &str,
    ) -> Result<Session> {
        let tcp = TcpStream::connect((at.host.as_str(), at.port))
            .map_err(|e| transient(&format!("{}:{}", at.host, at.port), e))?;
        // Commands go out whole (a small write must not wait for the
        // server's delayed acknowledgement of the last).
        tcp.set_read_timeout(Some(TIMEOUT))
            .and_then(|()| tcp.set_write_timeout(Some(TIMEOUT)))
            .and_then(|()| tcp.set_nodelay(true))
            .map_err(|e| transient("socket", e))?;
        let name = ServerName::try_from(at.host.clone())
            .map_err(|e| ImapError::Permanent(format!("{}: {e}", at.host)))?;
        let conn = ClientConnection::new(tls, name)
            .map_err(|e| ImapError::Permanent(format!("TLS: {e}")))?;
        let mut s = Session {
            conn: BufReader::new(StreamOwned::new(conn, tcp)),
            literals: Vec::new(),
            tag: 0,
            literal_plus: false,
            uidplus: false,
            multiappend: false,
        };
        let greeting = s.line().map_err(|e| match e {
            // A certificate the CA did not sign shows here, as the first
            // read fails the handshake.
            ImapError::Transient(t) if t.contains("certificate") => ImapError::Permanent(t),
            other => other,
        })?;
        if !greeting.starts_with("* OK") && !greeting.starts_with("* PREAUTH") {
            return Err(ImapError::Transient(format!("greeting: {greeting}")));
        }
        let (done, lines) = s.command("CAPABILITY", &[])?;
        if !done.ok() {
            return Err(ImapError::Transient(format!("CAPABILITY: {}", done.text)));
        }
        s.capabilities(&lines);
        if user.contains(['\r', '\n']) || password.contains(['\r', '\n']) {
            return Err(ImapError::Permanent(
                "the user or password holds a line break".into(),
            ));
        }
        let login = format!("LOGIN {} {}", quoted(user), quoted(password));
        let (done, lines) = s.command(&login, &[])?;
        if !done.ok() {
            // The text names the user at most, never the password.
            return Err(ImapError::Permanent(format!(
                "login as {user} refused: {}",
                done.text
            )));
        }
        s.capabilities(&lines);
        if let Some(caps) = done.text.strip_prefix("[CAPABILITY ") {
            s.capabilities(&[format!("* CAPABILITY {caps}")]);
        }
        Ok(s)
    }

    fn capabilities(&mut self, lines: &[String]) {
        for l in lines {
            if let Some(caps) = l.strip_prefix("* CAPABILITY ") {
                let caps = caps.to_ascii_uppercase();
                let has = |c: &str| caps.split([' ', ']']).any(|w| w == c);
                self.literal_plus |= has("LITERAL+");
                self.uidplus |= has("UIDPLUS");
                self.multiappend |= has("MULTIAPPEND");
            }
        }
    }

    /// Files `message` into `folder` (created when absent), seen, with
    /// `date` (UTC seconds) as its internal date.
    pub fn append(&mut self, folder: &str, date: Option<i64>, message: &[u8]) -> Result<Appended> {
        let done = self.append_once(folder, date, message)?;
        let done = if !done.ok() && done.text.starts_with("[TRYCREATE]") {
            let (created, _) = self.command(&format!("CREATE {}", quoted(folder)), &[])?;
            if !created.ok() && !created.text.contains("ALREADYEXISTS") {
                return Err(ImapError::Refused(format!(
                    "CREATE {folder}: {}",
                    created.text
                )));
            }
            self.append_once(folder, date, message)?
        } else {
            done
        };
        appended(done)
    }

    fn append_once(&mut self, folder: &str, date: Option<i64>, message: &[u8]) -> Result<Done> {
        Ok(self.command(&append_command(folder, date), message)?.0)
    }

    /// Files each of `messages` into `folder` as [`Session::append`] does,
    /// sending them all before reading the answers where the server takes
    /// non-synchronising literals (LITERAL+), one at a time otherwise. One
    /// answer per message, in order; once the connection breaks, the rest
    /// are that error.
    pub fn append_all(
        &mut self,
        folder: &str,
        messages: &[(Option<i64>, &[u8])],
    ) -> Vec<Result<Appended>> {
        if !self.literal_plus {
            return messages
                .iter()
                .map(|(d, m)| self.append(folder, *d, m))
                .collect();
        }
        if self.multiappend
            && messages.len() > 1
            && let Some(all) = self.multi(folder, messages)
        {
            return all;
        }
        let answers = self.pipeline(folder, messages);
        let mut out: Vec<Option<Result<Appended>>> = Vec::with_capacity(messages.len());
        let mut retry = Vec::new();
        for (i, a) in answers.into_iter().enumerate() {
            match a {
                Ok(done) if !done.ok() && done.text.starts_with("[TRYCREATE]") => {
                    retry.push(i);
                    out.push(None);
                }
                other => out.push(Some(other.and_then(appended))),
            }
        }
        // The folder was missing: created by the first, then each again.
        for i in retry {
            let (d, m) = messages[i];
            out[i] = Some(self.append(folder, d, m));
        }
        out.into_iter().map(|a| a.expect("answered")).collect()
    }

    /// All of `messages` in one APPEND (RFC 3502 MULTIAPPEND: the server
    /// files them in one transaction, all or none). `None` when the server
    /// refused it (a message it will not take, a missing folder): the
    /// caller then sends them one by one, to learn which.
    fn multi(
        &mut self,
        folder: &str,
        messages: &[(Option<i64>, &[u8])],
    ) -> Option<Vec<Result<Appended>>> {
        let size: usize = messages.iter().map(|(_, m)| m.len() + 64).sum();
        let mut command = Vec::with_capacity(size + 64);
        command.extend_from_slice(format!("APPEND {}", quoted(folder)).as_bytes());
        for (date, message) in messages {
            // Each message: its flags, date and literal.
            let part = format!(" {} {{{}+}}\r\n", flags_and_date(*date), message.len());
            command.extend_from_slice(part.as_bytes());
            command.extend_from_slice(message);
        }
        let mut answer = self.command_raw(&command);
        if let Ok(done) = &answer
            && done.text.starts_with("[TRYCREATE]")
        {
            // The folder is missing: created, then the same command again.
            let create = format!("CREATE {}", quoted(folder));
            if let Err(e) = self.command(&create, &[]) {
                answer = Err(e);
            } else {
                answer = self.command_raw(&command);
            }
        }
        match answer {
            Ok(done) if done.ok() => {
                let uids = done
                    .text
                    .strip_prefix("[APPENDUID ")
                    .and_then(|r| r.split(']').next())
                    .and_then(|r| {
                        let (validity, set) = r.split_once(' ')?;
                        Some((validity.to_string(), uid_set(set)?))
                    });
                Some(match uids {
                    Some((validity, uids)) if uids.len() == messages.len() => uids
                        .into_iter()
                        .map(|u| {
                            Ok(Appended {
                                remote: Some(format!("{validity}/{u}")),
                            })
                        })
                        .collect(),
                    _ => messages
                        .iter()
                        .map(|_| Ok(Appended { remote: None }))
                        .collect(),
                })
            }
            Ok(_) => None,
            Err(e) => Some(broken(Vec::new(), messages.len(), &e.to_string())),
        }
    }

    /// Sends `tag ` and `body` (a whole command with its literals, all
    /// non-synchronising) and reads to its tagged answer.
    fn command_raw(&mut self, body: &[u8]) -> Result<Done> {
        self.literals.clear();
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let mut line = Vec::with_capacity(body.len() + tag.len() + 3);
        line.extend_from_slice(tag.as_bytes());
        line.push(b' ');
        line.extend_from_slice(body);
        line.extend_from_slice(b"\r\n");
        let c = self.conn.get_mut();
        c.write_all(&line)
            .and_then(|()| c.flush())
            .map_err(|e| transient("write", e))?;
        loop {
            let l = self.line()?;
            if l.starts_with(&format!("{tag} ")) {
                return parse_done(&l, &tag);
            }
        }
    }

    /// Sends every APPEND, then reads every tagged answer.
    fn pipeline(&mut self, folder: &str, messages: &[(Option<i64>, &[u8])]) -> Vec<Result<Done>> {
        self.literals.clear();
        let first = self.tag + 1;
        let mut sent = Ok(());
        for (date, message) in messages {
            self.tag += 1;
            let head = format!(
                "t{} {} {{{}+}}\r\n",
                self.tag,
                append_command(folder, *date),
                message.len()
            );
            let mut command = Vec::with_capacity(head.len() + message.len() + 2);
            command.extend_from_slice(head.as_bytes());
            command.extend_from_slice(message);
            command.extend_from_slice(b"\r\n");
            sent = self.conn.get_mut().write_all(&command);
            if sent.is_err() {
                break;
            }
        }
        let sent = sent.and_then(|()| self.conn.get_mut().flush());
        if let Err(e) = sent {
            return broken(Vec::new(), messages.len(), &format!("write: {e}"));
        }
        let mut out = Vec::with_capacity(messages.len());
        let mut next = first;
        while next <= self.tag {
            let line = match self.line() {
                Ok(l) => l,
                Err(e) => return broken(out, messages.len(), &e.to_string()),
            };
            let tag = format!("t{next}");
            if line.starts_with(&format!("{tag} ")) {
                out.push(parse_done(&line, &tag));
                next += 1;
            }
        }
        out
    }

    /// The `UIDVALIDITY/UID` of the message in `folder` whose `header`
    /// holds `value`, if there is one (the lookup of an in-doubt delivery).
    pub fn find(&mut self, folder: &str, header: &str, value: &str) -> Result<Option<String>> {
        let Some(validity) = self.examine(folder)? else {
            // No such folder: nothing was ever filed there.
            return Ok(None);
        };
        let search = format!("UID SEARCH HEADER {} {}", quoted(header), quoted(value));
        let (done, lines) = self.command(&search, &[])?;
        if !done.ok() {
            return Err(ImapError::Transient(format!("SEARCH: {}", done.text)));
        }
        let uid = lines
            .iter()
            .filter_map(|l| l.strip_prefix("* SEARCH"))
            .flat_map(|l| l.split_whitespace())
            .filter_map(|w| w.parse::<u32>().ok())
            .min();
        Ok(uid.map(|u| format!("{validity}/{u}")))
    }

    /// The whole message `uid` (`UIDVALIDITY/UID`, as `find` and `append`
    /// name it) in `folder`, or `None` when the folder's UIDVALIDITY has
    /// changed or the message is gone.
    pub fn fetch(&mut self, folder: &str, remote: &str) -> Result<Option<Vec<u8>>> {
        let Some((validity, uid)) = remote.split_once('/') else {
            return Ok(None);
        };
        let Some(now) = self.examine(folder)? else {
            return Ok(None);
        };
        if now.to_string() != validity || uid.parse::<u32>().is_err() {
            return Ok(None);
        }
        let (done, _) = self.command(&format!("UID FETCH {uid} (BODY.PEEK[])"), &[])?;
        if !done.ok() {
            return Err(ImapError::Transient(format!("FETCH: {}", done.text)));
        }
        Ok(self.literals.pop())
    }

    /// Selects `folder` read-only: its UIDVALIDITY, or `None` when there is
    /// no such folder.
    fn examine(&mut self, folder: &str) -> Result<Option<u32>> {
        let (done, lines) = self.command(&format!("EXAMINE {}", quoted(folder)), &[])?;
        if !done.ok() {
            return Ok(None);
        }
        Ok(Some(
            lines
                .iter()
                .find_map(|l| bracketed_number(l, "UIDVALIDITY"))
                .unwrap_or(0),
        ))
    }

    pub fn logout(mut self) {
        let _ = self.command("LOGOUT", &[]);
    }

    /// Sends a command (with `literal` as its last argument when not
    /// empty) and reads to its tagged response; the untagged lines before.
    fn command(&mut self, cmd: &str, literal: &[u8]) -> Result<(Done, Vec<String>)> {
        self.literals.clear();
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let w = |e| transient("write", e);
        if literal.is_empty() {
            let line = format!("{tag} {cmd}\r\n");
            self.conn.get_mut().write_all(line.as_bytes()).map_err(w)?;
        } else {
            let plus = if self.literal_plus { "+" } else { "" };
            let head = format!("{tag} {cmd} {{{}{plus}}}\r\n", literal.len());
            self.conn.get_mut().write_all(head.as_bytes()).map_err(w)?;
            if !self.literal_plus {
                self.conn.get_mut().flush().map_err(w)?;
                let go = self.line()?;
                if !go.starts_with('+') {
                    // Refused before the bytes: the tagged answer it is.
                    return Ok((parse_done(&go, &tag)?, Vec::new()));
                }
            }
            self.conn.get_mut().write_all(literal).map_err(w)?;
            self.conn.get_mut().write_all(b"\r\n").map_err(w)?;
        }
        self.conn.get_mut().flush().map_err(w)?;
        let mut untagged = Vec::new();
        loop {
            let line = self.line()?;
            if line.starts_with(&format!("{tag} ")) {
                return Ok((parse_done(&line, &tag)?, untagged));
            }
            if line.starts_with("* BYE") && cmd != "LOGOUT" {
                return Err(ImapError::Transient(format!("the server closed: {line}")));
            }
            untagged.push(line);
        }
    }

    /// One response line without its CRLF; a literal in it (`{n}`) is read
    /// and kept in place.
    fn line(&mut self) -> Result<String> {
        let mut out = Vec::new();
        loop {
            let mut part = Vec::new();
            let n = (&mut self.conn)
                .take((MAX_LINE - out.len().min(MAX_LINE)) as u64 + 1)
                .read_until(b'\n', &mut part)
                .map_err(|e| transient("read", e))?;
            if n == 0 {
                return Err(ImapError::Transient(
                    "the server closed the connection".into(),
                ));
            }
            if !part.ends_with(b"\n") {
                return Err(ImapError::Transient("a response line too long".into()));
            }
            part.truncate(part.len() - 1);
            if part.ends_with(b"\r") {
                part.pop();
            }
            out.extend_from_slice(&part);
            match literal_len(&part) {
                Some(len) if len <= MAX_LINE.saturating_sub(out.len()) => {
                    let mut lit = vec![0u8; len];
                    self.conn
                        .read_exact(&mut lit)
                        .map_err(|e| transient("read", e))?;
                    out.extend_from_slice(&lit);
                    self.literals.push(lit);
                }
                Some(_) => return Err(ImapError::Transient("a response literal too long".into())),
                None => return Ok(String::from_utf8_lossy(&out).into_owned()),
            }
        }
    }
}

/// `APPEND "folder" (\Seen) "date"`, without its literal.
fn append_command(folder: &str, date: Option<i64>) -> String {
    format!("APPEND {} {}", quoted(folder), flags_and_date(date))
}

/// `(\Seen) "date"` (the date when there is one) of one APPENDed message.
fn flags_and_date(date: Option<i64>) -> String {
    let date = date
        .and_then(|t| jiff::Timestamp::from_second(t).ok())
        .map(|t| format!(" \"{}\"", t.strftime("%d-%b-%Y %H:%M:%S +0000")))
        .unwrap_or_default();
    format!("(\\Seen){date}")
}

/// What an APPEND's tagged answer says.
fn appended(done: Done) -> Result<Appended> {
    if !done.ok() {
        return Err(ImapError::Refused(format!(
            "APPEND: {} {}",
            done.status, done.text
        )));
    }
    Ok(Appended {
        remote: appenduid(&done.text),
    })
}

/// The length of the literal a line announces at its end (`{123}`).
fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&body[open + 1..]).ok()?.parse().ok()
}

fn parse_done(line: &str, tag: &str) -> Result<Done> {
    let rest = line
        .strip_prefix(tag)
        .map(str::trim_start)
        .ok_or_else(|| ImapError::Transient(format!("unexpected response: {line}")))?;
    let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Ok(Done {
        status: status.to_ascii_uppercase(),
        text: text.to_string(),
    })
}

/// `"..."` with `\` and `"` escaped.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `answers` filled up to `n` with the error that broke the connection.
fn broken<T>(mut answers: Vec<Result<T>>, n: usize, why: &str) -> Vec<Result<T>> {
    while answers.len() < n {
        answers.push(Err(ImapError::Transient(why.to_string())));
    }
    answers
}

/// The UIDs of an RFC 4315 uid-set (`101:103,105`), in order.
fn uid_set(set: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in set.split(',') {
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                if a > b || b - a > 100_000 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// `[APPENDUID validity uid]` as `validity/uid`.
fn appenduid(text: &str) -> Option<String> {
    let rest = text.strip_prefix("[APPENDUID ")?;
    let inner = &rest[..rest.find(']')?];
    let mut words = inner.split_whitespace();
    let validity: u32 = words.next()?.parse().ok()?;
    let uid: u32 = words.next()?.parse().ok()?;
    Some(format!("{validity}/{uid}"))
}

/// The number after `[NAME ` in an untagged `OK` line.
fn bracketed_number(line: &str, name: &str) -> Option<u32> {
    let at = line.find(&format!("[{name} "))? + name.len() + 2;
    let rest = &line[at..];
    rest[..rest.find(']')?].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_responses_and_quoting() {
        assert_eq!(
            Endpoint::parse("imaps://mail.corp.example").unwrap(),
            Endpoint {
                host: "mail.corp.example".into(),
                port: 993
            }
        );
        assert_eq!(
            Endpoint::parse("imaps://127.0.0.1:9933/").unwrap().port,
            9933
        );
        for bad in [
            "imap://a",
            "https://a",
            "imaps://",
            "imaps://u@a",
            "imaps://a:x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            appenduid("[APPENDUID 38505 3955] APPEND completed"),
            Some("38505/3955".into())
        );
        assert_eq!(appenduid("APPEND completed"), None);
        assert_eq!(
            bracketed_number("* OK [UIDVALIDITY 3857529045] UIDs valid", "UIDVALIDITY"),
            Some(3857529045)
        );
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}"), Some(12));
        assert_eq!(literal_len(b"* OK done"), None);
        assert_eq!(quoted(r#"Telegram "A"\B"#), r#""Telegram \"A\"\\B""#);
        assert_eq!(uid_set("101:103,105"), Some(vec![101, 102, 103, 105]));
        assert_eq!(uid_set("7"), Some(vec![7]));
        assert_eq!(uid_set("9:3"), None);
        assert_eq!(uid_set("1:4000000000"), None);
        assert_eq!(
            flags_and_date(Some(0)),
            "(\\Seen) \"01-Jan-1970 00:00:00 +0000\""
        );
    }
}
