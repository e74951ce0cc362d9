//! Owned messages: every frame kind as a Rust value, built from bodies that
//! passed FlatBuffers verification ([`crate::verify`]), never the unchecked
//! path. One file per AMQP class; each type reads itself from its verified
//! table (`from_table`) and writes itself into a builder (`to_table`).
//!
//! Hot paths that must not allocate per message (the broker reading
//! publishes, a client reading deliveries) use [`crate::verify::view`] and
//! the generated `wire` tables directly; everything else uses [`Message`].

/// `get!(v, field)` reads `field` from a table view; `get!(v, f @ w)` reads
/// the table field `w` for the struct field `f`.
macro_rules! get {
    ($v:ident, $field:ident @ $wire:ident) => {
        $v.$wire()
    };
    ($v:ident, $field:ident) => {
        $v.$field()
    };
}

/// `set!(args, field = value)` sets an `…Args` field; `set!(args, f @ w =
/// value)` sets the table field `w` for the struct field `f`.
macro_rules! set {
    ($args:ident, $field:ident @ $wire:ident = $v:expr) => {
        $args.$wire = $v
    };
    ($args:ident, $field:ident = $v:expr) => {
        $args.$field = $v
    };
}

/// Reads one field with the named conversion.
macro_rules! decode_field {
    (copy, $body:ident, $e:expr) => {
        $e
    };
    (string, $body:ident, $e:expr) => {
        $e.map(str::to_owned).unwrap_or_default()
    };
    (opt_string, $body:ident, $e:expr) => {
        $e.map(str::to_owned).unwrap_or_default()
    };
    (shared_string, $body:ident, $e:expr) => {
        $e.map(str::to_owned).unwrap_or_default()
    };
    (maybe_string, $body:ident, $e:expr) => {
        $e.map(str::to_owned)
    };
    (table, $body:ident, $e:expr) => {
        $crate::field::decode_table($e)?
    };
    (props, $body:ident, $e:expr) => {
        $crate::properties::Properties::decode($e)?
    };
    (body, $body:ident, $e:expr) => {
        $crate::verify::body_slice($body, $e)
    };
    (tables($t:ident), $body:ident, $e:expr) => {
        $e.iter()
            .flatten()
            .map(|t| $t::from_table(t, $body))
            .collect::<Result<Vec<_>, _>>()?
    };
    (structs($t:ident), $body:ident, $e:expr) => {
        $e.iter()
            .flatten()
            .map($t::from_wire)
            .collect::<Result<Vec<_>, _>>()?
    };
}

/// Writes one field with the named conversion.
macro_rules! encode_field {
    (copy, $fbb:ident, $v:expr) => {
        $v
    };
    (string, $fbb:ident, $v:expr) => {
        Some($fbb.create_string(&$v))
    };
    (opt_string, $fbb:ident, $v:expr) => {
        (!$v.is_empty()).then(|| $fbb.create_string(&$v))
    };
    (shared_string, $fbb:ident, $v:expr) => {
        Some($fbb.create_shared_string(&$v))
    };
    (maybe_string, $fbb:ident, $v:expr) => {
        $v.as_deref().map(|s| $fbb.create_string(s))
    };
    (table, $fbb:ident, $v:expr) => {
        $crate::field::encode_table($fbb, &$v)
    };
    (props, $fbb:ident, $v:expr) => {
        $v.encode($fbb)
    };
    (body, $fbb:ident, $v:expr) => {
        Some($fbb.create_vector(&$v[..]))
    };
    (tables($t:ident), $fbb:ident, $v:expr) => {{
        let items: Vec<_> = $v.iter().map(|t| t.to_table($fbb)).collect();
        Some($fbb.create_vector(&items))
    }};
    (structs($t:ident), $fbb:ident, $v:expr) => {{
        let items: Vec<_> = $v.iter().map($t::to_wire).collect();
        Some($fbb.create_vector(&items))
    }};
}

/// Implements `from_table` (the owned value from a verified table) and
/// `to_table` (the table written into a builder) for a struct whose fields
/// map one to one onto a FlatBuffers table. Each field names its
/// conversion: `copy` (scalars), `string` (always written), `opt_string`
/// (absent when empty), `shared_string` (deduplicated in the buffer),
/// `maybe_string` (`Option<String>`), `table` (field tables), `props`
/// (properties), `body` (bytes; a zero-copy slice of the frame when
/// read), `tables(T)` (a vector of `T` tables) and `structs(T)` (a vector
/// of `T` structs, converted by `T::from_wire` and `T::to_wire`).
/// `field @ name` maps a field whose table name differs.
macro_rules! table {
    ($ty:ident = $wire:ident / $args:ident {
        $($field:ident $(@ $wname:ident)? : $conv:ident $(($elem:ident))?),* $(,)?
    }) => {
        impl $ty {
            /// The value of a verified table; `body` is the frame body the
            /// table lives in (byte fields become slices of it).
            ///
            /// # Errors
            /// A field table or property that does not decode.
            #[allow(unused_variables)]
            pub fn from_table(
                v: $crate::wire::$wire<'_>,
                body: &::bytes::Bytes,
            ) -> Result<$ty, $crate::error::DecodeError> {
                Ok($ty {
                    $($field: decode_field!($conv $(($elem))?, body, get!(v, $field $(@ $wname)?)),)*
                })
            }

            /// Writes the value as a table.
            pub fn to_table<'b>(
                &self,
                fbb: &mut ::flatbuffers::FlatBufferBuilder<'b>,
            ) -> ::flatbuffers::WIPOffset<$crate::wire::$wire<'b>> {
                let mut args = $crate::wire::$args::default();
                $(set!(args, $field $(@ $wname)? = encode_field!($conv $(($elem))?, fbb, self.$field));)*
                $crate::wire::$wire::create(fbb, &args)
            }
        }
    };
}

mod basic;
mod channel;
mod confirm;
mod connection;
mod deliver;
mod dense;
mod encoder;
mod exchange;
mod kinds;
mod publish;
mod queue;

pub use basic::{Consume, ConsumerTag, Get, GetOk, Qos, Recover, Settle, SettleBatch, SettleOp};
pub use channel::{ChannelClose, ChannelFlow};
pub use confirm::{Confirm, ConfirmBatch};
pub use connection::{Close, Hello, HelloOk, PROTOCOL_VERSION};
pub use deliver::{DeliverBatch, Delivery, Return, ReturnBatch};
pub use dense::{encode_deliveries, OutDelivery};
pub use encoder::Encoder;
pub use exchange::{Bind, ExchangeDeclare, ExchangeDelete};
pub use kinds::Message;
pub use publish::{Publish, PublishBatch};
pub use queue::{MessageCount, QueueDeclare, QueueDeclareOk, QueueDelete, QueuePurge};
