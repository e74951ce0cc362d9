//! The handshake: `Hello` (credentials, tuning, and the vhost unless it is
//! deferred) and the deferred `Open` that names the vhost.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use ringmq_protocol::field::FieldTable;
use ringmq_protocol::frame::{Frame, Kind};
use ringmq_protocol::message::{self as pm, Message as Wire, PROTOCOL_VERSION};
use ringmq_protocol::{ErrorCode, FieldValue, Refusal};
use tracing::{info, warn};

use super::{Phase, Session, Stop};
use crate::auth::{self, LoginError};

impl Session {
    /// Handles the first frame, which must be a `Hello`.
    pub(super) fn handshake(
        self: &Rc<Self>,
        corr: u64,
        frame: &Frame,
        kind: Kind,
    ) -> Result<(), Stop> {
        let raw = kind.as_u16();
        if kind != Kind::Hello {
            return Err(Stop::new(
                ErrorCode::HandshakeRequired,
                format_args!("expected Hello, got {kind}"),
                raw,
                0,
            ));
        }
        let h = match Wire::decode(frame) {
            Ok(Wire::Hello(h)) => h,
            decoded => {
                let why = decoded.err().map(|e| e.to_string()).unwrap_or_default();
                return Err(Stop::new(
                    ErrorCode::InvalidBody,
                    format_args!("Hello body is not a valid Hello table: {why}"),
                    raw,
                    0,
                ));
            }
        };
        let mut h = h;
        if let Some(user) = h.on_behalf_of.take().filter(|u| !u.is_empty()) {
            // A gateway vouches for an AMQPS client's certificate identity:
            // its own credentials are checked, then the user is logged in
            // as if by EXTERNAL.
            self.check_voucher(&h)?;
            info!(gateway_user = %h.username, user = %user, "login vouched for by a gateway");
            h.username = user;
            h.password.clear();
            h.mechanism = "EXTERNAL".into();
        } else if h.mechanism == "EXTERNAL" {
            // The user is the verified client certificate's identity, as
            // rabbitmq_auth_mechanism_ssl takes it.
            let identity = self.tls_identity.borrow().clone();
            let Some(user) = identity else {
                warn!(peer = %self.client_ip(&h), "EXTERNAL login without a client certificate refused");
                return Err(Stop::new(
                    ErrorCode::AccessRefused,
                    "EXTERNAL login needs a verified client certificate (TLS with verify_peer)",
                    raw,
                    0,
                ));
            };
            h.username = user;
        }
        self.check_hello(&h)?;
        self.claim_limits(&h.username, &h.vhost, raw)?;
        self.note_hello(&h);
        let config = &self.shard.config;
        let deferred = h.vhost.is_empty();
        let heartbeat = match (h.heartbeat, config.server.heartbeat) {
            (0, _) | (_, 0) => 0,
            (c, s) => c.min(s),
        };
        let channel_max = match h.channel_max {
            0 => config.limits.channel_max,
            c => c.min(config.limits.channel_max),
        };
        {
            let mut st = self.st.borrow_mut();
            st.phase = if deferred {
                Phase::AwaitingOpen
            } else {
                Phase::Open
            };
            st.user = h.username.clone();
            st.vhost = h.vhost.clone();
            st.heartbeat = heartbeat;
            st.channel_max = channel_max;
        }
        if !deferred {
            self.shard.add_session(self.clone());
            info!(user = %h.username, vhost = %h.vhost, heartbeat, "connection open");
        }
        let mut props = FieldTable::new();
        props.insert("product", FieldValue::string("ringmq"));
        props.insert("version", FieldValue::string(env!("CARGO_PKG_VERSION")));
        self.send(
            corr,
            &Wire::HelloOk(pm::HelloOk {
                version: PROTOCOL_VERSION,
                server_properties: props,
                heartbeat,
                frame_max: config.limits.frame_max,
                channel_max,
                connection_id: self.id,
                shard: self.shard.id,
                shards: self.shard.count,
                // The per-shard ports are plain TCP: not offered to a TLS
                // client.
                shard_port_base: if self.tls.get() {
                    0
                } else {
                    config.server.shard_port_base
                },
            }),
        );
        Ok(())
    }

    /// Checks a Hello's version, mechanism and credentials (and its vhost,
    /// unless it is deferred to `Open`).
    fn check_hello(&self, h: &pm::Hello) -> Result<(), Stop> {
        let kind = Kind::Hello.as_u16();
        if h.version != PROTOCOL_VERSION {
            return Err(Stop::new(
                ErrorCode::UnsupportedVersion,
                format_args!(
                    "protocol version {} not supported (server speaks {PROTOCOL_VERSION})",
                    h.version
                ),
                kind,
                0,
            ));
        }
        let external = h.mechanism == "EXTERNAL";
        if !h.mechanism.is_empty() && h.mechanism != "PLAIN" && !external {
            return Err(Stop::new(
                ErrorCode::AccessRefused,
                format_args!("unsupported authentication mechanism '{}'", h.mechanism),
                kind,
                0,
            ));
        }
        let loopback = &self.shard.config.loopback_users;
        let from_loopback = self.client_ip(h).is_loopback();
        let meta = self.shard.meta.borrow();
        let checked = if external {
            auth::authorize_external(meta.access(), loopback, &h.username, from_loopback).and_then(
                |()| {
                    if h.vhost.is_empty() {
                        Ok(())
                    } else {
                        auth::open_vhost(&meta, &h.username, &h.vhost)
                    }
                },
            )
        } else if h.vhost.is_empty() {
            auth::authenticate(
                meta.access(),
                loopback,
                &h.username,
                &h.password,
                from_loopback,
            )
        } else {
            auth::login(
                &meta,
                loopback,
                &h.username,
                &h.password,
                &h.vhost,
                from_loopback,
            )
        };
        drop(meta);
        checked.map_err(|e| {
            // Peer and user, never the password.
            warn!(peer = %self.client_ip(h), user = %h.username, vhost = %h.vhost, reason = ?e, "login refused");
            let (code, text) = login_refusal(e, &h.username, &h.vhost, &h.mechanism);
            Stop::new(code, text, kind, 0)
        })
    }

