//! Tests of the queue state machine, driven through a recording sink.

use super::args::QueueArgs;
use super::*;
use crate::message::{Parts, Text};
use bytes::Bytes;
use ringmq_protocol::{FieldTable, Properties};
use std::sync::Arc;

#[derive(Default)]
struct Rec {
    delivered: Vec<(ConsumerId, MsgId, bool, String)>,
    dead: Vec<(String, DeathReason)>,
    settled: Vec<MsgId>,
    /// (consumer, want) asked for.
    demanded: Vec<(ConsumerId, u32)>,
    /// (consumer, permits) given back.
    unused: Vec<(ConsumerId, u32)>,
    /// Flow changes reported.
    flow: Vec<bool>,
}

impl Sink for Rec {
    fn deliver(&mut self, _q: QueueId, c: &ConsumerSpec, qm: &QueuedMsg) {
        let body = String::from_utf8_lossy(&qm.msg.body).into_owned();
        self.delivered.push((c.id, qm.id, qm.redelivered(), body));
    }
    fn dead_letter(&mut self, _q: &QueueDef, msg: Message, reason: DeathReason) {
        self.dead
            .push((String::from_utf8_lossy(&msg.body).into_owned(), reason));
    }
    fn settled(&mut self, _q: QueueId, qm: &QueuedMsg) {
        self.settled.push(qm.id);
    }
    fn demand(&mut self, _q: QueueId, c: &ConsumerSpec, want: u32) {
        self.demanded.push((c.id, want));
    }
    fn unused(&mut self, _q: QueueId, c: &ConsumerSpec, permits: u32) {
        self.unused.push((c.id, permits));
    }
    fn flow(&mut self, _q: QueueId, on: bool) {
        self.flow.push(on);
    }
}

fn queue(args: QueueArgs) -> Queue {
    Queue::new(
        QueueDef {
            id: QueueId(1),
            name: "q".into(),
            shard: 0,
            durable: false,
            auto_delete: false,
            exclusive_owner: None,
            arguments: FieldTable::new(),
            args,
        },
        "/",
        0,
    )
}

fn msg(body: &str) -> Message {
    Message::new(Parts {
        exchange: Text::default(),
        routing_key: Text::new("q"),
        props: None,
        body: Bytes::copy_from_slice(body.as_bytes()),
        publisher: 99,
        published_us: 0,
    })
}

fn consumer(id: ConsumerId, no_ack: bool) -> ConsumerSpec {
    ConsumerSpec {
        id,
        shard: 0,
        session: id,
        no_ack,
        exclusive: false,
        no_local: false,
        priority: 0,
        gated: false,
        window: false,
    }
}

fn gated(id: ConsumerId) -> ConsumerSpec {
    ConsumerSpec {
        gated: true,
        ..consumer(id, false)
    }
}

fn bodies(rec: &Rec) -> Vec<(ConsumerId, String)> {
    rec.delivered.iter().map(|d| (d.0, d.3.clone())).collect()
}

#[test]
fn round_robin_among_consumers_with_credit() {
    let mut q = queue(QueueArgs::default());
    let mut rec = Rec::default();
    q.add_consumer(consumer(1, false), 10, 0, &mut rec).unwrap();
    q.add_consumer(consumer(2, false), 10, 0, &mut rec).unwrap();
    for b in ["a", "b", "c", "d"] {
        q.publish(msg(b), 0, &mut rec);
    }
    assert_eq!(
        bodies(&rec),
        vec![
            (1, "a".into()),
            (2, "b".into()),
            (1, "c".into()),
            (2, "d".into())
        ]
    );
}

#[test]
fn prefetch_one_gives_fair_dispatch() {
    let mut q = queue(QueueArgs::default());
    let mut rec = Rec::default();
    q.add_consumer(consumer(1, false), 1, 0, &mut rec).unwrap();
    q.add_consumer(consumer(2, false), 1, 0, &mut rec).unwrap();
    for b in ["a", "b", "c", "d"] {
        q.publish(msg(b), 0, &mut rec);
    }
    assert_eq!(rec.delivered.len(), 2);
    // Consumer 2 acks and gets credit back; consumer 1 is slow.
    let id_b = rec.delivered[1].1;
    assert!(q.ack(id_b, &mut rec));
    q.add_credit(2, 1, 0, &mut rec);
    assert_eq!(bodies(&rec)[2], (2, "c".into()));
    assert_eq!(q.len(), 1);
}

