//! Definitions round trip: a broker with users, vhosts, permissions,
//! topic permissions, policies, exchanges, queues and bindings exports
//! them; a fresh broker loads that file at boot (`load_definitions`) and
//! exports the same again; loading it at every restart keeps the queues
//! (and their messages); a file that cannot be applied refuses the start
//! naming the item.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::http::*;
use common::*;
use ringmq_core::{Broker, Config};
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;
use serde_json::{json, Value};

const KEYS: &[&str] = &[
    "users",
    "vhosts",
    "permissions",
    "topic_permissions",
    "policies",
    "queues",
    "exchanges",
    "bindings",
];

fn put(h: &Http, path: &str, body: Value) {
    let (status, body, _) = h.send("PUT", path, Some(body));
    assert!(status == 201 || status == 204, "{path}: {status} {body}");
}

fn login(b: &TestBroker, user: &str, password: &str, vhost: &str) -> Connection {
    let opts = ConnectOptions {
        username: user.into(),
        password: password.into(),
        vhost: vhost.into(),
        ..ConnectOptions::default()
    };
    let mut c = Connection::connect(b.addr, &opts).expect("login");
    c.set_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

#[test]
fn an_export_loaded_at_boot_exports_the_same_and_keeps_its_queues_across_restarts() {
    let a = TestBroker::start();
    let a_api = a.management();
    let h = Http::new(&a_api);
    put(&h, "/api/vhosts/v1", json!({"description": "team"}));
    put(
        &h,
        "/api/users/ann",
        json!({"password": "pw", "tags": "management"}),
    );
    put(
        &h,
        "/api/permissions/v1/ann",
        json!({"configure": "^ann-", "write": ".*", "read": ".*"}),
    );
    put(
        &h,
        "/api/topic-permissions/v1/ann",
        json!({"exchange": "ann.x", "write": "^a\\.", "read": ".*"}),
    );
    put(
        &h,
        "/api/policies/v1/cap",
        json!({"pattern": "^ann-", "definition": {"max-length": 5}, "apply-to": "queues", "priority": 3}),
    );
    put(
        &h,
        "/api/exchanges/v1/ann.x",
        json!({"type": "topic", "durable": true}),
    );
    put(
        &h,
        "/api/queues/v1/ann-q",
        json!({"durable": true, "arguments": {"x-message-ttl": 60000}}),
    );
    let (status, body, _) = h.send(
        "POST",
        "/api/bindings/v1/e/ann.x/q/ann-q",
        Some(json!({"routing_key": "a.#"})),
    );
    assert_eq!(status, 201, "{body}");
    let exported = h.get("/api/definitions");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("definitions.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&exported).unwrap()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_owned();
    let boot = |c: &mut Config| {
        c.storage.data_dir = data_dir.clone();
        c.load_definitions = Some(file.clone());
    };
    {
        let b = TestBroker::with(boot);
        let b_api = b.management();
        let again = Http::new(&b_api).get("/api/definitions");
        for key in KEYS {
            assert_eq!(again[key], exported[key], "{key}");
        }
        // The user logs in with its password (the hash came along) and the
        // policy applies to the queue.
        let mut c = login(&b, "ann", "pw", "v1");
        let ch = c.open_channel().unwrap();
        assert_eq!(
            Http::new(&b_api).get("/api/queues/v1/ann-q")["policy"],
            "cap"
        );
        let props = ringmq_protocol::Properties {
            delivery_mode: Some(2),
            ..Default::default()
        };
        c.publish(ch, publish_props("ann.x", "a.b", "kept", props))
            .unwrap();
        c.flush().unwrap();
        wait_ready(&mut c, ch, "ann-q", 1);
        b.stop();
    }
    // Restarted with the same file: nothing new, the queue and its message
    // are the same.
    let b = TestBroker::with(boot);
    let b_api = b.management();
    let again = Http::new(&b_api).get("/api/definitions");
    for key in KEYS {
        assert_eq!(again[key], exported[key], "{key}");
    }
    let mut c = login(&b, "ann", "pw", "v1");
    let ch = c.open_channel().unwrap();
    assert_eq!(drain(&mut c, ch, "ann-q"), ["kept"]);
}

#[test]
fn a_file_that_cannot_be_applied_refuses_the_start_naming_the_item() {
    let refused = |doc: Value| -> String {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.json");
        std::fs::write(&file, doc.to_string()).unwrap();
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        config.server.cores = 2;
        config.server.pin_cores = false;
        config.storage.data_dir = dir.path().join("data");
        config.load_definitions = Some(file);
        match Broker::start(config) {
            Ok(b) => {
                b.stop();
                panic!("started with {doc}")
            }
            Err(e) => e.to_string(),
        }
    };
    let e = refused(
        json!({"queues": [{"name": "q", "vhost": "nowhere", "durable": true, "auto_delete": false, "arguments": {}}]}),
    );
    assert!(
        e.contains("queue 'q' in vhost 'nowhere'") && e.contains("not found"),
        "{e}"
    );
    let e = refused(
        json!({"queues": [{"name": "q", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {"x-max-length": "many"}}]}),
    );
    assert!(e.contains("queue 'q'") && e.contains("x-max-length"), "{e}");
    let e = refused(
        json!({"parameters": [{"vhost": "/", "component": "shovel", "name": "s", "value": {}}]}),
    );
    assert!(e.contains("not supported: 1 parameters"), "{e}");
    let e = refused(
        json!({"policies": [{"vhost": "/", "name": "p", "pattern": ".*", "definition": {"ha-mode": "all"}}]}),
    );
    assert!(e.contains("ha-mode not supported"), "{e}");
    let e = refused(json!([1, 2]));
    assert!(e.contains("not a JSON object"), "{e}");
}
