//! tgvault: an on-premises compliance archive for Telegram communications.
//!
//! Items come in through [`source`] (one module per input format), are mapped to
//! mailboxes by [`mapping`], and are filed by [`import`] into the redb-backed
//! [`store`], then indexed for KQL search by [`index`]. The binary in `src/main.rs` is a thin shell around [`cli`].
//!
//! See `ARCHITECTURE.md` for the module map and the invariants, and
//! `docs/format.md` for every on-disk table and key.

pub mod alloc;
pub mod backup;
pub mod canon;
pub mod cli;
pub mod compaction;
pub mod connector;
pub mod damage;
pub mod error;
pub mod export;
pub mod forward;
#[doc(hidden)]
pub mod fuzz;
pub mod import;
pub mod index;
pub mod mapping;
pub mod model;
pub mod os;
pub mod pagecache;
pub mod policy;
pub mod query;
pub mod report;
pub mod retention;
pub mod server;
pub mod service;
pub mod source;
pub mod store;
#[doc(hidden)]
pub mod synth;
pub mod time;
pub mod tuning;

pub use error::{Error, Result};
