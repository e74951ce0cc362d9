//! Policies and operator policies set over the management API apply at
//! once to matching queues and exchanges that exist already, combine with
//! queue arguments as RabbitMQ's do (numbers: the smaller wins; overflow
//! and dead-lettering: the argument wins; an operator policy is a
//! ceiling), the highest priority wins between two, removing one restores
//! the queue's own arguments, and they survive a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::http::*;
use common::*;
use ringmq_protocol::client::blocking::Connection as Conn;
use ringmq_protocol::client::Event;
use ringmq_protocol::field::FieldValue;
use ringmq_protocol::message as m;
use ringmq_protocol::Message;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(5);

fn durable_exchange(c: &mut Conn, ch: u16, name: &str, kind: &str) {
    c.call(Message::ExchangeDeclare(m::ExchangeDeclare {
        channel: ch,
        exchange: name.into(),
        kind: kind.into(),
        durable: true,
        ..Default::default()
    }))
    .unwrap();
}

fn put_policy(h: &Http, kind: &str, name: &str, body: Value) -> (u16, Value) {
    let (s, b, _) = h.send("PUT", &format!("/api/{kind}/%2F/{name}"), Some(body));
    (s, b)
}

/// Confirms for `n` publishes on `ch`: nacked or not, in order.
fn confirms(c: &mut Conn, n: usize) -> Vec<bool> {
    let mut out = Vec::new();
    while out.len() < n {
        match next_event(c, WAIT) {
            Some(Event::Confirm(_, conf)) => {
                let to = if conf.multiple {
                    conf.delivery_tag as usize
                } else {
                    out.len() + 1
                };
                while out.len() < to {
                    out.push(conf.nack);
                }
            }
            other => panic!("expected a confirm, got {other:?}"),
        }
    }
    out
}

#[test]
fn a_ttl_policy_expires_messages_of_a_queue_that_existed_before_it() {
    let b = TestBroker::start();
    let api = b.management();
    let h = Http::new(&api);
    let mut c = b.connect();
    let ch = c.open_channel().unwrap();
    let (q0, q1) = names_on_each_shard("ttl-");
    for q in [&q0, &q1] {
        declare_durable(&mut c, ch, q);
    }
    let (status, body) = put_policy(
        &h,
        "policies",
        "ttl",
        json!({"pattern": "^ttl-", "definition": {"message-ttl": 200}, "apply-to": "queues"}),
    );
    assert_eq!(status, 201, "{body}");
    for q in [&q0, &q1] {
        let row = h.get(&format!("/api/queues/%2F/{q}"));
        assert_eq!(row["policy"], "ttl");
        assert_eq!(
            row["effective_policy_definition"],
            json!({"message-ttl": 200})
        );
        publish_all(&mut c, ch, "", q, &["gone"]);
        wait_ready(&mut c, ch, q, 1);
    }
    assert!(eventually(WAIT, || {
        [&q0, &q1]
            .iter()
            .all(|q| passive(&mut c, ch, q).unwrap().0 == 0)
    }));
    // Removed: messages stay again.
    assert_eq!(h.send("DELETE", "/api/policies/%2F/ttl", None).0, 204);
    assert_eq!(
        h.get(&format!("/api/queues/%2F/{q0}"))["policy"],
        Value::Null
    );
    publish_all(&mut c, ch, "", &q0, &["stays"]);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(drain(&mut c, ch, &q0), ["stays"]);
}

#[test]
fn max_length_with_reject_publish_nacks_and_a_lowered_limit_drops_at_once() {
    let b = TestBroker::start();
    let api = b.management();
    let h = Http::new(&api);
    let mut c = b.connect();
    let ch = c.open_channel().unwrap();
    declare_durable(&mut c, ch, "lim-q");
    publish_all(&mut c, ch, "", "lim-q", &["1", "2", "3"]);
    wait_ready(&mut c, ch, "lim-q", 3);
    // Applied at once: the head goes down to the new limit.
    let (status, body) = put_policy(
        &h,
        "policies",
        "lim",
        json!({"pattern": "^lim-", "definition": {"max-length": 2, "overflow": "reject-publish"}}),
    );
    assert_eq!(status, 201, "{body}");
    assert!(eventually(WAIT, || passive(&mut c, ch, "lim-q").unwrap().0 == 2));
    let mut p = b.connect();
    let pch = p.open_channel().unwrap();
    p.call(Message::ConfirmSelect(pch)).unwrap();
    publish_all(&mut p, pch, "", "lim-q", &["4"]);
    assert_eq!(confirms(&mut p, 1), [true], "over max-length: nacked");
    assert_eq!(drain(&mut c, ch, "lim-q"), ["2", "3"]);
}

