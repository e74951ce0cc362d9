//! Deleting a queue that has a consumer on the same channel: the client
//! gets `queue.delete-ok` first and then the server's `basic.cancel`, as
//! RabbitMQ orders them (py-amqp, and so kombu and Celery, raise
//! `ConsumerCancelled` in the middle of `queue.delete()` otherwise).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use amq_protocol::protocol::{basic, queue, AMQPClass};
use amq_protocol::types::FieldTable;
use ringmq_e2e::raw::*;
use ringmq_e2e::TestGateway;

#[test]
fn queue_delete_ok_comes_before_the_cancel_of_its_consumer() {
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    let q = c.declare_exclusive(1);
    c.send_method(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: q.clone(),
            consumer_tag: "ctag".into(),
            no_local: false,
            no_ack: true,
            exclusive: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    match c.method() {
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(_)) => {}
        other => panic!("expected basic.consume-ok, got {other:?}"),
    }
    c.send_method(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: q,
            if_unused: false,
            if_empty: false,
            nowait: false,
        })),
    );
    match c.method() {
        AMQPClass::Queue(queue::AMQPMethod::DeleteOk(_)) => {}
        other => panic!("expected queue.delete-ok first, got {other:?}"),
    }
    match c.method() {
        AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)) => {
            assert_eq!(cancel.consumer_tag.as_str(), "ctag");
        }
        other => panic!("expected basic.cancel after delete-ok, got {other:?}"),
    }
    assert_gateway_alive(gw.addr);
    drop(c);
    gw.stop();
}
