//! The management HTTP API changes the broker as RabbitMQ's does: queues
//! and exchanges declared and deleted, messages published, fetched with
//! each ack mode and purged, bindings made and removed by their
//! properties key, with RabbitMQ 3.10's status codes and error bodies.
//! What the API does also shows to AMQP-side clients (here the native one).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::http::*;
use common::*;
use serde_json::{json, Value};

fn publish(http: &Http, exchange: &str, key: &str, payload: &str) -> Value {
    let (status, body, _) = http.send(
        "POST",
        &format!("/api/exchanges/%2F/{exchange}/publish"),
        Some(json!({"properties": {"delivery_mode": 2, "headers": {"n": 5}}, "routing_key": key, "payload": payload, "payload_encoding": "string"})),
    );
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn queues_are_declared_published_to_fetched_purged_and_deleted() {
    let broker = TestBroker::start();
    let mgmt = broker.management();
    let http = Http::new(&mgmt);

    let put = |body: Value| http.send("PUT", "/api/queues/%2F/jobs", Some(body)).0;
    assert_eq!(
        put(json!({"durable": true, "arguments": {"x-max-length": 100}})),
        201
    );
    assert_eq!(
        put(json!({"durable": "true", "arguments": {"x-max-length": 100}})),
        204,
        "rabbitmqadmin's string booleans"
    );
    let (status, body, _) = http.send(
        "PUT",
        "/api/queues/%2F/jobs",
        Some(json!({"durable": false})),
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"], "bad_request");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("inequivalent arg 'durable'"),
        "{body}"
    );
    let (status, body, _) = http.send("PUT", "/api/queues/%2F/amq.reserved", Some(json!({})));
    assert_eq!(
        (status, body),
        (401, fixture("PUT_api_queues_%2F_amq.reserved.txt"))
    );
    let (status, body, _) = http.send("PUT", "/api/queues/nosuchvhost/q", Some(json!({})));
    assert_eq!(
        (status, body),
        (404, fixture("PUT_api_queues_nosuchvhost_q.txt"))
    );
    let (status, body, _) = http.send("PUT", "/api/queues/%2F/x", None);
    assert_eq!(
        status, 201,
        "an empty body declares a transient queue: {body}"
    );

    // Seen by a client of the broker.
    let mut c = broker.connect();
    let ch = c.open_channel().unwrap();
    assert_eq!(passive(&mut c, ch, "jobs").unwrap(), (0, 0));

    assert_eq!(
        publish(&http, "amq.default", "jobs", "one"),
        json!({"routed": true})
    );
    assert_eq!(
        publish(&http, "amq.default", "jobs", "two"),
        json!({"routed": true})
    );
    assert_eq!(
        publish(&http, "amq.default", "nowhere", "lost"),
        json!({"routed": false})
    );
    let (status, body, _) = http.send(
        "POST",
        "/api/exchanges/%2F/nosuchx/publish",
        Some(json!({"properties": {}, "routing_key": "jobs", "payload": "hi", "payload_encoding": "string"})),
    );
    assert_eq!(status, 400);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .starts_with("404 NOT_FOUND - no exchange 'nosuchx'"),
        "{body}"
    );
    let (status, body, _) = http.send(
        "POST",
        "/api/exchanges/%2F/amq.default/publish",
        Some(json!({"routing_key": "jobs", "payload": "hi"})),
    );
    assert_eq!(
        (status, body),
        (
            400,
            fixture("POST_api_exchanges_%2F_amq.default_publish_missingfields.txt")
        )
    );

    let get = |mode: &str, count: u32| {
        let (status, body, _) = http.send(
            "POST",
            "/api/queues/%2F/jobs/get",
            Some(json!({"count": count, "ackmode": mode, "encoding": "auto", "truncate": 50000})),
        );
        assert_eq!(status, 200, "{body}");
        body
    };
    let peeked = get("ack_requeue_true", 5);
    assert_eq!(peeked.as_array().unwrap().len(), 2);
    assert_eq!(peeked[0]["payload"], "one");
    assert_eq!(peeked[0]["payload_encoding"], "string");
    assert_eq!(peeked[0]["payload_bytes"], 3);
    assert_eq!(peeked[0]["message_count"], 1);
    assert_eq!(
        peeked[0]["properties"],
        json!({"delivery_mode": 2, "headers": {"n": 5}})
    );
    let again = get("ack_requeue_false", 1);
    assert_eq!(again[0]["payload"], "one", "requeued in place");
    assert_eq!(again[0]["redelivered"], true);
    let (status, body, _) = http.send(
        "POST",
        "/api/queues/%2F/jobs/get",
        Some(json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "hex"})),
    );
    assert_eq!(
        (status, body),
        (
            400,
            fixture("POST_api_queues_%2F_orders_get_badencoding.txt")
        )
    );

    let (status, body, _) = http.send("DELETE", "/api/queues/%2F/jobs?if-empty=true", None);
    assert_eq!(status, 400);
    assert_eq!(body["reason"], "queue 'jobs' in vhost '/' not empty");
    assert_eq!(
        http.send("DELETE", "/api/queues/%2F/jobs/contents", None).0,
        204
    );
    assert_eq!(passive(&mut c, ch, "jobs").unwrap(), (0, 0));
    assert_eq!(get("ack_requeue_false", 1), json!([]));
    assert_eq!(
        http.send(
            "POST",
            "/api/queues/%2F/jobs/actions",
            Some(json!({"action": "sync"}))
        )
        .0,
        204
    );
    assert_eq!(http.send("DELETE", "/api/queues/%2F/jobs", None).0, 204);
    let (status, body, _) = http.send("DELETE", "/api/queues/%2F/jobs", None);
    assert_eq!(
        (status, body),
        (404, fixture("DELETE_api_queues_%2F_missing.txt"))
    );
    assert!(passive(&mut c, ch, "jobs").is_err());
}

