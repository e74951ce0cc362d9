//! The load of one cycle: publishers and consumers, one thread each, that
//! run until the kill breaks their connections and then hand over what
//! they saw ([`Journal`]).
//!
//! - AMQP publishers (through the gateway) and native publishers
//!   (straight to the broker): persistent messages to random durable
//!   queues, confirms on, a window of unconfirmed publishes.
//! - Consumers (through the gateway): manual acks, always holding back the
//!   newest few deliveries (so the kill finds some delivered and unacked),
//!   and now and then a *marker*: a persistent publish, confirms on, on the
//!   consumer's own channel to its own queue. When the broker confirms a
//!   marker, every ack sent and every delivery received before it on that
//!   channel is durable (see [`super`] for why).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::{ClientError, ConnectOptions, Event};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::Properties;

use super::ledger::{decode, encode, flag, MsgId, PublishLog};
use super::Rng;
use crate::amqp::{CheckedChannel, Incoming};
use crate::error::BenchError;
use crate::target::Target;

/// A consumer sends a marker at least this often while it has something
/// to make durable.
const MARKER_INTERVAL: Duration = Duration::from_millis(25);
/// ... or once this many deliveries and acks wait for one.
const MARKER_EVERY: usize = 64;
/// How long a native publisher waits for an event before publishing on.
const NATIVE_TICK: Duration = Duration::from_millis(100);

/// What every client of a cycle needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The gateway.
    pub amqp: Target,
    /// The broker.
    pub native: SocketAddr,
    /// Queue names; a message names its queue by index.
    pub queues: Arc<Vec<String>>,
    /// Unconfirmed publishes per publisher.
    pub in_flight: usize,
    /// Consumer prefetch.
    pub prefetch: u16,
    /// Deliveries each consumer leaves unacked.
    pub hold: usize,
    /// Largest padding after the 20-byte head of a body.
    pub max_pad: u16,
}

/// What one client saw.
#[derive(Debug)]
pub struct Journal {
    /// Which client.
    pub what: String,
    /// Its origin in the ledger (publishes, or a consumer's markers).
    pub origin: u32,
    /// Its publishes and their confirms.
    pub published: PublishLog,
    /// Flags learned about messages (consumers).
    pub touched: Vec<(MsgId, u8)>,
    /// Deliveries received.
    pub delivered: u64,
    /// Acks sent.
    pub acked: u64,
    /// Acks known durable.
    pub acks_durable: u64,
    /// Deliveries known to have a durable `Delivered` record.
    pub deliveries_durable: u64,
    /// Deliveries out of order for their origin.
    pub order_violations: u64,
    /// Deliveries this harness did not write, or damaged, or from another
    /// queue.
    pub corrupt: u64,
    /// How the client ended, and when.
    pub error: Option<(Instant, String)>,
}

impl Journal {
    fn new(what: String, origin: u32) -> Journal {
        Journal {
            what,
            origin,
            published: PublishLog::default(),
            touched: Vec::new(),
            delivered: 0,
            acked: 0,
            acks_durable: 0,
            deliveries_durable: 0,
            order_violations: 0,
            corrupt: 0,
            error: None,
        }
    }

    fn ended(mut self, r: Result<(), BenchError>) -> Journal {
        self.error = r.err().map(|e| (Instant::now(), e.chain()));
        self
    }
}

/// The running clients of a cycle.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<(String, JoinHandle<Journal>)>,
}

/// Which client a thread runs.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// AMQP publisher.
    Amqp,
    /// Native publisher.
    Native,
    /// Consumer of the queue with this index.
    Consumer(u16),
}

impl Load {
    /// Starts one thread per client: `clients` pairs a role with its name
    /// and origin.
    ///
    /// # Errors
    /// A thread cannot be spawned.
    pub fn start(
        plan: &Plan,
        clients: Vec<(Role, String, u32)>,
        rng: &mut Rng,
    ) -> Result<Load, BenchError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (role, what, origin) in clients {
            let (plan, stop, rng) = (plan.clone(), stop.clone(), rng.fork());
            let j = Journal::new(what.clone(), origin);
            let handle = std::thread::Builder::new()
                .name(what.clone())
                .spawn(move || match role {
                    Role::Amqp => amqp_publisher(&plan, j, rng, &stop),
                    Role::Native => native_publisher(&plan, j, rng, &stop),
                    Role::Consumer(q) => consumer(&plan, j, q, rng, &stop),
                })
                .map_err(|e| BenchError::io(&what, e))?;
            threads.push((what, handle));
        }
        Ok(Load { stop, threads })
    }

    /// Stops the clients that still run (after the kill, their
    /// connections are broken anyway) and collects their journals.
    ///
    /// # Errors
    /// [`BenchError::Panicked`].
    pub fn finish(mut self) -> Result<Vec<Journal>, BenchError> {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|(what, h)| h.join().map_err(|_| BenchError::Panicked { what }))
            .collect()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The next message of a publisher: its queue, recorded as published, and
