//! Clients of the native protocol: [`blocking`] (std sockets, one thread
//! per connection) and [`nonblocking`] (async over `futures-io` traits, for
//! glommio or any other runtime).

pub mod blocking;
pub mod nonblocking;
#[cfg(feature = "tls")]
pub mod tls;

use crate::field::FieldTable;
use crate::frame::Kind;
use crate::message as m;
use crate::DecodeError;

/// How to log in.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// Virtual host.
    pub vhost: String,
    /// Proposed heartbeat interval, seconds (0 disables).
    pub heartbeat: u16,
    /// Client properties.
    pub client_properties: FieldTable,
    /// When connecting for another client (gateway): its address.
    pub forwarded_for: Option<String>,
    /// `PLAIN` (user and password) or `EXTERNAL` (the TLS client
    /// certificate names the user).
    pub mechanism: String,
    /// A gateway logging in for an AMQPS client's certificate identity:
    /// that user (the credentials above are the gateway's, a user tagged
    /// `impersonator`).
    pub on_behalf_of: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            username: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            heartbeat: 0,
            client_properties: FieldTable::new(),
            forwarded_for: None,
            mechanism: "PLAIN".into(),
            on_behalf_of: None,
        }
    }
}

impl ConnectOptions {
    /// The `Hello` that opens a connection with these options.
    pub fn hello(&self) -> crate::message::Message {
        crate::message::Message::Hello(crate::message::Hello {
            version: crate::message::PROTOCOL_VERSION,
            mechanism: self.mechanism.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            vhost: self.vhost.clone(),
            client_properties: self.client_properties.clone(),
            heartbeat: self.heartbeat,
            frame_max: 0,
            channel_max: 0,
            forwarded_for: self.forwarded_for.clone(),
            forwarded_to: None,
            on_behalf_of: self.on_behalf_of.clone(),
        })
    }
}

/// Something the server sent on its own initiative.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A delivery on a channel.
    Deliver(u16, m::Delivery),
    /// A returned message on a channel.
    Return(u16, m::Return),
    /// A publisher confirm on a channel.
    Confirm(u16, m::Confirm),
    /// The server cancelled a consumer.
    Cancelled(m::ConsumerTag),
    /// The server closed a channel (already acknowledged).
    ChannelClosed(m::ChannelClose),
    /// Publishing is blocked.
    Blocked(String),
    /// Publishing may resume.
    Unblocked,
    /// The server closed the connection.
    Closed(m::Close),
}

/// Client errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Socket error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent something undecodable.
    #[error("cannot decode a frame from the server")]
    Decode(#[source] DecodeError),
    /// The server closed the channel.
    #[error("channel {channel} closed by the server: {code} {text}")]
    ChannelClosed {
        /// The channel.
        channel: u16,
        /// Error code.
        code: u16,
        /// Reason.
        text: String,
    },
    /// The server closed the connection.
    #[error("connection closed by the server: {code} {text}")]
    ConnectionClosed {
        /// Error code.
        code: u16,
        /// Reason.
        text: String,
    },
    /// The server answered with a frame the client did not expect.
    #[error("unexpected {0} frame from the server")]
    Unexpected(Kind),
    /// No answer in time.
    #[error("timed out waiting for the server")]
    Timeout,
}

impl ClientError {
    /// The server's error code, for channel or connection closes.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::ChannelClosed { code, .. }
            | ClientError::ConnectionClosed { code, .. } => Some(*code),
            _ => None,
        }
    }
}
