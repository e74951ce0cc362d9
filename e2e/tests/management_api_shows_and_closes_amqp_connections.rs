//! The management API shows an AMQP client that came through the gateway
//! as RabbitMQ shows it (protocol, client properties and the name it gave,
//! its address, channels with their prefetch, consumers), and closing it
//! from the API reaches the client as 320 CONNECTION_FORCED with the
//! operator's reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ErrorKind, Event};
use ringmq_e2e::{unique, TestGateway};
use serde_json::Value;

fn http(base: &str, method: &str, path: &str, reason: Option<&str>) -> (u16, Value) {
    let token = base64::engine::general_purpose::STANDARD.encode("guest:guest");
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("Authorization", format!("Basic {token}"));
    if let Some(r) = reason {
        req = req.header("X-Reason", r);
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent.run(req.body(String::new()).unwrap()).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn an_amqp_connection_is_listed_with_its_channels_and_consumers_and_closed_with_a_reason() {
    let gw = TestGateway::start();
    let Some(mgmt) = gw.management() else {
        eprintln!("SKIPPED: the management API test needs the in-process broker");
        return;
    };
    let base = format!("http://{}", mgmt.local_addr());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let queue = unique("listed");
    let (errors, closed) = mpsc::channel::<lapin::Error>();
    let conn: Connection = runtime.block_on(async {
        let props = ConnectionProperties::default().with_connection_name("orders-service".into());
        let conn = Connection::connect(&gw.uri(), props).await.unwrap();
        let mut events = conn.events_listener();
        tokio::spawn(async move {
            while let Some(e) = events.next().await {
                if let Event::Error(e) = e {
                    let _ = errors.send(e);
                }
            }
        });
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(7, BasicQosOptions::default()).await.unwrap();
        ch.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut consumer = ch
            .basic_consume(
                queue.as_str().into(),
                "c1".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        tokio::spawn(async move { while consumer.next().await.is_some() {} });
        conn
    });

    let (status, list) = http(&base, "GET", "/api/connections", None);
    assert_eq!(status, 200);
    let c = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["user_provided_name"] == "orders-service")
        .unwrap_or_else(|| panic!("the lapin connection is listed: {list}"))
        .clone();
    assert_eq!(c["protocol"], "AMQP 0-9-1");
    assert_eq!(c["user"], "guest");
    assert_eq!(c["vhost"], "/");
    assert_eq!(c["channels"], 1);
    assert_eq!(c["peer_host"], "127.0.0.1");
    assert_eq!(
        c["port"],
        gw.addr.port(),
        "the port the client connected to: the gateway's"
    );
    assert_eq!(c["client_properties"]["product"], "lapin");
    assert_eq!(
        c["client_properties"]["capabilities"]["consumer_cancel_notify"],
        true
    );
    let name = c["name"].as_str().unwrap().to_owned();
    assert!(name.ends_with(&format!(" -> {}", gw.addr)), "{name}");
    assert_eq!(
        http(
            &base,
            "GET",
            &format!("/api/connections/{}", encode(&name)),
            None
        )
        .1["name"],
        name
    );

    let (_, channels) = http(
        &base,
        "GET",
        &format!("/api/connections/{}/channels", encode(&name)),
        None,
    );
    assert_eq!(channels[0]["name"], format!("{name} (1)"));
    assert_eq!(channels[0]["prefetch_count"], 7);
    assert_eq!(channels[0]["consumer_count"], 1);
    let (_, consumers) = http(&base, "GET", "/api/consumers/%2F", None);
    let mine = consumers
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["queue"]["name"] == queue.as_str())
        .unwrap();
    assert_eq!(mine["consumer_tag"], "c1");
    assert_eq!(mine["ack_required"], true);
    assert_eq!(mine["channel_details"]["connection_name"], name);

    let (status, _) = http(
        &base,
        "DELETE",
        &format!("/api/connections/{}", encode(&name)),
        Some("closed by the test"),
    );
    assert_eq!(status, 204);
    let e = closed
        .recv_timeout(Duration::from_secs(10))
        .expect("the client is told");
    match e.kind() {
        ErrorKind::ProtocolError(amqp) => {
            assert_eq!(amqp.get_id(), 320);
            assert_eq!(
                amqp.get_message().as_str(),
                "CONNECTION_FORCED - closed by the test"
            );
        }
        other => panic!("expected a 320 close, got {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while http(
        &base,
        "GET",
        &format!("/api/connections/{}", encode(&name)),
        None,
    )
    .0 != 404
    {
        assert!(Instant::now() < deadline, "the connection is still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        http(
            &base,
            "DELETE",
            &format!("/api/connections/{}", encode(&name)),
            None
        )
        .0,
        404
    );
    drop(conn);
    drop(mgmt);
    gw.stop();
}
