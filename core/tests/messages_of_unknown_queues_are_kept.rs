//! Nothing is deleted at start-up because metadata is missing. Messages of
//! a queue the metadata says was deleted (an id below its queue id
//! reservation) are dropped at start; messages of a queue it never issued
//! refuse the start, and are still there once the metadata is back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use ringmq_core::{Broker, Config};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::Properties;

fn config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.cores = 2;
    config.server.pin_cores = false;
    config.storage.data_dir = dir.to_owned();
    config
}

/// Three confirmed persistent messages in queue `q`, declared durable
/// (and exclusive if `exclusive`); the broker is stopped, and started and
/// stopped again (so the snapshot holds it all).
fn queue_with_messages(dir: &Path, exclusive: bool) {
    let broker = TestBroker::with(|c| c.storage.data_dir = dir.to_owned());
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: "q".into(),
        durable: true,
        exclusive,
        ..m::QueueDeclare::default()
    })
    .unwrap();
    c.call(Message::ConfirmSelect(ch)).unwrap();
    for body in ["one", "two", "three"] {
        let publish = m::Publish {
            routing_key: "q".into(),
            properties: Properties {
                delivery_mode: Some(2),
                ..Properties::default()
            },
            body: Bytes::from_static(body.as_bytes()),
            ..m::Publish::default()
        };
        c.publish(ch, publish).unwrap();
    }
    c.flush().unwrap();
    let mut confirmed = 0;
    while confirmed < 3 {
        if let Some(ringmq_protocol::client::Event::Confirm(_, conf)) =
            c.next_event(Some(WAIT)).unwrap()
        {
            assert!(!conf.nack);
            confirmed = conf.delivery_tag; // possibly `multiple`
        }
    }
    drop(c);
    broker.stop();
    TestBroker::with(|c| c.storage.data_dir = dir.to_owned()).stop();
}

/// Messages in `q` of a broker started on `dir`, or None without `q`.
fn count_in_q(dir: &Path) -> Option<u32> {
    let broker = TestBroker::with(|c| c.storage.data_dir = dir.to_owned());
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let found = c
        .queue_declare(m::QueueDeclare {
            channel: ch,
            queue: "q".into(),
            durable: true,
            passive: true,
            ..m::QueueDeclare::default()
        })
        .ok()
        .map(|ok| ok.message_count);
    drop(c);
    broker.stop();
    found
}

/// Rewrites the snapshot without the ops `drop` matches (by JSON tag).
fn edit_snapshot(dir: &Path, drop: &[&str]) {
    let path = dir.join("meta/snapshot.json");
    let ops: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let kept: Vec<_> = ops
        .into_iter()
        .filter(|op| !drop.iter().any(|tag| op.get(tag).is_some()))
        .collect();
    std::fs::write(&path, serde_json::to_vec(&kept).unwrap()).unwrap();
}

#[test]
fn messages_of_a_queue_the_metadata_never_issued_refuse_the_start() {
    let dir = tempfile::tempdir().unwrap();
    queue_with_messages(dir.path(), false);
    let meta = dir.path().join("meta");
    let aside = dir.path().join("meta.aside");
    std::fs::rename(&meta, &aside).unwrap();
    let err = match Broker::start(config(dir.path())) {
        Err(e) => e.to_string(),
        Ok(b) => {
            b.stop();
            panic!("started without the metadata of a queue that holds messages");
        }
    };
    assert!(
        err.contains("3 message(s) of queue") && err.contains("never issued"),
        "{err}"
    );
    // Nothing was deleted: with the metadata back, the messages are there.
    std::fs::remove_dir_all(&meta).unwrap();
    std::fs::rename(&aside, &meta).unwrap();
    assert_eq!(count_in_q(dir.path()), Some(3));
}

#[test]
fn messages_of_a_deleted_queue_are_dropped_at_start() {
    for drop in [&["DeclareQueue"][..], &["DeclareQueue", "ReserveQueueIds"]] {
        // The queue's deletion was stored, its QueueDeleted record not yet
        // (or, without a reservation, metadata from an older version).
        let dir = tempfile::tempdir().unwrap();
        queue_with_messages(dir.path(), false);
        let snapshot = dir.path().join("meta/snapshot.json");
        let full = std::fs::read(&snapshot).unwrap();
        edit_snapshot(dir.path(), drop);
        assert_eq!(count_in_q(dir.path()), None, "{drop:?}");
        // The start recorded the deletion: the queue, declared again with
        // its old id, is empty.
        std::fs::write(&snapshot, &full).unwrap();
        assert_eq!(count_in_q(dir.path()), Some(0), "{drop:?}");
    }
}

#[test]
fn messages_of_an_exclusive_durable_queue_go_with_it_at_restart() {
    // An exclusive queue is not stored and does not survive a restart; its
    // id was reserved, so its logged messages are dropped, not refused.
    let dir = tempfile::tempdir().unwrap();
    queue_with_messages(dir.path(), true);
    assert_eq!(count_in_q(dir.path()), None);
}