#[test]
fn priorities_arguments_and_operator_policies_combine_as_in_rabbitmq() {
    let b = TestBroker::start();
    let api = b.management();
    let h = Http::new(&api);
    let mut c = b.connect();
    let ch = c.open_channel().unwrap();
    declare_with(
        &mut c,
        ch,
        "mix-q",
        table(&[
            ("x-max-length", FieldValue::I32(10)),
            ("x-overflow", FieldValue::string("drop-head")),
        ]),
    );
    // Two match: the higher priority applies.
    assert_eq!(
        put_policy(
            &h,
            "policies",
            "low",
            json!({"pattern": "^mix-", "definition": {"max-length": 5}, "priority": 1})
        )
        .0,
        201
    );
    assert_eq!(put_policy(&h, "policies", "high", json!({"pattern": "^mix", "definition": {"max-length": 3, "overflow": "reject-publish"}, "priority": 2})).0, 201);
    let row = h.get("/api/queues/%2F/mix-q");
    assert_eq!(row["policy"], "high");
    // The smaller max-length wins; the argument's overflow wins (drop-head).
    publish_all(&mut c, ch, "", "mix-q", &["1", "2", "3", "4", "5"]);
    assert!(eventually(WAIT, || passive(&mut c, ch, "mix-q").unwrap().0 == 3));
    assert_eq!(drain(&mut c, ch, "mix-q"), ["3", "4", "5"]);
    // An operator policy is a ceiling below both.
    let (status, body) = put_policy(
        &h,
        "operator-policies",
        "cap",
        json!({"pattern": ".*", "definition": {"max-length": 2}}),
    );
    assert_eq!(status, 201, "{body}");
    let row = h.get("/api/queues/%2F/mix-q");
    assert_eq!(row["operator_policy"], "cap");
    assert_eq!(
        row["effective_policy_definition"],
        json!({"max-length": 2, "overflow": "reject-publish"})
    );
    publish_all(&mut c, ch, "", "mix-q", &["a", "b", "c"]);
    assert!(eventually(WAIT, || passive(&mut c, ch, "mix-q").unwrap().0 == 2));
    assert_eq!(drain(&mut c, ch, "mix-q"), ["b", "c"]);
    // Removing them restores the queue's own x-max-length of 10.
    for (kind, name) in [
        ("operator-policies", "cap"),
        ("policies", "high"),
        ("policies", "low"),
    ] {
        assert_eq!(
            h.send("DELETE", &format!("/api/{kind}/%2F/{name}"), None).0,
            204
        );
    }
    let bodies: Vec<String> = (0..12).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    publish_all(&mut c, ch, "", "mix-q", &refs);
    assert!(eventually(WAIT, || passive(&mut c, ch, "mix-q").unwrap().0 == 10));

    // Refusals name what is wrong.
    let (status, body) = put_policy(
        &h,
        "policies",
        "ha",
        json!({"pattern": ".*", "definition": {"ha-mode": "all"}}),
    );
    assert_eq!(status, 400);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("ha-mode not supported"),
        "{body}"
    );
    let (status, body) = put_policy(
        &h,
        "policies",
        "bad",
        json!({"pattern": ".*", "definition": {"overflow": "sometimes"}}),
    );
    assert_eq!(status, 400);
    assert!(
        body["reason"].as_str().unwrap().contains("overflow"),
        "{body}"
    );
    let (status, body) = put_policy(
        &h,
        "policies",
        "nopat",
        json!({"definition": {"max-length": 1}}),
    );
    assert_eq!(
        (status, body["reason"].clone()),
        (400, json!("[{key_missing,pattern}]"))
    );
    let (status, _) = put_policy(
        &h,
        "operator-policies",
        "opx",
        json!({"pattern": ".*", "definition": {"alternate-exchange": "x"}}),
    );
    assert_eq!(
        status, 400,
        "operator policies take only numeric queue limits"
    );
}

#[test]
fn an_alternate_exchange_policy_routes_the_unroutable_and_survives_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    {
        let b = TestBroker::with(|c| c.storage.data_dir = dir.clone());
        let api = b.management();
        let h = Http::new(&api);
        let mut c = b.connect();
        let ch = c.open_channel().unwrap();
        for (x, kind) in [("ae.src", "direct"), ("ae.dst", "fanout")] {
            durable_exchange(&mut c, ch, x, kind);
        }
        declare_durable(&mut c, ch, "ae-caught");
        c.queue_bind(ch, "ae-caught", "ae.dst", "", Default::default())
            .unwrap();
        let (status, body) = put_policy(
            &h,
            "policies",
            "ae",
            json!({"pattern": "^ae\\.src$", "definition": {"alternate-exchange": "ae.dst"}, "apply-to": "exchanges"}),
        );
        assert_eq!(status, 201, "{body}");
        publish_all(&mut c, ch, "ae.src", "nowhere", &["caught"]);
        wait_ready(&mut c, ch, "ae-caught", 1);
        assert_eq!(drain(&mut c, ch, "ae-caught"), ["caught"]);
        assert_eq!(
            put_policy(
                &h,
                "policies",
                "ttl",
                json!({"pattern": "^ae-", "definition": {"max-length": 1}, "apply-to": "queues"})
            )
            .0,
            201
        );
        b.stop();
    }
    let b = TestBroker::with(|c| c.storage.data_dir = dir.clone());
    let api = b.management();
    let h = Http::new(&api);
    let names: Vec<Value> = h
        .get("/api/policies/%2F")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("ae"), json!("ttl")]);
    assert_eq!(h.get("/api/queues/%2F/ae-caught")["policy"], "ttl");
    let mut c = b.connect();
    let ch = c.open_channel().unwrap();
    // Durable exchanges came back with the policy applied.
    durable_exchange(&mut c, ch, "ae.src", "direct");
    publish_all(&mut c, ch, "ae.src", "nowhere", &["1", "2"]);
    assert!(eventually(WAIT, || passive(&mut c, ch, "ae-caught")
        .unwrap()
        .0
        == 1));
    assert_eq!(drain(&mut c, ch, "ae-caught"), ["2"]);
}
