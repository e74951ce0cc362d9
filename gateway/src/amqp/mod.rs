//! The AMQP 0-9-1 side: framing ([`codec`]) and connections
//! ([`connection`]).

pub mod codec;
pub mod connection;
