//! Sender-selected distribution through the native protocol: the `CC` and
//! `BCC` headers add routing keys, a queue gets one copy, `BCC` is never
//! delivered, and a header that is not an array closes the channel (406).
//! Queues on both shards; single and dense publishes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::{FieldTable, FieldValue, Properties};

fn keys(names: &[&str]) -> FieldValue {
    FieldValue::Array(names.iter().map(|n| FieldValue::string(*n)).collect())
}

fn with_headers(entries: &[(&str, FieldValue)]) -> Properties {
    Properties {
        headers: Some(table(entries)),
        ..Properties::default()
    }
}

/// The header names of a message got from `queue`, and its body.
fn got(c: &mut Connection, ch: u16, queue: &str) -> Option<(String, Vec<String>, String)> {
    let g = c.get(ch, queue, true).unwrap()?;
    let names = g
        .properties
        .headers
        .as_ref()
        .map(|h: &FieldTable| h.0.iter().map(|(k, _)| k.clone()).collect())
        .unwrap_or_default();
    Some((text(&g.body), names, g.routing_key))
}

fn declare_all(c: &mut Connection, ch: u16, names: &[&str]) {
    for q in names {
        c.declare_simple_queue(ch, q).unwrap();
    }
}

#[test]
fn cc_and_bcc_add_routing_keys_and_bcc_is_removed() {
    let broker = TestBroker::start();
    let (a, b) = names_on_each_shard("ssd-");
    let (c3, _) = names_on_each_shard("ssd-third-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_all(&mut c, ch, &[&a, &b, &c3]);
    let props = with_headers(&[
        ("CC", keys(&[&b, &b, "nowhere"])),
        ("x", FieldValue::I32(1)),
        ("BCC", keys(&[&c3, &a])),
    ]);
    c.publish(ch, publish_props("", &a, "one", props)).unwrap();
    c.flush().unwrap();
    for q in [&a, &b, &c3] {
        wait_ready(&mut c, ch, q, 1);
        let (body, names, key) = got(&mut c, ch, q).unwrap();
        assert_eq!(body, "one");
        assert_eq!(names, ["CC", "x"], "BCC removed, the rest kept in order");
        assert_eq!(key, a, "every copy keeps its routing key");
        assert!(got(&mut c, ch, q).is_none(), "one copy per queue");
    }
}

#[test]
fn a_dense_batch_is_routed_with_its_cc_keys_once() {
    let broker = TestBroker::start();
    let (a, b) = names_on_each_shard("ssd-dense-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_all(&mut c, ch, &[&a, &b]);
    let props = with_headers(&[("BCC", keys(&[&b]))]);
    for body in ["m1", "m2", "m3"] {
        c.publish(ch, publish_props("", &a, body, props.clone()))
            .unwrap();
    }
    c.flush().unwrap();
    for q in [&a, &b] {
        wait_ready(&mut c, ch, q, 3);
        let all: Vec<(String, Vec<String>)> = std::iter::from_fn(|| got(&mut c, ch, q))
            .map(|(body, names, _)| (body, names))
            .collect();
        let empty = Vec::<String>::new;
        assert_eq!(
            all,
            [
                ("m1".to_owned(), empty()),
                ("m2".to_owned(), empty()),
                ("m3".to_owned(), empty())
            ]
        );
    }
}

#[test]
fn consumers_never_see_bcc() {
    let broker = TestBroker::start();
    let (a, b) = names_on_each_shard("ssd-consume-");
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_all(&mut c, ch, &[&a, &b]);
    c.consume(consume(ch, &b, true)).unwrap();
    let props = with_headers(&[("BCC", keys(&[&b])), ("CC", keys(&[]))]);
    c.publish(ch, publish_props("", &a, "hidden", props))
        .unwrap();
    c.flush().unwrap();
    let d = deliveries(&mut c, 1, WAIT);
    assert_eq!(d.len(), 1);
    let names: Vec<&str> = d[0]
        .properties
        .headers
        .iter()
        .flat_map(|h| h.0.iter().map(|(k, _)| k.as_str()))
        .collect();
    assert_eq!(names, ["CC"]);
}

#[test]
fn a_routing_header_that_is_not_an_array_closes_the_channel() {
    let broker = TestBroker::start();
    let (a, b) = names_on_each_shard("ssd-bad-");
    let mut c = broker.connect();
    for (header, value, found) in [
        ("CC", FieldValue::string(&b), "longstr"),
        ("BCC", FieldValue::I64(1), "long"),
        ("CC", FieldValue::Table(FieldTable::new()), "table"),
    ] {
        let ch = c.open_channel().unwrap();
        declare_all(&mut c, ch, &[&a, &b]);
        let props = with_headers(&[(header, value)]);
        c.publish(ch, publish_props("", &a, "bad", props)).unwrap();
        c.flush().unwrap();
        let close = wait_channel_close(&mut c, ch);
        assert_eq!(close.code, 406);
        assert_eq!(
            close.text,
            format!(
                "PRECONDITION_FAILED - invalid message: \
                 {{unacceptable_type_in_header,\"{header}\",{found}}}"
            )
        );
        assert_eq!(
            close.failed_kind,
            ringmq_protocol::frame::Kind::Publish.as_u16()
        );
    }
    let ch = c.open_channel().unwrap();
    for q in [&a, &b] {
        assert_eq!(passive(&mut c, ch, q).unwrap().0, 0, "nothing routed");
    }
    // Lower case is an ordinary header.
    let props = with_headers(&[("cc", FieldValue::string(&b))]);
    c.publish(ch, publish_props("", &a, "fine", props)).unwrap();
    c.flush().unwrap();
    wait_ready(&mut c, ch, &a, 1);
    assert_eq!(passive(&mut c, ch, &b).unwrap().0, 0);
}
