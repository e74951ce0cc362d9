//! Publishing: one `Publish` per message, batched per channel, in either
//! the per-message form or the dense form (one exchange, routing key and
//! set of properties for a run of bodies).

use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, WIPOffset};

use crate::error::DecodeError;
use crate::properties::Properties;
use crate::verify::{both_forms, dense_bodies};
use crate::wire;

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Publish {
    /// Exchange name; "" for the default exchange.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Return the message if no queue takes it.
    pub mandatory: bool,
    /// Refused (AMQP immediate is not supported, as in RabbitMQ 3).
    pub immediate: bool,
    /// Properties.
    pub properties: Properties,
    /// Body.
    pub body: Bytes,
}

table!(
    Publish = Publish
        / PublishArgs {
            exchange: shared_string,
            routing_key: shared_string,
            mandatory: copy,
            immediate: copy,
            properties: props,
            body: body,
        }
);

/// Several publishes on one channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PublishBatch {
    /// The channel.
    pub channel: u16,
    /// In publish order; confirm sequence numbers follow this order.
    pub messages: Vec<Publish>,
}

impl PublishBatch {
    /// The batch of a verified table: the dense run (if any), then the
    /// per-message entries.
    ///
    /// # Errors
    /// Both forms set, sizes that do not add up, undecodable properties.
    pub fn from_table(
        v: wire::PublishBatch<'_>,
        body: &Bytes,
    ) -> Result<PublishBatch, DecodeError> {
        let mut messages = Vec::new();
        if let Some(dense) = v.dense() {
            if v.messages().is_some_and(|m| !m.is_empty()) {
                return Err(both_forms("PublishBatch"));
            }
            let properties = Properties::decode(dense.properties())?;
            let exchange = dense.exchange().unwrap_or_default();
            let routing_key = dense.routing_key().unwrap_or_default();
            for b in dense_bodies("DensePublish", dense.sizes(), dense.bodies())? {
                messages.push(Publish {
                    exchange: exchange.to_owned(),
                    routing_key: routing_key.to_owned(),
                    mandatory: dense.mandatory(),
                    immediate: false,
                    properties: properties.clone(),
                    body: body.slice_ref(b),
                });
            }
        }
        for p in v.messages().iter().flatten() {
            messages.push(Publish::from_table(p, body)?);
        }
        Ok(PublishBatch {
            channel: v.channel(),
            messages,
        })
    }

    /// Writes the batch as a table, in the dense form when every message
    /// shares exchange, routing key, flags and properties.
    pub fn to_table<'b>(
        &self,
        fbb: &mut FlatBufferBuilder<'b>,
    ) -> WIPOffset<wire::PublishBatch<'b>> {
        let (messages, dense) = if is_dense(&self.messages) {
            (None, Some(encode_dense(fbb, &self.messages)))
        } else {
            let items: Vec<_> = self.messages.iter().map(|m| m.to_table(fbb)).collect();
            (Some(fbb.create_vector(&items)), None)
        };
        wire::PublishBatch::create(
            fbb,
            &wire::PublishBatchArgs {
                channel: self.channel,
                messages,
                dense,
            },
        )
    }
}

/// True when a batch can use the dense form: two or more messages sharing
/// exchange, routing key, flags and properties.
fn is_dense(messages: &[Publish]) -> bool {
    let Some(first) = messages.first() else {
        return false;
    };
    messages.len() >= 2
        && !first.immediate
        && messages[1..].iter().all(|m| {
            m.exchange == first.exchange
                && m.routing_key == first.routing_key
                && m.mandatory == first.mandatory
                && !m.immediate
                && m.properties == first.properties
        })
}

/// Zeros the bodies vector of a dense batch is first made of; the
/// bodies are then copied over them in place.
static ZEROS: [u8; 256 * 1024] = [0; 256 * 1024];

/// The bodies of `messages`, concatenated, as one vector: copied once,
/// straight into the builder. (The builder has no call that reserves a
/// vector without filling it, so it is made of zeros, which cost no
/// memory reads from a cold buffer, and overwritten.)
fn joined_bodies<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    messages: &[Publish],
) -> WIPOffset<flatbuffers::Vector<'b, u8>> {
    let total: usize = messages.iter().map(|m| m.body.len()).sum();
    let Some(zeros) = ZEROS.get(..total) else {
        let mut joined = Vec::with_capacity(total);
        for m in messages {
            joined.extend_from_slice(&m.body);
        }
        return fbb.create_vector(&joined);
    };
    let v = fbb.create_vector(zeros);
    // The builder's head is now the vector's length field, its bytes
    // follow. `mut_finished_buffer` is documented for finished buffers
    // but (flatbuffers 25.12.19, pinned exactly in Cargo.toml) does not
    // check; `dense_publish_batches_round_trip` guards the layout.
    let (buf, head) = fbb.mut_finished_buffer();
    debug_assert_eq!(buf[head..head + 4], (total as u32).to_le_bytes());
    let mut at = head + 4;
    for m in messages {
        buf[at..at + m.body.len()].copy_from_slice(&m.body);
        at += m.body.len();
    }
    v
}

/// Writes the dense form of a batch for which [`is_dense`] holds.
fn encode_dense<'b>(
    fbb: &mut FlatBufferBuilder<'b>,
    messages: &[Publish],
) -> WIPOffset<wire::DensePublish<'b>> {
    let first = &messages[0];
    let exchange = Some(fbb.create_string(&first.exchange));
    let routing_key = Some(fbb.create_string(&first.routing_key));
    let properties = first.properties.encode(fbb);
    let sizes: Vec<u32> = messages.iter().map(|m| m.body.len() as u32).collect();
    let sizes = Some(fbb.create_vector(&sizes));
    let bodies = Some(joined_bodies(fbb, messages));
    wire::DensePublish::create(
        fbb,
        &wire::DensePublishArgs {
            exchange,
            routing_key,
            mandatory: first.mandatory,
            properties,
            sizes,
            bodies,
        },
    )
}
