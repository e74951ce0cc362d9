//! Turns [`Message`]s into frames, reusing one FlatBuffers builder.

use bytes::BytesMut;
use flatbuffers::FlatBufferBuilder;

use super::kinds::Message;
use crate::frame::{put_frame, Kind};
use crate::wire;

/// Turns messages into frames, reusing one flatbuffers builder.
pub struct Encoder {
    fbb: FlatBufferBuilder<'static>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").finish_non_exhaustive()
    }
}

impl Encoder {
    /// A new encoder.
    pub fn new() -> Encoder {
        Encoder {
            fbb: FlatBufferBuilder::with_capacity(4096),
        }
    }

    /// The builder, for hand-built hot-path frames; finish with
    /// [`Encoder::finish_frame`].
    pub fn builder(&mut self) -> &mut FlatBufferBuilder<'static> {
        &mut self.fbb
    }

    /// Appends the finished builder contents as a frame and resets the
    /// builder.
    pub fn finish_frame(&mut self, out: &mut BytesMut, kind: Kind, corr_id: u64) {
        put_frame(out, kind, corr_id, self.fbb.finished_data());
        self.fbb.reset();
    }

    /// Appends `msg` to `out` as one frame.
    pub fn encode(&mut self, out: &mut BytesMut, corr_id: u64, msg: &Message) {
        use Message as M;
        let kind = msg.kind();
        self.fbb.reset();
        let fbb = &mut self.fbb;
        macro_rules! t {
            ($v:expr) => {{
                let root = $v.to_table(fbb);
                fbb.finish_minimal(root);
            }};
        }
        match msg {
            M::CloseOk | M::Heartbeat | M::Unblocked | M::OpenOk => {
                put_frame(out, kind, corr_id, &[]);
                return;
            }
            M::Hello(m) => t!(m),
            M::HelloOk(m) => t!(m),
            M::Close(m) => t!(m),
            M::Open { vhost } => {
                let vhost = Some(fbb.create_string(vhost));
                let root = wire::Open::create(fbb, &wire::OpenArgs { vhost });
                fbb.finish_minimal(root);
            }
            M::Blocked { reason } => {
                let reason = (!reason.is_empty()).then(|| fbb.create_string(reason));
                let root = wire::Blocked::create(fbb, &wire::BlockedArgs { reason });
                fbb.finish_minimal(root);
            }
            M::ChannelClose(m) => t!(m),
            M::ChannelFlow(m) | M::ChannelFlowOk(m) => t!(m),
            M::ExchangeDeclare(m) => t!(m),
            M::ExchangeDelete(m) => t!(m),
            M::ExchangeBind(m) | M::ExchangeUnbind(m) | M::QueueBind(m) | M::QueueUnbind(m) => {
                t!(m)
            }
            M::QueueDeclare(m) => t!(m),
            M::QueueDeclareOk(m) => t!(m),
            M::QueuePurge(m) => t!(m),
            M::QueuePurgeOk(m) | M::QueueDeleteOk(m) => t!(m),
            M::QueueDelete(m) => t!(m),
            M::Qos(m) => t!(m),
            M::Consume(m) => t!(m),
            M::ConsumeOk(m) | M::Cancel(m) | M::CancelOk(m) | M::ServerCancel(m) => t!(m),
            M::Publish(m) => t!(m),
            M::Deliver(m) => t!(m),
            M::Return(m) => t!(m),
            M::Get(m) => t!(m),
            M::GetOk(m) => t!(m),
            M::Settle(m) => t!(m),
            M::Recover(m) => t!(m),
            M::Confirm(m) => t!(m),
            // Every other kind carries only its channel (a test round-trips
            // every kind).
            other => {
                let args = wire::ChannelOnlyArgs {
                    channel: other.channel(),
                };
                let root = wire::ChannelOnly::create(fbb, &args);
                fbb.finish_minimal(root);
            }
        }
        self.finish_frame(out, kind, corr_id);
    }
}
