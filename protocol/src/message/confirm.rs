//! Confirm class: publisher confirms, batched per channel.

use bytes::Bytes;

use crate::error::DecodeError;
use crate::wire;

/// One publisher confirm.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Confirm {
    /// Publish sequence number (1 for the first publish after
    /// confirm-select).
    pub delivery_tag: u64,
    /// Covers every earlier unconfirmed sequence number too.
    pub multiple: bool,
    /// The broker could not take the message.
    pub nack: bool,
}

/// Several confirms on one channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfirmBatch {
    /// The channel.
    pub channel: u16,
    /// In order.
    pub items: Vec<Confirm>,
}

impl ConfirmBatch {
    /// The batch of a verified table.
    ///
    /// # Errors
    /// None today; the signature matches the other bodies.
    pub fn from_table(
        v: wire::ConfirmBatch<'_>,
        _body: &Bytes,
    ) -> Result<ConfirmBatch, DecodeError> {
        let items = v
            .items()
            .iter()
            .flatten()
            .map(|c| Confirm {
                delivery_tag: c.delivery_tag(),
                multiple: c.multiple(),
                nack: c.nack(),
            })
            .collect();
        Ok(ConfirmBatch {
            channel: v.channel(),
            items,
        })
    }

    /// Writes the batch as a table.
    pub fn to_table<'b>(
        &self,
        fbb: &mut flatbuffers::FlatBufferBuilder<'b>,
    ) -> flatbuffers::WIPOffset<wire::ConfirmBatch<'b>> {
        let items: Vec<wire::Confirm> = self
            .items
            .iter()
            .map(|c| wire::Confirm::new(c.delivery_tag, c.multiple, c.nack))
            .collect();
        let items = Some(fbb.create_vector(&items));
        wire::ConfirmBatch::create(
            fbb,
            &wire::ConfirmBatchArgs {
                channel: self.channel,
                items,
            },
        )
    }
}
