//! One fuzzed native session against the in-process broker: log in, send
//! the steps, close, read until the broker closes the socket; then check
//! on a fresh connection that the broker still answers a login, and
//! delete what the session may have created so that inputs do not pile
//! state up in the broker.
//!
//! A panic on a shard aborts the process ([`crate::broker`]). A broker
//! that sends a frame that does not decode, does not close a connection
//! within [`HANG`] of the client's `Close` (or end of stream), or does not
//! answer a login, fails the input here.

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use ringmq_protocol::frame::HEADER_LEN;
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::Encoder;

use crate::broker;
use crate::request::{Step, CREATABLE};
use crate::wire::{self, Conn, LoginError, Read1};

/// Longest the broker may take to answer a login or to close a
/// connection once asked to.
pub const HANG: Duration = Duration::from_secs(6);

/// How long the reader waits for the broker before it half-closes the
/// socket, in case the final `Close` is held back (the broker reads a
/// refused connection's pipelined bytes looking for `CloseOk`).
const IDLE: Duration = Duration::from_millis(50);

/// Idle reads before the half-close.
const IDLE_READS: u32 = 4;

/// Most names the cleanup deletes.
const MAX_CLEANUP: usize = 500;

/// Runs one session of `steps`.
///
/// # Panics
/// The broker misbehaves (see the module docs).
pub fn run(steps: &[Step]) {
    let mut names: Vec<String> = Vec::new();
    let mut enc = Encoder::new();
    let mut chunks = Vec::with_capacity(steps.len());
    for (corr, step) in (3..).zip(steps) {
        let mut out = BytesMut::new();
        match step {
            Step::Request(r) => enc.encode(&mut out, corr, &r.build(&mut names)),
            Step::Frame { kind, body } => {
                let len = u32::try_from(body.len() + HEADER_LEN - 4).unwrap_or(u32::MAX);
                out.put_u32_le(len);
                out.put_u16_le(kind.get());
                out.put_u16_le(0);
                out.put_u64_le(corr);
                out.put_slice(body);
            }
            Step::Raw(bytes) => out.put_slice(bytes),
        }
        chunks.push(out);
    }
    send(chunks, names);
}

/// Runs one session that sends `bytes` as they are (frames written by
/// the real encoder, as the seeds are, then mutated).
///
/// # Panics
/// The broker misbehaves (see the module docs).
pub fn run_raw(bytes: &[u8]) {
    send(vec![BytesMut::from(bytes)], Vec::new());
}

/// Logs in, writes each chunk, closes, drains and cleans up.
fn send(chunks: Vec<BytesMut>, mut names: Vec<String>) {
    let addr = broker::addr();
    let mut c = login(addr);
    let sent: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let whole = ends_between_frames(&sent);
    // A queue or exchange can only exist if its name was sent.
    names.extend(
        CREATABLE
            .iter()
            .filter(|n| contains(&sent, n.as_bytes()))
            .map(|n| (*n).to_owned()),
    );
    for out in chunks {
        // The broker may already have closed the socket.
        if c.stream.write_all(&out).is_err() {
            break;
        }
    }
    if whole {
        let close = Message::Close(m::Close {
            code: 200,
            text: "fuzz input done".into(),
            failed_kind: 0,
            channel: 0,
        });
        let _ = c.send(u64::MAX, &close);
    } else {
        // A `Close` would only be read as the rest of the cut frame: end
        // the stream instead.
        let _ = c.stream.shutdown(Shutdown::Write);
    }
    drain(&mut c, &mut names, "the fuzzed session", !whole);
    drop(c);
    cleanup(addr, &names);
}

