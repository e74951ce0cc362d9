//! The native connection to the broker while the client's handshake runs:
//! the credentials go to the broker at `start-ok` (as RabbitMQ checks them
//! there) and the vhost at `connection.open`; afterwards the pumps own the
//! connection.

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use ringmq_protocol::frame::FrameDecoder;
use ringmq_protocol::message::{self as m, Message, PROTOCOL_VERSION};
use ringmq_protocol::{DecodeError, Encoder, ErrorCode};
use ringmq_rt::connection::{split, ReadHalf, WriteHalf};
use tracing::warn;

use super::error::{broker_refusal, ConnError};

/// Why a call to the broker got no answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum UpstreamError {
    /// The socket failed.
    #[error("broker connection: {0}")]
    Io(#[from] std::io::Error),
    /// The broker sent something that does not decode.
    #[error("frame from the broker: {0}")]
    Decode(#[from] DecodeError),
    /// The broker closed the socket.
    #[error("the broker closed the connection")]
    Closed,
}

/// A native connection during the handshake.
pub(super) struct Upstream {
    pub r: ReadHalf,
    pub w: WriteHalf,
    pub decoder: FrameDecoder,
    /// The heartbeat the broker agreed to (`HelloOk`), seconds; 0: none.
    pub heartbeat: u16,
    enc: Encoder,
    next_corr: u64,
}

/// Who logs in to the broker on a client's behalf.
pub struct Login<'a> {
    /// User name.
    pub user: &'a str,
    /// Password.
    pub password: &'a str,
    /// The user a vouching gateway logs in for (EXTERNAL through AMQPS);
    /// `user` and `password` are then the gateway's own.
    pub on_behalf_of: Option<&'a str>,
    /// Heartbeat interval to ask the broker for.
    pub heartbeat: u16,
    /// The AMQP client's properties (product, capabilities,
    /// connection_name…), shown by the management API.
    pub client_properties: ringmq_protocol::field::FieldTable,
    /// The address the client connected to.
    pub local: Option<std::net::SocketAddr>,
}

impl Upstream {
    /// Connects to the broker and logs in as the client, with the
    /// client's address in `forwarded_for`, asking for `heartbeat`.
    pub async fn connect(
        broker: std::net::SocketAddr,
        peer: std::net::SocketAddr,
        login: Login<'_>,
    ) -> Result<Upstream, ConnError> {
        let Login {
            user,
            password,
            on_behalf_of,
            heartbeat,
            client_properties,
            local,
        } = login;
        let stream = TcpStream::connect(broker).await.map_err(|e| {
            warn!(broker = %broker, error = %e, "cannot reach the broker");
            ConnError::new(ErrorCode::InternalError, "the broker is not reachable")
        })?;
        let _ = stream.set_nodelay(true);
        let (r, w) = split(stream);
        let mut up = Upstream {
            r,
            w,
            decoder: FrameDecoder::new(ringmq_protocol::frame::DEFAULT_FRAME_MAX),
            heartbeat: 0,
            enc: Encoder::new(),
            next_corr: 1,
        };
        let hello = Message::Hello(m::Hello {
            version: PROTOCOL_VERSION,
            mechanism: "PLAIN".into(),
            username: user.into(),
            password: password.into(),
            vhost: String::new(),
            client_properties,
            heartbeat,
            frame_max: 0,
            channel_max: 0,
            forwarded_for: Some(peer.to_string()),
            forwarded_to: local.map(|l| l.to_string()),
            on_behalf_of: on_behalf_of.map(str::to_owned),
        });
        match up.call(hello).await {
            Ok(Message::HelloOk(ok)) => {
                up.heartbeat = ok.heartbeat;
                Ok(up)
            }
            Ok(Message::Close(c)) => Err(broker_refusal(c.code, &c.text).into()),
            _ => Err(ConnError::new(
                ErrorCode::InternalError,
                "unexpected answer from the broker",
            )),
        }
    }

    /// Opens `vhost` for the connection.
    pub async fn open(&mut self, vhost: &str) -> Result<(), ConnError> {
        let open = Message::Open {
            vhost: vhost.to_owned(),
        };
        match self.call(open).await {
            Ok(Message::OpenOk) => Ok(()),
            Ok(Message::Close(c)) => {
                Err(ConnError::from(broker_refusal(c.code, &c.text)).at(10, 40))
            }
            _ => Err(ConnError::new(
                ErrorCode::InternalError,
                "broker did not open the vhost",
            )),
        }
    }

    /// Sends a request and waits for its answer (or a close).
    async fn call(&mut self, msg: Message) -> Result<Message, UpstreamError> {
        let corr = self.next_corr;
        self.next_corr += 1;
        let mut out = BytesMut::new();
        self.enc.encode(&mut out, corr, &msg);
        self.w.write_all(&out).await?;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if let Some(f) = self.decoder.next_frame()? {
                let msg = Message::decode(&f)?;
                if f.header.corr_id == corr || matches!(msg, Message::Close(_)) {
                    return Ok(msg);
                }
                continue;
            }
            match self.r.read(&mut buf).await? {
                0 => return Err(UpstreamError::Closed),
                n => self.decoder.extend(&buf[..n]),
            }
        }
    }
}
