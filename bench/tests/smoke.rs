//! Regression guard for the harness: a short run over the native protocol
//! and over AMQP (through the gateway), asserting counts only (every
//! message consumed exactly once, every message confirmed), never timing.
//! The broker and gateway run in this process on port 0; the harness is
//! the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};
use std::time::Duration;

use ringmq_core::{Broker, Config};
use ringmq_gateway::{Gateway, GatewayConfig};

struct Servers {
    broker: Option<Broker>,
    gateway: Option<Gateway>,
    native: String,
    amqp: String,
    _data: tempfile::TempDir,
}

impl Servers {
    fn start() -> Servers {
        let data = tempfile::tempdir().expect("data directory");
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.cores = 2;
        config.server.pin_cores = false;
        config.storage.data_dir = data.path().to_owned();
        let broker = Broker::start(config).expect("broker starts");
        let gateway = Gateway::start(GatewayConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            broker: broker.local_addr(),
            cores: 1,
            pin_cores: false,
            ..GatewayConfig::default()
        })
        .expect("gateway starts");
        Servers {
            native: format!("native://127.0.0.1:{}", broker.local_addr().port()),
            amqp: format!(
                "amqp://guest:guest@127.0.0.1:{}/%2f",
                gateway.local_addr().port()
            ),
            broker: Some(broker),
            gateway: Some(gateway),
            _data: data,
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(g) = self.gateway.take() {
            g.stop();
        }
        if let Some(b) = self.broker.take() {
            b.stop();
        }
    }
}

fn bench(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmq-bench"))
        .args(args)
        .output()
        .expect("runs ringmq-bench");
    eprintln!(
        "$ ringmq-bench {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn smoke(target: &str, extra: &[&str]) {
    let mut args = vec![
        "run",
        "--target",
        target,
        "--messages",
        "2000",
        "--check",
        "-q",
    ];
    args.extend_from_slice(extra);
    let out = bench(&args);
    assert!(out.status.success(), "{target} {extra:?} failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("check      ok"), "{stdout}");
}

#[test]
fn smoke_runs_count_every_message_over_native_and_amqp() {
    let servers = Servers::start();
    let watchdog = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(240));
        eprintln!("smoke test still running after 240 s; aborting");
        std::process::abort();
    });
    for target in [servers.native.as_str(), servers.amqp.as_str()] {
        smoke(target, &[]);
        smoke(
            target,
            &[
                "--confirms",
                "--in-flight",
                "50",
                "--manual-ack",
                "--ack-every",
                "10",
                "--prefetch",
                "100",
                "--publishers",
                "2",
            ],
        );
        smoke(
            target,
            &["--exchange", "fanout", "--queues", "3", "--consumers", "3"],
        );
        smoke(
            target,
            &[
                "--exchange",
                "topic",
                "--bindings",
                "100",
                "--queues",
                "2",
                "--consumers",
                "2",
                "--persistent",
                "--confirms",
                "--manual-ack",
                "--ack-single",
                "--size",
                "1000",
            ],
        );
    }
    // Open loop at a fixed rate writes the summary and .hgrm files.
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    smoke(
        &servers.native,
        &["--rate", "20000", "--name", "paced", "--out", out_dir],
    );
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(files.iter().any(|f| f.ends_with(".json")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with(".e2e.hgrm")), "{files:?}");
    let summary = files.iter().find(|f| f.ends_with(".json")).unwrap();
    let svg = dir.path().join("plot.svg");
    let out = bench(&[
        "plot",
        dir.path().join(summary).to_str().unwrap(),
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<polyline"));
    drop(servers);
    drop(watchdog);
}

#[test]
fn unreachable_targets_and_bad_scenarios_fail_with_one_line() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (args, want) in [
        (
            vec![
                "run",
                "--target",
                &format!("native://127.0.0.1:{port}")[..],
                "--messages",
                "10",
                "-q",
            ],
            "cannot connect to 127.0.0.1",
        ),
        (
            vec![
                "run",
                "--target",
                &format!("amqp://127.0.0.1:{port}/%2f")[..],
                "--messages",
                "10",
                "-q",
            ],
            "cannot connect to 127.0.0.1",
        ),
        (
            vec!["run", "--target", "native://127.0.0.1:1", "--size", "8"],
            "message_size",
        ),
        (vec!["run", "--target", "http://x"], "unknown scheme"),
    ] {
        let out = bench(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
