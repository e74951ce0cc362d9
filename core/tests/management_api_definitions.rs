//! Definitions in RabbitMQ's JSON format: what one broker exports another
//! imports to the same exchanges, queues and bindings; a vhost's
//! definitions exported from RabbitMQ 3.10 (its whole node, users, vhosts
//! permissions and policies included, or one vhost) import cleanly; what
//! cannot be applied (parameters) is refused with the list, and nothing is
//! half-applied in silence.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::http::*;
use common::*;
use ringmq_protocol::field::{FieldTable, FieldValue};
use ringmq_protocol::message as m;
use serde_json::{json, Value};

fn names(doc: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = doc[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}:{}",
                i["vhost"].as_str().unwrap_or(""),
                i["name"]
                    .as_str()
                    .unwrap_or_else(|| i["destination"].as_str().unwrap())
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn one_brokers_export_imports_into_another_and_rabbitmqs_vhost_export_imports() {
    let a = TestBroker::start();
    let a_api = a.management();
    let a_http = Http::new(&a_api);
    let mut c = a.connect();
    let ch = c.open_channel().unwrap();
    c.exchange_declare(ch, "events", "topic").unwrap();
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: "orders".into(),
        durable: true,
        arguments: FieldTable(vec![("x-max-length".into(), FieldValue::I32(1000))]),
        ..m::QueueDeclare::default()
    })
    .unwrap();
    c.queue_bind(ch, "orders", "events", "order.*", FieldTable::default())
        .unwrap();
    c.queue_declare(m::QueueDeclare {
        channel: ch,
        queue: "mine".into(),
        exclusive: true,
        ..m::QueueDeclare::default()
    })
    .unwrap();

    let doc = a_http.get("/api/definitions");
    assert_eq!(doc["product_name"], "ringmq");
    assert_eq!(
        names(&doc, "queues"),
        ["/:orders"],
        "exclusive queues are not exported"
    );
    assert_eq!(
        names(&doc, "exchanges"),
        ["/:events"],
        "nor predeclared exchanges"
    );
    assert_eq!(
        doc["bindings"].as_array().unwrap().len(),
        1,
        "nor default-exchange bindings"
    );
    assert_eq!(doc["queues"][0]["arguments"], json!({"x-max-length": 1000}));
    assert_eq!(doc["users"][0]["name"], "guest");
    let theirs = fixture("GET_api_definitions.txt");
    for key in doc.as_object().unwrap().keys() {
        assert!(theirs.get(key).is_some(), "RabbitMQ's export has no {key}");
    }

    let b = TestBroker::start();
    let b_api = b.management();
    let b_http = Http::new(&b_api);
    let (status, body, _) = b_http.send("POST", "/api/definitions", Some(doc.clone()));
    assert_eq!(status, 204, "{body}");
    let again = b_http.get("/api/definitions");
    for key in [
        "queues",
        "exchanges",
        "bindings",
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
    ] {
        assert_eq!(again[key], doc[key], "{key}");
    }
    // Importing again changes nothing.
    assert_eq!(b_http.send("POST", "/api/definitions", Some(doc)).0, 204);

    // A document with parameters (not supported) is refused with the
    // list, and nothing of it applied.
    let mut theirs_with_parameter = theirs.clone();
    theirs_with_parameter["parameters"] = json!([{"vhost": "/", "component": "federation-upstream",
        "name": "up", "value": {"uri": "amqp://elsewhere"}}]);
    let (status, body, _) = b_http.send("POST", "/api/definitions", Some(theirs_with_parameter));
    assert_eq!(status, 400);
    assert_eq!(body["reason"], json!(["1 parameters (not supported yet)"]));
    assert!(b_http.send("GET", "/api/queues/%2F/audit", None).0 == 404);
    assert!(b_http.send("GET", "/api/users/monitor", None).0 == 404);
    let mut theirs = theirs;
    theirs["policies"] = json!([{"vhost": "/", "name": "ttl", "pattern": "^audit$",
        "apply-to": "queues", "definition": {"message-ttl": 60000}, "priority": 0}]);
    // RabbitMQ's export of its whole node imports: its users (with their
    // hashes), vhost v2, permissions, queues in both vhosts.
    let (status, body, _) = b_http.send("POST", "/api/definitions", Some(theirs.clone()));
    assert_eq!(status, 204, "{body}");
    let monitor = b_http.get("/api/users/monitor");
    assert_eq!(monitor["tags"], json!(["monitoring"]));
    assert_eq!(
        monitor["password_hash"],
        theirs["users"][1]["password_hash"]
    );
    assert_eq!(b_http.get("/api/vhosts/v2")["name"], "v2");
    assert_eq!(b_http.get("/api/permissions/v2/guest")["configure"], ".*");
    assert_eq!(b_http.get("/api/queues/v2/v2q")["name"], "v2q");
    assert_eq!(b_http.get("/api/queues/%2F/audit")["policy"], "ttl");
    assert_eq!(
        b_http.get("/api/policies/%2F/ttl")["definition"],
        json!({"message-ttl": 60000})
    );
    // Its export of vhost "/" imports cleanly into a fresh broker, quorum
    // queue and all.
    let c = TestBroker::start();
    let c_api = c.management();
    let c_http = Http::new(&c_api);
    let vhost_doc = fixture("GET_api_definitions_%2F.txt");
    let (status, body, _) = c_http.send("POST", "/api/definitions/%2F", Some(vhost_doc.clone()));
    assert_eq!(status, 204, "{body}");
    for q in vhost_doc["queues"].as_array().unwrap() {
        let name = q["name"].as_str().unwrap();
        let got = c_http.get(&format!("/api/queues/%2F/{name}"));
        assert_eq!(got["arguments"], q["arguments"], "{name}");
        assert_eq!(got["durable"], q["durable"], "{name}");
    }
    let bound = c_http.get("/api/bindings/%2F");
    assert!(bound.as_array().unwrap().len() > vhost_doc["queues"].as_array().unwrap().len());

    let (status, body, _) = b_http.send("POST", "/api/definitions", Some(json!({"queues": [{"name": "zz", "vhost": "nosuchvhost", "durable": true, "auto_delete": false, "arguments": {}}]})));
    assert_eq!(
        (status, body),
        (400, fixture("POST_api_definitions_unknownvhost.txt"))
    );
    assert_eq!(
        b_http.send("POST", "/api/definitions", Some(json!({}))).0,
        204
    );
    // An existing queue with other arguments is left as it is (RabbitMQ).
    assert_eq!(
        b_http.get("/api/queues/%2F/orders")["arguments"],
        json!({"x-max-length": 1000})
    );
}

#[test]
fn a_bad_document_is_refused_with_rabbitmqs_reason() {
    let b = TestBroker::start();
    let api = b.management();
    let http = Http::new(&api);
    let (status, body, _) = http.send(
        "POST",
        "/api/definitions",
        Some(Value::String("not an object".into())),
    );
    assert_eq!(
        (status, body),
        (400, fixture("POST_api_definitions_badjson.txt"))
    );
}
