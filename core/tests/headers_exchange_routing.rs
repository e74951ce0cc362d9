//! Headers exchanges: `x-match` all (the default) and any, on a declared
//! headers exchange and on the predeclared `amq.headers` / `amq.match`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::{FieldValue, Properties};

fn headers(pairs: &[(&str, FieldValue)]) -> Properties {
    Properties {
        headers: Some(table(pairs)),
        ..Properties::default()
    }
}

fn s(v: &str) -> FieldValue {
    FieldValue::string(v)
}

fn run(exchange: &str, declare: bool) {
    let broker = TestBroker::start();
    let (all, any) = names_on_each_shard("headers-");
    let (dflt, _) = names_on_each_shard("headers-default-");
    let mut admin = broker.connect();
    let ch = admin.open_channel().unwrap();
    if declare {
        admin.exchange_declare(ch, exchange, "headers").unwrap();
    }
    for q in [&all, &any, &dflt] {
        admin.declare_simple_queue(ch, q).unwrap();
    }
    admin
        .queue_bind(
            ch,
            &all,
            exchange,
            "",
            table(&[
                ("x-match", s("all")),
                ("format", s("pdf")),
                ("type", s("report")),
            ]),
        )
        .unwrap();
    admin
        .queue_bind(
            ch,
            &any,
            exchange,
            "",
            table(&[
                ("x-match", s("any")),
                ("format", s("pdf")),
                ("type", s("log")),
            ]),
        )
        .unwrap();
    // Without x-match: all. Integers compare across widths.
    admin
        .queue_bind(
            ch,
            &dflt,
            exchange,
            "ignored-key",
            table(&[("n", FieldValue::I32(7))]),
        )
        .unwrap();

    let mut p = broker.connect();
    let pch = p.open_channel().unwrap();
    let cases = [
        (
            "pdf-report",
            headers(&[("format", s("pdf")), ("type", s("report"))]),
        ),
        (
            "zip-log",
            headers(&[("format", s("zip")), ("type", s("log"))]),
        ),
        ("pdf-only", headers(&[("format", s("pdf"))])),
        (
            "zip-report",
            headers(&[("format", s("zip")), ("type", s("report"))]),
        ),
        ("n7", headers(&[("n", FieldValue::I64(7))])),
        ("n8", headers(&[("n", FieldValue::I64(8))])),
        ("none", Properties::default()),
    ];
    for (body, props) in cases {
        p.publish(pch, publish_props(exchange, "any-key", body, props))
            .unwrap();
    }
    p.flush().unwrap();
    for q in [&all, &any, &dflt] {
        passive(&mut p, pch, q).unwrap();
    }
    let mut c = broker.connect();
    let cch = c.open_channel().unwrap();
    assert_eq!(drain(&mut c, cch, &all), ["pdf-report"]);
    assert_eq!(
        drain(&mut c, cch, &any),
        ["pdf-report", "zip-log", "pdf-only"]
    );
    assert_eq!(drain(&mut c, cch, &dflt), ["n7"]);
}

#[test]
fn declared_headers_exchange_matches_all_and_any() {
    run("by-headers", true);
}

#[test]
fn amq_headers_matches_all_and_any() {
    run("amq.headers", false);
}

#[test]
fn amq_match_matches_all_and_any() {
    run("amq.match", false);
}
