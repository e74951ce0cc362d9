//! Deliveries and returns: what the broker sends a consumer or a publisher,
//! batched per channel, and the dense encoder the broker uses for its
//! deliveries (runs of one consumer with consecutive tags sharing exchange,
//! routing key and properties, bodies concatenated).

use bytes::{Bytes, BytesMut};
use flatbuffers::{FlatBufferBuilder, WIPOffset};

use super::Encoder;
use crate::error::DecodeError;
use crate::frame::Kind;
use crate::properties::Properties;
use crate::verify::{both_forms, dense_bodies};
use crate::wire;

/// One delivery to a consumer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Delivery {
    /// The consumer.
    pub consumer_tag: String,
    /// Channel-scoped tag used to settle the delivery.
    pub delivery_tag: u64,
    /// The message was delivered before.
    pub redelivered: bool,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// Properties.
    pub properties: Properties,
    /// Body.
    pub body: Bytes,
}

table!(
    Delivery = Delivery
        / DeliveryArgs {
            consumer_tag: string,
            delivery_tag: copy,
            redelivered: copy,
            exchange: string,
            routing_key: string,
            properties: props,
            body: body,
        }
);

/// Several deliveries on one channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeliverBatch {
    /// The channel.
    pub channel: u16,
    /// In delivery-tag order.
    pub deliveries: Vec<Delivery>,
}

impl DeliverBatch {
    /// The batch of a verified table: the dense runs, then the
    /// per-delivery entries.
    ///
    /// # Errors
    /// Both forms set, sizes that do not add up, undecodable properties.
    pub fn from_table(
        v: wire::DeliverBatch<'_>,
        body: &Bytes,
    ) -> Result<DeliverBatch, DecodeError> {
        if v.dense().is_some_and(|r| !r.is_empty()) && v.deliveries().is_some_and(|r| !r.is_empty())
        {
            return Err(both_forms("DeliverBatch"));
        }
        let mut deliveries = Vec::new();
        for run in v.dense().iter().flatten() {
            let properties = Properties::decode(run.properties())?;
            let redelivered = run.redelivered();
            let bodies = dense_bodies("DenseDelivery", run.sizes(), run.bodies())?;
            for (i, b) in bodies.enumerate() {
                deliveries.push(Delivery {
                    consumer_tag: run.consumer_tag().unwrap_or_default().to_owned(),
                    delivery_tag: run.first_tag() + i as u64,
                    redelivered: redelivered.is_some_and(|r| i < r.len() && r.get(i)),
                    exchange: run.exchange().unwrap_or_default().to_owned(),
                    routing_key: run.routing_key().unwrap_or_default().to_owned(),
                    properties: properties.clone(),
                    body: body.slice_ref(b),
                });
            }
        }
        for d in v.deliveries().iter().flatten() {
            deliveries.push(Delivery::from_table(d, body)?);
        }
        Ok(DeliverBatch {
            channel: v.channel(),
            deliveries,
        })
    }

    /// Writes the batch as a table (per-delivery form).
    pub fn to_table<'b>(
        &self,
        fbb: &mut FlatBufferBuilder<'b>,
    ) -> WIPOffset<wire::DeliverBatch<'b>> {
        let items: Vec<_> = self.deliveries.iter().map(|d| d.to_table(fbb)).collect();
        let deliveries = Some(fbb.create_vector(&items));
        wire::DeliverBatch::create(
            fbb,
            &wire::DeliverBatchArgs {
                channel: self.channel,
                deliveries,
                dense: None,
            },
        )
    }
}

/// A message returned to its publisher.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Return {
    /// Why (312 NO_ROUTE).
    pub reply_code: u16,
    /// Human-readable reason.
    pub reply_text: String,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// Properties.
    pub properties: Properties,
    /// Body.
    pub body: Bytes,
}

table!(
    Return = Return
        / ReturnArgs {
            reply_code: copy,
            reply_text: string,
            exchange: string,
            routing_key: string,
            properties: props,
            body: body,
        }
);

/// Several returns on one channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReturnBatch {
    /// The channel.
    pub channel: u16,
    /// In publish order.
    pub returns: Vec<Return>,
}

impl ReturnBatch {
    /// The batch of a verified table.
    ///
    /// # Errors
    /// Undecodable properties.
    pub fn from_table(v: wire::ReturnBatch<'_>, body: &Bytes) -> Result<ReturnBatch, DecodeError> {
        let mut returns = Vec::new();
        for r in v.returns().iter().flatten() {
            returns.push(Return::from_table(r, body)?);
        }
        Ok(ReturnBatch {
            channel: v.channel(),
            returns,
        })
    }

    /// Writes the batch as a table.
    pub fn to_table<'b>(
        &self,
        fbb: &mut FlatBufferBuilder<'b>,
    ) -> WIPOffset<wire::ReturnBatch<'b>> {
        let items: Vec<_> = self.returns.iter().map(|r| r.to_table(fbb)).collect();
        let returns = Some(fbb.create_vector(&items));
        wire::ReturnBatch::create(
            fbb,
            &wire::ReturnBatchArgs {
                channel: self.channel,
                returns,
            },
        )
    }
}

