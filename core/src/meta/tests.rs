//! Tests of the metadata replica: routing, apply, and declare checks.

use super::*;
use ringmq_protocol::FieldValue;

fn xdef(name: &str, kind: ExchangeKind) -> ExchangeDef {
    ExchangeDef {
        name: name.into(),
        kind,
        durable: false,
        auto_delete: false,
        internal: false,
        arguments: FieldTable::new(),
    }
}

fn qdef(id: u64, name: &str) -> QueueDef {
    QueueDef {
        id: QueueId(id),
        name: name.into(),
        shard: 0,
        durable: false,
        auto_delete: false,
        exclusive_owner: None,
        arguments: FieldTable::new(),
        args: QueueArgs::default(),
    }
}

fn route(m: &Meta, x: &str, key: &str) -> Vec<u64> {
    let v = m.vhost("/").unwrap();
    let mut t = Targets::default();
    v.route(v.exchange(x).unwrap(), key, None, &mut t);
    let mut ids: Vec<u64> = t.queues.iter().map(|q| q.id.0).collect();
    ids.sort();
    ids
}

fn bind(source: &str, dest: DestName, key: &str) -> MetaOp {
    MetaOp::Bind {
        vhost: "/".into(),
        source: source.into(),
        dest,
        key: key.into(),
        args: FieldTable::new(),
    }
}

#[test]
fn default_exchange_routes_by_queue_name() {
    let mut m = Meta::new(["/"]);
    m.apply(&MetaOp::DeclareQueue {
        vhost: "/".into(),
        def: qdef(1, "hello"),
    });
    assert_eq!(route(&m, "", "hello"), vec![1]);
    assert_eq!(route(&m, "", "other"), Vec::<u64>::new());
}

#[test]
fn exchange_to_exchange_and_alternate() {
    let mut m = Meta::new(["/"]);
    let vh = || "/".to_owned();
    for (id, n) in [(1, "q1"), (2, "q2"), (3, "unrouted")] {
        m.apply(&MetaOp::DeclareQueue {
            vhost: vh(),
            def: qdef(id, n),
        });
    }
    let mut main = xdef("main", ExchangeKind::Direct);
    main.arguments
        .insert("alternate-exchange", FieldValue::string("ae"));
    m.apply(&MetaOp::DeclareExchange {
        vhost: vh(),
        def: main,
    });
    m.apply(&MetaOp::DeclareExchange {
        vhost: vh(),
        def: xdef("ae", ExchangeKind::Fanout),
    });
    m.apply(&MetaOp::DeclareExchange {
        vhost: vh(),
        def: xdef("down", ExchangeKind::Topic),
    });
    m.apply(&bind("main", DestName::Queue("q1".into()), "a"));
    m.apply(&bind("main", DestName::Exchange("down".into()), "b"));
    m.apply(&bind("down", DestName::Queue("q2".into()), "#"));
    m.apply(&bind("ae", DestName::Queue("unrouted".into()), ""));
    // A cycle must not loop.
    m.apply(&bind("down", DestName::Exchange("main".into()), "#"));
    assert_eq!(route(&m, "main", "a"), vec![1]);
    assert_eq!(route(&m, "main", "b"), vec![2]);
    assert_eq!(route(&m, "main", "zzz"), vec![3]);
}

#[test]
fn deleting_a_queue_drops_its_bindings_and_auto_delete_exchanges() {
    let mut m = Meta::new(["/"]);
    let vh = || "/".to_owned();
    m.apply(&MetaOp::DeclareQueue {
        vhost: vh(),
        def: qdef(1, "q"),
    });
    let mut ad = xdef("ad", ExchangeKind::Fanout);
    ad.auto_delete = true;
    m.apply(&MetaOp::DeclareExchange {
        vhost: vh(),
        def: ad,
    });
    m.apply(&bind("ad", DestName::Queue("q".into()), ""));
    assert_eq!(route(&m, "ad", ""), vec![1]);
    m.apply(&MetaOp::DeleteQueue {
        vhost: vh(),
        id: QueueId(1),
    });
    assert!(
        m.vhost("/").unwrap().exchange("ad").is_none(),
        "auto-delete exchange goes with its last binding"
    );
}

#[test]
fn declare_checks() {
    let mut m = Meta::new(["/"]);
    let vh = "/";
    let mut q = qdef(1, "q");
    q.exclusive_owner = Some(7);
    m.apply(&MetaOp::DeclareQueue {
        vhost: vh.into(),
        def: q,
    });
    let none = FieldTable::new();
    let err = m
        .check_queue_declare(vh, "q", false, false, true, false, &none, 8)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::ResourceLocked);
    let err = m
        .check_queue_declare(vh, "missing", true, false, false, false, &none, 8)
        .unwrap_err();
    assert_eq!(err.text, "NOT_FOUND - no queue 'missing' in vhost '/'");
    let err = m
        .check_queue_declare(vh, "q", false, true, true, false, &none, 7)
        .unwrap_err();
    assert!(
        err.text
            .starts_with("PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q'"),
        "{}",
        err.text
    );
    let err = m
        .check_queue_declare(vh, "amq.x", false, false, false, false, &none, 7)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::AccessRefused);
    let err = m
        .check_exchange_declare(
            vh,
            &xdef("amq.direct", ExchangeKind::Fanout),
            "fanout",
            false,
        )
        .unwrap_err();
    assert!(err.text.contains("inequivalent arg 'type'"), "{}", err.text);
    let err = m
        .check_exchange_declare(vh, &xdef("e", ExchangeKind::Direct), "bogus", false)
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::CommandInvalid);
    let mut topic = xdef("amq.topic", ExchangeKind::Topic);
    topic.durable = true;
    assert_eq!(
        m.check_exchange_declare(vh, &topic, "topic", false),
        Ok(Declared::Exists)
    );
}

