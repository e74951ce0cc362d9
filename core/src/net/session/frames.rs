//! The frame router: which frames a phase accepts, the hot paths (publish,
//! settle) that skip the owned decode, connection-level methods, and the
//! order between pipelined requests and everything else.

use std::rc::Rc;

use ringmq_protocol::frame::{Frame, Kind};
use ringmq_protocol::message::Message as Wire;
use ringmq_protocol::ErrorCode;

use super::state::ChanState;
use super::{Phase, Session, Stop};
use crate::exchange::reply_to::is_reply_to_name;

impl Session {
    /// Handles one frame, in order with the frames before it.
    pub(super) async fn handle_frame(self: &Rc<Self>, frame: Frame) -> Result<(), Stop> {
        let corr = frame.header.corr_id;
        let raw_kind = frame.header.kind;
        let Some(kind) = Kind::from_u16(raw_kind) else {
            return Err(Stop::new(
                ErrorCode::UnknownKind,
                format_args!("unknown frame kind {raw_kind:#06x}"),
                raw_kind,
                0,
            ));
        };
        let phase = self.st.borrow().phase;
        match phase {
            Phase::Closing if matches!(kind, Kind::CloseOk | Kind::Close) => {
                return Err(Stop::Done)
            }
            Phase::Closing => return Ok(()),
            Phase::Handshake => return self.handshake(corr, &frame, kind),
            Phase::AwaitingOpen => return self.open_vhost(corr, &frame, kind),
            Phase::Open => {}
        }
        // Publishes and settlements see the effect of every earlier
        // pipelined declare or bind.
        if matches!(kind, Kind::Publish | Kind::Settle) && self.tail.borrow().is_some() {
            self.barrier().await;
        }
        // Hot paths first: no owned decode.
        match kind {
            Kind::Publish => return self.publish(&frame),
            Kind::Settle => return self.settle(&frame),
            Kind::Heartbeat => return Ok(()),
            _ => {}
        }
        let msg = Wire::decode(&frame).map_err(|e| Stop::new(e.code(), &e, raw_kind, 0))?;
        if !is_pipelined(&msg) {
            // Everything else happens after the pipelined requests before it.
            self.barrier().await;
        }
        let Some(msg) = self.connection_method(corr, raw_kind, msg).await? else {
            return Ok(());
        };
        let ch = msg.channel();
        if self.usable_channel(ch, kind)? == ChanState::Closing {
            return Ok(()); // discarded until ChannelCloseOk
        }
        let Some(msg) = self.pipelined(corr, raw_kind, msg) else {
            return Ok(());
        };
        self.barrier().await;
        match self.request(corr, msg).await {
            Ok(()) => Ok(()),
            Err(r) => self.refuse(r, raw_kind, ch, corr),
        }
    }

    /// Handles methods about the connection and the channel's own life.
    /// Returns the message back when it is a request on an open channel.
    async fn connection_method(
        self: &Rc<Self>,
        corr: u64,
        raw_kind: u16,
        msg: Wire,
    ) -> Result<Option<Wire>, Stop> {
        match msg {
            Wire::Close(_) => {
                // As RabbitMQ: unacked deliveries are requeued and exclusive
                // queues deleted before the CloseOk.
                self.release().await;
                self.send(corr, &Wire::CloseOk);
                self.closed.set(true);
                Err(Stop::Done)
            }
            Wire::CloseOk => Err(Stop::Done),
            Wire::ChannelOpen(ch) => self.channel_open(corr, ch).map(|()| None),
            Wire::ChannelClose(c) => {
                self.channel_close(corr, c.channel);
                Ok(None)
            }
            Wire::ChannelCloseOk(ch) => {
                self.channel_close_ok(ch);
                Ok(None)
            }
            Wire::Hello(_) => Err(Stop::new(
                ErrorCode::CommandInvalid,
                "second Hello on an open connection",
                raw_kind,
                0,
            )),
            m if is_server_only(&m) => Err(Stop::new(
                ErrorCode::CommandInvalid,
                format_args!("{} is sent by the server, not the client", m.kind()),
                raw_kind,
                m.channel(),
            )),
            m => Ok(Some(m)),
        }
    }
}

/// Declares, binds and deletes are issued at once and answered in order
/// (`pipeline.rs`); passive declares are not, they only look, and neither
/// are declares of the direct reply-to pseudo-queue (`reply_to.rs`).
pub(super) fn is_pipelined(msg: &Wire) -> bool {
    match msg {
        Wire::ExchangeDeclare(d) => !d.passive,
        Wire::QueueDeclare(d) => !d.passive && !is_reply_to_name(&d.queue),
        Wire::ExchangeDelete(_)
        | Wire::ExchangeBind(_)
        | Wire::ExchangeUnbind(_)
        | Wire::QueueBind(_)
        | Wire::QueueUnbind(_)
        | Wire::QueueDelete(_) => true,
        _ => false,
    }
}

/// Replies and notifications only a server sends.
fn is_server_only(msg: &Wire) -> bool {
    matches!(
        msg,
        Wire::HelloOk(_)
            | Wire::Blocked { .. }
            | Wire::Unblocked
            | Wire::ChannelOpenOk(_)
            | Wire::ExchangeDeclareOk(_)
            | Wire::ExchangeDeleteOk(_)
            | Wire::ExchangeBindOk(_)
            | Wire::ExchangeUnbindOk(_)
            | Wire::QueueDeclareOk(_)
            | Wire::QueuePurgeOk(_)
            | Wire::QueueBindOk(_)
            | Wire::QueueUnbindOk(_)
            | Wire::QueueDeleteOk(_)
            | Wire::QosOk(_)
            | Wire::ConsumeOk(_)
            | Wire::CancelOk(_)
            | Wire::ServerCancel(_)
            | Wire::Deliver(_)
            | Wire::Return(_)
            | Wire::GetOk(_)
            | Wire::GetEmpty(_)
            | Wire::RecoverOk(_)
            | Wire::ConfirmSelectOk(_)
            | Wire::Confirm(_)
            | Wire::TxSelectOk(_)
            | Wire::TxCommitOk(_)
            | Wire::TxRollbackOk(_)
            | Wire::ChannelFlowOk(_)
    )
}