/// A delivery waiting to be written, as its sender holds it: the broker
/// keeps its own message type and lends the fields to
/// [`encode_deliveries`].
pub trait OutDelivery {
    /// The consumer.
    fn consumer_tag(&self) -> &str;
    /// Channel-scoped tag.
    fn delivery_tag(&self) -> u64;
    /// Delivered before.
    fn redelivered(&self) -> bool;
    /// Exchange it was published to.
    fn exchange(&self) -> &str;
    /// Routing key it was published with.
    fn routing_key(&self) -> &str;
    /// Properties, if any is set.
    fn properties(&self) -> Option<&Properties>;
    /// Body.
    fn body(&self) -> &[u8];

    /// True when `next` can follow `self` in one dense run: the next
    /// delivery tag, the same consumer, exchange, routing key and
    /// properties. Implementations may compare by identity instead, which
    /// is cheaper; a false negative only starts a new run.
    fn continues_run(&self, next: &Self) -> bool {
        next.delivery_tag() == self.delivery_tag() + 1
            && next.consumer_tag() == self.consumer_tag()
            && next.exchange() == self.exchange()
            && next.routing_key() == self.routing_key()
            && next.properties() == self.properties()
    }
}

/// Encodes deliveries of channel `ch` as `DeliverBatch` frames of about
/// `frame_bytes` each, made of dense runs (see [`OutDelivery::continues_run`]).
pub fn encode_deliveries<D: OutDelivery>(
    enc: &mut Encoder,
    out: &mut BytesMut,
    ch: u16,
    pending: &[D],
    frame_bytes: usize,
) {
    let mut scratch = Scratch::default();
    let mut start = 0;
    while start < pending.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < pending.len() && (end == start || bytes < frame_bytes) {
            bytes += pending[end].body().len() + 16;
            end += 1;
        }
        let fbb = enc.builder();
        let mut dense = Vec::new();
        // Strings written for the previous run of this frame.
        let mut last = None;
        let mut i = start;
        while i < end {
            let mut j = i + 1;
            while j < end && pending[j - 1].continues_run(&pending[j]) {
                j += 1;
            }
            dense.push(scratch.encode_run(fbb, &pending[i..j], &mut last));
            i = j;
        }
        let dense = fbb.create_vector(&dense);
        let root = wire::DeliverBatch::create(
            fbb,
            &wire::DeliverBatchArgs {
                channel: ch,
                deliveries: None,
                dense: Some(dense),
            },
        );
        fbb.finish_minimal(root);
        enc.finish_frame(out, Kind::Deliver, 0);
        start = end;
    }
}

/// A string already written into the builder.
type StrOff = WIPOffset<&'static str>;

/// The consumer tag, exchange and routing key of a run and where they were
/// written, so that the next run with the same ones reuses them.
type Written<'a> = Option<(&'a str, &'a str, &'a str, [StrOff; 3])>;

/// Buffers for [`encode_deliveries`], reused across runs.
#[derive(Default)]
struct Scratch {
    sizes: Vec<u32>,
    joined: Vec<u8>,
    flags: Vec<bool>,
}

impl Scratch {
    /// Writes one dense run.
    fn encode_run<'a, D: OutDelivery>(
        &mut self,
        fbb: &mut FlatBufferBuilder<'static>,
        run: &'a [D],
        last: &mut Written<'a>,
    ) -> WIPOffset<wire::DenseDelivery<'static>> {
        let first = &run[0];
        let (tag, x, rk) = (first.consumer_tag(), first.exchange(), first.routing_key());
        let [t, e, r] = match *last {
            Some((lt, lx, lr, offs)) if lt == tag && lx == x && lr == rk => offs,
            _ => {
                let offs = [
                    fbb.create_string(tag),
                    fbb.create_string(x),
                    fbb.create_string(rk),
                ];
                *last = Some((tag, x, rk, offs));
                offs
            }
        };
        self.sizes.clear();
        self.joined.clear();
        self.flags.clear();
        let mut any_redelivered = false;
        for d in run {
            self.sizes.push(d.body().len() as u32);
            self.joined.extend_from_slice(d.body());
            self.flags.push(d.redelivered());
            any_redelivered |= d.redelivered();
        }
        let properties = first.properties().and_then(|p| p.encode(fbb));
        let redelivered = any_redelivered.then(|| fbb.create_vector(&self.flags));
        let sizes = fbb.create_vector(&self.sizes);
        let bodies = fbb.create_vector(&self.joined);
        wire::DenseDelivery::create(
            fbb,
            &wire::DenseDeliveryArgs {
                consumer_tag: Some(t),
                first_tag: first.delivery_tag(),
                exchange: Some(e),
                routing_key: Some(r),
                properties,
                redelivered,
                sizes: Some(sizes),
                bodies: Some(bodies),
            },
        )
    }
}