#[test]
fn a_long_exchange_chain_is_walked_iteratively_and_bounded() {
    let mut m = Meta::new(["/"]);
    let vh = || "/".to_owned();
    // x0 -> x1 -> ... -> x(n-1), a queue bound at hop 100 and one past the
    // bound, and a cycle back to x0 from the end.
    let n = 20_000;
    for i in 0..n {
        m.apply(&MetaOp::DeclareExchange {
            vhost: vh(),
            def: xdef(&format!("x{i}"), ExchangeKind::Fanout),
        });
    }
    for i in 0..n {
        let next = format!("x{}", (i + 1) % n);
        m.apply(&bind(&format!("x{i}"), DestName::Exchange(next), ""));
    }
    for (id, hop) in [(1, 100), (2, MAX_ROUTE_EXCHANGES + 10)] {
        let q = format!("q{id}");
        m.apply(&MetaOp::DeclareQueue {
            vhost: vh(),
            def: qdef(id, &q),
        });
        m.apply(&bind(&format!("x{hop}"), DestName::Queue(q), ""));
    }
    // A recursive walk would overflow the stack long before the bound.
    assert_eq!(route(&m, "x0", "k"), vec![1]);
    // From further along the chain the second queue is within the bound.
    assert_eq!(route(&m, "x50", "k"), vec![1, 2]);
    // Past the end the chain cycles back to x0: each exchange is visited
    // once, and the walk stops at the bound.
    assert_eq!(route(&m, &format!("x{}", n - 1), "k"), vec![1]);
}

fn route_cc(m: &Meta, x: &str, key: &str, cc: &[&str]) -> Vec<u64> {
    let v = m.vhost("/").unwrap();
    let mut t = Targets::default();
    let cc: Vec<String> = cc.iter().map(|s| (*s).to_owned()).collect();
    v.route_with_cc(v.exchange(x).unwrap(), key, &cc, None, &mut t);
    let mut ids: Vec<u64> = t.queues.iter().map(|q| q.id.0).collect();
    ids.sort();
    assert!(ids.windows(2).all(|w| w[0] != w[1]), "one copy per queue");
    ids
}

#[test]
fn cc_keys_route_through_every_exchange_reached() {
    let mut m = Meta::new(["/"]);
    let vh = || "/".to_owned();
    for (id, n) in [(1, "q1"), (2, "q2"), (3, "q3"), (4, "ae-q"), (5, "f-q")] {
        m.apply(&MetaOp::DeclareQueue {
            vhost: vh(),
            def: qdef(id, n),
        });
    }
    let mut direct = xdef("d", ExchangeKind::Direct);
    direct
        .arguments
        .insert("alternate-exchange", FieldValue::string("ae"));
    for def in [
        direct,
        xdef("ae", ExchangeKind::Fanout),
        xdef("t", ExchangeKind::Topic),
        xdef("f", ExchangeKind::Fanout),
    ] {
        m.apply(&MetaOp::DeclareExchange { vhost: vh(), def });
    }
    for op in [
        bind("d", DestName::Queue("q1".into()), "k1"),
        bind("d", DestName::Queue("q2".into()), "k2"),
        bind("d", DestName::Exchange("t".into()), "k3"),
        bind("t", DestName::Queue("q3".into()), "k3.#"),
        bind("t", DestName::Queue("q3".into()), "k3"),
        bind("ae", DestName::Queue("ae-q".into()), ""),
        bind("f", DestName::Queue("f-q".into()), ""),
    ] {
        m.apply(&op);
    }
    // Rows: (routing key, CC keys, queues reached).
    let table: [(&str, &[&str], &[u64]); 7] = [
        ("k1", &[], &[1]),
        ("k1", &["k2"], &[1, 2]),
        ("nowhere", &["k2"], &[2]),   // a CC match keeps the alternate out
        ("nowhere", &["none"], &[4]), // no key matched: alternate
        ("k1", &["k1", "k2", "k2"], &[1, 2]),
        ("k1", &["k3"], &[1, 3]), // through an exchange-to-exchange binding
        ("none", &["k3", "k3"], &[3]), // two bindings, one copy
    ];
    for (key, cc, want) in table {
        assert_eq!(route_cc(&m, "d", key, cc), want, "key {key}, cc {cc:?}");
    }
    // The default exchange routes every key by queue name.
    assert_eq!(route_cc(&m, "", "q1", &["q2", "missing", "q1"]), [1, 2]);
    assert_eq!(route_cc(&m, "", "missing", &["q3"]), [3]);
    // A fanout exchange ignores keys: one copy.
    assert_eq!(route_cc(&m, "f", "a", &["b", "c"]), [5]);
}
