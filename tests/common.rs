//! Helpers shared by the integration tests.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tgvault")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("fixtures").join(rel)
}

/// The real exports beside the checkout. Under CI their absence is a failure;
/// elsewhere (a clone outside this workplace) the caller skips, loudly.
pub fn samples_dir() -> Option<PathBuf> {
    let dir = root().join("../shared/samples/telegram-export");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!("CI is set but the samples are missing at {}", dir.display());
    }
    eprintln!(
        "SKIPPED: no samples at {} (outside the workplace); sample tests did not run",
        dir.display()
    );
    None
}

pub struct Archive {
    pub dir: tempfile::TempDir,
}

impl Archive {
    pub fn new() -> Archive {
        // Owner-only, as tgvault makes an archive's folder (copies of an
        // archive made by the tests land in it).
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        Archive { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--archive")
            .arg(self.path())
            .args(args)
            .env_remove("TGVAULT_ARCHIVE")
            .output()
            .expect("run tgvault")
    }

    /// Runs and insists on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tgvault {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs a `--json` command and parses its one JSON document.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).expect("one JSON document")
    }

    /// Runs a `--json` listing and parses its JSON lines.
    pub fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        let mut a = args.to_vec();
        a.push("--json");
        self.ok(&a)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }

    pub fn import(&self, paths: &[&Path], extra: &[&str]) -> Value {
        let mut args: Vec<String> = vec!["import".into()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        args.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.json(&a)
    }
}

pub fn totals(report: &Value) -> &Value {
    &report["totals"]
}

pub fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a number in {v}"))
}

/// Purview's invariant, checked on every report a test sees.
pub fn assert_balanced(c: &Value) {
    assert_eq!(
        n(c, "available_for_import"),
        n(c, "imported")
            + n(c, "partially_imported")
            + n(c, "skipped")
            + n(c, "failed")
            + n(c, "quarantined"),
        "counters do not balance: {c}"
    );
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Whether the file at `path` holds `needle`: in its bytes, or (a pack file)
/// in the content of any record in it, found by scanning the pack as
/// `frame::scan` reads it, whatever the catalogue says.
pub fn holds(path: &Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).unwrap();
    let has = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    if has(&bytes) {
        return true;
    }
    path.extension().is_some_and(|e| e == "pack")
        && scan_pack(path)
            .iter()
            .any(|f| f.content.as_ref().is_ok_and(|c| has(c)))
}

/// The records of a pack, read with the dictionaries of every pack beside it.
pub fn scan_pack(path: &Path) -> Vec<tgvault::store::frame::Found> {
    tgvault::store::frame::scan(&std::fs::read(path).unwrap(), &dicts_beside(path))
}

/// The zstd dictionaries of every pack beside `path` (and of `path`).
fn dicts_beside(path: &Path) -> tgvault::store::frame::Dicts {
    let dicts = tgvault::store::frame::Dicts::default();
    let mut packs = files_under(path.parent().unwrap());
    packs.sort();
    for p in packs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pack"))
    {
        tgvault::store::frame::scan(&std::fs::read(p).unwrap(), &dicts);
    }
    dicts
}

/// Flips one bit in the middle of the stored bytes of the pack record whose
/// content holds `needle`.
pub fn flip_record(pack: &Path, needle: &[u8]) {
    let mut bytes = std::fs::read(pack).unwrap();
    let found = scan_pack(pack);
    let f = found
        .iter()
        .find(|f| {
            f.content
                .as_ref()
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle))
        })
        .unwrap_or_else(|| panic!("no record in {} holds {needle:?}", pack.display()));
    let header = tgvault::store::frame::HEADER;
    let at = if f.kind == tgvault::store::frame::Kind::Group {
        f.offset + flip_in_group(pack, &bytes[f.offset..f.offset + f.len], needle)
    } else {
        f.offset + header + (f.len - header) / 2
    };
    bytes[at] ^= 0x01;
    std::fs::write(pack, bytes).unwrap();
}

/// Where in `record`, a group of item versions, one flipped bit damages the
/// member holding `needle` and as few others as can be: every payload byte
/// is tried (a compressed stream passes on damage unevenly).
fn flip_in_group(pack: &Path, record: &[u8], needle: &[u8]) -> usize {
    let dicts = dicts_beside(pack);
    let members = |record: &[u8]| -> Option<Vec<Vec<u8>>> {
        let found = tgvault::store::frame::scan(record, &dicts);
        let content = found.first()?.content.as_ref().ok()?.clone();
        let mut out = Vec::new();
        let mut at = 0;
        while at + 4 <= content.len() {
            let len = u32::from_le_bytes(content[at..at + 4].try_into().unwrap()) as usize;
            out.push(content.get(at + 4..at + 4 + len)?.to_vec());
            at += 4 + len;
        }
        Some(out)
    };
    let before = members(record).unwrap();
    let target = before
        .iter()
        .position(|m| m.windows(needle.len()).any(|w| w == needle))
        .unwrap();
    let mut best: Option<(usize, usize)> = None;
    let mut trial = record.to_vec();
    for at in tgvault::store::frame::HEADER..record.len() {
        trial[at] ^= 0x01;
        if let Some(after) = members(&trial).filter(|a| a.len() == before.len()) {
            let hit: Vec<usize> = (0..before.len())
                .filter(|&i| after[i] != before[i])
                .collect();
            if hit.contains(&target) && best.is_none_or(|(n, _)| hit.len() < n) {
                best = Some((hit.len(), at));
            }
        }
        trial[at] ^= 0x01;
    }
    best.expect("a flip that damages the member").1
}

/// In an archive of the full-account fixture: a case holds the merger item
/// (tg:1000001:1000002:11) in both its mailboxes, and a policy deletes
/// everything after a day (for `retention run` to apply).
pub fn hold_merger_purge_the_rest(a: &Archive) {
    a.ok(&["case", "create", "merger"]);
    for m in ["alice.adams@corp.example", "bob.brown@corp.example"] {
        a.ok(&[
            "case",
            "hold",
            "add",
            "merger",
            "--mailbox",
            m,
            "--query",
            "merger",
        ]);
    }
    a.ok(&["retention", "add", "purge", "--delete-after", "1"]);
}

/// Whether `tool` runs; under CI its absence fails (scripts/test installs
/// it), elsewhere the caller skips, saying what was not tested.
pub fn have(tool: &str, untested: &str) -> bool {
    if std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but {tool} is missing (scripts/test installs it)"
    );
    eprintln!("SKIPPED: {tool} is not installed; {untested} was not tested");
    false
}

/// A self-signed certificate for 127.0.0.1 and its key, made by openssl in
/// `dir`: `(cert.pem, key.pem)`.
pub fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}

/// What a command printed, standard output then standard error.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Copies the directory tree `from` into `to` (made if missing).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
