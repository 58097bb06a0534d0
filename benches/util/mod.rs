//! Helpers shared by the benches (each bench is its own binary).

/// The process's peak resident set size so far, in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Bytes under `path` as the disk holds them (allocated blocks): a file's,
/// or those of every file in a directory tree.
#[allow(dead_code)]
pub fn dir_bytes(path: &std::path::Path) -> u64 {
    // What the disk holds: redb's file has unallocated stretches.
    sum_files(path, &|m| std::os::unix::fs::MetadataExt::blocks(m) * 512)
}

/// `size` summed over the file under `path`, or every file in its tree.
fn sum_files(path: &std::path::Path, size: &dyn Fn(&std::fs::Metadata) -> u64) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|d| d.flatten().map(|e| sum_files(&e.path(), size)).sum())
            .unwrap_or(0),
        Ok(m) => size(&m),
        Err(_) => 0,
    }
}

/// The lengths of the files under `path` (what an export holds, whatever
/// the blocks they take).
#[allow(dead_code)]
pub fn content_bytes(path: &std::path::Path) -> u64 {
    sum_files(path, &|m| m.len())
}

/// Bytes this process has written so far (Linux `/proc/self/io`):
/// `write_bytes` (sent to the disk or its page cache as dirty pages) and
/// `wchar` (passed to write calls), in MiB.
#[allow(dead_code)]
pub fn written_mib() -> (f64, f64) {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let get = |key: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|b| b / (1024.0 * 1024.0))
            .unwrap_or(f64::NAN)
    };
    (get("write_bytes:"), get("wchar:"))
}

/// CPU time per thread name, sampled every 50 ms from `/proc/self/task`
/// (Linux) by [`RssSampler`]: a thread that exits keeps its last sample.
/// Seconds of user and system time, summed over the threads of each name.
#[allow(dead_code)]
pub type ThreadCpu = std::collections::BTreeMap<String, (f64, f64)>;

fn sample_threads(seen: &mut std::collections::HashMap<u64, (String, u64, u64)>) {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for e in dir.flatten() {
        let Ok(tid) = e.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        // After the name: state (field 3), ..., utime (14), stime (15).
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let tick = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        seen.insert(tid, (name, tick(11), tick(12)));
    }
}

/// Prints CPU seconds per thread name, busiest first.
#[allow(dead_code)]
pub fn print_cpu(what: &str, cpu: &ThreadCpu) {
    let mut rows: Vec<_> = cpu.iter().filter(|(_, (u, s))| u + s >= 0.05).collect();
    rows.sort_by(|a, b| (b.1.0 + b.1.1).total_cmp(&(a.1.0 + a.1.1)));
    let total: f64 = rows.iter().map(|(_, (u, s))| u + s).sum();
    let list: Vec<String> = rows
        .iter()
        .map(|(n, (u, s))| format!("{n} {u:.1}+{s:.1}"))
        .collect();
    println!(
        "  {what:<19} CPU {total:.1} s (user+system by thread): {}",
        list.join(", ")
    );
}

/// Samples `RssAnon` and `RssFile` (Linux) every 50 ms on a thread and keeps
/// the peak of each: `VmHWM` counts pages of memory-mapped files (the search
/// index) too, which the kernel can drop; the anonymous peak is the memory
/// the process really needs.
#[allow(dead_code)]
pub struct RssSampler {
    peaks: std::sync::Arc<[std::sync::atomic::AtomicU64; 2]>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<ThreadCpu>>,
}