#[test]
fn requeue_keeps_original_order_and_sets_redelivered() {
    let mut q = queue(QueueArgs::default());
    let mut rec = Rec::default();
    for b in ["1", "2", "3", "4", "5"] {
        q.publish(msg(b), 0, &mut rec);
    }
    let mut got = Vec::new();
    while let Some((qm, _)) = q.get(7, false, 0, &mut rec).into_message() {
        got.push(qm.id);
    }
    assert_eq!(got.len(), 5);
    // Requeue in a scrambled order: the queue order is restored.
    q.requeue([got[3], got[0], got[4], got[1], got[2]], 0, &mut rec);
    let mut again = Vec::new();
    while let Some((qm, _)) = q.get(7, true, 0, &mut rec).into_message() {
        assert!(qm.redelivered());
        again.push(String::from_utf8_lossy(&qm.msg.body).into_owned());
    }
    assert_eq!(again, ["1", "2", "3", "4", "5"]);
}

#[test]
fn reject_without_requeue_dead_letters_when_configured() {
    let mut q = queue(QueueArgs {
        dead_letter_exchange: Some("dlx".into()),
        ..QueueArgs::default()
    });
    let mut rec = Rec::default();
    q.publish(msg("x"), 0, &mut rec);
    let (qm, left) = q.get(7, false, 0, &mut rec).into_message().unwrap();
    assert_eq!(left, 0);
    assert!(q.reject(qm.id, false, 0, &mut rec));
    assert_eq!(rec.dead, vec![("x".into(), DeathReason::Rejected)]);
    assert!(!q.ack(qm.id, &mut rec), "settled once");
}

#[test]
fn ttl_expires_at_head_and_dead_letters() {
    let mut q = queue(QueueArgs {
        message_ttl: Some(100),
        dead_letter_exchange: Some("dlx".into()),
        ..QueueArgs::default()
    });
    let mut rec = Rec::default();
    q.publish(msg("a"), 0, &mut rec);
    q.publish(msg("b"), 50, &mut rec);
    assert_eq!(q.next_deadline(), Some(100));
    q.expire(120, &mut rec);
    assert_eq!(rec.dead, vec![("a".into(), DeathReason::Expired)]);
    assert_eq!(q.len(), 1);
    q.expire(151, &mut rec);
    assert_eq!(q.len(), 0);
}

#[test]
fn per_message_ttl_uses_the_smaller() {
    let mut q = queue(QueueArgs {
        message_ttl: Some(1000),
        ..QueueArgs::default()
    });
    let mut rec = Rec::default();
    let mut m = msg("a");
    m.update(|p| {
        p.props = Some(Arc::new(Properties {
            expiration: Some("10".into()),
            ..Properties::default()
        }))
    });
    q.publish(m, 0, &mut rec);
    assert_eq!(q.next_deadline(), Some(10));
}

#[test]
fn max_length_drop_head_and_reject_publish() {
    let mut q = queue(QueueArgs {
        max_length: Some(2),
        ..QueueArgs::default()
    });
    let mut rec = Rec::default();
    for b in ["a", "b", "c"] {
        assert_eq!(q.publish(msg(b), 0, &mut rec), Accepted::Yes);
    }
    assert_eq!(q.len(), 2);
    assert_eq!(
        q.get(1, true, 0, &mut rec)
            .into_message()
            .unwrap()
            .0
            .msg
            .body,
        Bytes::from_static(b"b")
    );

    let mut q = queue(QueueArgs {
        max_length: Some(1),
        overflow: Overflow::RejectPublish,
        ..QueueArgs::default()
    });
    assert_eq!(q.publish(msg("a"), 0, &mut rec), Accepted::Yes);
    assert_eq!(q.publish(msg("b"), 0, &mut rec), Accepted::Rejected);
    assert_eq!(q.len(), 1);
}

#[test]
fn priorities_deliver_highest_first() {
    let mut q = queue(QueueArgs {
        max_priority: Some(5),
        ..QueueArgs::default()
    });
    let mut rec = Rec::default();
    for (b, p) in [("low", 1), ("high", 9), ("mid", 3)] {
        let mut m = msg(b);
        m.update(|parts| {
            parts.props = Some(Arc::new(Properties {
                priority: Some(p),
                ..Properties::default()
            }))
        });
        q.publish(m, 0, &mut rec);
    }
    let order: Vec<String> = std::iter::from_fn(|| q.get(1, true, 0, &mut rec).into_message())
        .map(|(qm, _)| String::from_utf8_lossy(&qm.msg.body).into_owned())
        .collect();
    assert_eq!(order, ["high", "mid", "low"]);
}

