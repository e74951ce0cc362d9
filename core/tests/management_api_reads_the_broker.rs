//! The management HTTP API reads the broker as RabbitMQ's does: objects
//! made over the native protocol show up with their counts, counters and
//! arguments, under RabbitMQ 3.10's paths, field names, status codes and
//! error bodies. Every field name ringmq sends for a queue, an exchange, a
//! binding and the overview also appears in RabbitMQ's answer to the same
//! call (`mgmt/tests/fixtures/rabbitmq-3.10/`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::http::*;
use common::*;
use ringmq_protocol::field::{FieldTable, FieldValue};
use ringmq_protocol::message as m;
use serde_json::Value;

/// RabbitMQ lists a queue's `message_stats` only once they happened; its
/// overview lists them all.
fn same_queue_names(ours: &Value, theirs: &Value) {
    let mut ours = ours.clone();
    let stats = ours
        .as_object_mut()
        .unwrap()
        .remove("message_stats")
        .unwrap();
    same_names(&ours, theirs);
    same_names(&stats, &fixture("GET_api_overview.txt")["message_stats"]);
}

fn setup(broker: &TestBroker) {
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    let args = FieldTable(vec![("x-max-length".into(), FieldValue::I32(1000))]);
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: "orders".into(),
        durable: true,
        arguments: args,
        ..m::QueueDeclare::default()
    })
    .unwrap();
    c.exchange_declare(ch, "events", "topic").unwrap();
    c.queue_bind(ch, "orders", "events", "order.*", FieldTable::default())
        .unwrap();
    publish_all(&mut c, ch, "events", "order.new", &["a", "b", "c"]);
    publish_all(&mut c, ch, "events", "nowhere", &["lost"]);
    wait_ready(&mut c, ch, "orders", 3);
}

#[test]
fn queues_exchanges_bindings_and_the_overview_show_what_clients_made() {
    let broker = TestBroker::start();
    let mgmt = broker.management();
    let http = Http {
        base: format!("http://{}", mgmt.local_addr()),
    };
    setup(&broker);

    let q = http.get("/api/queues/%2F/orders");
    assert_eq!(q["name"], "orders");
    assert_eq!(q["vhost"], "/");
    assert_eq!(q["type"], "classic");
    assert_eq!(q["durable"], true);
    assert_eq!(q["arguments"]["x-max-length"], 1000);
    assert_eq!(q["messages"], 3);
    assert_eq!(q["messages_ready"], 3);
    assert_eq!(q["messages_unacknowledged"], 0);
    assert_eq!(q["message_bytes"], 3);
    assert_eq!(q["message_stats"]["publish"], 3);
    assert!(q["message_stats"]["publish_details"]["rate"].is_number());
    same_queue_names(&q, &fixture("GET_api_queues_%2F_orders.txt"));

    let overview = http.get("/api/overview");
    assert_eq!(overview["product_name"], "ringmq");
    assert!(overview["rabbitmq_version"].is_string());
    assert!(overview["management_version"].is_string());
    assert_eq!(overview["queue_totals"]["messages_ready"], 3);
    assert_eq!(overview["object_totals"]["queues"], 1);
    assert_eq!(overview["message_stats"]["publish"], 4);
    assert_eq!(overview["message_stats"]["drop_unroutable"], 1);
    assert_eq!(overview["object_totals"]["connections"], 0);
    let mut cut = overview.clone();
    cut.as_object_mut().unwrap().remove("contexts");
    same_names(&cut, &fixture("GET_api_overview.txt"));

    let x = http.get("/api/exchanges/%2F/events");
    assert_eq!(x["type"], "topic");
    same_names(&x, &fixture("GET_api_exchanges_%2F_events.txt"));
    assert_eq!(http.get("/api/exchanges/%2F/amq.default")["name"], "");
    let all = http.get("/api/exchanges/%2F");
    assert_eq!(
        all.as_array().unwrap().len(),
        7,
        "6 predeclared + events: {all}"
    );

    let bindings = http.get("/api/bindings/%2F");
    let b = bindings
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["source"] == "events")
        .expect("the topic binding");
    assert_eq!(b["destination"], "orders");
    assert_eq!(b["destination_type"], "queue");
    assert_eq!(b["routing_key"], "order.*");
    assert_eq!(b["properties_key"], "order.%2A");
    assert_eq!(
        bindings[0]["source"], "",
        "the default exchange's binding comes first"
    );

    assert_eq!(
        http.get("/api/whoami"),
        serde_json::json!({"name": "guest", "tags": ["administrator"]})
    );
    assert_eq!(
        http.get("/api/health/checks/alarms"),
        serde_json::json!({"status": "ok"})
    );
    assert_eq!(http.get("/api/vhosts")[0]["name"], "/");
    assert_eq!(
        http.get("/api/users")[0]["hashing_algorithm"],
        "rabbit_password_hashing_sha256"
    );
    assert_eq!(http.get("/api/permissions/%2F/guest")["configure"], ".*");
}

