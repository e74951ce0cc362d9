//! The AMQP handshake: protocol header, `connection.start`/`start-ok`
//! (credentials are checked by the broker right away, as RabbitMQ does),
//! `tune`/`tune-ok`, and `connection.open` (the broker opens the vhost).

use std::rc::Rc;
use std::time::Duration;

use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable as AmqpTable, LongString};
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use ringmq_amqp_codec::method::parse_method;
use ringmq_amqp_codec::{Decoder, FRAME_HEARTBEAT, FRAME_METHOD, FRAME_MIN_SIZE, PROTOCOL_HEADER};
use ringmq_protocol::ErrorCode;
use ringmq_rt::connection::{ReadHalf, WriteHalf};
use tracing::{debug, info};

use super::connection::{put_amqp, read_frame, Conn};
use super::error::{check_tables, unparsable_method, ConnError, Ended};
use super::upstream::{Login, Upstream};
use crate::GatewayConfig;

/// The capabilities announced in `connection.start`: exactly those that
/// work, the same set as RabbitMQ 3.10. `direct_reply_to` is the broker's
/// (its `amq.rabbitmq.reply-to` pseudo-queue); the gateway passes the
/// consume, the publishes and the replies through unchanged.
const CAPABILITIES: [&str; 9] = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "authentication_failure_close",
    "per_consumer_qos",
    "consumer_priorities",
    "direct_reply_to",
];

/// Reads the next method (heartbeats are skipped).
async fn read_method(r: &mut ReadHalf, decoder: &mut Decoder) -> Result<AMQPClass, Ended> {
    loop {
        let Some(f) = read_frame(r, decoder).await? else {
            return Err(Ended::Gone);
        };
        match f.kind {
            FRAME_HEARTBEAT => continue,
            FRAME_METHOD => {
                check_tables(&f.payload)?;
                return parse_method(&f.payload).map_err(|_| unparsable_method(&f.payload).into());
            }
            _ => {
                return Err(ConnError::new(
                    ErrorCode::UnexpectedFrame,
                    "expected a method frame during the handshake",
                )
                .into())
            }
        }
    }
}

/// Writes one handshake method.
async fn write_method(w: &mut WriteHalf, method: connection::AMQPMethod) -> Result<(), Ended> {
    let mut out = BytesMut::new();
    put_amqp(&mut out, 0, AMQPClass::Connection(method));
    w.write_all(&out).await.map_err(|_| Ended::Gone)
}

/// The error for a handshake step that got another method.
fn expected(what: &str) -> Ended {
    ConnError::new(ErrorCode::CommandInvalid, format_args!("expected {what}")).into()
}

