//! Streams seen from a connection: what `basic.consume` on a stream must
//! have (checked with the channel's prefetch, `stream::offset`), and
//! nacks and rejects of stream deliveries, which RabbitMQ 3.10 refuses by
//! closing the connection (540). Acks only give the consumer its credit
//! back, as for any prefetch-limited consumer.

use ringmq_protocol::message as pm;
use ringmq_protocol::{ErrorCode, Refusal};

use super::Session;
use crate::exchange::QueueId;
use crate::meta::QueueDef;
use crate::stream::args::is_stream;
use crate::stream::offset::{check_consume, ConsumeAsk, Start};

impl Session {
    /// Checks a `basic.consume` on `def`: where a stream consumer starts,
    /// `None` for any other queue.
    pub(super) fn stream_start(
        &self,
        def: &QueueDef,
        vhost: &str,
        c: &pm::Consume,
    ) -> Result<Option<Start>, Refusal> {
        let (prefetch, shared_limit) = self
            .st
            .borrow()
            .channels
            .get(&c.channel)
            .map_or((0, false), |chan| (chan.prefetch, chan.limiter.is_some()));
        let ask = ConsumeAsk {
            args: &c.arguments,
            no_ack: c.no_ack,
            prefetch,
            shared_limit,
            now: crate::shard::now_ms(),
        };
        check_consume(def, vhost, ask)
    }

    /// Refuses a nack or reject (`tag`, or every tag up to it) that covers
    /// a delivery from a stream, before anything is settled.
    pub(super) fn refuse_stream_reject(
        &self,
        ch: u16,
        tag: u64,
        multiple: bool,
    ) -> Result<(), Refusal> {
        let st = self.st.borrow();
        let Some(channel) = st.channels.get(&ch) else {
            return Ok(());
        };
        let queues: Vec<QueueId> = if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            let mut ids: Vec<QueueId> = channel
                .unacked
                .iter()
                .take_while(|u| u.tag <= upto)
                .map(|u| u.queue.id)
                .collect();
            ids.sort_unstable_by_key(|q| q.0);
            ids.dedup();
            ids
        } else {
            let at = channel.unacked.binary_search_by_key(&tag, |u| u.tag);
            at.ok()
                .and_then(|at| channel.unacked.get(at))
                .map(|u| u.queue.id)
                .into_iter()
                .collect()
        };
        let meta = self.shard.meta.borrow();
        let Some(vhost) = meta.vhost(&st.vhost) else {
            return Ok(());
        };
        let stream = queues
            .into_iter()
            .filter_map(|id| vhost.queue_by_id(id))
            .find(|d| is_stream(&d.arguments));
        match stream {
            Some(d) => Err(Refusal::new(
                ErrorCode::NotImplemented,
                format_args!(
                    "basic.nack and basic.reject not supported by stream queues queue '{}' in vhost '{}'",
                    d.name, st.vhost
                ),
            )),
            None => Ok(()),
        }
    }
}