#[test]
fn exclusive_consumer_and_auto_delete() {
    let mut q = queue(QueueArgs::default());
    q.def.auto_delete = true;
    let mut rec = Rec::default();
    let mut c = consumer(1, true);
    c.exclusive = true;
    q.add_consumer(c, 5, 0, &mut rec).unwrap();
    let err = q
        .add_consumer(consumer(2, true), 5, 0, &mut rec)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AccessRefused);
    assert!(
        q.remove_consumer(1, 0, &mut rec),
        "last consumer gone: auto-delete"
    );
}

#[test]
fn no_ack_deliveries_settle_immediately() {
    let mut q = queue(QueueArgs::default());
    let mut rec = Rec::default();
    q.add_consumer(consumer(1, true), 2, 0, &mut rec).unwrap();
    for b in ["a", "b", "c"] {
        q.publish(msg(b), 0, &mut rec);
    }
    assert_eq!(rec.delivered.len(), 2, "credit bounds deliveries");
    assert_eq!(rec.settled.len(), 2);
    assert_eq!(q.unacked_len(), 0);
    assert_eq!(q.len(), 1);
}

#[test]
fn x_expires_deadline() {
    let mut q = queue(QueueArgs {
        expires: Some(1000),
        ..QueueArgs::default()
    });
    assert_eq!(q.next_deadline(), Some(1000));
    assert!(!q.is_expired(999));
    assert!(q.is_expired(1000));
    q.touch(500);
    assert!(!q.is_expired(1000));
}

/// A message restored from the log: `resident` false means its body is
/// only there.
fn restored(id: MsgId, body: &str, expires_at: Option<u64>, resident: bool) -> QueuedMsg {
    let m = if resident {
        msg(body)
    } else {
        Message::paged_out()
    };
    QueuedMsg {
        id,
        msg: m,
        expires_at,
        loc: Some(crate::log::LogLoc {
            seq: 1,
            offset: id * 100,
            len: 100,
        }),
        resident,
        size: body.len() as u32,
        durable: true,
        priority: 0,
        returns: 0,
    }
}

#[test]
fn get_never_takes_a_paged_out_head_uncovered_by_expiry() {
    let mut q = queue(QueueArgs::default());
    let mut rec = Rec::default();
    // In memory, expiring at 10; behind it a body that is only in the log.
    q.restore([
        restored(1, "expires", Some(10), true),
        restored(2, "paged out", None, false),
    ]);
    assert!(q.head_resident(), "the head before expiry is in memory");
    assert!(matches!(q.get(7, true, 20, &mut rec), Got::Paged));
    assert_eq!(q.len(), 1, "the expired head left; the paged-out one stays");
    assert!(q.fill(2, msg("paged out")));
    let (qm, left) = q.get(7, true, 20, &mut rec).into_message().unwrap();
    assert_eq!((qm.id, &qm.msg.body[..], left), (2, &b"paged out"[..], 0));
    assert!(matches!(q.get(7, true, 20, &mut rec), Got::Empty));
}

#[test]
fn a_queue_entry_is_at_most_64_bytes() {
    // The per-message cost of a paged-out message (its parts are in the
    // log; the entry shares one empty stand-in), as docs/storage-format.md
    // states.
    assert!(
        std::mem::size_of::<QueuedMsg>() <= 64,
        "{} bytes",
        std::mem::size_of::<QueuedMsg>()
    );
}

#[test]
fn a_gated_consumer_delivers_only_with_permits() {
    let mut q = queue(QueueArgs::default());
    let mut rec = Rec::default();
    q.add_consumer(gated(1), 10, 0, &mut rec).unwrap();
    assert!(rec.demanded.is_empty(), "nothing ready, nothing asked");
    for b in ["a", "b", "c"] {
        q.publish(msg(b), 0, &mut rec);
    }
    assert!(rec.delivered.is_empty());
    assert_eq!(rec.demanded, [(1, 1)], "asked once, at the first message");
    // Two permits: two deliveries; it asks again for the one left.
    q.add_permits(1, 2, 0, &mut rec);
    assert_eq!(bodies(&rec), [(1, "a".into()), (1, "b".into())]);
    assert_eq!(rec.demanded, [(1, 1), (1, 1)]);
    q.add_permits(1, 1, 0, &mut rec);
    assert_eq!(rec.delivered.len(), 3);
    assert!(rec.unused.is_empty());
}

