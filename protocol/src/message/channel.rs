//! Channel class: `ChannelClose` and `ChannelFlow` (open and close-ok carry
//! only the channel number).

/// Channel close, either direction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelClose {
    /// The channel.
    pub channel: u16,
    /// [`crate::ErrorCode`] number; 200 for a normal close.
    pub code: u16,
    /// Human-readable reason.
    pub text: String,
    /// Kind of the frame that caused it, 0 if none.
    pub failed_kind: u16,
}

table!(
    ChannelClose = ChannelClose
        / ChannelCloseArgs {
            channel: copy,
            code: copy,
            text: opt_string,
            failed_kind: copy,
        }
);

/// Pause or resume deliveries on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChannelFlow {
    /// The channel.
    pub channel: u16,
    /// false pauses deliveries.
    pub active: bool,
}

table!(
    ChannelFlow = ChannelFlow
        / ChannelFlowArgs {
            channel: copy,
            active: copy,
        }
);
