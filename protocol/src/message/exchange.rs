//! Exchange class: declare, delete, and the bind/unbind body shared with
//! queue bindings.

use crate::field::FieldTable;

/// Declare an exchange.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExchangeDeclare {
    /// The channel.
    pub channel: u16,
    /// Exchange name.
    pub exchange: String,
    /// "direct", "fanout", "topic" or "headers".
    pub kind: String,
    /// Only check that it exists.
    pub passive: bool,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Cannot be published to directly.
    pub internal: bool,
    /// e.g. `alternate-exchange`.
    pub arguments: FieldTable,
}

table!(ExchangeDeclare = ExchangeDeclare / ExchangeDeclareArgs {
    channel: copy,
    exchange: string,
    kind @ type_: opt_string,
    passive: copy,
    durable: copy,
    auto_delete: copy,
    internal: copy,
    arguments: table,
});

/// Delete an exchange.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExchangeDelete {
    /// The channel.
    pub channel: u16,
    /// Exchange name.
    pub exchange: String,
    /// Refuse when the exchange has bindings.
    pub if_unused: bool,
}

table!(
    ExchangeDelete = ExchangeDelete
        / ExchangeDeleteArgs {
            channel: copy,
            exchange: string,
            if_unused: copy,
        }
);

/// Bind or unbind (queue or exchange destination).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bind {
    /// The channel.
    pub channel: u16,
    /// Queue or exchange receiving the messages.
    pub destination: String,
    /// Exchange the messages come from.
    pub source: String,
    /// Binding key.
    pub routing_key: String,
    /// e.g. `x-match` for headers exchanges.
    pub arguments: FieldTable,
}

table!(
    Bind = Bind
        / BindArgs {
            channel: copy,
            destination: string,
            source: string,
            routing_key: string,
            arguments: table,
        }
);
