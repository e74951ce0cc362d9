//! Streams on their owning shard. The dispatch hands every message meant
//! for a stream here first (`stream_msg`); the [`Stream`] state machine
//! decides, and this file does the I/O: `StreamAppend` records in the
//! shard's log, reads back for consumers, deliveries with their
//! `x-stream-offset` header, retention's records and releases. Also the
//! stream's side of commits, log failures, recovery, compaction and the
//! memory count.

use std::rc::Rc;
use std::time::Duration;

use ringmq_protocol::{ErrorCode, FieldTable, FieldValue, Refusal};
use rustc_hash::FxHashMap;
use tracing::{error, info, warn};

use super::clients::Delivery;
use super::mesh::{CallReq, CallResp, ConfirmRef, ShardMsg};
use super::Shard;
use crate::exchange::{QueueId, QueueRef};
use crate::log::record::Record;
use crate::log::recovery::RecoveredStream;
use crate::log::{Log, LogError, LogLoc, Pos};
use crate::message::Message;
use crate::meta::QueueDef;
use crate::queue::{ConsumerId, ConsumerSpec};
use crate::stream::offset::OFFSET_ARG;
use crate::stream::{Entry, Start, Stream, StreamArgs, StreamSink};

/// Most messages one read from the log hands a consumer.
const READ_MAX_MSGS: u32 = 256;

/// About the most record bytes one read from the log hands a consumer.
const READ_MAX_BYTES: u64 = 4 << 20;

/// Bodies a stream keeps while they wait for their commit, at most (and
/// no more than an eighth of the shard's paging budget).
const CACHE_MAX: u64 = 8 << 20;

/// Wait before reading again after a read from the log failed.
const READ_RETRY: Duration = Duration::from_millis(100);

/// A stream's effects carried out on this shard.
struct ShardStreamSink<'a> {
    shard: &'a Shard,
    /// Consumers that need a read from the log (started once the stream
    /// is no longer borrowed).
    reads: Vec<(QueueId, ConsumerId)>,
}

impl StreamSink for ShardStreamSink<'_> {
    fn append(&mut self, queue: QueueId, offset: u64, ts: u64, msg: &Message) -> Option<LogLoc> {
        let log = self.shard.log()?;
        let props = self.shard.stream_props(msg);
        Some(log.append(&Record::StreamAppend {
            queue: queue.0,
            offset,
            timestamp: ts,
            exchange: msg.exchange.as_str(),
            routing_key: msg.routing_key.as_str(),
            props: &props,
            body: &msg.body,
        }))
    }

    fn deliver(&mut self, queue: QueueId, consumer: &ConsumerSpec, offset: u64, msg: &Message) {
        let delivery = Delivery {
            consumer: consumer.id,
            queue: QueueRef {
                id: queue,
                shard: self.shard.id,
            },
            id: offset,
            redelivered: false,
            no_ack: false,
            msg: with_offset(msg, offset),
        };
        let msg = ShardMsg::Deliver {
            session: consumer.session,
            delivery,
        };
        self.shard.post(consumer.shard, msg);
    }

    fn read(&mut self, queue: QueueId, consumer: ConsumerId) {
        self.reads.push((queue, consumer));
    }

    fn released(&mut self, loc: LogLoc) {
        if let Some(log) = self.shard.log() {
            log.release(loc);
        }
    }

    fn truncated(&mut self, queue: QueueId, first: u64) {
        if let Some(log) = self.shard.log() {
            log.append(&Record::StreamTruncated {
                queue: queue.0,
                first,
            });
        }
    }
}

/// The message as delivered: its offset in the `x-stream-offset` header
/// (a long, as RabbitMQ sends it).
fn with_offset(msg: &Message, offset: u64) -> Message {
    let mut m = msg.clone();
    m.update(|p| {
        p.props_mut()
            .headers
            .get_or_insert_with(FieldTable::new)
            .insert(OFFSET_ARG, FieldValue::I64(offset as i64));
    });
    m
}

/// 540 for what a stream does not do, in RabbitMQ's words.
fn not_supported(what: &str, s: &Stream) -> Refusal {
    Refusal::new(
        ErrorCode::NotImplemented,
        format_args!(
            "{what} not supported by stream queues queue '{}' in vhost '{}'",
            s.def.name, s.vhost
        ),
    )
}