impl Conn {
    /// Runs the AMQP handshake and opens the native connection.
    pub(super) async fn handshake(
        self: &Rc<Self>,
        r: &mut ReadHalf,
        w: &mut WriteHalf,
        decoder: &mut Decoder,
    ) -> Result<Upstream, Ended> {
        let _ = r.set_timeout(Some(Duration::from_millis(self.cfg.handshake_timeout_ms)));
        protocol_header(r, w, decoder).await?;
        let start = start(mechanisms(&self.cfg, self.tls));
        write_method(w, connection::AMQPMethod::Start(start)).await?;
        let AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)) =
            read_method(r, decoder).await?
        else {
            return Err(expected("connection.start-ok"));
        };
        if !self.admitted {
            info!(
                limit = self.cfg.connection_max,
                "connection refused: limit reached"
            );
            return Err(ConnError::new(
                ErrorCode::NotAllowed,
                format_args!(
                    "connection refused: gateway connection limit ({}) is reached",
                    self.cfg.connection_max
                ),
            )
            .at(10, 11)
            .into());
        }
        let mut broker = self.login(&start_ok, w).await?;
        let tune = connection::Tune {
            channel_max: self.cfg.channel_max,
            frame_max: self.cfg.frame_max,
            heartbeat: self.cfg.heartbeat,
        };
        write_method(w, connection::AMQPMethod::Tune(tune)).await?;
        let AMQPClass::Connection(connection::AMQPMethod::TuneOk(tune_ok)) =
            read_method(r, decoder).await?
        else {
            return Err(expected("connection.tune-ok"));
        };
        let frame_max = self.tuned(&tune_ok)?;
        decoder.set_frame_max(frame_max);
        let AMQPClass::Connection(connection::AMQPMethod::Open(open)) =
            read_method(r, decoder).await?
        else {
            return Err(expected("connection.open"));
        };
        let vhost = open.virtual_host.to_string();
        broker.open(&vhost).await?;
        write_method(w, connection::AMQPMethod::OpenOk(connection::OpenOk {})).await?;
        // Heartbeats are watched by their own task (`Conn::heartbeats`),
        // not by a timer on every read.
        let _ = r.set_timeout(None);
        let heartbeat = tune_ok.heartbeat;
        info!(vhost = %vhost, heartbeat, frame_max, "AMQP connection open");
        Ok(broker)
    }

    /// Checks the `start-ok` credentials with the broker, and records the
    /// capabilities the client announced.
    async fn login(
        &self,
        start_ok: &connection::StartOk,
        w: &mut WriteHalf,
    ) -> Result<Upstream, Ended> {
        let offered = mechanisms(&self.cfg, self.tls);
        let mechanism = start_ok.mechanism.as_str();
        if !offered.split(' ').any(|m| m == mechanism) {
            return Err(ConnError::new(
                ErrorCode::AccessRefused,
                format_args!(
                    "unsupported authentication mechanism '{mechanism}' (offered: {offered})"
                ),
            )
            .at(10, 11)
            .into());
        }
        let (user, password, on_behalf_of) = if mechanism == "EXTERNAL" {
            self.vouch()?
        } else {
            let (user, password) = credentials(mechanism, &start_ok.response)?;
            (user, password, None)
        };
        let client_caps = match start_ok.client_properties.inner().get("capabilities") {
            Some(AMQPValue::FieldTable(t)) => t.clone(),
            _ => AmqpTable::default(),
        };
        let cap = |name: &str| {
            matches!(
                client_caps.inner().get(name),
                Some(AMQPValue::Boolean(true))
            )
        };
        {
            let mut st = self.st.borrow_mut();
            st.cancel_notify = cap("consumer_cancel_notify");
            st.blocked_notify = cap("connection.blocked");
        }
        let login = Login {
            user: &user,
            password: &password,
            on_behalf_of: on_behalf_of.as_deref(),
            heartbeat: self.cfg.broker_heartbeat,
            client_properties: shown_properties(&start_ok.client_properties),
            local: self.local,
        };
        match Upstream::connect(self.cfg.broker, self.peer, login).await {
            Ok(up) => Ok(up),
            Err(e) if e.amqp_code() == 403 && !cap("authentication_failure_close") => {
                info!(user = %on_behalf_of.as_deref().unwrap_or(&user), "login refused");
                let _ = w.close().await;
                Err(Ended::Gone)
            }
            Err(e) => Err(e.at(10, 11).into()),
        }
    }

    /// The credentials for an EXTERNAL login: the gateway's vouching user,
    /// on behalf of the user the client's certificate names.
    fn vouch(&self) -> Result<(String, String, Option<String>), ConnError> {
        let refused = |why: &str| {
            info!(reason = why, "EXTERNAL login refused");
            ConnError::new(
                ErrorCode::AccessRefused,
                "Login was refused using authentication mechanism EXTERNAL. For details see the broker logfile.",
            )
            .at(10, 11)
        };
        let Some(vouching) = &self.cfg.external_auth else {
            return Err(refused("EXTERNAL is not configured"));
        };
        let Some(identity) = &self.cert_identity else {
            return Err(refused("no verified client certificate"));
        };
        Ok((
            vouching.user.clone(),
            vouching.password.clone(),
            Some(identity.clone()),
        ))
    }

    /// Applies `tune-ok`; returns the agreed frame_max.
    fn tuned(&self, tune_ok: &connection::TuneOk) -> Result<u32, ConnError> {
        let cfg = &self.cfg;
        let frame_max = match tune_ok.frame_max {
            0 => cfg.frame_max,
            f if f < FRAME_MIN_SIZE => {
                return Err(ConnError::new(
                    ErrorCode::NotAllowed,
                    format_args!("frame_max={f} < 4096 min size"),
                ))
            }
            f if f > cfg.frame_max => {
                return Err(ConnError::new(
                    ErrorCode::NotAllowed,
                    format_args!("frame_max={f} > {} max size", cfg.frame_max),
                ))
            }
            f => f,
        };
        let mut st = self.st.borrow_mut();
        st.frame_max = frame_max;
        st.heartbeat = tune_ok.heartbeat;
        st.channel_max = match tune_ok.channel_max {
            0 => cfg.channel_max,
            c => c.min(cfg.channel_max),
        };
        Ok(frame_max)
    }
}

