//! The routes under `/api/v1/` (and `/healthz`), each a parse, one service
//! call, a render. `openapi.json` beside this file documents every route in
//! [`ROUTES`]; a test keeps the three in step.

use super::connectors as c;
use super::forward as f;
use super::{ApiError, State, blocking};
use crate::error::Error;
use crate::index::search::Sort;
use crate::model::ItemId;
use crate::service::{CaseHoldRequest, Principal, SearchRequest, Service, views};
use crate::time::iso;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Path, Query, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::serve::IncomingStream;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

/// Every route the server answers: method and path (OpenAPI's syntax).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/search"),
    ("get", "/api/v1/items/{id}"),
    ("get", "/api/v1/mailboxes"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/holds"),
    ("post", "/api/v1/holds"),
    ("delete", "/api/v1/holds/{mailbox}"),
    ("get", "/api/v1/cases"),
    ("post", "/api/v1/cases"),
    ("get", "/api/v1/cases/{name}"),
    ("post", "/api/v1/cases/{name}/close"),
    ("post", "/api/v1/cases/{name}/holds"),
    ("delete", "/api/v1/cases/{name}/holds/{hold}"),
    ("post", "/api/v1/cases/{name}/members"),
    ("delete", "/api/v1/cases/{name}/members/{user}"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/users"),
    ("delete", "/api/v1/users/{name}"),
    ("post", "/api/v1/users/{name}/roles"),
    ("delete", "/api/v1/users/{name}/roles/{role}"),
    ("post", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("post", "/api/v1/cli"),
    ("get", "/api/v1/mailboxes/{mailbox}/items"),
    ("get", "/api/v1/quarantine"),
    ("post", "/api/v1/quarantine/remap"),
    ("get", "/api/v1/runs"),
    ("get", "/api/v1/policies"),
    ("post", "/api/v1/policies"),
    ("delete", "/api/v1/policies/{name}"),
    ("post", "/api/v1/retention/run"),
    ("get", "/api/v1/items/{id}/explain"),
    ("post", "/api/v1/verify"),
    ("post", "/api/v1/reindex"),
    ("post", "/api/v1/imports"),
    ("post", "/api/v1/exports"),
    ("get", "/api/v1/exports/{id}"),
    ("get", "/api/v1/connectors"),
    ("post", "/api/v1/connectors"),
    ("get", "/api/v1/connectors/{name}"),
    ("delete", "/api/v1/connectors/{name}"),
    ("post", "/api/v1/connectors/{name}/pause"),
    ("post", "/api/v1/connectors/{name}/resume"),
    ("get", "/api/v1/connectors/{name}/status"),
    ("get", "/api/v1/connectors/{name}/log"),
    ("get", "/api/v1/connector-status"),
    ("post", "/api/v1/sync"),
    ("get", "/api/v1/forward"),
    ("post", "/api/v1/forward"),
    ("get", "/api/v1/forward/{name}"),
    ("delete", "/api/v1/forward/{name}"),
    ("post", "/api/v1/forward/{name}/pause"),
    ("post", "/api/v1/forward/{name}/resume"),
    ("get", "/api/v1/forward/{name}/ledger"),
    ("get", "/api/v1/forward-status"),
    ("post", "/api/v1/forward-run"),
];

pub const OPENAPI: &str = include_str!("openapi.json");

/// The largest JSON request body (an upload is bounded by `serve
/// --max-upload-mib` instead).
const JSON_BODY_MAX: usize = 1 << 20;

/// How long a reading request may take before it is answered 503: a
/// pathological query must not hold a client forever. Changes (imports,
/// retention runs, exports) run to their end, so their answer is true.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Clone, Copy)]
pub enum Transport {
    Tcp,
    Unix,
}

/// Who is at the other end of a connection.
#[derive(Clone, Debug)]
pub enum Peer {
    Tcp(SocketAddr),
    /// The peer's uid, from the socket's credentials.
    Unix(Option<u32>),
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Tcp(a) => write!(f, "from {a}"),
            Peer::Unix(Some(uid)) => write!(f, "from uid {uid} on the socket"),
            Peer::Unix(None) => write!(f, "on the socket"),
        }
    }
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Peer {
    fn connect_info(s: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer::Tcp(*s.remote_addr())
    }
}

impl Connected<IncomingStream<'_, super::tls::TlsListener>> for Peer {
    fn connect_info(s: IncomingStream<'_, super::tls::TlsListener>) -> Self {
        Peer::Tcp(*s.remote_addr())
    }
}

