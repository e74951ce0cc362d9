//! Streams (`x-queue-type: stream`): consumers read without removing,
//! from the offset they ask for (`x-stream-offset`: first, last, next, a
//! number, a timestamp, an interval), each delivery carrying its offset;
//! acks only give credit back; what a stream does not do is refused with
//! RabbitMQ 3.10's codes and texts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod stream_common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::FieldValue;
use stream_common::*;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Offsets and bodies a new consumer starting at `offset` gets (up to
/// `n`), on a fresh connection.
fn read_from(broker: &TestBroker, q: &str, offset: Option<FieldValue>, n: usize) -> Vec<u64> {
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    qos(&mut c, ch, 100);
    consume_from(&mut c, ch, q, offset).unwrap();
    let got = receive(&mut c, ch, n, true, if n == 0 { QUIET } else { WAIT });
    // Nothing more than asked for.
    assert!(c.next_delivery(QUIET).unwrap().is_none());
    got.into_iter().map(|(o, _)| o).collect()
}

#[test]
fn consumers_start_where_they_ask_and_remove_nothing() {
    // One stream on each shard: the consumer's connection is on either.
    let (a, b) = names_on_each_shard("stream-offsets-");
    let broker = TestBroker::start();
    for q in [a, b] {
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        let ok = declare_stream(&mut c, ch, &q, &[]).unwrap();
        assert_eq!((ok.message_count, ok.consumer_count), (0, 0));
        let before = now_secs();
        publish_confirmed(&mut c, &q, &numbered("m", 0..5));

        // Every consumer sees every message, in order, with its offset.
        for _ in 0..2 {
            let mut r = broker.connect();
            let rch = r.open_channel().unwrap();
            qos(&mut r, rch, 10);
            consume_from(&mut r, rch, &q, Some(FieldValue::string("first"))).unwrap();
            let got = receive(&mut r, rch, 5, true, WAIT);
            let want: Vec<(u64, bytes::Bytes)> = (0..5).zip(numbered("m", 0..5)).collect();
            assert_eq!(got, want);
        }
        assert_eq!(
            read_from(&broker, &q, Some(FieldValue::string("last")), 1),
            vec![4]
        );
        assert_eq!(
            read_from(&broker, &q, Some(FieldValue::I32(2)), 3),
            vec![2, 3, 4]
        );
        assert_eq!(
            read_from(&broker, &q, Some(FieldValue::I64(-1)), 5),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(
            read_from(&broker, &q, Some(FieldValue::I64(1 << 40)), 0),
            Vec::<u64>::new()
        );
        assert_eq!(
            read_from(&broker, &q, Some(FieldValue::string("next")), 0),
            Vec::<u64>::new()
        );
        assert_eq!(read_from(&broker, &q, None, 0), Vec::<u64>::new());
        let past = FieldValue::Timestamp(before - 60);
        assert_eq!(read_from(&broker, &q, Some(past), 5), vec![0, 1, 2, 3, 4]);
        let future = FieldValue::Timestamp(now_secs() + 60);
        assert_eq!(read_from(&broker, &q, Some(future), 0), Vec::<u64>::new());
        assert_eq!(
            read_from(&broker, &q, Some(FieldValue::string("1h")), 5).len(),
            5
        );

        // A consumer at "next" gets what is published after it started;
        // the stream still holds it all (consumers are not counted, as in
        // RabbitMQ).
        let mut r = broker.connect();
        let rch = r.open_channel().unwrap();
        qos(&mut r, rch, 10);
        consume_from(&mut r, rch, &q, Some(FieldValue::string("next"))).unwrap();
        publish_confirmed(&mut c, &q, &numbered("late", 0..2));
        let got = receive(&mut r, rch, 2, true, WAIT);
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(got[0].1, bytes::Bytes::from("late-0"));
        assert_eq!(passive(&mut c, ch, &q).unwrap(), (7, 0));
        assert_eq!(
            read_from(&broker, &q, Some(FieldValue::string("first")), 7).len(),
            7
        );
    }
}

#[test]
fn acks_give_credit_back_and_nothing_else() {
    let broker = TestBroker::start();
    let mut p = broker.connect();
    let pch = p.open_channel().unwrap();
    declare_stream(&mut p, pch, "stream-credit", &[]).unwrap();
    publish_confirmed(&mut p, "stream-credit", &numbered("m", 0..10));

    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    qos(&mut c, ch, 3);
    consume_from(
        &mut c,
        ch,
        "stream-credit",
        Some(FieldValue::string("first")),
    )
    .unwrap();
    let first = deliveries(&mut c, 10, QUIET * 2);
    assert_eq!(first.len(), 3, "prefetch 3");
    ack(&mut c, ch, first[0].delivery_tag);
    let more = deliveries(&mut c, 10, QUIET * 2);
    assert_eq!(more.iter().map(offset_of).collect::<Vec<_>>(), vec![3]);
    settle(
        &mut c,
        ch,
        m::Settle {
            delivery_tag: more[0].delivery_tag,
            op: m::SettleOp::Ack,
            multiple: true,
            requeue: false,
        },
    );
    let rest = deliveries(&mut c, 10, QUIET * 2);
    assert_eq!(
        rest.iter().map(offset_of).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );

    // The headers keep what the publisher set, plus the offset.
    let mut p2 = broker.connect();
    let ch2 = p2.open_channel().unwrap();
    p2.publish(
        ch2,
        publish_props(
            "",
            "stream-credit",
            "with-headers",
            ringmq_protocol::Properties {
                headers: Some(table(&[("h", FieldValue::string("v"))])),
                content_type: Some("text/plain".into()),
                ..ringmq_protocol::Properties::default()
            },
        ),
    )
    .unwrap();
    p2.flush().unwrap();
    let mut r = broker.connect();
    let rch = r.open_channel().unwrap();
    qos(&mut r, rch, 1);
    consume_from(&mut r, rch, "stream-credit", Some(FieldValue::I32(10))).unwrap();
    let d = deliveries(&mut r, 1, WAIT).pop().expect("delivery");
    let h = d.properties.headers.as_ref().unwrap();
    assert_eq!(h.get("h"), Some(&FieldValue::string("v")));
    assert_eq!(h.get("x-stream-offset"), Some(&FieldValue::I64(10)));
    assert_eq!(d.properties.content_type.as_deref(), Some("text/plain"));
}

#[test]
fn what_a_stream_does_not_do_is_refused_as_rabbitmq_refuses_it() {
    let broker = TestBroker::start();
    let q = "stream-refusals";
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_stream(&mut c, ch, q, &[]).unwrap();
    publish_confirmed(&mut c, q, &numbered("m", 0..2));
    let vq = format!("queue '{q}' in vhost '/'");

    // Declares.
    let declare = |durable: bool,
                   exclusive: bool,
                   auto_delete: bool,
                   name: &str,
                   extra: &[(&str, FieldValue)]| {
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        c.queue_declare(m::QueueDeclare {
            channel: ch,
            queue: name.into(),
            durable,
            exclusive,
            auto_delete,
            arguments: stream_args(extra),
            ..m::QueueDeclare::default()
        })
    };
    let text = channel_closed(declare(false, false, false, "s2", &[]), 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - invalid property 'non-durable' for queue 's2' in vhost '/'"
    );
    let text = channel_closed(declare(true, true, false, "s2", &[]), 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue 's2' in vhost '/'"
    );
    let text = channel_closed(declare(true, false, true, "s2", &[]), 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 's2' in vhost '/'"
    );
    let text = channel_closed(declare(true, false, false, "", &[]), 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_stream_queue"
    );
    let text = channel_closed(
        declare(
            true,
            false,
            false,
            "s2",
            &[("x-message-ttl", FieldValue::I32(5))],
        ),
        406,
    );
    assert_eq!(text, "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 's2' in vhost '/' of queue type rabbit_stream_queue");
    let text = channel_closed(
        declare(
            true,
            false,
            false,
            "s2",
            &[("x-max-age", FieldValue::string("1d"))],
        ),
        406,
    );
    assert_eq!(text, "PRECONDITION_FAILED - invalid arg 'x-max-age' for queue 's2' in vhost '/': invalid_max_age");
    let text = connection_closed(
        declare(
            true,
            false,
            false,
            "s2",
            &[("x-max-age", FieldValue::string("x"))],
        ),
        541,
    );
    assert_eq!(text, "INTERNAL_ERROR");
    // Redeclared with other retention: inequivalent.
    let text = channel_closed(
        declare(
            true,
            false,
            false,
            q,
            &[("x-max-age", FieldValue::string("1h"))],
        ),
        406,
    );
    assert!(text.contains("inequivalent arg 'x-max-age'"), "{text}");

    // Consumes.
    let consume = |prefetch: u16, no_ack: bool, args: &[(&str, FieldValue)]| {
        let mut c = broker.connect();
        let ch = c.open_channel().unwrap();
        if prefetch > 0 {
            qos(&mut c, ch, prefetch);
        }
        c.consume(m::Consume {
            channel: ch,
            queue: q.into(),
            no_ack,
            arguments: table(args),
            ..m::Consume::default()
        })
    };
    let text = channel_closed(consume(0, false, &[]), 406);
    assert_eq!(
        text,
        format!("PRECONDITION_FAILED - consumer prefetch count is not set for '{vq}'")
    );
    let text = connection_closed(consume(5, true, &[]), 540);
    assert_eq!(
        text,
        format!("NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues {vq}")
    );
    let text = channel_closed(
        consume(5, false, &[("x-priority", FieldValue::I32(1))]),
        406,
    );
    assert_eq!(text, format!("PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{q}' in vhost '/' of queue type rabbit_stream_queue"));
    let text = channel_closed(
        consume(5, false, &[("x-stream-offset", FieldValue::string("5"))]),
        406,
    );
    assert_eq!(text, format!("PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{q}' in vhost '/': {{invalid_stream_offset_arg,{{longstr,<<\"5\">>}}}}"));
    let text = connection_closed(
        consume(
            5,
            false,
            &[("x-stream-offset", FieldValue::string("FIRST"))],
        ),
        541,
    );
    assert_eq!(text, "INTERNAL_ERROR");

    // basic.get, queue.purge.
    let mut g = broker.connect();
    let gch = g.open_channel().unwrap();
    let text = connection_closed(g.get(gch, q, false), 540);
    assert_eq!(
        text,
        format!("NOT_IMPLEMENTED - basic.get not supported by stream queues {vq}")
    );
    let mut g = broker.connect();
    let gch = g.open_channel().unwrap();
    let purge = g.call(Message::QueuePurge(m::QueuePurge {
        channel: gch,
        queue: q.into(),
    }));
    let text = connection_closed(purge, 540);
    assert_eq!(
        text,
        format!("NOT_IMPLEMENTED - queue.purge not supported by stream queues {vq}")
    );

    // A nack closes the connection.
    let mut n = broker.connect();
    let nch = n.open_channel().unwrap();
    qos(&mut n, nch, 5);
    consume_from(&mut n, nch, q, Some(FieldValue::string("first"))).unwrap();
    let d = deliveries(&mut n, 1, WAIT).pop().expect("delivery");
    n.settle(
        nch,
        m::Settle {
            delivery_tag: d.delivery_tag,
            op: m::SettleOp::Nack,
            multiple: false,
            requeue: true,
        },
    )
    .unwrap();
    let close = wait_connection_close(&mut n);
    assert_eq!(close.code, 540);
    assert_eq!(
        close.text,
        format!(
            "NOT_IMPLEMENTED - basic.nack and basic.reject not supported by stream queues {vq}"
        )
    );

    // A classic queue refuses x-stream-offset.
    let mut k = broker.connect();
    let kch = k.open_channel().unwrap();
    k.declare_simple_queue(kch, "classic-with-offset").ok();
    let r = k.consume(m::Consume {
        channel: kch,
        queue: "classic-with-offset".into(),
        arguments: table(&[("x-stream-offset", FieldValue::string("first"))]),
        ..m::Consume::default()
    });
    let text = channel_closed(r, 406);
    assert!(
        text.ends_with("of queue type rabbit_classic_queue"),
        "{text}"
    );

    // Deleting it cancels its consumers; delete-ok counts no messages.
    let mut s = broker.connect();
    let sch = s.open_channel().unwrap();
    qos(&mut s, sch, 5);
    consume_from(&mut s, sch, q, None).unwrap();
    let reply = c.call(Message::QueueDelete(m::QueueDelete {
        channel: ch,
        queue: q.into(),
        ..m::QueueDelete::default()
    }));
    match reply.unwrap() {
        Message::QueueDeleteOk(n) => assert_eq!(n.message_count, 0),
        other => panic!("{other:?}"),
    }
    let cancelled = std::iter::from_fn(|| next_event(&mut s, WAIT))
        .any(|e| matches!(e, ringmq_protocol::client::Event::Cancelled(_)));
    assert!(cancelled);
}
