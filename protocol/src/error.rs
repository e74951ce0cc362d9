//! Errors of the codec. `protocol` never depends on broker types; the broker
//! and the gateway convert these into their own errors.

use crate::code::ErrorCode;

/// Why bytes from the network could not be turned into a frame or message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The length prefix announces a frame larger than the limit.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLarge {
        /// Announced frame length, header included.
        len: u64,
        /// The negotiated maximum.
        max: u32,
    },
    /// The length prefix is smaller than the frame header.
    #[error("frame length {len} is shorter than the 16-byte header")]
    FrameTooShort {
        /// Announced frame length.
        len: u32,
    },
    /// The kind is not one this version knows.
    #[error("unknown frame kind {kind:#06x}")]
    UnknownKind {
        /// The kind read from the header.
        kind: u16,
    },
    /// The body failed flatbuffers verification for the kind's table.
    #[error("body of a {kind} frame is not a valid flatbuffer: {reason}")]
    InvalidBody {
        /// Name of the frame kind.
        kind: &'static str,
        /// What the verifier found.
        reason: String,
    },
    /// A required field is missing.
    #[error("{kind} frame lacks the required field `{field}`")]
    MissingField {
        /// Name of the frame kind.
        kind: &'static str,
        /// Name of the missing field.
        field: &'static str,
    },
    /// A field has a value outside its range.
    #[error("{kind} frame has an invalid `{field}`: {reason}")]
    InvalidField {
        /// Name of the frame kind.
        kind: &'static str,
        /// Name of the bad field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A field table value is malformed.
    #[error("invalid field table: {0}")]
    Field(&'static str),
}

impl DecodeError {
    /// The error code sent to the peer for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            DecodeError::FrameTooShort { .. } => ErrorCode::FrameError,
            DecodeError::UnknownKind { .. } => ErrorCode::UnknownKind,
            DecodeError::InvalidBody { .. } => ErrorCode::InvalidBody,
            DecodeError::MissingField { .. } | DecodeError::InvalidField { .. } => {
                ErrorCode::SyntaxError
            }
            DecodeError::Field(_) => ErrorCode::SyntaxError,
        }
    }
}
