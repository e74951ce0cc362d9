//! Queue class: declare, purge, delete and their answers.

use crate::field::FieldTable;

/// Declare a queue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDeclare {
    /// The channel.
    pub channel: u16,
    /// Name; empty for a server-named queue.
    pub queue: String,
    /// Only check that it exists.
    pub passive: bool,
    /// Survives a broker restart.
    pub durable: bool,
    /// Owned by this connection and deleted with it.
    pub exclusive: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// `x-message-ttl`, `x-max-length`, …
    pub arguments: FieldTable,
}

table!(
    QueueDeclare = QueueDeclare
        / QueueDeclareArgs {
            channel: copy,
            queue: string,
            passive: copy,
            durable: copy,
            exclusive: copy,
            auto_delete: copy,
            arguments: table,
        }
);

/// Answer to [`QueueDeclare`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDeclareOk {
    /// The channel.
    pub channel: u16,
    /// The queue's name (server-chosen for an empty request name).
    pub queue: String,
    /// Ready messages.
    pub message_count: u32,
    /// Active consumers.
    pub consumer_count: u32,
}

table!(
    QueueDeclareOk = QueueDeclareOk
        / QueueDeclareOkArgs {
            channel: copy,
            queue: string,
            message_count: copy,
            consumer_count: copy,
        }
);

/// Purge a queue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueuePurge {
    /// The channel.
    pub channel: u16,
    /// Queue name.
    pub queue: String,
}

table!(
    QueuePurge = QueuePurge
        / QueuePurgeArgs {
            channel: copy,
            queue: string,
        }
);

/// Delete a queue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDelete {
    /// The channel.
    pub channel: u16,
    /// Queue name.
    pub queue: String,
    /// Refuse when the queue has consumers.
    pub if_unused: bool,
    /// Refuse when the queue has messages.
    pub if_empty: bool,
}

table!(
    QueueDelete = QueueDelete
        / QueueDeleteArgs {
            channel: copy,
            queue: string,
            if_unused: copy,
            if_empty: copy,
        }
);

/// A count of messages (purge-ok, delete-ok).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MessageCount {
    /// The channel.
    pub channel: u16,
    /// The count.
    pub message_count: u32,
}

table!(
    MessageCount = MessageCount
        / MessageCountArgs {
            channel: copy,
            message_count: copy,
        }
);
