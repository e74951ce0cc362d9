//! Direct reply-to names: RabbitMQ's pseudo-queue `amq.rabbitmq.reply-to`
//! for RPC replies. A requester consumes from it (no-ack) and publishes
//! with `reply_to = "amq.rabbitmq.reply-to"`; the broker rewrites that to a
//! name of the form below, and the default exchange routes a message
//! published with such a name as its routing key straight to the
//! requester's channel, without a queue. Pure: the name format only.
//!
//! A reply name is `amq.rabbitmq.reply-to.` and 35 characters of URL-safe
//! base64 (no padding, canonical) of 26 bytes:
//!
//! | Bytes | Field |
//! |---|---|
//! | 0..8 | Session id, big-endian (its top 16 bits are the session's shard) |
//! | 8..10 | Channel, big-endian |
//! | 10..26 | Key, random, drawn when the reply consumer was created |
//!
//! The key tells a reply consumer from an earlier one on the same channel
//! and makes the name unguessable: knowing the name is what lets a server
//! reply.

use base64::Engine as _;

/// The pseudo-queue a requester consumes from and names in `reply_to`.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// What every reply name starts with.
const PREFIX: &str = "amq.rabbitmq.reply-to.";

/// Bytes a name encodes.
const RAW_LEN: usize = 26;

/// Characters of base64 after the prefix.
const TOKEN_LEN: usize = 35;

/// One direct reply-to consumer: where replies to its name go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplyTo {
    /// The requester's session.
    pub session: u64,
    /// Its channel.
    pub channel: u16,
    /// Drawn at random per reply consumer.
    pub key: [u8; 16],
}

impl ReplyTo {
    /// The name a requester's `reply_to` is rewritten to.
    pub fn name(&self) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&self.session.to_be_bytes());
        raw[8..10].copy_from_slice(&self.channel.to_be_bytes());
        raw[10..].copy_from_slice(&self.key);
        let mut name = String::with_capacity(PREFIX.len() + TOKEN_LEN);
        name.push_str(PREFIX);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(raw, &mut name);
        name
    }

    /// Reads a reply name back; `None` for anything else (a name under
    /// the prefix that this broker did not make included).
    pub fn parse(name: &str) -> Option<ReplyTo> {
        let token = name.strip_prefix(PREFIX)?;
        if token.len() != TOKEN_LEN {
            return None;
        }
        // One spare byte: the decoder wants room for its estimate.
        let mut raw = [0u8; RAW_LEN + 1];
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode_slice(token, &mut raw)
            .ok()?;
        if n != RAW_LEN {
            return None;
        }
        let mut session = [0u8; 8];
        session.copy_from_slice(&raw[..8]);
        let mut key = [0u8; 16];
        key.copy_from_slice(&raw[10..RAW_LEN]);
        Some(ReplyTo {
            session: u64::from_be_bytes(session),
            channel: u16::from_be_bytes([raw[8], raw[9]]),
            key,
        })
    }
}

/// True for the pseudo-queue and every name under it: RabbitMQ answers a
/// declare of any of them itself (declare-ok for the pseudo-queue and a
/// live reply name, 404 otherwise), never as a queue.
pub fn is_reply_to_name(name: &str) -> bool {
    name.starts_with(REPLY_TO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReplyTo {
        ReplyTo {
            session: (3 << 48) | 77,
            channel: 2047,
            key: [0xa5; 16],
        }
    }

    #[test]
    fn a_name_reads_back() {
        let r = sample();
        let name = r.name();
        assert!(name.starts_with("amq.rabbitmq.reply-to."));
        assert_eq!(name.len(), PREFIX.len() + TOKEN_LEN);
        assert!(is_reply_to_name(&name));
        assert_eq!(ReplyTo::parse(&name), Some(r));
    }

    #[test]
    fn other_names_are_not_reply_names() {
        let name = sample().name();
        let cases = [
            REPLY_TO.to_owned(),
            format!("{REPLY_TO}."),
            format!("{REPLY_TO}.garbage"),
            format!("{name}A"),
            name[..name.len() - 1].to_owned(),
            // Not canonical: the last character carries bits past the 26th
            // byte.
            format!("{}B", &name[..name.len() - 1]),
            format!("{}*", &name[..name.len() - 1]),
            name.replace("amq.rabbitmq.reply-to.", "amq.rabbitmq.reply-to-"),
            String::new(),
        ];
        for c in cases {
            if c != name {
                assert_eq!(ReplyTo::parse(&c), None, "{c:?}");
            }
        }
    }

    #[test]
    fn names_under_the_pseudo_queue() {
        assert!(is_reply_to_name("amq.rabbitmq.reply-to"));
        assert!(is_reply_to_name("amq.rabbitmq.reply-tox"));
        assert!(!is_reply_to_name("amq.rabbitmq.reply-t"));
        assert!(!is_reply_to_name("AMQ.rabbitmq.reply-to"));
    }
}
