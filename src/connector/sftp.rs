//! The `telemessage-sftp` connector: TeleMessage delivery packages picked
//! up from an SFTP drop on a schedule. A pass lists the drop, fetches each
//! package (`.zip`, with a `.mf` beside it if there is one) it has not
//! taken, checks it against its manifest and files it whole, in one
//! transaction with its name added to the packages taken; a package that
//! breaks its manifest is refused whole, reported, and taken (a corrected
//! one comes under a new name). The server's host key must be in the
//! known-hosts file given; an unknown or changed key refuses the connection.
//!
//! SSH and SFTP are russh and russh-sftp (ring's cryptography), run on a
//! small tokio runtime for the length of a pass: async stays inside this
//! module.

use super::{Batch, SourceError, Step};
use crate::error::{Error, Result};
use crate::import::capture::Captured;
use crate::report::Failure;
use crate::store::Archive;
use crate::store::records::{ConnectorPosition, ConnectorRecord, Custodian};
use russh::client;
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub const KIND: &str = "telemessage-sftp";
const DEFAULT_EVERY: &str = "24h";

/// Checks `connector add telemessage-sftp` settings; the ones to store.
pub fn configure(mut given: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let need = |given: &mut BTreeMap<String, String>, k: &str| {
        given
            .remove(k)
            .ok_or_else(|| Error::Usage(format!("an SFTP connector needs --{k}")))
    };
    out.insert("host".into(), need(&mut given, "host")?);
    out.insert("user".into(), need(&mut given, "user")?);
    let port = given.remove("port").unwrap_or_else(|| "22".into());
    port.parse::<u16>()
        .map_err(|_| Error::Usage(format!("port: '{port}' is not a port number")))?;
    out.insert("port".into(), port);
    match (given.remove("key-file"), given.remove("password-file")) {
        (Some(k), None) => {
            super::secret::check(Path::new(&k))?;
            russh::keys::load_secret_key(&k, None).map_err(|e| {
                Error::input(Path::new(&k), format!("not a usable private key: {e}"))
            })?;
            out.insert("key-file".into(), super::absolute(&k)?);
        }
        (None, Some(p)) => {
            super::secret::read(Path::new(&p))?;
            out.insert("password-file".into(), super::absolute(&p)?);
        }
        _ => {
            return Err(Error::Usage(
                "an SFTP connector needs one of --key-file and --password-file".into(),
            ));
        }
    }
    let known = need(&mut given, "known-hosts")?;
    std::fs::metadata(&known).map_err(|e| Error::io(Path::new(&known), e))?;
    out.insert("known-hosts".into(), super::absolute(&known)?);
    out.insert(
        "path".into(),
        given.remove("path").unwrap_or_else(|| ".".into()),
    );
    let every = given
        .remove("every")
        .unwrap_or_else(|| DEFAULT_EVERY.into());
    seconds(&every)?;
    out.insert("every".into(), every);
    if let Some(d) = given.remove("org-domain") {
        out.insert("org-domain".into(), d);
    }
    let takes = "--host, --port, --user, --key-file or --password-file, --known-hosts, --path, --every, --org-domain";
    super::refuse_unknown("telemessage-sftp", &given, takes)?;
    Ok(out)
}

/// `90s`, `15m`, `24h`, `7d` in seconds (at least a second).
pub fn seconds(every: &str) -> Result<i64> {
    let t = every.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = n.parse().unwrap_or(0);
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match n.checked_mul(mult) {
        Some(s) if s > 0 => Ok(s),
        _ => Err(Error::Usage(format!(
            "every: '{every}' is not a period such as 15m, 24h or 7d"
        ))),
    }
}

/// When a scheduled connector runs next, from its last pass.
pub fn next_run(rec: &ConnectorRecord) -> Option<i64> {
    let every = seconds(rec.settings.get("every")?).ok()?;
    Some(rec.last_contact.map_or(0, |t| t + every))
}

/// An SFTP connector at work.
pub struct SftpSource {
    settings: BTreeMap<String, String>,
    every: i64,
    last_pass: Option<i64>,
    taken: Vec<String>,
    /// Where packages are fetched to, inside the archive.
    scratch: PathBuf,
    /// In a `sync`, whether its one pass is done.
    passed: bool,
}

