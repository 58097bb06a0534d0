//! A loopback stand-in for the Telegram Bot API (no real one can run here),
//! following its documented contract: `POST /bot<token>/<method>` with a
//! JSON body, answers `{"ok": true, "result": ...}` or `{"ok": false,
//! "error_code": N, "description": ..., "parameters": {"retry_after": S}}`;
//! `getUpdates` long-polls up to `timeout` seconds and forgets updates below
//! the `offset` it is given; `getFile` refuses files over 20 MB ("Bad
//! Request: file is too big"); files come from `GET /file/bot<token>/<path>`.
//! Faults are queued for the next `getUpdates` calls.

use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the next `getUpdates` call meets instead of an answer.
#[derive(Clone, Debug)]
pub enum Fault {
    TooMany {
        retry_after: u64,
    },
    BadGateway,
    Conflict,
    /// The connection is closed without a word.
    Drop,
}

#[derive(Default)]
struct Inner {
    updates: VecDeque<Value>,
    next_id: i64,
    faults: VecDeque<Fault>,
    files: HashMap<String, (String, Vec<u8>, u64)>,
    connections: HashMap<String, Value>,
    /// Every update ever queued.
    history: Vec<Value>,
}

pub struct BotDouble {
    pub port: u16,
    state: Arc<(Mutex<Inner>, Condvar)>,
}

const PUBLIC_LIMIT: u64 = 20 * 1024 * 1024;

impl BotDouble {
    pub fn start(token: &str) -> BotDouble {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new((
            Mutex::new(Inner {
                next_id: 700_000,
                ..Default::default()
            }),
            Condvar::new(),
        ));
        let st = state.clone();
        let tok = token.to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let st = st.clone();
                let tok = tok.clone();
                std::thread::spawn(move || {
                    let _ = serve_conn(conn, &st, &tok);
                });
            }
        });
        BotDouble { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Queues an update (its `update_id` is given here); returns the id.
    pub fn push(&self, kind: &str, body: Value) -> i64 {
        let (m, cv) = &*self.state;
        let mut s = m.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        let u = json!({ "update_id": id, kind: body });
        s.history.push(u.clone());
        s.updates.push_back(u);
        cv.notify_all();
        id
    }

    pub fn fault(&self, f: Fault) {
        self.state.0.lock().unwrap().faults.push_back(f);
    }

    /// A file `getFile` hands out (or refuses, when `size` is over 20 MB).
    pub fn file(&self, file_id: &str, bytes: &[u8], size: u64) {
        let path = format!("documents/file_{}", file_id.len() * 7 + bytes.len());
        self.state
            .0
            .lock()
            .unwrap()
            .files
            .insert(file_id.to_string(), (path, bytes.to_vec(), size));
    }

    /// A file as a local Bot API server (`--local`) hands it out: by its
    /// absolute path on the server's disk, whatever its size.
    pub fn local_file(&self, file_id: &str, path: &std::path::Path) {
        let size = std::fs::metadata(path).unwrap().len();
        self.state.0.lock().unwrap().files.insert(
            file_id.to_string(),
            (path.display().to_string(), vec![], size),
        );
    }

    pub fn connection(&self, id: &str, v: Value) {
        self.state
            .0
            .lock()
            .unwrap()
            .connections
            .insert(id.to_string(), v);
    }

    /// Updates not yet confirmed by an offset past them.
    pub fn pending(&self) -> usize {
        self.state.0.lock().unwrap().updates.len()
    }

    /// Every update ever queued, as JSON lines (what a capture file holds).
    pub fn history(&self) -> String {
        let s = self.state.0.lock().unwrap();
        s.history.iter().map(|u| format!("{u}\n")).collect()
    }
}

fn answer(conn: &mut TcpStream, status: u16, body: &[u8], kind: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        _ => "Bad Gateway",
    };
    // One write: headers and body apart would wait on Nagle's algorithm.
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: keep-alive\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    conn.write_all(&out)?;
    conn.flush()
}

fn error(code: u16, description: &str, extra: Value) -> (u16, Value) {
    let mut v = json!({"ok": false, "error_code": code, "description": description});
    if !extra.is_null() {
        v["parameters"] = extra;
    }
    (code, v)
}

