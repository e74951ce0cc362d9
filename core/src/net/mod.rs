//! Sockets: the listener and sessions (connection halves are in `ringmq_rt::connection`).

pub mod listener;
pub mod session;