impl SftpSource {
    pub fn open(
        archive: &Archive,
        name: &str,
        rec: &ConnectorRecord,
    ) -> Result<SftpSource, SourceError> {
        let every = rec
            .settings
            .get("every")
            .map_or(Ok(86_400), |e| seconds(e))
            .map_err(|e| SourceError::Permanent(e.to_string()))?;
        Ok(SftpSource {
            settings: rec.settings.clone(),
            every,
            last_pass: rec.last_contact,
            taken: archive.connector_position(name)?.taken,
            scratch: archive.dir().join("tmp").join(format!("sftp-{name}")),
            passed: false,
        })
    }

    fn get(&self, k: &str) -> &str {
        self.settings.get(k).map_or("", String::as_str)
    }

    /// Fetches every package not taken yet into the scratch folder; their
    /// names, in order.
    fn fetch(&self) -> std::result::Result<Vec<String>, SourceError> {
        let _ = std::fs::remove_dir_all(&self.scratch);
        std::fs::create_dir_all(&self.scratch)
            .map_err(|e| SourceError::Archive(Error::io(&self.scratch, e)))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SourceError::Archive(Error::Internal(format!("runtime: {e}"))))?;
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(3600), self.fetch_async()).await
        })
        .unwrap_or_else(|_| Err(transient("the pass took over an hour".into())))
    }

    async fn fetch_async(&self) -> std::result::Result<Vec<String>, SourceError> {
        let (host, user) = (self.get("host"), self.get("user"));
        let port: u16 = self.get("port").parse().unwrap_or(22);
        let checker = HostKey {
            host: host.to_string(),
            port,
            known: PathBuf::from(self.get("known-hosts")),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        });
        let connect = client::connect(config, (host, port), checker);
        let mut session = match tokio::time::timeout(Duration::from_secs(30), connect).await {
            Err(_) => return Err(transient(format!("{host}:{port}: no answer in 30 s"))),
            Ok(Err(HostKeyError::Refused(why))) => return Err(SourceError::Permanent(why)),
            Ok(Err(HostKeyError::Ssh(e))) => return Err(transient(format!("{host}:{port}: {e}"))),
            Ok(Ok(s)) => s,
        };
        self.authenticate(&mut session, user).await?;
        let channel = session.channel_open_session().await.map_err(ssh)?;
        channel.request_subsystem(true, "sftp").await.map_err(ssh)?;
        let sftp = russh_sftp::client::SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| transient(format!("SFTP: {e}")))?;
        let dir = self.get("path").trim_end_matches('/').to_string();
        let names: Vec<String> = sftp
            .read_dir(dir.clone())
            .await
            .map_err(|e| transient(format!("listing {dir}: {e}")))?
            .map(|e| e.file_name())
            .collect();
        let mut packages: Vec<String> = names
            .iter()
            .filter(|n| n.to_ascii_lowercase().ends_with(".zip") && !self.taken.contains(n))
            .cloned()
            .collect();
        packages.sort();
        for p in &packages {
            self.download(&sftp, &format!("{dir}/{p}"), p).await?;
            let mf = format!("{}.mf", &p[..p.len() - 4]);
            if names.contains(&mf) {
                self.download(&sftp, &format!("{dir}/{mf}"), &mf).await?;
            }
        }
        let _ = sftp.close().await;
        Ok(packages)
    }

    async fn authenticate(
        &self,
        session: &mut client::Handle<HostKey>,
        user: &str,
    ) -> std::result::Result<(), SourceError> {
        let auth = if !self.get("key-file").is_empty() {
            let key = super::secret::check(Path::new(self.get("key-file")))
                .and_then(|_| {
                    russh::keys::load_secret_key(self.get("key-file"), None)
                        .map_err(|e| Error::input(Path::new(self.get("key-file")), format!("{e}")))
                })
                .map_err(|e| SourceError::Permanent(e.to_string()))?;
            let hash = session
                .best_supported_rsa_hash()
                .await
                .map_err(ssh)?
                .flatten();
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            session
                .authenticate_publickey(user, key)
                .await
                .map_err(ssh)?
        } else {
            let password = super::secret::read(Path::new(self.get("password-file")))
                .map_err(|e| SourceError::Permanent(e.to_string()))?;
            session
                .authenticate_password(user, password)
                .await
                .map_err(ssh)?
        };
        if auth.success() {
            Ok(())
        } else {
            Err(SourceError::Permanent(format!(
                "{}: the server refused user {user}'s credentials",
                self.get("host")
            )))
        }
    }

    async fn download(
        &self,
        sftp: &russh_sftp::client::SftpSession,
        remote: &str,
        name: &str,
    ) -> std::result::Result<(), SourceError> {
        let mut from = sftp
            .open(remote.to_string())
            .await
            .map_err(|e| transient(format!("{remote}: {e}")))?;
        let to = self.scratch.join(name);
        let mut file = tokio::fs::File::create(&to)
            .await
            .map_err(|e| SourceError::Archive(Error::io(&to, e)))?;
        tokio::io::copy(&mut from, &mut file)
            .await
            .map_err(|e| transient(format!("{remote}: {e}")))?;
        file.flush()
            .await
            .map_err(|e| SourceError::Archive(Error::io(&to, e)))?;
        Ok(())
    }

    /// Files one fetched package whole, or its refusal.
    fn file_package(&mut self, sink: &mut super::Sink<'_>, name: &str) -> Result<u64> {
        let path = self.scratch.join(name);
        let mut batch = Batch::default();
        let mut items = 0;
        match crate::source::package::check(&path) {
            Err(e) => batch.failures.push(Failure {
                item: name.to_string(),
                source_user: String::new(),
                mailbox: String::new(),
                reason: e.to_string(),
            }),
            Ok(_) => crate::source::package::read(&path, &mut |entry, bytes| {
                let mut item = crate::source::eml::convert(&bytes, &format!("{name}!{entry}"));
                let blobs = crate::import::stage_inline(sink.archive(), &mut item);
                items += 1;
                batch.items.push(Captured {
                    item,
                    blobs,
                    custodian: Custodian {
                        owner: None,
                        address: None,
                    },
                });
                Ok(())
            })?,
        }
        let mut taken = self.taken.clone();
        taken.push(name.to_string());
        batch.position = ConnectorPosition {
            cursor: taken.len() as i64,
            taken: taken.clone(),
        };
        sink.file(batch)?;
        self.taken = taken;
        Ok(items)
    }
}

