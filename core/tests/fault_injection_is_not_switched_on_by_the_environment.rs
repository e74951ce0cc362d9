//! The log's fault-injection hook exists only for the crate's own tests
//! (feature `failpoints`): the broker binary no longer reads an
//! environment variable that would make every write of a shard fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::{ConnectOptions, Event};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::Properties;

#[test]
fn the_old_fault_variable_does_not_fail_writes() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["--listen", &addr.to_string(), "--cores", "1"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RINGMQ_LOG", "warn")
        .env("RINGMQ_FAULT_LOG_SHARD", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("broker binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        match Connection::connect(addr, &ConnectOptions::default()) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("broker did not listen: {e}"),
        }
    };
    c.set_timeout(Some(Duration::from_secs(10))).unwrap();
    let ch = c.open_channel().unwrap();
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: "durable".into(),
        durable: true,
        ..m::QueueDeclare::default()
    })
    .unwrap();
    c.call(Message::ConfirmSelect(ch)).unwrap();
    c.publish(
        ch,
        m::Publish {
            routing_key: "durable".into(),
            properties: Properties {
                delivery_mode: Some(2),
                ..Properties::default()
            },
            body: Bytes::from_static(b"kept"),
            ..m::Publish::default()
        },
    )
    .unwrap();
    c.flush().unwrap();
    let confirm = loop {
        match c.next_event(Some(Duration::from_secs(10))).unwrap() {
            Some(Event::Confirm(_, conf)) => break conf,
            Some(_) => {}
            None => panic!("no confirm"),
        }
    };
    assert!(!confirm.nack, "the write was made to fail: {confirm:?}");
    let _ = child.kill();
    let _ = child.wait();
}
