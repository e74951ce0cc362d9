//! A failed write of the metadata store does not refuse durable changes
//! until a restart: the change that hit it gets 541 INTERNAL_ERROR, the
//! next one rewrites the store whole (a new op log replaces the old file)
//! and succeeds, and a restart finds the metadata as the broker held it.
//!
//! Fault injection is process-wide, so this file holds a single test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_core::log::fault;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ClientError;
use ringmq_protocol::message as m;

fn declare_durable(c: &mut Connection, ch: u16, q: &str) -> Result<(), ClientError> {
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: q.into(),
        durable: true,
        ..m::QueueDeclare::default()
    })
    .map(|_| ())
}

#[test]
fn the_metadata_store_is_rewritten_after_a_failed_write_and_accepts_changes_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let broker = TestBroker::with(|c| c.storage.data_dir = path.clone());
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_durable(&mut c, ch, "before").unwrap();

    fault::fail_meta_writes();
    let text = connection_closed(declare_durable(&mut c, ch, "during"), 541);
    assert!(text.contains("cannot store metadata"), "{text}");
    // Still failing: the rewrite fails too, and says so.
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    connection_closed(declare_durable(&mut c, ch, "still failing"), 541);

    fault::clear();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_durable(&mut c, ch, "after").unwrap();
    declare_durable(&mut c, ch, "after too").unwrap();
    drop(c);
    broker.stop();

    let broker = TestBroker::with(|c| c.storage.data_dir = path.clone());
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    for q in ["before", "after", "after too"] {
        assert!(
            passive(&mut c, ch, q).is_ok(),
            "{q} is gone after the restart"
        );
    }
    broker.stop();
}
