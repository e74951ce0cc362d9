//! Declaring a queue with an empty name gets a fresh `amq.gen-…` name that
//! works like any other queue name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[test]
fn empty_name_gets_a_fresh_amq_gen_name() {
    let broker = TestBroker::start();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let mut names = Vec::new();
    for _ in 0..8 {
        let q = c.declare_simple_queue(ch, "").unwrap();
        assert!(q.starts_with("amq.gen-"), "{q}");
        assert!(q.len() > "amq.gen-".len() + 16, "{q}");
        names.push(q);
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "names repeat: {names:?}");

    // Usable from another connection: default exchange, bindings, get.
    let q = &names[0];
    let mut p = broker.connect();
    let pch = p.open_channel().unwrap();
    p.queue_bind(pch, q, "amq.direct", "k", Default::default())
        .unwrap();
    publish_all(&mut p, pch, "", q, &["by-name"]);
    publish_all(&mut p, pch, "amq.direct", "k", &["by-binding"]);
    passive(&mut p, pch, q).unwrap();
    assert_eq!(drain(&mut c, ch, q), ["by-name", "by-binding"]);
}
