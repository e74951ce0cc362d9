//! What the shard hands a session — deliveries, confirm answers, consumer
//! cancellations, storage alarms — and the flush that encodes the pending
//! output of each channel (returns, then deliveries, then confirms) into
//! the buffer the writer drains.

use std::rc::Rc;
use std::sync::Arc;

use ringmq_protocol::message::{self as pm, encode_deliveries, Message as Wire, OutDelivery};
use ringmq_protocol::Properties;

use super::state::{PendingDelivery, Unacked};
use super::Session;
use crate::exchange::reply_to::ReplyTo;
use crate::message::Message;
use crate::meta::SessionId;
use crate::queue::ConsumerId;
use crate::shard::clients::{Client, Delivery};
use crate::shard::counters::bump;

/// Target size of one delivery frame.
const BATCH_BYTES: usize = 256 * 1024;

impl OutDelivery for PendingDelivery {
    fn consumer_tag(&self) -> &str {
        &self.tag
    }

    fn delivery_tag(&self) -> u64 {
        self.delivery_tag
    }

    fn redelivered(&self) -> bool {
        self.redelivered
    }

    fn exchange(&self) -> &str {
        self.msg.exchange.as_str()
    }

    fn routing_key(&self) -> &str {
        self.msg.routing_key.as_str()
    }

    fn properties(&self) -> Option<&Properties> {
        self.msg.props.as_deref()
    }

    fn body(&self) -> &[u8] {
        &self.msg.body
    }

    /// By identity: one consumer's tag and one publish's properties are
    /// shared, not copied.
    fn continues_run(&self, next: &PendingDelivery) -> bool {
        next.delivery_tag == self.delivery_tag + 1
            && Rc::ptr_eq(&self.tag, &next.tag)
            && self.msg.exchange == next.msg.exchange
            && self.msg.routing_key == next.msg.routing_key
            && match (&self.msg.props, &next.msg.props) {
                (None, None) => true,
                (Some(x), Some(y)) => Arc::ptr_eq(x, y),
                _ => false,
            }
    }
}

impl Session {
    /// Marks a channel as having output for the next flush.
    fn mark_channel(&self, ch: u16) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        if let Some(chan) = st.channels.get_mut(&ch) {
            if !chan.dirty {
                chan.dirty = true;
                st.dirty_channels.push(ch);
            }
        }
    }
}

impl Client for Session {
    fn id(&self) -> SessionId {
        self.id
    }

    fn deliver(&self, d: Delivery) -> bool {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(info) = st.consumers.get(&d.consumer) else {
            return false;
        };
        let (ch, tag, prefetch) = (info.channel, info.tag.clone(), info.prefetch);
        let Some(chan) = st.channels.get_mut(&ch) else {
            return false;
        };
        if chan.closing {
            return false;
        }
        let delivery_tag = chan.take_tag();
        let counters = &self.shard.counters;
        bump(
            if d.no_ack {
                &counters.delivered_no_ack
            } else {
                &counters.delivered
            },
            1,
        );
        bump(&counters.redelivered, u64::from(d.redelivered));
        if !d.no_ack {
            chan.unacked.push_back(Unacked {
                tag: delivery_tag,
                queue: d.queue,
                id: d.id,
                credit: (prefetch > 0).then_some(d.consumer),
                limited: true,
            });
        }
        if let Some(l) = &mut chan.limiter {
            l.delivered(d.consumer, !d.no_ack);
            if d.no_ack {
                super::qos::lease(&self.shard, chan);
            }
        }
        if prefetch == 0 {
            *st.owed.entry((d.queue, d.consumer)).or_default() += 1;
        }
        chan.deliveries.push(PendingDelivery {
            tag,
            delivery_tag,
            redelivered: d.redelivered,
            msg: d.msg,
        });
        if !chan.dirty {
            chan.dirty = true;
            st.dirty_channels.push(ch);
        }
        true
    }