/// True when `bytes` end where a frame ends, or at a frame header the
/// broker refuses (it closes the connection itself then); false when
/// they end inside a frame, which the broker would wait for the rest of.
fn ends_between_frames(bytes: &[u8]) -> bool {
    let mut at = 0usize;
    loop {
        let Some(head) = bytes.get(at..at + 4) else {
            return at == bytes.len();
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        if (len as usize) < HEADER_LEN - 4 || len >= broker::FRAME_MAX - 3 {
            return true;
        }
        at += len as usize + 4;
    }
}

/// True when `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Logs in, retrying while this machine is out of local ports.
fn login(addr: SocketAddr) -> Conn {
    let mut tries = 0;
    loop {
        match wire::login(addr, HANG) {
            Ok(c) => return c,
            Err(LoginError::Connect(e))
                if e.kind() == ErrorKind::AddrNotAvailable && tries < 50 =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(LoginError::Connect(e)) => panic!("broker refuses connections: {e}"),
            Err(LoginError::NoAnswer) => {
                panic!("broker is not alive: no HelloOk/OpenOk within {HANG:?}")
            }
        }
    }
}

/// Reads until the broker closes the socket, answering its `Close`,
/// and notes the server-named queues it declared.
fn drain(c: &mut Conn, names: &mut Vec<String>, who: &str, mut half_closed: bool) {
    let deadline = Instant::now() + HANG;
    let _ = c.set_read_timeout(IDLE);
    let mut idle = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "broker did not close {who} within {HANG:?} of its end"
        );
        match c.read_frame() {
            Read1::Eof => return,
            Read1::Broken(e) => panic!("broker sent bytes that do not frame: {e}"),
            Read1::Idle => {
                idle += 1;
                if idle >= IDLE_READS && !half_closed {
                    let _ = c.stream.shutdown(Shutdown::Write);
                    half_closed = true;
                }
            }
            Read1::Frame(f) => {
                idle = 0;
                let msg = Message::decode(&f).unwrap_or_else(|e| {
                    panic!(
                        "broker sent a {} frame that does not decode: {e}",
                        f.header.kind
                    )
                });
                match msg {
                    Message::Close(_) if !half_closed => {
                        // As clients do: close-ok, then the end of the stream
                        // (the broker need not look for the close-ok behind
                        // what it has not read yet).
                        let _ = c.send(0, &Message::CloseOk);
                        let _ = c.stream.shutdown(Shutdown::Write);
                        half_closed = true;
                    }
                    Message::QueueDeclareOk(ok) if ok.queue.starts_with("amq.gen") => {
                        names.push(ok.queue);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// True for a name the cleanup may delete without the connection being
/// closed for it (too long) or the channel refused (reserved).
fn deletable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && (!name.starts_with("amq.") || name.starts_with("amq.gen"))
}

/// Checks that the broker answers a new login, then deletes every queue
/// and exchange the session may have created (`names`), each on its own
/// channel (a refused delete closes its channel).
fn cleanup(addr: SocketAddr, names: &[String]) {
    let mut c = login(addr);
    let mut all: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| deletable(n))
        .collect();
    all.sort_unstable();
    all.dedup();
    all.truncate(MAX_CLEANUP);
    let mut out = BytesMut::new();
    let mut ch = 0u16;
    for name in all {
        ch += 1;
        c.encode(&mut out, 0, &Message::ChannelOpen(ch));
        let delete = m::QueueDelete {
            channel: ch,
            queue: name.to_owned(),
            ..m::QueueDelete::default()
        };
        c.encode(&mut out, 0, &Message::QueueDelete(delete));
        ch += 1;
        c.encode(&mut out, 0, &Message::ChannelOpen(ch));
        let delete = m::ExchangeDelete {
            channel: ch,
            exchange: name.to_owned(),
            if_unused: false,
        };
        c.encode(&mut out, 0, &Message::ExchangeDelete(delete));
    }
    let close = Message::Close(m::Close {
        code: 200,
        text: "cleanup done".into(),
        ..m::Close::default()
    });
    c.encode(&mut out, 0, &close);
    if let Err(e) = c.stream.write_all(&out) {
        panic!("broker closed the cleanup connection early: {e}");
    }
    drain(&mut c, &mut Vec::new(), "the cleanup connection", false);
}