#[test]
fn exchanges_and_bindings_are_made_and_removed_by_properties_key() {
    let broker = TestBroker::start();
    let mgmt = broker.management();
    let http = Http::new(&mgmt);
    assert_eq!(
        http.send(
            "PUT",
            "/api/queues/%2F/orders",
            Some(json!({"durable": true}))
        )
        .0,
        201
    );
    assert_eq!(
        http.send(
            "PUT",
            "/api/exchanges/%2F/newx",
            Some(json!({"type": "topic", "durable": true}))
        )
        .0,
        201
    );
    assert_eq!(
        http.send(
            "PUT",
            "/api/exchanges/%2F/newx",
            Some(json!({"type": "topic", "durable": true}))
        )
        .0,
        204
    );
    let (status, body, _) = http.send(
        "PUT",
        "/api/exchanges/%2F/newx",
        Some(json!({"type": "fanout"})),
    );
    assert_eq!(status, 400);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("inequivalent arg 'type'"),
        "{body}"
    );
    let (status, body, _) = http.send(
        "PUT",
        "/api/exchanges/%2F/amq.custom",
        Some(json!({"type": "direct"})),
    );
    assert_eq!(
        (status, body),
        (401, fixture("PUT_api_exchanges_%2F_amq.custom.txt"))
    );
    assert_eq!(
        http.send(
            "PUT",
            "/api/exchanges/%2F/other",
            Some(json!({"type": "fanout"}))
        )
        .0,
        201
    );

    let (status, _, headers) = http.send(
        "POST",
        "/api/bindings/%2F/e/newx/q/orders",
        Some(json!({"routing_key": "order.*", "arguments": {}})),
    );
    assert_eq!(status, 201);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "location" && v == "orders/order.%2A"),
        "{headers:?}"
    );
    let (status, body, _) = http.send(
        "POST",
        "/api/bindings/%2F/e/missingx/q/orders",
        Some(json!({})),
    );
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": "not_found", "reason": "no exchange 'missingx' in vhost '/'"})
    );
    let (status, body, _) = http.send(
        "POST",
        "/api/bindings/%2F/e/amq.default/q/orders",
        Some(json!({})),
    );
    assert_eq!(
        (status, body),
        (
            401,
            fixture("POST_api_bindings_%2F_e_amq.default_q_orders.txt")
        )
    );
    assert_eq!(
        http.send(
            "POST",
            "/api/bindings/%2F/e/newx/e/other",
            Some(json!({"routing_key": "x.#"}))
        )
        .0,
        201
    );

    let listed = http.get("/api/bindings/%2F/e/newx/q/orders");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(
        http.get("/api/bindings/%2F/e/newx/q/orders/order.%252A")["routing_key"],
        "order.*"
    );
    assert_eq!(
        http.get("/api/exchanges/%2F/newx/bindings/source")
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        http.get("/api/exchanges/%2F/other/bindings/destination")[0]["source"],
        "newx"
    );
    let qb = http.get("/api/queues/%2F/orders/bindings");
    assert_eq!(
        qb.as_array().unwrap().len(),
        2,
        "the default exchange's and newx's: {qb}"
    );

    assert_eq!(
        publish(&http, "newx", "order.new", "routed by topic"),
        json!({"routed": true})
    );
    let (status, body, _) = http.send("DELETE", "/api/exchanges/%2F/newx?if-unused=true", None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        http.send(
            "DELETE",
            "/api/bindings/%2F/e/newx/q/orders/order.%252A",
            None
        )
        .0,
        204
    );
    assert_eq!(
        http.send(
            "DELETE",
            "/api/bindings/%2F/e/newx/q/orders/order.%252A",
            None
        )
        .0,
        404
    );
    assert_eq!(
        publish(&http, "newx", "order.new", "not any more"),
        json!({"routed": false})
    );
    assert_eq!(http.send("DELETE", "/api/exchanges/%2F/newx", None).0, 204);
    assert_eq!(http.send("DELETE", "/api/exchanges/%2F/newx", None).0, 404);
    assert_eq!(
        http.send("DELETE", "/api/exchanges/%2F/amq.direct", None).0,
        401
    );
    assert_eq!(http.get("/api/aliveness-test/%2F"), json!({"status": "ok"}));
}
