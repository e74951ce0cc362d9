use bytes::Bytes;
use ringmq_protocol::{ErrorCode, FieldTable, FieldValue};

use super::args::{interval, Declare, Interval, StreamArgs};
use super::offset::{check_consume, ConsumeAsk, Start};
use super::*;
use crate::message::{Message, Parts};
use crate::queue::args::QueueArgs;

/// Records every effect; log records are 100 bytes each, one segment of
/// the log per ten.
#[derive(Default)]
struct Recorder {
    appended: u64,
    delivered: Vec<(ConsumerId, u64, Vec<u8>)>,
    reads: Vec<ConsumerId>,
    released: Vec<LogLoc>,
    truncated: Vec<u64>,
    refuse: bool,
}

const RECORD: u32 = 100;

fn loc_of(n: u64) -> LogLoc {
    LogLoc {
        seq: (n / 10) as u32 + 1,
        offset: (n % 10) * u64::from(RECORD),
        len: RECORD,
    }
}

/// The log position just past record `n`.
fn past(n: u64) -> Pos {
    let l = loc_of(n);
    (l.seq, l.offset + u64::from(l.len))
}

impl StreamSink for Recorder {
    fn append(&mut self, _: QueueId, offset: u64, _: u64, _: &Message) -> Option<LogLoc> {
        if self.refuse {
            return None;
        }
        assert_eq!(offset, self.appended);
        self.appended += 1;
        Some(loc_of(offset))
    }

    fn deliver(&mut self, _: QueueId, c: &ConsumerSpec, offset: u64, msg: &Message) {
        self.delivered.push((c.id, offset, msg.body.to_vec()));
    }

    fn read(&mut self, _: QueueId, consumer: ConsumerId) {
        self.reads.push(consumer);
    }

    fn released(&mut self, loc: LogLoc) {
        self.released.push(loc);
    }

    fn truncated(&mut self, _: QueueId, first: u64) {
        self.truncated.push(first);
    }
}

fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn def_with(args: &[(&str, FieldValue)]) -> QueueDef {
    let mut all = vec![("x-queue-type", FieldValue::string("stream"))];
    all.extend(args.iter().cloned());
    QueueDef {
        id: QueueId(7),
        name: "s".into(),
        shard: 0,
        durable: true,
        auto_delete: false,
        exclusive_owner: None,
        arguments: table(&all),
        args: QueueArgs::default(),
    }
}

fn stream_with(args: &[(&str, FieldValue)], cache: u64) -> Stream {
    let def = def_with(args);
    let a = StreamArgs::of(&def).unwrap();
    Stream::new(def, "/", a, cache)
}

fn msg(body: &str) -> Message {
    Message::new(Parts {
        exchange: "".into(),
        routing_key: "s".into(),
        props: None,
        body: Bytes::copy_from_slice(body.as_bytes()),
        publisher: 0,
        published_us: 0,
    })
}

fn spec(id: ConsumerId) -> ConsumerSpec {
    ConsumerSpec {
        id,
        shard: 0,
        session: 1,
        no_ack: false,
        exclusive: false,
        no_local: false,
        priority: 0,
        gated: false,
        window: false,
    }
}

fn publish_n(s: &mut Stream, r: &mut Recorder, n: u64, now: u64) {
    for i in 0..n {
        let body = format!("m{}", s.next_offset());
        assert!(s.publish(msg(&body), now + i, r).is_some());
    }
}

fn offsets(r: &Recorder, c: ConsumerId) -> Vec<u64> {
    r.delivered
        .iter()
        .filter(|d| d.0 == c)
        .map(|d| d.1)
        .collect()
}

#[test]
fn nothing_is_delivered_before_its_record_is_durable() {
    let mut s = stream_with(&[], 1 << 20);
    let mut r = Recorder::default();
    s.add_consumer(spec(1), Start::Next);
    s.add_credit(1, 10, &mut r);
    publish_n(&mut s, &mut r, 3, 1000);
    assert!(r.delivered.is_empty());
    s.committed(past(1), &mut r);
    assert_eq!(offsets(&r, 1), vec![0, 1]);
    s.committed(past(2), &mut r);
    assert_eq!(offsets(&r, 1), vec![0, 1, 2]);
    // From memory: no read was needed.
    assert!(r.reads.is_empty());
    assert_eq!(r.delivered[2].2, b"m2");
}