#[test]
fn lists_page_sort_filter_and_project_as_rabbitmq_does() {
    let broker = TestBroker::start();
    let mgmt = broker.management();
    let http = Http {
        base: format!("http://{}", mgmt.local_addr()),
    };
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    for i in 0..5 {
        let q = format!("q{i}");
        c.declare_simple_queue(ch, &q).unwrap();
        let bodies: Vec<String> = (0..i).map(|n| n.to_string()).collect();
        let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
        publish_all(&mut c, ch, "", &q, &bodies);
        wait_ready(&mut c, ch, &q, i as u32);
    }
    let page = http.get(
        "/api/queues?page=2&page_size=2&sort=messages&sort_reverse=true&columns=name,messages",
    );
    assert_eq!(page["page_count"], 3);
    assert_eq!(page["total_count"], 5);
    assert_eq!(
        page["items"],
        serde_json::json!([{"name": "q2", "messages": 2}, {"name": "q1", "messages": 1}])
    );
    let regex = http.get("/api/queues/%2F?name=%5Eq%5B34%5D&use_regex=true&columns=name");
    assert_eq!(regex, serde_json::json!([{"name": "q3"}, {"name": "q4"}]));

    let (status, body) = http.get_as("/api/queues?page=0&page_size=2", Some(("guest", "guest")));
    assert_eq!(status, 400);
    assert_eq!(body, fixture("GET_api_queues__page-0_page_size-2.txt"));
    let (status, body) = http.get_as(
        "/api/queues?page=1&page_size=1000",
        Some(("guest", "guest")),
    );
    assert_eq!(status, 400);
    assert_eq!(body, fixture("GET_api_queues__page-1_page_size-1000.txt"));
}

#[test]
fn errors_have_rabbitmqs_status_codes_and_bodies() {
    let broker = TestBroker::start();
    let mgmt = broker.management();
    let http = Http {
        base: format!("http://{}", mgmt.local_addr()),
    };
    let (status, body) = http.get_as("/api/overview", None);
    assert_eq!((status, body), (401, Value::Null));
    let (status, body) = http.get_as("/api/overview", Some(("guest", "wrong")));
    assert_eq!(status, 401);
    assert_eq!(body, fixture("GET_api_overview_badpass.txt"));
    let (status, body) = http.get_as("/api/queues/%2F/missing", Some(("guest", "guest")));
    assert_eq!(status, 404);
    assert_eq!(body, fixture("GET_api_queues_%2F_missing.txt"));
    let (status, _) = http.get_as("/api/queues/nosuchvhost", Some(("guest", "guest")));
    assert_eq!(status, 404);
    let (status, body) = http.get_as("/api/nonexistent/path", Some(("guest", "guest")));
    assert_eq!(status, 404);
    assert_eq!(body, fixture("GET_api_nonexistent_path.txt"));
}
