//! The import report: Purview's admin-log counters per file and in total, plus
//! what was odd about the input. Pure data and rendering; no I/O.
//!
//! Invariant: `available_for_import = imported + partially_imported + skipped +
//! failed + quarantined`, per file and in total.

use serde::{Deserialize, Serialize};
use std::fmt::Write;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Items read from the source.
    pub available_from_source: u64,
    /// Items after fan-out: one per mailbox copy (a quarantined or failed item counts once).
    pub available_for_import: u64,
    pub imported: u64,
    /// Imported, but at least one attachment has no content.
    pub partially_imported: u64,
    /// Already in the archive with the same content.
    pub skipped: u64,
    pub failed: u64,
    /// Mapped to no mailbox: kept in the quarantine.
    pub quarantined: u64,
    /// Of the imported and partially imported: copies that added a new version.
    pub new_versions: u64,
    // What the source held, by kind.
    pub messages: u64,
    pub service_events: u64,
    pub calls: u64,
    pub unsupported: u64,
    /// Deletion events (live capture only).
    pub deletions: u64,
    /// Source records that carry no item (e.g. Bot API callback queries).
    pub not_items: u64,
    pub attachments: u64,
    pub attachments_without_content: u64,
    pub attachment_bytes: u64,
}

impl Counters {
    /// Purview's counters, as an audit entry of a run carries them.
    pub fn audit_counts(&self) -> Vec<(String, u64)> {
        vec![
            ("available_from_source".into(), self.available_from_source),
            ("available_for_import".into(), self.available_for_import),
            ("imported".into(), self.imported),
            ("partially_imported".into(), self.partially_imported),
            ("skipped".into(), self.skipped),
            ("failed".into(), self.failed),
            ("quarantined".into(), self.quarantined),
        ]
    }

    pub fn add(&mut self, o: &Counters) {
        self.available_from_source += o.available_from_source;
        self.available_for_import += o.available_for_import;
        self.imported += o.imported;
        self.partially_imported += o.partially_imported;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.quarantined += o.quarantined;
        self.new_versions += o.new_versions;
        self.messages += o.messages;
        self.service_events += o.service_events;
        self.calls += o.calls;
        self.unsupported += o.unsupported;
        self.deletions += o.deletions;
        self.not_items += o.not_items;
        self.attachments += o.attachments;
        self.attachments_without_content += o.attachments_without_content;
        self.attachment_bytes += o.attachment_bytes;
    }

    /// Whether the Purview invariant holds.
    pub fn balanced(&self) -> bool {
        self.available_for_import
            == self.imported
                + self.partially_imported
                + self.skipped
                + self.failed
                + self.quarantined
    }
}

/// One item that could not be imported (Purview's failure row).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub item: String,
    pub source_user: String,
    pub mailbox: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileStatus {
    Imported,
    /// The file could not be read as a whole; nothing of it was written.
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    pub path: String,
    pub format: String,
    pub status: FileStatus,
    pub counters: Counters,
    pub failures: Vec<Failure>,
    /// What was odd about the input, by kind, with counts (repairs, duplicate ids, ...).
    pub anomalies: Vec<Anomaly>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub what: String,
    pub count: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub run: u64,
    pub files: Vec<FileReport>,
}

impl ImportReport {
    pub fn totals(&self) -> Counters {
        let mut t = Counters::default();
        for f in &self.files {
            t.add(&f.counters);
        }
        t
    }

    pub fn has_errors(&self) -> bool {
        self.files
            .iter()
            .any(|f| matches!(f.status, FileStatus::Failed(_)) || f.counters.failed > 0)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "run": self.run,
            "totals": self.totals(),
            "files": self.files,
        })
    }

    /// The report as a text table, one column per file plus the total.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "import run {}", self.run);
        for f in &self.files {
            let status = match &f.status {
                FileStatus::Imported => "imported".to_string(),
                FileStatus::Failed(e) => format!("FAILED: {e}"),
            };
            let _ = writeln!(out, "  {} [{}] {}", f.path, f.format, status);
        }
        let t = self.totals();
        let rows: [(&str, u64); 18] = [
            ("available from source", t.available_from_source),
            ("available for import", t.available_for_import),
            ("imported", t.imported),
            ("partially imported", t.partially_imported),
            ("skipped (duplicates)", t.skipped),
            ("failed", t.failed),
            ("quarantined", t.quarantined),
            ("  of which new versions", t.new_versions),
            ("messages", t.messages),
            ("service events", t.service_events),
            ("calls", t.calls),
            ("unsupported", t.unsupported),
            ("deletion events", t.deletions),
            ("records with no item", t.not_items),
            ("attachments", t.attachments),
            ("  without content", t.attachments_without_content),
            ("attachment bytes", t.attachment_bytes),
            ("files failed", self.failed_files()),
        ];
        let _ = writeln!(out, "{:<26} {:>12}", "counter", "total");
        for (name, v) in rows {
            let _ = writeln!(out, "{name:<26} {v:>12}");
        }
        for f in &self.files {
            for a in &f.anomalies {
                let _ = writeln!(out, "note: {}: {} ({})", f.path, a.what, a.count);
            }
            for fail in &f.failures {
                let _ = writeln!(
                    out,
                    "failed: {}: item {} user {} mailbox {}: {}",
                    f.path, fail.item, fail.source_user, fail.mailbox, fail.reason
                );
            }
        }
        out
    }

    fn failed_files(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| matches!(f.status, FileStatus::Failed(_)))
            .count() as u64
    }
}
