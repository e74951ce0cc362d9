//! The scan's rules on bytes, and the plan read from segment files.

use std::path::Path;

use super::plan::Plan;
use super::scan::{scan, Rules, Scanned};
use crate::log::record::{DecodeError, Record};

fn settle(id: u64) -> Record<'static> {
    Record::Settle { queue: 1, id }
}

/// `n` settle records, and where each starts.
fn records(n: u64) -> (Vec<u8>, Vec<usize>) {
    let mut buf = Vec::new();
    let mut starts = Vec::new();
    for id in 1..=n {
        starts.push(buf.len());
        settle(id).encode(&mut buf);
    }
    (buf, starts)
}

const TAIL: Rules = Rules {
    torn_ok: true,
    skip: false,
};
const OLDER: Rules = Rules {
    torn_ok: false,
    skip: false,
};
const SKIP: Rules = Rules {
    torn_ok: false,
    skip: true,
};

/// Scans `data`; the ids applied, and the outcome.
fn ids(data: &[u8], rules: Rules) -> (Vec<u64>, Result<Scanned, (usize, &'static str)>) {
    let mut got = Vec::new();
    let out = scan(data, rules, |r, _, _| {
        if let Record::Settle { id, .. } = r {
            got.push(id);
        }
    });
    (got, out.map_err(|c| (c.at, c.reason)))
}

#[test]
fn zero_padding_ends_the_data_anywhere() {
    let (mut data, _) = records(3);
    let end = data.len();
    data.resize(end + 100, 0);
    for rules in [TAIL, OLDER, SKIP] {
        let (got, out) = ids(&data, rules);
        assert_eq!(got, [1, 2, 3]);
        let out = out.unwrap();
        assert_eq!((out.keep, out.torn, out.skipped.len()), (end, None, 0));
    }
}

#[test]
fn a_zero_length_then_bytes_is_torn_only_in_the_tail() {
    let (mut data, starts) = records(4);
    data[starts[3]..starts[3] + 4].fill(0);
    let (got, out) = ids(&data, TAIL);
    assert_eq!(got, [1, 2, 3]);
    let out = out.unwrap();
    assert_eq!(
        (out.keep, out.torn.map(|t| t.0)),
        (starts[3], Some(starts[3]))
    );
    let (_, out) = ids(&data, OLDER);
    assert_eq!(out.unwrap_err().0, starts[3]);
    // Skipping keeps the bad bytes on disk and says where they were.
    let (_, out) = ids(&data, SKIP);
    let out = out.unwrap();
    assert_eq!(out.keep, data.len());
    assert_eq!(out.skipped, [(starts[3], data.len() - starts[3])]);
}

#[test]
fn a_bad_record_followed_by_a_valid_one_is_corruption_outside_the_tail() {
    let (mut data, starts) = records(5);
    data[starts[1] + 12] ^= 1;
    data[starts[3]..starts[3] + 4].fill(0);
    let (got, out) = ids(&data, OLDER);
    assert_eq!(got, [1]);
    let (at, reason) = out.unwrap_err();
    assert_eq!(at, starts[1]);
    assert!(reason.contains("followed by valid records"), "{reason}");
    let (got, out) = ids(&data, SKIP);
    assert_eq!(got, [1, 3, 5]);
    let out = out.unwrap();
    assert_eq!(
        out.skipped,
        [
            (starts[1], starts[2] - starts[1]),
            (starts[3], starts[4] - starts[3])
        ]
    );
    assert_eq!(out.keep, data.len());
}

/// Settle records 1..=n with a `Synced` record after the `after`-th whose
/// end `vouch` picks from where each settle starts (a marker's length does
/// not depend on its value); the bytes and those starts.
fn records_vouched(n: u64, after: u64, vouch: impl Fn(&[usize]) -> u64) -> (Vec<u8>, Vec<usize>) {
    let build = |end: u64| {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for id in 1..=n {
            starts.push(buf.len());
            settle(id).encode(&mut buf);
            if id == after {
                Record::Synced { end }.encode(&mut buf);
            }
        }
        (buf, starts)
    };
    let (_, starts) = build(0);
    build(vouch(&starts))
}

#[test]
fn in_the_tail_a_bad_record_below_the_vouched_length_is_corruption() {
    // Settles 1..5, a marker after 4 vouching for everything up to the
    // start of 4; settle 2 is damaged: durable bytes, so corruption.
    let (mut data, starts) = records_vouched(5, 4, |s| s[3] as u64);
    data[starts[1] + 12] ^= 1;
    for rules in [TAIL, OLDER] {
        let (got, out) = ids(&data, rules);
        assert_eq!(got, [1]);
        assert_eq!(out.unwrap_err().0, starts[1]);
    }
}

#[test]
fn in_the_tail_a_bad_record_past_the_vouched_length_is_torn_with_what_follows() {
    // A marker after 1 vouches for settle 1 only; 3 is damaged and 4, 5
    // (unsynced writes that reached the disk out of order) follow it.
    let (mut data, starts) = records_vouched(5, 1, |s| s[1] as u64);
    data[starts[2] + 12] ^= 1;
    let (got, out) = ids(&data, TAIL);
    assert_eq!(got, [1, 2]);
    let out = out.unwrap();
    assert_eq!(
        (out.keep, out.torn.map(|t| t.0)),
        (starts[2], Some(starts[2]))
    );
    assert!(out.torn_valid);
    let (_, out) = ids(&data, OLDER);
    assert_eq!(out.unwrap_err().0, starts[2]);
}

#[test]
fn header_checks_match_decode() {
    // A reserved byte set, or a length that does not fit the kind, fails
    // to decode even with a matching checksum.
    for (at, value) in [(9usize, 1u8), (11, 1), (0, 36)] {
        let mut buf = Vec::new();
        settle(1).encode(&mut buf);
        buf.resize(40, 0);
        buf[at] = value;
        let crc = crc32c::crc32c(&buf[8..buf[0] as usize]);
        buf[4..8].copy_from_slice(&crc.to_le_bytes());
        let err = Record::decode(&buf).unwrap_err();
        assert!(
            matches!(err, DecodeError::Malformed(_) | DecodeError::BadLength(_)),
            "{err:?}"
        );
    }
}

fn write(dir: &Path, seq: u32, records: &[Record<'_>]) -> u64 {
    let mut buf = Vec::new();
    for r in records {
        r.encode(&mut buf);
    }
    std::fs::write(dir.join(format!("{seq:010}.seg")), &buf).unwrap();
    buf.len() as u64
}

#[test]
fn the_plan_reads_leading_abandoned_records_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, 1, &[settle(1), settle(2)]);
    write(d, 2, &[Record::Abandoned { seq: 1, end: 28 }, settle(3)]);
    // Abandoned at 0: its own claim about segment 1 does not count.
    write(d, 3, &[Record::Abandoned { seq: 1, end: 0 }]);
    write(
        d,
        4,
        &[
            Record::Abandoned { seq: 3, end: 0 },
            Record::Abandoned { seq: 2, end: 56 },
        ],
    );
    std::fs::write(d.join("0000000005.seg"), [0u8; 512]).unwrap();
    let plan = Plan::read(0, d).unwrap();
    assert_eq!(
        (plan.limit(1), plan.limit(2), plan.limit(3), plan.limit(4)),
        (Some(28), Some(56), Some(0), None)
    );
    assert_eq!(plan.tail(), Some(4));
    assert!(!plan.torn_ok(3) && plan.torn_ok(4) && plan.torn_ok(5));
}

#[test]
fn the_tail_is_the_newest_segment_with_a_valid_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, 1, &[settle(1)]);
    // The first record is bad, a later one valid: unsynced writes of a
    // segment whose start never reached the disk, not the tail...
    let mut two = vec![0xeeu8; 100];
    settle(2).encode(&mut two);
    std::fs::write(d.join("0000000002.seg"), &two).unwrap();
    std::fs::write(d.join("0000000003.seg"), [0x77u8; 64]).unwrap();
    std::fs::write(d.join("0000000004.seg"), []).unwrap();
    let plan = Plan::read(0, d).unwrap();
    assert_eq!(plan.tail(), Some(1));
    assert!(plan.torn_ok(1) && plan.torn_ok(2));
    // ...unless a Synced record in it says some of it was durable.
    Record::Synced { end: 50 }.encode(&mut two);
    std::fs::write(d.join("0000000002.seg"), &two).unwrap();
    let plan = Plan::read(0, d).unwrap();
    assert_eq!(plan.tail(), Some(2));
    assert!(!plan.torn_ok(1));
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(Plan::read(0, empty.path()).unwrap().tail(), None);
}
