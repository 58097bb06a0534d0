//! A Microsoft Graph client for forwarding, blocking, with what Exchange
//! Online asks of a well-behaved application:
//!
//! - an OAuth2 client-credentials token, cached until shortly before it
//!   expires and fetched again once when Graph answers 401;
//! - per mailbox, a [`Gate`] every request passes: at most 4 in flight,
//!   the request budget (10,000 per 10 minutes) and the upload budget
//!   (150 MB per 5 minutes) kept by the client itself, and a 429 or 503
//!   answered by waiting its `Retry-After` before anything else goes to
//!   that mailbox;
//! - `nextLink` pages followed only within the Graph URL (the token goes
//!   nowhere else), and upload-session URLs (which carry a token of their
//!   own) never printed.

use crate::error::{Error, Result};
use base64::Engine;
use reqwest::Method;
use reqwest::Url;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

pub const AUTHORITY: &str = "https://login.microsoftonline.com";
pub const GRAPH: &str = "https://graph.microsoft.com";

/// The options `forward add graph` takes, by name.
pub const OPTIONS: &[&str] = &[
    "tenant",
    "client-id",
    "secret-file",
    "authority",
    "graph-url",
    "request-budget",
    "upload-budget",
    "max-attachment-mib",
];

/// How long before its expiry a token is fetched again.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// The wait after a 429 or 503 that names none.
const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The longest `Retry-After` obeyed as given (a longer one is capped).
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

/// How many times one request is throttled before the copy is left for the
/// next pass.
const MAX_THROTTLED: u32 = 20;

/// Slack added to each budget window: a request counted by the client at
/// the edge of a window arrives a moment later at the server.
const WINDOW_SLACK: Duration = Duration::from_millis(250);

/// A piece of an upload session: under Graph's 4 MB, a multiple of 320 KiB.
pub const UPLOAD_PIECE: usize = 12 * 320 * 1024;

/// The header a message rebuilt as JSON carries (`json`), so that one
/// found after an interruption is known to need its attachments checked.
pub const FORM_HEADER: &str = "X-Tgvault-Form";

/// Attachments up to this size go in one request; larger ones through an
/// upload session.
pub const SMALL_ATTACHMENT: usize = 3 * 1024 * 1024;

/// What a target may send a mailbox, per Microsoft's published limits
/// unless the target says otherwise.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub in_flight: usize,
    pub requests: u32,
    pub request_window: Duration,
    pub upload_bytes: u64,
    pub upload_window: Duration,
    /// The largest request body Graph takes (413 above it).
    pub max_request: usize,
    /// The largest attachment the target takes (an upload session's limit).
    pub max_attachment: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            in_flight: 4,
            requests: 10_000,
            request_window: Duration::from_secs(600),
            upload_bytes: 150 << 20,
            upload_window: Duration::from_secs(300),
            max_request: 4_000_000,
            max_attachment: 150 << 20,
        }
    }
}

/// `N/SECONDS`: a count per window.
fn budget(text: &str, what: &str) -> Result<(u64, Duration)> {
    let bad = || Error::Usage(format!("{what} '{text}' is not N/SECONDS (e.g. 10000/600)"));
    let (n, s) = text.split_once('/').ok_or_else(bad)?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    let s: u64 = s.trim().parse().map_err(|_| bad())?;
    if n == 0 || s == 0 || s > 86_400 {
        return Err(bad());
    }
    Ok((n, Duration::from_secs(s)))
}

impl Limits {
    /// The limits a target's settings name (each defaulting to Microsoft's).
    pub fn of(settings: &BTreeMap<String, String>) -> Result<Limits> {
        let mut l = Limits::default();
        if let Some(b) = settings.get("request-budget") {
            let (n, w) = budget(b, "--request-budget")?;
            l.requests = n.min(u32::MAX as u64) as u32;
            l.request_window = w;
        }
        if let Some(b) = settings.get("upload-budget") {
            let (n, w) = budget(b, "--upload-budget (MiB per seconds)")?;
            l.upload_bytes = n.saturating_mul(1 << 20);
            l.upload_window = w;
        }
        if let Some(m) = settings.get("max-attachment-mib") {
            let n: u64 =
                m.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Error::Usage(format!("--max-attachment-mib '{m}' is not a size"))
                })?;
            l.max_attachment = n.saturating_mul(1 << 20);
        }
        Ok(l)
    }
}

