//! `ringmq ctl` (the `ringmqctl` command line) drives a broker through its
//! management API: queues declared, published to, fetched, purged and
//! deleted; every list prints a table with a header row (or the API's
//! JSON); status and health read the node; and a script can tell a
//! refusal (exit 1), a usage error (2) and an unreachable server (3)
//! apart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// What one run printed and how it exited.
struct Run {
    code: i32,
    out: String,
    err: String,
}

/// `ringmq ctl --port PORT ARGS…`, without login variables from the
/// environment.
fn ctl(port: u16, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .arg("ctl")
        .args(["--port", &port.to_string()])
        .args(args)
        .env_remove("RINGMQ_USER")
        .env_remove("RINGMQ_PASSWORD")
        .output()
        .expect("ringmq runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command that must succeed; its stdout.
fn ok(port: u16, args: &[&str]) -> String {
    let r = ctl(port, args);
    assert_eq!(r.code, 0, "{args:?}: {}{}", r.out, r.err);
    r.out
}

/// The cell of `column` in the table row whose `key_column` is `key`
/// (cells start under their header).
fn cell(table: &str, key_column: &str, key: &str, column: &str) -> Option<String> {
    let mut lines = table.lines();
    let header = lines.next()?;
    let starts: Vec<(usize, &str)> = header
        .split_whitespace()
        .map(|h| {
            (
                header.find(&format!("{h} ")).or(header.rfind(h)).unwrap(),
                h,
            )
        })
        .collect();
    let text_of = |line: &str, name: &str| {
        let i = starts.iter().position(|(_, h)| *h == name)?;
        let from = starts[i].0.min(line.len());
        let to = starts
            .get(i + 1)
            .map_or(line.len(), |s| s.0.min(line.len()));
        Some(line[from..to].trim().to_owned())
    };
    lines
        .find(|l| text_of(l, key_column).as_deref() == Some(key))
        .and_then(|l| text_of(l, column))
}

/// `list queues` as JSON: the `messages` of queue `name`.
fn messages(port: u16, name: &str) -> Option<u64> {
    let out = ok(port, &["--format", "json", "list", "queues"]);
    let rows: Value = serde_json::from_str(&out).unwrap();
    rows.as_array()?
        .iter()
        .find(|q| q["name"] == name)?
        .get("messages")?
        .as_u64()
}

#[test]
fn a_queue_is_declared_published_to_fetched_purged_and_deleted() {
    let broker = TestBroker::start();
    let mgmt = broker.management();
    let port = mgmt.local_addr().port();
    let q = "cli jobs#1";

    assert_eq!(
        ok(port, &["declare", "queue", q, "--durable"]),
        "queue declared\n"
    );
    for payload in ["first", "second"] {
        let out = ok(port, &["publish", "--routing-key", q, "--payload", payload]);
        assert_eq!(out, "routed: true\n");
    }
    assert_eq!(
        ok(
            port,
            &["publish", "--routing-key", "nowhere", "--payload", "x"]
        ),
        "routed: false\n"
    );

    assert!(eventually(Duration::from_secs(10), || messages(port, q) == Some(2)));
    let table = ok(port, &["list", "queues"]);
    assert!(
        table.starts_with(
            "vhost  name        type     messages  messages_ready  messages_unacknowledged  consumers\n"
        ),
        "{table}"
    );
    assert_eq!(
        cell(&table, "name", q, "messages").as_deref(),
        Some("2"),
        "{table}"
    );
    assert_eq!(
        cell(&table, "name", q, "vhost").as_deref(),
        Some("/"),
        "{table}"
    );
    let chosen = ok(
        port,
        &[
            "list",
            "queues",
            "--columns",
            "name,messages,arguments.x-none",
        ],
    );
    assert_eq!(
        chosen,
        format!("name        messages  arguments.x-none\n{q}  2\n")
    );

    let got = ok(
        port,
        &["get", "--queue", q, "--ackmode", "ack_requeue_false"],
    );
    assert!(got.starts_with("routing_key  exchange  message_count  payload_bytes  payload_encoding  payload  redelivered\n"), "{got}");
    assert_eq!(
        cell(&got, "routing_key", q, "payload").as_deref(),
        Some("first"),
        "{got}"
    );
    assert_eq!(
        cell(&got, "routing_key", q, "message_count").as_deref(),
        Some("1"),
        "{got}"
    );
    let json: Value = serde_json::from_str(&ok(
        port,
        &["--format", "json", "get", "--queue", q, "--count", "5"],
    ))
    .unwrap();
    assert_eq!(json[0]["payload"], "second", "{json}");
    assert_eq!(json.as_array().unwrap().len(), 1, "the first was removed");

    assert_eq!(ok(port, &["purge", "queue", q]), "queue purged\n");
    assert!(eventually(Duration::from_secs(10), || messages(port, q) == Some(0)));
    assert_eq!(
        ok(port, &["delete", "queue", q, "--if-empty"]),
        "queue deleted\n"
    );
    let gone = ok(port, &["list", "queues", "--columns", "name"]);
    assert_eq!(gone, "name\n");
    let again = ctl(port, &["delete", "queue", q]);
    assert_eq!(again.code, 1, "{}", again.err);
    assert!(again.err.starts_with("error: 404 "), "{}", again.err);
}

#[test]
fn every_list_status_and_health_work() {
    let broker = TestBroker::start();
    let mgmt = broker.management();
    let port = mgmt.local_addr().port();
    let _client = broker.connect();

    ok(port, &["declare", "queue", "bound"]);
    ok(
        port,
        &[
            "declare",
            "exchange",
            "cli.x",
            "--type",
            "topic",
            "--durable",
        ],
    );
    let bound = ["--source", "cli.x", "--destination", "bound"];
    ok(
        port,
        &[
            &["declare", "binding"][..],
            &bound,
            &["--routing-key", "a.*"],
        ]
        .concat(),
    );

    let exchanges = ok(port, &["list", "exchanges"]);
    assert_eq!(
        cell(&exchanges, "name", "cli.x", "type").as_deref(),
        Some("topic"),
        "{exchanges}"
    );
    assert_eq!(
        cell(&exchanges, "name", "amq.fanout", "durable").as_deref(),
        Some("true")
    );
    let bindings = ok(port, &["list", "bindings"]);
    assert_eq!(
        cell(&bindings, "source", "cli.x", "routing_key").as_deref(),
        Some("a.*"),
        "{bindings}"
    );
    assert_eq!(
        cell(&bindings, "source", "cli.x", "properties_key").as_deref(),
        Some("a.%2A")
    );
    let deleted = ok(
        port,
        &[
            &["delete", "binding"][..],
            &bound,
            &["--routing-key", "a.*"],
        ]
        .concat(),
    );
    assert_eq!(deleted, "binding deleted\n");
    assert_eq!(
        cell(
            &ok(port, &["list", "bindings"]),
            "source",
            "cli.x",
            "routing_key"
        ),
        None
    );

    assert!(
        eventually(Duration::from_secs(10), || {
            let conns = ok(port, &["list", "connections"]);
            conns.starts_with("name  ")
                && cell(&conns, "user", "guest", "vhost").as_deref() == Some("/")
                || conns.lines().count() > 1
        }),
        "the open client connection is listed"
    );
    let conns: Value =
        serde_json::from_str(&ok(port, &["--format", "json", "list", "connections"])).unwrap();
    let name = conns[0]["name"].as_str().unwrap().to_owned();
    let closed = ok(
        port,
        &[
            "close",
            "connection",
            &name,
            "--reason",
            "closed by ctl test",
        ],
    );
    assert_eq!(closed, "connection closed\n");
    assert!(
        eventually(Duration::from_secs(10), || ok(
            port,
            &["list", "connections"]
        )
            == "name  user  vhost  channels  state\n"),
        "closed connections leave the list"
    );
    assert!(ok(port, &["list", "channels"]).starts_with("name  user  vhost"));
    assert!(ok(port, &["list", "consumers"]).starts_with("queue.vhost  queue.name"));
    let vhosts = ok(port, &["list", "vhosts"]);
    assert!(
        vhosts.starts_with("name  ") && vhosts.lines().any(|l| l.starts_with("/ ")),
        "{vhosts}"
    );
    let users = ok(port, &["list", "users"]);
    assert_eq!(
        cell(&users, "name", "guest", "tags").as_deref(),
        Some("administrator"),
        "{users}"
    );
    let perms = ok(port, &["--vhost", "/", "list", "permissions"]);
    assert_eq!(
        perms,
        "user   vhost  configure  write  read\nguest  /      .*         .*     .*\n"
    );

    let overview: Value = serde_json::from_str(&ok(port, &["--format", "json", "status"])).unwrap();
    let node = overview["overview"]["node"].as_str().unwrap().to_owned();
    let status = ok(port, &["status"]);
    assert!(
        status.contains(&format!("node:        {node}\n")),
        "{status}"
    );
    assert!(status.contains("queues:      1\n"), "{status}");
    assert!(
        status.contains("memory:      ") && status.contains("alarm: no"),
        "{status}"
    );

    assert_eq!(ok(port, &["health", "alarms"]), "ok\n");
    assert_eq!(ok(port, &["health"]), "ok\n");
}

#[test]
fn scripts_can_tell_refusals_usage_errors_and_unreachable_servers_apart() {
    let broker = TestBroker::start();
    let mgmt = broker.management();
    let port = mgmt.local_addr().port();

    let refused = ctl(port, &["--password", "wrong", "list", "queues"]);
    assert_eq!(refused.code, 1);
    assert_eq!(refused.err, "error: 401 not_authorized: Login failed\n");
    assert_eq!(refused.out, "");
    let bad_body = ctl(port, &["declare", "exchange", "x", "--type", "nonsense"]);
    assert_eq!(bad_body.code, 1);
    assert!(
        bad_body.err.contains("400 bad_request: "),
        "{}",
        bad_body.err
    );

    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = free.local_addr().unwrap().port();
    drop(free);
    let unreachable = ctl(closed, &["status"]);
    assert_eq!(unreachable.code, 3, "{}", unreachable.err);
    assert!(
        unreachable.err.starts_with("error: cannot connect to "),
        "{}",
        unreachable.err
    );

    for usage in [
        &["list", "bogus"][..],
        &["declare", "queue", "q", "--arguments", "not json"],
        &["declare", "exchange", "x"],
        &[],
    ] {
        let r = ctl(port, usage);
        assert_eq!(r.code, 2, "{usage:?}: {}", r.err);
    }
    assert_eq!(ctl(port, &["--help"]).code, 0);
}

#[test]
fn users_vhosts_and_permissions_are_managed_from_the_command_line() {
    let b = TestBroker::start();
    let api = b.management();
    let port = api.local_addr().port();
    assert_eq!(
        ok(port, &["add", "vhost", "v1", "--description", "team one"]),
        "vhost added\n"
    );
    assert_eq!(
        ok(
            port,
            &[
                "add",
                "user",
                "ann",
                "--password",
                "pw",
                "--tags",
                "management"
            ]
        ),
        "user added\n"
    );
    assert_eq!(
        ok(
            port,
            &[
                "--vhost",
                "v1",
                "set",
                "permissions",
                "--user",
                "ann",
                "--configure",
                "^ann-"
            ]
        ),
        "permissions set\n"
    );
    assert_eq!(
        ok(
            port,
            &[
                "--vhost",
                "v1",
                "set",
                "topic-permissions",
                "--user",
                "ann",
                "--exchange",
                "amq.topic",
                "--write",
                "^ann\\."
            ]
        ),
        "topic permissions set\n"
    );
    let vhosts = ok(port, &["list", "vhosts"]);
    assert!(vhosts.lines().any(|l| l.starts_with("v1 ")), "{vhosts}");
    let users = ok(port, &["list", "users"]);
    assert_eq!(
        cell(&users, "name", "ann", "tags").as_deref(),
        Some("management"),
        "{users}"
    );
    let perms = ok(port, &["--vhost", "v1", "list", "permissions"]);
    assert_eq!(
        cell(&perms, "user", "ann", "configure").as_deref(),
        Some("^ann-"),
        "{perms}"
    );
    let topics = ok(port, &["--vhost", "v1", "list", "topic-permissions"]);
    assert_eq!(
        cell(&topics, "user", "ann", "write").as_deref(),
        Some("^ann\\."),
        "{topics}"
    );
    // The new user logs in to the new vhost over the native protocol.
    let opts = ringmq_protocol::client::ConnectOptions {
        username: "ann".into(),
        password: "pw".into(),
        vhost: "v1".into(),
        ..Default::default()
    };
    ringmq_protocol::client::blocking::Connection::connect(b.addr, &opts).expect("ann logs in");

    assert_eq!(
        ok(
            port,
            &[
                "--vhost",
                "v1",
                "clear",
                "topic-permissions",
                "--user",
                "ann",
                "--exchange",
                "amq.topic"
            ]
        ),
        "topic permissions cleared\n"
    );
    assert_eq!(
        ok(
            port,
            &["--vhost", "v1", "clear", "permissions", "--user", "ann"]
        ),
        "permissions cleared\n"
    );
    assert_eq!(ok(port, &["delete", "user", "ann"]), "user deleted\n");
    assert_eq!(ok(port, &["delete", "vhost", "v1"]), "vhost deleted\n");
    let gone = ctl(port, &["delete", "vhost", "v1"]);
    assert_eq!(
        (gone.code, gone.err.as_str()),
        (
            1,
            "error: 404 Object Not Found: Not Found (DELETE /api/vhosts/v1)\n"
        )
    );
}
