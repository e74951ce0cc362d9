//! [`Message`]: every frame kind as a value, decoded from a verified body.

use bytes::Bytes;

use super::basic::{Consume, ConsumerTag, Get, GetOk, Qos, Recover, SettleBatch};
use super::channel::{ChannelClose, ChannelFlow};
use super::confirm::ConfirmBatch;
use super::connection::{Close, Hello, HelloOk};
use super::deliver::{DeliverBatch, ReturnBatch};
use super::exchange::{Bind, ExchangeDeclare, ExchangeDelete};
use super::publish::PublishBatch;
use super::queue::{MessageCount, QueueDeclare, QueueDeclareOk, QueueDelete, QueuePurge};
use crate::error::DecodeError;
use crate::frame::{Frame, Kind};
use crate::verify::view;
use crate::wire;

/// Every frame as a value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[allow(missing_docs, clippy::large_enum_variant)]
pub enum Message {
    Hello(Hello),
    HelloOk(HelloOk),
    Close(Close),
    CloseOk,
    Heartbeat,
    Open { vhost: String },
    OpenOk,
    Blocked { reason: String },
    Unblocked,
    ChannelOpen(u16),
    ChannelOpenOk(u16),
    ChannelClose(ChannelClose),
    ChannelCloseOk(u16),
    ChannelFlow(ChannelFlow),
    ChannelFlowOk(ChannelFlow),
    ExchangeDeclare(ExchangeDeclare),
    ExchangeDeclareOk(u16),
    ExchangeDelete(ExchangeDelete),
    ExchangeDeleteOk(u16),
    ExchangeBind(Bind),
    ExchangeBindOk(u16),
    ExchangeUnbind(Bind),
    ExchangeUnbindOk(u16),
    QueueDeclare(QueueDeclare),
    QueueDeclareOk(QueueDeclareOk),
    QueuePurge(QueuePurge),
    QueuePurgeOk(MessageCount),
    QueueBind(Bind),
    QueueBindOk(u16),
    QueueUnbind(Bind),
    QueueUnbindOk(u16),
    QueueDelete(QueueDelete),
    QueueDeleteOk(MessageCount),
    Qos(Qos),
    QosOk(u16),
    Consume(Consume),
    ConsumeOk(ConsumerTag),
    Cancel(ConsumerTag),
    CancelOk(ConsumerTag),
    ServerCancel(ConsumerTag),
    Publish(PublishBatch),
    Deliver(DeliverBatch),
    Return(ReturnBatch),
    Get(Get),
    GetOk(GetOk),
    GetEmpty(u16),
    Settle(SettleBatch),
    Recover(Recover),
    RecoverOk(u16),
    ConfirmSelect(u16),
    ConfirmSelectOk(u16),
    Confirm(ConfirmBatch),
    TxSelect(u16),
    TxSelectOk(u16),
    TxCommit(u16),
    TxCommitOk(u16),
    TxRollback(u16),
    TxRollbackOk(u16),
}

fn string(s: Option<&str>) -> String {
    s.map(str::to_owned).unwrap_or_default()
}

/// The channel of a frame whose body is only a channel number.
fn channel_only(kind: Kind, body: &Bytes) -> Result<u16, DecodeError> {
    Ok(view::<wire::ChannelOnly>(kind, body)?.channel())
}

