//! The command line: clap definitions, and the only place that prints, reads the
//! environment or asks the clock. Every listing also prints as JSON (`--json`).

use crate::error::{Error, Result};
use crate::import::RunContext;
use crate::index::Index;
use crate::index::search::Sort;
use crate::mapping::Mapping;
use crate::model::{Body, Item, ItemId, TimeBasis};
use crate::report::ImportReport;
use crate::service::{
    CaseHoldRequest, ImportRequest, Principal, SearchRequest, SearchResults, Service,
};
use crate::service::{mailbox_arg, parse_day, parse_time, views};
use crate::store::Archive;
use clap::{Args, Parser, Subcommand};

/// Writes a line to `err` as `eprintln!` would to the process's stderr.
macro_rules! note {
    ($err:expr, $($arg:tt)*) => {
        let _ = writeln!($err, $($arg)*);
    };
}

mod access;
mod audit;
mod browse;
mod connectors;
mod export;
mod forward;
mod holds;
mod imports;
mod maintain;
pub mod remote;
mod retention;
mod serve;
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "tgvault",
    version,
    about = "On-premises compliance archive for Telegram communications"
)]
pub struct Cli {
    /// The archive directory [default: $TGVAULT_ARCHIVE, else
    /// $XDG_DATA_HOME/tgvault, else ~/.local/share/tgvault]
    #[arg(long, global = true, value_name = "DIR")]
    pub archive: Option<PathBuf>,

    /// Who is acting, for the audit trail [default: the OS user]
    #[arg(long, global = true, value_name = "NAME")]
    pub actor: Option<String>,

    /// Open the archive for reading only (a read-only mount, a WORM volume,
    /// a backup, a forensic copy): nothing in it is changed, and commands
    /// that would change it fail. Reading commands fall back to this by
    /// themselves when the archive cannot be written or another process
    /// holds it
    #[arg(long, global = true)]
    pub read_only: bool,