/// Reads the client's protocol header; anything but 0-9-1 is answered
/// with ours and the socket closes.
async fn protocol_header(
    r: &mut ReadHalf,
    w: &mut WriteHalf,
    decoder: &mut Decoder,
) -> Result<(), Ended> {
    let mut buf = [0u8; 4096];
    let header = loop {
        if let Some(h) = decoder.take_raw(8) {
            break h;
        }
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return Err(Ended::Gone),
            Ok(n) => decoder.extend(&buf[..n]),
        }
    };
    if &header[..] != PROTOCOL_HEADER {
        debug!(header = ?&header[..], "wrong protocol header");
        let _ = w.write_all(PROTOCOL_HEADER).await;
        let _ = w.close().await;
        return Err(Ended::Gone);
    }
    Ok(())
}

/// The SASL mechanisms offered: EXTERNAL too on AMQPS when the gateway
/// may vouch for certificate identities.
fn mechanisms(cfg: &GatewayConfig, tls: bool) -> &'static str {
    if tls && cfg.external_auth.is_some() {
        "PLAIN AMQPLAIN EXTERNAL"
    } else {
        "PLAIN AMQPLAIN"
    }
}

/// `connection.start`: server properties, mechanisms and locale.
fn start(mechanisms: &str) -> connection::Start {
    let mut caps = AmqpTable::default();
    for cap in CAPABILITIES {
        caps.insert(cap.into(), AMQPValue::Boolean(true));
    }
    let mut props = AmqpTable::default();
    for (k, v) in [
        ("product", "ringmq"),
        ("version", env!("CARGO_PKG_VERSION")),
        ("platform", "Rust"),
        ("cluster_name", "ringmq"),
    ] {
        props.insert(k.into(), AMQPValue::LongString(v.into()));
    }
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: mechanisms.into(),
        locales: "en_US".into(),
    }
}

/// The user and password of a `start-ok` response.
fn credentials(mechanism: &str, response: &LongString) -> Result<(String, String), ConnError> {
    let bytes = response.as_bytes();
    let refused = || {
        ConnError::new(
            ErrorCode::AccessRefused,
            format_args!("Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."),
        )
        .at(10, 11)
    };
    match mechanism {
        "PLAIN" => {
            let mut parts = bytes.split(|b| *b == 0);
            let _authzid = parts.next();
            let user = parts.next().ok_or_else(refused)?;
            let pass = parts.next().ok_or_else(refused)?;
            Ok((
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(pass).into_owned(),
            ))
        }
        "AMQPLAIN" => {
            ringmq_amqp_codec::table::check_table_body(bytes).map_err(|_| refused())?;
            // A field table without its length prefix.
            let mut framed = Vec::with_capacity(bytes.len() + 4);
            framed.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            framed.extend_from_slice(bytes);
            let (_, table) = amq_protocol::types::parsing::parse_field_table(framed.as_slice())
                .map_err(|_| refused())?;
            let get = |k: &str| match table.inner().get(k) {
                Some(AMQPValue::LongString(s)) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                Some(AMQPValue::ShortString(s)) => Some(s.to_string()),
                _ => None,
            };
            Ok((
                get("LOGIN").ok_or_else(refused)?,
                get("PASSWORD").ok_or_else(refused)?,
            ))
        }
        other => Err(ConnError::new(
            ErrorCode::AccessRefused,
            format_args!("unsupported authentication mechanism '{other}'"),
        )),
    }
}

/// The client properties the broker shows for the connection (management
/// API): the standard keys only, so what the gateway forwards stays within
/// the broker's handshake frame limit whatever else a client sends (its
/// start-ok is at most 4096 bytes before tune).
fn shown_properties(props: &AmqpTable) -> ringmq_protocol::field::FieldTable {
    const SHOWN: &[&str] = &[
        "product",
        "version",
        "platform",
        "information",
        "copyright",
        "connection_name",
        "capabilities",
    ];
    let mut kept = AmqpTable::default();
    for (k, v) in props.inner() {
        if SHOWN.contains(&k.as_str()) {
            kept.insert(k.clone(), v.clone());
        }
    }
    crate::translate::table_to_native(&kept)
}
