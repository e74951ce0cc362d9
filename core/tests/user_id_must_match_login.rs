//! A `user_id` property must name the user the connection logged in as
//! (406, channel closed); the matching one passes through.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::Properties;

#[test]
fn mismatched_user_id_is_refused() {
    let broker = TestBroker::start();
    let (q, _) = names_on_each_shard("userid-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    c.declare_simple_queue(ch, &q).unwrap();
    let props = |u: &str| Properties {
        user_id: Some(u.into()),
        ..Properties::default()
    };
    c.publish(ch, publish_props("", &q, "mine", props("guest")))
        .unwrap();
    c.flush().unwrap();
    passive(&mut c, ch, &q).unwrap();
    let g = c.get(ch, &q, true).unwrap().unwrap();
    assert_eq!(g.properties.user_id.as_deref(), Some("guest"));

    c.publish(ch, publish_props("", &q, "forged", props("admin")))
        .unwrap();
    c.flush().unwrap();
    let close = wait_channel_close(&mut c, ch);
    assert_eq!(
        (close.code, close.text.as_str()),
        (
            406,
            "PRECONDITION_FAILED - user_id property set to 'admin' but authenticated user was 'guest'"
        )
    );
    let ch = c.open_channel().unwrap();
    assert_eq!(
        passive(&mut c, ch, &q).unwrap().0,
        0,
        "forged message dropped"
    );
}
