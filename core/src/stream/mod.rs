//! Streams (`x-queue-type: stream`): append-only queues that consumers
//! read without removing, as RabbitMQ 3.10 serves them over AMQP 0-9-1.
//! Pure: the owning shard calls a [`Stream`] with events and carries out
//! the effects it reports through a [`StreamSink`] (log records, reads
//! back from the log, deliveries). No sockets, files or timers inside;
//! time comes in as milliseconds since the epoch.
//!
//! A stream's messages live in its shard's segment log (`StreamAppend`
//! records); the stream keeps only an index of them, so its memory is a
//! few dozen bytes a message however large the bodies are.
//!
//! # Invariants
//! - Offsets `first..next` are retained, each with one [`Entry`] in
//!   `index`, in offset order.
//! - Only offsets below `committed` (their record is durable) are
//!   delivered, so an offset a consumer has seen never names another
//!   message after a crash.
//! - A reader is sent at most `credit` deliveries; its session gives
//!   credit back with each ack (the prefetch count).
//! - Bodies are kept only between append and commit (`cache`, at most
//!   `cache_max` bytes), for the readers caught up at the commit; every
//!   other delivery is read back from the log.
//! - Retention drops whole segments, oldest first, never the newest, and
//!   only when a new segment starts (as RabbitMQ 3.10 evaluates it).

pub mod args;
pub mod offset;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use crate::exchange::QueueId;
use crate::log::{LogLoc, Pos};
use crate::message::Message;
use crate::meta::QueueDef;
use crate::queue::{ConsumerId, ConsumerSpec};

pub use self::args::StreamArgs;
pub use self::offset::Start;

/// One retained message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Its `StreamAppend` record in the shard's log.
    pub loc: LogLoc,
    /// When it was appended, ms since the epoch (never before the
    /// previous message's).
    pub ts: u64,
}

/// Where a stream's effects go.
pub trait StreamSink {
    /// Logs the message at `offset`; `None` when it cannot be stored (the
    /// publish is refused).
    fn append(&mut self, queue: QueueId, offset: u64, ts: u64, msg: &Message) -> Option<LogLoc>;
    /// Sends the message at `offset` to `consumer`.
    fn deliver(&mut self, queue: QueueId, consumer: &ConsumerSpec, offset: u64, msg: &Message);
    /// `consumer` needs messages that are only in the log: read them back
    /// ([`Stream::read_plan`]), then hand them over ([`Stream::read_done`]).
    fn read(&mut self, queue: QueueId, consumer: ConsumerId);
    /// A record retention dropped (or a deleted stream's).
    fn released(&mut self, loc: LogLoc);
    /// Retention dropped every offset below `first`.
    fn truncated(&mut self, queue: QueueId, first: u64);
}

/// The unit of retention: the messages from `first` to the next segment's.
#[derive(Debug, Clone, Copy)]
struct Segment {
    first: u64,
    /// Bytes of their records.
    bytes: u64,
    /// Timestamp of the newest.
    newest: u64,
}

/// A consumer reading the stream.
#[derive(Debug)]
struct Reader {
    spec: ConsumerSpec,
    /// The next offset it gets.
    next: u64,
    credit: u32,
    /// A read from the log is under way for it.
    reading: bool,
}

/// One stream.
#[derive(Debug)]
pub struct Stream {
    /// Definition.
    pub def: QueueDef,
    /// Virtual host, for texts.
    pub vhost: String,
    args: StreamArgs,
    first: u64,
    next: u64,
    committed: u64,
    index: VecDeque<Entry>,
    segments: VecDeque<Segment>,
    /// Record bytes retained.
    bytes: u64,
    /// The messages of offsets `next - cache.len()..next`.
    cache: VecDeque<Message>,
    cache_bytes: u64,
    cache_max: u64,
    readers: Vec<Reader>,
    newest_ts: u64,
}

fn end(loc: LogLoc) -> Pos {
    (loc.seq, loc.offset + u64::from(loc.len))
}