    /// Where reads are recorded when the archive's trail cannot take them
    /// [default: $TGVAULT_READ_LOG, else $XDG_STATE_HOME/tgvault/reads.jsonl,
    /// else ~/.local/state/tgvault/reads.jsonl]
    #[arg(long, global = true, value_name = "FILE")]
    pub read_log: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the archive: the HTTP API on --listen and on a unix socket in
    /// the archive directory, until SIGTERM or SIGINT
    Serve(serve::ServeArgs),
    /// Users of the archive and their roles
    User {
        #[command(subcommand)]
        action: access::UserAction,
    },
    /// API tokens for HTTP clients
    Token {
        #[command(subcommand)]
        action: access::TokenAction,
    },
    /// Import Telegram Desktop exports (a directory with result.json, a .zip, or the file)
    Import(ImportArgs),
    /// Connectors that capture by themselves (inside `tgvault serve`), their
    /// status and admin log
    Connector {
        #[command(subcommand)]
        action: connectors::ConnectorAction,
    },
    /// Forward every filed copy to its mailbox at a target (IMAP, Microsoft Graph), exactly
    /// once; the targets, their passes and status
    Forward {
        #[command(subcommand)]
        action: forward::ForwardAction,
    },
    /// Run each connector (or NAME) once: take what its source has now, then
    /// exit (for cron or a systemd timer)
    Sync {
        name: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Create an empty archive (every command but import needs one to exist),
    /// e.g. to place holds and policies before the first import
    Init(JsonFlag),
    /// List mailboxes and folders with their item counts
    Mailboxes(JsonFlag),
    /// List the items filed in a mailbox
    Ls {
        mailbox: String,
        /// Only this folder
        #[arg(long)]
        folder: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show one item (tg:SCOPE:CHAT:MESSAGE) with its versions and where it is filed
    Show {
        item: String,
        /// Print every version in full, and the deletion event, not only the
        /// current version
        #[arg(long)]
        history: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List quarantined items (items that mapped to no mailbox), or remap them
    Quarantine {
        #[command(subcommand)]
        action: Option<QuarantineAction>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List past import and remap runs with their counters
    Runs(JsonFlag),
    /// Check every item version, filing, folder count, blob and the audit
    /// chain against their hashes and the store's invariants; exit 1 if
    /// anything is wrong
    Verify(JsonFlag),
    /// Search the archive with KQL, as in Purview Content Search
    /// (e.g. `from:alice AND sent>=2021-01-01 "quarterly report"`)
    Search(SearchArgs),
    /// Rebuild the search index from the archive alone
    Reindex(JsonFlag),
    /// Bring the backup in DEST up to date with the archive (created when
    /// DEST is new or empty; the next backup copies what changed since).
    /// Runs beside an import
    Backup {
        dest: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// After the catalogue was restored from a backup: put back on the audit
    /// trail the entries a journal holds past the trail's end, and file again
    /// every item version the damaged archive's packs hold that the catalogue
    /// lacks
    Recover {
        /// The journal: `audit.journal` of the archive as it was before the
        /// restore (restore --replace keeps it in ARCHIVE.replaced-TIME)
        #[arg(long, value_name = "FILE")]
        journal: Option<PathBuf>,
        /// The damaged archive kept aside (ARCHIVE.replaced-TIME): its
        /// journal, packs and blob files are read, never its catalogue
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// Where versions found in the packs are filed (the user map the
        /// imports used); without it, beside their item's earlier versions,
        /// or else in the quarantine
        #[arg(long, value_name = "CSV")]
        mapping: Option<PathBuf>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Bring a backup back as the archive (--archive)
    Restore {
        backup: PathBuf,
        /// Restore over an existing archive, which is moved aside (to
        /// ARCHIVE.replaced-TIME), never deleted
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Give back the space retention freed: rewrite the packs whose live
    /// records fill less than a share of them (retention does this after
    /// every run that deleted something), and the catalogue when its rows
    /// fill less than that share of its file
    Compact(CompactArgs),
    /// Litigation holds on whole mailboxes
    Hold {
        #[command(subcommand)]
        action: HoldAction,
    },
    /// eDiscovery cases and their holds
    Case {
        #[command(subcommand)]
        action: CaseAction,
    },
    /// Retention policies, and applying them
    Retention {
        #[command(subcommand)]
        action: RetentionAction,
    },
    /// Export every copy a KQL query matches as an eDiscovery package
    Export {
        /// The KQL query
        query: String,
        /// A new (or empty) directory for the package
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Only copies in these mailboxes
        #[arg(long, value_name = "ADDR")]
        mailbox: Vec<String>,
        /// One .eml per item, or one .mbox per mailbox folder
        #[arg(long, value_enum, default_value = "eml")]
        format: FormatArg,
        /// Only copies this case's holds cover
        #[arg(long, value_name = "CASE")]
        case: Option<String>,
        /// Export each item once; list its other copies as duplicates
        #[arg(long)]
        dedup: bool,
        /// Also write one HTML transcript per chat, with the attachment files
        #[arg(long)]
        transcripts: bool,
        #[command(flatten)]
        out_json: JsonFlag,
    },
    /// Say whether each copy of an item may be deleted now, and why
    Explain {
        item: String,
        /// Decide as of this time (YYYY-MM-DD or RFC 3339, UTC) [default: now]
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// List the audit trail: who did what, when, with what result
    Audit {
        /// Only entries from this date (YYYY-MM-DD, UTC) on
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Subcommand, Debug)]
pub enum HoldAction {
    /// Place (or change) a litigation hold on a mailbox
    Set {
        mailbox: String,
        /// Hold each item for N days from its date [default: forever]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        days: Option<u32>,
    },
    /// Release a mailbox's litigation hold
    Clear { mailbox: String },
    /// List every hold in force (litigation and case holds)
    List(JsonFlag),
}

#[derive(Subcommand, Debug)]
pub enum CaseAction {
    /// Open a case
    Create { name: String },
    /// Place or release holds of a case
    Hold {
        #[command(subcommand)]
        action: CaseHoldAction,
    },
    /// Close a case, releasing its holds
    Close { name: String },
    /// List cases
    List(JsonFlag),
    /// Show a case and its holds
    Show {
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Add or remove members of a case (users who act in it)
    Member {
        #[command(subcommand)]
        action: access::MemberAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum CaseHoldAction {
    /// Hold mailboxes for a case, optionally limited by a KQL query and dates
    Add {
        case: String,
        #[arg(long, value_name = "ADDR", required = true)]
        mailbox: Vec<String>,
        #[arg(long, value_name = "KQL")]
        query: Option<String>,
        /// Items dated on or after (YYYY-MM-DD or RFC 3339, UTC)
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// Items dated before (YYYY-MM-DD: before that day ends)
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
    },
    /// Release one hold of a case
    Remove { case: String, hold: u32 },
}

#[derive(Subcommand, Debug)]
pub enum RetentionAction {
    /// Add a policy: --retain DAYS, --delete-after DAYS, or --retain DAYS --then-delete
    Add {
        name: String,
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..))]
        retain: Option<u32>,
        #[arg(long, value_name = "DAYS", conflicts_with = "retain",
              value_parser = clap::value_parser!(u32).range(1..))]
        delete_after: Option<u32>,
        #[arg(long, requires = "retain")]
        then_delete: bool,
        /// Only these mailboxes [default: the whole organisation]
        #[arg(long, value_name = "ADDR")]
        mailbox: Vec<String>,
    },
    /// List policies
    List(JsonFlag),
    /// Remove a policy
    Remove { name: String },
    /// Apply the policies: delete every copy whose time has come and that no
    /// hold covers, leaving a tombstone
    Run {
        /// Only report what would be deleted
        #[arg(long)]
        dry_run: bool,
        /// Apply as of this time (YYYY-MM-DD or RFC 3339, UTC) [default: now]
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// The KQL query (quote it for the shell); it may begin with `-` (an
    /// excluded term)
    #[arg(allow_hyphen_values = true)]
    pub query: String,
    /// Only copies in this mailbox (repeatable)
    #[arg(long, value_name = "ADDR")]
    pub mailbox: Vec<String>,
    /// How many hits to print
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
    /// Order of the hits: newest first, or best match first
    #[arg(long, value_enum, default_value = "date")]
    pub sort: SortArg,
    /// Print only the number of matching copies
    #[arg(long)]
    pub count: bool,
    /// Only the copies this case's holds cover
    #[arg(long, value_name = "NAME")]
    pub case: Option<String>,
    /// Print JSON lines (one per hit, then the total)
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum FormatArg {
    Eml,
    Mbox,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum SortArg {
    Date,
    Relevance,
}

#[derive(Subcommand, Debug)]
pub enum QuarantineAction {
    /// File quarantined items whose participants a new mapping resolves
    Remap {
        #[arg(long, value_name = "CSV")]
        mapping: PathBuf,
        #[command(flatten)]
        out: JsonFlag,
    },
}

#[derive(Args, Debug, Clone, Copy)]
pub struct CompactArgs {
    /// Rewrite packs whose live records fill less than this many per cent
    #[arg(long, default_value_t = crate::compaction::DEFAULT_BELOW)]
    pub below: u8,
    /// Rewrite the catalogue when its rows fill less than this many per cent
    /// of its file
    #[arg(long, default_value_t = crate::compaction::CATALOGUE_BELOW)]
    pub catalogue_below: u8,
    #[command(flatten)]
    pub f: JsonFlag,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct JsonFlag {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Export directories, .zip files or result.json files
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// User map: CSV with mobile_number,mailbox[,telegram_user_id,telegram_username]
    #[arg(long, value_name = "CSV")]
    pub mapping: Option<PathBuf>,
    /// The custodian's mailbox address: the e-mail address the export belongs to
    #[arg(long, value_name = "ADDR")]
    pub mailbox: Option<String>,
    /// An e-mail domain of the organisation (repeatable): in a delivered
    /// e-mail (TeleMessage EML), an address there is a mailbox; others are
    /// outsiders and get no copy
    #[arg(long = "org-domain", value_name = "DOMAIN")]
    pub org_domain: Vec<String>,
    /// The export owner's Telegram user id (123 or user123), for exports that
    /// do not name their owner (single-chat exports)
    #[arg(long, value_name = "USER_ID")]
    pub owner: Option<String>,
    /// Time zone for local times: JSON `date` values without `date_unixtime`,
    /// and HTML exports' wall times (IANA name or +HH:MM) [default: UTC; HTML:
    /// the offset in the page]
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Items per write transaction (tuning and tests)
    #[arg(long, hide = true, default_value_t = 10_000)]
    pub batch_items: usize,
}

/// Logs go to stderr, filtered by `TGVAULT_LOG` (default: warnings).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TGVAULT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The archive directory when `--archive` is not given.
pub fn default_archive_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TGVAULT_ARCHIVE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("tgvault");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/share/tgvault"),
        None => PathBuf::from("tgvault-archive"),
    }
}

/// The OS account running the command (by its uid, not by `$USER`, which
/// anyone can set), as the trail names the local administrator:
/// `os:NAME`, as the server names a peer on its socket.
fn actor() -> String {
    format!("os:{}", crate::os::current_account())
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// What the process should exit with.
pub enum Outcome {
    Ok,
    /// The command ran, but some of its input failed (reported already).
    Partial,
    /// Ran in a server, which reported it: exit with this code.
    Exit(u8),
}

/// The exit code an error calls for: 2 the request was wrong, 3 not
/// permitted, 1 anything else.
pub fn exit_code(e: &Error) -> u8 {
    use crate::error::Kind;
    match (e.kind(), e) {
        (Kind::Invalid | Kind::NotFound, _) | (_, Error::ReadOnly(_) | Error::Conflict(_)) => 2,
        (Kind::Unauthenticated | Kind::Forbidden, _) => 3,
        _ => 1,
    }
}

/// How this process opens archives: `--read-only`, and where reads go that
/// the trail cannot take.
struct Access {
    read_only: bool,
    read_log: Option<PathBuf>,
}

static ACCESS: std::sync::OnceLock<Access> = std::sync::OnceLock::new();

fn access() -> &'static Access {
    ACCESS.get_or_init(|| Access {
        read_only: false,
        read_log: None,
    })
}

fn default_read_log() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TGVAULT_READ_LOG") {
        return Some(PathBuf::from(p));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("tgvault").join("reads.jsonl"))
}

pub fn run(cli: Cli) -> Result<Outcome> {
    let _ = ACCESS.set(Access {
        read_only: cli.read_only,
        read_log: cli.read_log.clone().or_else(default_read_log),
    });
    // A refused hold, case or retention request is on the record too.
    let what = remote::refusable(&cli.command);
    let dir = cli.archive.clone().unwrap_or_else(default_archive_dir);
    let who = cli.actor.clone().unwrap_or_else(actor);
    // While a server holds the archive, its commands run there.
    let forwardable = cli.command.on_service() || matches!(cli.command, Command::Compact(_));
    if forwardable && !cli.read_only {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let Some(code) = remote::forward(&dir.join(crate::server::SOCKET), args)? {
            return Ok(Outcome::Exit(code));
        }
    }
    let result = run_command(cli);
    if let (Some(what), Err(e @ (Error::Usage(_) | Error::NotFound(_)))) = (what, &result)
        && let Ok(archive) = open_archive(&dir, true, &who)
    {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let service = Service::new(archive, now);
        service.record_refusal(&Principal::local(&who), what, &args.join(" "), e)?;
    }
    result
}

fn open_read_only(dir: &std::path::Path) -> Result<Archive> {
    let mut archive = Archive::open_read_only(dir)?;
    archive.set_read_log(access().read_log.clone());
    Ok(archive)
}

/// Opens the archive for a command that only reads: for writing when it can
/// (its reads go on the trail), else read-only, saying why.
fn open_reading(dir: &std::path::Path, actor: &str, check_pages: bool) -> Result<Archive> {
    if access().read_only {
        return open_read_only(dir);
    }
    // A reader does not wait for a writer: it reads beside it.
    let opened = if check_pages {
        Archive::open_existing_checked(dir, std::time::Duration::ZERO)
            .and_then(|a| crate::service::settle(&a, actor, now()).map(|()| a))
    } else {
        open_archive_waiting(dir, true, actor, std::time::Duration::ZERO)
    };
    match opened {
        Ok(a) => Ok(a),
        Err(e) if unwritable(&e) => {
            eprintln!("note: {e}; opened for reading only");
            open_read_only(dir)
        }
        Err(e) => Err(e),
    }
}

/// Whether opening for writing failed because the archive cannot be
/// written now (storage read-only or full, or another process holds it).
fn unwritable(e: &Error) -> bool {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem, StorageFull};
    let kind = match e {
        Error::Busy(_) | Error::DiskFull { .. } | Error::ReadOnly(_) => return true,
        Error::Io { source, .. } => source.kind(),
        Error::Storage(s) => match s.io_kind() {
            Some(kind) => kind,
            None => return false,
        },
        _ => return false,
    };
    matches!(kind, PermissionDenied | ReadOnlyFilesystem | StorageFull)
}

/// Says where a read's entry went when not on the trail.
fn say_recorded(r: &crate::store::audit::Recorded) {
    use crate::store::audit::Recorded;
    match r {
        Recorded::Trail(_) => {}
        Recorded::Pending(p) => eprintln!(
            "note: recorded in {} (the archive's next writer puts it on the trail)",
            p.display()
        ),
        Recorded::ReadLog(p) => eprintln!(
            "note: the archive cannot be written: this is recorded in the read log {}",
            p.display()
        ),
        Recorded::Nowhere(why) => eprintln!("warning: this read is recorded nowhere: {why}"),
    }
}

fn open_archive(dir: &std::path::Path, existing: bool, actor: &str) -> Result<Archive> {
    open_archive_waiting(dir, existing, actor, crate::store::WRITER_WAIT)
}

/// Opens the archive in `dir` (which must exist, with `existing`), and
/// appends what the opening owes the trail (interrupted runs, a migration).
fn open_archive_waiting(
    dir: &std::path::Path,
    existing: bool,
    actor: &str,
    wait: std::time::Duration,
) -> Result<Archive> {
    if access().read_only {
        return open_read_only(dir);
    }
    let archive = if existing {
        Archive::open_existing_waiting(dir, wait)?
    } else {
        Archive::open_waiting(dir, wait)?
    };
    crate::service::settle(&archive, actor, now())?;
    Ok(archive)
}

impl Command {
    /// Whether the command runs on a [`Service`], and so also through a
    /// server holding the archive.
    /// All but the server itself and the commands that work on the
    /// archive's files (`maintain::run_direct`).
    pub fn on_service(&self) -> bool {
        !matches!(
            self,
            Command::Serve(_)
                | Command::Init(_)
                | Command::Backup { .. }
                | Command::Recover { .. }
                | Command::Restore { .. }
                | Command::Compact(_)
        )
    }

    /// Checks what can be checked without the archive: the query, the
    /// import's map and options.
    fn precheck(&self) -> Result<()> {
        match self {
            Command::Search(a) => crate::service::parse_query(&a.query).map(|_| ()),
            Command::Export { query, .. } => crate::service::parse_query(query).map(|_| ()),
            Command::Import(a) => import_request(a).options().map(|_| ()),
            Command::Quarantine {
                action: Some(QuarantineAction::Remap { mapping, .. }),
                ..
            } => Mapping::from_path(mapping).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// The files it reads or writes, as named (relative to the caller's
    /// working directory).
    pub fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            Command::Import(a) => a.paths.iter_mut().chain(a.mapping.as_mut()).collect(),
            Command::Quarantine {
                action: Some(QuarantineAction::Remap { mapping, .. }),
                ..
            } => vec![mapping],
            Command::Export { out, .. } => vec![out],
            Command::Connector { action } => action.paths_mut(),
            Command::Forward { action } => action.paths_mut(),
            _ => vec![],
        }
    }

    /// Whether it changes the archive (a reader opens it read-only when it
    /// cannot be written).
    fn writes(&self) -> bool {
        match self {
            Command::Hold { action } => !matches!(action, HoldAction::List(_)),
            Command::Case { action } => {
                !matches!(action, CaseAction::List(_) | CaseAction::Show { .. })
            }
            Command::User { action } => !matches!(action, access::UserAction::List(_)),
            Command::Connector { action } => action.writes(),
            Command::Forward { action } => action.writes(),
            Command::Sync { .. } => true,
            Command::Token { .. }
            | Command::Import(_)
            | Command::Quarantine { .. }
            | Command::Reindex(_) => true,
            Command::Retention { action } => !matches!(action, RetentionAction::List(_)),
            _ => false,
        }
    }
}

fn import_request(a: &ImportArgs) -> ImportRequest {
    ImportRequest {
        mapping: a.mapping.clone(),
        mailbox: a.mailbox.clone(),
        owner: a.owner.clone(),
        tz: a.tz.clone(),
        org_domains: a.org_domain.clone(),
    }
}

/// Runs a command of [`Command::on_service`] as `who`, rendering to `out`
/// and `err`: in this process, or in a server for a CLI on its socket.
pub fn run_on(
    service: &Service,
    who: &Principal,
    command: Command,
    args: Vec<String>,
    progress: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Outcome> {
    match command {
        Command::User { action } => access::user(out, service, who, action),
        Command::Token { action } => access::token(out, service, who, action),
        Command::Connector { action } => connectors::run(out, service, who, action),
        Command::Forward { action } => forward::run(out, service, who, action),
        Command::Sync { name, out: f } => connectors::sync(out, service, who, name, f.json),
        Command::Ls { .. } | Command::Mailboxes(_) | Command::Search(_) | Command::Show { .. } => {
            browse::run(command, service, who, out, err)
        }
        Command::Case { .. } | Command::Hold { .. } => holds::run(command, service, who, out),
        Command::Import(_) | Command::Quarantine { .. } | Command::Runs(_) => {
            imports::run(command, service, who, args, progress, out, err)
        }
        Command::Explain { .. } | Command::Retention { .. } => {
            retention::run(command, service, who, args, out, err)
        }
        Command::Export { .. } => export::run(command, service, who, args, out),
        Command::Audit { .. } => audit::run(command, service, who, out),
        Command::Reindex(_) | Command::Verify(_) => maintain::run(command, service, who, out, err),
        _ => Err(Error::Internal("not a command of the service".into())),
    }
}

fn run_command(cli: Cli) -> Result<Outcome> {
    let dir = cli.archive.clone().unwrap_or_else(default_archive_dir);
    let actor = || cli.actor.clone().unwrap_or_else(actor);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout().lock();
    // A request that cannot be right is refused before the archive opens
    // (an import with a bad map creates no archive).
    cli.command.precheck()?;
    if cli.command.on_service() {
        let who = Principal::local(&actor());
        let archive = if cli.command.writes() {
            let existing = !matches!(cli.command, Command::Import(_));
            open_archive(&dir, existing, &actor())?
        } else {
            let check = matches!(cli.command, Command::Verify(_));
            open_reading(&dir, &actor(), check)?
        };
        let service = Service::new(archive, now);
        let mut err = std::io::stderr().lock();
        let progress = std::io::stderr().is_terminal();
        let done = run_on(
            &service,
            &who,
            cli.command,
            args,
            progress,
            &mut out,
            &mut err,
        );
        service.close()?;
        return done;
    }
    match cli.command {
        Command::Serve(a) => serve::run(&dir, &actor(), a),
        c @ (Command::Init(_)
        | Command::Backup { .. }
        | Command::Recover { .. }
        | Command::Restore { .. }
        | Command::Compact(_)) => {
            // These change the archive's files themselves: not beside a
            // server that holds them (a backup only reads, beside it).
            let socket = dir.join(crate::server::SOCKET);
            if !matches!(c, Command::Backup { .. })
                && std::os::unix::net::UnixStream::connect(&socket).is_ok()
            {
                return Err(Error::Conflict(format!(
                    "`tgvault serve` holds the archive in {} (its socket answers): stop the server to run this",
                    dir.display()
                )));
            }
            maintain::run_direct(c, &dir, &actor(), args, &mut out)
        }
        // Ran on the service above.
        _ => Err(Error::Internal("a command of the service".into())),
    }
}

fn print_report(
    out: &mut (impl Write + ?Sized),
    report: &ImportReport,
    as_json: bool,
) -> Result<()> {
    if as_json {
        emit(out, &report.to_json())
    } else {
        w(out, format_args!("{}", report.render_table()))
    }
}

use crate::time::iso;

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn print_compacted(
    out: &mut (impl Write + ?Sized),
    c: &crate::compaction::Compacted,
) -> Result<()> {
    for (pack, why) in &c.skipped {
        eprintln!("warning: pack {pack} not compacted: {why}");
    }
    if c.mended.dropped > 0 || c.mended.logged > 0 {
        w(
            out,
            format_args!(
                "filing log mended: {} damaged logs dropped, {} copies logged anew from the catalogue\n",
                c.mended.dropped, c.mended.logged
            ),
        )?;
    }
    for (pack, records, before, after) in &c.rewritten {
        w(
            out,
            format_args!("pack {pack}: {records} records moved, {before} bytes -> {after}\n"),
        )?;
    }
    if let Some((before, after)) = c.catalogue {
        w(
            out,
            format_args!("catalogue rewritten: {before} bytes -> {after}\n"),
        )?;
    }
    w(
        out,
        format_args!(
            "{} packs, {} rewritten, {} bytes given back\n",
            c.packs,
            c.rewritten.len(),
            c.freed
        ),
    )
}

fn w(out: &mut (impl Write + ?Sized), args: std::fmt::Arguments) -> Result<()> {
    out.write_fmt(args).map_err(|e| Error::io("<stdout>", e))
}

fn emit(out: &mut (impl Write + ?Sized), v: &serde_json::Value) -> Result<()> {
    w(out, format_args!("{v}\n"))
}

fn print_recovered(
    out: &mut (impl Write + ?Sized),
    r: &crate::backup::RecoverOutcome,
    json: bool,
) -> Result<()> {
    if json {
        return emit_value(out, r);
    }
    if let Some(path) = &r.journal_path {
        let j = &r.journal;
        w(
            out,
            format_args!(
                "{}: {} entr(ies) put back after entry {} ({} already){}\n",
                path,
                j.appended,
                j.common_seq,
                j.already,
                j.stopped
                    .as_ref()
                    .map(|s| format!("; stopped: {s}"))
                    .unwrap_or_default()
            ),
        )?;
    }
    for s in &r.settings {
        w(out, format_args!("in force again: {s}\n"))?;
    }
    if let Some(report) = &r.items {
        print_report(out, report, false)?;
    }
    if let Some(run) = r.redone.run {
        w(
            out,
            format_args!(
                "retention run {run}: {} of {} copies destroyed since the backup destroyed again, {} held\n",
                r.redone.deleted.len(),
                r.redone.copies,
                r.redone.held_at_deletion
            ),
        )?;
    }
    Ok(())
}

/// Prints a value as one JSON line.
fn emit_value(out: &mut (impl Write + ?Sized), v: &impl serde::Serialize) -> Result<()> {
    let v = serde_json::to_value(v).map_err(|e| Error::Internal(format!("JSON: {e}")))?;
    emit(out, &v)
}
