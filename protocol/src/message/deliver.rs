//! Deliveries and returns: what the broker sends a consumer or a publisher,
//! batched per channel.

use bytes::Bytes;
use flatbuffers::{FlatBufferBuilder, WIPOffset};

use crate::error::DecodeError;
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
                    delivery_tag: run.first_tag().wrapping_add(i as u64),
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

table!(
    ReturnBatch = ReturnBatch
        / ReturnBatchArgs {
            channel: copy,
            returns: tables(Return),
        }
);
