//! The load files review platforms read: `Manifest.xml` in EDRM XML 1.2 and a
//! Concordance DAT file (field separator 0x14, quote U+00FE, UTF-8, CRLF).

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// One exported copy, as the load files describe it.
pub struct Doc {
    pub item: String,
    pub mailbox: String,
    pub folder: String,
    pub subject: String,
    pub from: String,
    pub to: String,
    pub sent: Option<i64>,
    /// Relative to the package.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub attachments: Vec<Attached>,
}

pub struct Attached {
    pub name: String,
    pub mime: String,
    pub size: u64,
    pub sha256: String,
}

/// XML attribute text: the five entities, and control characters (not
/// allowed in XML 1.0) as spaces.
fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in super::neutral::visible(s).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

use crate::time::iso;

fn doc_id(i: usize) -> String {
    format!("TGV{:08}", i + 1)
}

pub fn write_manifest(path: &Path, docs: &[Doc], query: &str) -> Result<()> {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n");
    x.push_str("<Root MajorVersion=\"1\" MinorVersion=\"2\" Description=\"tgvault eDiscovery export\" Locale=\"en-US\" DataInterchangeType=\"Update\">\r\n");
    x.push_str(&format!(
        "  <Batch name=\"{}\">\r\n    <Documents>\r\n",
        attr(query)
    ));
    let tag = |x: &mut String, name: &str, ty: &str, value: &str| {
        x.push_str(&format!(
            "          <Tag TagName=\"{name}\" TagDataType=\"{ty}\" TagValue=\"{}\"/>\r\n",
            attr(value)
        ));
    };
    let mut relationships = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let id = doc_id(i);
        x.push_str(&format!(
            "      <Document DocID=\"{id}\" DocType=\"Message\" MimeType=\"message/rfc822\">\r\n        <Tags>\r\n"
        ));
        tag(&mut x, "#ItemIdentity", "Text", &d.item);
        tag(&mut x, "#From", "Text", &d.from);
        tag(&mut x, "#To", "Text", &d.to);
        tag(&mut x, "#Subject", "Text", &d.subject);
        if let Some(t) = d.sent {
            tag(&mut x, "#DateSent", "DateTime", &iso(t));
        }
        x.push_str(
            "        </Tags>\r\n        <Files>\r\n          <File FileType=\"Native\">\r\n",
        );
        let (dir, name) = match d.path.rsplit_once('/') {
            Some((dir, name)) => (dir, name),
            None => ("", d.path.as_str()),
        };
        x.push_str(&format!(
            "            <ExternalFile FilePath=\"{}\" FileName=\"{}\" FileSize=\"{}\" Hash=\"{}\" HashType=\"SHA256\"/>\r\n",
            attr(dir),
            attr(name),
            d.size,
            d.sha256
        ));
        x.push_str("          </File>\r\n        </Files>\r\n        <Locations>\r\n          <Location>\r\n");
        x.push_str(&format!(
            "            <Custodian>{}</Custodian>\r\n            <LocationURI>{}</LocationURI>\r\n",
            attr(&d.mailbox),
            attr(&format!("{}/{}", d.mailbox, d.folder))
        ));
        x.push_str("          </Location>\r\n        </Locations>\r\n      </Document>\r\n");
        for (j, a) in d.attachments.iter().enumerate() {
            let child = format!("{id}.{:04}", j + 1);
            let mime = if a.mime.is_empty() {
                "application/octet-stream"
            } else {
                a.mime.as_str()
            };
            x.push_str(&format!(
                "      <Document DocID=\"{child}\" DocType=\"File\" MimeType=\"{}\">\r\n        <Tags>\r\n",
                attr(mime)
            ));
            tag(&mut x, "#FileName", "Text", &a.name);
            tag(&mut x, "#FileSize", "Integer", &a.size.to_string());
            tag(&mut x, "#SHA256", "Text", &a.sha256);
            x.push_str("        </Tags>\r\n      </Document>\r\n");
            relationships.push((id.clone(), child));
        }
    }
    x.push_str("    </Documents>\r\n    <Relationships>\r\n");
    for (parent, child) in relationships {
        x.push_str(&format!(
            "      <Relationship Type=\"Attachment\" ParentDocId=\"{parent}\" ChildDocId=\"{child}\"/>\r\n"
        ));
    }
    x.push_str("    </Relationships>\r\n  </Batch>\r\n</Root>\r\n");
    std::fs::write(path, x).map_err(|e| Error::io(path, e))
}

pub fn write_dat(path: &Path, docs: &[Doc]) -> Result<()> {
    const SEP: char = '\u{14}';
    const QUOTE: char = '\u{FE}';
    let field = |s: &str| -> String {
        // Neither delimiter may appear inside a value; line breaks become
        // Concordance's newline placeholder (0xAE).
        let clean: String = super::neutral::cell(s)
            .chars()
            .map(|c| match c {
                SEP | QUOTE => ' ',
                '\r' => ' ',
                '\n' => '\u{AE}',
                c => c,
            })
            .collect();
        format!("{QUOTE}{clean}{QUOTE}")
    };
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::new(f);
    let header = [
        "BEGDOC",
        "ENDDOC",
        "ITEMID",
        "CUSTODIAN",
        "FOLDER",
        "FROM",
        "TO",
        "SUBJECT",
        "DATESENT",
        "SHA256",
        "NATIVEPATH",
        "ATTACHCOUNT",
    ];
    let line = |vals: Vec<String>| -> String {
        let mut l = vals
            .iter()
            .map(|v| field(v))
            .collect::<Vec<_>>()
            .join(&SEP.to_string());
        l.push_str("\r\n");
        l
    };
    let io = |e| Error::io(path, e);
    w.write_all(line(header.iter().map(|h| h.to_string()).collect()).as_bytes())
        .map_err(io)?;
    for (i, d) in docs.iter().enumerate() {
        let id = doc_id(i);
        w.write_all(
            line(vec![
                id.clone(),
                id,
                d.item.clone(),
                d.mailbox.clone(),
                d.folder.clone(),
                d.from.clone(),
                d.to.clone(),
                d.subject.clone(),
                d.sent.map(iso).unwrap_or_default(),
                d.sha256.clone(),
                d.path.clone(),
                d.attachments.len().to_string(),
            ])
            .as_bytes(),
        )
        .map_err(io)?;
    }
    w.flush().map_err(io)
}
