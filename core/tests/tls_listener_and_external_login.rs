//! The native protocol over TLS (rustls) beside the plain listener: a
//! Rust client that trusts the CA connects and works; a plain client on
//! the TLS port, a client that trusts another CA, an expired client
//! certificate and one from an unknown CA are refused without hanging;
//! the EXTERNAL mechanism logs in as the certificate's common name, and is
//! refused for an unknown user or without a certificate; a gateway whose
//! user has the `impersonator` tag logs in on behalf of a certificate's
//! user (EXTERNAL through AMQPS), any other user cannot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use std::io::{Read, Write};

use common::certs::Certs;
use common::*;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::{tls, ClientError, ConnectOptions};

fn broker(certs: &Certs) -> TestBroker {
    TestBroker::with(|c| {
        c.tls.listen = Some("127.0.0.1:0".parse().unwrap());
        c.tls.cert = Some(certs.server.0.clone());
        c.tls.key = Some(certs.server.1.clone());
        c.tls.ca = Some(certs.ca.clone());
        c.tls.verify_peer = true;
        c.server.shard_port_base = common::two_free_ports();
        c.users.push(ringmq_core::config::UserConfig {
            name: "ann".into(),
            password_hash: ringmq_core::password::hash_password("pw"),
            vhosts: vec!["/".into()],
            tags: vec![],
        });
        // A gateway's user, which may vouch for certificate identities,
        // and one that may not.
        for (name, tags) in [("gw", vec!["impersonator".to_owned()]), ("plain", vec![])] {
            c.users.push(ringmq_core::config::UserConfig {
                name: name.into(),
                password_hash: ringmq_core::password::hash_password("gwpw"),
                vhosts: vec!["/".into()],
                tags,
            });
        }
    })
}

fn tls_addr(b: &TestBroker) -> std::net::SocketAddr {
    b.tls_addr().expect("a TLS listener")
}

fn external() -> ConnectOptions {
    ConnectOptions {
        mechanism: "EXTERNAL".into(),
        username: String::new(),
        password: String::new(),
        ..ConnectOptions::default()
    }
}

#[test]
fn a_client_trusting_the_ca_works_over_tls_beside_the_plain_listener() {
    let certs = Certs::new();
    let b = broker(&certs);
    let config = tls::config(&certs.ca, None).unwrap();
    let mut c = Connection::connect_tls(
        tls_addr(&b),
        "localhost",
        config,
        &ConnectOptions::default(),
    )
    .expect("TLS connect");
    c.set_timeout(Some(Duration::from_secs(10))).unwrap();
    // The per-shard ports are plain TCP: not offered over TLS.
    assert_eq!((c.server.shards, c.server.shard_port_base), (2, 0));
    let ch = c.open_channel().unwrap();
    declare_durable(&mut c, ch, "over-tls");
    let body = "x".repeat(100_000);
    publish_all(&mut c, ch, "", "over-tls", &["small", &body]);
    wait_ready(&mut c, ch, "over-tls", 2);
    assert_eq!(drain(&mut c, ch, "over-tls"), ["small".to_owned(), body]);
    // The plain listener serves as before, and offers the shard ports.
    let mut plain = b.connect();
    assert_eq!(
        plain.server.shard_port_base,
        b.config.server.shard_port_base
    );
    plain.open_channel().unwrap();
    let row = b.management();
    let conns = common::http::Http::new(&row).get("/api/connections");
    assert_eq!(conns.as_array().unwrap().len(), 2);
}

#[test]
fn wrong_peers_are_refused_with_errors_not_hangs() {
    let certs = Certs::new();
    let b = broker(&certs);
    let addr = tls_addr(&b);
    // A plain client on the TLS port: the server answers its bytes with a
    // TLS alert and closes.
    let plain = Connection::connect(addr, &ConnectOptions::default());
    assert!(plain.is_err(), "{plain:?}");
    // Trusting another CA: the server's certificate is refused.
    let wrong = tls::config(&certs.other_ca, None).unwrap();
    let e =
        Connection::connect_tls(addr, "localhost", wrong, &ConnectOptions::default()).unwrap_err();
    assert!(
        e.to_string().contains("UnknownIssuer")
            || e.to_string().contains("invalid peer certificate"),
        "{e}"
    );
    // An expired client certificate, and one another CA signed.
    let (cert, key) = certs.client("ann", true);
    let expired = tls::config(&certs.ca, Some((&cert, &key))).unwrap();
    let e = Connection::connect_tls(addr, "localhost", expired, &external()).unwrap_err();
    assert!(!e.to_string().is_empty());
    let stranger = tls::config(&certs.ca, Some((&certs.stranger.0, &certs.stranger.1))).unwrap();
    assert!(Connection::connect_tls(addr, "localhost", stranger, &external()).is_err());
    // The broker is fine afterwards.
    let ok = tls::config(&certs.ca, None).unwrap();
    Connection::connect_tls(addr, "localhost", ok, &ConnectOptions::default())
        .expect("still serving");
}

