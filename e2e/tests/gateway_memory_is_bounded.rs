//! Clients that try to make the gateway or the broker hold memory: one
//! that never reads its returns, one that announces huge bodies and sends
//! none, one whose half-sent message raises the gateway's memory alarm.
//! Memory stays bounded and other clients keep working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, channel, AMQPClass};
use ringmq_e2e::raw::*;
use ringmq_e2e::TestGateway;
use ringmq_rt::memory::Amount;

const MIB: u64 = 1024 * 1024;

/// One test at a time: they measure the resident set of the process.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A mandatory publish nothing is bound to: it comes back as a return.
fn unroutable(ch: u16, size: usize) -> Vec<u8> {
    let mut c = Vec::new();
    let method = AMQPFrame::Method(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "nobody-listens-here".into(),
            mandatory: true,
            immediate: false,
        })),
    );
    for f in [
        method,
        content_header(ch, size as u64),
        AMQPFrame::Body(ch, vec![b'r'; size]),
    ] {
        c.extend(
            cookie_factory::gen_simple(amq_protocol::frame::gen_frame(&f), Vec::new()).unwrap(),
        );
    }
    c
}

#[test]
fn a_client_that_never_reads_its_returns_is_held_back_not_buffered() {
    let _alone = alone();
    let gw = TestGateway::start();
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    let message = unroutable(1, 64 * 1024);
    let before = rss();
    // Publish up to 1 GiB of returns-to-be and never read: writing stops
    // when TCP pushes back (no write progress for 3 s).
    c.sock
        .set_write_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (sent, done) = (sent.clone(), done.clone());
        let mut sock = c.sock.try_clone().unwrap();
        std::thread::spawn(move || {
            while sent.load(Ordering::Relaxed) < 1024 * MIB {
                if sock.write_all(&message).is_err() {
                    break;
                }
                sent.fetch_add(message.len() as u64, Ordering::Relaxed);
            }
            done.store(true, Ordering::Relaxed);
        })
    };
    let mut peak = before;
    while !done.load(Ordering::Relaxed) {
        peak = peak.max(rss());
        std::thread::sleep(Duration::from_millis(20));
    }
    publisher.join().unwrap();
    let sent = sent.load(Ordering::Relaxed);
    let grew = peak.saturating_sub(before);
    eprintln!(
        "sent {} MiB unread, RSS grew {} MiB",
        sent / MIB,
        grew / MIB
    );
    assert!(sent < 1024 * MIB, "the client was never held back");
    assert!(grew < 160 * MIB, "RSS grew {} MiB", grew / MIB);
    // Others are served meanwhile.
    assert_gateway_alive(gw.addr);
    drop(c);
    gw.stop();
}

#[test]
fn bodies_announced_on_every_channel_hold_nothing_until_they_arrive() {
    let _alone = alone();
    let gw = TestGateway::with(|g| g.content_buffer_max = 2 * MIB as usize);
    let mut c = Raw::open(gw.addr, 0);
    for ch in 1..=2047 {
        c.open_channel(ch);
    }
    let before = rss();
    for ch in 1..=2047 {
        c.send_method(ch, publish_method("q"));
        c.send_frame(&content_header(ch, 128 * MIB));
    }
    // Bytes that arrive count against the connection's cap: the body
    // that passes it closes its channel with 406.
    let chunk = vec![0u8; 100 * 1024];
    for ch in 1..=30 {
        c.send_frame(&AMQPFrame::Body(ch, chunk.clone()));
    }
    let close = loop {
        match c.frame() {
            Ok(AMQPFrame::Method(ch, AMQPClass::Channel(channel::AMQPMethod::Close(close)))) => {
                break (ch, close)
            }
            Ok(_) => continue,
            Err(e) => panic!("expected channel.close, got {e:?}"),
        }
    };
    assert_eq!(close.1.reply_code, 406, "{close:?}");
    assert!(close.1.reply_text.as_str().contains("2097152"), "{close:?}");
    assert!((20..=21).contains(&close.0), "closed channel {}", close.0);
    let grew = rss().saturating_sub(before);
    assert!(grew < 64 * MIB, "RSS grew {} MiB", grew / MIB);
    assert_gateway_alive(gw.addr);
    drop(c);
    gw.stop();
}

#[test]
fn the_gateway_blocks_publishers_above_its_own_watermark_and_unblocks_them() {
    let _alone = alone();
    let gw = TestGateway::with(|g| g.memory_high_watermark = Amount::Absolute(MIB));
    // A publisher that will be blocked.
    let mut other = Raw::open(gw.addr, 0);
    other.open_channel(1);
    publish(&mut other, 1, "nowhere", b"first");
    // A message half sent holds 2 MiB in the gateway: above the mark.
    let mut big = Raw::open(gw.addr, 0);
    big.open_channel(1);
    big.send_method(1, publish_method("nowhere"));
    big.send_frame(&content_header(1, 4 * MIB));
    let chunk = vec![1u8; 128 * 1024 - 8];
    let mut sent = 0;
    while sent < 2 * MIB as usize {
        big.send_frame(&AMQPFrame::Body(1, chunk.clone()));
        sent += chunk.len();
    }
    let start = Instant::now();
    assert_eq!(
        next_block_change(&mut other).as_deref(),
        Some("low on memory (gateway)")
    );
    // The half-sent message may finish (a paused connection holding
    // content would hold it for ever); then memory drains and both are
    // unblocked.
    while sent < 4 * MIB as usize {
        let n = chunk.len().min(4 * MIB as usize - sent);
        big.send_frame(&AMQPFrame::Body(1, chunk[..n].to_vec()));
        sent += n;
    }
    assert_eq!(next_block_change(&mut other), None);
    assert!(start.elapsed() < Duration::from_secs(10));
    // And publishing works again.
    publish(&mut other, 1, "nowhere", b"after");
    assert_gateway_alive(gw.addr);
    drop((other, big));
    gw.stop();
}
