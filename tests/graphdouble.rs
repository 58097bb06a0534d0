//! A loopback stand-in for Microsoft Graph and its token endpoint (no real
//! tenant can be reached here), following the documented contract:
//!
//! - `POST /{tenant}/oauth2/v2.0/token` (client credentials, form-encoded)
//!   answers `access_token` and `expires_in`; a wrong secret gets 401
//!   `invalid_client`; an expired or unknown token gets 401 from Graph;
//! - `GET /v1.0/users/{id}/mailFolders` lists the root's children 10 per
//!   page with `@odata.nextLink`; `POST` creates one (409 if it exists);
//! - `POST /beta/users/{id}/mailFolders/{f}/importMime` takes the base64
//!   of a MIME message (201), or 400 for a tenant without it;
//! - `POST .../mailFolders/{f}/messages` creates a message from JSON (a
//!   draft unless PR_MESSAGE_FLAGS says otherwise); `GET` with
//!   `$filter=internetMessageId eq '...'` finds one;
//! - attachments by `POST .../attachments`, or `createUploadSession` and
//!   PUTs of ranges under 4 MB to an upload URL that carries its own token
//!   (an `Authorization` header there gets 401);
//! - any request over 4 MB gets 413;
//! - per mailbox, more than 4 requests in flight, or more than the
//!   request or upload budget in its window, gets 429 with `Retry-After`.
//!   A request for that mailbox before the time it was told counts as an
//!   early retry.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TENANT: &str = "contoso.example";
pub const CLIENT: &str = "11111111-2222-3333-4444-555555555555";
pub const SECRET: &str = "s3cret~graph~value";
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Requests sent before the client heard its 429 still arrive a moment
/// after it: only those later than this count as early.
const GRACE: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
pub struct Options {
    pub mailboxes: Vec<String>,
    pub import_mime: bool,
    pub token_life: u64,
    pub in_flight: usize,
    pub requests: usize,
    pub window: Duration,
    pub upload_bytes: usize,
    pub upload_window: Duration,
    /// How long each request is held before it is answered.
    pub latency: Duration,
}

impl Options {
    pub fn new(mailboxes: &[String]) -> Options {
        Options {
            mailboxes: mailboxes.to_vec(),
            import_mime: true,
            token_life: 3599,
            in_flight: 4,
            requests: 10_000,
            window: Duration::from_secs(600),
            upload_bytes: 150 << 20,
            upload_window: Duration::from_secs(300),
            latency: Duration::from_millis(2),
        }
    }
}

/// A message as the double holds it.
#[derive(Clone, Debug, Default)]
pub struct Msg {
    pub id: String,
    pub folder: String,
    /// The MIME given to `importMime`.
    pub mime: Option<Vec<u8>>,
    /// The JSON given to `messages`.
    pub json: Option<Value>,
    pub draft: bool,
    pub subject: String,
    pub message_id: String,
    pub item_header: Option<String>,
    /// Name and bytes: those of the MIME, or those added.
    pub attachments: Vec<(String, Vec<u8>)>,
}

#[derive(Default)]
struct Mailbox {
    folders: Vec<(String, String)>,
    messages: Vec<Msg>,
    in_flight: usize,
    sent: VecDeque<Instant>,
    uploads: VecDeque<(Instant, usize)>,
    told: Option<(Instant, Instant)>,
}

struct Session {
    mailbox: String,
    message: String,
    name: String,
    size: usize,
    got: Vec<u8>,
}

/// What the double counted.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub tokens: u64,
    pub accepted: u64,
    pub most_in_flight: usize,
    pub concurrency_429: u64,
    pub budget_429: u64,
    pub early: u64,
    pub too_large: u64,
    /// When each request was accepted, in order.
    pub times: Vec<Instant>,
}

#[derive(Default)]
struct Inner {
    boxes: HashMap<String, Mailbox>,
    tokens: HashMap<String, Instant>,
    sessions: HashMap<String, Session>,
    next: u64,
    stats: Stats,
    /// The next N stored messages are kept but answered 500.
    lose: u32,
    /// The next N stored messages are kept but answered 201 with a body
    /// that is not JSON.
    garbage: u32,
    /// The next N attachments (or upload sessions) are answered 500
    /// without being kept.
    refuse_attachments: u32,
}

