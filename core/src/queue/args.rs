//! Queue arguments (`x-message-ttl`, `x-max-length`, …): parsing,
//! validation and the equivalence check of a redeclare.

use ringmq_protocol::{FieldTable, FieldValue};

use ringmq_protocol::{ErrorCode, Refusal};

/// What happens when a queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Overflow {
    /// Drop (dead-letter) the oldest messages.
    #[default]
    DropHead,
    /// Refuse new messages (nack them to confirming publishers).
    RejectPublish,
    /// Refuse new messages and dead-letter them.
    RejectPublishDlx,
}

/// `x-queue-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum QueueKind {
    /// A classic queue (the default).
    #[default]
    Classic,
    /// A quorum queue: always durable, with a delivery limit and
    /// `x-delivery-count`. On one node it is not replicated.
    Quorum,
}

impl QueueKind {
    /// RabbitMQ's module name for the type, used in error texts.
    fn module(self) -> &'static str {
        match self {
            QueueKind::Classic => "rabbit_classic_queue",
            QueueKind::Quorum => "rabbit_quorum_queue",
        }
    }

    /// Known arguments this type refuses (RabbitMQ 3.10's lists).
    fn refused_args(self) -> &'static [&'static str] {
        match self {
            QueueKind::Classic => &[
                "x-delivery-limit",
                "x-quorum-initial-group-size",
                "x-max-age",
                "x-stream-max-segment-size-bytes",
                "x-initial-cluster-size",
                "x-queue-leader-locator",
                "x-max-in-memory-length",
                "x-max-in-memory-bytes",
                "x-dead-letter-strategy",
            ],
            QueueKind::Quorum => &[
                "x-max-priority",
                "x-queue-mode",
                "x-queue-master-locator",
                "x-max-age",
                "x-stream-max-segment-size-bytes",
                "x-initial-cluster-size",
            ],
        }
    }
}

/// The arguments that change a queue's behaviour, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct QueueArgs {
    /// `x-message-ttl`, milliseconds.
    pub message_ttl: Option<u64>,
    /// `x-expires`: delete the queue after this long unused, milliseconds.
    pub expires: Option<u64>,
    /// `x-max-length`, messages.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`, body bytes.
    pub max_length_bytes: Option<u64>,
    /// `x-overflow`.
    pub overflow: Overflow,
    /// `x-dead-letter-exchange`.
    pub dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub dead_letter_routing_key: Option<String>,
    /// `x-max-priority`.
    pub max_priority: Option<u8>,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
    /// `x-queue-type`.
    #[serde(default)]
    pub kind: QueueKind,
    /// `x-delivery-limit` (quorum queues): a message returned more often
    /// is dead-lettered (reason `delivery_limit`) or dropped.
    #[serde(default)]
    pub delivery_limit: Option<u64>,
}

/// Arguments compared when a queue is redeclared (as RabbitMQ does).
pub const EQUIVALENCE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// The largest per-queue or per-message TTL accepted (as RabbitMQ: about
/// 49 days, 2^32 - 1 ms).
pub const MAX_TTL_MS: u64 = u32::MAX as u64;

impl QueueArgs {
    /// Parses and validates declare arguments.
    ///
    /// # Errors
    /// 406 PRECONDITION_FAILED naming the bad argument.
    pub fn parse(
        args: &FieldTable,
        queue: &str,
        vhost: &str,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
    ) -> Result<QueueArgs, Refusal> {
        if crate::stream::args::is_stream(args) {
            // A stream keeps its own arguments (`stream::args`); none of
            // these apply to it.
            let how = crate::stream::args::Declare {
                durable,
                exclusive,
                auto_delete,
            };
            crate::stream::args::StreamArgs::parse(args, queue, vhost, how)?;
            return Ok(QueueArgs::default());
        }
        let r = ArgReader { args, queue, vhost };
        let kind = r.kind(durable, exclusive, auto_delete)?;
        let overflow = match r.string("x-overflow")?.as_deref() {
            None | Some("drop-head") => Overflow::DropHead,
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            Some(other) => return Err(r.unacceptable("x-overflow", other)),
        };
        let dead_letter_exchange = r.string("x-dead-letter-exchange")?;
        let dead_letter_routing_key = r.string("x-dead-letter-routing-key")?;
        if dead_letter_routing_key.is_some() && dead_letter_exchange.is_none() {
            return Err(r.bad(
                "x-dead-letter-routing-key",
                "Key x-dead-letter-routing-key should be specified with x-dead-letter-exchange",
            ));
        }
        let single_active_consumer = r.boolean("x-single-active-consumer")?.unwrap_or(false);
        match r.string("x-queue-mode")?.as_deref() {
            None | Some("default") | Some("lazy") => {}
            Some(other) => return Err(r.unacceptable("x-queue-mode", other)),
        }
        Ok(QueueArgs {
            message_ttl: r.int("x-message-ttl", 0, MAX_TTL_MS)?,
            expires: r.int("x-expires", 1, MAX_TTL_MS)?,
            max_length: r.int("x-max-length", 0, u64::MAX)?,
            max_length_bytes: r.int("x-max-length-bytes", 0, u64::MAX)?,
            overflow,
            dead_letter_exchange,
            dead_letter_routing_key,
            max_priority: r.int("x-max-priority", 0, 255)?.map(|p| p as u8),
            single_active_consumer,
            kind,
            delivery_limit: r.int("x-delivery-limit", 0, u64::MAX)?,
        })
    }
}