/// The queue a message is about, when a stream may own it.
fn target(msg: &ShardMsg) -> Option<QueueId> {
    match msg {
        ShardMsg::Enqueue { queue, .. }
        | ShardMsg::Settle { queue, .. }
        | ShardMsg::Requeue { queue, .. }
        | ShardMsg::Credit { queue, .. }
        | ShardMsg::Gate { queue, .. }
        | ShardMsg::Permits { queue, .. }
        | ShardMsg::DropConsumer { queue, .. } => Some(*queue),
        ShardMsg::Call { req, .. } => match &**req {
            CallReq::Counts { queue }
            | CallReq::CheckDelete { queue, .. }
            | CallReq::Consume { queue, .. }
            | CallReq::ConsumeStream { queue, .. }
            | CallReq::Cancel { queue, .. }
            | CallReq::Get { queue, .. }
            | CallReq::Purge { queue } => Some(*queue),
            _ => None,
        },
        _ => None,
    }
}

impl Shard {
    /// Handles `msg` if it is for a stream this shard owns (`None`), or
    /// gives it back for the queues (`Some`). A stream consume is always
    /// answered here, if only to say the stream is gone.
    pub(super) fn stream_msg(self: &Rc<Self>, now: u64, msg: ShardMsg) -> Option<ShardMsg> {
        let Some(queue) = target(&msg) else {
            return Some(msg);
        };
        let stream_call = matches!(&msg, ShardMsg::Call { req, .. }
            if matches!(**req, CallReq::ConsumeStream { .. }));
        if !stream_call && !self.streams.borrow().contains_key(&queue) {
            return Some(msg);
        }
        match msg {
            ShardMsg::Enqueue { msg, confirm, .. } => self.stream_publish(queue, msg, confirm, now),
            ShardMsg::Settle {
                credit: Some(consumer),
                ..
            } => self.stream_credit(queue, consumer, 1),
            ShardMsg::Credit {
                consumer, credit, ..
            } => self.stream_credit(queue, consumer, credit),
            ShardMsg::DropConsumer { consumer, .. } => {
                self.with_stream(queue, |s, _| s.remove_consumer(consumer));
            }
            ShardMsg::Call { from, call, req } => {
                let resp = self.stream_call(queue, *req);
                self.reply(from, call, resp);
            }
            // Requeues (a closed channel, a consumer gone) and a shared
            // limit's permits mean nothing to a stream; nacks and rejects
            // were refused by the session.
            _ => {}
        }
        None
    }