impl StreamArgs {
    /// The arguments of a declared stream, `None` for another queue.
    pub fn of(def: &QueueDef) -> Option<StreamArgs> {
        if !args::is_stream(&def.arguments) {
            return None;
        }
        let how = args::Declare {
            durable: true,
            exclusive: false,
            auto_delete: false,
        };
        // Checked when it was declared.
        Some(
            StreamArgs::parse(&def.arguments, "", "", how).unwrap_or(StreamArgs {
                max_length_bytes: None,
                max_age_ms: None,
                max_segment_size: args::DEFAULT_MAX_SEGMENT_SIZE,
            }),
        )
    }
}

impl Stream {
    /// An empty stream that keeps at most `cache_max` bytes of bodies
    /// waiting for their commit.
    pub fn new(def: QueueDef, vhost: &str, args: StreamArgs, cache_max: u64) -> Stream {
        Stream {
            def,
            vhost: vhost.to_owned(),
            args,
            first: 0,
            next: 0,
            committed: 0,
            index: VecDeque::new(),
            segments: VecDeque::new(),
            bytes: 0,
            cache: VecDeque::new(),
            cache_bytes: 0,
            cache_max,
            readers: Vec::new(),
            newest_ts: 0,
        }
    }

    /// The oldest offset retained.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The offset the next message gets.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// Offsets below this are durable (and may be delivered).
    pub fn committed_offset(&self) -> u64 {
        self.committed
    }

    /// Messages retained and durable (what consumers can read).
    pub fn len(&self) -> u64 {
        self.committed - self.first
    }

    /// No message to read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Retention units (for tests and metrics).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Consumers.
    pub fn consumer_count(&self) -> usize {
        self.readers.len()
    }

    /// Bytes the index holds (against the memory watermark).
    pub fn index_memory(&self) -> usize {
        self.index.len() * std::mem::size_of::<Entry>()
            + self.segments.len() * std::mem::size_of::<Segment>()
    }

    fn cache_first(&self) -> u64 {
        self.next - self.cache.len() as u64
    }

    /// Appends a published message; `None` when it could not be stored.
    pub fn publish(
        &mut self,
        msg: Message,
        now: u64,
        sink: &mut impl StreamSink,
    ) -> Option<LogLoc> {
        let ts = now.max(self.newest_ts);
        let offset = self.next;
        let loc = sink.append(self.def.id, offset, ts, &msg)?;
        self.newest_ts = ts;
        let roll = self.add_to_segment(offset, loc, ts);
        self.index.push_back(Entry { loc, ts });
        self.next += 1;
        if self.cache_max > 0 {
            self.cache_bytes += msg.body_len() as u64;
            self.cache.push_back(msg);
            while self.cache_bytes > self.cache_max {
                let Some(m) = self.cache.pop_front() else {
                    break;
                };
                self.cache_bytes -= m.body_len() as u64;
            }
        }
        if roll {
            self.retain(now, sink);
        }
        Some(loc)
    }

    /// Counts a record in the newest segment, starting a new one when that
    /// is full. True when a segment was started.
    fn add_to_segment(&mut self, offset: u64, loc: LogLoc, ts: u64) -> bool {
        let max = self.args.max_segment_size;
        let roll = self.segments.back().is_none_or(|s| s.bytes >= max);
        if roll {
            self.segments.push_back(Segment {
                first: offset,
                bytes: 0,
                newest: ts,
            });
        }
        if let Some(s) = self.segments.back_mut() {
            s.bytes += u64::from(loc.len);
            s.newest = ts;
        }
        self.bytes += u64::from(loc.len);
        roll
    }

    /// Drops the oldest segments while the stream is over
    /// `x-max-length-bytes` or they are older than `x-max-age`; the newest
    /// segment always stays.
    fn retain(&mut self, now: u64, sink: &mut impl StreamSink) {
        let before = self.first;
        while let (Some(oldest), Some(second)) = (self.segments.front(), self.segments.get(1)) {
            let too_big = self.args.max_length_bytes.is_some_and(|m| self.bytes > m);
            let too_old = self
                .args
                .max_age_ms
                .is_some_and(|age| oldest.newest.saturating_add(age) < now);
            if !too_big && !too_old {
                break;
            }
            let until = second.first;
            self.bytes -= oldest.bytes;
            self.segments.pop_front();
            while self.first < until {
                if let Some(e) = self.index.pop_front() {
                    sink.released(e.loc);
                }
                self.first += 1;
            }
        }
        if self.first == before {
            return;
        }
        self.committed = self.committed.max(self.first);
        while self.cache_first() < self.first {
            if let Some(m) = self.cache.pop_front() {
                self.cache_bytes -= m.body_len() as u64;
            }
        }
        for r in &mut self.readers {
            r.next = r.next.max(self.first);
        }
        sink.truncated(self.def.id, self.first);
    }

