//! Prometheus metrics with RabbitMQ's names (those its Grafana dashboards
//! and alerts read), aggregated on `/metrics` and per queue on
//! `/metrics/per-object`, and each queue's end-to-end latency: publish to
//! delivery, and publish to confirm for persistent messages confirmed once
//! on disk, as Prometheus histograms and in the management API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::http::*;
use common::*;
use ringmq_protocol::client::Event;
use ringmq_protocol::Message;

fn scrape(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut resp = ureq::get(format!("http://{addr}{path}")).call().unwrap();
    let kind = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    (kind, resp.body_mut().read_to_string().unwrap())
}

/// The value of the sample `name` (with exactly `labels`, "" for none).
fn value(text: &str, name: &str, labels: &str) -> f64 {
    let want = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    let line = text
        .lines()
        .find(|l| l.starts_with(&want))
        .unwrap_or_else(|| panic!("no sample {want:?}"));
    line[want.len()..].parse().unwrap()
}

fn metric_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("# TYPE "))
        .map(|l| l.split_whitespace().nth(2).unwrap().to_owned())
        .collect()
}

#[test]
fn metrics_use_rabbitmqs_names_and_queues_have_latency_histograms() {
    let broker = TestBroker::start();
    let metrics = broker.prometheus();
    let mgmt = broker.management();
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    declare_durable(&mut c, ch, "orders");
    c.call(Message::ConfirmSelect(ch)).unwrap();
    for i in 0..10 {
        let mut p = publish("", "orders", &format!("m{i}"));
        p.properties.delivery_mode = Some(2);
        c.publish(ch, p).unwrap();
    }
    c.flush().unwrap();
    let mut confirmed = 0;
    while confirmed < 10 {
        match next_event(&mut c, WAIT) {
            Some(Event::Confirm(_, conf)) => {
                assert!(!conf.nack);
                confirmed = conf.delivery_tag;
            }
            other => panic!("expected confirms, got {other:?}"),
        }
    }
    let cch = c.open_channel().unwrap();
    assert_eq!(drain(&mut c, cch, "orders").len(), 10);
    let mut p = publish("", "orders", "left");
    p.properties.delivery_mode = Some(2);
    c.publish(ch, p).unwrap();
    c.flush().unwrap();
    // Its confirm too: the publish-to-confirm sample is taken when the
    // record is durable, which can come after the message is ready.
    loop {
        match next_event(&mut c, WAIT) {
            Some(Event::Confirm(_, conf)) if conf.delivery_tag == 11 => break,
            Some(Event::Confirm(..)) => {}
            other => panic!("expected the 11th confirm, got {other:?}"),
        }
    }
    wait_ready(&mut c, cch, "orders", 1);

    let (kind, text) = scrape(metrics.local_addr(), "/metrics");
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(value(&text, "rabbitmq_queues", ""), 1.0);
    assert_eq!(value(&text, "rabbitmq_queue_messages_ready", ""), 1.0);
    assert_eq!(
        value(&text, "rabbitmq_channel_messages_published_total", ""),
        11.0
    );
    assert!(value(&text, "rabbitmq_connections", "") >= 1.0);
    assert!(value(&text, "rabbitmq_process_resident_memory_bytes", "") > 1e6);
    assert!(value(&text, "rabbitmq_resident_memory_limit_bytes", "") > 1e6);
    assert!(value(&text, "rabbitmq_disk_space_available_bytes", "") > 0.0);
    assert_eq!(
        value(&text, "rabbitmq_alarms_memory_used_watermark", ""),
        0.0
    );
    assert_eq!(
        value(&text, "ringmq_queue_publish_to_deliver_seconds_count", ""),
        10.0
    );
    assert_eq!(
        value(&text, "ringmq_queue_publish_to_confirm_seconds_count", ""),
        11.0
    );
    assert_eq!(
        value(
            &text,
            "ringmq_queue_publish_to_confirm_seconds_bucket",
            "le=\"+Inf\""
        ),
        11.0
    );

    // Every rabbitmq_* family ringmq sends is one RabbitMQ 3.10 sends, with
    // the same type; the ones dashboards and alerts read are all there.
    let theirs = std::fs::read_to_string(format!(
        "{}/../mgmt/tests/fixtures/rabbitmq-3.10/GET_metrics.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let their_types: BTreeSet<String> = theirs
        .lines()
        .filter(|l| l.starts_with("# TYPE rabbitmq_"))
        .map(str::to_owned)
        .collect();
    for line in text
        .lines()
        .filter(|l| l.starts_with("# TYPE rabbitmq_") && !l.contains("_info "))
    {
        assert!(their_types.contains(line), "RabbitMQ has no {line:?}");
    }
    let ours = metric_names(&text);
    for name in [
        "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_messages_unacked",
        "rabbitmq_queues",
        "rabbitmq_connections",
        "rabbitmq_channel_messages_published_total",
        "rabbitmq_channel_messages_delivered_total",
        "rabbitmq_process_resident_memory_bytes",
        "rabbitmq_resident_memory_limit_bytes",
        "rabbitmq_disk_space_available_bytes",
        "rabbitmq_alarms_free_disk_space_watermark",
        "rabbitmq_alarms_memory_used_watermark",
        "rabbitmq_identity_info",
    ] {
        assert!(ours.contains(name), "{name} missing");
    }

    let (_, per) = scrape(metrics.local_addr(), "/metrics/per-object");
    let q = "vhost=\"/\",queue=\"orders\"";
    assert_eq!(value(&per, "rabbitmq_queue_messages_ready", q), 1.0);
    assert_eq!(
        value(&per, "rabbitmq_queue_messages_published_total", q),
        11.0
    );
    assert_eq!(
        value(&per, "ringmq_queue_publish_to_deliver_seconds_count", q),
        10.0
    );
    let sum = value(&per, "ringmq_queue_publish_to_confirm_seconds_sum", q);
    assert!(sum > 0.0 && sum < 60.0, "{sum}");
    let mut last = 0.0;
    for l in per.lines().filter(|l| {
        l.starts_with("ringmq_queue_publish_to_deliver_seconds_bucket{vhost=\"/\",queue=\"orders\"")
    }) {
        let v: f64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v >= last, "buckets are cumulative: {l}");
        last = v;
    }
    assert_eq!(last, 10.0);

    let http = Http::new(&mgmt);
    let lat = http.get("/api/queues/%2F/orders/latency");
    assert_eq!(lat["publish_to_deliver"]["count"], 10);
    assert_eq!(lat["publish_to_confirm"]["count"], 11);
    assert_eq!(
        lat["publish_to_confirm"]["buckets"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["le"],
        "+Inf"
    );
}