/// its body.
fn next_message(plan: &Plan, j: &mut Journal, rng: &mut Rng) -> (u16, Vec<u8>) {
    let q = pick_queue(plan, rng);
    let seq = j.published.push(q);
    let id = MsgId {
        origin: j.origin,
        seq,
    };
    (q, encode(id, q, pad(plan, rng)))
}

fn pick_queue(plan: &Plan, rng: &mut Rng) -> u16 {
    rng.below(plan.queues.len() as u64) as u16
}

fn pad(plan: &Plan, rng: &mut Rng) -> u16 {
    rng.below(u64::from(plan.max_pad) + 1) as u16
}

fn amqp_publisher(plan: &Plan, mut j: Journal, mut rng: Rng, stop: &AtomicBool) -> Journal {
    let r = amqp_publish(plan, &mut j, &mut rng, stop);
    j.ended(r)
}

fn amqp_publish(
    plan: &Plan,
    j: &mut Journal,
    rng: &mut Rng,
    stop: &AtomicBool,
) -> Result<(), BenchError> {
    let mut ch = CheckedChannel::connect(&plan.amqp, &j.what)?;
    ch.confirm_select()?;
    let mut incoming = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        while j.published.pending() < plan.in_flight {
            let (q, body) = next_message(plan, j, rng);
            ch.publish(&plan.queues[usize::from(q)], &body)?;
        }
        ch.flush()?;
        ch.poll(&mut incoming)?;
        for ev in incoming.drain(..) {
            if let Incoming::Confirm {
                tag,
                multiple,
                nack,
            } = ev
            {
                j.published.confirm(tag, multiple, nack);
            }
        }
    }
    Ok(())
}

fn native_publisher(plan: &Plan, mut j: Journal, mut rng: Rng, stop: &AtomicBool) -> Journal {
    let r = native_publish(plan, &mut j, &mut rng, stop);
    j.ended(r)
}

fn native_error(what: &str, e: ClientError) -> BenchError {
    match e {
        ClientError::Io(source) => BenchError::io(what, source),
        other => BenchError::protocol(what, other.to_string()),
    }
}

