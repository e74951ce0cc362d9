//! ringmq-bench: the load harness and its shared code.
//!
//! What it is: a load generator that drives either ringmq's native
//! protocol (`native://host:port`) or any AMQP 0-9-1 broker
//! (`amqp://user:pass@host:port/vhost`: ringmq's gateway or RabbitMQ) with
//! the same [`scenario::Scenario`], and reports throughput, CPU time per
//! message (its own and, given their pids, the broker's and gateway's) and
//! HdrHistogram latency percentiles ([`report`]), with an SVG plot that
//! overlays runs ([`plot`]) and a side-by-side comparison ([`compare`]).
//!
//! It also runs crash torture against the real binaries ([`torture`]:
//! kill -9 cycles under confirmed load, each followed by a restart and a
//! check of every queue; `docs/torture.md`), and measures the broker's
//! storage against its file system's own ([`storage`]: confirm latency
//! against fdatasync latency, recovery time against a plain read).
//!
//! What it is not: a client library. Both clients here ([`native`],
//! [`amqp`]) do only what a load generator needs, as cheaply as possible:
//! hot frames are pre-encoded and patched, writes and reads are large and
//! batched, and every connection uses one blocking socket per thread.
//! The exception is [`amqp::CheckedChannel`], torture's client, which
//! parses everything and copies every body out: checking before speed.
//!
//! ```text
//! Scenario + Target -> run::run
//!   -> setup: declare exchange, queues, bindings (driver::Admin)
//!   -> consumers (one thread each): deliveries -> stamp -> e2e histogram
//!   -> publishers (one thread each, + a confirm reader): pace -> stamp body
//!        -> pre-encoded frame -> buffered write; confirms -> confirm histogram
//!   -> progress line every second (stderr)
//!   -> drain, teardown -> report::RunSummary (JSON + .hgrm)
//! ```
//!
//! Timing: message bodies carry the publisher's CLOCK_MONOTONIC timestamp
//! (nanoseconds) in their first 8 bytes, so the harness must run on the
//! broker's machine. In fixed-rate mode the stamp is the *intended* send
//! time, so a stall counts against every message behind it (no
//! coordinated omission).

/// `Debug` for client connections: the connection's name (`what`) only,
/// not its buffers. `debug_by_what!(Type)` for a type with a `link` whose
/// `what` names it; `debug_by_what!(Type, none)` for one without.
macro_rules! debug_by_what {
    ($ty:ident) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("what", &self.link.what)
                    .finish_non_exhaustive()
            }
        }
    };
    ($ty:ident, none) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty)).finish_non_exhaustive()
            }
        }
    };
}

pub mod amqp;
pub mod clock;
pub mod compare;
pub mod cpu;
pub mod driver;
pub mod error;
pub mod memory;
pub mod native;
pub mod plot;
pub mod report;
pub mod run;
pub mod scenario;
pub mod storage;
pub mod target;
pub mod torture;

pub use error::BenchError;
pub use scenario::Scenario;
pub use target::Target;
