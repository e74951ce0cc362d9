//! FlatBuffers verification: every body read from the network is checked
//! by `root_with_opts` under these limits before any field is read, and
//! the helpers that slice bytes out of a verified body.

use bytes::Bytes;
use flatbuffers::{Follow, Verifiable, VerifierOptions};

use crate::error::DecodeError;
use crate::frame::Kind;

/// How many times its own length a body may appear to be: FlatBuffers
/// lets many offsets point at one value, and a decoder copies the value
/// once per reference, so the apparent size bounds what decoding a body
/// can allocate.
pub const APPARENT_SIZE_FACTOR: usize = 4;

/// Apparent size every body may reach however small it is.
pub const APPARENT_SIZE_SLACK: usize = 64 * 1024;

/// Verifier limits for a body of `body_len` bytes read from the network.
pub fn verifier_options(body_len: usize) -> VerifierOptions {
    VerifierOptions {
        max_depth: 64,
        max_tables: 4_000_000,
        max_apparent_size: body_len
            .saturating_mul(APPARENT_SIZE_FACTOR)
            .saturating_add(APPARENT_SIZE_SLACK),
        ignore_missing_null_terminator: false,
    }
}

/// Verifies `body` as the root table `T` of a frame of `kind`.
///
/// # Errors
/// [`DecodeError::InvalidBody`] with the verifier's reason.
pub fn view<'a, T>(kind: Kind, body: &'a [u8]) -> Result<T::Inner, DecodeError>
where
    T: 'a + Follow<'a> + Verifiable,
{
    flatbuffers::root_with_opts::<T>(&verifier_options(body.len()), body).map_err(|e| {
        DecodeError::InvalidBody {
            kind: kind.name(),
            reason: e.to_string(),
        }
    })
}

/// Body bytes of a verified vector as a zero-copy slice of the frame.
pub fn body_slice(frame_body: &Bytes, v: Option<flatbuffers::Vector<'_, u8>>) -> Bytes {
    match v {
        Some(v) if !v.is_empty() => frame_body.slice_ref(v.bytes()),
        _ => Bytes::new(),
    }
}

/// The bodies of a dense batch: `sizes` split `bodies`, checked to add up
/// exactly before anything is returned.
///
/// # Errors
/// Sizes that do not add up to the bodies' length.
pub fn dense_bodies<'a>(
    kind: &'static str,
    sizes: Option<flatbuffers::Vector<'a, u32>>,
    bodies: Option<flatbuffers::Vector<'a, u8>>,
) -> Result<impl Iterator<Item = &'a [u8]> + 'a, DecodeError> {
    let bytes: &'a [u8] = bodies.map(|b| b.bytes()).unwrap_or(&[]);
    let total: u64 = sizes.iter().flatten().map(u64::from).sum();
    if total != bytes.len() as u64 {
        return Err(DecodeError::InvalidField {
            kind,
            field: "sizes",
            reason: "do not add up to the length of `bodies`",
        });
    }
    let mut at = 0usize;
    Ok(sizes.into_iter().flatten().map(move |n| {
        let body = &bytes[at..at + n as usize];
        at += n as usize;
        body
    }))
}

/// The error for a batch that sets both its per-message vector and its
/// dense form.
pub(crate) fn both_forms(kind: &'static str) -> DecodeError {
    DecodeError::InvalidField {
        kind,
        field: "dense",
        reason: "set together with the per-message vector",
    }
}
