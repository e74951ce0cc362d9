//! Stable numeric error codes sent on the wire.
//!
//! Codes below 1000 are the AMQP 0-9-1 reply codes with the same meaning, so
//! the gateway passes them through unchanged. Codes from 1000 up exist only in
//! the native protocol; [`ErrorCode::amqp_code`] maps them to the AMQP reply
//! code a gateway must use. Only add codes; never reuse a retired number.

/// An error code carried by `Close` and `ChannelClose` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Normal close; not an error.
    ReplySuccess = 200,
    /// The message is larger than the server accepts.
    ContentTooLarge = 311,
    /// A mandatory message could not be routed to any queue.
    NoRoute = 312,
    /// An immediate message had no consumer to go to.
    NoConsumers = 313,
    /// The server closed the connection (shutdown or operator action).
    ConnectionForced = 320,
    /// The virtual host name is not valid.
    InvalidPath = 402,
    /// Bad credentials, or the operation is not permitted on the object.
    AccessRefused = 403,
    /// The named exchange, queue or consumer does not exist.
    NotFound = 404,
    /// The queue is exclusive to another connection.
    ResourceLocked = 405,
    /// The object exists with other properties, or a condition of the request
    /// does not hold (e.g. `if_unused`), or an argument is invalid.
    PreconditionFailed = 406,
    /// A frame could not be decoded.
    FrameError = 501,
    /// A frame was decoded but a field has a value the server rejects.
    SyntaxError = 502,
    /// The request is not valid in the current state.
    CommandInvalid = 503,
    /// A channel that is not open was used, or one was opened twice.
    ChannelError = 504,
    /// A frame arrived that the peer did not expect now.
    UnexpectedFrame = 505,
    /// The server ran out of a resource (memory, disk, channels).
    ResourceError = 506,
    /// The operation is not allowed (e.g. an unknown virtual host).
    NotAllowed = 530,
    /// The server does not implement the operation.
    NotImplemented = 540,
    /// An internal error in the server.
    InternalError = 541,
    /// The client speaks a protocol version the server does not.
    UnsupportedVersion = 1001,
    /// The frame kind is not one the server knows.
    UnknownKind = 1002,
    /// The frame is larger than the negotiated maximum.
    FrameTooLarge = 1003,
    /// The frame body is not a valid flatbuffer of the kind's table.
    InvalidBody = 1004,
    /// A frame other than `Hello` arrived before the handshake completed.
    HandshakeRequired = 1005,
    /// No frame arrived within two heartbeat intervals.
    HeartbeatTimeout = 1006,
}

impl ErrorCode {
    /// All codes, for tests and documentation.
    pub const ALL: [ErrorCode; 25] = [
        ErrorCode::ReplySuccess,
        ErrorCode::ContentTooLarge,
        ErrorCode::NoRoute,
        ErrorCode::NoConsumers,
        ErrorCode::ConnectionForced,
        ErrorCode::InvalidPath,
        ErrorCode::AccessRefused,
        ErrorCode::NotFound,
        ErrorCode::ResourceLocked,
        ErrorCode::PreconditionFailed,
        ErrorCode::FrameError,
        ErrorCode::SyntaxError,
        ErrorCode::CommandInvalid,
        ErrorCode::ChannelError,
        ErrorCode::UnexpectedFrame,
        ErrorCode::ResourceError,
        ErrorCode::NotAllowed,
        ErrorCode::NotImplemented,
        ErrorCode::InternalError,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownKind,
        ErrorCode::FrameTooLarge,
        ErrorCode::InvalidBody,
        ErrorCode::HandshakeRequired,
        ErrorCode::HeartbeatTimeout,
    ];

    /// The numeric code on the wire.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a number read from the wire, if it is one we know.
    pub fn from_u16(n: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_u16() == n)
    }

    /// The AMQP 0-9-1 reply code with the same meaning.
    pub fn amqp_code(self) -> u16 {
        match self {
            ErrorCode::UnsupportedVersion
            | ErrorCode::UnknownKind
            | ErrorCode::FrameTooLarge
            | ErrorCode::InvalidBody => 501,
            ErrorCode::HandshakeRequired => 505,
            ErrorCode::HeartbeatTimeout => 320,
            c => c as u16,
        }
    }

    /// The AMQP name of the code, used as the prefix of reply texts
    /// (`NOT_FOUND - no queue 'q' in vhost '/'`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::ReplySuccess => "OK",
            ErrorCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ErrorCode::NoRoute => "NO_ROUTE",
            ErrorCode::NoConsumers => "NO_CONSUMERS",
            ErrorCode::ConnectionForced => "CONNECTION_FORCED",
            ErrorCode::InvalidPath => "INVALID_PATH",
            ErrorCode::AccessRefused => "ACCESS_REFUSED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::ResourceLocked => "RESOURCE_LOCKED",
            ErrorCode::PreconditionFailed => "PRECONDITION_FAILED",
            ErrorCode::FrameError => "FRAME_ERROR",
            ErrorCode::SyntaxError => "SYNTAX_ERROR",
            ErrorCode::CommandInvalid => "COMMAND_INVALID",
            ErrorCode::ChannelError => "CHANNEL_ERROR",
            ErrorCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ErrorCode::ResourceError => "RESOURCE_ERROR",
            ErrorCode::NotAllowed => "NOT_ALLOWED",
            ErrorCode::NotImplemented => "NOT_IMPLEMENTED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::UnknownKind => "UNKNOWN_KIND",
            ErrorCode::FrameTooLarge => "FRAME_TOO_LARGE",
            ErrorCode::InvalidBody => "INVALID_BODY",
            ErrorCode::HandshakeRequired => "HANDSHAKE_REQUIRED",
            ErrorCode::HeartbeatTimeout => "HEARTBEAT_TIMEOUT",
        }
    }

    /// True when the code closes the whole connection rather than a channel
    /// (an AMQP "hard" error).
    pub fn is_connection_level(self) -> bool {
        matches!(
            self.amqp_code(),
            320 | 402 | 501 | 502 | 503 | 504 | 505 | 506 | 530 | 540 | 541
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_u16()), "duplicate code {c}");
            assert_eq!(ErrorCode::from_u16(c.as_u16()), Some(c));
        }
        assert_eq!(ErrorCode::from_u16(999), None);
    }

    #[test]
    fn amqp_mapping() {
        assert_eq!(ErrorCode::NotFound.amqp_code(), 404);
        assert_eq!(ErrorCode::InvalidBody.amqp_code(), 501);
        assert!(!ErrorCode::NotFound.is_connection_level());
        assert!(ErrorCode::ChannelError.is_connection_level());
        assert!(ErrorCode::FrameTooLarge.is_connection_level());
        assert!(!ErrorCode::AccessRefused.is_connection_level());
    }
}
