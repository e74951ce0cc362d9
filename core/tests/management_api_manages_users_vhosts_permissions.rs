//! Users, vhosts, permissions and topic permissions at run time over the
//! management API, with RabbitMQ 3.10's status codes and refusals
//! (`mgmt/tests/fixtures/rabbitmq-3.10/access-api.md`): a user exists for
//! logins as soon as the PUT answers, a vhost opens for those given
//! permissions in it, deleting a user or a vhost closes its connections
//! (320, RabbitMQ's text) and a deleted vhost takes its queues and
//! messages with it; all of it is stored and survives a restart, and the
//! configuration's users were only the seed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::http::*;
use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::{ClientError, ConnectOptions};
use serde_json::{json, Value};

fn login(
    b: &TestBroker,
    user: &str,
    password: &str,
    vhost: &str,
) -> Result<Connection, ClientError> {
    let opts = ConnectOptions {
        username: user.into(),
        password: password.into(),
        vhost: vhost.into(),
        ..ConnectOptions::default()
    };
    let mut c = Connection::connect(b.addr, &opts)?;
    c.set_timeout(Some(Duration::from_secs(10))).unwrap();
    Ok(c)
}

fn refused_code(r: Result<Connection, ClientError>) -> (u16, String) {
    match r {
        Err(ClientError::ConnectionClosed { code, text }) => (code, text),
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("login accepted"),
    }
}

fn put(h: &Http, path: &str, body: Value) -> (u16, Value) {
    let (s, b, _) = h.send("PUT", path, Some(body));
    (s, b)
}