/// Checks a URL given for a Graph target: `https://`, or `http://` to a
/// loopback address only (a test double on this machine).
pub fn check_url(text: &str, what: &str) -> Result<String> {
    let url = Url::parse(text).map_err(|e| Error::Usage(format!("{what} '{text}': {e}")))?;
    let loopback = url.host_str().is_some_and(|h| {
        h == "localhost"
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    });
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(Error::Usage(format!(
                "{what} '{text}' must be https:// (http:// only to a loopback address)"
            )));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Usage(format!(
            "{what} '{text}' must have no query or fragment"
        )));
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// Checks `forward add graph`'s settings; the secret file is the owner's
/// alone (its path is kept, never its contents).
pub fn check_settings(settings: &mut BTreeMap<String, String>) -> Result<()> {
    for k in settings.keys() {
        if !OPTIONS.contains(&k.as_str()) {
            return Err(Error::Usage(format!("graph takes no option '{k}'")));
        }
    }
    for k in ["tenant", "client-id", "secret-file"] {
        match settings.get(k) {
            Some(v) if !v.trim().is_empty() => {}
            _ => return Err(Error::Usage(format!("graph needs --{k}"))),
        }
    }
    let tenant = &settings["tenant"];
    if !tenant
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(Error::Usage(format!(
            "the tenant '{tenant}' is not a tenant id or domain"
        )));
    }
    for (k, default) in [("authority", AUTHORITY), ("graph-url", GRAPH)] {
        let v = settings.get(k).map_or(default, String::as_str);
        let v = check_url(v, &format!("--{k}"))?;
        settings.insert(k.into(), v);
    }
    let secret = &settings["secret-file"];
    let abs = std::path::absolute(secret).map_err(|e| Error::io(secret, e))?;
    crate::connector::secret::check(&abs)?;
    settings.insert("secret-file".into(), abs.display().to_string());
    Limits::of(settings)?;
    Ok(())
}

/// Why a request did not give its answer.
#[derive(Debug, Clone)]
pub enum GraphError {
    /// Try again later: a broken connection, a server error, throttled too
    /// often. Whether the request took effect is unknown.
    Transient(String),
    /// The credentials or the application were refused: retrying cannot
    /// help until an administrator acts.
    Permanent(String),
    /// This request was refused: the status and Graph's words.
    Refused(u16, String),
    /// The pass is stopping.
    Stopped,
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GraphError::Transient(w) | GraphError::Permanent(w) => f.write_str(w),
            GraphError::Refused(s, w) => write!(f, "{s} {w}"),
            GraphError::Stopped => f.write_str("stopped"),
        }
    }
}

type GResult<T> = std::result::Result<T, GraphError>;

/// The budgets of one mailbox, shared by every request sent to it.
pub struct Gate {
    limits: Limits,
    state: Mutex<GateState>,
    wake: Condvar,
}

#[derive(Default)]
struct GateState {
    in_flight: usize,
    sent: VecDeque<Instant>,
    uploads: VecDeque<(Instant, u64)>,
    uploaded: u64,
    paused_until: Option<Instant>,
}

impl GateState {
    fn expire(&mut self, now: Instant, l: &Limits) {
        while self
            .sent
            .front()
            .is_some_and(|t| *t + l.request_window + WINDOW_SLACK <= now)
        {
            self.sent.pop_front();
        }
        while let Some((t, n)) = self.uploads.front().copied() {
            if t + l.upload_window + WINDOW_SLACK > now {
                break;
            }
            self.uploads.pop_front();
            self.uploaded -= n;
        }
    }

    /// How long a request of `bytes` must wait, or `None` to go now.
    fn wait(&self, now: Instant, bytes: u64, l: &Limits) -> Option<Duration> {
        if let Some(p) = self.paused_until.filter(|p| *p > now) {
            return Some(p - now);
        }
        if self.in_flight >= l.in_flight {
            return Some(Duration::from_secs(1));
        }
        if self.sent.len() as u64 >= l.requests as u64 {
            let first = self.sent.front().copied().unwrap_or(now);
            return Some((first + l.request_window + WINDOW_SLACK).saturating_duration_since(now));
        }
        if bytes > 0 && !self.uploads.is_empty() && self.uploaded + bytes > l.upload_bytes {
            let first = self.uploads.front().map_or(now, |u| u.0);
            return Some((first + l.upload_window + WINDOW_SLACK).saturating_duration_since(now));
        }
        None
    }
}