fn native_publish(
    plan: &Plan,
    j: &mut Journal,
    rng: &mut Rng,
    stop: &AtomicBool,
) -> Result<(), BenchError> {
    let what = j.what.clone();
    let err = |e| native_error(&what, e);
    let mut c = Connection::connect(plan.native, &ConnectOptions::default()).map_err(err)?;
    let ch = c.open_channel().map_err(err)?;
    c.call(Message::ConfirmSelect(ch)).map_err(err)?;
    let properties = Properties {
        delivery_mode: Some(2),
        ..Properties::default()
    };
    while !stop.load(Ordering::Relaxed) {
        while j.published.pending() < plan.in_flight {
            let (q, body) = next_message(plan, j, rng);
            let p = m::Publish {
                routing_key: plan.queues[usize::from(q)].clone(),
                properties: properties.clone(),
                body: Bytes::from(body),
                ..m::Publish::default()
            };
            c.publish(ch, p).map_err(err)?;
        }
        c.flush().map_err(err)?;
        match c.next_event(Some(NATIVE_TICK)).map_err(err)? {
            Some(Event::Confirm(_, conf)) => {
                j.published
                    .confirm(conf.delivery_tag, conf.multiple, conf.nack);
            }
            Some(Event::ChannelClosed(cl)) => {
                return Err(BenchError::Closed {
                    what,
                    scope: "channel",
                    code: cl.code,
                    text: cl.text,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// What a consumer did since its last marker, made durable by the next.
#[derive(Debug, Default)]
struct Pending {
    delivered: Vec<MsgId>,
    acked: Vec<MsgId>,
}

impl Pending {
    fn len(&self) -> usize {
        self.delivered.len() + self.acked.len()
    }
}

fn consumer(plan: &Plan, mut j: Journal, queue: u16, mut rng: Rng, stop: &AtomicBool) -> Journal {
    let r = consume(plan, &mut j, queue, &mut rng, stop);
    j.ended(r)
}

/// A consumer's state between polls.
struct Consuming {
    queue: u16,
    /// Delivery tags not acked yet, oldest first, with the message (if the
    /// body was ours).
    unacked: VecDeque<(u64, Option<MsgId>)>,
    /// Since the last marker.
    pending: Pending,
    /// Markers sent and not yet confirmed: confirm tag, what each covers.
    markers: VecDeque<(u64, Pending)>,
    last_marker: Instant,
    /// Per origin, the last sequence number delivered.
    last_seq: HashMap<u32, u64>,
}

fn consume(
    plan: &Plan,
    j: &mut Journal,
    queue: u16,
    rng: &mut Rng,
    stop: &AtomicBool,
) -> Result<(), BenchError> {
    let name = &plan.queues[usize::from(queue)];
    let mut ch = CheckedChannel::connect(&plan.amqp, &j.what)?;
    ch.confirm_select()?;
    ch.qos(plan.prefetch)?;
    ch.consume(name)?;
    let mut st = Consuming {
        queue,
        unacked: VecDeque::new(),
        pending: Pending::default(),
        markers: VecDeque::new(),
        last_marker: Instant::now(),
        last_seq: HashMap::new(),
    };
    let mut incoming = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        ch.poll(&mut incoming)?;
        for ev in incoming.drain(..) {
            match ev {
                Incoming::Deliver {
                    tag,
                    redelivered: _,
                    body,
                } => st.delivered(j, tag, &body),
                Incoming::Confirm {
                    tag,
                    multiple,
                    nack,
                } => st.confirmed(j, tag, multiple, nack),
            }
        }
        st.ack(j, &mut ch, plan.hold, rng)?;
        let due = st.pending.len() >= MARKER_EVERY
            || (st.pending.len() > 0 && st.last_marker.elapsed() >= MARKER_INTERVAL);
        if due {
            st.marker(j, &mut ch, name, pad(plan, rng))?;
        }
        ch.flush()?;
    }
    Ok(())
}

impl Consuming {
    fn delivered(&mut self, j: &mut Journal, tag: u64, body: &[u8]) {
        j.delivered += 1;
        let id = match decode(body) {
            Some((id, q)) if q == self.queue => id,
            _ => {
                j.corrupt += 1;
                self.unacked.push_back((tag, None));
                return;
            }
        };
        if self
            .last_seq
            .insert(id.origin, id.seq)
            .is_some_and(|prev| prev >= id.seq)
        {
            j.order_violations += 1;
        }
        j.touched.push((id, flag::DELIVERED));
        self.pending.delivered.push(id);
        self.unacked.push_back((tag, Some(id)));
    }

    /// A marker's confirm: it and every marker before it are in the log,
    /// so what they cover is durable.
    fn confirmed(&mut self, j: &mut Journal, tag: u64, multiple: bool, nack: bool) {
        j.published.confirm(tag, multiple, nack);
        if nack {
            return;
        }
        while self.markers.front().is_some_and(|(t, _)| *t <= tag) {
            let Some((_, covered)) = self.markers.pop_front() else {
                break;
            };
            j.deliveries_durable += covered.delivered.len() as u64;
            j.acks_durable += covered.acked.len() as u64;
            let delivered = covered.delivered.into_iter();
            j.touched
                .extend(delivered.map(|id| (id, flag::DELIVERED_DURABLE)));
            let acked = covered.acked.into_iter();
            j.touched.extend(acked.map(|id| (id, flag::ACK_DURABLE)));
        }
    }

    /// Acks every delivery but the newest `hold`, one `multiple` ack or
    /// one ack each (at random).
    fn ack(
        &mut self,
        j: &mut Journal,
        ch: &mut CheckedChannel,
        hold: usize,
        rng: &mut Rng,
    ) -> Result<(), BenchError> {
        if self.unacked.len() <= hold {
            return Ok(());
        }
        let single = rng.below(2) == 0;
        let mut last = 0;
        for _ in hold..self.unacked.len() {
            let Some((tag, id)) = self.unacked.pop_front() else {
                break;
            };
            if single {
                ch.ack(tag, false)?;
            }
            last = tag;
            j.acked += 1;
            if let Some(id) = id {
                j.touched.push((id, flag::ACKED));
                self.pending.acked.push(id);
            }
        }
        if !single {
            ch.ack(last, true)?;
        }
        Ok(())
    }

    /// Publishes a marker on the consumer's channel to its queue.
    fn marker(
        &mut self,
        j: &mut Journal,
        ch: &mut CheckedChannel,
        queue_name: &str,
        pad: u16,
    ) -> Result<(), BenchError> {
        let seq = j.published.push(self.queue);
        let body = encode(
            MsgId {
                origin: j.origin,
                seq,
            },
            self.queue,
            pad,
        );
        let tag = ch.publish(queue_name, &body)?;
        self.markers
            .push_back((tag, std::mem::take(&mut self.pending)));
        self.last_marker = Instant::now();
        Ok(())
    }
}