pub struct GraphDouble {
    pub port: u16,
    state: Arc<Mutex<Inner>>,
}

type St = (Arc<Options>, Arc<Mutex<Inner>>, String);

impl GraphDouble {
    pub fn start(opts: Options) -> GraphDouble {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut inner = Inner::default();
        for m in &opts.mailboxes {
            let mut b = Mailbox::default();
            let standard = [
                "Inbox",
                "Drafts",
                "Sent Items",
                "Deleted Items",
                "Junk Email",
                "Archive",
                "Outbox",
                "Conversation History",
            ];
            for (i, f) in standard.iter().enumerate() {
                b.folders.push((format!("f-{i}"), f.to_string()));
            }
            for i in 0..15 {
                b.folders
                    .push((format!("f-p{i}"), format!("Project {i:02}")));
            }
            inner.boxes.insert(m.to_lowercase(), b);
        }
        let opts = Arc::new(opts);
        let state = Arc::new(Mutex::new(inner));
        let st: St = (opts, state.clone(), format!("http://127.0.0.1:{port}"));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new()
                    .fallback(handle)
                    .layer(DefaultBodyLimit::disable())
                    .with_state(st);
                axum::serve(listener, app).await.unwrap();
            });
        });
        GraphDouble { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stats(&self) -> Stats {
        self.state.lock().unwrap().stats.clone()
    }

    /// Every message in a mailbox's folder of that name.
    pub fn messages(&self, mailbox: &str, folder: &str) -> Vec<Msg> {
        let s = self.state.lock().unwrap();
        let Some(b) = s.boxes.get(&mailbox.to_lowercase()) else {
            return vec![];
        };
        let Some((fid, _)) = b.folders.iter().find(|(_, n)| n == folder) else {
            return vec![];
        };
        b.messages
            .iter()
            .filter(|m| &m.folder == fid)
            .cloned()
            .collect()
    }

    /// How many folders of a mailbox bear that name.
    pub fn folders(&self, mailbox: &str, name: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.boxes
            .get(&mailbox.to_lowercase())
            .map_or(0, |b| b.folders.iter().filter(|(_, n)| n == name).count())
    }

    /// The next `n` messages stored are answered 500 (the answer lost).
    pub fn lose_answers(&self, n: u32) {
        self.state.lock().unwrap().lose = n;
    }

    /// The next `n` attachments are answered 500 (a server in trouble).
    pub fn fail_attachments(&self, n: u32) {
        self.state.lock().unwrap().refuse_attachments = n;
    }

    /// Faults queued and not yet met.
    pub fn faults_left(&self) -> u32 {
        let s = self.state.lock().unwrap();
        s.lose + s.garbage + s.refuse_attachments
    }

    /// The next `n` messages stored are answered with a page of HTML.
    pub fn garble_answers(&self, n: u32) {
        self.state.lock().unwrap().garbage = n;
    }

    /// Deletes a message (as a person at the mailbox might).
    pub fn delete(&self, mailbox: &str, id: &str) {
        let mut s = self.state.lock().unwrap();
        if let Some(b) = s.boxes.get_mut(&mailbox.to_lowercase()) {
            b.messages.retain(|m| m.id != id);
        }
    }
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn throttled(after: u64, message: &str) -> Response {
    let mut r = error(429, "ApplicationThrottled", message);
    r.headers_mut()
        .insert("Retry-After", after.to_string().parse().unwrap());
    r
}

async fn handle(
    State(st): State<St>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (opts, state, base) = st;
    let path: Vec<String> = uri.path().split('/').skip(1).map(percent_decode).collect();
    let query: BTreeMap<String, String> = uri
        .query()
        .map(|q| {
            reqwest::Url::parse(&format!("http://x/?{q}"))
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    if path.len() == 4 && path[1] == "oauth2" && path[3] == "token" {
        return token(&opts, &state, &path[0], &body);
    }
    if body.len() > MAX_BODY {
        state.lock().unwrap().stats.too_large += 1;
        return error(
            413,
            "RequestEntityTooLarge",
            "The request is over the limit",
        );
    }
    // Which mailbox the request is for, and whether it must carry a token.
    let (mailbox, upload) = if path.first().map(String::as_str) == Some("upload") {
        if headers.contains_key("authorization") {
            return error(
                401,
                "InvalidAuthenticationToken",
                "Do not send Authorization to an upload URL",
            );
        }
        let s = state.lock().unwrap();
        match s.sessions.get(path.get(1).map_or("", |v| v)) {
            Some(sess) if query.get("authtoken").map(String::as_str) == Some("up-secret") => {
                (sess.mailbox.clone(), true)
            }
            _ => return error(404, "ItemNotFound", "No such upload session"),
        }
    } else {
        if path.len() < 3 || path[1] != "users" {
            return error(404, "BadRequest", "Unsupported segment");
        }
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let ok = auth.is_some_and(|t| {
            state
                .lock()
                .unwrap()
                .tokens
                .get(t)
                .is_some_and(|until| Instant::now() < *until)
        });
        if !ok {
            return error(
                401,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            );
        }
        (path[2].to_lowercase(), false)
    };
    let uploading = if upload
        || path
            .last()
            .is_some_and(|l| l == "importMime" || l == "attachments")
    {
        body.len()
    } else {
        0
    };
    if let Some(r) = admit(&opts, &state, &mailbox, uploading) {
        return r;
    }
    // Out of flight when answered, or when the client went away first.
    let _leaves = Leaves(state.clone(), mailbox);
    tokio::time::sleep(opts.latency).await;
    if upload {
        put_piece(&state, &path[1], &headers, &body)
    } else {
        route(&opts, &state, &base, &method, &path, &query, &body)
    }
}

struct Leaves(Arc<Mutex<Inner>>, String);

impl Drop for Leaves {
    fn drop(&mut self) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = s.boxes.get_mut(&self.1) {
            b.in_flight -= 1;
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let pair = (b[i] == b'%' && i + 2 < b.len())
            .then(|| Some(hex(*b.get(i + 1)?)? * 16 + hex(*b.get(i + 2)?)?))
            .flatten();
        match pair {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The throttle: `None` admits the request (counted in flight).
fn admit(opts: &Options, state: &Mutex<Inner>, mailbox: &str, upload: usize) -> Option<Response> {
    let mut s = state.lock().unwrap();
    let now = Instant::now();
    let Inner { boxes, stats, .. } = &mut *s;
    let Some(b) = boxes.get_mut(mailbox) else {
        return Some(error(
            404,
            "ErrorInvalidUser",
            &format!("The requested user '{mailbox}' is invalid."),
        ));
    };
    if let Some((at, until)) = b.told
        && now < until
    {
        if now > at + GRACE {
            stats.early += 1;
        }
        let left = (until - now).as_secs_f64().ceil() as u64;
        return Some(throttled(left.max(1), "Retried before Retry-After"));
    }
    if b.in_flight >= opts.in_flight {
        stats.concurrency_429 += 1;
        b.told = Some((now, now + Duration::from_secs(1)));
        return Some(throttled(
            1,
            "Application is over its MailboxConcurrency limit.",
        ));
    }
    while b.sent.front().is_some_and(|t| *t + opts.window <= now) {
        b.sent.pop_front();
    }
    while b
        .uploads
        .front()
        .is_some_and(|(t, _)| *t + opts.upload_window <= now)
    {
        b.uploads.pop_front();
    }
    let over_requests = b.sent.len() >= opts.requests;
    let uploaded: usize = b.uploads.iter().map(|u| u.1).sum();
    let over_upload = upload > 0 && !b.uploads.is_empty() && uploaded + upload > opts.upload_bytes;
    if over_requests || over_upload {
        stats.budget_429 += 1;
        let free_at = if over_requests {
            b.sent[0] + opts.window
        } else {
            b.uploads[0].0 + opts.upload_window
        };
        let secs = (free_at - now).as_secs_f64().ceil().max(1.0) as u64;
        b.told = Some((now, now + Duration::from_secs(secs)));
        return Some(throttled(
            secs,
            "Application is over its MailboxRequests limit.",
        ));
    }
    b.sent.push_back(now);
    if upload > 0 {
        b.uploads.push_back((now, upload));
    }
    b.in_flight += 1;
    stats.accepted += 1;
    stats.most_in_flight = stats.most_in_flight.max(b.in_flight);
    stats.times.push(now);
    None
}

fn token(opts: &Options, state: &Mutex<Inner>, tenant: &str, body: &[u8]) -> Response {
    let form: BTreeMap<String, String> =
        reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(body)))
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if tenant != TENANT {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_request",
            "error_description": format!("AADSTS90002: Tenant '{tenant}' not found.")})),
        )
            .into_response();
    }
    if get("grant_type") != "client_credentials"
        || get("scope") != "https://graph.microsoft.com/.default"
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    }
    if get("client_id") != CLIENT || get("client_secret") != SECRET {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided."})),
        )
            .into_response();
    }
    let mut s = state.lock().unwrap();
    s.stats.tokens += 1;
    s.next += 1;
    let t = format!("tok-{}", s.next);
    let until = Instant::now() + Duration::from_secs(opts.token_life);
    s.tokens.insert(t.clone(), until);
    axum::Json(
        json!({"token_type": "Bearer", "expires_in": opts.token_life,
                      "ext_expires_in": opts.token_life, "access_token": t}),
    )
    .into_response()
}

