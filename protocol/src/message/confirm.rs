//! Confirm class: publisher confirms, batched per channel.

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

table!(
    ConfirmBatch = ConfirmBatch
        / ConfirmBatchArgs {
            channel: copy,
            items: structs(Confirm),
        }
);

impl Confirm {
    /// The confirm of a wire struct.
    ///
    /// # Errors
    /// None: every wire confirm is valid (the signature matches
    /// [`crate::message::Settle::from_wire`]).
    pub fn from_wire(c: &wire::Confirm) -> Result<Confirm, DecodeError> {
        Ok(Confirm {
            delivery_tag: c.delivery_tag(),
            multiple: c.multiple(),
            nack: c.nack(),
        })
    }

    /// The wire struct.
    pub fn to_wire(&self) -> wire::Confirm {
        wire::Confirm::new(self.delivery_tag, self.multiple, self.nack)
    }
}
