//! The check after a restart: every queue is consumed to empty through the
//! gateway, each message is held to the ledger's rules in queue order, the
//! absent ones are accounted for, and the drain's own acks are made
//! durable with one confirmed marker per queue (the same rule as the
//! consumers'), so the next cycle starts from queues that hold only those
//! markers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::ledger::{encode, Ledger, MsgId, PublishLog};
use super::report::Counts;
use crate::amqp::{CheckedChannel, Incoming};
use crate::error::BenchError;
use crate::target::Target;

/// Prefetch while draining.
const PREFETCH: u16 = 1000;
/// Deliveries between two acks while draining.
const ACK_EVERY: usize = 500;
/// How long a drain may go without a delivery or confirm.
const STALL: Duration = Duration::from_secs(30);

/// Drains every queue and checks what it finds; returns how many messages
/// were in the queues.
///
/// # Errors
/// Socket errors; a queue that is gone (the passive declare fails); a
/// drain that stalls; a marker nacked.
pub fn drain(
    target: &Target,
    queues: &[String],
    ledger: &mut Ledger,
    label: String,
    c: &mut Counts,
) -> Result<u64, BenchError> {
    let mut ch = CheckedChannel::connect(target, "drain")?;
    ch.confirm_select()?;
    ch.qos(PREFETCH)?;
    let mut found = 0;
    for (qi, name) in queues.iter().enumerate() {
        let q = qi as u16;
        let mut last = HashMap::new();
        loop {
            let ready = ch.declare(name, true)?;
            if ready == 0 {
                break;
            }
            for (redelivered, body) in take(&mut ch, name, ready as usize)? {
                found += 1;
                ledger.recovered(q, &body, redelivered, &mut last, c);
            }
        }
    }
    ledger.absent(c);
    // The acks above went out on this channel before these publishes:
    // once each queue's marker is confirmed, its acks are durable.
    let origin = ledger.origin(label);
    let mut markers = PublishLog::default();
    for (qi, name) in queues.iter().enumerate() {
        let seq = markers.push(qi as u16);
        ch.publish(name, &encode(MsgId { origin, seq }, qi as u16, 0))?;
    }
    ch.flush()?;
    let mut incoming = Vec::new();
    let mut progress = Instant::now();
    while markers.pending() > 0 {
        ch.poll(&mut incoming)?;
        for ev in incoming.drain(..) {
            progress = Instant::now();
            if let Incoming::Confirm {
                tag,
                multiple,
                nack,
            } = ev
            {
                markers.confirm(tag, multiple, nack);
            }
        }
        stalled(progress, "*", "marker confirms")?;
    }
    let added = ledger.add_published(origin, &markers);
    c.published += added.published;
    c.confirmed += added.confirmed;
    c.nacked += added.nacked;
    if added.nacked > 0 {
        return Err(BenchError::Drain {
            queue: "*".into(),
            reason: "the broker nacked a marker: the drain's acks may not be durable".into(),
        });
    }
    ledger.drained();
    ch.close()?;
    Ok(found)
}

fn stalled(since: Instant, queue: &str, waiting_for: &str) -> Result<(), BenchError> {
    if since.elapsed() > STALL {
        return Err(BenchError::Drain {
            queue: queue.to_owned(),
            reason: format!("nothing for {STALL:?} while waiting for {waiting_for}"),
        });
    }
    Ok(())
}

/// Consumes `ready` messages of `name` (and any more that arrive before
/// the consumer is cancelled), acking them all.
fn take(
    ch: &mut CheckedChannel,
    name: &str,
    ready: usize,
) -> Result<Vec<(bool, Vec<u8>)>, BenchError> {
    let consumer = ch.consume(name)?;
    let mut got = Vec::with_capacity(ready);
    let mut incoming = Vec::new();
    let (mut last_tag, mut acked_at) = (0, 0);
    let mut progress = Instant::now();
    while got.len() < ready {
        ch.poll(&mut incoming)?;
        if !incoming.is_empty() {
            progress = Instant::now();
        }
        last_tag = keep(name, &mut incoming, &mut got)?.unwrap_or(last_tag);
        if got.len() - acked_at >= ACK_EVERY {
            ch.ack(last_tag, true)?;
            ch.flush()?;
            acked_at = got.len();
        }
        stalled(
            progress,
            name,
            &format!("{} of {ready} ready messages", got.len()),
        )?;
    }
    ch.cancel(&consumer)?;
    ch.take_read(&mut incoming)?;
    last_tag = keep(name, &mut incoming, &mut got)?.unwrap_or(last_tag);
    if got.len() > acked_at {
        ch.ack(last_tag, true)?;
        ch.flush()?;
    }
    Ok(got)
}

/// Moves deliveries into `got`; returns the last delivery tag, if any.
fn keep(
    name: &str,
    incoming: &mut Vec<Incoming>,
    got: &mut Vec<(bool, Vec<u8>)>,
) -> Result<Option<u64>, BenchError> {
    let mut last = None;
    for ev in incoming.drain(..) {
        match ev {
            Incoming::Deliver {
                tag,
                redelivered,
                body,
            } => {
                got.push((redelivered, body));
                last = Some(tag);
            }
            Incoming::Confirm { .. } => {
                return Err(BenchError::Drain {
                    queue: name.to_owned(),
                    reason: "a confirm arrived before any publish".into(),
                })
            }
        }
    }
    Ok(last)
}
