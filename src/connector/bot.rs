//! The `bot` connector: a Telegram bot that business accounts connect,
//! polled with `getUpdates`. Each step asks for the updates after the last
//! one filed, fetches their files with `getFile`, and files the lot with
//! the next offset in one transaction; the next call's offset then tells
//! Telegram the lot is taken. A kill between the two re-delivers updates
//! the archive has, which file as duplicates: every item once.

use super::{Batch, SourceError, Step};
use crate::error::{Error, Result};
use crate::import::capture::Captured;
use crate::report::Failure;
use crate::source::botapi::{self, Connection, Connections, Converted, FileRef};
use crate::store::Archive;
use crate::store::blob::StagedBlob;
use crate::store::records::{ConnectionRecord, ConnectorPosition, ConnectorRecord, Custodian};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const KIND: &str = "bot";
const DEFAULT_API: &str = "https://api.telegram.org";
/// How long Telegram keeps updates nobody has taken.
const KEPT_SECONDS: i64 = 24 * 3600;
/// The most updates one `getUpdates` answer holds.
const PAGE: usize = 100;
/// How long one `getUpdates` waits for an update, by default.
const POLL_SECONDS: u64 = 10;

/// Checks `connector add bot` settings; the ones to store.
pub fn configure(mut given: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let token = given
        .remove("token-file")
        .ok_or_else(|| Error::Usage("a bot connector needs --token-file".into()))?;
    let token = super::absolute(&token)?;
    super::secret::read(Path::new(&token))?;
    out.insert("token-file".into(), token);
    let url = given
        .remove("api-url")
        .unwrap_or_else(|| DEFAULT_API.to_string());
    let url = url.trim_end_matches('/').to_string();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(Error::Usage(format!(
            "api-url: '{}' is not an http(s) URL",
            crate::service::printable(&url)
        )));
    }
    out.insert("api-url".into(), url);
    if let Some(t) = given.remove("poll-timeout") {
        match t.parse::<u64>() {
            Ok(n) if (1..=50).contains(&n) => out.insert("poll-timeout".into(), n.to_string()),
            _ => {
                return Err(Error::Usage(format!(
                    "poll-timeout: '{}' is not a number of seconds from 1 to 50",
                    crate::service::printable(&t)
                )));
            }
        };
    }
    let takes = "--token-file, --api-url, --poll-timeout";
    super::refuse_unknown("bot", &given, takes)?;
    Ok(out)
}

/// Why a Bot API call did not give its result.
enum ApiError {
    /// Retry later.
    Transient(String, Option<Duration>),
    /// Credentials refused: retrying cannot help.
    Permanent(String),
    /// The request was refused (400 and the like), with Telegram's words.
    Refused(String),
}

/// The Bot API of one bot, over HTTP.
struct Api {
    client: reqwest::blocking::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(base: &str, token: String, poll: u64) -> Result<Api> {
        crate::server::tls::install_provider();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(poll + 30))
            .connect_timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| Error::Internal(format!("cannot start an HTTP client: {e}")))?;
        Ok(Api {
            client,
            base: base.to_string(),
            token,
        })
    }

    /// A text with the token taken out: an error may quote the URL.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.token, "<token>")
    }

    fn call(&self, method: &str, params: &Value) -> std::result::Result<Value, ApiError> {
        let url = format!("{}/bot{}/{method}", self.base, self.token);
        let resp = self.client.post(url).json(params).send().map_err(|e| {
            ApiError::Transient(self.redact(&format!("{method}: {}", e.without_url())), None)
        })?;
        let status = resp.status().as_u16();
        let body: Value = match resp.json() {
            Ok(v) => v,
            Err(_) if status == 200 => {
                return Err(ApiError::Transient(
                    format!("{method}: an answer that is not JSON"),
                    None,
                ));
            }
            Err(_) => Value::Null,
        };
        if status == 200 && body.get("ok") == Some(&Value::Bool(true)) {
            return Ok(body.get("result").cloned().unwrap_or(Value::Null));
        }
        let code = body
            .get("error_code")
            .and_then(Value::as_u64)
            .unwrap_or(status as u64);
        let words = body
            .get("description")
            .and_then(Value::as_str)
            .map(|d| self.redact(d))
            .unwrap_or_else(|| format!("HTTP {status}"));
        let why = format!("{method}: {code} {words}");
        Err(match code {
            429 => {
                let after = body
                    .get("parameters")
                    .and_then(|p| p.get("retry_after"))
                    .and_then(Value::as_u64)
                    .map(|s| Duration::from_secs(s.min(3600)));
                ApiError::Transient(why, after)
            }
            409 => ApiError::Transient(
                format!("{why} (another getUpdates poller or a webhook is active for this bot)"),
                None,
            ),
            401 | 403 | 404 => ApiError::Permanent(format!("{why}: the bot token was refused")),
            500.. => ApiError::Transient(why, None),
            _ => ApiError::Refused(why),
        })
    }

    /// Streams a file `getFile` named into the archive's staging.
    fn download(
        &self,
        archive: &Archive,
        path: &str,
        what: &Path,
    ) -> std::result::Result<StagedBlob, ApiError> {
        if path.starts_with('/') {
            // A local Bot API server names the file on its own disk.
            let f = std::fs::File::open(path)
                .map_err(|e| ApiError::Refused(format!("the local file {path}: {e}")))?;
            let size = f.metadata().ok().map(|m| m.len());
            return archive
                .stage_blob(f, what, size)
                .map_err(|e| ApiError::Transient(self.redact(&e.to_string()), None));
        }
        let url = format!("{}/file/bot{}/{path}", self.base, self.token);
        let resp = self.client.get(url).send().map_err(|e| {
            ApiError::Transient(
                self.redact(&format!("file download: {}", e.without_url())),
                None,
            )
        })?;
        let status = resp.status().as_u16();
        if status != 200 {
            let why = format!("file download: HTTP {status}");
            return Err(match status {
                401 | 403 => ApiError::Permanent(why),
                429 | 500.. => ApiError::Transient(why, None),
                _ => ApiError::Refused(why),
            });
        }
        let size = resp.content_length();
        archive
            .stage_blob(resp, what, size)
            .map_err(|e| ApiError::Transient(self.redact(&e.to_string()), None))
    }
}

