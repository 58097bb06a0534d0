//! Forwarding inside the server: a thread that runs a pass of every active
//! target now and then (a copy filed is forwarded within a minute), and the
//! routes that manage targets. Compliance administrators only.

use super::files::under;
use super::{ApiError, State, blocking};
use crate::service::{ForwardAdd, Principal};
use axum::Json;
use axum::extract::{Extension, Path, Query};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the forwarder waits between passes.
const EVERY: Duration = Duration::from_secs(30);

/// Starts the forwarding thread; it returns once the service is stopping.
pub(crate) fn forwarder(state: Arc<State>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tgvault-forward".into())
        .spawn(move || {
            let who = Principal::local("forwarder");
            let mut next = Instant::now() + Duration::from_secs(2);
            while !state.service.is_stopping() {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
                let active = state.service.active_forward_targets().unwrap_or_default();
                if !active.is_empty() {
                    match state.service.forward_run(&who, None, false) {
                        Ok(done) => {
                            for d in done
                                .iter()
                                .filter(|d| d.counters.imported > 0 || d.failed())
                            {
                                tracing::info!(target = d.name, "forward pass: {}", d.status);
                            }
                        }
                        Err(e) => tracing::error!("forward pass: {e}"),
                    }
                }
                next = Instant::now() + EVERY;
            }
        })
}

type Api = Result<Json<Value>, ApiError>;
type St = axum::extract::State<Arc<State>>;
type Who = Extension<Principal>;

#[derive(Deserialize)]
pub(super) struct AddParams {
    kind: String,
    name: String,
    url: Option<String>,
    user: Option<String>,
    /// Paths are under the server's incoming directory, as for imports.
    password_file: Option<String>,
    login_template: Option<String>,
    ca_file: Option<String>,
    tenant: Option<String>,
    client_id: Option<String>,
    secret_file: Option<String>,
    authority: Option<String>,
    graph_url: Option<String>,
    request_budget: Option<String>,
    upload_budget: Option<String>,
    max_attachment_mib: Option<String>,
    mailboxes: Option<Vec<String>>,
    query: Option<String>,
}

pub(super) async fn add(st: St, Extension(who): Who, Json(p): Json<AddParams>) -> Api {
    let incoming = st.0.dirs.incoming.clone();
    let v = blocking(&st.0, who, move |s, w| {
        let mut settings = BTreeMap::new();
        settings.extend(p.url.map(|u| ("url".to_string(), u)));
        settings.extend(p.user.map(|u| ("user".to_string(), u)));
        let plain = [
            ("login-template", p.login_template),
            ("tenant", p.tenant),
            ("client-id", p.client_id),
            ("authority", p.authority),
            ("graph-url", p.graph_url),
            ("request-budget", p.request_budget),
            ("upload-budget", p.upload_budget),
            ("max-attachment-mib", p.max_attachment_mib),
        ];
        for (k, v) in plain {
            settings.extend(v.map(|v| (k.to_string(), v)));
        }
        let files = [
            ("password-file", &p.password_file),
            ("ca-file", &p.ca_file),
            ("secret-file", &p.secret_file),
        ];
        for (k, v) in files {
            if let Some(f) = v {
                settings.insert(k.into(), under(&incoming, f)?.display().to_string());
            }
        }
        let req = ForwardAdd {
            kind: p.kind,
            name: p.name,
            settings,
            mailboxes: p.mailboxes.unwrap_or_default(),
            query: p.query,
        };
        s.forward_add(w, &req)
    })
    .await?;
    Ok(Json(v))
}

pub(super) async fn list(st: St, Extension(who): Who) -> Api {
    let v = blocking(&st.0, who, |s, w| s.forward_targets(w)).await?;
    Ok(Json(json!({"targets": v})))
}

pub(super) async fn show(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    Ok(Json(
        blocking(&st.0, who, move |s, w| s.forward_target(w, &name)).await?,
    ))
}

pub(super) async fn pause(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    let v = blocking(&st.0, who, move |s, w| {
        s.forward_set_running(w, &name, false)
    })
    .await?;
    Ok(Json(v))
}

pub(super) async fn resume(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    let v = blocking(&st.0, who, move |s, w| {
        s.forward_set_running(w, &name, true)
    })
    .await?;
    Ok(Json(v))
}

pub(super) async fn remove(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    blocking(&st.0, who, move |s, w| s.forward_remove(w, &name)).await?;
    Ok(Json(json!({"ok": true})))
}

#[derive(Deserialize, Default)]
pub(super) struct LedgerParams {
    state: Option<String>,
    mailbox: Option<String>,
}

pub(super) async fn ledger(
    st: St,
    Extension(who): Who,
    Path(name): Path<String>,
    Query(q): Query<LedgerParams>,
) -> Api {
    let v = blocking(&st.0, who, move |s, w| {
        s.forward_ledger(w, &name, q.state.as_deref(), q.mailbox.as_deref())
    })
    .await?;
    Ok(Json(json!({"rows": v})))
}

pub(super) async fn status(st: St, Extension(who): Who) -> Api {
    let v = blocking(&st.0, who, |s, w| s.forward_status(w, None)).await?;
    Ok(Json(json!({"targets": v})))
}

#[derive(Deserialize, Default)]
pub(super) struct RunParams {
    name: Option<String>,
    #[serde(default)]
    retry_failed: bool,
}

pub(super) async fn run(st: St, Extension(who): Who, body: Option<Json<RunParams>>) -> Api {
    let p = body.map(|b| b.0).unwrap_or_default();
    let done = blocking(&st.0, who, move |s, w| {
        s.forward_run(w, p.name.as_deref(), p.retry_failed)
    })
    .await?;
    let v: Vec<Value> = done.iter().map(|d| d.to_json()).collect();
    Ok(Json(json!({"forwarded": v})))
}
