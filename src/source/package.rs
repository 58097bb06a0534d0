//! TeleMessage delivery packages: a ZIP of EML files and a `.mf` manifest,
//! inside the ZIP or beside it (the ZIP's name with `.mf` for `.zip`). The
//! manifest's layout is not public: it is read as a `Count: N` line, the
//! EML file names one per line, and other `Key: value` lines kept as they
//! are. A package whose manifest does not hold (the count differs from the
//! EML files, a listed file is missing or empty) is refused whole.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

type Zip = zip::ZipArchive<BufReader<File>>;

/// A package's manifest.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub count: Option<u64>,
    pub files: Vec<String>,
    pub other: BTreeMap<String, String>,
}

impl Manifest {
    pub fn parse(text: &str) -> Manifest {
        let mut m = Manifest::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if line.to_ascii_lowercase().ends_with(".eml") {
                m.files.push(line.to_string());
            } else if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("count") {
                    m.count = v.parse().ok();
                } else {
                    m.other.insert(k.to_string(), v.to_string());
                }
            }
        }
        m
    }
}

fn open(path: &Path) -> Result<Zip> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    zip::ZipArchive::new(BufReader::new(f))
        .map_err(|e| Error::input(path, format!("not a readable zip archive: {e}")))
}

fn is_eml(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".eml")
}

/// The EML entries, in the package's order.
fn emls(zip: &Zip) -> Vec<String> {
    let mut out: Vec<String> = zip
        .file_names()
        .flatten()
        .filter(|n| is_eml(n))
        .map(|n| n.into_owned())
        .collect();
    out.sort();
    out
}

/// The manifest: a `.mf` entry, else the file beside the zip.
fn manifest(path: &Path, zip: &mut Zip) -> Result<(Manifest, String)> {
    let inside = zip
        .file_names()
        .flatten()
        .find(|n| n.to_ascii_lowercase().ends_with(".mf"))
        .map(|n| n.into_owned());
    if let Some(name) = inside {
        let mut text = String::new();
        zip.by_name(&name)
            .map_err(|e| Error::input(path, format!("{name}: {e}")))?
            .take(1 << 20)
            .read_to_string(&mut text)
            .map_err(|e| Error::input(path, format!("{name}: not a readable manifest: {e}")))?;
        return Ok((Manifest::parse(&text), name));
    }
    let beside: PathBuf = path.with_extension("mf");
    match std::fs::read_to_string(&beside) {
        Ok(text) => Ok((Manifest::parse(&text), beside.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::input(
            path,
            format!(
                "a delivery package without its manifest (no .mf inside, no {} beside it): refused whole",
                beside.display()
            ),
        )),
        Err(e) => Err(Error::io(&beside, e)),
    }
}

/// Checks a package against its manifest; how many EML files it holds.
pub fn check(path: &Path) -> Result<u64> {
    let mut zip = open(path)?;
    let (m, where_) = manifest(path, &mut zip)?;
    let found = emls(&zip);
    let refuse = |why: String| {
        Err(Error::input(
            path,
            format!("{why} (manifest {where_}): the package is refused whole"),
        ))
    };
    match m.count {
        None => return refuse("the manifest has no Count line".into()),
        Some(n) if n != found.len() as u64 => {
            return refuse(format!(
                "the manifest's Count is {n} but the package holds {} EML files",
                found.len()
            ));
        }
        Some(_) => {}
    }
    for listed in &m.files {
        let entry = found
            .iter()
            .find(|f| *f == listed || f.rsplit('/').next() == Some(listed.as_str()));
        let Some(entry) = entry else {
            return refuse(format!("{listed} is listed but not in the package"));
        };
        let size = zip.by_name(entry).map(|f| f.size()).unwrap_or(0);
        if size == 0 {
            return refuse(format!("{listed} is empty"));
        }
    }
    Ok(found.len() as u64)
}

/// Calls `f` with each EML's name and bytes, in the package's order.
pub fn read(path: &Path, f: &mut dyn FnMut(&str, Vec<u8>) -> Result<()>) -> Result<()> {
    let mut zip = open(path)?;
    for name in emls(&zip) {
        let mut bytes = Vec::new();
        zip.by_name(&name)
            .map_err(|e| Error::input(path, format!("{name}: {e}")))?
            .read_to_end(&mut bytes)
            .map_err(|e| Error::input(path, format!("{name}: {e}")))?;
        f(&name, bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_reads_its_count_files_and_the_rest() {
        let m = Manifest::parse("Count: 2\r\nCreated: 2026-12-01\r\n a.eml\r\nb.EML\r\n\r\n");
        assert_eq!(m.count, Some(2));
        assert_eq!(m.files, ["a.eml", "b.EML"]);
        assert_eq!(m.other["Created"], "2026-12-01");
        assert_eq!(Manifest::parse("Count: x").count, None);
    }
}
