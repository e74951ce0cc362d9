//! `Qos` with `global`: one limit shared by all the consumers of a channel
//! (those started before it too), applied together with each consumer's
//! own prefetch; `basic.get` is neither limited nor counted; a no-ack
//! consumer waits while the limit is reached. Queues on both shards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;

fn qos(c: &mut Connection, ch: u16, n: u16, global: bool) {
    let ok = c
        .call(Message::Qos(m::Qos {
            channel: ch,
            prefetch_size: 0,
            prefetch_count: n,
            global,
        }))
        .unwrap();
    assert_eq!(ok, Message::QosOk(ch));
}

/// Two queues, one on each shard, holding `n` messages each.
fn two_queues(broker: &TestBroker, prefix: &str, n: usize) -> [String; 2] {
    let (q0, q1) = names_on_each_shard(prefix);
    let mut p = broker.connect();
    let ch = p.open_channel().unwrap();
    for q in [&q0, &q1] {
        p.declare_simple_queue(ch, q).unwrap();
        let bodies: Vec<String> = (0..n).map(|i| format!("{q}-{i}")).collect();
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
        publish_all(&mut p, ch, "", q, &bodies);
        wait_ready(&mut p, ch, q, n as u32);
    }
    [q0, q1]
}

/// Every delivery that arrives until none has for `QUIET`.
fn all_deliveries(c: &mut Connection) -> Vec<m::Delivery> {
    let mut out = Vec::new();
    loop {
        let more = deliveries(c, 1, QUIET);
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

fn ack_all(c: &mut Connection, ch: u16) {
    settle(
        c,
        ch,
        m::Settle {
            delivery_tag: 0,
            op: m::SettleOp::Ack,
            multiple: true,
            requeue: false,
        },
    );
}

#[test]
fn one_limit_for_all_the_consumers_of_the_channel() {
    let broker = TestBroker::start();
    let qs = two_queues(&broker, "shared-", 5);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    qos(&mut c, ch, 3, true);
    for q in &qs {
        c.consume(consume(ch, q, false)).unwrap();
    }
    let first = all_deliveries(&mut c);
    assert_eq!(first.len(), 3, "3 in all, whichever queue they came from");
    // Each ack makes room for exactly one more.
    ack(&mut c, ch, first[0].delivery_tag);
    assert_eq!(all_deliveries(&mut c).len(), 1);
    ack_all(&mut c, ch);
    assert_eq!(all_deliveries(&mut c).len(), 3);
    ack_all(&mut c, ch);
    assert_eq!(all_deliveries(&mut c).len(), 3, "10 = 3 + 1 + 3 + 3");
    ack_all(&mut c, ch);
    assert!(all_deliveries(&mut c).is_empty());
    for q in &qs {
        assert_eq!(passive(&mut c, ch, q).unwrap().0, 0);
    }
}

#[test]
fn per_consumer_and_global_limits_apply_together() {
    let broker = TestBroker::start();
    let qs = two_queues(&broker, "both-", 5);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    // Per consumer 1, shared 5: each consumer is held at 1.
    qos(&mut c, ch, 1, false);
    qos(&mut c, ch, 5, true);
    for q in &qs {
        c.consume(consume(ch, q, false)).unwrap();
    }
    let got = all_deliveries(&mut c);
    let mut tags: Vec<&str> = got.iter().map(|d| d.consumer_tag.as_str()).collect();
    tags.sort_unstable();
    tags.dedup();
    assert_eq!((got.len(), tags.len()), (2, 2), "one for each consumer");

    // Per consumer 4, shared 2 (a new channel): the shared one binds.
    let ch2 = c.open_channel().unwrap();
    qos(&mut c, ch2, 4, false);
    qos(&mut c, ch2, 2, true);
    c.consume(consume(ch2, &qs[0], false)).unwrap();
    assert_eq!(all_deliveries(&mut c).len(), 2);
}

#[test]
fn consumers_started_before_the_limit_come_under_it() {
    let broker = TestBroker::start();
    let qs = two_queues(&broker, "before-", 0);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    for q in &qs {
        c.consume(consume(ch, q, false)).unwrap();
    }
    qos(&mut c, ch, 2, true);
    let mut p = broker.connect();
    let pch = p.open_channel().unwrap();
    for q in &qs {
        publish_all(&mut p, pch, "", q, &["a", "b", "c"]);
    }
    let got = all_deliveries(&mut c);
    assert_eq!(got.len(), 2);
    ack(&mut c, ch, got[0].delivery_tag);
    assert_eq!(all_deliveries(&mut c).len(), 1);
    // Global 0 lifts the limit: the rest come at once.
    qos(&mut c, ch, 0, true);
    assert_eq!(all_deliveries(&mut c).len(), 3);
}

#[test]
fn a_per_consumer_qos_lifts_the_shared_limit_as_in_rabbitmq() {
    let broker = TestBroker::start();
    let qs = two_queues(&broker, "lift-", 3);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    qos(&mut c, ch, 2, true);
    for q in &qs {
        c.consume(consume(ch, q, false)).unwrap();
    }
    assert_eq!(all_deliveries(&mut c).len(), 2);
    // RabbitMQ 3.10's basic.qos global=false unlimits the channel.
    qos(&mut c, ch, 10, false);
    assert_eq!(all_deliveries(&mut c).len(), 4);
    // A new shared limit counts what is unacked already: 6 of 4.
    qos(&mut c, ch, 4, true);
    let mut p = broker.connect();
    let pch = p.open_channel().unwrap();
    publish_all(&mut p, pch, "", &qs[0], &["x", "y"]);
    assert!(all_deliveries(&mut c).is_empty());
    ack_all(&mut c, ch);
    assert_eq!(all_deliveries(&mut c).len(), 2);
}

#[test]
fn basic_get_is_neither_limited_nor_counted() {
    let broker = TestBroker::start();
    let qs = two_queues(&broker, "get-", 3);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    qos(&mut c, ch, 1, true);
    // An unacked get does not take the channel's room...
    let g = c.get(ch, &qs[1], false).unwrap().expect("a message");
    c.consume(consume(ch, &qs[0], false)).unwrap();
    let held = all_deliveries(&mut c);
    assert_eq!(held.len(), 1);
    // ...and a full channel still gets.
    assert!(c.get(ch, &qs[1], false).unwrap().is_some());
    // Acking the gets makes no room for the consumer.
    ack(&mut c, ch, g.delivery_tag);
    assert!(all_deliveries(&mut c).is_empty());
    ack(&mut c, ch, held[0].delivery_tag);
    assert_eq!(all_deliveries(&mut c).len(), 1);
}

#[test]
fn no_ack_consumers_wait_while_the_limit_is_reached() {
    let broker = TestBroker::start();
    let qs = two_queues(&broker, "noack-", 4);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    qos(&mut c, ch, 1, true);
    c.consume(consume(ch, &qs[0], false)).unwrap();
    let held = all_deliveries(&mut c);
    assert_eq!(held.len(), 1);
    let tag = c.consume(consume(ch, &qs[1], true)).unwrap();
    assert!(all_deliveries(&mut c).is_empty(), "the limit is reached");
    // Cancel the acking consumer (its delivery stays unacked) and ack:
    // no-ack deliveries do not count, so all of them flow.
    let first = held[0].consumer_tag.clone();
    c.call(Message::Cancel(m::ConsumerTag {
        channel: ch,
        consumer_tag: first,
    }))
    .unwrap();
    ack(&mut c, ch, held[0].delivery_tag);
    let got = all_deliveries(&mut c);
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|d| d.consumer_tag == tag));
    assert_eq!(passive(&mut c, ch, &qs[1]).unwrap().0, 0);
}