#[test]
fn start_offsets_resolve_as_rabbitmq_does() {
    let mut s = stream_with(&[], 0);
    let mut r = Recorder::default();
    publish_n(&mut s, &mut r, 5, 1000);
    s.committed(past(4), &mut r);
    let cases = [
        (Start::First, 0),
        (Start::Last, 4),
        (Start::Next, 5),
        (Start::Offset(2), 2),
        (Start::Offset(100), 5),
        (Start::Timestamp(1003), 3),
        (Start::Timestamp(999), 0),
        (Start::Timestamp(9999), 5),
    ];
    for (i, (start, want)) in cases.into_iter().enumerate() {
        let id = 10 + i as u64;
        s.add_consumer(spec(id), start);
        s.add_credit(id, 100, &mut r);
        // Everything comes from the log (no cache): one read each.
        if want < 5 {
            let (from, locs) = s.read_plan(id, 256, 1 << 20).unwrap();
            assert_eq!(from, want, "{start:?}");
            assert_eq!(locs.len() as u64, 5 - want);
        } else {
            assert!(s.read_plan(id, 256, 1 << 20).is_none(), "{start:?}");
        }
    }
}

#[test]
fn credit_bounds_deliveries_and_acks_bring_more() {
    let mut s = stream_with(&[], 1 << 20);
    let mut r = Recorder::default();
    s.add_consumer(spec(1), Start::Next);
    s.add_credit(1, 2, &mut r);
    publish_n(&mut s, &mut r, 5, 1000);
    s.committed(past(4), &mut r);
    assert_eq!(offsets(&r, 1), vec![0, 1]);
    // The rest is no longer in memory once committed: read back.
    s.add_credit(1, 2, &mut r);
    assert_eq!(r.reads, vec![1]);
    let (from, locs) = s.read_plan(1, 256, 1 << 20).unwrap();
    assert_eq!((from, locs.len()), (2, 2));
    s.read_done(1, from, &[msg("m2"), msg("m3")], &mut r);
    assert_eq!(offsets(&r, 1), vec![0, 1, 2, 3]);
    s.add_credit(1, 5, &mut r);
    let (from, locs) = s.read_plan(1, 256, 1 << 20).unwrap();
    assert_eq!((from, locs.len()), (4, 1));
}

#[test]
fn retention_drops_whole_old_segments_at_a_roll_only() {
    // Segments of 3 records (300 bytes); at most 500 bytes kept.
    let mut s = stream_with(
        &[
            ("x-stream-max-segment-size-bytes", FieldValue::I32(300)),
            ("x-max-length-bytes", FieldValue::I32(500)),
        ],
        0,
    );
    let mut r = Recorder::default();
    publish_n(&mut s, &mut r, 6, 1000);
    assert_eq!(s.first(), 0, "no roll yet: nothing dropped");
    assert_eq!(s.segment_count(), 2);
    // The 7th starts a third segment: 700 bytes > 500, the oldest goes.
    publish_n(&mut s, &mut r, 1, 2000);
    assert_eq!(s.first(), 3);
    assert_eq!(r.truncated, vec![3]);
    assert_eq!(r.released, (0..3).map(loc_of).collect::<Vec<_>>());
    assert_eq!(s.segment_count(), 2);
}

#[test]
fn max_age_drops_segments_whose_newest_message_is_older() {
    let mut s = stream_with(
        &[
            ("x-stream-max-segment-size-bytes", FieldValue::I32(200)),
            ("x-max-age", FieldValue::string("2s")),
        ],
        0,
    );
    let mut r = Recorder::default();
    publish_n(&mut s, &mut r, 4, 1000); // segments [0,1] [2,3]
    assert_eq!(s.segment_count(), 2);
    // Much later: the roll drops both old segments, never the new one.
    publish_n(&mut s, &mut r, 1, 10_000);
    assert_eq!(s.first(), 4);
    assert_eq!(s.segment_count(), 1);
    // A reader behind the drop moves up to the first retained offset.
    s.add_consumer(spec(1), Start::Offset(0));
    s.committed(past(4), &mut r);
    s.add_credit(1, 10, &mut r);
    let (from, _) = s.read_plan(1, 256, 1 << 20).unwrap();
    assert_eq!(from, 4);
}

