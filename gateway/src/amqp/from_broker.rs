//! Broker -> client: native frames translated into AMQP frames in the
//! order they arrive. Deliveries are read straight from the verified
//! `DeliverBatch` view.

use std::rc::Rc;
use std::time::{Duration, Instant};

use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use bytes::BytesMut;
use futures_lite::AsyncReadExt;
use ringmq_amqp_codec::content::{put_content, put_deliver};
use ringmq_protocol::frame::{Frame, FrameDecoder, Kind};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::verify::{dense_bodies, view};
use ringmq_protocol::{wire, DecodeError, ErrorCode, Properties};
use ringmq_rt::connection::ReadHalf;
use tracing::{debug, error, warn};

use super::connection::{put_amqp, Conn, CLOSE_WAIT, HIGH_WATER};
use super::error::{broker_refusal, ConnError};
use crate::translate;

impl Conn {
    /// Reads and translates broker frames until the connection ends.
    pub(super) async fn from_broker(self: Rc<Self>, mut r: ReadHalf, mut decoder: FrameDecoder) {
        let mut buf = ringmq_rt::connection::ReadBuf::new();
        loop {
            let read = futures_lite::future::or(async { Some(r.read(buf.space()).await) }, async {
                self.done.wait().await;
                None
            })
            .await;
            let Some(Ok(n @ 1..)) = read else {
                self.broker_lost("the broker closed the connection").await;
                return;
            };
            self.last_broker_read.set(Instant::now());
            decoder.extend(buf.filled(n));
            loop {
                let frame = match decoder.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        warn!(error = %e, "undecodable frame from the broker");
                        self.send_close(&ConnError::new(
                            ErrorCode::InternalError,
                            "bad frame from the broker",
                        ));
                        self.done.set();
                        return;
                    }
                };
                if let Err(e) = self.on_broker_frame(&frame) {
                    warn!(error = %e, "cannot translate a frame from the broker");
                }
            }
            self.client_wake.notify();
            self.account();
            while self.client_out.borrow().len() > HIGH_WATER && !self.done.is_set() {
                self.broker_paused.set(true);
                futures_lite::future::or(self.client_drained.wait(), self.done.wait()).await;
            }
            if self.broker_paused.replace(false) {
                self.last_broker_read.set(Instant::now());
            }
        }
    }

    /// The native connection is gone (closed, failed, or silent past two
    /// heartbeat intervals): the client gets connection.close 320 and the
    /// connection ends. Not once the connection is done, or the client has
    /// its close-ok (the socket is then the client's to close).
    pub(super) async fn broker_lost(self: &Rc<Self>, why: &str) {
        if self.done.is_set() || self.close_ok_sent.get() {
            return;
        }
        warn!(why, "broker connection lost");
        self.send_close(&ConnError::new(
            ErrorCode::ConnectionForced,
            "broker connection lost",
        ));
        glommio::timer::sleep(Duration::from_millis(100)).await;
        self.done.set();
    }

    fn on_broker_frame(self: &Rc<Self>, frame: &Frame) -> Result<(), DecodeError> {
        let kind = frame.kind()?;
        // Hot path: deliveries straight from the flatbuffer view.
        if kind == Kind::Deliver {
            return self.deliveries(frame);
        }
        let msg = Message::decode(frame)?;
        let is_reply = frame.header.kind & 0x8000 != 0;
        match msg {
            Message::Heartbeat => {}
            Message::Return(b) => self.returns(b),
            Message::Confirm(b) => self.confirms(b),
            Message::ServerCancel(t) if self.st.borrow().cancel_notify => {
                let mut st = self.st.borrow_mut();
                let waiting = st
                    .pending
                    .values()
                    .any(|p| p.channel == t.channel && !p.nowait);
                if waiting {
                    let chan = st.channels.entry(t.channel).or_default();
                    chan.held_cancels.push(t.consumer_tag);
                } else {
                    drop(st);
                    self.send_cancel(t.channel, &t.consumer_tag);
                }
            }
            Message::Blocked { reason } => {
                self.st.borrow_mut().broker_blocked = Some(reason);
                self.update_blocked();
            }
            Message::Unblocked => {
                self.st.borrow_mut().broker_blocked = None;
                self.update_blocked();
            }
            Message::ServerCancel(_) => {}
            Message::ChannelClose(c) => {
                // The broker closed a channel (soft error): requests still
                // pending on it will not be answered.
                {
                    let mut st = self.st.borrow_mut();
                    st.pending.retain(|_, p| p.channel != c.channel);
                    let chan = st.channels.entry(c.channel).or_default();
                    chan.closing = true;
                    chan.broker_done = false;
                    chan.content = None;
                }
                let (class, method) = translate::method_ids(c.failed_kind);
                let e = ConnError::from(broker_refusal(c.code, &c.text)).at(class, method);
                self.send_channel_close(c.channel, &e);
            }
            Message::Close(c) => {
                self.to_broker(0, &Message::CloseOk);
                let (class, method) = translate::method_ids(c.failed_kind);
                self.send_close(
                    &ConnError::from(broker_refusal(c.code, &c.text)).at(class, method),
                );
            }
            reply if is_reply => self.on_reply(frame.header.corr_id, &reply),
            other => debug!(kind = %other.kind(), "ignored frame from the broker"),
        }
        Ok(())
    }

    /// Returned messages: `basic.return` and the content of each.
    fn returns(&self, b: m::ReturnBatch) {
        let frame_max = self.st.borrow().frame_max;
        let mut out = self.client_out.borrow_mut();
        for ret in b.returns {
            let method = basic::Return {
                reply_code: ret.reply_code,
                reply_text: translate::short(&ret.reply_text),
                exchange: translate::short(&ret.exchange),
                routing_key: translate::short(&ret.routing_key),
            };
            put_amqp(
                &mut out,
                b.channel,
                AMQPClass::Basic(basic::AMQPMethod::Return(method)),
            );
            put_message(&mut out, b.channel, &ret.properties, &ret.body, frame_max);
        }
    }

    /// Publisher confirms: `basic.ack` or `basic.nack` each.
    fn confirms(&self, b: m::ConfirmBatch) {
        let mut out = self.client_out.borrow_mut();
        for c in b.items {
            let (delivery_tag, multiple) = (c.delivery_tag, c.multiple);
            let method = if c.nack {
                basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag,
                    multiple,
                    requeue: false,
                })
            } else {
                basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag,
                    multiple,
                })
            };
            put_amqp(&mut out, b.channel, AMQPClass::Basic(method));
        }
    }

    /// A reply to a request of the client.
    fn on_reply(self: &Rc<Self>, corr: u64, reply: &Message) {
        let pending = self.st.borrow_mut().pending.remove(&corr);
        let Some(p) = pending.filter(|p| !p.nowait) else {
            return;
        };
        match reply {
            Message::CloseOk => {
                let close_ok = connection::AMQPMethod::CloseOk(connection::CloseOk {});
                self.client_method(0, AMQPClass::Connection(close_ok));
                // As RabbitMQ: the socket is the client's to close after
                // close-ok; wait for that, for a while.
                self.close_ok_sent.set(true);
                self.finish_after(CLOSE_WAIT);
            }
            Message::ChannelCloseOk(ch) => {
                let close_ok = channel::AMQPMethod::CloseOk(channel::CloseOk {});
                self.client_method(*ch, AMQPClass::Channel(close_ok));
            }
            Message::GetOk(g) => {
                let frame_max = self.st.borrow().frame_max;
                let get_ok = basic::GetOk {
                    delivery_tag: g.delivery_tag,
                    redelivered: g.redelivered,
                    exchange: translate::short(&g.exchange),
                    routing_key: translate::short(&g.routing_key),
                    message_count: g.message_count,
                };
                let mut out = self.client_out.borrow_mut();
                put_amqp(
                    &mut out,
                    g.channel,
                    AMQPClass::Basic(basic::AMQPMethod::GetOk(get_ok)),
                );
                put_message(&mut out, g.channel, &g.properties, &g.body, frame_max);
                drop(out);
                self.client_wake.notify();
            }
            other => {
                if let Some(class) = translate::reply(other) {
                    self.client_method(p.channel, class);
                }
            }
        }
        self.release_cancels(p.channel);
    }

    /// `basic.cancel` from the server for one of the client's consumers.
    fn send_cancel(&self, channel: u16, consumer_tag: &str) {
        let cancel = basic::Cancel {
            consumer_tag: translate::short(consumer_tag),
            nowait: true,
        };
        self.client_method(channel, AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)));
    }

    /// Sends the cancels held for `channel` once no request on it waits
    /// for its reply.
    fn release_cancels(&self, channel: u16) {
        let held = {
            let mut st = self.st.borrow_mut();
            let waiting = st
                .pending
                .values()
                .any(|p| p.channel == channel && !p.nowait);
            match st.channels.get_mut(&channel) {
                Some(chan) if !waiting => std::mem::take(&mut chan.held_cancels),
                _ => return,
            }
        };
        for tag in held {
            self.send_cancel(channel, &tag);
        }
    }

    /// A `DeliverBatch`: each delivery becomes `basic.deliver`, a content
    /// header and body frames.
    fn deliveries(&self, frame: &Frame) -> Result<(), DecodeError> {
        let batch = view::<wire::DeliverBatch>(Kind::Deliver, &frame.body)?;
        let ch = batch.channel();
        let frame_max = self.st.borrow().frame_max;
        let mut out = self.client_out.borrow_mut();
        for run in batch.dense().iter().flatten() {
            let props = match run.properties() {
                None => None,
                Some(p) => Some(translate::props_to_amqp(&Properties::decode(Some(p))?)),
            };
            let redelivered = run.redelivered();
            let (tag, exchange, routing_key) = (
                run.consumer_tag().unwrap_or(""),
                run.exchange().unwrap_or(""),
                run.routing_key().unwrap_or(""),
            );
            let bodies = dense_bodies("DenseDelivery", run.sizes(), run.bodies())?;
            for (i, body) in bodies.enumerate() {
                let again = redelivered.is_some_and(|r| i < r.len() && r.get(i));
                let delivery_tag = run.first_tag().wrapping_add(i as u64);
                put_deliver(
                    &mut *out,
                    ch,
                    tag,
                    delivery_tag,
                    again,
                    exchange,
                    routing_key,
                );
                put_content_logged(&mut out, ch, props.as_ref(), body, frame_max);
            }
        }
        for d in batch.deliveries().iter().flatten() {
            put_deliver(
                &mut *out,
                ch,
                d.consumer_tag().unwrap_or(""),
                d.delivery_tag(),
                d.redelivered(),
                d.exchange().unwrap_or(""),
                d.routing_key().unwrap_or(""),
            );
            let props = Properties::decode(d.properties())?;
            let body = d.body().map(|b| b.bytes()).unwrap_or(&[]);
            put_message(&mut out, ch, &props, body, frame_max);
        }
        Ok(())
    }
}

/// Appends a message's content header (with its properties, if any) and
/// body frames.
fn put_message(out: &mut BytesMut, ch: u16, props: &Properties, body: &[u8], frame_max: u32) {
    let amqp = (!props.is_empty()).then(|| translate::props_to_amqp(props));
    put_content_logged(out, ch, amqp.as_ref(), body, frame_max);
}

/// Appends a content header and body frames; properties amq-protocol
/// cannot encode are logged (the content is left out).
fn put_content_logged(
    out: &mut BytesMut,
    ch: u16,
    props: Option<&basic::AMQPProperties>,
    body: &[u8],
    frame_max: u32,
) {
    if let Err(e) = put_content(out, ch, props, body, frame_max) {
        error!(error = %e, "cannot encode AMQP content header");
    }
}
