//! Direct, fanout and topic routing: one copy per queue however many of
//! its bindings match, to queues on both shards, with publisher and
//! consumers on different connections.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::*;
use ringmq_protocol::FieldTable;

/// Declares `queues`, binds them as given, publishes `keys` (body = key)
/// to `exchange` from another connection, and returns what each queue got.
fn route(
    broker: &TestBroker,
    exchange: &str,
    kind: Option<&str>,
    bindings: &[(&str, &str)],
    keys: &[&str],
) -> BTreeMap<String, Vec<String>> {
    let mut admin = broker.connect();
    let ch = admin.open_channel().unwrap();
    if let Some(kind) = kind {
        admin.exchange_declare(ch, exchange, kind).unwrap();
    }
    let mut queues: Vec<&str> = bindings.iter().map(|(q, _)| *q).collect();
    queues.dedup();
    for q in &queues {
        admin.declare_simple_queue(ch, q).unwrap();
    }
    for (q, key) in bindings {
        admin
            .queue_bind(ch, q, exchange, key, FieldTable::new())
            .unwrap();
    }
    let mut p = broker.connect();
    let pch = p.open_channel().unwrap();
    for k in keys {
        p.publish(pch, publish(exchange, k, k)).unwrap();
    }
    p.flush().unwrap();
    // A request on the publishing connection travels behind its publishes
    // to each queue's shard: once answered, the messages are enqueued.
    for q in &queues {
        passive(&mut p, pch, q).unwrap();
    }
    let mut c = broker.connect();
    let cch = c.open_channel().unwrap();
    queues
        .iter()
        .map(|q| ((*q).to_owned(), drain(&mut c, cch, q)))
        .collect()
}

fn got(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .map(|(q, b)| ((*q).to_owned(), b.iter().map(|s| (*s).to_owned()).collect()))
        .collect()
}

#[test]
fn direct_exchange_matches_keys_exactly() {
    let broker = TestBroker::start();
    let (a, b) = names_on_each_shard("direct-");
    let out = route(
        &broker,
        "logs.direct",
        Some("direct"),
        &[(&a, "error"), (&a, "warn"), (&b, "error"), (&b, "info")],
        &["error", "warn", "info", "debug", "ERROR"],
    );
    assert_eq!(
        out,
        got(&[(&a, &["error", "warn"]), (&b, &["error", "info"])])
    );
}

#[test]
fn amq_direct_routes_like_any_direct_exchange() {
    let broker = TestBroker::start();
    let (a, b) = names_on_each_shard("amqdirect-");
    let out = route(&broker, "amq.direct", None, &[(&a, "k"), (&b, "k")], &["k"]);
    assert_eq!(out, got(&[(&a, &["k"]), (&b, &["k"])]));
}

#[test]
fn fanout_copies_to_every_bound_queue_once() {
    let broker = TestBroker::start();
    let (a, b) = names_on_each_shard("fanout-");
    let out = route(
        &broker,
        "bcast",
        Some("fanout"),
        // Two bindings of `a` with different keys: still one copy.
        &[(&a, ""), (&a, "ignored"), (&b, "x")],
        &["m1", "m2"],
    );
    assert_eq!(out, got(&[(&a, &["m1", "m2"]), (&b, &["m1", "m2"])]));
    let (c, d) = names_on_each_shard("amqfanout-");
    let out = route(&broker, "amq.fanout", None, &[(&c, ""), (&d, "")], &["z"]);
    assert_eq!(out, got(&[(&c, &["z"]), (&d, &["z"])]));
}

#[test]
fn topic_wildcards_star_and_hash() {
    let broker = TestBroker::start();
    // The RabbitMQ tutorial's bindings.
    let (q1, q2) = names_on_each_shard("topic-");
    let out = route(
        &broker,
        "animals",
        Some("topic"),
        &[(&q1, "*.orange.*"), (&q2, "*.*.rabbit"), (&q2, "lazy.#")],
        &[
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "quick.orange.fox",
            "lazy.brown.fox",
            "lazy.pink.rabbit",
            "quick.brown.fox",
            "orange",
            "quick.orange.male.rabbit",
            "lazy.orange.male.rabbit",
            "lazy",
        ],
    );
    assert_eq!(
        out,
        got(&[
            (
                &q1,
                &[
                    "quick.orange.rabbit",
                    "lazy.orange.elephant",
                    "quick.orange.fox"
                ]
            ),
            (
                &q2,
                &[
                    "quick.orange.rabbit",
                    "lazy.orange.elephant",
                    "lazy.brown.fox",
                    "lazy.pink.rabbit",
                    "lazy.orange.male.rabbit",
                    "lazy",
                ]
            ),
        ])
    );
}

#[test]
fn topic_hash_alone_matches_everything_and_empty_words() {
    let broker = TestBroker::start();
    let (all, mid) = names_on_each_shard("topic-hash-");
    let out = route(
        &broker,
        "amq.topic",
        None,
        &[(&all, "#"), (&mid, "a.#.z")],
        &["", "a", "a.z", "a.b.c.z", "a.b", "b.z", "a..z"],
    );
    assert_eq!(
        out,
        got(&[
            (&all, &["", "a", "a.z", "a.b.c.z", "a.b", "b.z", "a..z"]),
            (&mid, &["a.z", "a.b.c.z", "a..z"]),
        ])
    );
}
