//! `tgvault serve`: the HTTP API over one [`Service`], on a TCP address and
//! on a unix socket inside the archive directory. This module only parses
//! requests and renders answers: who the caller is (a bearer token over
//! TCP, the peer's OS account over the socket), then one service call on a
//! blocking thread, then JSON. Errors become statuses by their kind.

mod files;
pub mod routes;
pub(crate) mod tls;
pub use tls::install_provider as install_tls_provider;
mod connectors;
mod forward;

pub use files::Dirs;

use crate::error::{Error, Kind, Result};
use crate::service::{Principal, Service};
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The socket's name inside the archive directory.
pub const SOCKET: &str = "tgvault.sock";

pub struct ServeOptions {
    pub listen: SocketAddr,
    /// The unix socket to serve on too (`None`: none).
    pub socket: Option<PathBuf>,
    /// Server-side imports are named under this (default: `incoming/` in
    /// the archive directory).
    pub incoming: Option<PathBuf>,
    /// The largest upload accepted, in bytes.
    pub max_upload: u64,
    /// HTTPS on `listen`: the certificate chain and private key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A group whose members may reach the socket (each acting as the user
    /// whose `--os-user` names it): the socket becomes 0660 and the archive
    /// directory 0710 for that group while the server runs.
    pub socket_group: Option<String>,
}

pub(crate) struct State {
    pub service: Service,
    /// The uid owning the archive directory: the local administrator
    /// through the socket, with root.
    pub owner_uid: u32,
    pub dirs: Dirs,
}

/// An error as an HTTP answer: the status its kind calls for, and
/// `{"error": KIND, "message": TEXT}`.
pub(crate) struct ApiError(pub Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = match self.0.kind() {
            Kind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
            Kind::NotFound => (StatusCode::NOT_FOUND, "not found"),
            Kind::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Kind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Kind::Conflict => (StatusCode::CONFLICT, "conflict"),
            Kind::BadInput => (StatusCode::UNPROCESSABLE_ENTITY, "bad input"),
            Kind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let body = serde_json::json!({"error": kind, "message": self.0.to_string()});
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

/// Runs `f` with the service on a blocking thread (the core is synchronous).
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Arc<State>,
    who: Principal,
    f: impl FnOnce(&Service, &Principal) -> Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        // A damaged catalogue or index is the request's error, not a panic.
        let dir = state.service.archive().dir();
        crate::damage::guard_archive(dir, || f(&state.service, &who))
    })
    .await
    .map_err(|e| ApiError(Error::Internal(format!("request task: {e}"))))?
    .map_err(ApiError)
}

/// Serves until SIGTERM or SIGINT, then lets requests in flight finish and
/// closes the service. `ready` is told the bound TCP address first.
pub fn serve(service: Service, opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let dir = service.archive().dir().to_path_buf();
    let owner_uid = std::fs::metadata(&dir)
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .map_err(|e| Error::io(&dir, e))?;
    let dirs = Dirs {
        incoming: opts
            .incoming
            .clone()
            .unwrap_or_else(|| dir.join("incoming")),
        uploads: dir.join("uploads"),
        exports: dir.join("exports"),
        max_upload: opts.max_upload,
    };
    for d in [&dirs.incoming, &dirs.uploads, &dirs.exports] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    // Uploads left by a server that died are no one's.
    if let Ok(left) = std::fs::read_dir(&dirs.uploads) {
        for e in left.flatten() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let state = Arc::new(State {
        service,
        owner_uid,
        dirs,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tgvault-http")
        .build()
        .map_err(|e| Error::Internal(format!("runtime: {e}")))?;
    let supervisor = connectors::supervise(state.clone())
        .map_err(|e| Error::Internal(format!("cannot start the connectors' thread: {e}")))?;
    let forwarder = forward::forwarder(state.clone())
        .map_err(|e| Error::Internal(format!("cannot start the forwarding thread: {e}")))?;
    let served = rt.block_on(run(state.clone(), opts, ready));
    // A server that failed to start stops its connectors too.
    state.service.stop();
    let _ = supervisor.join();
    let _ = forwarder.join();
    drop(rt);
    let state = Arc::into_inner(state)
        .ok_or_else(|| Error::Internal("a request outlived the server".into()))?;
    let closed = state.service.close();
    served.and(closed)
}

async fn run(state: Arc<State>, opts: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    let tls = match &opts.tls {
        Some((cert, key)) => Some(tls::config(cert, key)?),
        None => None,
    };
    let tcp = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::io(opts.listen.to_string(), e))?;
    let addr = tcp
        .local_addr()
        .map_err(|e| Error::io(opts.listen.to_string(), e))?;
    let unix = match &opts.socket {
        Some(path) => Some(bind_socket(path, opts.socket_group.as_deref())?),
        None => None,
    };
    ready(addr);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let tcp_app: Router = routes::router(state.clone(), routes::Transport::Tcp);
    let tcp_app = tcp_app.into_make_service_with_connect_info::<routes::Peer>();
    let tcp_task = match tls {
        Some(cfg) => {
            let listener = tls::TlsListener::new(tcp, cfg)?;
            let server =
                axum::serve(listener, tcp_app).with_graceful_shutdown(stopped(stop_rx.clone()));
            tokio::spawn(async move { server.await })
        }
        None => {
            let server = axum::serve(tcp, tcp_app).with_graceful_shutdown(stopped(stop_rx.clone()));
            tokio::spawn(async move { server.await })
        }
    };
    let unix_task = unix.map(|l| {
        let app: Router = routes::router(state.clone(), routes::Transport::Unix);
        let server = axum::serve(l, app.into_make_service_with_connect_info::<routes::Peer>())
            .with_graceful_shutdown(stopped(stop_rx.clone()));
        tokio::spawn(async move { server.await })
    });
    let st = state.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        // Long requests (an import) stop at their next safe point.
        st.service.stop();
        let _ = stop_tx.send(true);
    });
    let tcp_result = tcp_task
        .await
        .map_err(|e| Error::Internal(format!("server task: {e}")))?;
    if let Some(t) = unix_task {
        let _ = t.await;
    }
    if let Some(path) = &opts.socket {
        let _ = std::fs::remove_file(path);
        if opts.socket_group.is_some()
            && let Some(dir) = path.parent()
        {
            // Owner-only again, as the archive is when no server runs.
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    tcp_result.map_err(|e| Error::io(addr.to_string(), e))
}

/// Binds the socket, owner-only, or for `group` too (a stale one from a
/// dead server is replaced).
fn bind_socket(path: &std::path::Path, group: Option<&str>) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(Error::Busy(format!(
            "{}: another server answers on this socket",
            path.display()
        )));
    }
    let _ = std::fs::remove_file(path);
    let gid = match group {
        Some(g) => {
            Some(crate::os::group_id(g).ok_or_else(|| Error::Usage(format!("no group '{g}'")))?)
        }
        None => None,
    };
    let l = tokio::net::UnixListener::bind(path).map_err(|e| Error::io(path, e))?;
    let mode = if gid.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(path, e))?;
    if let (Some(gid), Some(dir)) = (gid, path.parent()) {
        // The group may pass through the archive's directory to the socket,
        // and see nothing else: every other file and folder is owner-only.
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| Error::io(path, e))?;
        std::os::unix::fs::chown(dir, None, Some(gid)).map_err(|e| Error::io(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o710))
            .map_err(|e| Error::io(dir, e))?;
    }
    Ok(l)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
