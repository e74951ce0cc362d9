//! The async client on a glommio executor: publish, consume, confirms.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use glommio::LocalExecutorBuilder;
use ringmq_protocol::client::nonblocking;
use ringmq_protocol::client::{ConnectOptions, Event};
use ringmq_protocol::message as m;

#[test]
fn async_client_round_trip_with_confirms() {
    let broker = TestBroker::start();
    let addr = broker.addr;
    let ex = LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .make()
        .unwrap();
    ex.run(async move {
        let stream = glommio::net::TcpStream::connect(addr).await.unwrap();
        let (r, w) = futures_lite::io::split(stream);
        let (client, driver) = nonblocking::connect(r, w, &ConnectOptions::default())
            .await
            .unwrap();
        let driver = glommio::spawn_local(driver.run());
        let mut ch = client.open_channel().await.unwrap();
        let q = ch
            .queue_declare(m::QueueDeclare {
                exclusive: true,
                ..m::QueueDeclare::default()
            })
            .await
            .unwrap()
            .queue;
        assert!(q.starts_with("amq.gen-"), "{q}");
        ch.confirm_select().await.unwrap();
        for i in 0..100 {
            ch.publish(publish("", &q, &format!("{i}")));
        }
        let mut confirmed = 0;
        while confirmed < 100 {
            match ch.next_event().await.unwrap() {
                Event::Confirm(_, c) => {
                    assert!(!c.nack);
                    confirmed = c.delivery_tag;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        ch.consume(consume(ch.id, &q, true)).await.unwrap();
        for i in 0..100 {
            match ch.next_event().await.unwrap() {
                Event::Deliver(_, d) => assert_eq!(text(&d.body), format!("{i}")),
                other => panic!("unexpected {other:?}"),
            }
        }
        // A soft error closes the channel and fails the call.
        let err = ch
            .queue_declare(m::QueueDeclare {
                queue: "missing".into(),
                passive: true,
                ..m::QueueDeclare::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(404));
        client.close().await.unwrap();
        driver.await.unwrap();
    });
}
