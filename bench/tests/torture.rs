//! `ringmq-bench torture --cycles 10` against the real `ringmq` and
//! `ringmq-gateway` binaries of this build (target/debug, found next to
//! this test's own executable; the workspace's `cargo test` builds them):
//! ten kill -9 cycles under confirmed load must lose no confirmed message,
//! keep every publisher's order within each queue, and bring back no
//! message whose ack was durable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the run may take before the test gives up on it.
const HANG_LIMIT: Duration = Duration::from_secs(180);

/// The directory of the workspace's binaries: this test runs from
/// `target/<profile>/deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps directory");
    deps.parent().expect("profile directory").to_owned()
}

fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is not built: run the workspace's tests (`cargo test --workspace` builds every \
         binary) or `cargo build --workspace` first",
        path.display()
    );
    path
}

#[test]
fn ten_kill_9_cycles_lose_nothing_confirmed() {
    let (broker, gateway) = (binary("ringmq"), binary("ringmq-gateway"));
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq-bench"))
        .args(["torture", "--cycles", "10", "--seed", "20261126", "--quiet"])
        .arg("--broker")
        .arg(&broker)
        .arg("--gateway")
        .arg(&gateway)
        .arg("--data-dir")
        .arg(dir.path().join("run"))
        .arg("--report")
        .arg(&report)
        .stdout(Stdio::piped())
        .spawn()
        .expect("ringmq-bench starts");
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > HANG_LIMIT {
            let _ = child.kill();
            panic!("torture did not finish within {HANG_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    println!("wall time {:?}", start.elapsed());
    let json = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report ({e}); exit {:?}; output:\n{text}", out.status));
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    let count = |key: &str| r["counts"][key].as_u64().unwrap();
    assert_eq!(r["aborted"], serde_json::Value::Null, "{text}");
    assert_eq!(r["cycles"].as_u64(), Some(10), "{text}");
    assert_eq!(count("lost"), 0, "{text}");
    assert_eq!(count("order_violations"), 0, "{text}");
    assert_eq!(count("acked_came_back"), 0, "{text}");
    assert_eq!(r["recovery"]["count"].as_u64(), Some(10), "{text}");
    assert!(
        count("confirmed") > 1000 && count("acks_durable") > 100,
        "too little load to mean anything:\n{text}"
    );
}
