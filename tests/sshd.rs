//! A real OpenSSH server for the tests and benches: Debian's sshd, started
//! on 127.0.0.1 with its own configuration, host key and a client key in a
//! temporary directory, for the running account (root), and killed when
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Sshd {
    /// Starts sshd for the running account, with a client key; `None` (and a
    /// SKIPPED line) where it cannot run outside CI.
    pub fn start() -> Option<Sshd> {
        let root = rustix::process::getuid().is_root();
        if !Path::new(SSHD).exists() || !root {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {SSHD} is missing or the tests do not run as root (scripts/test)"
            );
            eprintln!("SKIPPED: no {SSHD}, or not root; the SFTP connector was not tested");
            return None;
        }
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host"));
        keygen(&d.join("client"));
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir(d.join("drop")).unwrap();
        let port = crate::ports::free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile none\n\
AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        crate::ports::wait_for(port);
        let host_key = std::fs::read_to_string(d.join("host.pub")).unwrap();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_key}"),
        )
        .unwrap();
        Some(Sshd { child, port, dir })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