impl Message {
    /// The frame kind carrying this message.
    pub fn kind(&self) -> Kind {
        use Message as M;
        match self {
            M::Hello(_) => Kind::Hello,
            M::HelloOk(_) => Kind::HelloOk,
            M::Close(_) => Kind::Close,
            M::CloseOk => Kind::CloseOk,
            M::Heartbeat => Kind::Heartbeat,
            M::Open { .. } => Kind::Open,
            M::OpenOk => Kind::OpenOk,
            M::Blocked { .. } => Kind::Blocked,
            M::Unblocked => Kind::Unblocked,
            M::ChannelOpen(_) => Kind::ChannelOpen,
            M::ChannelOpenOk(_) => Kind::ChannelOpenOk,
            M::ChannelClose(_) => Kind::ChannelClose,
            M::ChannelCloseOk(_) => Kind::ChannelCloseOk,
            M::ChannelFlow(_) => Kind::ChannelFlow,
            M::ChannelFlowOk(_) => Kind::ChannelFlowOk,
            M::ExchangeDeclare(_) => Kind::ExchangeDeclare,
            M::ExchangeDeclareOk(_) => Kind::ExchangeDeclareOk,
            M::ExchangeDelete(_) => Kind::ExchangeDelete,
            M::ExchangeDeleteOk(_) => Kind::ExchangeDeleteOk,
            M::ExchangeBind(_) => Kind::ExchangeBind,
            M::ExchangeBindOk(_) => Kind::ExchangeBindOk,
            M::ExchangeUnbind(_) => Kind::ExchangeUnbind,
            M::ExchangeUnbindOk(_) => Kind::ExchangeUnbindOk,
            M::QueueDeclare(_) => Kind::QueueDeclare,
            M::QueueDeclareOk(_) => Kind::QueueDeclareOk,
            M::QueuePurge(_) => Kind::QueuePurge,
            M::QueuePurgeOk(_) => Kind::QueuePurgeOk,
            M::QueueBind(_) => Kind::QueueBind,
            M::QueueBindOk(_) => Kind::QueueBindOk,
            M::QueueUnbind(_) => Kind::QueueUnbind,
            M::QueueUnbindOk(_) => Kind::QueueUnbindOk,
            M::QueueDelete(_) => Kind::QueueDelete,
            M::QueueDeleteOk(_) => Kind::QueueDeleteOk,
            M::Qos(_) => Kind::Qos,
            M::QosOk(_) => Kind::QosOk,
            M::Consume(_) => Kind::Consume,
            M::ConsumeOk(_) => Kind::ConsumeOk,
            M::Cancel(_) => Kind::Cancel,
            M::CancelOk(_) => Kind::CancelOk,
            M::ServerCancel(_) => Kind::ServerCancel,
            M::Publish(_) => Kind::Publish,
            M::Deliver(_) => Kind::Deliver,
            M::Return(_) => Kind::Return,
            M::Get(_) => Kind::Get,
            M::GetOk(_) => Kind::GetOk,
            M::GetEmpty(_) => Kind::GetEmpty,
            M::Settle(_) => Kind::Settle,
            M::Recover(_) => Kind::Recover,
            M::RecoverOk(_) => Kind::RecoverOk,
            M::ConfirmSelect(_) => Kind::ConfirmSelect,
            M::ConfirmSelectOk(_) => Kind::ConfirmSelectOk,
            M::Confirm(_) => Kind::Confirm,
            M::TxSelect(_) => Kind::TxSelect,
            M::TxSelectOk(_) => Kind::TxSelectOk,
            M::TxCommit(_) => Kind::TxCommit,
            M::TxCommitOk(_) => Kind::TxCommitOk,
            M::TxRollback(_) => Kind::TxRollback,
            M::TxRollbackOk(_) => Kind::TxRollbackOk,
        }
    }

    /// The channel the message is about; 0 for connection-level messages.
    pub fn channel(&self) -> u16 {
        use Message as M;
        match self {
            M::Hello(_)
            | M::HelloOk(_)
            | M::CloseOk
            | M::Heartbeat
            | M::Open { .. }
            | M::OpenOk
            | M::Blocked { .. }
            | M::Unblocked => 0,
            M::Close(c) => c.channel,
            M::ChannelOpen(c)
            | M::ChannelOpenOk(c)
            | M::ChannelCloseOk(c)
            | M::ExchangeDeclareOk(c)
            | M::ExchangeDeleteOk(c)
            | M::ExchangeBindOk(c)
            | M::ExchangeUnbindOk(c)
            | M::QueueBindOk(c)
            | M::QueueUnbindOk(c)
            | M::QosOk(c)
            | M::GetEmpty(c)
            | M::RecoverOk(c)
            | M::ConfirmSelect(c)
            | M::ConfirmSelectOk(c)
            | M::TxSelect(c)
            | M::TxSelectOk(c)
            | M::TxCommit(c)
            | M::TxCommitOk(c)
            | M::TxRollback(c)
            | M::TxRollbackOk(c) => *c,
            M::ChannelClose(c) => c.channel,
            M::ChannelFlow(c) | M::ChannelFlowOk(c) => c.channel,
            M::ExchangeDeclare(m) => m.channel,
            M::ExchangeDelete(m) => m.channel,
            M::ExchangeBind(m) | M::ExchangeUnbind(m) | M::QueueBind(m) | M::QueueUnbind(m) => {
                m.channel
            }
            M::QueueDeclare(m) => m.channel,
            M::QueueDeclareOk(m) => m.channel,
            M::QueuePurge(m) => m.channel,
            M::QueuePurgeOk(m) | M::QueueDeleteOk(m) => m.channel,
            M::QueueDelete(m) => m.channel,
            M::Qos(m) => m.channel,
            M::Consume(m) => m.channel,
            M::ConsumeOk(m) | M::Cancel(m) | M::CancelOk(m) | M::ServerCancel(m) => m.channel,
            M::Publish(m) => m.channel,
            M::Deliver(m) => m.channel,
            M::Return(m) => m.channel,
            M::Get(m) => m.channel,
            M::GetOk(m) => m.channel,
            M::Settle(m) => m.channel,
            M::Recover(m) => m.channel,
            M::Confirm(m) => m.channel,
        }
    }