fn route(
    opts: &Options,
    state: &Mutex<Inner>,
    base: &str,
    method: &Method,
    path: &[String],
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> Response {
    let (version, mailbox) = (path[0].as_str(), path[2].to_lowercase());
    let rest: Vec<&str> = path[3..].iter().map(String::as_str).collect();
    let mut s = state.lock().unwrap();
    let inner = &mut *s;
    inner.next += 1;
    let next = inner.next;
    let storing =
        matches!(rest.last(), Some(&"importMime") | Some(&"messages")) && method == Method::POST;
    let lose = storing && inner.lose > 0;
    let garble = storing && !lose && inner.garbage > 0;
    if lose {
        inner.lose -= 1;
    }
    if garble {
        inner.garbage -= 1;
    }
    let attaching = method == Method::POST
        && matches!(
            rest.last(),
            Some(&"attachments") | Some(&"createUploadSession")
        );
    if attaching && inner.refuse_attachments > 0 {
        inner.refuse_attachments -= 1;
        return error(
            500,
            "InternalServerError",
            "An internal server error occurred.",
        );
    }
    let sessions = &mut inner.sessions;
    let b = inner.boxes.get_mut(&mailbox).unwrap();
    let stored = |m: &Msg| -> Response {
        if lose {
            return error(
                500,
                "InternalServerError",
                "An internal server error occurred.",
            );
        }
        if garble {
            return (
                StatusCode::CREATED,
                "<html><body>Service Unavailable</body></html>",
            )
                .into_response();
        }
        (
            StatusCode::CREATED,
            axum::Json(json!({"id": m.id, "subject": m.subject})),
        )
            .into_response()
    };
    match (method.clone(), version, rest.as_slice()) {
        (Method::GET, "v1.0", ["mailFolders"]) => {
            let skip: usize = query.get("$skip").and_then(|v| v.parse().ok()).unwrap_or(0);
            let page: Vec<Value> = b
                .folders
                .iter()
                .skip(skip)
                .take(10)
                .map(|(id, n)| json!({"id": id, "displayName": n}))
                .collect();
            let mut v = json!({"value": page});
            if skip + 10 < b.folders.len() {
                v["@odata.nextLink"] = json!(format!(
                    "{base}/v1.0/users/{mailbox}/mailFolders?%24skip={}",
                    skip + 10
                ));
            }
            axum::Json(v).into_response()
        }
        (Method::POST, "v1.0", ["mailFolders"]) => {
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            let Some(name) = v["displayName"].as_str() else {
                return error(400, "ErrorInvalidRequest", "displayName is required");
            };
            if b.folders.iter().any(|(_, n)| n.eq_ignore_ascii_case(name)) {
                return error(
                    409,
                    "ErrorFolderExists",
                    "A folder with the specified name already exists.",
                );
            }
            let id = format!("folder-{next}");
            b.folders.push((id.clone(), name.to_string()));
            (
                StatusCode::CREATED,
                axum::Json(json!({"id": id, "displayName": name})),
            )
                .into_response()
        }
        (Method::POST, "beta", ["mailFolders", f, "importMime"]) => {
            if !opts.import_mime {
                return error(
                    400,
                    "BadRequest",
                    "Resource not found for the segment 'importMime'.",
                );
            }
            if !b.folders.iter().any(|(id, _)| id == f) {
                return error(
                    404,
                    "ErrorItemNotFound",
                    "The specified folder could not be found.",
                );
            }
            let Ok(mime) = base64::engine::general_purpose::STANDARD.decode(body.trim_ascii())
            else {
                return error(
                    400,
                    "ErrorMimeContentInvalidBase64String",
                    "Invalid base64 string for MIME content.",
                );
            };
            let Some(p) = mail_parser::MessageParser::default().parse(&mime) else {
                return error(
                    400,
                    "ErrorMimeContentConversionFailed",
                    "The MIME content is not valid.",
                );
            };
            let m = Msg {
                id: format!("msg-{next}"),
                folder: f.to_string(),
                subject: p.subject().unwrap_or_default().to_string(),
                message_id: p.message_id().map(|i| format!("<{i}>")).unwrap_or_default(),
                item_header: p
                    .header_raw("X-Tgvault-Item")
                    .map(|h| h.split_whitespace().collect::<Vec<_>>().join(" ")),
                attachments: p
                    .attachments()
                    .enumerate()
                    .map(|(i, a)| {
                        use mail_parser::MimeHeaders;
                        (
                            a.attachment_name()
                                .map(str::to_string)
                                .unwrap_or(format!("attachment-{}", i + 1)),
                            a.contents().to_vec(),
                        )
                    })
                    .collect(),
                mime: Some(mime.clone()),
                ..Default::default()
            };
            b.messages.push(m.clone());
            stored(&m)
        }
        (Method::POST, "v1.0", ["mailFolders", f, "messages"]) => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return error(400, "ErrorInvalidRequest", "Cannot read the JSON");
            };
            if !b.folders.iter().any(|(id, _)| id == f) {
                return error(
                    404,
                    "ErrorItemNotFound",
                    "The specified folder could not be found.",
                );
            }
            let flags = v["singleValueExtendedProperties"].as_array().and_then(|a| {
                a.iter().find(|p| {
                    p["id"]
                        .as_str()
                        .is_some_and(|i| i.eq_ignore_ascii_case("Integer 0x0E07"))
                })
            });
            let m = Msg {
                id: format!("msg-{next}"),
                folder: f.to_string(),
                draft: flags.and_then(|p| p["value"].as_str()) != Some("1"),
                subject: v["subject"].as_str().unwrap_or_default().to_string(),
                message_id: v["internetMessageId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                item_header: v["internetMessageHeaders"].as_array().and_then(|h| {
                    h.iter()
                        .find(|h| h["name"] == "X-Tgvault-Item")
                        .and_then(|h| h["value"].as_str().map(str::to_string))
                }),
                json: Some(v.clone()),
                ..Default::default()
            };
            b.messages.push(m.clone());
            stored(&m)
        }
        (Method::GET, "v1.0", ["mailFolders", f, "messages"]) => {
            let want = query
                .get("$filter")
                .and_then(|f| f.strip_prefix("internetMessageId eq '"))
                .and_then(|f| f.strip_suffix('\''))
                .map(|f| f.replace("''", "'"));
            let list: Vec<Value> = b
                .messages
                .iter()
                .filter(|m| &m.folder == f && want.as_ref().is_none_or(|w| *w == m.message_id))
                .map(view)
                .collect();
            axum::Json(json!({"value": list})).into_response()
        }
        (Method::GET, "v1.0", ["messages", id]) => match b.messages.iter().find(|m| &m.id == id) {
            Some(m) => axum::Json(view(m)).into_response(),
            None => error(
                404,
                "ErrorItemNotFound",
                "The specified object was not found in the store.",
            ),
        },
        (Method::GET, "v1.0", ["messages", id, "attachments"]) => {
            match b.messages.iter().find(|m| &m.id == id) {
                Some(m) => {
                    let list: Vec<Value> = m
                        .attachments
                        .iter()
                        .map(|(n, b)| json!({"name": n, "size": b.len()}))
                        .collect();
                    axum::Json(json!({"value": list})).into_response()
                }
                None => error(
                    404,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                ),
            }
        }
        (Method::POST, "v1.0", ["messages", id, "attachments"]) => {
            let Some(m) = b.messages.iter_mut().find(|m| &m.id == id) else {
                return error(
                    404,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            };
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            let Ok(bytes) = base64::engine::general_purpose::STANDARD
                .decode(v["contentBytes"].as_str().unwrap_or(""))
            else {
                return error(400, "ErrorInvalidRequest", "contentBytes is not base64");
            };
            if bytes.len() > 3 * 1024 * 1024 {
                return error(
                    413,
                    "ErrorRequestEntityTooLarge",
                    "Use an upload session for attachments over 3 MB",
                );
            }
            m.attachments
                .push((v["name"].as_str().unwrap_or("").to_string(), bytes));
            (
                StatusCode::CREATED,
                axum::Json(json!({"id": format!("att-{next}")})),
            )
                .into_response()
        }
        (Method::POST, "v1.0", ["messages", id, "attachments", "createUploadSession"]) => {
            if !b.messages.iter().any(|m| &m.id == id) {
                return error(
                    404,
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                );
            }
            let v: Value = serde_json::from_slice(body).unwrap_or_default();
            let item = &v["AttachmentItem"];
            let size = item["size"].as_u64().unwrap_or(0) as usize;
            if size > 150 << 20 {
                return error(
                    400,
                    "ErrorAttachmentSizeLimitExceeded",
                    "The attachment is over 150 MB.",
                );
            }
            let sid = format!("s{next}");
            sessions.insert(
                sid.clone(),
                Session {
                    mailbox: mailbox.clone(),
                    message: id.to_string(),
                    name: item["name"].as_str().unwrap_or("").to_string(),
                    size,
                    got: vec![],
                },
            );
            (
                StatusCode::CREATED,
                axum::Json(json!({
                "uploadUrl": format!("{base}/upload/{sid}?authtoken=up-secret"),
                "nextExpectedRanges": ["0-"]})),
            )
                .into_response()
        }
        _ => error(
            400,
            "BadRequest",
            &format!("Unsupported request: {method} {}", path.join("/")),
        ),
    }
}