fn transient(reason: String) -> SourceError {
    SourceError::Transient {
        reason,
        retry_after: None,
    }
}

fn ssh(e: russh::Error) -> SourceError {
    transient(format!("SSH: {e}"))
}

/// Checks the server's key against the known-hosts file.
struct HostKey {
    host: String,
    port: u16,
    known: PathBuf,
}

#[derive(Debug)]
enum HostKeyError {
    Refused(String),
    Ssh(russh::Error),
}

impl From<russh::Error> for HostKeyError {
    fn from(e: russh::Error) -> Self {
        HostKeyError::Ssh(e)
    }
}

impl client::Handler for HostKey {
    type Error = HostKeyError;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> std::result::Result<bool, Self::Error> {
        let where_ = format!("{}:{}", self.host, self.port);
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Err(HostKeyError::Refused(format!(
                "{where_} offered a certificate, not a key in the known-hosts file"
            )));
        };
        match russh::keys::check_known_hosts_path(&self.host, self.port, key, &self.known) {
            Ok(true) => Ok(true),
            Ok(false) => Err(HostKeyError::Refused(format!(
                "the host key of {where_} is not in the known-hosts file {}: refused to connect",
                self.known.display()
            ))),
            Err(e) => Err(HostKeyError::Refused(format!(
                "the host key of {where_} does not match the known-hosts file {} ({e}): refused to connect",
                self.known.display()
            ))),
        }
    }
}

impl super::Source for SftpSource {
    fn step(&mut self, sink: &mut super::Sink<'_>, wait: bool) -> Result<Step, SourceError> {
        let now = sink.now();
        let due = self.last_pass.is_none_or(|t| now >= t + self.every);
        if (wait && !due) || (!wait && self.passed) {
            if wait {
                std::thread::sleep(Duration::from_secs(1));
            }
            return Ok(Step::Empty);
        }
        let packages = self.fetch()?;
        let mut items = 0;
        for p in &packages {
            items += self.file_package(sink, p)?;
        }
        if packages.is_empty() {
            // The pass is on record (its time sets the next one).
            let position = ConnectorPosition {
                cursor: self.taken.len() as i64,
                taken: self.taken.clone(),
            };
            sink.file(Batch {
                position,
                ..Default::default()
            })?;
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
        self.last_pass = Some(now);
        self.passed = true;
        Ok(if items > 0 || !packages.is_empty() {
            Step::Took(packages.len() as u64)
        } else {
            Step::Empty
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_seconds() {
        assert_eq!(seconds("90s").unwrap(), 90);
        assert_eq!(seconds("15m").unwrap(), 900);
        assert_eq!(seconds("24h").unwrap(), 86_400);
        assert_eq!(seconds("7d").unwrap(), 604_800);
        for bad in ["", "h", "0h", "5w", "99999999999999999999d", "-1h"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }
}
