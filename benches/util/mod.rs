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

/// The value after `--name` on the command line.
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
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