    /// Runs `f` on an owned stream with a sink, then starts the reads it
    /// asked for.
    fn with_stream<R>(
        self: &Rc<Self>,
        id: QueueId,
        f: impl FnOnce(&mut Stream, &mut ShardStreamSink<'_>) -> R,
    ) -> Option<R> {
        let mut sink = ShardStreamSink {
            shard: self,
            reads: Vec::new(),
        };
        let r = {
            let mut streams = self.streams.borrow_mut();
            f(streams.get_mut(&id)?, &mut sink)
        };
        for (queue, consumer) in sink.reads {
            glommio::spawn_local(self.clone().stream_read(queue, consumer)).detach();
        }
        Some(r)
    }

    fn stream_publish(
        self: &Rc<Self>,
        queue: QueueId,
        msg: Message,
        confirm: Option<ConfirmRef>,
        now: u64,
    ) {
        let appended = self.with_stream(queue, |s, sink| s.publish(msg, now, sink));
        let Some(c) = confirm else { return };
        match appended {
            // Confirmed once its record is durable, like a persistent
            // message on a durable queue.
            Some(Some(loc)) => self.confirm_when_durable(loc, c, (queue, 0), 0),
            Some(None) => self.confirm(c, true),
            None => self.confirm(c, false),
        }
    }

    fn stream_credit(self: &Rc<Self>, queue: QueueId, consumer: ConsumerId, credit: u32) {
        self.with_stream(queue, |s, sink| s.add_credit(consumer, credit, sink));
    }

    /// Answers a call about a stream.
    fn stream_call(self: &Rc<Self>, queue: QueueId, req: CallReq) -> CallResp {
        let gone = || CallResp::Refused(Refusal::new(ErrorCode::NotFound, "queue was deleted"));
        let answer = self.with_stream(queue, |s, _| match req {
            CallReq::ConsumeStream { spec, start, .. } => {
                s.add_consumer(spec, start);
                CallResp::Done
            }
            CallReq::Consume { spec, .. } => {
                s.add_consumer(spec, Start::Next);
                CallResp::Done
            }
            CallReq::Cancel { consumer, .. } => {
                s.remove_consumer(consumer);
                CallResp::Done
            }
            // RabbitMQ 3.10 counts the messages a stream holds (a second
            // or so late) and no consumers; it never refuses a delete
            // if-empty or if-unused.
            CallReq::Counts { .. } => CallResp::Counts {
                messages: u32::try_from(s.len()).unwrap_or(u32::MAX),
                consumers: 0,
            },
            CallReq::Get { .. } => CallResp::Refused(not_supported("basic.get", s)),
            CallReq::Purge { .. } => CallResp::Refused(not_supported("queue.purge", s)),
            _ => CallResp::Done,
        });
        answer.unwrap_or_else(gone)
    }

    /// Reads back what a consumer needs from the log and hands it over;
    /// the stream asks for the next read itself.
    async fn stream_read(self: Rc<Self>, queue: QueueId, consumer: ConsumerId) {
        let plan = self
            .streams
            .borrow_mut()
            .get_mut(&queue)
            .and_then(|s| s.read_plan(consumer, READ_MAX_MSGS, READ_MAX_BYTES));
        let Some((start, locs)) = plan else { return };
        let Some(log) = self.log() else { return };
        let msgs = match log.read_many(&locs).await {
            Ok(records) => records
                .iter()
                .map(|r| super::paging::stored_message(r, super::paging::Stored::Stream))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| "a stream record does not decode".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        match msgs {
            Ok(msgs) => {
                self.with_stream(queue, |s, sink| s.read_done(consumer, start, &msgs, sink));
            }
            Err(e) => {
                // Retention may have dropped the records meanwhile (and
                // their segment gone): the next read starts after them.
                let dropped = self
                    .streams
                    .borrow()
                    .get(&queue)
                    .is_none_or(|s| s.first() > start);
                if !dropped {
                    error!(queue = %queue, offset = start, error = %e, "cannot read stream messages from the log; trying again");
                    glommio::timer::sleep(READ_RETRY).await;
                }
                self.with_stream(queue, |s, sink| s.read_failed(consumer, sink));
            }
        }
    }

    /// A message's properties as stored: messages of one dense publish
    /// share them, so they are encoded once.
    fn stream_props(&self, msg: &Message) -> Rc<Vec<u8>> {
        let Some(p) = &msg.props else {
            return Rc::new(Vec::new());
        };
        let mut cache = self.props_cache.borrow_mut();
        match &*cache {
            Some((cached, bytes)) if std::sync::Arc::ptr_eq(cached, p) => bytes.clone(),
            _ => {
                let bytes = Rc::new(p.to_flatbuffer());
                *cache = Some((p.clone(), bytes.clone()));
                bytes
            }
        }
    }

    /// Creates the state of a stream this shard owns; false when `def` is
    /// not a stream.
    pub(super) fn create_stream(&self, vhost: &str, def: &QueueDef) -> bool {
        let Some(args) = StreamArgs::of(def) else {
            return false;
        };
        let cache_max = CACHE_MAX.min(self.resources.page_out_above / 8);
        let s = Stream::new(def.clone(), vhost, args, cache_max);
        self.streams.borrow_mut().insert(def.id, s);
        true
    }

    /// Deletes an owned stream: its records go with one `QueueDeleted`
    /// record, its consumers are cancelled. RabbitMQ 3.10 reports no
    /// messages deleted.
    pub(super) fn delete_owned_stream(&self, id: QueueId) -> Option<u32> {
        let mut s = self.streams.borrow_mut().remove(&id)?;
        let mut sink = ShardStreamSink {
            shard: self,
            reads: Vec::new(),
        };
        let consumers = s.delete(&mut sink);
        if let Some(log) = self.log() {
            log.append(&Record::QueueDeleted { queue: id.0 });
        }
        for c in consumers {
            let cancel = ShardMsg::ServerCancel {
                session: c.session,
                consumer: c.id,
            };
            self.post(c.shard, cancel);
        }
        Some(0)
    }

    /// The log made everything before `pos` durable: streams deliver it.
    pub(super) fn streams_committed(self: &Rc<Self>, pos: Pos) {
        let ids: Vec<QueueId> = self.streams.borrow().keys().copied().collect();
        for id in ids {
            self.with_stream(id, |s, sink| s.committed(pos, sink));
        }
    }

    /// A log write or sync failed: streams stop delivering from memory.
    pub(super) fn streams_failed(&self) {
        for s in self.streams.borrow_mut().values_mut() {
            s.failed();
        }
    }

    /// Bytes the streams' indexes hold.
    pub(super) fn streams_memory(&self) -> usize {
        self.streams
            .borrow()
            .values()
            .map(Stream::index_memory)
            .sum()
    }

    /// Refuses recovered stream records the metadata cannot account for,
    /// as `check_recovered_queues` does for queues.
    pub(super) fn check_recovered_streams(
        &self,
        streams: &FxHashMap<u64, RecoveredStream>,
    ) -> Result<(), LogError> {
        let owned = self.streams.borrow();
        self.check_unowned(
            streams
                .iter()
                .filter(|(qid, rs)| !rs.entries.is_empty() && !owned.contains_key(&QueueId(**qid)))
                .map(|(&qid, rs)| (qid, rs.entries.len())),
        )
    }

    /// Puts recovered stream records into their streams; those of a
    /// deleted stream are released and its deletion recorded again.
    pub(super) fn restore_streams(&self, log: &Log, streams: FxHashMap<u64, RecoveredStream>) {
        for (qid, rs) in streams {
            let mut owned = self.streams.borrow_mut();
            let Some(s) = owned.get_mut(&QueueId(qid)) else {
                if !rs.entries.is_empty() {
                    for (loc, _) in rs.entries.values() {
                        log.release(*loc);
                    }
                    log.append(&Record::QueueDeleted { queue: qid });
                }
                continue;
            };
            let entries = rs
                .entries
                .into_iter()
                .map(|(offset, (loc, ts))| (offset, Entry { loc, ts }));
            let lost = s.restore(rs.first, entries);
            if !lost.is_empty() {
                error!(
                    shard = self.id,
                    queue = %s.def.name,
                    lost = lost.len(),
                    "stream offsets are missing (corrupt bytes were skipped): the messages before the gap are dropped"
                );
            }
            for loc in lost {
                log.release(loc);
            }
            if s.next_offset() > s.first() {
                info!(
                    shard = self.id,
                    queue = %s.def.name,
                    first = s.first(),
                    next = s.next_offset(),
                    "stream restored from the log"
                );
            }
        }
    }

    /// Copies the stream records of segment `seq` into the active segment
    /// (compaction, after the queues' records).
    pub(super) async fn compact_streams(self: &Rc<Self>, log: &Rc<Log>, seq: u32) {
        let live: Vec<(QueueId, Vec<(u64, LogLoc)>)> = self
            .streams
            .borrow()
            .iter()
            .map(|(id, s)| (*id, s.stored_in(seq)))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let mut moved = 0u64;
        for (qid, records) in live {
            for (offset, from) in records {
                let bytes = match log.read(from).await {
                    Ok(b) => b,
                    Err(e) => {
                        warn!(error = %e, seq, "stream compaction read failed");
                        return;
                    }
                };
                let Ok((rec, _)) = Record::decode(&bytes) else {
                    warn!(seq, "stream compaction: record does not decode");
                    return;
                };
                let mut streams = self.streams.borrow_mut();
                // Retention may have dropped it while we read.
                let Some(s) = streams.get_mut(&qid).filter(|s| s.holds(offset, from)) else {
                    continue;
                };
                let to = log.append(&rec);
                s.relocate(offset, from, to);
                log.copied_out(seq);
                log.release(from);
                moved += 1;
            }
        }
        if moved > 0 {
            info!(shard = self.id, seq, moved, "stream records compacted");
        }
    }
}
