//! Login failures: bad credentials close the connection with 403
//! ACCESS_REFUSED, an unknown vhost with 530 NOT_ALLOWED.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;

fn login(
    broker: &TestBroker,
    user: &str,
    password: &str,
    vhost: &str,
) -> Result<Connection, ringmq_protocol::client::ClientError> {
    Connection::connect(
        broker.addr,
        &ConnectOptions {
            username: user.into(),
            password: password.into(),
            vhost: vhost.into(),
            ..ConnectOptions::default()
        },
    )
}

const REFUSED: &str =
    "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.";

#[test]
fn wrong_password_is_refused() {
    let broker = TestBroker::start();
    assert_eq!(
        connection_closed(login(&broker, "guest", "wrong", "/"), 403),
        REFUSED
    );
    assert_eq!(
        connection_closed(login(&broker, "nobody", "guest", "/"), 403),
        REFUSED
    );
    // Right credentials still work.
    login(&broker, "guest", "guest", "/").unwrap();
}

#[test]
fn unknown_vhost_is_not_allowed() {
    let broker = TestBroker::start();
    assert_eq!(
        connection_closed(login(&broker, "guest", "guest", "/nope"), 530),
        "NOT_ALLOWED - vhost /nope not found"
    );
}
