//! The `telemessage-smtp` connector: deliveries by e-mail. It listens for
//! SMTP (RFC 5321, with STARTTLS when given a certificate), accepts mail
//! only for its configured recipients, sets no size limit of its own, and
//! answers `250` to a message only once the item it became is committed:
//! a sender that got no `250` sends again, and the same bytes file as a
//! duplicate. Each connection runs on its own thread; the connector's
//! thread files what they receive, many messages to a transaction.

use super::{Batch, SourceError, Step};
use crate::error::{Error, Result};
use crate::import::capture::Captured;
use crate::store::Archive;
use crate::store::records::{ConnectorPosition, ConnectorRecord, Custodian};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;
use tokio_rustls::rustls::{ServerConfig, ServerConnection, StreamOwned};

pub const KIND: &str = "telemessage-smtp";
/// The longest command line taken (RFC 5321 asks at least 512 bytes).
const LINE_MAX: usize = 4096;
/// Connections served at once; more are told to come back.
const CONNECTIONS_MAX: usize = 64;
/// How long a client may stay silent.
const IDLE: Duration = Duration::from_secs(300);
/// Messages filed in one transaction at most.
const BATCH_MAX: usize = 256;

/// Checks `connector add telemessage-smtp` settings; the ones to store.
pub fn configure(mut given: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let listen = given
        .remove("listen")
        .ok_or_else(|| Error::Usage("an SMTP connector needs --listen ADDR:PORT".into()))?;
    listen
        .parse::<SocketAddr>()
        .map_err(|_| Error::Usage(format!("listen: '{listen}' is not an address and port")))?;
    out.insert("listen".into(), listen);
    let rcpts = given
        .remove("recipient")
        .ok_or_else(|| Error::Usage("an SMTP connector needs --recipient ADDR".into()))?;
    let mut list = Vec::new();
    for r in rcpts.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        list.push(
            crate::mapping::normalize_mailbox(r).ok_or_else(|| {
                Error::Usage(format!("recipient: '{r}' is not an e-mail address"))
            })?,
        );
    }
    out.insert("recipient".into(), list.join(","));
    match (given.remove("tls-cert"), given.remove("tls-key")) {
        (Some(c), Some(k)) => {
            crate::server::tls::config(std::path::Path::new(&c), std::path::Path::new(&k))?;
            out.insert("tls-cert".into(), super::absolute(&c)?);
            out.insert("tls-key".into(), super::absolute(&k)?);
        }
        (None, None) => {}
        _ => return Err(Error::Usage("--tls-cert and --tls-key go together".into())),
    }
    if let Some(d) = given.remove("org-domain") {
        out.insert("org-domain".into(), d);
    }
    let takes = "--listen, --recipient, --tls-cert, --tls-key, --org-domain";
    super::refuse_unknown("telemessage-smtp", &given, takes)?;
    Ok(out)
}

/// A message received, waiting to be filed; `reply` is told how it went.
struct Delivery {
    bytes: Vec<u8>,
    reply: Sender<std::result::Result<String, String>>,
}

/// An SMTP connector at work: the listener's thread and what it receives.
pub struct SmtpSource {
    rx: Receiver<Delivery>,
    stop: Arc<AtomicBool>,
    listener: Option<std::thread::JoinHandle<()>>,
    received: i64,
}

impl Drop for SmtpSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
    }
}

/// What every connection shares.
struct Shared {
    tx: Sender<Delivery>,
    recipients: Vec<String>,
    tls: Option<Arc<ServerConfig>>,
    open: AtomicUsize,
    stop: Arc<AtomicBool>,
}