#[test]
fn restore_rebuilds_offsets_and_segments() {
    let mut a = stream_with(
        &[("x-stream-max-segment-size-bytes", FieldValue::I32(300))],
        0,
    );
    let mut r = Recorder::default();
    publish_n(&mut a, &mut r, 8, 1000);
    let mut b = stream_with(
        &[("x-stream-max-segment-size-bytes", FieldValue::I32(300))],
        0,
    );
    let entries = (3..8).map(|o| {
        (
            o,
            Entry {
                loc: loc_of(o),
                ts: 1000 + o,
            },
        )
    });
    assert!(b.restore(3, entries).is_empty());
    assert_eq!(
        (b.first(), b.next_offset(), b.committed_offset()),
        (3, 8, 8)
    );
    assert_eq!(b.segment_count(), 2);
    // A gap: the messages before it are dropped.
    let mut c = stream_with(&[], 0);
    let entries = [0, 1, 3, 4].map(|o| {
        (
            o,
            Entry {
                loc: loc_of(o),
                ts: 1,
            },
        )
    });
    assert_eq!(c.restore(0, entries), vec![loc_of(0), loc_of(1)]);
    assert_eq!((c.first(), c.next_offset()), (3, 5));
    // Nothing left but a truncation: the offsets go on from there.
    let mut d = stream_with(&[], 0);
    assert!(d.restore(42, []).is_empty());
    assert_eq!((d.first(), d.next_offset()), (42, 42));
}

#[test]
fn compaction_moves_records_that_are_still_retained() {
    let mut s = stream_with(&[], 0);
    let mut r = Recorder::default();
    publish_n(&mut s, &mut r, 12, 1000);
    let in_first = s.stored_in(1);
    assert_eq!(in_first.len(), 10);
    let to = LogLoc {
        seq: 9,
        offset: 0,
        len: RECORD,
    };
    assert!(s.holds(3, loc_of(3)));
    assert!(s.relocate(3, loc_of(3), to));
    assert!(!s.relocate(3, loc_of(3), to), "moved already");
    assert!(s.holds(3, to));
    assert_eq!(s.stored_in(1).len(), 9);
}

#[test]
fn a_publish_that_cannot_be_stored_is_refused() {
    let mut s = stream_with(&[], 0);
    let mut r = Recorder {
        refuse: true,
        ..Recorder::default()
    };
    assert!(s.publish(msg("x"), 1, &mut r).is_none());
    assert_eq!(s.next_offset(), 0);
}

#[test]
fn intervals_read_as_rabbitmq_reads_them() {
    let cases = [
        ("1s", Interval::Ms(1000)),
        ("2m", Interval::Ms(120_000)),
        ("1h", Interval::Ms(3_600_000)),
        ("7D", Interval::Ms(7 * 86_400_000)),
        ("1M", Interval::Ms(30 * 86_400_000)),
        ("1Y", Interval::Ms(365 * 86_400_000)),
        ("0s", Interval::Invalid),
        ("1d", Interval::Invalid),
        ("10", Interval::Invalid),
        ("1.5h", Interval::Invalid),
        ("h", Interval::Crash),
        ("", Interval::Crash),
        ("-1h", Interval::Crash),
    ];
    for (text, want) in cases {
        assert_eq!(interval(text), want, "{text}");
    }
}

