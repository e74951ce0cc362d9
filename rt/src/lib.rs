//! ringmq runtime seams, shared by the broker (`ringmq-core`) and the AMQP
//! gateway (`ringmq-gateway`).
//!
//! What it is: the small layer between those processes and glommio —
//! single-core synchronisation primitives ([`local`]), a TCP stream split
//! into halves two tasks can drive ([`connection`]), `SO_REUSEPORT`
//! listeners with an accept loop that stops on a latch ([`listener`]), a
//! thread-per-core executor pool with a cross-thread [`pool::Stopper`]
//! ([`pool`]), TLS for listeners (rustls, [`tls`]), and what both binaries
//! do at start-up ([`process`]). Keeping
//! glommio behind these seams keeps a runtime with no recent release
//! replaceable.
//!
//! What it is not: broker logic. Nothing here knows queues, frames or
//! protocols.

pub mod connection;
pub mod limit;
pub mod listener;
pub mod local;
pub mod memory;
pub mod pool;
pub mod process;
pub mod tls;
