//! Input formats. Nothing outside this module knows a Telegram field name.
//!
//! [`Input`] finds the export behind a path (a directory holding `result.json`,
//! a `.zip` of one, or the file itself) and opens it and its media files;
//! [`telegram`] streams a Telegram Desktop JSON export and turns each message into
//! a [`crate::model::Item`].

pub mod botapi;
pub mod check;
pub mod eml;
pub mod html;
mod inside;
mod json;
pub mod package;
pub mod repair;
pub mod split;
pub mod telegram;

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// What an input hands the import pipeline (see [`Input::produce`]).
pub trait Produce: telegram::Sink {
    /// An item the format converted itself.
    fn item(&mut self, item: crate::model::Item) -> Result<()>;
    /// A source record that carries no item, by what it is.
    fn not_item(&mut self, what: String) -> Result<()>;
}

/// Where an export's JSON and media live.
#[derive(Clone, Debug)]
pub enum Input {
    /// A `result.json` on disk; media paths are relative to `base`.
    File { json: PathBuf, base: PathBuf },
    /// A `result.json` inside a zip archive; media paths are relative to the
    /// entry's folder `base` inside the zip.
    Zip {
        zip: PathBuf,
        entry: String,
        base: String,
    },
    /// An HTML export: its pages in reading order; media paths are relative
    /// to `base`.
    Html { pages: Vec<PathBuf>, base: PathBuf },
    /// Bot API updates captured live (JSON lines, or a getUpdates response).
    BotApi { path: PathBuf },
    /// One delivered e-mail (a TeleMessage EML).
    Eml { path: PathBuf },
    /// A TeleMessage delivery package: a zip of EML files and a manifest.
    Package { zip: PathBuf },
}

