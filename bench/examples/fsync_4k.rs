//! The disk's baseline for confirm latency: append 4 KiB (or `size`) and fdatasync,
//! repeatedly, in a directory on the disk under test; prints p50/p90/p99/
//! p99.9/max. `cargo run --release -p ringmq-bench --example fsync_4k -- [dir] [count] [size]`
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "./data".into()));
    let count: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4096);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("fsync-probe-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0x5au8; size];
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    for _ in 0..count {
        let t = Instant::now();
        f.write_all(&block).unwrap();
        f.sync_data().unwrap();
        hist.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{size} B write + fdatasync x{count} in {}: p50 {:.0} us  p90 {:.0} us  p99 {:.0} us  p99.9 {:.0} us  max {:.0} us",
        dir.display(),
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
}