#[allow(dead_code)]
impl RssSampler {
    pub fn start() -> RssSampler {
        use std::sync::atomic::Ordering::Relaxed;
        let peaks = std::sync::Arc::new([
            std::sync::atomic::AtomicU64::new(0),
            std::sync::atomic::AtomicU64::new(0),
        ]);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (p, s) = (peaks.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut seen = std::collections::HashMap::new();
            sample_threads(&mut seen);
            let base = seen.clone();
            while !s.load(Relaxed) {
                sample_threads(&mut seen);
                let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
                for (i, key) in ["RssAnon:", "RssFile:"].iter().enumerate() {
                    let kb = status
                        .lines()
                        .find_map(|l| l.strip_prefix(key))
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                        .unwrap_or(0);
                    p[i].fetch_max(kb, Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            sample_threads(&mut seen);
            // Clock ticks are 1/100 s on Linux.
            let mut cpu = ThreadCpu::new();
            for (tid, (name, mut user, mut sys)) in seen {
                if let Some((_, u0, s0)) = base.get(&tid) {
                    user -= u0;
                    sys -= s0;
                }
                let e = cpu.entry(name).or_default();
                e.0 += user as f64 / 100.0;
                e.1 += sys as f64 / 100.0;
            }
            cpu
        });
        RssSampler {
            peaks,
            stop,
            thread: Some(thread),
        }
    }

    /// Peak anonymous and file-backed RSS, in MiB.
    pub fn finish(self) -> (f64, f64) {
        let (anon, file, _) = self.finish_with_cpu();
        (anon, file)
    }

    /// Peak anonymous and file-backed RSS in MiB, and CPU time per thread
    /// name since the sampler started.
    pub fn finish_with_cpu(mut self) -> (f64, f64, ThreadCpu) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stop.store(true, Relaxed);
        let cpu = self
            .thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        (
            self.peaks[0].load(Relaxed) as f64 / 1024.0,
            self.peaks[1].load(Relaxed) as f64 / 1024.0,
            cpu,
        )
    }
}

/// The benches' generated export: 200 chats, 5% of messages with a file of
/// up to 16 KiB, a fixed seed.
#[allow(dead_code)] // not every bench uses every helper
pub fn spec(messages: u64) -> tgvault::synth::SynthSpec {
    tgvault::synth::SynthSpec {
        messages,
        chats: 200,
        attachment_permille: 50,
        max_attachment_bytes: 16 * 1024,
        seed: 42,
    }
}

/// Imports `export` with the index following, as `tgvault import` does.
#[allow(dead_code)]
pub fn import_indexed(
    archive: &tgvault::store::Archive,
    export: &std::path::Path,
) -> tgvault::report::ImportReport {
    let mut opts = tgvault::import::ImportOptions::new(tgvault::mapping::Mapping::default());
    opts.custodian_address = Some("custodian@corp.example".into());
    let clock = || 0i64;
    let ctx = tgvault::import::RunContext {
        actor: "bench".into(),
        args: vec![],
        clock: &clock,
    };
    let mut index = tgvault::index::Index::open(archive).unwrap();
    let report = index
        .follow(archive, |tell| {
            opts.committed = Some(tell);
            tgvault::import::import(archive, &[export.to_path_buf()], &opts, &ctx)
        })
        .unwrap();
    index.close().unwrap();
    report
}

/// The value after `--name` on the command line.
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Runs `tgvault --archive ARCHIVE ARGS...` (the bench's build) and gives
/// its standard output; a failure ends the bench with what it printed.
#[allow(dead_code)] // not every bench uses it
pub fn tgvault(archive: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tgvault"))
        .arg("--archive")
        .arg(archive)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tgvault {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a single-message export carrying one `mib` MiB file.
#[allow(dead_code)] // not every bench uses it
pub fn write_big(dir: &std::path::Path, mib: u64) {
    use std::io::Write;
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("files/big.bin")).unwrap());
    let mut block = vec![0u8; 1 << 20];
    for i in 0..mib {
        for (j, b) in block.iter_mut().enumerate() {
            *b = (i as usize * 31 + j * 7) as u8;
        }
        f.write_all(&block).unwrap();
    }
    f.flush().unwrap();
    std::fs::write(
        dir.join("result.json"),
        format!(
            r#"{{"name":"Big","type":"private_group","id":1,"messages":[{{"id":1,"type":"message","date_unixtime":"1700000000","from":"A","from_id":"user1","file":"files/big.bin","file_name":"big.bin","file_size":{},"text":"big file"}}]}}"#,
            mib << 20
        ),
    )
    .unwrap();
}

// Measure with the allocator the `tgvault` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Flushes dirty pages to disk (`sync`), so that a timed phase does not pay
/// for the writeback of the one before it: without it, runs of the same
/// import differed by up to 25%.
#[allow(dead_code)]
pub fn settle() {
    let _ = std::process::Command::new("sync").status();
}