#[test]
fn users_and_permissions_change_at_run_time_with_rabbitmqs_answers() {
    let b = TestBroker::start();
    let api = b.management();
    let h = Http::new(&api);

    // A user: 201, then 204; tags as a string or a list.
    assert_eq!(
        put(
            &h,
            "/api/users/alice",
            json!({"password": "pw", "tags": "monitoring"})
        )
        .0,
        201
    );
    assert_eq!(
        put(
            &h,
            "/api/users/alice",
            json!({"password": "pw", "tags": ["management", "policymaker"]})
        )
        .0,
        204
    );
    let alice = h.get("/api/users/alice");
    assert_eq!(alice["tags"], json!(["management", "policymaker"]));
    assert_eq!(alice["hashing_algorithm"], "rabbit_password_hashing_sha256");
    let mut shape = Vec::new();
    invented(
        &alice,
        &fixture("GET_api_users_u_multi.txt"),
        "",
        &mut shape,
    );
    assert!(shape.is_empty(), "{shape:?}");
    assert_eq!(h.get("/api/users/without-permissions")[0]["name"], "alice");

    // Without permissions she may log in but open no vhost (530).
    let (code, text) = refused_code(login(&b, "alice", "pw", "/"));
    assert_eq!(code, 530, "{text}");
    assert!(
        text.contains("access to vhost '/' refused for user 'alice'"),
        "{text}"
    );
    assert_eq!(refused_code(login(&b, "alice", "nope", "/")).0, 403);
    assert_eq!(
        put(
            &h,
            "/api/permissions/%2F/alice",
            json!({"configure": ".*", "write": ".*", "read": ".*"})
        )
        .0,
        201
    );
    assert_eq!(
        put(
            &h,
            "/api/permissions/%2F/alice",
            json!({"configure": "", "write": ".*", "read": ".*"})
        )
        .0,
        204
    );
    assert_eq!(h.get("/api/permissions/%2F/alice")["configure"], "");
    let mut c = login(&b, "alice", "pw", "/").expect("alice logs in once she has permissions");
    c.open_channel().unwrap();

    // Refusals as RabbitMQ words them.
    assert_eq!(
        put(&h, "/api/users/bob", json!({"password": "pw"})),
        (
            400,
            json!({"error": "bad_request", "reason": "tags_not_present"})
        )
    );
    assert_eq!(
        put(
            &h,
            "/api/permissions/nosuchvhost/alice",
            json!({"configure": ".*", "write": ".*", "read": ".*"})
        ),
        (
            400,
            json!({"error": "bad_request", "reason": "vhost_or_user_not_found"})
        )
    );
    assert_eq!(
        put(
            &h,
            "/api/permissions/%2F/nobody",
            json!({"configure": ".*", "write": ".*", "read": ".*"})
        ),
        (
            400,
            json!({"error": "bad_request", "reason": "vhost_or_user_not_found"})
        )
    );
    assert_eq!(
        put(&h, "/api/permissions/%2F/alice", json!({"configure": ".*"})),
        (
            400,
            json!({"error": "bad_request", "reason": "[{key_missing,write},{key_missing,read}]"})
        )
    );
    let (status, body) = put(
        &h,
        "/api/permissions/%2F/alice",
        json!({"configure": "(", "write": ".*", "read": ".*"}),
    );
    assert_eq!(
        (status, &body["reason"][0]),
        (400, &json!("invalid_regexp")),
        "{body}"
    );
    let (status, body) = put(
        &h,
        "/api/users/carl",
        json!({"password_hash": "!!notbase64!!", "tags": ""}),
    );
    assert_eq!(
        (status, body["reason"].clone()),
        (400, json!(["not_base64", "!!notbase64!!"]))
    );
    let (status, body) = put(
        &h,
        "/api/users/carl",
        json!({"password_hash": "", "hashing_algorithm": "rabbit_password_hashing_md5", "tags": ""}),
    );
    assert_eq!(status, 400);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("hashing_algorithm"),
        "{body}"
    );
    // Only administrators manage users; alice (management) may log in to
    // the API but not change users; a user without tags may not log in.
    let (status, body, _) = h.send_as(
        "PUT",
        "/api/users/x",
        Some(json!({"tags": ""})),
        ("alice", "pw"),
    );
    assert_eq!(
        (status, body),
        (
            401,
            json!({"error": "not_authorised", "reason": "Not administrator user"})
        )
    );
    assert_eq!(
        put(
            &h,
            "/api/users/notags",
            json!({"password": "pw", "tags": ""})
        )
        .0,
        201
    );
    let (status, body) = h.get_as("/api/overview", Some(("notags", "pw")));
    assert_eq!(
        (status, body),
        (
            401,
            json!({"error": "not_authorised", "reason": "Not management user"})
        )
    );
    // A user made from a RabbitMQ password hash logs in with its password.
    let hash = ringmq_core::password::hash_password("from-hash");
    assert_eq!(put(&h, "/api/users/hashed", json!({"password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": "administrator"})).0, 201);
    assert_eq!(
        h.get_as("/api/whoami", Some(("hashed", "from-hash"))).0,
        200
    );
    // A user with no password cannot log in with any.
    assert_eq!(
        put(&h, "/api/users/nopw", json!({"tags": "administrator"})).0,
        201
    );
    assert_eq!(h.get_as("/api/whoami", Some(("nopw", ""))).0, 401);

    // Topic permissions.
    assert_eq!(
        put(
            &h,
            "/api/topic-permissions/%2F/alice",
            json!({"exchange": "amq.topic", "write": "^alice\\.", "read": ".*"})
        )
        .0,
        201
    );
    assert_eq!(
        put(
            &h,
            "/api/topic-permissions/%2F/alice",
            json!({"exchange": "logs", "write": ".*", "read": ".*"})
        )
        .0,
        204
    );
    let topics = h.get("/api/topic-permissions/%2F/alice");
    assert_eq!(topics.as_array().unwrap().len(), 2);
    assert_eq!(
        topics[0],
        json!({"user": "alice", "vhost": "/", "exchange": "amq.topic", "write": "^alice\\.", "read": ".*"})
    );
    assert_eq!(
        h.send("DELETE", "/api/topic-permissions/%2F/alice/logs", None)
            .0,
        204
    );
    assert_eq!(
        h.get("/api/users/alice/topic-permissions")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.send("DELETE", "/api/topic-permissions/%2F/alice", None).0,
        204
    );
    assert_eq!(
        h.send("DELETE", "/api/topic-permissions/%2F/alice", None).0,
        404
    );

    // Deleting a user closes its connections, as RabbitMQ does.
    assert_eq!(h.send("DELETE", "/api/users/alice", None).0, 204);
    let close = wait_connection_close(&mut c);
    assert_eq!(close.code, 320);
    assert!(
        close.text.contains("user 'alice' is deleted"),
        "{}",
        close.text
    );
    assert_eq!(refused_code(login(&b, "alice", "pw", "/")).0, 403);
    assert_eq!(h.send("DELETE", "/api/users/alice", None).0, 404);
    assert!(h
        .get("/api/permissions")
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["user"] != "alice"));

    // Bulk delete stops at the first missing user.
    let (status, body, _) = h.send(
        "POST",
        "/api/users/bulk-delete",
        Some(json!({"users": ["notags", "ghost", "nopw"]})),
    );
    assert_eq!(
        (status, body["reason"].clone()),
        (400, json!(["no_such_user", "ghost"]))
    );
    assert_eq!(
        h.get_as("/api/users/notags", Some(("guest", "guest"))).0,
        404
    );
    assert_eq!(h.get_as("/api/users/nopw", Some(("guest", "guest"))).0, 200);
}

