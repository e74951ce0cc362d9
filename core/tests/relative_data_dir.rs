//! `ringmq --data-dir ./data`, as `run.sh` starts it: a relative data
//! directory works (glommio opens the shards' log directories by absolute
//! path only; the broker resolves the path against its working directory
//! first), and a persistent message survives a restart in it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use ringmq_protocol::Properties;

fn start(cwd: &std::path::Path, addr: SocketAddr) -> Child {
    let args = ["--data-dir", "./data", "--management-listen", "off"];
    common::process::start_broker(addr, &args, Some(cwd))
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
