//! Recovery trusts only what a crash can explain: segments built by hand
//! (`Record::encode`), damaged, then opened. A torn write may cut only the
//! tail segment; anything else is corruption (`on_corruption`: refuse or
//! skip); Abandoned records fence off what a failed write left behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use ringmq_core::config::{OnCorruption, StorageConfig};
use ringmq_core::log::record::Record;
use ringmq_core::log::{Log, LogError};

fn enqueue(id: u64) -> Record<'static> {
    Record::Enqueue {
        queue: 1,
        id,
        expires_at: 0,
        exchange: "x",
        routing_key: "k",
        props: b"",
        body: b"a message body",
        transient: false,
    }
}

/// Encoded records, and where each one starts.
fn segment(records: &[Record<'_>]) -> (Vec<u8>, Vec<usize>) {
    let mut buf = Vec::new();
    let mut starts = Vec::new();
    for r in records {
        starts.push(buf.len());
        r.encode(&mut buf);
    }
    (buf, starts)
}

fn enqueues(ids: std::ops::RangeInclusive<u64>) -> Vec<Record<'static>> {
    ids.map(enqueue).collect()
}

fn seg_path(dir: &Path, seq: u32) -> std::path::PathBuf {
    dir.join(format!("{seq:010}.seg"))
}

fn write_seg(dir: &Path, seq: u32, bytes: &[u8]) {
    std::fs::write(seg_path(dir, seq), bytes).unwrap();
}

/// Opens the log of the segments in `dir`; the ids recovered in queue 1.
fn open(dir: &Path, on_corruption: OnCorruption) -> Result<Vec<u64>, LogError> {
    let cfg = StorageConfig {
        data_dir: dir.to_owned(),
        on_corruption,
        ..StorageConfig::default()
    };
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .expect("executor")
        .run(async move {
            let (_log, rec) = Log::open(0, dir, &cfg).await?;
            Ok(rec
                .queues
                .get(&1)
                .map(|q| q.keys().copied().collect())
                .unwrap_or_default())
        })
}