    fn demand(&self, consumer: ConsumerId, want: u32) {
        self.permits_wanted(consumer, want);
    }

    fn unused(&self, consumer: ConsumerId, permits: u32) {
        self.permits_unused(consumer, permits);
    }

    fn deliver_reply(&self, to: &ReplyTo, msg: Message) -> bool {
        self.take_reply(to, msg)
    }

    fn has_reply_consumer(&self, to: &ReplyTo) -> bool {
        self.reply_consumer_exists(to)
    }

    fn confirmed(&self, ch: u16, seq: u64, nack: bool) {
        let (ready, tx) = {
            let mut st = self.st.borrow_mut();
            let Some(chan) = st.channels.get_mut(&ch) else {
                return;
            };
            match (chan.confirms.as_mut(), chan.tx.as_mut()) {
                (Some(c), Some(tx)) => {
                    c.complete(seq, nack);
                    tx.answered(nack);
                    (false, true)
                }
                (Some(c), None) => {
                    c.complete(seq, nack);
                    (!c.out.is_empty(), false)
                }
                (None, _) => (false, false),
            }
        };
        if ready {
            self.mark_channel(ch);
        }
        if tx {
            self.tx_answered(ch);
        }
    }

    fn alarm(&self, reason: Option<&str>) {
        // As RabbitMQ: only connections that publish are blocked, and told.
        if self.published.get() {
            self.tell_blocked(reason);
        }
    }

    fn describe(&self) -> ringmq_mgmt::view::ConnectionRow {
        Session::describe(self)
    }

    fn name(&self) -> String {
        Session::name(self)
    }

    fn login(&self) -> (String, String) {
        Session::login(self)
    }

    fn force_close(&self, reason: &str) {
        Session::force_close(self, reason);
    }

    fn counts(&self) -> (u64, u64) {
        let st = self.st.borrow();
        (st.channels.len() as u64, st.consumers.len() as u64)
    }

    fn buffered(&self) -> usize {
        self.out.borrow().capacity() + self.read_buffers.get()
    }

    fn server_cancel(&self, consumer: ConsumerId) {
        let info = self
            .st
            .borrow()
            .consumers
            .get(&consumer)
            .map(|i| (i.channel, i.tag.clone()));
        let Some((ch, tag)) = info else { return };
        self.forget_consumer(consumer);
        self.send(
            0,
            &Wire::ServerCancel(pm::ConsumerTag {
                channel: ch,
                consumer_tag: tag.to_string(),
            }),
        );
    }

    fn flush(&self) {
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        if st.dirty_channels.is_empty() {
            return;
        }
        let mut out = self.out.borrow_mut();
        for ch in std::mem::take(&mut st.dirty_channels) {
            let Some(chan) = st.channels.get_mut(&ch) else {
                continue;
            };
            chan.dirty = false;
            if !chan.returns.is_empty() {
                let returns = std::mem::take(&mut chan.returns);
                let batch = pm::ReturnBatch {
                    channel: ch,
                    returns,
                };
                st.encoder.encode(&mut out, 0, &Wire::Return(batch));
            }
            if !chan.deliveries.is_empty() {
                encode_deliveries(&mut st.encoder, &mut out, ch, &chan.deliveries, BATCH_BYTES);
                chan.deliveries.clear();
            }
            if let Some(c) = chan.confirms.as_mut().filter(|c| !c.out.is_empty()) {
                if chan.tx.is_some() {
                    // A transaction's confirms only tell its commit.
                    c.out.clear();
                    continue;
                }
                bump(
                    &self.shard.counters.confirmed,
                    std::mem::take(&mut c.confirmed),
                );
                let items = std::mem::take(&mut c.out);
                let batch = pm::ConfirmBatch { channel: ch, items };
                st.encoder.encode(&mut out, 0, &Wire::Confirm(batch));
            }
        }
        drop(out);
        self.wake_writer.notify();
    }
}