/// A request under way: dropping it frees its place.
pub struct Permit<'a>(&'a Gate);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        s.in_flight -= 1;
        self.0.wake.notify_all();
    }
}

impl Gate {
    pub fn new(limits: Limits) -> Gate {
        Gate {
            limits,
            state: Mutex::new(GateState::default()),
            wake: Condvar::new(),
        }
    }

    /// Waits until a request carrying `bytes` may go (`None` when `stop`
    /// says so first).
    pub fn enter(&self, bytes: u64, stop: &(dyn Fn() -> bool + Sync)) -> Option<Permit<'_>> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if stop() {
                return None;
            }
            let now = Instant::now();
            s.expire(now, &self.limits);
            match s.wait(now, bytes, &self.limits) {
                None => {
                    s.in_flight += 1;
                    s.sent.push_back(now);
                    if bytes > 0 {
                        s.uploads.push_back((now, bytes));
                        s.uploaded += bytes;
                    }
                    return Some(Permit(self));
                }
                Some(d) => {
                    let d = d.clamp(Duration::from_millis(1), Duration::from_secs(1));
                    s = self
                        .wake
                        .wait_timeout(s, d)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    /// Nothing more goes to this mailbox for `d` (a `Retry-After`).
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.paused_until.is_none_or(|p| p < until) {
            s.paused_until = Some(until);
        }
    }
}

