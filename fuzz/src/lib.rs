//! Shared pieces of ringmq's fuzz targets (`fuzz_targets/`).
//!
//! What it is: the harnesses the targets drive — an in-process broker
//! started once per process ([`broker`]), a native session driven by
//! structured input ([`session`], [`request`]), a glommio executor reused
//! across inputs ([`executor`]), scratch directories ([`scratch`]), and the
//! checksum fix-ups that let mutated log bytes reach the decoders behind a
//! CRC ([`checksum`]).
//!
//! What it is not: part of the main workspace. The crate only builds with
//! the instrumentation flags `run.sh` passes (see `README.md`).

pub mod broker;
pub mod checksum;
pub mod executor;
pub mod request;
pub mod scratch;
pub mod session;
pub mod wire;
