//! Connectors inside the server: a supervisor that keeps one thread per
//! active connector (started when one is added or resumed, stopped when
//! it is paused or removed, all stopped with the server), and their routes.

use super::files::under;
use super::routes::SinceParam;
use super::{ApiError, State, blocking};
use crate::connector::Mode;
use crate::service::ConnectorAdd;
use axum::Json;
use axum::extract::{Extension, Path, Query};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the supervisor looks at the connectors' states.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// Starts the supervisor; it returns once the service is stopping and
/// every connector thread has ended.
pub(crate) fn supervise(state: Arc<State>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("tgvault-connectors".into())
        .spawn(move || {
            let mut running: HashMap<String, (Arc<AtomicBool>, JoinHandle<()>)> = HashMap::new();
            while !state.service.is_stopping() {
                let wanted = match state.service.active_connectors() {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::error!("connectors cannot be read: {e}");
                        Vec::new()
                    }
                };
                running.retain(|name, (stop, handle)| {
                    if !wanted.contains(name) {
                        stop.store(true, Ordering::Release);
                    }
                    !handle.is_finished()
                });
                for name in wanted {
                    if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(name) {
                        let stop = Arc::new(AtomicBool::new(false));
                        let name = slot.key().clone();
                        match start(state.clone(), name.clone(), stop.clone()) {
                            Ok(h) => {
                                slot.insert((stop, h));
                            }
                            Err(e) => tracing::error!(connector = name, "cannot start: {e}"),
                        }
                    }
                }
                std::thread::sleep(LOOK_EVERY);
            }
            for (stop, _) in running.values() {
                stop.store(true, Ordering::Release);
            }
            for (_, (_, h)) in running {
                let _ = h.join();
            }
        })
}

/// One connector's thread: runs it until it stops, is paused or fails for
/// good; an archive error is logged and the run tried again a little later.
fn start(
    state: Arc<State>,
    name: String,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("tgvault-c-{name}"))
        .spawn(move || {
            match state.service.run_connector(&name, Mode::Continuous, &stop) {
                Some(Ok(end)) => tracing::info!(connector = name, "ended: {}", end.status),
                Some(Err(e)) => {
                    tracing::error!(connector = name, "stopped: {e}");
                    std::thread::sleep(Duration::from_secs(5));
                }
                // A `sync` runs it now; the supervisor starts it again later.
                None => std::thread::sleep(Duration::from_secs(1)),
            }
        })
}

type Api = Result<Json<Value>, ApiError>;
type St = axum::extract::State<Arc<State>>;
type Who = Extension<crate::service::Principal>;

#[derive(Deserialize)]
pub(super) struct AddParams {
    kind: String,
    name: String,
    /// Paths are under the server's incoming directory, as for imports.
    token_file: Option<String>,
    api_url: Option<String>,
    poll_timeout: Option<u64>,
    listen: Option<String>,
    recipients: Option<Vec<String>>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    org_domains: Option<Vec<String>>,
    mapping: Option<String>,
    mailbox: Option<String>,
}

pub(super) async fn add(st: St, Extension(who): Who, Json(p): Json<AddParams>) -> Api {
    let incoming = st.0.dirs.incoming.clone();
    let v = blocking(&st.0, who, move |s, w| {
        let mut settings = BTreeMap::new();
        if let Some(t) = &p.token_file {
            settings.insert(
                "token-file".into(),
                under(&incoming, t)?.display().to_string(),
            );
        }
        settings.extend(p.api_url.map(|u| ("api-url".to_string(), u)));
        settings.extend(
            p.poll_timeout
                .map(|t| ("poll-timeout".to_string(), t.to_string())),
        );
        settings.extend(p.listen.map(|l| ("listen".to_string(), l)));
        settings.extend(p.recipients.map(|r| ("recipient".to_string(), r.join(","))));
        settings.extend(
            p.org_domains
                .map(|d| ("org-domain".to_string(), d.join(","))),
        );
        for (k, v) in [("tls-cert", &p.tls_cert), ("tls-key", &p.tls_key)] {
            if let Some(f) = v {
                settings.insert(k.into(), under(&incoming, f)?.display().to_string());
            }
        }
        let mapping = p
            .mapping
            .as_deref()
            .map(|m| under(&incoming, m))
            .transpose()?;
        let req = ConnectorAdd {
            kind: p.kind,
            name: p.name,
            settings,
            mapping,
            mailbox: p.mailbox,
        };
        s.connector_add(w, &req)
    })
    .await?;
    Ok(Json(v))
}

pub(super) async fn list(st: St, Extension(who): Who) -> Api {
    let v = blocking(&st.0, who, |s, w| s.connectors(w)).await?;
    Ok(Json(json!({"connectors": v})))
}

pub(super) async fn show(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    let v = blocking(&st.0, who, move |s, w| s.connector(w, &name)).await?;
    Ok(Json(v))
}

pub(super) async fn pause(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    let v = blocking(&st.0, who, move |s, w| {
        s.connector_set_running(w, &name, false)
    })
    .await?;
    Ok(Json(v))
}

pub(super) async fn resume(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    let v = blocking(&st.0, who, move |s, w| {
        s.connector_set_running(w, &name, true)
    })
    .await?;
    Ok(Json(v))
}

pub(super) async fn remove(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    blocking(&st.0, who, move |s, w| s.connector_remove(w, &name)).await?;
    Ok(Json(json!({"ok": true})))
}

pub(super) async fn status_all(st: St, Extension(who): Who) -> Api {
    let v = blocking(&st.0, who, |s, w| s.connector_status(w, None)).await?;
    Ok(Json(json!({"connectors": v})))
}

pub(super) async fn status(st: St, Extension(who): Who, Path(name): Path<String>) -> Api {
    let mut v = blocking(&st.0, who, move |s, w| s.connector_status(w, Some(&name))).await?;
    Ok(Json(v.pop().unwrap_or(Value::Null)))
}

pub(super) async fn log(
    st: St,
    Extension(who): Who,
    Path(name): Path<String>,
    Query(q): Query<SinceParam>,
) -> Api {
    let since = q.day()?;
    let runs = blocking(&st.0, who, move |s, w| s.connector_log(w, &name, since)).await?;
    let runs: Vec<Value> = runs.iter().map(crate::service::views::run_json).collect();
    Ok(Json(json!({"runs": runs})))
}

#[derive(Deserialize, Default)]
pub(super) struct SyncParams {
    name: Option<String>,
}

pub(super) async fn sync(st: St, Extension(who): Who, body: Option<Json<SyncParams>>) -> Api {
    let p = body.map(|b| b.0).unwrap_or_default();
    let done = blocking(&st.0, who, move |s, w| s.sync(w, p.name.as_deref())).await?;
    let v: Vec<Value> = done
        .iter()
        .map(|d| json!({"connector": d.name, "run": d.end.run, "status": d.end.status, "counters": d.end.counters}))
        .collect();
    Ok(Json(json!({"synced": v})))
}