#[test]
fn permits_a_gated_consumer_cannot_use_go_back() {
    let mut q = queue(QueueArgs::default());
    let mut rec = Rec::default();
    q.add_consumer(gated(1), 10, 0, &mut rec).unwrap();
    q.publish(msg("a"), 0, &mut rec);
    assert_eq!(rec.demanded, [(1, 1)]);
    // The message is taken by basic.get before the permits arrive.
    assert!(q.get(7, true, 0, &mut rec).into_message().is_some());
    q.add_permits(1, 1, 0, &mut rec);
    assert!(rec.delivered.is_empty());
    assert_eq!(rec.unused, [(1, 1)]);
}

#[test]
fn a_gated_consumer_asks_for_no_more_than_its_credit() {
    let mut q = queue(QueueArgs::default());
    let mut rec = Rec::default();
    for b in ["a", "b", "c", "d", "e"] {
        q.publish(msg(b), 0, &mut rec);
    }
    q.add_consumer(gated(1), 2, 0, &mut rec).unwrap();
    assert_eq!(rec.demanded, [(1, 2)]);
    q.add_permits(1, 2, 0, &mut rec);
    assert_eq!(rec.delivered.len(), 2);
    // Out of credit: no new demand until credit comes back.
    assert_eq!(rec.demanded.len(), 1);
    q.add_credit(1, 1, 0, &mut rec);
    assert_eq!(rec.demanded, [(1, 2), (1, 1)]);
}

#[test]
fn gating_an_existing_consumer_stops_it_until_permits_come() {
    let mut q = queue(QueueArgs::default());
    let mut rec = Rec::default();
    q.add_consumer(consumer(1, false), 10, 0, &mut rec).unwrap();
    q.add_consumer(consumer(2, false), 10, 0, &mut rec).unwrap();
    q.gate(1, 0, &mut rec);
    for b in ["a", "b", "c"] {
        q.publish(msg(b), 0, &mut rec);
    }
    // Consumer 2 is not gated and takes them all while 1 waits.
    assert_eq!(
        bodies(&rec),
        [(2, "a".into()), (2, "b".into()), (2, "c".into())]
    );
    assert!(rec.demanded.is_empty(), "nothing was ever left for it");
    q.remove_consumer(2, 0, &mut rec);
    q.publish(msg("d"), 0, &mut rec);
    assert_eq!(rec.demanded, [(1, 1)]);
    q.add_permits(1, 1, 0, &mut rec);
    assert_eq!(rec.delivered.last().map(|d| d.0), Some(1));
    assert!(rec.unused.is_empty());
}

#[test]
fn only_the_single_active_consumer_asks_for_permits() {
    let mut q = queue(QueueArgs {
        single_active_consumer: true,
        ..QueueArgs::default()
    });
    let mut rec = Rec::default();
    q.add_consumer(gated(1), 10, 0, &mut rec).unwrap();
    q.add_consumer(gated(2), 10, 0, &mut rec).unwrap();
    q.publish(msg("a"), 0, &mut rec);
    assert_eq!(rec.demanded, [(1, 1)]);
    q.add_permits(2, 3, 0, &mut rec);
    assert_eq!(rec.unused, [(2, 3)]);
    assert!(rec.delivered.is_empty());
}

/// A sink that pages out every message it is asked to.
#[derive(Default)]
struct Pager(Rec);

impl Sink for Pager {
    fn deliver(&mut self, q: QueueId, c: &ConsumerSpec, qm: &QueuedMsg) {
        self.0.deliver(q, c, qm);
    }
    fn dead_letter(&mut self, q: &QueueDef, msg: Message, reason: DeathReason) {
        self.0.dead_letter(q, msg, reason);
    }
    fn settled(&mut self, q: QueueId, qm: &QueuedMsg) {
        self.0.settled(q, qm);
    }
    fn demand(&mut self, q: QueueId, c: &ConsumerSpec, want: u32) {
        self.0.demand(q, c, want);
    }
    fn unused(&mut self, q: QueueId, c: &ConsumerSpec, permits: u32) {
        self.0.unused(q, c, permits);
    }
    fn page_out(&mut self, _queue: &QueueDef, qm: &mut QueuedMsg) -> bool {
        qm.resident = false;
        qm.loc = Some(crate::log::LogLoc {
            seq: 0,
            offset: qm.id * 100,
            len: qm.size,
        });
        true
    }
}