    /// Checks the credentials of a gateway logging in on behalf of another
    /// user: PLAIN only, right, and a user tagged `impersonator`. The
    /// gateway's own address decides the loopback restriction.
    fn check_voucher(&self, h: &pm::Hello) -> Result<(), Stop> {
        let kind = Kind::Hello.as_u16();
        if !h.mechanism.is_empty() && h.mechanism != "PLAIN" {
            return Err(Stop::new(
                ErrorCode::AccessRefused,
                format_args!(
                    "on_behalf_of needs the vouching user's PLAIN credentials, not mechanism '{}'",
                    h.mechanism
                ),
                kind,
                0,
            ));
        }
        let meta = self.shard.meta.borrow();
        let checked = auth::authenticate(
            meta.access(),
            &self.shard.config.loopback_users,
            &h.username,
            &h.password,
            self.peer.ip().is_loopback(),
        )
        .and_then(|()| auth::may_vouch(meta.access(), &h.username));
        drop(meta);
        checked.map_err(|e| {
            warn!(peer = %self.peer, gateway_user = %h.username, reason = ?e, "vouching login refused");
            let (code, text) = login_refusal(e, &h.username, &h.vhost, "EXTERNAL");
            Stop::new(code, text, kind, 0)
        })
    }

    /// Handles the frame after a Hello without a vhost: only `Open` (or a
    /// close) is valid.
    pub(super) fn open_vhost(
        self: &Rc<Self>,
        corr: u64,
        frame: &Frame,
        kind: Kind,
    ) -> Result<(), Stop> {
        let raw = kind.as_u16();
        let vhost = match Wire::decode(frame) {
            Ok(Wire::Open { vhost }) => vhost,
            Ok(Wire::Close(_)) => {
                self.send(corr, &Wire::CloseOk);
                self.closed.set(true);
                return Err(Stop::Done);
            }
            Ok(Wire::Heartbeat) => return Ok(()),
            Ok(_) => {
                return Err(Stop::new(
                    ErrorCode::CommandInvalid,
                    format_args!("expected Open after a Hello without a vhost, got {kind}"),
                    raw,
                    0,
                ))
            }
            Err(e) => return Err(Stop::new(e.code(), &e, raw, 0)),
        };
        let user = self.st.borrow().user.clone();
        let opened = auth::open_vhost(&self.shard.meta.borrow(), &user, &vhost);
        if let Err(e) = opened {
            info!(user = %user, vhost = %vhost, reason = ?e, "vhost refused");
            let (code, text) = login_refusal(e, &user, &vhost, "");
            return Err(Stop::new(code, text, raw, 0));
        }
        self.claim_limits("", &vhost, raw)?;
        {
            let mut st = self.st.borrow_mut();
            st.phase = Phase::Open;
            st.vhost = vhost.clone();
        }
        self.shard.add_session(self.clone());
        info!(user = %user, vhost = %vhost, "connection open");
        self.send(corr, &Wire::OpenOk);
        Ok(())
    }

    /// Counts the connection against `user`'s and `vhost`'s connection
    /// limits (an empty name is not counted); refuses it past one, or when
    /// it was not admitted at all (past `connection_max`).
    fn claim_limits(&self, user: &str, vhost: &str, kind: u16) -> Result<(), Stop> {
        let res = &self.shard.resources;
        let refused = |r: Refusal| {
            info!(user = %user, vhost = %vhost, reason = %r.text, "connection refused");
            Stop::Close {
                refusal: r,
                kind,
                channel: 0,
            }
        };
        let mut claims = self.claims.borrow_mut();
        let held = claims.as_mut().map_err(|r| refused(r.clone()))?;
        if !user.is_empty() {
            held.extend(res.admit_user(user).map_err(refused)?);
        }
        if !vhost.is_empty() {
            let user = if user.is_empty() {
                self.st.borrow().user.clone()
            } else {
                user.to_owned()
            };
            held.extend(res.admit_vhost(vhost, &user).map_err(refused)?);
        }
        Ok(())
    }

    /// The client's address: the socket peer, or the address a gateway on
    /// loopback forwards.
    fn client_ip(&self, h: &pm::Hello) -> IpAddr {
        let ip = self.peer.ip();
        if ip.is_loopback() {
            if let Some(f) = &h.forwarded_for {
                if let Ok(addr) = f.parse::<SocketAddr>() {
                    return addr.ip();
                }
                if let Ok(addr) = f.parse::<IpAddr>() {
                    return addr;
                }
            }
        }
        ip
    }
}

/// The code and text for a refused login, as RabbitMQ words them.
fn login_refusal(e: LoginError, user: &str, vhost: &str, mechanism: &str) -> (ErrorCode, String) {
    let mechanism = if mechanism.is_empty() {
        "PLAIN"
    } else {
        mechanism
    };
    match e {
        LoginError::BadCredentials | LoginError::LoopbackOnly | LoginError::MayNotVouch => (
            ErrorCode::AccessRefused,
            format!("Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."),
        ),
        LoginError::NoVhost => (ErrorCode::NotAllowed, format!("vhost {vhost} not found")),
        LoginError::VhostRefused => (
            ErrorCode::NotAllowed,
            format!("access to vhost '{vhost}' refused for user '{user}'"),
        ),
    }
}
