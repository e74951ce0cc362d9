//! [`Refusal`]: the one error type for closing a channel or a connection,
//! in the broker and in the gateway alike.
//!
//! A refusal is an error code and a reply text. Whoever meets it closes the
//! channel for soft codes (404, 405, 406, 403) or the connection for hard
//! ones ([`ErrorCode::is_connection_level`]). The texts follow RabbitMQ's
//! (`NOT_FOUND - no queue 'q' in vhost '/'`) so that clients and people
//! searching for them find what they expect.

use crate::code::ErrorCode;

/// A request refused: the code sent on the wire and the reply text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct Refusal {
    /// Code sent on the wire.
    pub code: ErrorCode,
    /// Full reply text, starting with the code's name.
    pub text: String,
}

impl Refusal {
    /// A refusal with `detail` after the code's name.
    pub fn new(code: ErrorCode, detail: impl std::fmt::Display) -> Refusal {
        Refusal {
            code,
            text: format!("{} - {}", code.name(), detail),
        }
    }

    /// A refusal whose text is already complete (a peer's reply text
    /// passed on).
    pub fn with_text(code: ErrorCode, text: impl Into<String>) -> Refusal {
        Refusal {
            code,
            text: text.into(),
        }
    }

    /// True when it closes the connection rather than the channel.
    pub fn is_connection_level(&self) -> bool {
        self.code.is_connection_level()
    }

    /// 404 for a missing queue.
    pub fn no_queue(vhost: &str, name: &str) -> Refusal {
        Refusal::new(
            ErrorCode::NotFound,
            format_args!("no queue '{name}' in vhost '{vhost}'"),
        )
    }

    /// 404 for a missing exchange.
    pub fn no_exchange(vhost: &str, name: &str) -> Refusal {
        Refusal::new(
            ErrorCode::NotFound,
            format_args!("no exchange '{name}' in vhost '{vhost}'"),
        )
    }

    /// 405 for an exclusive queue of another connection.
    pub fn locked(vhost: &str, name: &str) -> Refusal {
        Refusal::new(
            ErrorCode::ResourceLocked,
            format_args!(
                "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. \
                 It could be originally declared on another connection or the exclusive \
                 property value does not match that of the original declaration."
            ),
        )
    }

    /// 406 for a redeclare with a different property.
    pub fn inequivalent(
        arg: &str,
        what: &str,
        name: &str,
        vhost: &str,
        received: &str,
        current: &str,
    ) -> Refusal {
        Refusal::new(
            ErrorCode::PreconditionFailed,
            format_args!(
                "inequivalent arg '{arg}' for {what} '{name}' in vhost '{vhost}': \
                 received {received} but current is {current}"
            ),
        )
    }

    /// 403 for an `amq.` name.
    pub fn reserved(what: &str, name: &str) -> Refusal {
        Refusal::new(
            ErrorCode::AccessRefused,
            format_args!("{what} name '{name}' contains reserved prefix 'amq.*'"),
        )
    }

    /// 406 for an invalid queue or exchange argument.
    pub fn invalid_arg(
        arg: &str,
        what: &str,
        name: &str,
        vhost: &str,
        why: impl std::fmt::Display,
    ) -> Refusal {
        Refusal::new(
            ErrorCode::PreconditionFailed,
            format_args!("invalid arg '{arg}' for {what} '{name}' in vhost '{vhost}': {why}"),
        )
    }
}