impl SmtpSource {
    pub fn open(
        archive: &Archive,
        name: &str,
        rec: &ConnectorRecord,
    ) -> Result<SmtpSource, SourceError> {
        let listen = rec.settings.get("listen").cloned().unwrap_or_default();
        let tls = match (rec.settings.get("tls-cert"), rec.settings.get("tls-key")) {
            (Some(c), Some(k)) => Some(
                crate::server::tls::config(std::path::Path::new(c), std::path::Path::new(k))
                    .map_err(|e| SourceError::Permanent(e.to_string()))?,
            ),
            _ => None,
        };
        let listener = TcpListener::bind(&listen)
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .map_err(|e| SourceError::Permanent(format!("cannot listen on {listen}: {e}")))?;
        let (tx, rx) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            tx,
            recipients: rec
                .settings
                .get("recipient")
                .map(|r| r.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
            tls,
            open: AtomicUsize::new(0),
            stop: stop.clone(),
        });
        let handle = std::thread::Builder::new()
            .name(format!("tgvault-smtp-{name}"))
            .spawn(move || accept_loop(listener, shared))
            .map_err(|e| SourceError::Archive(Error::Internal(format!("SMTP listener: {e}"))))?;
        Ok(SmtpSource {
            rx,
            stop,
            listener: Some(handle),
            received: archive.connector_position(name)?.cursor,
        })
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((conn, peer)) => {
                let shared = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("tgvault-smtp-conn".into())
                    .spawn(move || {
                        shared.open.fetch_add(1, Ordering::AcqRel);
                        if let Err(e) = serve(conn, &shared) {
                            tracing::debug!(%peer, "SMTP connection ended: {e}");
                        }
                        shared.open.fetch_sub(1, Ordering::AcqRel);
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("SMTP accept: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// A connection, before or after STARTTLS.
enum Conn {
    Plain(BufReader<TcpStream>),
    Tls(Box<BufReader<StreamOwned<ServerConnection, TcpStream>>>),
}

impl Conn {
    fn reader(&mut self) -> &mut dyn BufRead {
        match self {
            Conn::Plain(r) => r,
            Conn::Tls(r) => r.as_mut(),
        }
    }

    fn say(&mut self, text: &str) -> std::io::Result<()> {
        let w: &mut dyn Write = match self {
            Conn::Plain(r) => r.get_mut(),
            Conn::Tls(r) => r.get_mut(),
        };
        w.write_all(text.as_bytes())?;
        w.write_all(b"\r\n")?;
        w.flush()
    }

    /// Discards the rest of a line, however long, holding none of it.
    fn skip_line(&mut self) -> std::io::Result<()> {
        let r = self.reader();
        loop {
            let buf = r.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    r.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let n = buf.len();
                    r.consume(n);
                }
            }
        }
    }

    /// One line, without its line end; `None` at the end of the stream. A
    /// line longer than `max` is read to its end and refused.
    fn line(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        let mut buf = Vec::new();
        let n = self
            .reader()
            .take(max as u64 + 2)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        if !buf.ends_with(b"\n") {
            self.skip_line()?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        Ok(Some(buf))
    }
}

/// The SMTP dialogue of one connection (a state machine: greeting,
/// envelope, data).
fn serve(tcp: TcpStream, shared: &Shared) -> std::io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(IDLE))?;
    tcp.set_nodelay(true)?;
    let mut c = Conn::Plain(BufReader::new(tcp));
    if shared.open.load(Ordering::Acquire) > CONNECTIONS_MAX {
        return c.say("421 4.3.2 too many connections, try again later");
    }
    c.say("220 tgvault ESMTP ready")?;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut tls_on = false;
    loop {
        let line = match c.line(LINE_MAX) {
            Ok(Some(line)) => line,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                c.say("500 5.5.2 line too long")?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&line).to_string();
        let upper = text.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_string();
        match verb.as_str() {
            "EHLO" => {
                let mut lines = vec![
                    "250-tgvault",
                    "250-8BITMIME",
                    "250-SMTPUTF8",
                    "250-ENHANCEDSTATUSCODES",
                ];
                if shared.tls.is_some() && !tls_on {
                    lines.push("250-STARTTLS");
                }
                lines.push("250 SIZE 0");
                c.say(&lines.join("\r\n"))?;
                (from, rcpts) = (None, vec![]);
            }
            "HELO" => {
                c.say("250 tgvault")?;
                (from, rcpts) = (None, vec![]);
            }
            "STARTTLS" if shared.tls.is_some() && !tls_on => {
                c.say("220 2.0.0 ready to start TLS")?;
                let Conn::Plain(r) = c else { return Ok(()) };
                let cfg = shared.tls.clone().expect("checked above");
                let conn = ServerConnection::new(cfg)
                    .map_err(|e| std::io::Error::other(format!("TLS: {e}")))?;
                // What the client sent before the handshake is dropped, as
                // RFC 3207 asks.
                let stream = StreamOwned::new(conn, r.into_inner());
                c = Conn::Tls(Box::new(BufReader::new(stream)));
                tls_on = true;
                (from, rcpts) = (None, vec![]);
            }
            "MAIL" if upper.starts_with("MAIL FROM:") => {
                from = Some(path_of(&text["MAIL FROM:".len()..]));
                rcpts.clear();
                c.say("250 2.1.0 ok")?;
            }
            "RCPT" if upper.starts_with("RCPT TO:") => {
                let to = path_of(&text["RCPT TO:".len()..]).to_lowercase();
                if from.is_none() {
                    c.say("503 5.5.1 MAIL first")?;
                } else if shared.recipients.contains(&to) {
                    rcpts.push(to);
                    c.say("250 2.1.5 ok")?;
                } else {
                    c.say("550 5.1.1 not a recipient of this archive")?;
                }
            }
            "DATA" => {
                if rcpts.is_empty() {
                    c.say("503 5.5.1 no valid recipient")?;
                    continue;
                }
                c.say("354 end with <CRLF>.<CRLF>")?;
                let Some(bytes) = data(&mut c)? else {
                    return Ok(());
                };
                let answer = file(shared, bytes);
                c.say(&answer)?;
                (from, rcpts) = (None, vec![]);
            }
            "RSET" => {
                (from, rcpts) = (None, vec![]);
                c.say("250 2.0.0 ok")?;
            }
            "NOOP" => c.say("250 2.0.0 ok")?,
            "VRFY" => c.say("252 2.1.5 cannot verify, send and see")?,
            "QUIT" => return c.say("221 2.0.0 bye"),
            _ => c.say("502 5.5.2 command not recognised")?,
        }
    }
}

/// The address inside `<...>` (parameters after it ignored).
fn path_of(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if a < b => arg[a + 1..b].trim().to_string(),
        _ => arg.split_whitespace().next().unwrap_or("").to_string(),
    }
}

/// The message after DATA, dot-unstuffed, up to the lone `.`; `None` when
/// the connection ends first.
fn data(c: &mut Conn) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let mut line = Vec::new();
        if c.reader().read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        let body = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        if body == Some(b".") {
            return Ok(Some(out));
        }
        let line = line
            .strip_prefix(b".")
            .filter(|_| line.starts_with(b".."))
            .unwrap_or(&line);
        out.extend_from_slice(line);
    }
}

