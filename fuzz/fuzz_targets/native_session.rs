//! A native session driven by arbitrary frames against an in-process
//! broker (two shards, started once per process): after a valid
//! `Hello` + `Open` as guest, the input's frames, then a `Close`.
//!
//! Input: a first byte of 0 sends the rest as it is (the seeds are whole
//! sessions written by the real encoder; mutations keep most of their
//! frames whole). Anything else is read by `arbitrary` as steps: mostly
//! well-formed requests built from small pools of names, some frames of
//! any kind with any body, some raw bytes.
//!
//! Checks: no panic on any shard (it aborts the process); every frame
//! the broker sends decodes; it closes the connection within 6 s of the
//! `Close`; a fresh connection can still log in afterwards.
//!
//! With `RINGMQ_FUZZ_DEBUG` set, the steps of each input are printed
//! (to see what a crash input does when it is replayed).
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use ringmq_fuzz::request::Step;
use ringmq_fuzz::session;

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, frames)) => session::run_raw(frames),
        _ => {
            if let Ok(steps) = Vec::<Step>::arbitrary_take_rest(Unstructured::new(data)) {
                if debug() {
                    eprintln!("{steps:#?}");
                }
                session::run(&steps);
            }
        }
    }
});

fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("RINGMQ_FUZZ_DEBUG").is_some())
}