    /// The log committed everything before `pos`: the messages it made
    /// durable go to the readers waiting for them.
    pub fn committed(&mut self, pos: Pos, sink: &mut impl StreamSink) {
        let before = self.committed;
        while self.committed < self.next {
            let at = (self.committed - self.first) as usize;
            if self.index.get(at).is_none_or(|e| end(e.loc) > pos) {
                break;
            }
            self.committed += 1;
        }
        if self.committed == before {
            return;
        }
        for i in 0..self.readers.len() {
            self.dispatch(i, sink);
        }
        while self.cache_first() < self.committed {
            if let Some(m) = self.cache.pop_front() {
                self.cache_bytes -= m.body_len() as u64;
            }
        }
    }

    /// A log write failed: records not yet durable may be written again
    /// elsewhere, so nothing is delivered from memory any more; readers
    /// read back what the log holds (reads wait for the commit).
    pub fn failed(&mut self) {
        self.cache.clear();
        self.cache_bytes = 0;
    }

    /// Sends reader `i` what it may have.
    fn dispatch(&mut self, i: usize, sink: &mut impl StreamSink) {
        let cache_first = self.cache_first();
        let Stream {
            def,
            readers,
            cache,
            first,
            committed,
            ..
        } = self;
        let Some(r) = readers.get_mut(i) else { return };
        r.next = r.next.max(*first);
        while !r.reading && r.credit > 0 && r.next < *committed {
            if r.next >= cache_first {
                let msg = &cache[(r.next - cache_first) as usize];
                sink.deliver(def.id, &r.spec, r.next, msg);
                r.next += 1;
                r.credit -= 1;
            } else {
                r.reading = true;
                sink.read(def.id, r.spec.id);
            }
        }
    }

    fn reader(&self, id: ConsumerId) -> Option<usize> {
        self.readers.iter().position(|r| r.spec.id == id)
    }

    /// Adds a consumer starting at `start`, with no credit yet.
    pub fn add_consumer(&mut self, spec: ConsumerSpec, start: Start) {
        let next = match start {
            Start::First => self.first,
            Start::Last => self.next.saturating_sub(1).max(self.first),
            Start::Next => self.next,
            Start::Offset(n) => n.clamp(self.first, self.next),
            Start::Timestamp(t) => self.first + self.index.partition_point(|e| e.ts < t) as u64,
        };
        self.readers.push(Reader {
            spec,
            next,
            credit: 0,
            reading: false,
        });
    }

    /// Removes a consumer (a read under way for it is dropped when done).
    pub fn remove_consumer(&mut self, id: ConsumerId) -> bool {
        let before = self.readers.len();
        self.readers.retain(|r| r.spec.id != id);
        self.readers.len() != before
    }

    /// More credit for a consumer (its session's prefetch: one per ack).
    pub fn add_credit(&mut self, id: ConsumerId, credit: u32, sink: &mut impl StreamSink) {
        if let Some(i) = self.reader(id) {
            let r = &mut self.readers[i];
            r.credit = r.credit.saturating_add(credit);
            self.dispatch(i, sink);
        }
    }

    /// What to read back for `id`: its next offset and the records from
    /// there, at most `max_msgs` (and its credit) and about `max_bytes`
    /// (at least one). `None` (and no read under way) when there is
    /// nothing to read.
    pub fn read_plan(
        &mut self,
        id: ConsumerId,
        max_msgs: u32,
        max_bytes: u64,
    ) -> Option<(u64, Vec<LogLoc>)> {
        let (first, committed) = (self.first, self.committed);
        let i = self.reader(id)?;
        let r = &mut self.readers[i];
        if !r.reading {
            return None;
        }
        let start = r.next.max(first);
        let end = committed.min(start + u64::from(r.credit.min(max_msgs)));
        let mut locs = Vec::new();
        let mut bytes = 0u64;
        for at in start..end {
            let Some(e) = self.index.get((at - first) as usize) else {
                break;
            };
            if !locs.is_empty() && bytes + u64::from(e.loc.len) > max_bytes {
                break;
            }
            bytes += u64::from(e.loc.len);
            locs.push(e.loc);
        }
        if locs.is_empty() {
            r.reading = false;
            return None;
        }
        Some((start, locs))
    }

