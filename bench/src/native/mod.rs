//! The harness's client for ringmq's native protocol.
//!
//! Setup and teardown ([`Admin`]) use the protocol crate's blocking client.
//! The data path does not: that client builds an owned `Publish` per
//! message and decodes every delivery into owned strings, and it can only
//! poll for confirms with a read timeout of at least a millisecond, which
//! would time confirms late. Here publishes go straight into a reused
//! FlatBuffers builder (one `PublishBatch` frame per write), deliveries and
//! confirms are read from verified `wire` views without allocating, and
//! a publisher's confirms are read on a second thread from a clone of its
//! socket.

use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::{ClientError, ConnectOptions};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::FieldTable;

use self::link::*;
use crate::driver;
use crate::error::BenchError;
use crate::scenario::Topology;
use crate::target::Target;

/// Setup and teardown over the blocking client.
pub struct Admin {
    conn: Connection,
    channel: u16,
}

debug_by_what!(Admin, none);

impl Admin {
    /// Connects and opens a channel.
    ///
    /// # Errors
    /// Unreachable target, refused login.
    pub fn connect(target: &Target) -> Result<Admin, BenchError> {
        let addr = target.addr();
        // Probe first so an unreachable target gets its own error.
        drop(tcp_connect(&addr, "setup")?);
        let opts = ConnectOptions {
            username: target.username.clone(),
            password: target.password.clone(),
            vhost: target.vhost.clone(),
            ..ConnectOptions::default()
        };
        let mut conn = Connection::connect(addr.as_str(), &opts).map_err(|e| match e {
            ClientError::ConnectionClosed { code, text } => BenchError::Handshake {
                addr: addr.clone(),
                reason: format!("{code} {text}"),
            },
            ClientError::Decode(_) => BenchError::Handshake {
                addr: addr.clone(),
                reason: NOT_NATIVE.into(),
            },
            other => client_error("setup", other),
        })?;
        conn.set_timeout(Some(CALL_TIMEOUT))
            .map_err(|e| client_error("setup", e))?;
        let channel = conn.open_channel().map_err(|e| client_error("setup", e))?;
        Ok(Admin { conn, channel })
    }

    fn call(&mut self, msg: Message) -> Result<Message, BenchError> {
        self.conn.call(msg).map_err(|e| client_error("setup", e))
    }
}

impl driver::Admin for Admin {
    fn declare(&mut self, topo: &Topology) -> Result<(), BenchError> {
        let ch = self.channel;
        if let Some(kind) = topo.exchange_kind {
            self.call(Message::ExchangeDeclare(m::ExchangeDeclare {
                channel: ch,
                exchange: topo.exchange.clone(),
                kind: kind.into(),
                durable: topo.durable,
                ..m::ExchangeDeclare::default()
            }))?;
        }
        for q in &topo.queues {
            self.call(Message::QueueDeclare(m::QueueDeclare {
                channel: ch,
                queue: q.clone(),
                durable: topo.durable,
                ..m::QueueDeclare::default()
            }))?;
        }
        for (q, key) in &topo.bindings {
            self.conn
                .queue_bind(ch, &topo.queues[*q], &topo.exchange, key, FieldTable::new())
                .map_err(|e| client_error("setup", e))?;
        }
        Ok(())
    }

    fn teardown(mut self, topo: &Topology) -> Result<(), BenchError> {
        let ch = self.channel;
        for q in &topo.queues {
            self.call(Message::QueueDelete(m::QueueDelete {
                channel: ch,
                queue: q.clone(),
                ..m::QueueDelete::default()
            }))?;
        }
        if topo.exchange_kind.is_some() {
            self.call(Message::ExchangeDelete(m::ExchangeDelete {
                channel: ch,
                exchange: topo.exchange.clone(),
                if_unused: false,
            }))?;
        }
        self.conn.close().map_err(|e| client_error("setup", e))
    }
}

mod consumer;
mod link;
mod publisher;

pub use self::consumer::Consumer;
pub use self::link::tcp_connect;
pub use self::publisher::{ConfirmReader, Publisher};