    /// Decodes a frame, verifying its body.
    ///
    /// # Errors
    /// Unknown kind, a body that fails verification, or a field out of range.
    pub fn decode(frame: &Frame) -> Result<Message, DecodeError> {
        use Message as M;
        let kind = frame.kind()?;
        let body = &frame.body;
        macro_rules! t {
            ($ty:ident) => {
                $ty::from_table(view::<wire::$ty>(kind, body)?, body)?
            };
        }
        let chan = || channel_only(kind, body);
        Ok(match kind {
            Kind::Hello => M::Hello(t!(Hello)),
            Kind::HelloOk => M::HelloOk(t!(HelloOk)),
            Kind::Close => M::Close(t!(Close)),
            Kind::CloseOk => M::CloseOk,
            Kind::Heartbeat => M::Heartbeat,
            Kind::Open => M::Open {
                vhost: string(view::<wire::Open>(kind, body)?.vhost()),
            },
            Kind::OpenOk => M::OpenOk,
            Kind::Blocked => M::Blocked {
                reason: string(view::<wire::Blocked>(kind, body)?.reason()),
            },
            Kind::Unblocked => M::Unblocked,
            Kind::ChannelOpen => M::ChannelOpen(chan()?),
            Kind::ChannelOpenOk => M::ChannelOpenOk(chan()?),
            Kind::ChannelClose => M::ChannelClose(t!(ChannelClose)),
            Kind::ChannelCloseOk => M::ChannelCloseOk(chan()?),
            Kind::ChannelFlow => M::ChannelFlow(t!(ChannelFlow)),
            Kind::ChannelFlowOk => M::ChannelFlowOk(t!(ChannelFlow)),
            Kind::ExchangeDeclare => M::ExchangeDeclare(t!(ExchangeDeclare)),
            Kind::ExchangeDeclareOk => M::ExchangeDeclareOk(chan()?),
            Kind::ExchangeDelete => M::ExchangeDelete(t!(ExchangeDelete)),
            Kind::ExchangeDeleteOk => M::ExchangeDeleteOk(chan()?),
            Kind::ExchangeBind => M::ExchangeBind(t!(Bind)),
            Kind::ExchangeBindOk => M::ExchangeBindOk(chan()?),
            Kind::ExchangeUnbind => M::ExchangeUnbind(t!(Bind)),
            Kind::ExchangeUnbindOk => M::ExchangeUnbindOk(chan()?),
            Kind::QueueDeclare => M::QueueDeclare(t!(QueueDeclare)),
            Kind::QueueDeclareOk => M::QueueDeclareOk(t!(QueueDeclareOk)),
            Kind::QueuePurge => M::QueuePurge(t!(QueuePurge)),
            Kind::QueuePurgeOk => M::QueuePurgeOk(t!(MessageCount)),
            Kind::QueueBind => M::QueueBind(t!(Bind)),
            Kind::QueueBindOk => M::QueueBindOk(chan()?),
            Kind::QueueUnbind => M::QueueUnbind(t!(Bind)),
            Kind::QueueUnbindOk => M::QueueUnbindOk(chan()?),
            Kind::QueueDelete => M::QueueDelete(t!(QueueDelete)),
            Kind::QueueDeleteOk => M::QueueDeleteOk(t!(MessageCount)),
            Kind::Qos => M::Qos(t!(Qos)),
            Kind::QosOk => M::QosOk(chan()?),
            Kind::Consume => M::Consume(t!(Consume)),
            Kind::ConsumeOk => M::ConsumeOk(t!(ConsumerTag)),
            Kind::Cancel => M::Cancel(t!(ConsumerTag)),
            Kind::CancelOk => M::CancelOk(t!(ConsumerTag)),
            Kind::ServerCancel => M::ServerCancel(t!(ConsumerTag)),
            Kind::Publish => M::Publish(t!(PublishBatch)),
            Kind::Deliver => M::Deliver(t!(DeliverBatch)),
            Kind::Return => M::Return(t!(ReturnBatch)),
            Kind::Get => M::Get(t!(Get)),
            Kind::GetOk => M::GetOk(t!(GetOk)),
            Kind::GetEmpty => M::GetEmpty(chan()?),
            Kind::Settle => M::Settle(t!(SettleBatch)),
            Kind::Recover => M::Recover(t!(Recover)),
            Kind::RecoverOk => M::RecoverOk(chan()?),
            Kind::ConfirmSelect => M::ConfirmSelect(chan()?),
            Kind::ConfirmSelectOk => M::ConfirmSelectOk(chan()?),
            Kind::Confirm => M::Confirm(t!(ConfirmBatch)),
            Kind::TxSelect => M::TxSelect(chan()?),
            Kind::TxSelectOk => M::TxSelectOk(chan()?),
            Kind::TxCommit => M::TxCommit(chan()?),
            Kind::TxCommitOk => M::TxCommitOk(chan()?),
            Kind::TxRollback => M::TxRollback(chan()?),
            Kind::TxRollbackOk => M::TxRollbackOk(chan()?),
        })
    }
}