#[test]
fn requeued_deliveries_give_their_room_and_credit_back() {
    let broker = TestBroker::start();
    let qs = two_queues(&broker, "recover-", 5);
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    qos(&mut c, ch, 2, true);
    c.consume(consume(ch, &qs[0], false)).unwrap();
    assert_eq!(all_deliveries(&mut c).len(), 2);
    let recover = Message::Recover(m::Recover {
        channel: ch,
        requeue: true,
    });
    assert_eq!(c.call(recover.clone()).unwrap(), Message::RecoverOk(ch));
    let again = all_deliveries(&mut c);
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|d| d.redelivered));

    // The same with a per-consumer prefetch, whose credit comes back too.
    let ch2 = c.open_channel().unwrap();
    qos(&mut c, ch2, 2, false);
    c.consume(consume(ch2, &qs[1], false)).unwrap();
    assert_eq!(all_deliveries(&mut c).len(), 2);
    let recover = Message::Recover(m::Recover {
        channel: ch2,
        requeue: true,
    });
    assert_eq!(c.call(recover).unwrap(), Message::RecoverOk(ch2));
    let again = all_deliveries(&mut c);
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|d| d.redelivered));
}

#[test]
fn the_limit_holds_only_its_own_channel() {
    // Another channel's consumer on the same queue takes what the limited
    // channel has no room for.
    let broker = TestBroker::start();
    let qs = two_queues(&broker, "other-", 4);
    let mut c = broker.connect();
    let limited = c.open_channel().unwrap();
    qos(&mut c, limited, 1, true);
    c.consume(consume(limited, &qs[0], false)).unwrap();
    let free = c.open_channel().unwrap();
    c.consume(consume(free, &qs[0], false)).unwrap();
    let mut per_channel = [0, 0];
    while let Some((ch, _)) = c.next_delivery(QUIET).unwrap() {
        per_channel[usize::from(ch == free)] += 1;
    }
    assert_eq!(per_channel, [1, 3]);
}

#[test]
fn a_quorum_queue_cannot_be_consumed_under_a_shared_limit() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("quorum-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let mut args = ringmq_protocol::FieldTable::new();
    args.insert(
        "x-queue-type",
        ringmq_protocol::FieldValue::string("quorum"),
    );
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: q.clone(),
        durable: true,
        arguments: args,
        ..m::QueueDeclare::default()
    })
    .unwrap();
    qos(&mut c, ch, 2, true);
    let text = connection_closed(c.consume(consume(ch, &q, false)), 540);
    assert_eq!(
        text,
        format!("NOT_IMPLEMENTED - queue '{q}' in vhost '/' does not support global qos")
    );
    // Lifted, it can.
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    qos(&mut c, ch, 2, true);
    qos(&mut c, ch, 0, true);
    c.consume(consume(ch, &q, false)).unwrap();
}