    /// The messages of offsets `start..` read back for `id`: delivered
    /// (except those retention dropped meanwhile), then more if it has
    /// credit.
    pub fn read_done(
        &mut self,
        id: ConsumerId,
        start: u64,
        msgs: &[Message],
        sink: &mut impl StreamSink,
    ) {
        let Some(i) = self.reader(id) else { return };
        let queue = self.def.id;
        let r = &mut self.readers[i];
        r.reading = false;
        let skip = r.next.max(self.first).saturating_sub(start) as usize;
        for (k, msg) in msgs.iter().enumerate().skip(skip) {
            if r.credit == 0 {
                break;
            }
            let offset = start + k as u64;
            sink.deliver(queue, &r.spec, offset, msg);
            r.next = offset + 1;
            r.credit -= 1;
        }
        self.dispatch(i, sink);
    }

    /// A read for `id` failed: try again (the caller waits a moment first).
    pub fn read_failed(&mut self, id: ConsumerId, sink: &mut impl StreamSink) {
        if let Some(i) = self.reader(id) {
            self.readers[i].reading = false;
            self.dispatch(i, sink);
        }
    }

    /// Deletes the stream's contents; returns the consumers to tell.
    pub fn delete(&mut self, sink: &mut impl StreamSink) -> Vec<ConsumerSpec> {
        for e in self.index.drain(..) {
            sink.released(e.loc);
        }
        self.segments.clear();
        self.cache.clear();
        self.cache_bytes = 0;
        self.bytes = 0;
        self.first = self.next;
        self.committed = self.next;
        self.readers.drain(..).map(|r| r.spec).collect()
    }

    /// Restores what recovery found: the records of offsets at or above
    /// `first` (retention dropped the others), in offset order. Offsets
    /// must follow each other; after a gap (only corruption skipped with
    /// `on_corruption = "skip"` makes one) the stream restarts at the
    /// offset after it. Returns the records before the last gap, which
    /// the caller releases.
    pub fn restore(
        &mut self,
        first: u64,
        entries: impl IntoIterator<Item = (u64, Entry)>,
    ) -> Vec<LogLoc> {
        let mut lost = Vec::new();
        self.index.clear();
        self.first = first;
        self.next = first;
        for (offset, e) in entries {
            if !self.index.is_empty() && offset != self.next {
                lost.extend(self.index.drain(..).map(|e| e.loc));
            }
            if self.index.is_empty() {
                self.first = offset;
            }
            self.index.push_back(e);
            self.next = offset + 1;
        }
        self.committed = self.next;
        self.segments.clear();
        self.bytes = 0;
        let entries: Vec<(u64, Entry)> = (self.first..)
            .zip(self.index.iter().copied())
            .collect::<Vec<_>>();
        for (offset, e) in entries {
            self.add_to_segment(offset, e.loc, e.ts);
            self.newest_ts = self.newest_ts.max(e.ts);
        }
        lost
    }

    /// The retained messages whose record is in segment `seq` of the log
    /// (compaction copies them forward).
    pub fn stored_in(&self, seq: u32) -> Vec<(u64, LogLoc)> {
        (self.first..)
            .zip(&self.index)
            .filter(|(_, e)| e.loc.seq == seq)
            .map(|(offset, e)| (offset, e.loc))
            .collect()
    }

    /// True while `offset` is retained with its record at `loc`.
    pub fn holds(&self, offset: u64, loc: LogLoc) -> bool {
        offset
            .checked_sub(self.first)
            .and_then(|at| self.index.get(at as usize))
            .is_some_and(|e| e.loc == loc)
    }

    /// Moves a message's record (compaction). False when retention dropped
    /// it, or its record moved already.
    pub fn relocate(&mut self, offset: u64, from: LogLoc, to: LogLoc) -> bool {
        let Some(at) = offset.checked_sub(self.first) else {
            return false;
        };
        match self.index.get_mut(at as usize) {
            Some(e) if e.loc == from => {
                e.loc = to;
                true
            }
            _ => false,
        }
    }
}
