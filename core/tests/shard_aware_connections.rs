//! Shard-aware connections (`server.shard_port_base`): each shard also
//! listens on a port of its own, `HelloOk` names the serving shard, the
//! shard count and the port base, and a client that connects to the port
//! of a queue's shard (by the protocol's placement hash) is served by that
//! shard. Without the option nothing extra listens and `HelloOk` says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use ringmq_protocol::message as m;
use ringmq_protocol::placement::{shard_of, shard_port};

fn connect(addr: SocketAddr) -> Connection {
    let mut c = Connection::connect(addr, &ConnectOptions::default()).expect("connect");
    c.set_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

#[test]
fn each_shard_serves_its_own_port_and_hello_ok_says_where() {
    let base = two_free_ports();
    let broker = TestBroker::with(|c| c.server.shard_port_base = base);
    let (q0, q1) = names_on_each_shard("aware-");
    for (shard, queue) in [(0u16, &q0), (1, &q1)] {
        assert_eq!(
            shard_of("/", queue, 2),
            shard,
            "the client's hash is the broker's"
        );
        let port = shard_port(base, shard).unwrap();
        let mut c = connect(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(
            (c.server.shard, c.server.shards, c.server.shard_port_base),
            (shard, 2, base)
        );
        // Work on the shard's own queue goes through as anywhere.
        let ch = c.open_channel().unwrap();
        declare_durable(&mut c, ch, queue);
        publish_all(&mut c, ch, "", queue, &["one", "two"]);
        assert_eq!(drain(&mut c, ch, queue), ["one", "two"]);
    }
    // The shared port still serves, on either shard, and says the same.
    let c = broker.connect();
    assert!(c.server.shard < 2);
    assert_eq!((c.server.shards, c.server.shard_port_base), (2, base));
}

#[test]
fn without_shard_ports_hello_ok_has_no_base() {
    let broker = TestBroker::start();
    let c = broker.connect();
    assert_eq!((c.server.shards, c.server.shard_port_base), (2, 0));
    assert!(c.server.shard < 2);
}

#[test]
fn a_taken_shard_port_stops_the_start_naming_it() {
    let base = two_free_ports();
    let _taken = TcpListener::bind(("127.0.0.1", base + 1)).unwrap();
    let mut config = ringmq_core::Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.cores = 2;
    config.server.pin_cores = false;
    config.server.shard_port_base = base;
    let data = tempfile::tempdir().unwrap();
    config.storage.data_dir = data.path().to_owned();
    let err = match ringmq_core::Broker::start(config) {
        Ok(_) => panic!("started with its shard port taken"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains(&format!("127.0.0.1:{}", base + 1)) && err.contains("own port"),
        "{err}"
    );
}

#[test]
fn hello_ok_fields_travel() {
    // Old clients ignore them; the codec carries them both ways.
    let ok = m::HelloOk {
        shard: 1,
        shards: 2,
        shard_port_base: 5690,
        ..m::HelloOk::default()
    };
    let mut out = bytes::BytesMut::new();
    ringmq_protocol::Encoder::new().encode(&mut out, 1, &m::Message::HelloOk(ok.clone()));
    let mut dec = ringmq_protocol::FrameDecoder::new(1 << 20);
    dec.extend(&out);
    let f = dec.next_frame().unwrap().unwrap();
    assert_eq!(m::Message::decode(&f).unwrap(), m::Message::HelloOk(ok));
}