impl From<ApiError> for SourceError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Transient(reason, retry_after) => SourceError::Transient {
                reason,
                retry_after,
            },
            ApiError::Permanent(why) => SourceError::Permanent(why),
            ApiError::Refused(why) => SourceError::Transient {
                reason: why,
                retry_after: None,
            },
        }
    }
}

/// A bot connector at work.
pub struct BotSource {
    api: Api,
    poll: u64,
    offset: i64,
    known: Connections,
    mailbox: Option<String>,
    last_contact: Option<i64>,
}

impl BotSource {
    pub fn open(
        archive: &Archive,
        name: &str,
        rec: &ConnectorRecord,
    ) -> Result<BotSource, SourceError> {
        let token_file = rec.settings.get("token-file").cloned().unwrap_or_default();
        let token = super::secret::read(Path::new(&token_file))
            .map_err(|e| SourceError::Permanent(e.to_string()))?;
        let poll = rec
            .settings
            .get("poll-timeout")
            .and_then(|t| t.parse().ok())
            .unwrap_or(POLL_SECONDS);
        let base = rec
            .settings
            .get("api-url")
            .map_or(DEFAULT_API, String::as_str);
        let known = archive
            .connections(name)?
            .into_iter()
            .map(|(id, c)| (id.clone(), from_record(&id, &c)))
            .collect();
        Ok(BotSource {
            api: Api::new(base, token, poll)?,
            poll,
            offset: archive.connector_position(name)?.cursor,
            known,
            mailbox: rec.mailbox.clone(),
            last_contact: rec.last_contact,
        })
    }