fn gauges(q: &Queue) -> ringmq_mgmt::view::QueueRow {
    let mut r = ringmq_mgmt::view::QueueRow::default();
    q.fill_row(&mut r);
    r
}

#[test]
fn gauges_follow_the_queue_without_walking_it() {
    let mut q = queue(QueueArgs::default());
    let mut sink = Pager::default();
    for b in ["aa", "bbb", "cccc", "d"] {
        q.publish(msg(b), 0, &mut sink);
    }
    let g = gauges(&q);
    assert_eq!((g.ready, g.ready_bytes, g.ram_bytes), (4, 10, 10));
    // Two page out (after the first kept): 7 bytes leave memory.
    assert_eq!(q.page_out(1, 7, &mut sink), 7);
    assert_eq!(gauges(&q).ram_bytes, 3);
    let id = q.paged_head(1)[0].0;
    assert!(q.fill(id, msg("bbb")));
    assert_eq!(gauges(&q).ram_bytes, 6);
    assert!(q.get(1, true, 0, &mut sink).into_message().is_some());
    let g = gauges(&q);
    assert_eq!((g.ready, g.ready_bytes, g.ram_bytes), (3, 8, 4));
    assert_eq!(g.counters.got_no_ack, 1);
    assert_eq!(g.counters.published, 4);
    q.purge(&mut sink);
    let g = gauges(&q);
    assert_eq!(
        (g.ready, g.ready_bytes, g.ram_bytes, g.persistent),
        (0, 0, 0, 0)
    );
}

#[test]
fn a_backlog_in_front_of_a_window_consumer_puts_the_queue_in_flow() {
    let mut q = queue(QueueArgs::default());
    q.set_flow_backlog(4);
    let mut rec = Rec::default();
    // A consumer with a prefetch limit: a backlog is its own pace.
    q.add_consumer(consumer(1, false), 1, 0, &mut rec).unwrap();
    for i in 0..10 {
        q.publish(msg(&i.to_string()), 0, &mut rec);
    }
    assert!(rec.flow.is_empty() && !q.in_flow());
    // A consumer without one (its credit is the socket window, used up):
    // the broker is behind, publishers are asked to pause.
    let window = ConsumerSpec {
        window: true,
        ..consumer(2, true)
    };
    q.add_consumer(window, 0, 0, &mut rec).unwrap();
    assert_eq!(rec.flow, [true]);
    // Out at half the backlog (the ready count goes 9 -> 2).
    q.add_credit(2, 6, 0, &mut rec);
    assert_eq!(rec.flow, [true], "3 ready: still above 4 / 2");
    q.add_credit(2, 1, 0, &mut rec);
    assert_eq!(rec.flow, [true, false]);
    // Back in, then out when the window consumer goes.
    for i in 0..4 {
        q.publish(msg(&i.to_string()), 0, &mut rec);
    }
    assert_eq!(rec.flow, [true, false, true]);
    q.remove_consumer(2, 0, &mut rec);
    assert_eq!(rec.flow, [true, false, true, false]);
    // Purge and delete leave it too.
    q.add_consumer(
        ConsumerSpec {
            window: true,
            ..consumer(3, true)
        },
        0,
        0,
        &mut rec,
    )
    .unwrap();
    assert_eq!(rec.flow.last(), Some(&true));
    q.purge(&mut rec);
    assert_eq!(rec.flow.last(), Some(&false));
    for i in 0..4 {
        q.publish(msg(&i.to_string()), 0, &mut rec);
    }
    assert_eq!(rec.flow.last(), Some(&true));
    q.delete(&mut rec);
    assert_eq!(rec.flow.last(), Some(&false));
    assert!(!q.in_flow());
}

#[test]
fn flow_backlog_zero_never_enters_flow() {
    let mut q = queue(QueueArgs::default());
    q.set_flow_backlog(0);
    let mut rec = Rec::default();
    let window = ConsumerSpec {
        window: true,
        ..consumer(1, true)
    };
    q.add_consumer(window, 0, 0, &mut rec).unwrap();
    for i in 0..100 {
        q.publish(msg(&i.to_string()), 0, &mut rec);
    }
    assert!(rec.flow.is_empty());
}