/// Reads typed declare arguments, refusing them with RabbitMQ's texts.
struct ArgReader<'a> {
    args: &'a FieldTable,
    queue: &'a str,
    vhost: &'a str,
}

impl ArgReader<'_> {
    /// The queue type, and what it refuses in RabbitMQ's order: its
    /// invalid arguments, then auto-delete, exclusive, non-durable.
    fn kind(
        &self,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
    ) -> Result<QueueKind, Refusal> {
        let kind = match self.string("x-queue-type")?.as_deref() {
            None | Some("classic") => QueueKind::Classic,
            Some("quorum") => QueueKind::Quorum,
            Some(other) => {
                return Err(self.bad(
                    "x-queue-type",
                    format_args!("\"unsupported queue type '{other}'\""),
                ))
            }
        };
        if let Some(arg) = kind
            .refused_args()
            .iter()
            .find(|a| self.args.get(a).is_some())
        {
            return Err(Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!(
                    "invalid arg '{arg}' for queue '{}' in vhost '{}' of queue type {}",
                    self.queue,
                    self.vhost,
                    kind.module()
                ),
            ));
        }
        if kind == QueueKind::Quorum {
            let property = [
                (auto_delete, "auto-delete"),
                (exclusive, "exclusive-owner"),
                (!durable, "non-durable"),
            ]
            .into_iter()
            .find_map(|(bad, name)| bad.then_some(name));
            if let Some(property) = property {
                return Err(Refusal::new(
                    ErrorCode::PreconditionFailed,
                    format_args!(
                        "invalid property '{property}' for queue '{}' in vhost '{}'",
                        self.queue, self.vhost
                    ),
                ));
            }
        }
        Ok(kind)
    }

    fn bad(&self, arg: &str, why: impl std::fmt::Display) -> Refusal {
        Refusal::invalid_arg(arg, "queue", self.queue, self.vhost, why)
    }

    fn unacceptable(&self, arg: &str, value: &str) -> Refusal {
        self.bad(arg, format_args!("{{unacceptable_value,<<\"{value}\">>}}"))
    }

    fn wrong_type(&self, arg: &str, v: &FieldValue) -> Refusal {
        self.bad(arg, format_args!("{{unacceptable_type,{}}}", type_name(v)))
    }

    /// An integer argument within `min..=max`.
    fn int(&self, arg: &str, min: i64, max: u64) -> Result<Option<u64>, Refusal> {
        let Some(v) = self.args.get(arg) else {
            return Ok(None);
        };
        match v.as_i64() {
            None => Err(self.wrong_type(arg, v)),
            Some(n) if n < min && n < 0 => {
                Err(self.bad(arg, format_args!("{{value_negative,{n}}}")))
            }
            Some(n) if n < min => Err(self.bad(arg, format_args!("{{value_zero,{n}}}"))),
            Some(n) if n as u64 > max => {
                Err(self.bad(arg, format_args!("{{value_too_large,{n},{max}}}")))
            }
            Some(n) => Ok(Some(n as u64)),
        }
    }

    /// A string argument.
    fn string(&self, arg: &str) -> Result<Option<String>, Refusal> {
        let Some(v) = self.args.get(arg) else {
            return Ok(None);
        };
        v.as_str()
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| self.wrong_type(arg, v))
    }

    /// A boolean argument.
    fn boolean(&self, arg: &str) -> Result<Option<bool>, Refusal> {
        let Some(v) = self.args.get(arg) else {
            return Ok(None);
        };
        v.as_bool().map(Some).ok_or_else(|| self.wrong_type(arg, v))
    }
}

/// RabbitMQ's name for a value's type, used in error texts.
pub fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Void => "void",
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) | FieldValue::U8(_) => "byte",
        FieldValue::I16(_) | FieldValue::U16(_) => "short",
        FieldValue::I32(_) | FieldValue::U32(_) => "signedint",
        FieldValue::I64(_) | FieldValue::U64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal { .. } => "decimal",
        FieldValue::LongStr(_) | FieldValue::ShortStr(_) => "longstr",
        FieldValue::Bytes(_) => "binary",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Array(_) => "array",
    }
}

fn type_class(v: &FieldValue) -> &'static str {
    if v.as_i64().is_some() {
        "int"
    } else {
        match v {
            FieldValue::F32(_) | FieldValue::F64(_) => "float",
            other => type_name(other),
        }
    }
}