    /// The connection a business update came through, asked of the Bot API
    /// when no `business_connection` update told of it.
    fn learn_connection(
        &mut self,
        update: &Value,
        batch: &mut Batch,
        now: i64,
    ) -> std::result::Result<(), ApiError> {
        let Some(id) = botapi::business_connection_id(update) else {
            return Ok(());
        };
        if self.known.contains_key(id) {
            return Ok(());
        }
        let id = id.to_string();
        match self.api.call(
            "getBusinessConnection",
            &json!({ "business_connection_id": id }),
        ) {
            Ok(v) => match botapi::connection(&v) {
                Ok(c) => self.remember(c, batch, now),
                Err(e) => batch
                    .notes
                    .push(format!("business connection '…' unreadable: {e}")),
            },
            Err(ApiError::Refused(why)) => batch.notes.push(format!(
                "business connection '…' unknown to the Bot API: {why}"
            )),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn remember(&mut self, c: Connection, batch: &mut Batch, now: i64) {
        batch.connections.push((c.id.clone(), to_record(&c, now)));
        self.known.insert(c.id.clone(), c);
    }

    /// The custodian of an item: the connected account it came through,
    /// and the configured mailbox.
    fn custodian(&self, update: &Value) -> Custodian {
        let owner = botapi::business_connection_id(update)
            .and_then(|id| self.known.get(id))
            .map(|c| c.user.clone());
        Custodian {
            owner,
            address: self.mailbox.clone(),
        }
    }

    /// Fetches an item's files into staging; a file the Bot API will not
    /// hand out stays metadata with the reason.
    fn fetch(
        &self,
        archive: &Archive,
        item: &mut crate::model::Item,
        files: Vec<FileRef>,
        staged: &mut Vec<StagedBlob>,
    ) -> std::result::Result<(), ApiError> {
        for f in files {
            let got = self
                .api
                .call("getFile", &json!({ "file_id": f.file_id }))
                .and_then(|v| match v.get("file_path").and_then(Value::as_str) {
                    Some(p) => {
                        let what = PathBuf::from(format!("file {}", f.file_id));
                        self.api.download(archive, p, &what)
                    }
                    None => Err(ApiError::Refused(
                        "getFile: no file_path in its answer".into(),
                    )),
                });
            let Some(a) = item.attachments.get_mut(f.index) else {
                continue;
            };
            match got {
                Ok(blob) => {
                    a.content = Some(blob.blob_ref());
                    a.missing = None;
                    staged.push(blob);
                }
                Err(ApiError::Refused(why)) => {
                    let reason = format!(
                        "the Bot API did not hand out file {}: {why}{}",
                        f.file_id,
                        if why.contains("too big") {
                            " (the public server gives files up to 20 MB; a local Bot API server has no limit)"
                        } else {
                            ""
                        }
                    );
                    item.anomalies.push(reason.clone());
                    a.missing = Some(reason);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Turns the updates of one `getUpdates` answer into a batch.
    fn convert(
        &mut self,
        archive: &Archive,
        list: &[Value],
        now: i64,
        staged: &mut Vec<[u8; 32]>,
    ) -> std::result::Result<Batch, ApiError> {
        let mut batch = Batch::default();
        let mut next = self.offset;
        for u in list {
            let Some(id) = botapi::update_id(u) else {
                batch
                    .failures
                    .push(failure("an update", "it has no update_id"));
                continue;
            };
            next = next.max(id.saturating_add(1));
            self.learn_connection(u, &mut batch, now)?;
            let text = u.to_string();
            let at = format!("update {id}");
            match botapi::convert(&text, &at, &self.known) {
                Ok(Converted::Items(items)) => {
                    for (mut item, files) in items {
                        let mut blobs = Vec::new();
                        self.fetch(archive, &mut item, files, &mut blobs)?;
                        staged.extend(blobs.iter().filter_map(StagedBlob::file_sha));
                        batch.items.push(Captured {
                            item,
                            blobs,
                            custodian: self.custodian(u),
                        });
                    }
                }
                Ok(Converted::Connection(c)) => {
                    batch.not_items += 1;
                    self.remember(c, &mut batch, now);
                }
                Ok(Converted::Skipped(kind)) => {
                    batch.not_items += 1;
                    batch
                        .notes
                        .push(format!("updates of kind {kind} carry no item"));
                }
                Ok(Converted::Unknown(kind)) => {
                    let why = format!("an update of unknown kind '{kind}'");
                    batch.failures.push(failure(
                        &at,
                        &format!("{why}: kept whole in the quarantine"),
                    ));
                    batch
                        .items
                        .push(self.unreadable(&text, format!("{at}: {why}"), u));
                }
                Err(why) => {
                    batch.failures.push(failure(
                        &at,
                        &format!("{why}: kept whole in the quarantine"),
                    ));
                    batch.items.push(self.unreadable(&text, why, u));
                }
            }
        }
        batch.position = ConnectorPosition {
            cursor: next,
            taken: vec![],
        };
        Ok(batch)
    }

    /// An update kept whole: filed to its connected account's custodian
    /// if it names one, else waiting in the quarantine.
    fn unreadable(&self, text: &str, why: String, u: &Value) -> Captured {
        Captured {
            item: botapi::unreadable(text, why),
            blobs: vec![],
            custodian: self.custodian(u),
        }
    }

    /// A note when the last contact is older than Telegram keeps updates.
    fn gap(&self, now: i64, batch: &mut Batch) {
        if let Some((last, now)) = possible_loss(self.last_contact, now) {
            batch.loss = Some((last, now));
            batch.notes.push(format!(
                "possible loss: no contact with the Bot API from {} to {}, longer than the 24 hours Telegram keeps updates",
                crate::time::iso(last),
                crate::time::iso(now)
            ));
        }
    }
}

/// The span without contact in which Telegram may have dropped updates
/// nobody took: longer than it keeps them.
fn possible_loss(last_contact: Option<i64>, now: i64) -> Option<(i64, i64)> {
    let last = last_contact?;
    (now - last > KEPT_SECONDS).then_some((last, now))
}

fn failure(item: &str, reason: &str) -> Failure {
    Failure {
        item: item.to_string(),
        source_user: String::new(),
        mailbox: String::new(),
        reason: reason.to_string(),
    }
}

fn to_record(c: &Connection, now: i64) -> ConnectionRecord {
    ConnectionRecord {
        user_id: c.user_id,
        user_name: c.user.name.clone(),
        username: c.user.username.clone(),
        user_chat_id: c.user_chat_id,
        date: c.date,
        enabled: c.enabled,
        rights: c.rights.clone(),
        seen: now,
    }
}

fn from_record(id: &str, c: &ConnectionRecord) -> Connection {
    Connection {
        id: id.to_string(),
        user: crate::model::Person {
            peer: Some(crate::model::Peer::User(c.user_id)),
            name: c.user_name.clone(),
            username: c.username.clone(),
            ..Default::default()
        },
        user_id: c.user_id,
        user_chat_id: c.user_chat_id,
        date: c.date,
        enabled: c.enabled,
        rights: c.rights.clone(),
    }
}

impl super::Source for BotSource {
    fn step(&mut self, sink: &mut super::Sink<'_>, wait: bool) -> Result<Step, SourceError> {
        let timeout = if wait { self.poll } else { 0 };
        let params = json!({ "offset": self.offset, "timeout": timeout });
        let answer = self.api.call("getUpdates", &params);
        let list = match answer {
            Ok(Value::Array(list)) => list,
            Ok(_) => {
                return Err(SourceError::Transient {
                    reason: "getUpdates: an answer that is not a list".into(),
                    retry_after: None,
                });
            }
            // A refused getUpdates will be refused again.
            Err(ApiError::Refused(why)) => return Err(SourceError::Permanent(why)),
            Err(e) => return Err(e.into()),
        };
        let now = sink.now();
        let mut staged = Vec::new();
        let converted = self.convert(sink.archive(), &list, now, &mut staged);
        let mut batch = match converted {
            Ok(b) => b,
            Err(e) => {
                // Nothing of this answer is filed: it comes again.
                drop_staged(sink.archive(), &staged);
                return Err(e.into());
            }
        };
        self.gap(now, &mut batch);
        batch.more = list.len() >= PAGE;
        let next = batch.position.cursor;
        sink.file(batch)?;
        self.offset = next;
        self.last_contact = Some(now);
        Ok(if list.is_empty() {
            Step::Empty
        } else {
            Step::Took(list.len() as u64)
        })
    }
}

fn drop_staged(archive: &Archive, files: &[[u8; 32]]) {
    if let Err(e) = archive.drop_unused_blob_files(files) {
        tracing::warn!("staged files of an unfiled batch stay: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_longer_than_telegram_keeps_updates_is_a_possible_loss() {
        assert_eq!(possible_loss(None, 1_000_000), None);
        assert_eq!(possible_loss(Some(1_000), 1_000 + KEPT_SECONDS), None);
        assert_eq!(
            possible_loss(Some(1_000), 1_001 + KEPT_SECONDS),
            Some((1_000, 1_001 + KEPT_SECONDS))
        );
    }

    #[test]
    fn settings_are_checked_and_unknown_options_refused() {
        let mut given = BTreeMap::new();
        given.insert("api-url".to_string(), "ftp://x".to_string());
        assert!(configure(given.clone()).is_err(), "no token file");
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("t");
        std::fs::write(&token, "1:abc\n").unwrap();
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        given.insert("token-file".into(), token.display().to_string());
        let e = configure(given.clone()).unwrap_err().to_string();
        assert!(e.contains("not an http(s) URL"), "{e}");
        given.insert("api-url".into(), "http://127.0.0.1:1/".into());
        given.insert("poll-timeout".into(), "0".into());
        assert!(configure(given.clone()).is_err());
        given.insert("poll-timeout".into(), "7".into());
        let ok = configure(given.clone()).unwrap();
        assert_eq!(ok["api-url"], "http://127.0.0.1:1");
        given.insert("webhook".into(), "x".into());
        assert!(
            configure(given)
                .unwrap_err()
                .to_string()
                .contains("--webhook")
        );
    }
}