fn refused_at(dir: &Path) -> (u32, u64) {
    match open(dir, OnCorruption::Refuse) {
        Err(LogError::Corrupt { seq, at, .. }) => (seq, at),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn ids(r: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    r.collect()
}

#[test]
fn a_zeroed_length_with_records_after_it_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    // Ten records; a Synced record after them says the first nine were
    // durable, so the tail segment's damage below that is corruption.
    let (mut data, starts) = segment(&enqueues(1..=10));
    Record::Synced {
        end: starts[9] as u64,
    }
    .encode(&mut data);
    data[starts[4]..starts[4] + 4].fill(0);
    write_seg(dir.path(), 1, &data);
    assert_eq!(refused_at(dir.path()), (1, starts[4] as u64));
    // Nothing was cut while refusing.
    assert_eq!(std::fs::read(seg_path(dir.path(), 1)).unwrap(), data);
    let got = open(dir.path(), OnCorruption::Skip).unwrap();
    assert_eq!(got, [1, 2, 3, 4, 6, 7, 8, 9, 10], "only record 5 is lost");
}

#[test]
fn in_the_tail_damage_past_what_was_vouched_durable_is_a_torn_write() {
    // Records 1-3 vouched durable; 4 damaged; 5-6 valid after it: writes
    // no sync covered that reached the disk out of order. Never confirmed:
    // they go with the torn tail.
    let dir = tempfile::tempdir().unwrap();
    let (mut data, _) = segment(&enqueues(1..=3));
    Record::Synced {
        end: data.len() as u64,
    }
    .encode(&mut data);
    let bad = data.len();
    let (rest, _) = segment(&enqueues(4..=6));
    data.extend_from_slice(&rest);
    data[bad + 20] ^= 1;
    write_seg(dir.path(), 1, &data);
    assert_eq!(open(dir.path(), OnCorruption::Refuse).unwrap(), ids(1..=3));
    assert_eq!(
        std::fs::metadata(seg_path(dir.path(), 1)).unwrap().len(),
        bad as u64
    );
}

#[test]
fn a_zeroed_length_before_garbage_is_a_torn_tail_only_in_the_tail() {
    // Zero length, then non-zero bytes and no valid record: torn in the
    // tail segment...
    let dir = tempfile::tempdir().unwrap();
    let (mut data, starts) = segment(&enqueues(1..=5));
    data[starts[4]..starts[4] + 4].fill(0);
    write_seg(dir.path(), 1, &data);
    assert_eq!(open(dir.path(), OnCorruption::Refuse).unwrap(), ids(1..=4));
    assert_eq!(
        std::fs::metadata(seg_path(dir.path(), 1)).unwrap().len(),
        starts[4] as u64
    );
    // ...corruption in an older one.
    let dir = tempfile::tempdir().unwrap();
    write_seg(dir.path(), 1, &data);
    write_seg(dir.path(), 2, &segment(&enqueues(6..=7)).0);
    assert_eq!(refused_at(dir.path()), (1, starts[4] as u64));
    let got = open(dir.path(), OnCorruption::Skip).unwrap();
    assert_eq!(got, [1, 2, 3, 4, 6, 7]);
}

#[test]
fn zero_padding_after_the_last_record_is_the_end_of_data() {
    let dir = tempfile::tempdir().unwrap();
    let (mut data, _) = segment(&enqueues(1..=3));
    let end = data.len();
    data.resize(end + 5000, 0);
    write_seg(dir.path(), 1, &data);
    write_seg(dir.path(), 2, &segment(&enqueues(4..=4)).0);
    assert_eq!(open(dir.path(), OnCorruption::Refuse).unwrap(), ids(1..=4));
    let len = std::fs::metadata(seg_path(dir.path(), 1)).unwrap().len();
    assert_eq!(len, end as u64, "the padding is cut");
}

#[test]
fn only_the_tail_segment_may_end_in_a_torn_record() {
    let dir = tempfile::tempdir().unwrap();
    let (data, starts) = segment(&enqueues(1..=10));
    write_seg(dir.path(), 1, &data[..data.len() - 5]);
    write_seg(dir.path(), 2, &segment(&enqueues(11..=12)).0);
    assert_eq!(refused_at(dir.path()), (1, starts[9] as u64));
    let got = open(dir.path(), OnCorruption::Skip).unwrap();
    let mut want = ids(1..=9);
    want.extend([11, 12]);
    assert_eq!(got, want);
    // A bad checksum in the last record of an older segment too.
    let dir = tempfile::tempdir().unwrap();
    let mut bad = data.clone();
    let last = bad.len() - 3;
    bad[last] ^= 0xff;
    write_seg(dir.path(), 1, &bad);
    write_seg(dir.path(), 2, &segment(&enqueues(11..=11)).0);
    assert_eq!(refused_at(dir.path()), (1, starts[9] as u64));
}

#[test]
fn segments_after_the_tail_with_no_valid_record_are_torn_and_empty() {
    let dir = tempfile::tempdir().unwrap();
    write_seg(dir.path(), 1, &segment(&enqueues(1..=3)).0);
    let (data, starts) = segment(&enqueues(4..=6));
    write_seg(dir.path(), 2, &data[..data.len() - 7]);
    // Created on a roll, torn before anything in it was synced.
    let (newer, _) = segment(&enqueues(7..=7));
    write_seg(dir.path(), 3, &newer[..newer.len() / 2]);
    write_seg(dir.path(), 4, &[0u8; 4096]);
    assert_eq!(open(dir.path(), OnCorruption::Refuse).unwrap(), ids(1..=5));
    let len = |seq| std::fs::metadata(seg_path(dir.path(), seq)).unwrap().len();
    assert_eq!(len(2), starts[2] as u64, "the tail is cut to whole records");
    assert_eq!((len(3), len(4)), (0, 0));
    // What was cut is cut durably: the next start agrees.
    assert_eq!(open(dir.path(), OnCorruption::Refuse).unwrap(), ids(1..=5));
}

#[test]
fn an_abandoned_segment_is_read_only_below_its_trusted_length() {
    let dir = tempfile::tempdir().unwrap();
    // Segment 1: records 1..=3 made durable, then a failed write left
    // garbage and a whole record that must not come back.
    let (mut one, _) = segment(&enqueues(1..=3));
    let end = one.len() as u64;
    one.extend_from_slice(&[0xa5; 300]);
    enqueue(99).encode(&mut one);
    write_seg(dir.path(), 1, &one);
    let mut two = Vec::new();
    Record::Abandoned { seq: 1, end }.encode(&mut two);
    for r in enqueues(4..=5) {
        r.encode(&mut two);
    }
    write_seg(dir.path(), 2, &two);
    assert_eq!(open(dir.path(), OnCorruption::Refuse).unwrap(), ids(1..=5));
    let len = std::fs::metadata(seg_path(dir.path(), 1)).unwrap().len();
    assert_eq!(len, end, "cut to its trusted length");
}

#[test]
fn repeated_abandonments_chain_and_an_end_of_zero_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 1 abandoned after record 2; 2 abandoned before anything in it was
    // durable (end 0); 3 repeats both and holds the rewritten records.
    let (mut one, _) = segment(&enqueues(1..=2));
    let end = one.len() as u64;
    one.extend_from_slice(&segment(&enqueues(50..=51)).0[..70]);
    write_seg(dir.path(), 1, &one);
    let mut two = Vec::new();
    Record::Abandoned { seq: 1, end }.encode(&mut two);
    enqueue(60).encode(&mut two);
    write_seg(dir.path(), 2, &two[..two.len() - 9]);
    let mut three = Vec::new();
    Record::Abandoned { seq: 1, end }.encode(&mut three);
    Record::Abandoned { seq: 2, end: 0 }.encode(&mut three);
    for r in enqueues(3..=4) {
        r.encode(&mut three);
    }
    write_seg(dir.path(), 3, &three);
    assert_eq!(open(dir.path(), OnCorruption::Refuse).unwrap(), ids(1..=4));
    let len = |seq| std::fs::metadata(seg_path(dir.path(), seq)).unwrap().len();
    assert_eq!((len(1), len(2)), (end, 0));
}

