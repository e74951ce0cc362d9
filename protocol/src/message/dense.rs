//! The dense delivery encoder the broker uses: runs of one consumer with
//! consecutive tags sharing exchange, routing key and properties, bodies
//! concatenated, into `DeliverBatch` frames of a target size.

use bytes::BytesMut;
use flatbuffers::{FlatBufferBuilder, WIPOffset};

use super::encoder::Encoder;
use crate::frame::Kind;
use crate::properties::Properties;
use crate::wire;

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
