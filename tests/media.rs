//! Media files that are not in the page cache: the converting thread starts
//! their reads and holds the items behind them back instead of waiting for
//! each file. The archive must come out exactly as when every file is
//! cached: the same items, filed in the export's order, with the same
//! attachment contents.

use crate::common::*;
use std::fs::File;
use std::path::{Path, PathBuf};

fn media_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            media_files(&p, out);
        } else if p.file_name().is_some_and(|n| n != "result.json") {
            out.push(p);
        }
    }
}

/// Every item's id and content hash, in the order the import filed them.
fn filed(dir: &Path) -> Vec<(String, [u8; 32])> {
    let archive = tgvault::store::Archive::open(dir).unwrap();
    let mut items = Vec::new();
    archive
        .for_each_source(|src| {
            let first = &src.rec.versions[0];
            items.push((
                (first.at.pack, first.at.offset),
                src.id.to_string(),
                first.content,
            ));
            Ok(())
        })
        .unwrap();
    items.sort();
    items.into_iter().map(|(_, id, c)| (id, c)).collect()
}

#[test]
fn items_with_media_from_the_disk_are_filed_in_order_and_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    tgvault::synth::write_export(
        &export,
        &tgvault::synth::SynthSpec {
            messages: 4_000,
            chats: 6,
            attachment_permille: 250,
            max_attachment_bytes: 20_000,
            seed: 11,
        },
    )
    .unwrap();
    // Under a low limit of open files: were held items to keep theirs open,
    // a file that could not be opened would be filed as unreadable.
    let import = |dir: &Path| {
        let out = std::process::Command::new("sh")
            .args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\"", bin()])
            .arg("--archive")
            .arg(dir)
            .args(["import", export.to_str().unwrap()])
            .args(["--mailbox", "owner@corp.example", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut files = Vec::new();
    media_files(&export.join("chats"), &mut files);
    assert!(files.len() > 500, "{} media files", files.len());

    // Every file cached: read them all first.
    for f in &files {
        std::fs::read(f).unwrap();
    }
    let warm = tmp.path().join("warm");
    import(&warm);

    // Now out of the cache (written back first: only clean pages go). A
    // probe of a page that is not cached starts reading it, so only every
    // tenth file is probed, to see that this file system lets pages go.
    let mut cold = 0;
    for (i, f) in files.iter().enumerate() {
        let file = File::open(f).unwrap();
        file.sync_all().unwrap();
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
        if i % 10 == 0 {
            cold += usize::from(!tgvault::pagecache::cached(&file));
        }
    }
    if cold == 0 {
        eprintln!(
            "SKIPPED: the file system under {} keeps every page cached; the cold-media import did not run",
            tmp.path().display()
        );
        return;
    }
    let cold_dir = tmp.path().join("cold");
    import(&cold_dir);

    let (a, b) = (filed(&warm), filed(&cold_dir));
    assert_eq!(a.len(), 4_000);
    assert_eq!(a, b);
}
