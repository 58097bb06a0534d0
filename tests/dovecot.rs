//! A real IMAP server for the tests and benches: Debian's Dovecot, started
//! on 127.0.0.1 with its own configuration in a temporary directory: TLS
//! only, with a certificate signed by a CA the test makes; mailbox users,
//! and a master user (`{mailbox}*forwarder`) that may file into any of
//! them. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const DOVECOT: &str = "/usr/sbin/dovecot";

/// The master user's name and password.
pub const MASTER: &str = "forwarder";
pub const MASTER_PASSWORD: &str = "m4ster-Secret-77";

pub struct Dovecot {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The master user's password in an owner-only file in `dir`.
pub fn master_password_file(dir: &Path) -> PathBuf {
    let p = dir.join("imap.password");
    std::fs::write(&p, format!("{MASTER_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    p
}

/// A CA (`ca.pem`) and a certificate for 127.0.0.1 it signed
/// (`server.pem`, `server.key`), in `dir`.
pub fn make_ca(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-days",
        "2",
        "-subj",
        "/CN=tgvault test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&ca, dir);
    let mut req = vec!["req"];
    req.extend(ec);
    req.extend([
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    openssl(&req, dir);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
        dir,
    );
}

impl Dovecot {
    /// Starts Dovecot with `users` (mailbox addresses, password `pw-ADDR`);
    /// `None` (and a SKIPPED line) where it cannot run outside CI.
    pub fn start(users: &[&str]) -> Option<Dovecot> {
        let root = rustix::process::getuid().is_root();
        if !Path::new(DOVECOT).exists() || !root {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {DOVECOT} is missing or the tests do not run as root (scripts/test)"
            );
            eprintln!("SKIPPED: no {DOVECOT}, or not root; forwarding to IMAP was not tested");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The mail processes run as tgvault-peer: they must reach their homes.
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        make_ca(d);
        let peer = Command::new("id")
            .args(["-u", "tgvault-peer"])
            .output()
            .unwrap();
        let uid = String::from_utf8_lossy(&peer.stdout).trim().to_string();
        assert!(
            !uid.is_empty(),
            "the tgvault-peer account (scripts/test makes it)"
        );
        let mail = d.join("mail");
        std::fs::create_dir(&mail).unwrap();
        Command::new("chown").arg(&uid).arg(&mail).status().unwrap();
        let userlist: String = users
            .iter()
            .map(|u| format!("{u}:{{PLAIN}}pw-{u}\n"))
            .collect();
        std::fs::write(d.join("users"), userlist).unwrap();
        std::fs::write(
            d.join("masters"),
            format!("{MASTER}:{{PLAIN}}{MASTER_PASSWORD}\n"),
        )
        .unwrap();
        let port = crate::ports::free_port();
        let config = format!(
            r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{d}/server.pem
ssl_key = <{d}/server.key
auth_mechanisms = plain login
auth_master_user_separator = *
passdb {{
  driver = passwd-file
  args = {d}/masters
  master = yes
}}
passdb {{
  driver = passwd-file
  args = {d}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={d}/mail/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
"#,
            d = d.display()
        );
        std::fs::write(d.join("dovecot.conf"), config).unwrap();
        let child = Command::new(DOVECOT)
            .args(["-F", "-c"])
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        crate::ports::wait_for(port);
        Some(Dovecot { child, port, dir })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn url(&self) -> String {
        format!("imaps://127.0.0.1:{}", self.port)
    }

    /// `forward add imap NAME ...` for the master user, with its password
    /// in an owner-only file in `secrets` and the test CA.
    pub fn target_args(&self, name: &str, secrets: &Path) -> Vec<String> {
        let pw = master_password_file(secrets);
        let args = [
            "forward",
            "add",
            "imap",
            name,
            "--url",
            &self.url(),
            "--user",
            MASTER,
            "--password-file",
            &pw.display().to_string(),
            "--login-template",
            "{mailbox}*{user}",
            "--ca-file",
            &self.path("ca.pem").display().to_string(),
        ];
        args.iter().map(|s| s.to_string()).collect()
    }

    /// Every message in `folder` of `user`'s mailbox, fetched whole with
    /// Python's imaplib (logged in as the user, over TLS checked against
    /// the CA): `(uid, bytes)`, in UID order.
    pub fn fetch_all(&self, user: &str, folder: &str) -> Vec<(u32, Vec<u8>)> {
        let script = r#"
import imaplib, ssl, sys, json, base64
port, ca, user, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
m.login(user, "pw-" + user)
typ, _ = m.select('"' + folder + '"', readonly=True)
out = []
if typ == "OK":
    typ, data = m.uid("SEARCH", None, "ALL")
    for uid in data[0].split():
        typ, msg = m.uid("FETCH", uid, "(BODY.PEEK[])")
        out.append([int(uid), base64.b64encode(msg[0][1]).decode()])
m.logout()
print(json.dumps(out))
"#;
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(self.port.to_string())
            .arg(self.path("ca.pem"))
            .arg(user)
            .arg(folder)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Vec<(u32, String)> = serde_json::from_slice(&out.stdout).unwrap();
        use base64::Engine;
        v.into_iter()
            .map(|(u, b)| {
                (
                    u,
                    base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
                )
            })
            .collect()
    }
}

/// An export directory `dir/desk` of `n` small messages between Bob and
/// Erin (`fixtures/users.csv` maps both), alternating: one copy each.
pub fn desk_export(dir: &Path, n: u32) -> PathBuf {
    let messages: Vec<String> = (1..=n)
        .map(|i| {
            let (id, name) = if i % 2 == 0 {
                (1000002, "Bob")
            } else {
                (1000005, "Erin")
            };
            format!(
                r#"{{"id":{i},"type":"message","date_unixtime":"{}","from":"{name}","from_id":"user{id}","text":"desk message {i}: the book closes at five, confirm the fills"}}"#,
                1_700_000_000 + i
            )
        })
        .collect();
    let export = dir.join("desk");
    std::fs::create_dir_all(&export).unwrap();
    std::fs::write(
        export.join("result.json"),
        format!(
            r#"{{"name":"Desk","type":"private_group","id":4242,"messages":[{}]}}"#,
            messages.join(",")
        ),
    )
    .unwrap();
    export
}