#[test]
fn a_deleted_vhost_takes_its_queues_and_connections_with_it() {
    let b = TestBroker::start();
    let api = b.management();
    let h = Http::new(&api);
    assert_eq!(
        put(
            &h,
            "/api/vhosts/v1",
            json!({"description": "first", "tags": "a,b"})
        )
        .0,
        201
    );
    assert_eq!(
        put(&h, "/api/vhosts/v1", json!({"description": "again"})).0,
        204
    );
    let v1 = h.get("/api/vhosts/v1");
    assert_eq!(
        (v1["description"].clone(), v1["tags"].clone()),
        (json!("again"), json!([]))
    );
    assert_eq!(v1["messages"], 0);
    // The creator may use it at once.
    assert_eq!(h.get("/api/permissions/v1/guest")["read"], ".*");
    let mut c = login(&b, "guest", "guest", "v1").unwrap();
    let ch = c.open_channel().unwrap();
    let (q1, q2) = names_on_each_shard("vq");
    for q in [&q1, &q2] {
        declare_durable(&mut c, ch, q);
        publish_all(&mut c, ch, "", q, &["one", "two"]);
        wait_ready(&mut c, ch, q, 2);
    }
    assert_eq!(h.get("/api/vhosts/v1")["messages"], 4);
    let mut other = b.connect();
    let och = other.open_channel().unwrap();
    declare_durable(&mut other, och, "stays");

    assert_eq!(h.send("DELETE", "/api/vhosts/v1", None).0, 204);
    let close = wait_connection_close(&mut c);
    assert_eq!(close.code, 320);
    assert!(
        close.text.contains("vhost 'v1' is deleted"),
        "{}",
        close.text
    );
    assert_eq!(h.send("DELETE", "/api/vhosts/v1", None).0, 404);
    assert_eq!(h.get_as("/api/queues/v1", Some(("guest", "guest"))).0, 404);
    assert_eq!(refused_code(login(&b, "guest", "guest", "v1")).0, 530);
    // Created again, it is empty, and nobody but its creator has access.
    assert_eq!(put(&h, "/api/vhosts/v1", json!({})).0, 201);
    assert_eq!(h.get("/api/queues/v1"), json!([]));
    assert_eq!(
        h.get("/api/vhosts/v1/permissions")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Other vhosts are untouched.
    assert!(passive(&mut other, och, "stays").is_ok());
}

#[test]
fn users_vhosts_and_permissions_survive_a_restart_and_the_config_only_seeds() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    {
        let b = TestBroker::with(|c| c.storage.data_dir = dir.clone());
        let api = b.management();
        let h = Http::new(&api);
        assert_eq!(
            put(&h, "/api/vhosts/kept", json!({"description": "d"})).0,
            201
        );
        assert_eq!(
            put(
                &h,
                "/api/users/bob",
                json!({"password": "pw", "tags": "monitoring"})
            )
            .0,
            201
        );
        assert_eq!(
            put(
                &h,
                "/api/permissions/kept/bob",
                json!({"configure": "^b", "write": ".*", "read": ".*"})
            )
            .0,
            201
        );
        assert_eq!(
            put(
                &h,
                "/api/topic-permissions/kept/bob",
                json!({"exchange": "amq.topic", "write": "x", "read": "y"})
            )
            .0,
            201
        );
        // The seed user's password changes at run time.
        assert_eq!(
            put(
                &h,
                "/api/users/guest",
                json!({"password": "changed", "tags": "administrator"})
            )
            .0,
            204
        );
        let mut c = login(&b, "bob", "pw", "kept").unwrap();
        let ch = c.open_channel().unwrap();
        declare_durable(&mut c, ch, "b-queue");
        let props = ringmq_protocol::Properties {
            delivery_mode: Some(2),
            ..Default::default()
        };
        c.publish(ch, publish_props("", "b-queue", "persisted", props))
            .unwrap();
        c.flush().unwrap();
        wait_ready(&mut c, ch, "b-queue", 1);
        b.stop();
    }
    // Same data dir; the configuration still says guest/guest.
    let b = TestBroker::with(|c| c.storage.data_dir = dir.clone());
    let api = b.management();
    let h = Http::new(&api);
    assert_eq!(h.get_as("/api/whoami", Some(("guest", "guest"))).0, 401);
    let (status, me) = h.get_as("/api/whoami", Some(("guest", "changed")));
    assert_eq!((status, me["name"].clone()), (200, json!("guest")));
    let (_, bob) = h.get_as("/api/users/bob", Some(("guest", "changed")));
    assert_eq!(bob["tags"], json!(["monitoring"]));
    let (_, perm) = h.get_as("/api/permissions/kept/bob", Some(("guest", "changed")));
    assert_eq!(perm["configure"], "^b");
    let (_, topic) = h.get_as(
        "/api/topic-permissions/kept/bob",
        Some(("guest", "changed")),
    );
    assert_eq!(topic[0]["write"], "x");
    let (_, kept) = h.get_as("/api/vhosts/kept", Some(("guest", "changed")));
    assert_eq!(kept["description"], "d");
    let mut c = login(&b, "bob", "pw", "kept").unwrap();
    let ch = c.open_channel().unwrap();
    assert_eq!(drain(&mut c, ch, "b-queue"), ["persisted"]);
}