impl Connected<IncomingStream<'_, tokio::net::UnixListener>> for Peer {
    fn connect_info(s: IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        Peer::Unix(s.io().peer_cred().ok().map(|c| c.uid()))
    }
}

pub(crate) fn router(state: Arc<State>, transport: Transport) -> Router {
    let mut api = Router::new();
    if matches!(transport, Transport::Unix) {
        // The CLI's own route: only its OS user's principal may reach it.
        api = api.route("/api/v1/cli", post(cli));
    }
    let api = api
        .route("/api/v1/search", get(search))
        .route("/api/v1/items/{id}", get(item))
        .route("/api/v1/mailboxes", get(mailboxes))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/holds", get(holds).post(hold_set))
        .route("/api/v1/holds/{mailbox}", delete(hold_clear))
        .route("/api/v1/cases", get(cases).post(case_create))
        .route("/api/v1/cases/{name}", get(case_show))
        .route("/api/v1/cases/{name}/close", post(case_close))
        .route("/api/v1/cases/{name}/holds", post(case_hold_add))
        .route(
            "/api/v1/cases/{name}/holds/{hold}",
            delete(case_hold_remove),
        )
        .route("/api/v1/cases/{name}/members", post(member_add))
        .route("/api/v1/cases/{name}/members/{user}", delete(member_remove))
        .route("/api/v1/users", get(users).post(user_add))
        .route("/api/v1/users/{name}", delete(user_remove))
        .route("/api/v1/users/{name}/roles", post(role_add))
        .route("/api/v1/users/{name}/roles/{role}", delete(role_remove))
        .route("/api/v1/tokens", post(token_create))
        .route("/api/v1/tokens/{id}", delete(token_revoke))
        .route("/api/v1/mailboxes/{mailbox}/items", get(filings))
        .route("/api/v1/quarantine", get(quarantine))
        .route("/api/v1/quarantine/remap", post(remap))
        .route("/api/v1/runs", get(runs))
        .route("/api/v1/policies", get(policies).post(policy_add))
        .route("/api/v1/policies/{name}", delete(policy_remove))
        .route("/api/v1/retention/run", post(retention_run))
        .route("/api/v1/items/{id}/explain", get(explain))
        .route("/api/v1/verify", post(verify))
        .route("/api/v1/reindex", post(reindex))
        .route("/api/v1/imports", post(super::files::import))
        .route("/api/v1/exports", post(super::files::export))
        .route("/api/v1/exports/{id}", get(super::files::download))
        .route("/api/v1/connectors", get(c::list).post(c::add))
        .route("/api/v1/connectors/{name}", get(c::show).delete(c::remove))
        .route("/api/v1/connectors/{name}/pause", post(c::pause))
        .route("/api/v1/connectors/{name}/resume", post(c::resume))
        .route("/api/v1/connectors/{name}/status", get(c::status))
        .route("/api/v1/connectors/{name}/log", get(c::log))
        .route("/api/v1/connector-status", get(c::status_all))
        .route("/api/v1/sync", post(c::sync))
        .route("/api/v1/forward", get(f::list).post(f::add))
        .route("/api/v1/forward/{name}", get(f::show).delete(f::remove))
        .route("/api/v1/forward/{name}/pause", post(f::pause))
        .route("/api/v1/forward/{name}/resume", post(f::resume))
        .route("/api/v1/forward/{name}/ledger", get(f::ledger))
        .route("/api/v1/forward-status", get(f::status))
        .route("/api/v1/forward-run", post(f::run))
        .route_layer(axum::middleware::from_fn_with_state(
            (state.clone(), matches!(transport, Transport::Unix)),
            authenticate,
        ));
    api.route_layer(axum::middleware::from_fn(read_timeout))
        .layer(axum::extract::DefaultBodyLimit::max(JSON_BODY_MAX))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/api/v1/openapi.json",
            get(|| async { ([("content-type", "application/json")], OPENAPI) }),
        )
        .with_state(state)
}

