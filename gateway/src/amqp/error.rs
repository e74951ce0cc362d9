//! Connection-level errors: a [`Refusal`] (code and text, the same type the
//! broker uses) with the AMQP method that caused it, and how a pump or the
//! handshake ends.

use ringmq_protocol::{ErrorCode, Refusal};

/// A connection-level AMQP error: what `connection.close` says, and the
/// class and method ids of the method that caused it (0 when none).
#[derive(Debug, Clone)]
pub(super) struct ConnError {
    pub refusal: Refusal,
    pub class: u16,
    pub method: u16,
}

impl ConnError {
    /// An error with `detail` after the code's name.
    pub fn new(code: ErrorCode, detail: impl std::fmt::Display) -> ConnError {
        Refusal::new(code, detail).into()
    }

    /// Names the method that caused it.
    pub fn at(mut self, class: u16, method: u16) -> ConnError {
        (self.class, self.method) = (class, method);
        self
    }

    /// The reply code on the AMQP wire.
    pub fn amqp_code(&self) -> u16 {
        self.refusal.code.amqp_code()
    }
}

impl From<Refusal> for ConnError {
    fn from(refusal: Refusal) -> ConnError {
        ConnError {
            refusal,
            class: 0,
            method: 0,
        }
    }
}

/// How the handshake or the client pump ends.
#[derive(Debug)]
pub(super) enum Ended {
    /// The client went away, the close handshake finished, or there is
    /// nobody left to tell: nothing more to send.
    Gone,
    /// Close the connection with this error.
    Close(ConnError),
}

impl From<ConnError> for Ended {
    fn from(e: ConnError) -> Ended {
        Ended::Close(e)
    }
}

/// The refusal for a close the broker sent: its code, and its text with
/// the AMQP code's name in front when the code exists only natively.
pub(super) fn broker_refusal(code: u16, text: &str) -> Refusal {
    let code = ErrorCode::from_u16(code).unwrap_or(ErrorCode::InternalError);
    let amqp = ErrorCode::from_u16(code.amqp_code()).unwrap_or(ErrorCode::InternalError);
    if amqp == code {
        Refusal::with_text(code, text)
    } else {
        Refusal::with_text(code, format!("{} - {text}", amqp.name()))
    }
}

/// Refuses a method whose field tables are nested too deep or malformed,
/// before `amq-protocol` parses it (its parser recurses without a limit).
pub(super) fn check_tables(payload: &[u8]) -> Result<(), ConnError> {
    ringmq_amqp_codec::table::check_method_tables(payload).map_err(|e| {
        let (class, method) = ringmq_amqp_codec::method::method_ids(payload);
        ConnError::new(ErrorCode::SyntaxError, e).at(class, method)
    })
}

/// The error for a method frame that does not parse: 503 for a method
/// that does not exist, 502 for a known method with malformed arguments;
/// both name the class and method ids when the payload has them.
pub(super) fn unparsable_method(payload: &[u8]) -> ConnError {
    if payload.len() < 4 {
        return ConnError::new(
            ErrorCode::SyntaxError,
            "method frame shorter than its class and method ids",
        );
    }
    let (class, method) = ringmq_amqp_codec::method::method_ids(payload);
    let known: &[u16] = match class {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    let e = if known.contains(&method) {
        ConnError::new(
            ErrorCode::SyntaxError,
            format_args!("malformed arguments for method {class}.{method}"),
        )
    } else {
        ConnError::new(
            ErrorCode::CommandInvalid,
            format_args!("unknown method {class}.{method}"),
        )
    };
    e.at(class, method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_texts_keep_their_code_and_gain_the_amqp_name() {
        let r = broker_refusal(404, "NOT_FOUND - no queue 'q' in vhost '/'");
        assert_eq!(r.code.amqp_code(), 404);
        assert_eq!(r.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        let r = broker_refusal(1003, "frame of 9 bytes exceeds the maximum of 8");
        assert_eq!(r.code.amqp_code(), 501);
        assert_eq!(
            r.text,
            "FRAME_ERROR - frame of 9 bytes exceeds the maximum of 8"
        );
    }

    #[test]
    fn unparsable_methods_are_told_apart() {
        let e = unparsable_method(&[0, 60, 0, 40, 9]);
        assert_eq!((e.amqp_code(), e.class, e.method), (502, 60, 40));
        let e = unparsable_method(&[0, 60, 0, 99]);
        assert_eq!((e.amqp_code(), e.class, e.method), (503, 60, 99));
        assert_eq!(unparsable_method(&[0]).amqp_code(), 502);
    }
}
