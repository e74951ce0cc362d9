//! `ringmq --data-dir ./data`, as `run.sh` starts it: a relative data
//! directory works (glommio opens the shards' log directories by absolute
//! path only; the broker resolves the path against its working directory
//! first), and a persistent message survives a restart in it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use ringmq_protocol::Properties;

fn start(cwd: &std::path::Path, addr: SocketAddr) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .current_dir(cwd)
        .args(["--listen", &addr.to_string(), "--data-dir", "./data"])
        .args(["--management-listen", "off", "--prometheus-listen", "off"])
        .env("RINGMQ_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("broker binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Connection::connect(addr, &ConnectOptions::default()).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the broker exited with {status} on a relative data dir");
        }
        assert!(Instant::now() < deadline, "broker did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn a_relative_data_dir_works_across_a_restart() {
    let cwd = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut broker = start(cwd.path(), addr);
    let mut c = Connection::connect(addr, &ConnectOptions::default()).unwrap();
    c.set_timeout(Some(Duration::from_secs(20))).unwrap();
    let ch = c.open_channel().unwrap();
    declare_durable(&mut c, ch, "kept");
    let props = Properties {
        delivery_mode: Some(2),
        ..Properties::default()
    };
    c.publish(ch, publish_props("", "kept", "survives", props))
        .unwrap();
    wait_ready(&mut c, ch, "kept", 1);
    drop(c);
    // A clean stop (SIGTERM) writes what is pending.
    let term = Command::new("kill")
        .arg(broker.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    assert!(broker.wait().unwrap().success());
    assert!(cwd.path().join("data/shard-0").is_dir());

    let mut broker = start(cwd.path(), addr);
    let mut c = Connection::connect(addr, &ConnectOptions::default()).unwrap();
    c.set_timeout(Some(Duration::from_secs(20))).unwrap();
    let ch = c.open_channel().unwrap();
    assert_eq!(get_body(&mut c, ch, "kept").as_deref(), Some("survives"));
    broker.kill().unwrap();
    broker.wait().unwrap();
}
