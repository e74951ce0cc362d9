//! An internal exchange takes messages only from other exchanges; a
//! client publishing to it gets 403 and loses the channel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::message as m;
use ringmq_protocol::{FieldTable, Message};

#[test]
fn publishing_to_an_internal_exchange_is_refused() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("internal-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.call(Message::ExchangeDeclare(m::ExchangeDeclare {
        channel: ch,
        exchange: "inner".into(),
        kind: "fanout".into(),
        internal: true,
        ..m::ExchangeDeclare::default()
    }))
    .unwrap();
    c.exchange_declare(ch, "outer", "fanout").unwrap();
    c.declare_simple_queue(ch, &q).unwrap();
    c.queue_bind(ch, &q, "inner", "", FieldTable::new())
        .unwrap();
    c.call(Message::ExchangeBind(m::Bind {
        channel: ch,
        destination: "inner".into(),
        source: "outer".into(),
        ..m::Bind::default()
    }))
    .unwrap();

    // Through another exchange: fine.
    publish_all(&mut c, ch, "outer", "", &["via-outer"]);
    passive(&mut c, ch, &q).unwrap();
    assert_eq!(drain(&mut c, ch, &q), ["via-outer"]);

    // Directly: 403 channel close.
    publish_all(&mut c, ch, "inner", "", &["direct"]);
    let close = wait_channel_close(&mut c, ch);
    assert_eq!(close.code, 403);
    assert_eq!(
        close.text,
        "ACCESS_REFUSED - cannot publish to internal exchange 'inner' in vhost '/'"
    );
    // The connection is still usable.
    let ch2 = c.open_channel().unwrap();
    assert_eq!(passive(&mut c, ch2, &q).unwrap().0, 0);
}
