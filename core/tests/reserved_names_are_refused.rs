//! Names starting with `amq.` are reserved: declaring such a queue or a new
//! such exchange is refused with 403.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;

#[test]
fn queue_named_amq_is_refused() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let r = c.declare_simple_queue(ch, "amq.x");
    assert_eq!(
        channel_closed(r, 403),
        "ACCESS_REFUSED - queue name 'amq.x' contains reserved prefix 'amq.*'"
    );
}

#[test]
fn redeclaring_a_server_named_queue_by_name_is_refused() {
    // RabbitMQ checks the prefix of every named non-passive declare, even
    // of an existing queue; passive declares of the name are fine.
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let name = c.declare_simple_queue(ch, "").unwrap();
    assert_eq!(passive(&mut c, ch, &name).unwrap(), (0, 0));
    let r = c.declare_simple_queue(ch, &name);
    assert_eq!(
        channel_closed(r, 403),
        format!("ACCESS_REFUSED - queue name '{name}' contains reserved prefix 'amq.*'")
    );
}

#[test]
fn new_exchange_named_amq_is_refused() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let r = c.exchange_declare(ch, "amq.custom", "direct");
    assert_eq!(
        channel_closed(r, 403),
        "ACCESS_REFUSED - exchange name 'amq.custom' contains reserved prefix 'amq.*'"
    );
    // Deleting a predeclared exchange is refused too.
    let ch = c.open_channel().unwrap();
    let r = c.call(Message::ExchangeDelete(m::ExchangeDelete {
        channel: ch,
        exchange: "amq.direct".into(),
        if_unused: false,
    }));
    assert_eq!(
        channel_closed(r, 403),
        "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
    );
}