impl Input {
    /// Finds the export behind `path`.
    pub fn locate(path: &Path) -> Result<Input> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            let json = path.join("result.json");
            refuse_link(&json)?;
            refuse_link(&path.join("messages.html"))?;
            if json.is_file() {
                return Ok(Input::File {
                    json,
                    base: path.to_path_buf(),
                });
            }
            if path.join("messages.html").is_file() {
                return Ok(Input::Html {
                    pages: html::pages(path)?,
                    base: path.to_path_buf(),
                });
            }
            return Err(Error::input(
                path,
                "no result.json in this directory (is it a Telegram Desktop JSON export?)",
            ));
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("zip") => Self::locate_in_zip(path),
            Some("html") | Some("htm") => Ok(Input::Html {
                pages: vec![path.to_path_buf()],
                base: path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from(".")),
            }),
            Some("eml") => Ok(Input::Eml {
                path: path.to_path_buf(),
            }),
            Some("jsonl") | Some("ndjson") => Ok(Input::BotApi {
                path: path.to_path_buf(),
            }),
            _ if Self::looks_like_bot_api(path)? => Ok(Input::BotApi {
                path: path.to_path_buf(),
            }),
            _ => Ok(Input::File {
                json: path.to_path_buf(),
                base: path
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from(".")),
            }),
        }
    }

    fn looks_like_bot_api(path: &Path) -> Result<bool> {
        let mut head = vec![0u8; 4096];
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        let n = f.read(&mut head).map_err(|e| Error::io(path, e))?;
        Ok(botapi::sniff(&head[..n]))
    }

    fn locate_in_zip(path: &Path) -> Result<Input> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let zip = zip::ZipArchive::new(BufReader::new(f))
            .map_err(|e| Error::input(path, format!("not a readable zip archive: {e}")))?;
        let mut best: Option<String> = None;
        for name in zip.file_names().flatten() {
            if (name == "result.json" || name.ends_with("/result.json"))
                && best
                    .as_deref()
                    .is_none_or(|b| name.matches('/').count() < b.matches('/').count())
            {
                best = Some(name.to_string());
            }
        }
        let Some(entry) = best else {
            if zip
                .file_names()
                .flatten()
                .any(|n| n.to_ascii_lowercase().ends_with(".eml"))
            {
                return Ok(Input::Package {
                    zip: path.to_path_buf(),
                });
            }
            return Err(Error::input(
                path,
                "the zip archive holds no result.json (a Telegram export) and no .eml files (a delivery package)",
            ));
        };
        let base = match entry.rfind('/') {
            Some(i) => entry[..=i].to_string(),
            None => String::new(),
        };
        Ok(Input::Zip {
            zip: path.to_path_buf(),
            entry,
            base,
        })
    }

    /// What to call this input in reports and errors.
    pub fn display(&self) -> String {
        match self {
            Input::File { json, .. } => json.display().to_string(),
            Input::Zip { zip, entry, .. } => format!("{}!{}", zip.display(), entry),
            Input::Html { pages, base } => match pages.as_slice() {
                [one] => one.display().to_string(),
                _ => base.display().to_string(),
            },
            Input::BotApi { path } | Input::Eml { path } => path.display().to_string(),
            Input::Package { zip } => zip.display().to_string(),
        }
    }

    /// Pass 1: reads the whole input and checks it, keeping nothing; how many
    /// records it holds and what was repaired. A bad input fails here,
    /// before anything is written.
    pub fn check(&self) -> Result<check::Checked> {
        match self {
            Input::Html { pages, .. } => {
                let mut items = 0;
                html::read(pages, None, &mut |_| {
                    items += 1;
                    Ok(())
                })?;
                Ok(check::Checked {
                    items,
                    ..Default::default()
                })
            }
            Input::BotApi { path } => {
                let mut items = 0;
                botapi::read_updates(path, &mut |text, at| {
                    items += 1;
                    botapi::check(path, text, at)
                })?;
                Ok(check::Checked {
                    items,
                    ..Default::default()
                })
            }
            Input::Eml { path } => {
                std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
                Ok(check::Checked {
                    items: 1,
                    ..Default::default()
                })
            }
            Input::Package { zip } => Ok(check::Checked {
                items: package::check(zip)?,
                ..Default::default()
            }),
            _ => check::check(self.open_json()?, &self.error_path()),
        }
    }

    /// Pass 2: reads the input and hands `out` what it holds: messages of
    /// an export as their raw text (the importer converts them), items of
    /// formats that convert themselves. `zone` is the time zone the user
    /// gave, which HTML wall times are read in.
    pub fn produce(&self, zone: Option<telegram::Zone>, out: &mut dyn Produce) -> Result<()> {
        match self {
            Input::Html { pages, .. } => html::read(pages, zone, &mut |item| out.item(item)),
            Input::BotApi { path } => botapi::produce(path, out),
            Input::Eml { path } => {
                let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
                out.item(eml::convert(&bytes, &path.display().to_string()))
            }
            Input::Package { zip } => {
                package::read(zip, &mut |name, bytes| out.item(eml::convert(&bytes, name)))
            }
            // The splitter trusts its input; the checking pass decides
            // whether anything it produced is kept.
            _ => split::split(self.open_json()?, out, &self.error_path()),
        }
    }

    /// The name of the input's format, for reports.
    pub fn format(&self) -> &'static str {
        match self {
            Input::Html { .. } => html::FORMAT,
            Input::BotApi { .. } => botapi::FORMAT,
            Input::Eml { .. } | Input::Package { .. } => eml::FORMAT,
            _ => telegram::FORMAT,
        }
    }

    /// The path errors about the JSON should name.
    pub fn error_path(&self) -> PathBuf {
        PathBuf::from(self.display())
    }

    /// Opens the export's JSON for one streaming pass (a UTF-8 byte-order
    /// mark before it, as editors on Windows write, is skipped).
    pub fn open_json(&self) -> Result<Box<dyn Read + Send>> {
        self.open_json_raw()
            .map(|r| Box::new(SkipBom::new(r)) as Box<dyn Read + Send>)
    }

    fn open_json_raw(&self) -> Result<Box<dyn Read + Send>> {
        match self {
            Input::Html { .. }
            | Input::BotApi { .. }
            | Input::Eml { .. }
            | Input::Package { .. } => Err(Error::Internal("this input has no export JSON".into())),
            Input::File { json, .. } => {
                let f = File::open(json).map_err(|e| Error::io(json, e))?;
                Ok(Box::new(BufReader::with_capacity(256 * 1024, f)))
            }
            Input::Zip { zip, entry, .. } => {
                let f = File::open(zip).map_err(|e| Error::io(zip, e))?;
                let archive = zip::ZipArchive::new(BufReader::new(f))
                    .map_err(|e| Error::input(zip, format!("not a readable zip archive: {e}")))?;
                Ok(Box::new(ZipEntryReader::new(archive, entry.clone(), zip)?))
            }
        }
    }

    /// A handle that opens the export's media files.
    pub fn media(&self) -> Result<Media> {
        match self {
            Input::File { base, .. } | Input::Html { base, .. } => Ok(Media::Dir(base.clone())),
            // Bot API attachments are file ids, an e-mail's are inside it.
            Input::BotApi { path } | Input::Eml { path } | Input::Package { zip: path } => Ok(
                Media::Dir(path.parent().map(Path::to_path_buf).unwrap_or_default()),
            ),
            Input::Zip { zip, base, .. } => {
                let f = File::open(zip).map_err(|e| Error::io(zip, e))?;
                let archive = zip::ZipArchive::new(BufReader::new(f))
                    .map_err(|e| Error::input(zip, format!("not a readable zip archive: {e}")))?;
                Ok(Media::Zip {
                    archive: Box::new(archive),
                    base: base.clone(),
                    zip: zip.clone(),
                })
            }
        }
    }
}

