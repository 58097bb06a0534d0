//! Files through the API: imports (a path under the server's incoming
//! directory, or an upload streamed to disk, never held in memory whole)
//! and export packages (written under the server's exports directory,
//! downloaded as one `.zip`).

use super::{ApiError, State, blocking};
use crate::error::{Error, Result};
use crate::service::{ImportRequest, Principal};
use axum::body::Body;
use axum::extract::{Path, Query, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Component, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

type St = axum::extract::State<Arc<State>>;

/// Where the server keeps what passes through it, inside the archive
/// directory (owner-only, like everything there).
pub struct Dirs {
    /// Server-side imports are named relative to this.
    pub incoming: PathBuf,
    /// Uploads, each removed after its import.
    pub uploads: PathBuf,
    /// Export packages and their `.zip`s.
    pub exports: PathBuf,
    /// The largest upload accepted, in bytes.
    pub max_upload: u64,
}

#[derive(Deserialize, Default)]
pub struct ImportParams {
    /// A file or directory under the incoming directory (JSON body only).
    path: Option<String>,
    /// A user map under the incoming directory.
    mapping: Option<String>,
    mailbox: Option<String>,
    owner: Option<String>,
    tz: Option<String>,
    /// The organisation's e-mail domains (comma-separated in a query).
    org_domains: Option<String>,
}

/// `rel` under `root`, refused if it leaves it (`..`, absolute, a link
/// pointing out).
pub(super) fn under(root: &std::path::Path, rel: &str) -> Result<PathBuf> {
    let p = std::path::Path::new(rel);
    if rel.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(Error::Usage(format!(
            "'{rel}': name a path inside the server's incoming directory, without '..'"
        )));
    }
    let joined = root.join(p);
    let real = joined
        .canonicalize()
        .map_err(|e| Error::NotFound(format!("{rel} in the incoming directory ({e})")))?;
    let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
    if !real.starts_with(&root) {
        return Err(Error::Usage(format!(
            "'{rel}' leads outside the server's incoming directory"
        )));
    }
    Ok(real)
}

fn request(dirs: &Dirs, p: &ImportParams) -> Result<ImportRequest> {
    Ok(ImportRequest {
        mapping: p
            .mapping
            .as_deref()
            .map(|m| under(&dirs.incoming, m))
            .transpose()?,
        mailbox: p.mailbox.clone(),
        owner: p.owner.clone(),
        tz: p.tz.clone(),
        org_domains: p
            .org_domains
            .iter()
            .flat_map(|d| d.split(','))
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty())
            .collect(),
    })
}

/// `POST /api/v1/imports`: a JSON body naming a server-side path, or the
/// export itself (`application/zip`, or `application/json` for a
/// `result.json`) with the options in the query.
pub async fn import(
    st: St,
    Extension(who): Extension<Principal>,
    Query(q): Query<ImportParams>,
    req: Request,
) -> Result<Json<Value>, ApiError> {
    let kind = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let state = st.0.clone();
    let upload_name = match kind.as_str() {
        "application/json" => "",
        "application/zip" => "export.zip",
        "application/octet-stream" => "result.json",
        other => {
            return Err(ApiError(Error::Usage(format!(
                "content type '{other}': send JSON naming a path (application/json), a zipped export (application/zip) or a result.json (application/octet-stream)"
            ))));
        }
    };
    if upload_name.is_empty() {
        // A JSON body naming a server-side path.
        let body = axum::body::to_bytes(req.into_body(), 64 * 1024)
            .await
            .map_err(|e| ApiError(Error::Usage(format!("request body: {e}"))))?;
        let p: ImportParams = serde_json::from_slice(&body)
            .map_err(|e| ApiError(Error::Usage(format!("request body: {e}"))))?;
        let path = p.path.clone().unwrap_or_default();
        return run_import(&state, who, &p, move |dirs| under(&dirs.incoming, &path)).await;
    }
    // Check the caller may import before taking its bytes.
    let w = who.clone();
    blocking(&state, who.clone(), move |s, _| {
        s.check(&w, crate::service::access::Op::Import)
    })
    .await?;
    let dir = upload_dir(&state.dirs)?;
    let file = dir.join(upload_name);
    let stored = store_upload(req.into_body(), &file, state.dirs.max_upload).await;
    let result = match stored {
        Ok(()) => run_import(&state, who, &q, move |_| Ok(file)).await,
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn upload_dir(dirs: &Dirs) -> Result<PathBuf, ApiError> {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| ApiError(Error::Internal(format!("random: {e}"))))?;
    let dir = dirs.uploads.join(hex::encode(id));
    std::fs::create_dir_all(&dir).map_err(|e| ApiError(Error::io(&dir, e)))?;
    Ok(dir)
}

/// Streams the body to `file`, at most `max` bytes.
async fn store_upload(body: Body, file: &std::path::Path, max: u64) -> Result<(), ApiError> {
    let io = |e| ApiError(Error::io(file, e));
    let mut out = tokio::fs::File::create(file).await.map_err(io)?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError(Error::Usage(format!("upload: {e}"))))?;
        total += chunk.len() as u64;
        if total > max {
            return Err(ApiError(Error::Usage(format!(
                "upload larger than the server's limit of {max} bytes"
            ))));
        }
        out.write_all(&chunk).await.map_err(io)?;
    }
    out.sync_all().await.map_err(io)?;
    Ok(())
}