fn serve_conn(
    conn: TcpStream,
    st: &Arc<(Mutex<Inner>, Condvar)>,
    token: &str,
) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if method == "GET" && path.starts_with("/file/bot") {
            let rest = &path["/file/bot".len()..];
            let Some((tok, fpath)) = rest.split_once('/') else {
                return Ok(());
            };
            let found =
                st.0.lock()
                    .unwrap()
                    .files
                    .values()
                    .find(|(p, _, _)| p == fpath)
                    .map(|f| f.1.clone());
            match (tok == token, found) {
                (true, Some(bytes)) => answer(&mut conn, 200, &bytes, "application/octet-stream")?,
                _ => answer(&mut conn, 404, b"{}", "application/json")?,
            }
            continue;
        }
        let Some(rest) = path.strip_prefix("/bot") else {
            answer(&mut conn, 404, b"{}", "application/json")?;
            continue;
        };
        let (tok, api) = rest.split_once('/').unwrap_or((rest, ""));
        let (status, v) = if tok != token {
            error(401, "Unauthorized", Value::Null)
        } else {
            match api {
                "getUpdates" => match get_updates(st, &params) {
                    Some(r) => r,
                    None => return Ok(()), // dropped
                },
                "getFile" => get_file(st, &params),
                "getBusinessConnection" => {
                    let id = params["business_connection_id"].as_str().unwrap_or("");
                    match st.0.lock().unwrap().connections.get(id) {
                        Some(c) => (200, json!({"ok": true, "result": c})),
                        None => error(
                            400,
                            "Bad Request: business connection not found",
                            Value::Null,
                        ),
                    }
                }
                _ => error(404, "Not Found: method not found", Value::Null),
            }
        };
        answer(
            &mut conn,
            status,
            v.to_string().as_bytes(),
            "application/json",
        )?;
    }
}

fn get_updates(st: &Arc<(Mutex<Inner>, Condvar)>, p: &Value) -> Option<(u16, Value)> {
    let (m, cv) = &**st;
    let mut s = m.lock().unwrap();
    if let Some(f) = s.faults.pop_front() {
        return match f {
            Fault::TooMany { retry_after } => Some(error(
                429,
                &format!("Too Many Requests: retry after {retry_after}"),
                json!({"retry_after": retry_after}),
            )),
            Fault::BadGateway => Some((
                502,
                json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}),
            )),
            Fault::Conflict => Some(error(
                409,
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                Value::Null,
            )),
            Fault::Drop => None,
        };
    }
    let offset = p["offset"].as_i64().unwrap_or(0);
    // An offset confirms every update before it.
    while s
        .updates
        .front()
        .is_some_and(|u| u["update_id"].as_i64().unwrap() < offset)
    {
        s.updates.pop_front();
    }
    let timeout = Duration::from_secs(p["timeout"].as_u64().unwrap_or(0).min(50));
    let until = Instant::now() + timeout;
    loop {
        let ready: Vec<Value> = s
            .updates
            .iter()
            .filter(|u| u["update_id"].as_i64().unwrap() >= offset)
            .take(100)
            .cloned()
            .collect();
        let left = until.saturating_duration_since(Instant::now());
        if !ready.is_empty() || left.is_zero() {
            return Some((200, json!({"ok": true, "result": ready})));
        }
        s = cv.wait_timeout(s, left).unwrap().0;
    }
}

fn get_file(st: &Arc<(Mutex<Inner>, Condvar)>, p: &Value) -> (u16, Value) {
    let id = p["file_id"].as_str().unwrap_or("");
    let s = st.0.lock().unwrap();
    match s.files.get(id) {
        None => error(400, "Bad Request: invalid file_id", Value::Null),
        Some((_, _, size)) if *size > PUBLIC_LIMIT => {
            error(400, "Bad Request: file is too big", Value::Null)
        }
        Some((path, _, size)) => (
            200,
            json!({"ok": true, "result": {"file_id": id, "file_unique_id": format!("u{id}"), "file_size": size, "file_path": path}}),
        ),
    }
}