/// Refuses a file of an export directory that is a symbolic link: what an
/// export holds is read from inside it, never through a link.
pub(crate) fn refuse_link(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::input(
            path,
            "is a symbolic link: not followed (nothing outside the export is read)",
        )),
        _ => Ok(()),
    }
}

/// The UTF-8 byte-order mark.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A reader that drops a byte-order mark at the start of its input.
struct SkipBom<R> {
    inner: R,
    /// The first bytes, until they are known not to be (all of) a mark.
    head: Vec<u8>,
    started: bool,
}

impl<R: Read> SkipBom<R> {
    fn new(inner: R) -> Self {
        SkipBom {
            inner,
            head: Vec::new(),
            started: false,
        }
    }
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.started {
            self.started = true;
            let mut first = [0u8; 3];
            let mut n = 0;
            while n < 3 {
                match self.inner.read(&mut first[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if &first[..n] != BOM {
                self.head = first[..n].to_vec();
            }
        }
        if !self.head.is_empty() {
            let k = buf.len().min(self.head.len());
            buf[..k].copy_from_slice(&self.head[..k]);
            self.head.drain(..k);
            return Ok(k);
        }
        self.inner.read(buf)
    }
}

/// Reads one zip entry as a stream. The zip crate's entry reader borrows its
/// archive, so a helper thread owns both and hands decompressed chunks over a
/// bounded channel: memory stays at a few chunks whatever the entry's size.
pub struct ZipEntryReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ZipEntryReader {
    fn new(
        mut archive: zip::ZipArchive<BufReader<File>>,
        entry: String,
        zip: &Path,
    ) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::io::Result<Vec<u8>>>(8);
        archive
            .by_name(&entry)
            .map_err(|e| Error::input(zip, format!("cannot open {entry}: {e}")))?;
        std::thread::spawn(move || {
            let mut file = match archive.by_name(&entry) {
                Ok(f) => f,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e)));
                    return;
                }
            };
            loop {
                let mut buf = vec![0u8; 256 * 1024];
                match file.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(buf)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        Ok(ZipEntryReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        })
    }
}

impl Read for ZipEntryReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Opens the media files an export refers to.
pub enum Media {
    Dir(PathBuf),
    Zip {
        archive: Box<zip::ZipArchive<BufReader<File>>>,
        base: String,
        zip: PathBuf,
    },
}

