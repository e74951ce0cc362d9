//! The commit task writes zeros ahead of the active segment's records
//! (`storage.zero_ahead`), so record writes overwrite blocks instead of
//! growing the file: the file runs at least half a MiB of zeros past the
//! records, never past the segment size, and a restart reads every record
//! back. With the option off the file ends with its last record's block.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use ringmq_protocol::client::Event;
use ringmq_protocol::message as m;

const BODY: usize = 8 * 1024;
const COUNT: usize = 200;
const SEGMENT: u64 = 4 * 1024 * 1024;

/// The newest segment file of shard 0.
fn active_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("shard-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

/// Bytes up to the last non-zero byte.
fn data_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1)
}

/// Publishes COUNT persistent messages with confirms to a durable queue on
/// shard 0 and returns the queue's name.
fn publish_confirmed(broker: &TestBroker) -> String {
    let (q, _) = names_on_each_shard("zeroed-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_durable(&mut c, ch, &q);
    c.call(m::Message::ConfirmSelect(ch)).unwrap();
    for i in 0..COUNT {
        let body = Bytes::from(vec![(i % 251) as u8 + 1; BODY]);
        c.publish(ch, persistent_publish(&q, body, Some(i.to_string())))
            .unwrap();
        c.flush().unwrap();
    }
    let mut confirmed = 0;
    while confirmed < COUNT as u64 {
        if let Some(Event::Confirm(_, conf)) = c.next_event(Some(Duration::from_secs(20))).unwrap()
        {
            confirmed = conf.delivery_tag;
        }
    }
    q
}

#[test]
fn zeros_run_ahead_of_the_records_and_a_restart_reads_them_all() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let setup = |c: &mut ringmq_core::Config| {
        c.storage.segment_bytes = SEGMENT;
        c.storage.data_dir = dir.clone();
    };
    let broker = TestBroker::with(setup);
    let q = publish_confirmed(&broker);
    let seg = active_segment(&dir);
    // The zeros follow the batch that was written last: wait for them.
    let ahead = |seg: &Path| {
        let bytes = std::fs::read(seg).unwrap();
        (bytes.len(), data_len(&bytes))
    };
    assert!(
        eventually(Duration::from_secs(10), || {
            let (len, data) = ahead(&seg);
            len >= data + 512 * 1024
        }),
        "no zeros ahead of the records: (file, data) = {:?}",
        ahead(&seg)
    );
    let (len, data) = ahead(&seg);
    assert!(data >= COUNT * BODY, "records: {data} bytes");
    assert!(
        len as u64 <= SEGMENT,
        "file {len} bytes past the segment size"
    );
    broker.stop();

    let broker = TestBroker::with(setup);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    for i in 0..COUNT {
        let g = c.get(ch, &q, true).unwrap().expect("a recovered message");
        assert_eq!(g.properties.message_id, Some(i.to_string()));
        assert_eq!(g.body.len(), BODY);
        assert!(g.body.iter().all(|b| *b == (i % 251) as u8 + 1));
    }
    assert!(c.get(ch, &q, true).unwrap().is_none());
}

#[test]
fn without_zero_ahead_the_file_ends_with_its_records() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let broker = TestBroker::with(|c| {
        c.storage.segment_bytes = SEGMENT;
        c.storage.data_dir = dir.clone();
        c.storage.zero_ahead = false;
    });
    publish_confirmed(&broker);
    std::thread::sleep(Duration::from_millis(200));
    let bytes = std::fs::read(active_segment(&dir)).unwrap();
    assert!(
        bytes.len() - data_len(&bytes) < 4096,
        "file {} bytes, records end at {}",
        bytes.len(),
        data_len(&bytes)
    );
}