/// Finds the principal (bearer token over TCP, the peer's account over the
/// socket) and hands it to the route, or answers 401.
async fn authenticate(
    axum::extract::State((state, unix)): axum::extract::State<(Arc<State>, bool)>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = bearer(&req);
    let owner = state.owner_uid;
    let st = state.clone();
    let found = tokio::task::spawn_blocking(move || match (unix, peer) {
        (true, Peer::Unix(uid)) => socket_principal(&st.service, uid, owner),
        (_, peer) => match token {
            Some(t) => st.service.authenticate(&t),
            None => Err(st
                .service
                .refuse_anonymous(&format!("no bearer token ({peer})"))),
        },
    })
    .await;
    match found {
        Ok(Ok(who)) => {
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        Ok(Err(e)) => ApiError(e).into_response(),
        Err(e) => ApiError(Error::Internal(format!("request task: {e}"))).into_response(),
    }
}

async fn read_timeout(req: Request, next: Next) -> Response {
    if req.method() != axum::http::Method::GET {
        return next.run(req).await;
    }
    match tokio::time::timeout(READ_TIMEOUT, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let body = json!({"error": "timeout", "message": format!("the request took longer than {} s", READ_TIMEOUT.as_secs())});
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

fn bearer(req: &Request) -> Option<String> {
    let v = req.headers().get(axum::http::header::AUTHORIZATION)?;
    let v = v.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The archive directory's owner and root are the local administrator;
/// another account is the user whose `--os-user` it is, or nobody.
fn socket_principal(service: &Service, uid: Option<u32>, owner: u32) -> crate::Result<Principal> {
    let Some(uid) = uid else {
        return Err(service.refuse_anonymous("socket peer without credentials"));
    };
    let name = crate::os::account(uid);
    if uid == 0 || uid == owner {
        return Ok(Principal::local(&format!("os:{name}")));
    }
    match service.principal_of_os_user(&name)? {
        Some(p) => Ok(p),
        None => Err(service.refuse_anonymous(&format!("OS user {name} is no tgvault user"))),
    }
}

type Api = Result<Json<Value>, ApiError>;
type St = axum::extract::State<Arc<State>>;
type Who = Extension<Principal>;

fn ok() -> Api {
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize)]
struct SearchParams {
    q: String,
    limit: Option<usize>,
    sort: Option<String>,
    case: Option<String>,
    count: Option<bool>,
    mailbox: Option<String>,
}

async fn search(st: St, Extension(who): Who, Query(q): Query<SearchParams>) -> Api {
    let sort = match q.sort.as_deref() {
        None | Some("date") => Sort::Date,
        Some("relevance") => Sort::Relevance,
        Some(other) => {
            return Err(ApiError(Error::Usage(format!(
                "sort: '{other}' is neither date nor relevance"
            ))));
        }
    };
    let req = SearchRequest {
        query: q.q,
        mailboxes: q
            .mailbox
            .iter()
            .flat_map(|m| m.split(','))
            .map(|m| m.trim().to_lowercase())
            .filter(|m| !m.is_empty())
            .collect(),
        limit: q.limit.unwrap_or(50),
        sort,
        case: q.case,
        count: q.count.unwrap_or(false),
    };
    let r = blocking(&st.0, who, move |s, w| s.search(w, &req)).await?;
    let hits: Vec<Value> = r.hits.iter().map(|h| h.to_json()).collect();
    Ok(Json(
        json!({"hits": hits, "total": r.total, "shown": r.hits.len(), "notes": r.notes}),
    ))
}

/// An item id from a path (`tg:SCOPE:CHAT:MESSAGE`).
fn item_id(text: &str) -> Result<ItemId, ApiError> {
    text.parse().map_err(|e| ApiError(Error::Usage(e)))
}

#[derive(Deserialize)]
struct CaseParam {
    case: Option<String>,
}

async fn item(
    st: St,
    Extension(who): Who,
    Path(id): Path<String>,
    Query(c): Query<CaseParam>,
) -> Api {
    let id = item_id(&id)?;
    let v = blocking(&st.0, who, move |s, w| s.item(w, &id, c.case.as_deref())).await?;
    Ok(Json(v.to_json()))
}

async fn mailboxes(st: St, Extension(who): Who) -> Api {
    let rows = blocking(&st.0, who, |s, w| s.mailboxes(w)).await?;
    Ok(Json(json!({"mailboxes": rows})))
}

/// `?since=YYYY-MM-DD`.
#[derive(Deserialize)]
pub(super) struct SinceParam {
    since: Option<String>,
}

impl SinceParam {
    pub(super) fn day(&self) -> Result<Option<i64>, ApiError> {
        let since = self.since.as_deref();
        since
            .map(crate::service::parse_day)
            .transpose()
            .map_err(ApiError)
    }
}

async fn audit(st: St, Extension(who): Who, Query(q): Query<SinceParam>) -> Api {
    let since = q.day()?;
    let entries = blocking(&st.0, who, move |s, w| s.audit(w, since)).await?;
    let entries: Vec<Value> = entries.iter().map(crate::service::entry_json).collect();
    Ok(Json(json!({"entries": entries})))
}

async fn holds(st: St, Extension(who): Who) -> Api {
    let holds = blocking(&st.0, who, |s, w| s.holds(w)).await?;
    let holds: Vec<Value> = holds.iter().map(crate::service::views::hold_json).collect();
    Ok(Json(json!({"holds": holds})))
}

#[derive(Deserialize)]
struct HoldBody {
    mailbox: String,
    days: Option<u32>,
}

async fn hold_set(st: St, Extension(who): Who, Json(b): Json<HoldBody>) -> Api {
    let m = crate::service::mailbox_arg(&b.mailbox).map_err(ApiError)?;
    blocking(&st.0, who, move |s, w| s.hold_set(w, &m, b.days)).await?;
    ok()
}

async fn hold_clear(st: St, Extension(who): Who, Path(mailbox): Path<String>) -> Api {
    let m = crate::service::mailbox_arg(&mailbox).map_err(ApiError)?;
    blocking(&st.0, who, move |s, w| s.hold_clear(w, &m)).await?;
    ok()
}

async fn cases(st: St, Extension(who): Who) -> Api {
    let cases = blocking(&st.0, who, |s, w| s.cases(w)).await?;
    let cases: Vec<Value> = cases
        .iter()
        .map(|(name, c)| crate::service::case_json(name, c))
        .collect();
    Ok(Json(json!({"cases": cases})))
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

async fn case_create(st: St, Extension(who): Who, Json(b): Json<NameBody>) -> Api {
    blocking(&st.0, who, move |s, w| s.case_create(w, &b.name)).await?;
    ok()
}

async fn case_show(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    let n = name.clone();
    let (c, holds) = blocking(&st.0, who, move |s, w| s.case(w, &n)).await?;
    let mut v = crate::service::case_json(&name, &c);
    v["holds"] = holds.iter().map(crate::service::views::hold_json).collect();
    Ok(Json(v))
}

async fn case_close(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    let n = blocking(&st.0, who, move |s, w| s.case_close(w, &name)).await?;
    Ok(Json(json!({"released": n})))
}

#[derive(Deserialize)]
struct CaseHoldBody {
    #[serde(default)]
    mailboxes: Vec<String>,
    query: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn case_hold_add(
    st: St,
    Extension(who): Who,
    Path(name): Path<String>,
    Json(b): Json<CaseHoldBody>,
) -> Api {
    let parse = |d: &Option<String>, end| {
        d.as_deref()
            .map(|d| crate::service::parse_time(d, end))
            .transpose()
            .map_err(ApiError)
    };
    let req = CaseHoldRequest {
        mailboxes: b
            .mailboxes
            .iter()
            .map(|m| crate::service::mailbox_arg(m))
            .collect::<crate::Result<_>>()
            .map_err(ApiError)?,
        query: b.query.clone(),
        from: parse(&b.from, false)?,
        to: parse(&b.to, true)?,
    };
    let id = blocking(&st.0, who, move |s, w| s.case_hold_add(w, &name, req)).await?;
    Ok(Json(json!({"hold": id})))
}

async fn case_hold_remove(
    st: St,
    Extension(who): Who,
    Path((name, hold)): Path<(String, u32)>,
) -> Api {
    blocking(&st.0, who, move |s, w| s.case_hold_remove(w, &name, hold)).await?;
    ok()
}

#[derive(Deserialize)]
struct UserBody {
    user: String,
}

async fn member_add(
    st: St,
    Extension(who): Who,
    Path(name): Path<String>,
    Json(b): Json<UserBody>,
) -> Api {
    blocking(&st.0, who, move |s, w| {
        s.case_member(w, &name, &b.user, true)
    })
    .await?;
    ok()
}

async fn member_remove(
    st: St,
    Extension(who): Who,
    Path((name, user)): Path<(String, String)>,
) -> Api {
    blocking(&st.0, who, move |s, w| {
        s.case_member(w, &name, &user, false)
    })
    .await?;
    ok()
}

async fn users(st: St, Extension(who): Who) -> Api {
    let users = blocking(&st.0, who, |s, w| s.users(w)).await?;
    Ok(Json(json!({"users": users})))
}

#[derive(Deserialize)]
struct NewUserBody {
    name: String,
    #[serde(default)]
    roles: Vec<String>,
    os_user: Option<String>,
}

async fn user_add(st: St, Extension(who): Who, Json(b): Json<NewUserBody>) -> Api {
    blocking(&st.0, who, move |s, w| {
        s.user_add(w, &b.name, &b.roles, b.os_user.as_deref())
    })
    .await?;
    ok()
}

async fn user_remove(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    blocking(&st.0, who, move |s, w| s.user_remove(w, &name)).await?;
    ok()
}

#[derive(Deserialize)]
struct RoleBody {
    role: String,
}

async fn role_add(
    st: St,
    Extension(who): Who,
    Path(name): Path<String>,
    Json(b): Json<RoleBody>,
) -> Api {
    blocking(&st.0, who, move |s, w| s.user_role(w, &name, &b.role, true)).await?;
    ok()
}

async fn role_remove(
    st: St,
    Extension(who): Who,
    Path((name, role)): Path<(String, String)>,
) -> Api {
    blocking(&st.0, who, move |s, w| s.user_role(w, &name, &role, false)).await?;
    ok()
}

#[derive(Deserialize)]
struct TokenBody {
    user: String,
    expires_days: Option<u32>,
}

async fn token_create(st: St, Extension(who): Who, Json(b): Json<TokenBody>) -> Api {
    let t = blocking(&st.0, who, move |s, w| {
        s.token_create(w, &b.user, b.expires_days)
    })
    .await?;
    Ok(Json(json!({
        "id": t.id, "user": t.user, "token": t.token, "expires": t.expires.map(iso),
    })))
}

async fn token_revoke(st: St, Extension(who): Who, Path(id): Path<String>) -> Api {
    blocking(&st.0, who, move |s, w| s.token_revoke(w, &id)).await?;
    ok()
}

async fn cli(
    st: St,
    Extension(who): Who,
    Json(req): Json<crate::cli::remote::Request>,
) -> Result<Json<crate::cli::remote::Response>, ApiError> {
    let resp = blocking(&st.0, who, move |s, w| {
        Ok(crate::cli::remote::serve(s, w, &req))
    })
    .await?;
    Ok(Json(resp))
}

#[derive(Deserialize)]
struct FolderParam {
    folder: Option<String>,
}

async fn filings(
    st: St,
    Extension(who): Who,
    Path(mailbox): Path<String>,
    Query(q): Query<FolderParam>,
) -> Api {
    let mailbox = mailbox.to_lowercase();
    let rows = blocking(&st.0, who, move |s, w| {
        let mut rows = Vec::new();
        s.filings(w, &mailbox, q.folder.as_deref(), |k, f, i| {
            rows.push(views::filing_json(k, f, i));
            Ok(())
        })?;
        Ok(rows)
    })
    .await?;
    Ok(Json(json!({"items": rows})))
}

async fn quarantine(st: St, Extension(who): Who) -> Api {
    let held = blocking(&st.0, who, |s, w| s.quarantine(w)).await?;
    let items: Vec<Value> = held
        .iter()
        .map(|(id, rec, item)| views::quarantined_json(id, rec, item))
        .collect();
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize)]
struct RemapBody {
    /// A user map under the server's incoming directory.
    mapping: String,
}

async fn remap(st: St, Extension(who): Who, Json(b): Json<RemapBody>) -> Api {
    let state = st.0.clone();
    let report = blocking(&st.0, who, move |s, w| {
        let path = super::files::under(&state.dirs.incoming, &b.mapping)?;
        let mapping = crate::mapping::Mapping::from_path(&path)?;
        s.remap(w, &mapping, vec![format!("api remap {}", b.mapping)])
    })
    .await?;
    Ok(Json(report.to_json()))
}

async fn runs(st: St, Extension(who): Who) -> Api {
    let runs = blocking(&st.0, who, |s, w| s.runs(w)).await?;
    let runs: Vec<Value> = runs.iter().map(views::run_json).collect();
    Ok(Json(json!({"runs": runs})))
}

async fn policies(st: St, Extension(who): Who) -> Api {
    let ps = blocking(&st.0, who, |s, w| s.policies(w)).await?;
    let ps: Vec<Value> = ps.iter().map(views::policy_json).collect();
    Ok(Json(json!({"policies": ps})))
}

#[derive(Deserialize)]
struct PolicyBody {
    name: String,
    retain_days: Option<u32>,
    delete_after_days: Option<u32>,
    #[serde(default)]
    then_delete: bool,
    #[serde(default)]
    mailboxes: Vec<String>,
}

async fn policy_add(st: St, Extension(who): Who, Json(b): Json<PolicyBody>) -> Api {
    let action = crate::service::policy_action(b.retain_days, b.delete_after_days, b.then_delete)
        .map_err(ApiError)?;
    let mailboxes = b
        .mailboxes
        .iter()
        .map(|m| crate::service::mailbox_arg(m))
        .collect::<crate::Result<Vec<_>>>()
        .map_err(ApiError)?;
    let policy = crate::policy::Policy {
        name: b.name,
        action,
        mailboxes,
    };
    blocking(&st.0, who, move |s, w| s.policy_add(w, policy)).await?;
    ok()
}

async fn policy_remove(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    blocking(&st.0, who, move |s, w| s.policy_remove(w, &name)).await?;
    ok()
}

#[derive(Deserialize)]
struct RetentionRunBody {
    /// When to decide as of (default: now).
    now: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

async fn retention_run(st: St, Extension(who): Who, Json(b): Json<RetentionRunBody>) -> Api {
    let at = b
        .now
        .as_deref()
        .map(|t| crate::service::parse_time(t, false))
        .transpose()
        .map_err(ApiError)?;
    let done = blocking(&st.0, who, move |s, w| {
        let at = at.unwrap_or_else(|| s.now_for_request());
        s.retention_run(w, at, b.dry_run, vec!["api retention run".into()])
    })
    .await?;
    let v = serde_json::to_value(&done)
        .map_err(|e| ApiError(Error::Internal(format!("retention run: {e}"))))?;
    Ok(Json(v))
}

#[derive(Deserialize)]
struct NowParam {
    now: Option<String>,
}

async fn explain(
    st: St,
    Extension(who): Who,
    Path(id): Path<String>,
    Query(q): Query<NowParam>,
) -> Api {
    let id = item_id(&id)?;
    let at = q
        .now
        .as_deref()
        .map(|t| crate::service::parse_time(t, false))
        .transpose()
        .map_err(ApiError)?;
    let decisions = blocking(&st.0, who, move |s, w| {
        let at = at.unwrap_or_else(|| s.now_for_request());
        s.explain(w, &id, at)
    })
    .await?;
    let copies: Vec<Value> = decisions
        .iter()
        .map(|(m, f, d)| views::decision_json(&id, m, f, d))
        .collect();
    Ok(Json(json!({"copies": copies})))
}

async fn verify(st: St, Extension(who): Who) -> Api {
    let v = blocking(&st.0, who, |s, w| s.verify(w)).await?;
    Ok(Json(
        json!({"checked": v.checked, "errors": v.errors, "problems": v.problems}),
    ))
}

async fn reindex(st: St, Extension(who): Who) -> Api {
    let done = blocking(&st.0, who, |s, w| s.reindex(w)).await?;
    Ok(Json(
        json!({"documents": done.documents, "watermark": done.watermark}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI document names exactly the routes the server answers.
    #[test]
    fn the_openapi_document_names_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut documented = Vec::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for method in ops.as_object().expect("operations").keys() {
                documented.push((method.clone(), path.clone()));
            }
        }
        documented.sort();
        let mut served: Vec<_> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(documented, served);
    }
}