/// Why a media path cannot be read.
#[derive(Debug)]
pub enum MediaError {
    /// The path tries to leave the export (absolute, or with `..`).
    Outside,
    /// The path passes through a symbolic link (the part named).
    Link(String),
    /// What the path names is not a regular file (its kind).
    NotAFile(&'static str),
    Missing,
    Unreadable(String),
}

impl MediaError {
    pub fn reason(&self, rel: &str) -> String {
        match self {
            MediaError::Outside => format!("path '{rel}' points outside the export: not read"),
            MediaError::Link(at) if at == rel => format!(
                "file '{rel}' is a symbolic link: not followed (nothing outside the export is read)"
            ),
            MediaError::Link(at) => format!(
                "path '{rel}' passes through the symbolic link '{at}': not followed (nothing outside the export is read)"
            ),
            MediaError::NotAFile(kind) => {
                format!("path '{rel}' is {kind}, not a regular file: not read")
            }
            MediaError::Missing => format!("file '{rel}' is named by the export but absent"),
            MediaError::Unreadable(e) => format!("file '{rel}' could not be read: {e}"),
        }
    }
}

impl From<inside::Refused> for MediaError {
    fn from(r: inside::Refused) -> MediaError {
        match r {
            inside::Refused::Missing => MediaError::Missing,
            inside::Refused::Link(at) => MediaError::Link(at),
            inside::Refused::NotAFile(kind) => MediaError::NotAFile(kind),
            inside::Refused::Io(e) => MediaError::Unreadable(e),
        }
    }
}

/// Accepts only plain relative paths that stay inside the export.
fn safe_relative(rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty() || rel.contains('\0') {
        return None;
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// A media file found (`Media::open`), to be read with `Media::read`.
pub enum MediaFile {
    File {
        file: File,
        size: u64,
        path: PathBuf,
    },
    /// The name of an entry of the zip archive, looked up when read.
    Entry(String),
}

impl MediaFile {
    /// Whether reading it now would not wait for the disk (zip entries are
    /// read from the archive as it is: always).
    pub fn cached(&self) -> bool {
        match self {
            MediaFile::File { file, .. } => crate::pagecache::cached(file),
            MediaFile::Entry(_) => true,
        }
    }

    /// Starts reading it into the page cache in the background.
    pub fn fetch(&self) {
        if let MediaFile::File { file, size, .. } = self {
            crate::pagecache::fetch(file, *size);
        }
    }
}

impl Media {
    /// Finds the media file `rel` (a file of a directory export is opened).
    pub fn open(&self, rel: &str) -> std::result::Result<MediaFile, MediaError> {
        let safe = safe_relative(rel).ok_or(MediaError::Outside)?;
        match self {
            Media::Dir(base) => {
                let file = inside::open(base, &safe)?;
                let size = file
                    .metadata()
                    .map_err(|e| MediaError::Unreadable(e.to_string()))?
                    .len();
                Ok(MediaFile::File {
                    file,
                    size,
                    path: base.join(&safe),
                })
            }
            Media::Zip { base, .. } => Ok(MediaFile::Entry(format!(
                "{base}{}",
                safe.to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/")
            ))),
        }
    }

    /// Calls `f` with a reader of a media file, its length and the path to
    /// name in errors.
    pub fn read<T>(
        &mut self,
        found: MediaFile,
        f: impl FnOnce(&mut dyn Read, &Path, Option<u64>) -> Result<T>,
    ) -> std::result::Result<Result<T>, MediaError> {
        match (found, self) {
            (
                MediaFile::File {
                    mut file,
                    size,
                    path,
                },
                _,
            ) => Ok(f(&mut file, &path, Some(size))),
            (MediaFile::Entry(name), Media::Zip { archive, zip, base }) => {
                let what = PathBuf::from(format!("{}!{}", zip.display(), name));
                match archive.by_name(&name) {
                    // A link's entry holds its target's name, not content.
                    Ok(entry) if entry.is_symlink() => Err(MediaError::Link(
                        name.strip_prefix(base.as_str())
                            .unwrap_or(&name)
                            .to_string(),
                    )),
                    Ok(entry) if entry.is_dir() => Err(MediaError::NotAFile("a directory")),
                    Ok(mut entry) => {
                        let size = entry.size();
                        Ok(f(&mut entry, &what, Some(size)))
                    }
                    Err(zip::result::ZipError::FileNotFound) => Err(MediaError::Missing),
                    Err(e) => Err(MediaError::Unreadable(e.to_string())),
                }
            }
            (MediaFile::Entry(_), Media::Dir(_)) => Err(MediaError::Missing),
        }
    }
}

/// The export JSON files the parsers' tests run over: the bundled fixtures
/// and the real samples in `../shared/samples/telegram-export`, which must
/// be there when `CI` is set (elsewhere they are skipped, with a message).
#[cfg(test)]
pub(crate) fn test_exports() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        root.join("fixtures/exports/full-account/result.json"),
        root.join("fixtures/exports/single-chat/result.json"),
    ];
    let samples = root.join("../shared/samples/telegram-export");
    match std::fs::read_dir(&samples) {
        Ok(rd) => files.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json")),
        ),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!(
                "{}: {e} (the samples are required when CI is set)",
                samples.display()
            )
        }
        Err(_) => eprintln!("skipping the samples: {} is missing", samples.display()),
    }
    files
}

/// The index of the first byte at or after `from` for which `stop` holds, or
/// the length: the end of a run that a scanner copies or skips whole.
pub(crate) fn run_end(bytes: &[u8], from: usize, stop: impl Fn(u8) -> bool) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| stop(b))
        .map_or(bytes.len(), |k| from + k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_paths_cannot_leave_the_export() {
        assert!(safe_relative("photos/a b (1).jpg").is_some());
        assert!(safe_relative("./files/x").is_some());
        for bad in ["../x", "photos/../../x", "/etc/passwd", "", "a\0b"] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
    }
}
