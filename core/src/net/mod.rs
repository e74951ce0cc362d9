//! Sockets: the listener, connection halves and sessions.

pub mod connection;
pub mod listener;
pub mod session;
