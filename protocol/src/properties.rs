//! Message properties (the AMQP basic properties), owned.

use flatbuffers::{FlatBufferBuilder, WIPOffset};

use crate::error::DecodeError;
use crate::field::{decode_table, encode_table, FieldTable};
use crate::wire;

/// The properties of a message. `None` means the property is not set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Properties {
    /// MIME content type.
    pub content_type: Option<String>,
    /// MIME content encoding.
    pub content_encoding: Option<String>,
    /// Application headers; also read by headers exchanges and written by
    /// dead-lettering (`x-death`).
    pub headers: Option<FieldTable>,
    /// 1 transient, 2 persistent.
    pub delivery_mode: Option<u8>,
    /// 0 to 9 in AMQP; queues with `x-max-priority` honour it.
    pub priority: Option<u8>,
    /// Application correlation id (RPC).
    pub correlation_id: Option<String>,
    /// Queue to reply to (RPC).
    pub reply_to: Option<String>,
    /// Per-message TTL in milliseconds, as a decimal string.
    pub expiration: Option<String>,
    /// Application message id.
    pub message_id: Option<String>,
    /// Seconds since the epoch.
    pub timestamp: Option<u64>,
    /// Application message type name.
    pub kind: Option<String>,
    /// Creating user id; the broker checks it against the publisher.
    pub user_id: Option<String>,
    /// Creating application id.
    pub app_id: Option<String>,
    /// Deprecated AMQP cluster id, carried through unchanged.
    pub cluster_id: Option<String>,
}

impl Properties {
    /// True when no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// True for `delivery_mode = 2`.
    pub fn is_persistent(&self) -> bool {
        self.delivery_mode == Some(2)
    }

    /// Writes the properties; `None` when none is set so the field is absent.
    pub fn encode<'b>(
        &self,
        fbb: &mut FlatBufferBuilder<'b>,
    ) -> Option<WIPOffset<wire::Properties<'b>>> {
        if self.is_empty() {
            return None;
        }
        let mut s = |v: &Option<String>| v.as_deref().map(|s| fbb.create_string(s));
        let content_type = s(&self.content_type);
        let content_encoding = s(&self.content_encoding);
        let correlation_id = s(&self.correlation_id);
        let reply_to = s(&self.reply_to);
        let expiration = s(&self.expiration);
        let message_id = s(&self.message_id);
        let type_ = s(&self.kind);
        let user_id = s(&self.user_id);
        let app_id = s(&self.app_id);
        let cluster_id = s(&self.cluster_id);
        let headers = self.headers.as_ref().and_then(|h| encode_table(fbb, h));
        // An empty but present headers table stays present.
        let headers = match (headers, &self.headers) {
            (None, Some(_)) => {
                Some(fbb.create_vector::<flatbuffers::ForwardsUOffset<wire::Field>>(&[]))
            }
            (h, _) => h,
        };
        Some(wire::Properties::create(
            fbb,
            &wire::PropertiesArgs {
                content_type,
                content_encoding,
                headers,
                delivery_mode: self.delivery_mode,
                priority: self.priority,
                correlation_id,
                reply_to,
                expiration,
                message_id,
                timestamp: self.timestamp,
                type_,
                user_id,
                app_id,
                cluster_id,
            },
        ))
    }

    /// The properties as a standalone FlatBuffers `Properties` table (empty
    /// when none is set), for storage.
    pub fn to_flatbuffer(&self) -> Vec<u8> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut fbb = FlatBufferBuilder::with_capacity(256);
        match self.encode(&mut fbb) {
            Some(root) => {
                fbb.finish_minimal(root);
                fbb.finished_data().to_vec()
            }
            None => Vec::new(),
        }
    }

    /// Reads properties written by [`Properties::to_flatbuffer`], verifying
    /// the buffer.
    ///
    /// # Errors
    /// A buffer that is not a valid `Properties` table.
    pub fn from_flatbuffer(buf: &[u8]) -> Result<Properties, DecodeError> {
        if buf.is_empty() {
            return Ok(Properties::default());
        }
        let view = crate::verify::view::<wire::Properties>(crate::frame::Kind::Publish, buf)?;
        Properties::decode(Some(view))
    }

    /// Reads a verified properties view.
    ///
    /// # Errors
    /// A header value that does not fit its kind.
    pub fn decode(p: Option<wire::Properties<'_>>) -> Result<Properties, DecodeError> {
        let Some(p) = p else {
            return Ok(Properties::default());
        };
        let s = |v: Option<&str>| v.map(str::to_owned);
        Ok(Properties {
            content_type: s(p.content_type()),
            content_encoding: s(p.content_encoding()),
            headers: match p.headers() {
                Some(h) => Some(decode_table(Some(h))?),
                None => None,
            },
            delivery_mode: p.delivery_mode(),
            priority: p.priority(),
            correlation_id: s(p.correlation_id()),
            reply_to: s(p.reply_to()),
            expiration: s(p.expiration()),
            message_id: s(p.message_id()),
            timestamp: p.timestamp(),
            kind: s(p.type_()),
            user_id: s(p.user_id()),
            app_id: s(p.app_id()),
            cluster_id: s(p.cluster_id()),
        })
    }
}