/// Same type class and value (integers of any width compare equal).
pub fn equivalent_value(a: &FieldValue, b: &FieldValue) -> bool {
    if type_class(a) != type_class(b) {
        return false;
    }
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// Describes the requested and current values of an argument the way
/// RabbitMQ's inequivalence texts do: `'200'` when both are set, otherwise
/// `none` for the missing one and `the value '100' of type 'signedint'`
/// for the other.
pub fn describe_arg(requested: Option<&FieldValue>, current: Option<&FieldValue>) -> [String; 2] {
    match (requested, current) {
        (Some(r), Some(c)) => [format!("'{}'", r.describe()), format!("'{}'", c.describe())],
        _ => [requested, current].map(|v| match v {
            None => "none".to_owned(),
            Some(v) => format!("the value '{}' of type '{}'", v.describe(), type_name(v)),
        }),
    }
}

/// Checks that `requested` declare arguments match `current` on the keys
/// RabbitMQ compares.
///
/// # Errors
/// 406 naming the first differing argument.
pub fn check_equivalent(
    keys: &[&str],
    requested: &FieldTable,
    current: &FieldTable,
    what: &str,
    name: &str,
    vhost: &str,
) -> Result<(), Refusal> {
    for key in keys {
        let (r, c) = (requested.get(key), current.get(key));
        let same = match (r, c) {
            (None, None) => true,
            (Some(r), Some(c)) => equivalent_value(r, c),
            _ => false,
        };
        if !same {
            let [received, have] = describe_arg(r, c);
            return Err(Refusal::inequivalent(
                key, what, name, vhost, &received, &have,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(entries: &[(&str, FieldValue)]) -> FieldTable {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn parses_valid_arguments() {
        let a = QueueArgs::parse(
            &args(&[
                ("x-message-ttl", FieldValue::I32(100)),
                ("x-max-length", FieldValue::I64(2)),
                ("x-overflow", FieldValue::string("reject-publish")),
                ("x-dead-letter-exchange", FieldValue::string("dlx")),
                ("x-max-priority", FieldValue::U8(10)),
            ]),
            "q",
            "/",
            false,
            false,
            false,
        )
        .unwrap();
        assert_eq!(a.message_ttl, Some(100));
        assert_eq!(a.max_length, Some(2));
        assert_eq!(a.overflow, Overflow::RejectPublish);
        assert_eq!(a.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(a.max_priority, Some(10));
    }

    #[test]
    fn refuses_invalid_arguments_naming_them() {
        let cases = [
            ("x-message-ttl", FieldValue::I32(-1), "value_negative"),
            ("x-expires", FieldValue::I32(0), "value_zero"),
            (
                "x-message-ttl",
                FieldValue::string("x"),
                "unacceptable_type",
            ),
            (
                "x-overflow",
                FieldValue::string("nope"),
                "unacceptable_value",
            ),
            ("x-max-priority", FieldValue::I32(300), "value_too_large"),
            (
                "x-queue-type",
                FieldValue::string("bogus"),
                "unsupported queue type 'bogus'",
            ),
            (
                "x-delivery-limit",
                FieldValue::I32(3),
                "of queue type rabbit_classic_queue",
            ),
            (
                "x-max-age",
                FieldValue::string("1h"),
                "of queue type rabbit_classic_queue",
            ),
        ];
        for (key, value, want) in cases {
            let err =
                QueueArgs::parse(&args(&[(key, value)]), "q", "/", true, false, false).unwrap_err();
            assert_eq!(err.code, ringmq_protocol::ErrorCode::PreconditionFailed);
            assert!(
                err.text.contains(key) && err.text.contains(want),
                "{}",
                err.text
            );
        }
    }

    #[test]
    fn equivalence_ignores_int_width_but_not_presence() {
        let a = args(&[("x-message-ttl", FieldValue::I32(100))]);
        let b = args(&[("x-message-ttl", FieldValue::I64(100))]);
        assert!(check_equivalent(EQUIVALENCE_ARGS, &a, &b, "queue", "q", "/").is_ok());
        let err = check_equivalent(EQUIVALENCE_ARGS, &a, &FieldTable::new(), "queue", "q", "/")
            .unwrap_err();
        assert_eq!(
            err.text,
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': \
             received the value '100' of type 'signedint' but current is none"
        );
        let c = args(&[("x-message-ttl", FieldValue::I32(200))]);
        let err = check_equivalent(EQUIVALENCE_ARGS, &c, &a, "queue", "q", "/").unwrap_err();
        assert!(
            err.text.ends_with("received '200' but current is '100'"),
            "{}",
            err.text
        );
        // Unknown arguments are not compared.
        let c = args(&[("x-custom", FieldValue::I32(1))]);
        assert!(
            check_equivalent(EQUIVALENCE_ARGS, &c, &FieldTable::new(), "queue", "q", "/").is_ok()
        );
    }
}