/// A message as Graph shows it with `$select`.
fn view(m: &Msg) -> Value {
    if let Some(h) = m.json.as_ref().map(|j| &j["internetMessageHeaders"])
        && h.is_array()
    {
        return json!({"id": m.id, "subject": m.subject, "internetMessageId": m.message_id,
               "internetMessageHeaders": h, "isDraft": m.draft,
               "hasAttachments": !m.attachments.is_empty()});
    }
    let headers: Vec<Value> = m
        .item_header
        .iter()
        .map(|h| json!({"name": "X-Tgvault-Item", "value": h}))
        .collect();
    json!({"id": m.id, "subject": m.subject, "internetMessageId": m.message_id,
           "internetMessageHeaders": headers, "isDraft": m.draft,
           "hasAttachments": !m.attachments.is_empty()})
}

fn put_piece(state: &Mutex<Inner>, sid: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let mut s = state.lock().unwrap();
    let Inner {
        sessions, boxes, ..
    } = &mut *s;
    let Some(sess) = sessions.get_mut(sid) else {
        return error(404, "ItemNotFound", "No such upload session");
    };
    let range = headers
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parsed = range.strip_prefix("bytes ").and_then(|r| {
        let (span, total) = r.split_once('/')?;
        let (a, b) = span.split_once('-')?;
        Some((
            a.parse::<usize>().ok()?,
            b.parse::<usize>().ok()?,
            total.parse::<usize>().ok()?,
        ))
    });
    let Some((a, b, total)) = parsed else {
        return error(400, "InvalidRange", "Content-Range is missing or malformed");
    };
    if total != sess.size || a != sess.got.len() || b + 1 - a != body.len() || b < a {
        return error(
            416,
            "InvalidRange",
            "The range does not follow what was received",
        );
    }
    if body.len() >= MAX_BODY {
        return error(413, "RequestEntityTooLarge", "A piece must be under 4 MB");
    }
    sess.got.extend_from_slice(body);
    if sess.got.len() < sess.size {
        return axum::Json(json!({"nextExpectedRanges": [format!("{}-", sess.got.len())]}))
            .into_response();
    }
    let done = sessions.remove(sid).unwrap();
    if let Some(m) = boxes
        .get_mut(&done.mailbox)
        .and_then(|b| b.messages.iter_mut().find(|m| m.id == done.message))
    {
        m.attachments.push((done.name, done.got));
    }
    (StatusCode::CREATED, axum::Json(json!({}))).into_response()
}
