//! `tgvault serve`: opens the archive, holds it, and hands it to the server.

use super::{Outcome, now, open_archive};
use crate::error::{Error, Result};
use crate::server::{SOCKET, ServeOptions};
use crate::service::Service;
use clap::Args;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The TCP address to serve HTTP on
    #[arg(long, default_value = "127.0.0.1:8470", value_name = "ADDR")]
    pub listen: String,
    /// The directory server-side imports are named in [default: incoming/
    /// in the archive directory]
    #[arg(long, value_name = "DIR")]
    pub incoming: Option<std::path::PathBuf>,
    /// The largest upload accepted
    #[arg(long, default_value_t = 65536, value_name = "MIB")]
    pub max_upload_mib: u64,
    /// Serve HTTPS with this certificate chain (PEM), with --tls-key
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Let this group's members reach the socket (each acts as the user
    /// whose --os-user names it): socket 0660, archive directory 0710 for
    /// the group while the server runs
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
}

pub fn run(dir: &Path, actor: &str, a: ServeArgs) -> Result<Outcome> {
    let listen: SocketAddr = a.listen.parse().map_err(|_| {
        Error::Usage(format!(
            "--listen: '{}' is not an IP address and port",
            a.listen
        ))
    })?;
    let archive = open_archive(dir, true, actor)?;
    let socket = archive.dir().join(SOCKET);
    let service = Service::new(archive, now);
    let opts = ServeOptions {
        listen,
        socket: Some(socket.clone()),
        incoming: a.incoming,
        max_upload: a.max_upload_mib.saturating_mul(1 << 20),
        tls: a.tls_cert.zip(a.tls_key),
        socket_group: a.socket_group,
    };
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    crate::server::serve(service, opts, |addr| {
        // The first line says where it listens (a test or a script reads it).
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "listening on {scheme}://{addr} and {}",
            socket.display()
        );
        let _ = out.flush();
    })?;
    eprintln!("tgvault: server stopped");
    Ok(Outcome::Ok)
}