/// Hands the message to the connector's thread and waits until it is
/// committed (or not); the reply to send.
fn file(shared: &Shared, bytes: Vec<u8>) -> String {
    let (reply, answer) = channel();
    let sent = shared.tx.send(Delivery { bytes, reply }).is_ok();
    if !sent {
        return "451 4.3.0 the archive is not taking mail now; try again".into();
    }
    match answer.recv() {
        Ok(Ok(what)) => format!("250 2.0.0 committed: {what}"),
        Ok(Err(why)) => format!("451 4.3.0 not committed ({why}); try again"),
        Err(_) => "451 4.3.0 the archive stopped before committing; try again".into(),
    }
}

impl super::Source for SmtpSource {
    fn step(&mut self, sink: &mut super::Sink<'_>, wait: bool) -> Result<Step, SourceError> {
        let first = if wait {
            match self.rx.recv_timeout(Duration::from_secs(1)) {
                Ok(d) => d,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return Ok(Step::Empty);
                }
            }
        } else {
            match self.rx.try_recv() {
                Ok(d) => d,
                Err(_) => return Ok(Step::Empty),
            }
        };
        let mut got = vec![first];
        while got.len() < BATCH_MAX {
            match self.rx.try_recv() {
                Ok(d) => got.push(d),
                Err(_) => break,
            }
        }
        let mut batch = Batch::default();
        let mut ids = Vec::new();
        for (i, d) in got.iter().enumerate() {
            let n = self.received + i as i64 + 1;
            let mut item = crate::source::eml::convert(&d.bytes, &format!("SMTP delivery {n}"));
            let blobs = crate::import::stage_inline(sink.archive(), &mut item);
            ids.push(item.id.to_string());
            batch.items.push(Captured {
                item,
                blobs,
                custodian: Custodian {
                    owner: None,
                    address: None,
                },
            });
        }
        let count = got.len() as i64;
        batch.position = ConnectorPosition {
            cursor: self.received + count,
            taken: vec![],
        };
        batch.more = got.len() >= BATCH_MAX;
        match sink.file(batch) {
            Ok(()) => {
                self.received += count;
                for (d, id) in got.into_iter().zip(ids) {
                    let _ = d.reply.send(Ok(id));
                }
                Ok(Step::Took(count as u64))
            }
            Err(e) => {
                for d in got {
                    let _ = d.reply.send(Err(e.to_string()));
                }
                Err(SourceError::Archive(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_paths_and_settings() {
        assert_eq!(path_of("<A@B.example> SIZE=10"), "A@B.example");
        assert_eq!(path_of(" a@b.example"), "a@b.example");
        let mut s = BTreeMap::new();
        s.insert("listen".to_string(), "127.0.0.1:2525".to_string());
        assert!(
            configure(s.clone())
                .unwrap_err()
                .to_string()
                .contains("--recipient")
        );
        s.insert(
            "recipient".into(),
            "Archive@Corp.example, x@corp.example".into(),
        );
        assert_eq!(
            configure(s.clone()).unwrap()["recipient"],
            "archive@corp.example,x@corp.example"
        );
        s.insert("tls-cert".into(), "/nonexistent".into());
        assert!(
            configure(s)
                .unwrap_err()
                .to_string()
                .contains("go together")
        );
    }
}