#[test]
fn external_logs_in_as_the_certificates_common_name() {
    let certs = Certs::new();
    let b = broker(&certs);
    let addr = tls_addr(&b);
    let (cert, key) = certs.client("ann", false);
    let with_cert = tls::config(&certs.ca, Some((&cert, &key))).unwrap();
    let mut c = Connection::connect_tls(addr, "localhost", with_cert, &external())
        .expect("EXTERNAL as ann");
    c.open_channel().unwrap();
    let api = b.management();
    let conns = common::http::Http::new(&api).get("/api/connections");
    assert_eq!(conns[0]["user"], "ann", "{conns}");

    // A certificate for a user the broker does not have.
    let (cert, key) = certs.client("nobody", false);
    let nobody = tls::config(&certs.ca, Some((&cert, &key))).unwrap();
    match Connection::connect_tls(addr, "localhost", nobody, &external()) {
        Err(ClientError::ConnectionClosed { code, text }) => {
            assert_eq!(code, 403);
            assert!(text.contains("mechanism EXTERNAL"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    // EXTERNAL without a certificate, over TLS and over plain TCP.
    let no_cert = tls::config(&certs.ca, None).unwrap();
    for r in [
        Connection::connect_tls(addr, "localhost", no_cert, &external()),
        Connection::connect(b.addr, &external()),
    ] {
        match r {
            Err(ClientError::ConnectionClosed { code, text }) => {
                assert_eq!(code, 403);
                assert!(
                    text.contains("EXTERNAL login needs a verified client certificate"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

/// One HTTP/1.1 request over `stream`; the status line.
fn http_get(stream: &mut (impl Read + Write), path: &str) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("guest:guest");
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_management_api_is_served_over_https() {
    let certs = Certs::new();
    let b = broker(&certs);
    let files = ringmq_rt::tls::TlsFiles {
        cert: certs.server.0.clone(),
        key: certs.server.1.clone(),
        ca: None,
        verify_peer: false,
        fail_if_no_peer_cert: false,
    };
    let api = b.management_tls(ringmq_rt::tls::server_config(&files).unwrap());
    let addr = api.local_addr();
    let config = tls::config(&certs.ca, None).unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    assert_eq!(http_get(&mut tls, "/api/overview"), "HTTP/1.1 200 OK");
    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let mut plain = std::net::TcpStream::connect(addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(!http_get(&mut plain, "/api/overview").starts_with("HTTP/1.1 200"));
}

#[test]
fn a_gateway_tagged_impersonator_logs_in_on_behalf_of_a_certificate_identity() {
    let certs = Certs::new();
    let b = broker(&certs);
    let vouched = |user: &str, password: &str, for_user: &str| ConnectOptions {
        username: user.into(),
        password: password.into(),
        on_behalf_of: Some(for_user.into()),
        forwarded_for: Some("192.0.2.7:40000".into()),
        ..ConnectOptions::default()
    };
    let mut c = Connection::connect(b.addr, &vouched("gw", "gwpw", "ann")).expect("gw for ann");
    c.open_channel().unwrap();
    let api = b.management();
    let conns = common::http::Http::new(&api).get("/api/connections");
    assert_eq!(conns[0]["user"], "ann", "{conns}");
    assert_eq!(conns[0]["auth_mechanism"], "EXTERNAL", "{conns}");
    // Refused: a user without the tag, a wrong password, an unknown
    // identity, and guest (loopback only) for a remote client.
    for (user, pw, for_user) in [
        ("plain", "gwpw", "ann"),
        ("gw", "wrong", "ann"),
        ("gw", "gwpw", "nobody"),
        ("gw", "gwpw", "guest"),
    ] {
        match Connection::connect(b.addr, &vouched(user, pw, for_user)) {
            Err(ClientError::ConnectionClosed { code, text }) => {
                assert_eq!(code, 403, "{user} for {for_user}");
                assert!(text.contains("mechanism EXTERNAL"), "{text}");
            }
            other => panic!("{user} for {for_user}: {other:?}"),
        }
    }
}