/// A request's body.
enum Body<'a> {
    Empty,
    Json(&'a Value),
    /// base64 text (`importMime`).
    Text(&'a str),
    /// A piece of an upload session: the bytes and their `Content-Range`.
    Piece(&'a [u8], String),
}

impl Body<'_> {
    /// The bytes to send and the header that says what they are: made once
    /// per request, however often it is tried.
    fn encode(&self) -> (Vec<u8>, Option<(&'static str, String)>) {
        let plain = |k: &'static str, v: &str| Some((k, v.to_string()));
        match self {
            Body::Empty => (Vec::new(), None),
            Body::Json(v) => (
                serde_json::to_vec(v).unwrap_or_default(),
                plain("Content-Type", "application/json"),
            ),
            Body::Text(t) => (t.as_bytes().to_vec(), plain("Content-Type", "text/plain")),
            Body::Piece(b, range) => (b.to_vec(), plain("Content-Range", range)),
        }
    }
}

/// One Graph target's client: credentials, URLs, limits, the token.
pub struct Graph {
    http: reqwest::blocking::Client,
    authority: String,
    tenant: String,
    client_id: String,
    secret: String,
    base: String,
    pub limits: Limits,
    token: Mutex<Option<(String, Instant)>>,
}

impl Graph {
    pub fn new(settings: &BTreeMap<String, String>) -> Result<Graph> {
        let get = |k: &str| {
            settings
                .get(k)
                .cloned()
                .ok_or_else(|| Error::Corrupt(format!("the target has no {k}")))
        };
        crate::server::install_tls_provider();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Internal(format!("cannot start an HTTP client: {e}")))?;
        let secret = crate::connector::secret::read(std::path::Path::new(&get("secret-file")?))?;
        Ok(Graph {
            http,
            authority: get("authority")?,
            tenant: get("tenant")?,
            client_id: get("client-id")?,
            secret,
            base: get("graph-url")?,
            limits: Limits::of(settings)?,
            token: Mutex::new(None),
        })
    }

    /// A token, from the cache while it has more than a few minutes left.
    pub fn token(&self) -> GResult<String> {
        let mut cached = self.token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant);
        let mut form = Url::parse("form:").map_err(|e| GraphError::Transient(e.to_string()))?;
        form.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", &self.secret)
            .append_pair("scope", &format!("{GRAPH}/.default"))
            .append_pair("grant_type", "client_credentials");
        let body = form.query().unwrap_or_default().to_string();
        let resp = self
            .http
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .map_err(|e| GraphError::Transient(format!("token: {}", e.without_url())))?;
        let status = resp.status().as_u16();
        let v: Value = resp.json().unwrap_or(Value::Null);
        let token = v["access_token"].as_str().filter(|_| status == 200);
        let Some(token) = token else {
            let words = v["error_description"]
                .as_str()
                .or(v["error"].as_str())
                .map(|w| w.lines().next().unwrap_or("").to_string())
                .unwrap_or_else(|| format!("HTTP {status}"));
            let why = format!("token: {status} {words}");
            return Err(match status {
                400 | 401 | 403 => GraphError::Permanent(format!(
                    "{why}: the tenant, client id or secret was refused"
                )),
                _ => GraphError::Transient(why),
            });
        };
        let life = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(3599));
        let until = Instant::now() + life.saturating_sub(TOKEN_MARGIN.min(life / 2));
        *cached = Some((token.to_string(), until));
        Ok(token.to_string())
    }

    fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// `{graph}/{version}/users/{mailbox}/{rest...}`, each segment escaped.
    pub fn url(&self, version: &str, mailbox: &str, rest: &[&str]) -> GResult<Url> {
        let mut url =
            Url::parse(&self.base).map_err(|e| GraphError::Permanent(format!("graph-url: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| GraphError::Permanent("graph-url cannot take a path".into()))?
            .pop_if_empty()
            .extend([version, "users", mailbox])
            .extend(rest);
        Ok(url)
    }

    /// Sends one request through the mailbox's gate: throttles waited out,
    /// a 401 answered by one fresh token. `auth`: send the bearer token.
    fn call(
        &self,
        gate: &Gate,
        method: Method,
        url: &Url,
        body: Body,
        auth: bool,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> GResult<Value> {
        let (mut refreshed, mut throttled) = (false, 0);
        // An upload URL carries a token of its own: never named.
        let what = match auth {
            true => describe(&method, url),
            false => format!("{method} upload"),
        };
        let (content, header) = body.encode();
        loop {
            let permit = gate
                .enter(content.len() as u64, stop)
                .ok_or(GraphError::Stopped)?;
            let mut req = self.http.request(method.clone(), url.clone());
            if auth {
                req = req.bearer_auth(self.token()?);
            }
            if let Some((k, v)) = &header {
                req = req.header(*k, v.as_str()).body(content.clone());
            }
            let resp = req
                .send()
                .map_err(|e| GraphError::Transient(format!("{what}: {}", e.without_url())))?;
            let status = resp.status().as_u16();
            let wait = retry_after(resp.headers());
            let bytes = resp
                .bytes()
                .map_err(|e| GraphError::Transient(format!("{what}: {}", e.without_url())))?;
            drop(permit);
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            match status {
                200..=299 => return Ok(v),
                429 | 503 => {
                    throttled += 1;
                    if throttled > MAX_THROTTLED {
                        return Err(GraphError::Transient(format!(
                            "{what}: throttled {MAX_THROTTLED} times ({})",
                            words(&v, status)
                        )));
                    }
                    gate.pause(wait.unwrap_or(DEFAULT_WAIT).min(LONGEST_WAIT));
                }
                401 if auth && !refreshed => {
                    self.forget_token();
                    refreshed = true;
                }
                401 => {
                    return Err(GraphError::Permanent(format!(
                        "{what}: 401 {}",
                        words(&v, status)
                    )));
                }
                500.. => {
                    return Err(GraphError::Transient(format!(
                        "{what}: {status} {}",
                        words(&v, status)
                    )));
                }
                _ => {
                    return Err(GraphError::Refused(
                        status,
                        format!("{what}: {}", words(&v, status)),
                    ));
                }
            }
        }
    }

    /// The id of the top-level folder named `name` (any case) in `mailbox`,
    /// created when absent.
    pub fn folder(
        &self,
        gate: &Gate,
        mailbox: &str,
        name: &str,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> GResult<String> {
        if let Some(id) = self.find_folder(gate, mailbox, name, stop)? {
            return Ok(id);
        }
        let url = self.url("v1.0", mailbox, &["mailFolders"])?;
        let body = json!({"displayName": name});
        match self.call(gate, Method::POST, &url, Body::Json(&body), true, stop) {
            Ok(v) => id_of(&v, "mailFolders"),
            // Made meanwhile (another pass, a person): look again.
            Err(GraphError::Refused(409, why)) => self
                .find_folder(gate, mailbox, name, stop)?
                .ok_or(GraphError::Refused(409, why)),
            Err(e) => Err(e),
        }
    }

    fn find_folder(
        &self,
        gate: &Gate,
        mailbox: &str,
        name: &str,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> GResult<Option<String>> {
        let mut url = self.url("v1.0", mailbox, &["mailFolders"])?;
        url.query_pairs_mut().append_pair("$top", "50");
        let want = name.to_lowercase();
        for _page in 0..10_000 {
            let v = self.call(gate, Method::GET, &url, Body::Empty, true, stop)?;
            let list = v["value"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            for f in list {
                if f["displayName"].as_str().map(str::to_lowercase).as_deref() == Some(&want) {
                    return id_of(f, "mailFolders").map(Some);
                }
            }
            match v["@odata.nextLink"].as_str() {
                Some(next) => url = within(&self.base, next)?,
                None => return Ok(None),
            }
        }
        Err(GraphError::Transient(
            "mailFolders: pages without end".into(),
        ))
    }

    /// Files a MIME message as a received item (`importMime`): its id.
    pub fn import_mime(
        &self,
        gate: &Gate,
        mailbox: &str,
        folder: &str,
        mime: &[u8],
        stop: &(dyn Fn() -> bool + Sync),
    ) -> GResult<String> {
        let url = self.url("beta", mailbox, &["mailFolders", folder, "importMime"])?;
        let text = base64::engine::general_purpose::STANDARD.encode(mime);
        let v = self.call(gate, Method::POST, &url, Body::Text(&text), true, stop)?;
        id_of(&v, "importMime")
    }

    /// The message in `folder` with this Message-ID whose `X-Tgvault-Item`
    /// header is `header`: its id, and whether it was rebuilt as JSON (its
    /// [`FORM_HEADER`] says so).
    pub fn find(
        &self,
        gate: &Gate,
        mailbox: &str,
        folder: &str,
        message_id: &str,
        header: &str,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> GResult<Option<(String, bool)>> {
        let mut url = self.url("v1.0", mailbox, &["mailFolders", folder, "messages"])?;
        let filter = format!("internetMessageId eq '{}'", message_id.replace('\'', "''"));
        url.query_pairs_mut()
            .append_pair("$filter", &filter)
            .append_pair("$select", "id,internetMessageHeaders");
        let mut seen = 0;
        loop {
            let v = self.call(gate, Method::GET, &url, Body::Empty, true, stop)?;
            for m in v["value"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                if header_of(m, super::HEADER) == Some(header) {
                    let json = header_of(m, FORM_HEADER) == Some("json");
                    return id_of(m, "messages").map(|id| Some((id, json)));
                }
            }
            seen += 1;
            match v["@odata.nextLink"].as_str() {
                Some(next) if seen < 1000 => url = within(&self.base, next)?,
                _ => return Ok(None),
            }
        }
    }

    /// Creates a message from its JSON form (the fallback): its id.
    pub fn create(
        &self,
        gate: &Gate,
        mailbox: &str,
        folder: &str,
        message: &Value,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> GResult<String> {
        let url = self.url("v1.0", mailbox, &["mailFolders", folder, "messages"])?;
        let v = self.call(gate, Method::POST, &url, Body::Json(message), true, stop)?;
        id_of(&v, "messages")
    }

    /// Adds a file to a message: in one request when small, else through an
    /// upload session in pieces under 4 MB.
    #[allow(clippy::too_many_arguments)]
    pub fn attach(
        &self,
        gate: &Gate,
        mailbox: &str,
        message: &str,
        name: &str,
        content_type: &str,
        bytes: &[u8],
        stop: &(dyn Fn() -> bool + Sync),
    ) -> GResult<()> {
        let url = self.url("v1.0", mailbox, &["messages", message, "attachments"])?;
        if bytes.len() <= SMALL_ATTACHMENT {
            let body = json!({
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": name,
                "contentType": content_type,
                "contentBytes": base64::engine::general_purpose::STANDARD.encode(bytes),
            });
            self.call(gate, Method::POST, &url, Body::Json(&body), true, stop)?;
            return Ok(());
        }
        let url = self.url(
            "v1.0",
            mailbox,
            &["messages", message, "attachments", "createUploadSession"],
        )?;
        let body = json!({"AttachmentItem": {
            "attachmentType": "file", "name": name, "size": bytes.len(),
            "contentType": content_type}});
        let v = self.call(gate, Method::POST, &url, Body::Json(&body), true, stop)?;
        let upload = v["uploadUrl"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| GraphError::Transient("createUploadSession: no uploadUrl".into()))?;
        self.upload(gate, &upload, bytes, stop)
    }

    /// PUTs the pieces of an upload session, resuming from what the server
    /// says it expects next.
    fn upload(
        &self,
        gate: &Gate,
        url: &Url,
        bytes: &[u8],
        stop: &(dyn Fn() -> bool + Sync),
    ) -> GResult<()> {
        let total = bytes.len();
        let mut at = 0;
        for _ in 0..(total / UPLOAD_PIECE + 16) * 2 {
            let end = (at + UPLOAD_PIECE).min(total);
            let range = format!("bytes {at}-{}/{total}", end - 1);
            let piece = Body::Piece(&bytes[at..end], range);
            let v = self.call(gate, Method::PUT, url, piece, false, stop)?;
            let next = v["nextExpectedRanges"]
                .as_array()
                .and_then(|r| r.first())
                .and_then(Value::as_str)
                .and_then(|r| r.split('-').next())
                .and_then(|s| s.parse::<usize>().ok());
            match next {
                Some(n) if n < total => at = n,
                _ if end >= total => return Ok(()),
                _ => at = end,
            }
        }
        Err(GraphError::Transient(
            "upload session: the server never took the last piece".into(),
        ))
    }

    /// The names of a message's attachments.
    pub fn attachment_names(
        &self,
        gate: &Gate,
        mailbox: &str,
        message: &str,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> GResult<Vec<String>> {
        let mut url = self.url("v1.0", mailbox, &["messages", message, "attachments"])?;
        url.query_pairs_mut().append_pair("$select", "name,size");
        let mut names = Vec::new();
        for _page in 0..1000 {
            let v = self.call(gate, Method::GET, &url, Body::Empty, true, stop)?;
            for a in v["value"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                names.extend(a["name"].as_str().map(str::to_string));
            }
            match v["@odata.nextLink"].as_str() {
                Some(next) => url = within(&self.base, next)?,
                None => break,
            }
        }
        Ok(names)
    }

    /// A message's subject and headers, or `None` when it is not there.
    pub fn message(
        &self,
        gate: &Gate,
        mailbox: &str,
        id: &str,
        stop: &(dyn Fn() -> bool + Sync),
    ) -> GResult<Option<Value>> {
        let mut url = self.url("v1.0", mailbox, &["messages", id])?;
        url.query_pairs_mut().append_pair(
            "$select",
            "id,subject,internetMessageId,internetMessageHeaders",
        );
        match self.call(gate, Method::GET, &url, Body::Empty, true, stop) {
            Ok(v) => Ok(Some(v)),
            Err(GraphError::Refused(404, _)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A `nextLink`, refused unless it points into the Graph URL `base` (the
/// token goes nowhere else).
fn within(base: &str, link: &str) -> GResult<Url> {
    let url = Url::parse(link)
        .map_err(|e| GraphError::Transient(format!("a nextLink that is not a URL: {e}")))?;
    let base = Url::parse(base).map_err(|e| GraphError::Permanent(e.to_string()))?;
    let prefix = base.path().trim_end_matches('/');
    let inside = url.path() == prefix || url.path().starts_with(&format!("{prefix}/"));
    if url.origin() != base.origin() || !inside {
        return Err(GraphError::Transient(
            "a nextLink outside the Graph URL: not followed".into(),
        ));
    }
    Ok(url)
}

/// The value of a header in a message's `internetMessageHeaders`.
pub fn header_of<'a>(message: &'a Value, name: &str) -> Option<&'a str> {
    message["internetMessageHeaders"]
        .as_array()?
        .iter()
        .find(|h| {
            h["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .and_then(|h| h["value"].as_str())
}

fn id_of(v: &Value, what: &str) -> GResult<String> {
    v["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| GraphError::Transient(format!("{what}: an answer without an id")))
}

/// Graph's words for a refusal: `error.code: error.message`, one line.
fn words(v: &Value, status: u16) -> String {
    let e = &v["error"];
    match (e["code"].as_str(), e["message"].as_str()) {
        (Some(c), Some(m)) => format!("{c}: {}", m.lines().next().unwrap_or("")),
        (Some(c), None) => c.to_string(),
        (None, Some(m)) => m.lines().next().unwrap_or("").to_string(),
        (None, None) => format!("HTTP {status}"),
    }
}

/// What a request was, for a message: its method and the last segment of
/// its path (never a query, which may carry a token).
fn describe(method: &Method, url: &Url) -> String {
    let last = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .unwrap_or("");
    format!("{method} {last}")
}

fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_unless_loopback() {
        assert!(check_url("https://graph.microsoft.com/", "x").is_ok());
        assert!(check_url("http://127.0.0.1:8080", "x").is_ok());
        assert!(check_url("http://[::1]:80", "x").is_ok());
        assert!(check_url("http://localhost:80", "x").is_ok());
        assert!(check_url("http://graph.microsoft.com", "x").is_err());
        assert!(check_url("http://10.0.0.1", "x").is_err());
        assert!(check_url("ftp://127.0.0.1", "x").is_err());
        assert!(check_url("https://h/?a=b", "x").is_err());
        assert!(check_url("not a url", "x").is_err());
    }

    #[test]
    fn next_links_are_followed_only_within_the_graph_url() {
        let base = "https://graph.microsoft.com";
        let ok = "https://graph.microsoft.com/v1.0/users/a/mailFolders?$skip=10";
        assert!(within(base, ok).is_ok());
        for bad in [
            "https://evil.example/v1.0/users/a/mailFolders",
            "http://graph.microsoft.com/v1.0/users/a",
            "https://graph.microsoft.com:8443/v1.0",
            "https://graph.microsoft.com.evil.example/v1.0",
            "/v1.0/users/a",
            "",
        ] {
            assert!(within(base, bad).is_err(), "{bad}");
        }
        let prefixed = "http://127.0.0.1:9/graph";
        assert!(within(prefixed, "http://127.0.0.1:9/graph/v1.0/x").is_ok());
        assert!(within(prefixed, "http://127.0.0.1:9/other/v1.0/x").is_err());
        assert!(within(prefixed, "http://127.0.0.1:9/graphx/v1.0/x").is_err());
    }

    #[test]
    fn budgets_parse_or_are_refused() {
        assert_eq!(
            budget("10000/600", "b").unwrap(),
            (10_000, Duration::from_secs(600))
        );
        for bad in ["", "10", "0/5", "5/0", "a/b", "5/100000", "-1/5"] {
            assert!(budget(bad, "b").is_err(), "{bad}");
        }
    }

    #[test]
    fn the_gate_keeps_the_request_budget_and_in_flight_limit() {
        let l = Limits {
            requests: 7,
            request_window: Duration::from_millis(300),
            ..Limits::default()
        };
        let gate = Gate::new(l);
        let go = || false;
        let started = Instant::now();
        for _ in 0..3 {
            drop(gate.enter(0, &go).unwrap());
        }
        assert!(started.elapsed() < Duration::from_millis(250));
        // Four held: a fifth would wait, and none leaves the window first.
        let held: Vec<_> = (0..4).filter_map(|_| gate.enter(0, &go)).collect();
        assert_eq!(held.len(), 4);
        let stop = || true;
        assert!(gate.enter(0, &stop).is_none());
        drop(held);
        // Seven sent in the window: the eighth waits for the first to leave.
        drop(gate.enter(0, &go).unwrap());
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn a_pause_holds_every_request() {
        let gate = Gate::new(Limits::default());
        gate.pause(Duration::from_millis(200));
        let started = Instant::now();
        drop(gate.enter(0, &|| false).unwrap());
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
