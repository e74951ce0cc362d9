//! What the management API sees of a connection: its identity (named
//! `client -> server` as RabbitMQ names it, the client being the one a
//! gateway forwards for), client properties, traffic counts, channels and
//! consumers; and closing it from the API.

use std::cell::Cell;

use ringmq_mgmt::fields::table_json;
use ringmq_mgmt::view::{ChannelRow, ConnectionRow, ConsumerRow};
use ringmq_protocol::field::FieldTable;
use ringmq_protocol::message as pm;
use ringmq_protocol::ErrorCode;

use super::{Session, Stop};

/// Who the connection is, fixed at `Hello`.
#[derive(Debug, Default)]
pub(crate) struct ConnInfo {
    /// The client's address (forwarded by a gateway on loopback).
    pub client: String,
    /// The address the client connected to.
    pub server: String,
    /// `AMQP 0-9-1` through a gateway, `ringmq` native.
    pub protocol: &'static str,
    /// Client properties.
    pub properties: FieldTable,
    /// When it connected, ms since the epoch.
    pub connected_at_ms: u64,
    /// `PLAIN`, or `EXTERNAL` (a certificate's user, directly or vouched
    /// for by a gateway).
    pub auth_mechanism: &'static str,
}

/// Bytes and socket operations in each direction.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    pub recv_oct: Cell<u64>,
    pub recv_cnt: Cell<u64>,
    pub send_oct: Cell<u64>,
    pub send_cnt: Cell<u64>,
}

impl Traffic {
    /// Counts one read of `n` bytes.
    pub fn read(&self, n: usize) {
        self.recv_oct.set(self.recv_oct.get() + n as u64);
        self.recv_cnt.set(self.recv_cnt.get() + 1);
    }

    /// Counts one write of `n` bytes.
    pub fn wrote(&self, n: usize) {
        self.send_oct.set(self.send_oct.get() + n as u64);
        self.send_cnt.set(self.send_cnt.get() + 1);
    }
}

impl Session {
    /// Records who connected, from the `Hello`.
    pub(super) fn note_hello(&self, h: &pm::Hello) {
        let loopback = self.peer.ip().is_loopback();
        let forwarded = h.forwarded_for.as_ref().filter(|_| loopback);
        let server = h
            .forwarded_to
            .clone()
            .filter(|_| forwarded.is_some())
            .unwrap_or_else(|| self.local.to_string());
        *self.info.borrow_mut() = ConnInfo {
            client: forwarded.cloned().unwrap_or_else(|| self.peer.to_string()),
            server,
            protocol: if forwarded.is_some() {
                "AMQP 0-9-1"
            } else {
                "ringmq"
            },
            properties: h.client_properties.clone(),
            connected_at_ms: crate::shard::now_ms(),
            auth_mechanism: if h.mechanism == "EXTERNAL" {
                "EXTERNAL"
            } else {
                "PLAIN"
            },
        };
    }

    /// The connection's name: `client -> server`.
    pub(crate) fn name(&self) -> String {
        let info = self.info.borrow();
        format!("{} -> {}", info.client, info.server)
    }

    /// The user and vhost it logged in with.
    pub(crate) fn login(&self) -> (String, String) {
        let st = self.st.borrow();
        (st.user.clone(), st.vhost.clone())
    }

    /// The connection as the management API shows it.
    pub(crate) fn describe(&self) -> ConnectionRow {
        let info = self.info.borrow();
        let st = self.st.borrow();
        let meta = self.shard.meta.borrow();
        let vhost = meta.vhost(&st.vhost);
        let mut channels: Vec<ChannelRow> = st
            .channels
            .iter()
            .map(|(n, c)| ChannelRow {
                number: *n,
                prefetch_count: c.prefetch,
                global_prefetch_count: c.limiter.as_ref().map_or(0, |l| u32::from(l.limit())),
                confirm: c.confirms.is_some(),
                transactional: c.tx.is_some(),
                unacked: c.unacked.len() as u64,
                unconfirmed: c.confirms.as_ref().map_or(0, |c| c.unconfirmed()),
                consumers: c.consumers.len() as u64,
                state: if c.closing {
                    "closing"
                } else if !c.flow {
                    "flow"
                } else {
                    "running"
                },
            })
            .collect();
        channels.sort_by_key(|c| c.number);
        let consumers = st
            .consumers
            .values()
            .map(|c| ConsumerRow {
                tag: c.tag.to_string(),
                queue: vhost
                    .and_then(|v| v.queue_by_id(c.queue.id))
                    .map(|d| d.name.clone())
                    .unwrap_or_default(),
                vhost: st.vhost.clone(),
                channel: c.channel,
                ack_required: !c.no_ack,
                prefetch_count: c.prefetch,
            })
            .collect();
        ConnectionRow {
            name: format!("{} -> {}", info.client, info.server),
            user: st.user.clone(),
            vhost: st.vhost.clone(),
            protocol: info.protocol.to_owned(),
            peer: info.client.clone(),
            local: info.server.clone(),
            client_properties: table_json(&info.properties),
            connected_at_ms: info.connected_at_ms,
            auth_mechanism: info.auth_mechanism.to_owned(),
            channel_max: st.channel_max,
            frame_max: self.shard.config.limits.frame_max,
            heartbeat: st.heartbeat,
            recv_oct: self.traffic.recv_oct.get(),
            recv_cnt: self.traffic.recv_cnt.get(),
            send_oct: self.traffic.send_oct.get(),
            send_cnt: self.traffic.send_cnt.get(),
            blocked: self.told_blocked.get(),
            flow: self.in_flow.get(),
            channels,
            consumers,
        }
    }

    /// Closes the connection with 320 CONNECTION_FORCED and `reason`, as
    /// RabbitMQ does when an operator closes it.
    pub(crate) fn force_close(&self, reason: &str) {
        *self.fatal.borrow_mut() = Some(Stop::new(ErrorCode::ConnectionForced, reason, 0, 0));
        self.fatal_set.set();
    }
}
