//! Actions taken as a client of the broker: each request that changes
//! state logs in over the native protocol as the HTTP user (RabbitMQ's
//! management plugin does the same over a direct connection), so a
//! declare, delete, purge, get or publish takes the path, limits and checks
//! any client's does. Blocking client calls run on tokio's blocking pool.

use std::net::SocketAddr;
use std::time::Duration;

use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::{ClientError, ConnectOptions, Event};
use ringmq_protocol::field::{FieldTable, FieldValue};
use ringmq_protocol::message as m;
use ringmq_protocol::Message;

use crate::http::ApiError;

/// How long an action may wait for the broker.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A logged-in connection with one open channel.
pub struct Client {
    /// The connection.
    pub conn: Connection,
    /// Its channel.
    pub ch: u16,
}

/// Who acts, where.
#[derive(Debug, Clone)]
pub struct As {
    /// The broker's native address.
    pub addr: SocketAddr,
    /// User name (from basic auth).
    pub user: String,
    /// Password (from basic auth).
    pub password: String,
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> ApiError {
        match e {
            ClientError::ChannelClosed { code, text, .. }
            | ClientError::ConnectionClosed { code, text } => refusal(code, &text),
            other => ApiError::bad_request("bad_request", other.to_string()),
        }
    }
}

/// A broker refusal as RabbitMQ's API reports it: 404 `not_found` with
/// the AMQP text for what does not exist, 401 "Access refused." for access,
/// 400 with the text (without its code name) otherwise.
pub fn refusal(code: u16, text: &str) -> ApiError {
    match code {
        404 => ApiError::missing(text),
        403 | 530 => ApiError::not_authorised_because("Access refused."),
        _ => ApiError::bad_request(
            "bad_request",
            text.split_once(" - ").map_or(text, |(_, t)| t),
        ),
    }
}

impl Client {
    /// Logs in to `vhost` and opens a channel.
    ///
    /// # Errors
    /// The broker refused the login or is unreachable.
    pub fn open(who: &As, vhost: &str) -> Result<Client, ApiError> {
        let mut props = FieldTable::default();
        props.0.push((
            "connection_name".into(),
            FieldValue::LongStr(b"ringmq management API".to_vec()),
        ));
        props.0.push((
            "product".into(),
            FieldValue::LongStr(b"ringmq-mgmt".to_vec()),
        ));
        let opts = ConnectOptions {
            username: who.user.clone(),
            password: who.password.clone(),
            vhost: vhost.to_owned(),
            heartbeat: 0,
            client_properties: props,
            ..ConnectOptions::default()
        };
        let mut conn = Connection::connect(who.addr, &opts)?;
        conn.set_timeout(Some(TIMEOUT))?;
        let ch = conn.open_channel()?;
        Ok(Client { conn, ch })
    }

    /// Sends `msg` and expects an answer, mapping refusals.
    ///
    /// # Errors
    /// The broker's refusal, as an API error.
    pub fn call(&mut self, msg: Message) -> Result<Message, ApiError> {
        Ok(self.conn.call(msg)?)
    }

    /// Publishes with `mandatory` in confirm mode; returns whether any queue
    /// took it (no return came before the confirm).
    ///
    /// # Errors
    /// The broker's refusal; no confirm within the timeout.
    pub fn publish_routed(&mut self, p: m::Publish) -> Result<bool, ApiError> {
        self.call(Message::ConfirmSelect(self.ch))?;
        self.conn.publish(self.ch, p)?;
        let mut returned = false;
        loop {
            match self.conn.next_event(Some(TIMEOUT))? {
                Some(Event::Return(..)) => returned = true,
                Some(Event::Confirm(_, c)) => {
                    if c.nack {
                        return Err(ApiError::bad_request(
                            "bad_request",
                            "the broker nacked the message",
                        ));
                    }
                    return Ok(!returned);
                }
                Some(Event::ChannelClosed(c)) => return Err(refusal(c.code, &c.text)),
                Some(_) => {}
                None => {
                    return Err(ApiError::bad_request(
                        "timeout",
                        "no confirm from the broker",
                    ))
                }
            }
        }
    }

    /// Closes the connection (errors ignored: the action is done).
    pub fn close(self) {
        let _ = self.conn.close();
    }
}

/// Logs in as `who` to `vhost`, runs `f` with the client on tokio's
/// blocking pool, and closes the connection.
///
/// # Errors
/// The login's or `f`'s error.
pub async fn act<T: Send + 'static>(
    who: As,
    vhost: String,
    f: impl FnOnce(&mut Client) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    run(move || {
        let mut c = Client::open(&who, &vhost)?;
        let out = f(&mut c);
        c.close();
        out
    })
    .await
}

/// Runs a blocking action on tokio's blocking pool.
///
/// # Errors
/// The action's error; 500 if the task panicked.
pub async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(ApiError::internal("the action failed")))
}
