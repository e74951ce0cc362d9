//! The AMQP 0-9-1 side of the gateway, one room per concern (framing is
//! the shared `ringmq-amqp-codec` crate):
//!
//! | File | Concern |
//! |---|---|
//! | `connection.rs` | One client connection: its state, writers, heartbeats and closing |
//! | `handshake.rs` | Protocol header, start/start-ok, tune/tune-ok, open |
//! | `upstream.rs` | The native connection to the broker during the handshake |
//! | `from_client.rs` | Client frames translated into native requests |
//! | `content.rs` | Publishes assembled from method, header and body frames |
//! | `from_broker.rs` | Native frames translated into AMQP frames |
//! | `error.rs` | Connection errors and how the pumps end |

pub mod connection;
mod content;
mod error;
mod from_broker;
mod from_client;
mod handshake;
mod upstream;