async fn run_import(
    state: &Arc<State>,
    who: Principal,
    p: &ImportParams,
    path: impl FnOnce(&Dirs) -> Result<PathBuf> + Send + 'static,
) -> Result<Json<Value>, ApiError> {
    let req = request(&state.dirs, p).map_err(ApiError)?;
    let st = state.clone();
    let report = blocking(state, who, move |s, w| {
        let path = path(&st.dirs)?;
        let opts = req.options()?;
        let args = vec![path.display().to_string()];
        s.import(w, &[path], opts, args)
    })
    .await?;
    Ok(Json(report.to_json()))
}

#[derive(Deserialize)]
pub struct ExportBody {
    query: String,
    case: Option<String>,
    #[serde(default)]
    mailboxes: Vec<String>,
    format: Option<String>,
    #[serde(default)]
    dedup: bool,
    #[serde(default)]
    transcripts: bool,
}

/// `POST /api/v1/exports`: writes the package under the exports directory
/// and zips it; answers the summary and where to download it.
pub async fn export(
    st: St,
    Extension(who): Extension<Principal>,
    Json(b): Json<ExportBody>,
) -> Result<Json<Value>, ApiError> {
    let state = st.0.clone();
    let id = {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).map_err(|e| ApiError(Error::Internal(format!("random: {e}"))))?;
        hex::encode(r)
    };
    let out = state.dirs.exports.join(&id);
    let zip = state.dirs.exports.join(format!("{id}.zip"));
    let owner = who.actor();
    let (o, z) = (out.clone(), zip.clone());
    let summary = blocking(&state, who, move |s, w| {
        let opts = crate::export::ExportOptions {
            query: crate::service::parse_query(&b.query)?,
            query_text: b.query.clone(),
            out: o.clone(),
            mailboxes: b
                .mailboxes
                .iter()
                .map(|m| crate::service::mailbox_arg(m))
                .collect::<Result<_>>()?,
            format: match b.format.as_deref() {
                None | Some("eml") => crate::export::Format::Eml,
                Some("mbox") => crate::export::Format::Mbox,
                Some(f) => return Err(Error::Usage(format!("format '{f}': eml or mbox"))),
            },
            case: b.case.clone(),
            dedup: b.dedup,
            transcripts: b.transcripts,
        };
        let summary = s.export(w, &opts, vec![format!("api export {}", b.query)])?;
        zip_dir(&o, &z)?;
        std::fs::remove_dir_all(&o).map_err(|e| Error::io(&o, e))?;
        Ok(summary)
    })
    .await;
    let summary = match summary {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&out);
            let _ = std::fs::remove_file(&zip);
            return Err(e);
        }
    };
    // Who made it, beside it: a download after a restart is still theirs.
    let owner_file = state.dirs.exports.join(format!("{id}.owner"));
    std::fs::write(&owner_file, &owner).map_err(|e| ApiError(Error::io(&owner_file, e)))?;
    let mut v = serde_json::to_value(&summary)
        .map_err(|e| ApiError(Error::Internal(format!("summary: {e}"))))?;
    v["id"] = json!(id);
    v["download"] = json!(format!("/api/v1/exports/{id}"));
    Ok(Json(v))
}

/// Every file under `dir` into one zip at `zip` (stored, not deflated:
/// packages hold mostly attachments that do not compress).
fn zip_dir(dir: &std::path::Path, zip: &std::path::Path) -> Result<()> {
    let file = std::fs::File::create(zip).map_err(|e| Error::io(zip, e))?;
    let mut w = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    let mut stack = vec![dir.to_path_buf()];
    let mut files = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let p = e.map_err(|e| Error::io(&d, e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let zerr = |e: zip::result::ZipError| Error::Internal(format!("{}: {e}", zip.display()));
    for p in files {
        let name = p
            .strip_prefix(dir)
            .map_err(|_| Error::Internal("zip path".into()))?
            .to_string_lossy()
            .into_owned();
        w.start_file(name, opts).map_err(zerr)?;
        let mut f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
        std::io::copy(&mut f, &mut w).map_err(|e| Error::io(&p, e))?;
    }
    let mut inner = w.finish().map_err(zerr)?;
    inner.flush().map_err(|e| Error::io(zip, e))?;
    inner.get_ref().sync_all().map_err(|e| Error::io(zip, e))
}

use std::io::Write as _;

/// `GET /api/v1/exports/{id}`: the package's `.zip`, streamed, to the
/// principal that made it (or a compliance administrator).
pub async fn download(
    st: St,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let state = st.0.clone();
    let named = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let owner = named
        .then(|| std::fs::read_to_string(state.dirs.exports.join(format!("{id}.owner"))).ok())
        .flatten();
    let Some(owner) = owner else {
        return Err(ApiError(Error::NotFound(format!(
            "export {}",
            crate::service::printable(&id)
        ))));
    };
    if owner != who.actor() {
        let w = who.clone();
        blocking(&state, who, move |s, _| {
            s.check(&w, crate::service::access::Op::Export)
        })
        .await?;
    }
    let zip = state.dirs.exports.join(format!("{id}.zip"));
    let file = tokio::fs::File::open(&zip)
        .await
        .map_err(|e| ApiError(Error::io(&zip, e)))?;
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"tgvault-export-{id}.zip\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
