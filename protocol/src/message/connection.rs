//! Connection class: the handshake (`Hello`, `HelloOk`) and `Close`.

use crate::field::FieldTable;

/// Protocol version spoken by this crate.
pub const PROTOCOL_VERSION: u16 = 1;

/// First frame of a connection.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Hello {
    /// Version the client speaks.
    pub version: u16,
    /// SASL mechanism: "PLAIN" (or empty), or "EXTERNAL" over TLS.
    pub mechanism: String,
    /// User name.
    pub username: String,
    /// Password (sent in clear over the socket, as AMQP PLAIN does).
    pub password: String,
    /// Virtual host to open.
    pub vhost: String,
    /// Client name, product, capabilities…
    pub client_properties: FieldTable,
    /// Proposed heartbeat interval, seconds; 0 disables.
    pub heartbeat: u16,
    /// Largest frame the client accepts; 0 for the server's limit.
    pub frame_max: u32,
    /// Highest channel number wanted; 0 for the server's limit.
    pub channel_max: u16,
    /// The real client's address when a gateway connects for it.
    pub forwarded_for: Option<String>,
    /// The address that client connected to (the gateway's listener).
    pub forwarded_to: Option<String>,
    /// The user a gateway vouches for (an AMQPS client's certificate
    /// identity); the credentials above are then the gateway's, whose user
    /// needs the `impersonator` tag.
    pub on_behalf_of: Option<String>,
}

table!(
    Hello = Hello
        / HelloArgs {
            version: copy,
            mechanism: opt_string,
            username: opt_string,
            password: opt_string,
            vhost: string,
            client_properties: table,
            heartbeat: copy,
            frame_max: copy,
            channel_max: copy,
            forwarded_for: maybe_string,
            forwarded_to: maybe_string,
            on_behalf_of: maybe_string,
        }
);

/// Server's answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HelloOk {
    /// Version the server speaks.
    pub version: u16,
    /// Product, version, capabilities.
    pub server_properties: FieldTable,
    /// Agreed heartbeat interval, seconds; 0 disables.
    pub heartbeat: u16,
    /// Agreed frame limit.
    pub frame_max: u32,
    /// Agreed highest channel number.
    pub channel_max: u16,
    /// Server-wide connection id (for logs).
    pub connection_id: u64,
    /// The shard serving this connection.
    pub shard: u16,
    /// Shards of the server (0 from servers that do not say).
    pub shards: u16,
    /// Shard `i` also listens on this port + `i` (0: no per-shard ports);
    /// see [`crate::placement`].
    pub shard_port_base: u16,
}

table!(
    HelloOk = HelloOk
        / HelloOkArgs {
            version: copy,
            server_properties: table,
            heartbeat: copy,
            frame_max: copy,
            channel_max: copy,
            connection_id: copy,
            shard: copy,
            shards: copy,
            shard_port_base: copy,
        }
);

/// Connection close, either direction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Close {
    /// [`crate::ErrorCode`] number; 200 for a normal close.
    pub code: u16,
    /// Human-readable reason.
    pub text: String,
    /// Kind of the frame that caused it, 0 if none.
    pub failed_kind: u16,
    /// Channel of the frame that caused it, 0 if none.
    pub channel: u16,
}

table!(
    Close = Close
        / CloseArgs {
            code: copy,
            text: opt_string,
            failed_kind: copy,
            channel: copy,
        }
);
