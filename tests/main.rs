//! The integration tests: one binary (each test file would otherwise link the
//! whole crate again). They drive the real `tgvault` binary against real files.

mod backup;
mod blobs;
mod botapi;
mod botdouble;
mod common;
mod connectors;
mod crash;
mod disk;
mod dovecot;
mod export;
mod fixtures;
mod forward;
mod graph;
mod graphdouble;
mod hostile;
mod kill;
mod media;
mod model;
mod ports;
mod retention;
mod samples;
mod search;
mod server;
mod sftp;
mod sshd;
mod telemessage;
mod verify;