#[test]
fn declare_refusals_follow_rabbitmqs_order_and_texts() {
    let durable = Declare {
        durable: true,
        exclusive: false,
        auto_delete: false,
    };
    let refuse = |args: &[(&str, FieldValue)], name: &str, how: Declare| {
        let mut all = vec![("x-queue-type", FieldValue::string("stream"))];
        all.extend(args.iter().cloned());
        StreamArgs::parse(&table(&all), name, "/", how).unwrap_err()
    };
    let err = refuse(
        &[("x-max-age", FieldValue::string("1d"))],
        "amq.gen-x",
        durable,
    );
    assert!(err.text.contains("server-named"), "{}", err.text);
    let err = refuse(
        &[
            ("x-dead-letter-exchange", FieldValue::string("d")),
            ("x-max-age", FieldValue::string("1d")),
        ],
        "s",
        durable,
    );
    assert_eq!(
        err.text,
        "PRECONDITION_FAILED - invalid arg 'x-max-age' for queue 's' in vhost '/': invalid_max_age"
    );
    let err = refuse(&[("x-max-age", FieldValue::string("x"))], "s", durable);
    assert_eq!(
        (err.code, err.text.as_str()),
        (ErrorCode::InternalError, "INTERNAL_ERROR")
    );
    let err = refuse(
        &[
            ("x-dead-letter-exchange", FieldValue::string("d")),
            ("x-message-ttl", FieldValue::I32(5)),
        ],
        "s",
        Declare {
            durable: false,
            ..durable
        },
    );
    assert_eq!(
        err.text,
        "PRECONDITION_FAILED - invalid arg 'x-dead-letter-exchange' for queue 's' in vhost '/' of queue type rabbit_stream_queue"
    );
    let err = refuse(
        &[("x-max-length-bytes", FieldValue::string("a"))],
        "s",
        durable,
    );
    assert!(
        err.text.ends_with("\"expected integer, got longstr\""),
        "{}",
        err.text
    );
    let all_bad = Declare {
        durable: false,
        exclusive: true,
        auto_delete: true,
    };
    let err = refuse(&[], "s", all_bad);
    assert!(err.text.contains("'auto-delete'"), "{}", err.text);
    let err = refuse(
        &[],
        "s",
        Declare {
            auto_delete: false,
            ..all_bad
        },
    );
    assert!(err.text.contains("'exclusive-owner'"), "{}", err.text);
    let err = refuse(
        &[(
            "x-stream-max-segment-size-bytes",
            FieldValue::I64(3_000_000_001),
        )],
        "s",
        durable,
    );
    assert_eq!(
        err.text,
        "PRECONDITION_FAILED - Exceeded max value for x-stream-max-segment-size-bytes"
    );
}

#[test]
fn consume_checks_follow_rabbitmqs_order() {
    let def = def_with(&[]);
    let ask = |args: &FieldTable, prefetch: u16, no_ack: bool| {
        check_consume(
            &def,
            "/",
            ConsumeAsk {
                args,
                no_ack,
                prefetch,
                shared_limit: false,
                now: 10_000_000,
            },
        )
    };
    let none = FieldTable::new();
    assert_eq!(ask(&none, 5, false).unwrap(), Some(Start::Next));
    let err = ask(&none, 0, true).unwrap_err();
    assert_eq!(err.code, ErrorCode::PreconditionFailed);
    let err = ask(&none, 5, true).unwrap_err();
    assert_eq!(err.code, ErrorCode::NotImplemented);
    let prio = table(&[
        ("x-priority", FieldValue::I32(1)),
        ("x-stream-offset", FieldValue::string("1d")),
    ]);
    let err = ask(&prio, 0, false).unwrap_err();
    assert!(
        err.text.contains("invalid_stream_offset_arg"),
        "{}",
        err.text
    );
    let one_hour = table(&[("x-stream-offset", FieldValue::string("1h"))]);
    assert_eq!(
        ask(&one_hour, 1, false).unwrap(),
        Some(Start::Timestamp(10_000_000 - 3_600_000))
    );
    let ts = table(&[("x-stream-offset", FieldValue::Timestamp(5))]);
    assert_eq!(ask(&ts, 1, false).unwrap(), Some(Start::Timestamp(5000)));
    let neg = table(&[("x-stream-offset", FieldValue::I32(-1))]);
    assert_eq!(ask(&neg, 1, false).unwrap(), Some(Start::First));
    let crash = table(&[("x-stream-offset", FieldValue::Bool(true))]);
    assert_eq!(
        ask(&crash, 1, false).unwrap_err().code,
        ErrorCode::InternalError
    );
}