#[test]
fn abandoned_records_count_only_at_the_start_and_for_older_segments() {
    let dir = tempfile::tempdir().unwrap();
    write_seg(dir.path(), 1, &segment(&enqueues(1..=2)).0);
    let mut two = Vec::new();
    enqueue(3).encode(&mut two);
    // Not leading: ignored (a no-op when applied).
    Record::Abandoned { seq: 1, end: 0 }.encode(&mut two);
    write_seg(dir.path(), 2, &two);
    let mut three = Vec::new();
    // Names itself and a newer segment: ignored.
    Record::Abandoned { seq: 3, end: 0 }.encode(&mut three);
    Record::Abandoned { seq: 4, end: 0 }.encode(&mut three);
    enqueue(4).encode(&mut three);
    write_seg(dir.path(), 3, &three);
    assert_eq!(open(dir.path(), OnCorruption::Refuse).unwrap(), ids(1..=4));
}

#[test]
fn a_segment_shorter_than_its_trusted_length_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (one, _) = segment(&enqueues(1..=3));
    write_seg(dir.path(), 1, &one);
    let mut two = Vec::new();
    let end = one.len() as u64 + 64;
    Record::Abandoned { seq: 1, end }.encode(&mut two);
    enqueue(4).encode(&mut two);
    write_seg(dir.path(), 2, &two);
    assert_eq!(refused_at(dir.path()), (1, one.len() as u64));
    assert_eq!(open(dir.path(), OnCorruption::Skip).unwrap(), ids(1..=4));
}

/// Garbage built to look like records to a cheap check: an enqueue header
/// every 256 bytes whose fields parse and whose length runs to the end of
/// the region. Decoding at every offset, as recovery once did, checksums
/// megabytes per candidate: hours for 8 MiB.
fn plausible_garbage(len: usize) -> Vec<u8> {
    let mut g = vec![0x5au8; len];
    for at in (0..len - 64).step_by(256) {
        let rec_len = (len - at) as u32;
        g[at..at + 4].copy_from_slice(&rec_len.to_le_bytes());
        g[at + 8..at + 12].copy_from_slice(&[1, 0, 0, 0]);
        // exchange, routing key and properties empty; the body the rest.
        g[at + 36..at + 42].fill(0);
        g[at + 42..at + 46].copy_from_slice(&(rec_len - 46).to_le_bytes());
    }
    g
}

#[test]
fn a_large_corrupt_region_is_searched_in_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    let (mut data, _) = segment(&enqueues(1..=1));
    let bad_at = data.len();
    data.extend_from_slice(&plausible_garbage(8 << 20));
    enqueue(2).encode(&mut data);
    write_seg(dir.path(), 1, &data);
    // Not the tail: damage there is corruption.
    write_seg(dir.path(), 2, &segment(&enqueues(3..=3)).0);
    let started = Instant::now();
    assert_eq!(refused_at(dir.path()), (1, bad_at as u64));
    assert_eq!(open(dir.path(), OnCorruption::Skip).unwrap(), [1, 2, 3]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[test]
fn a_large_torn_tail_is_searched_in_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    let (mut data, _) = segment(&enqueues(1..=1));
    let end = data.len() as u64;
    data.extend_from_slice(&plausible_garbage(8 << 20));
    write_seg(dir.path(), 1, &data);
    let started = Instant::now();
    assert_eq!(open(dir.path(), OnCorruption::Refuse).unwrap(), [1]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(
        std::fs::metadata(seg_path(dir.path(), 1)).unwrap().len(),
        end
    );
}
