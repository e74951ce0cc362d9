//! Client -> broker: AMQP frames read from the client, translated in
//! order. Publishes are assembled and batched per channel, acks batched,
//! every other method becomes one native request.

use std::rc::Rc;

use amq_protocol::protocol::{channel, connection, AMQPClass};
use futures_lite::AsyncReadExt;
use ringmq_amqp_codec::method::{parse_header, parse_method};
use ringmq_amqp_codec::table::check_header_tables;
use ringmq_amqp_codec::{
    Decoder, RawFrame, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD,
};
use ringmq_protocol::message::{self as m, Message};
use ringmq_protocol::ErrorCode;
use ringmq_rt::connection::ReadHalf;
use ringmq_rt::local::Latch;
use tracing::{info, warn};

use super::connection::{close_msg, is_connection_close, Conn, HIGH_WATER};
use super::content::{self, Content, ContentError, Progress};
use super::error::{check_tables, unparsable_method, ConnError, Ended};
use crate::translate::{self, Inbound};

/// Publishes batched per channel before the batch is sent.
const PUBLISH_BATCH: usize = 1024;

/// What a client frame leaves to do.
enum Next {
    /// Read on.
    Continue,
    /// The connection is finished (the close handshake completed).
    Finished,
}

impl Conn {
    /// Reads and translates client frames until the connection ends.
    pub(super) async fn from_client(
        self: &Rc<Self>,
        r: &mut ReadHalf,
        decoder: &mut Decoder,
        stopping: &Latch,
    ) -> Ended {
        let mut buf = ringmq_rt::connection::ReadBuf::new();
        loop {
            self.wait_while_blocked().await;
            let read = futures_lite::future::or(async { Some(r.read(buf.space()).await) }, async {
                futures_lite::future::or(stopping.wait(), self.done.wait()).await;
                None
            })
            .await;
            let n = match read {
                _ if self.silent.get() => return self.missed_heartbeats(),
                None if stopping.is_set() && !self.done.is_set() => {
                    return ConnError::new(
                        ErrorCode::ConnectionForced,
                        "broker forced connection closure with reason 'shutdown'",
                    )
                    .into()
                }
                Some(Ok(n)) if n > 0 => n,
                Some(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return self.missed_heartbeats()
                }
                _ => return Ended::Gone,
            };
            self.last_client_read.set(std::time::Instant::now());
            decoder.extend(buf.filled(n));
            if let Some(end) = self.client_frames(decoder) {
                return end;
            }
            self.flush_batches();
            self.account();
            while self.broker_out.borrow().len() > HIGH_WATER && !self.done.is_set() {
                self.paused.set(true);
                futures_lite::future::or(self.broker_drained.wait(), self.done.wait()).await;
            }
            self.resume();
        }
    }

    /// While the gateway's memory alarm is raised, a connection that
    /// publishes is not read (TCP pushes back on the client) and is told
    /// `connection.blocked`; deliveries and acks of others keep flowing.
    /// A connection holding content in assembly is read until it holds
    /// none (within its `content_buffer_max`): pausing it there would keep
    /// what it holds, and so the alarm, for ever.
    async fn wait_while_blocked(&self) {
        self.update_blocked();
        while self.alarm.raised()
            && self.st.borrow().published
            && self.meter.held() == 0
            && !self.done.is_set()
        {
            self.paused.set(true);
            futures_lite::future::or(self.alarm.changed.wait(), self.done.wait()).await;
            self.update_blocked();
        }
        self.resume();
    }

    /// Reading goes on: the client's silence counts again from now.
    fn resume(&self) {
        if self.paused.replace(false) {
            self.last_client_read.set(std::time::Instant::now());
        }
    }

    fn missed_heartbeats(&self) -> Ended {
        let hb = self.st.borrow().heartbeat;
        warn!(
            timeout_s = u64::from(hb) * 2,
            "missed heartbeats from client, closing"
        );
        Ended::Gone
    }

    /// Handles every whole frame in the decoder; `Some` when the
    /// connection ends.
    fn client_frames(&self, decoder: &mut Decoder) -> Option<Ended> {
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return None,
                Err(e) => return Some(ConnError::new(ErrorCode::FrameError, e).into()),
            };
            let end = match self.on_client_frame(frame) {
                Ok(Next::Continue) => continue,
                Ok(Next::Finished) => Ended::Gone,
                Err(e) => e.into(),
            };
            self.flush_batches();
            return Some(end);
        }
    }

    /// Handles one client frame.
    fn on_client_frame(&self, f: RawFrame) -> Result<Next, ConnError> {
        let ch = f.channel;
        if self.st.borrow().closing {
            // After our connection.close only close/close-ok matter.
            return Ok(if is_connection_close(&f) {
                Next::Finished
            } else {
                Next::Continue
            });
        }
        if self.st.borrow().client_closed {
            return Ok(Next::Continue); // late frames after the client's close
        }
        match f.kind {
            FRAME_HEARTBEAT => Ok(Next::Continue),
            FRAME_METHOD => self.on_method(ch, &f),
            FRAME_HEADER => self.on_header(ch, &f).map(|()| Next::Continue),
            FRAME_BODY => self.on_body(ch, &f).map(|()| Next::Continue),
            _ => Err(ConnError::new(ErrorCode::FrameError, "unknown frame type")),
        }
    }

    fn on_method(&self, ch: u16, f: &RawFrame) -> Result<Next, ConnError> {
        check_tables(&f.payload)?;
        let class = parse_method(&f.payload).map_err(|_| unparsable_method(&f.payload))?;
        let (class_id, method_id) = (class.get_amqp_class_id(), class.get_amqp_method_id());
        let at = |e: ConnError| e.at(class_id, method_id);
        if let Some(c) = self.st.borrow().channels.get(&ch) {
            if c.content.is_some() {
                return Err(at(ConnError::new(
                    ErrorCode::UnexpectedFrame,
                    "expected content header for class 60, got non content header frame instead",
                )));
            }
            // A closing channel discards everything but close and close-ok.
            let keep = matches!(
                class,
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_) | channel::AMQPMethod::Close(_))
            );
            if c.closing && !keep {
                return Ok(Next::Continue);
            }
        }
        let connection_method = matches!(class, AMQPClass::Connection(_));
        if ch == 0 && !connection_method {
            return Err(at(ConnError::new(
                ErrorCode::CommandInvalid,
                "only connection methods are valid on channel 0",
            )));
        }
        if ch != 0 && connection_method {
            return Err(at(ConnError::new(
                ErrorCode::CommandInvalid,
                "connection methods are only valid on channel 0",
            )));
        }
        // basic.qos: amq-protocol drops prefetch_size; RabbitMQ refuses it.
        if (class_id, method_id) == (60, 10) && f.payload.len() >= 8 {
            let size = u32::from_be_bytes([f.payload[4], f.payload[5], f.payload[6], f.payload[7]]);
            if size != 0 {
                return Err(at(ConnError::new(
                    ErrorCode::NotImplemented,
                    format_args!("prefetch_size!=0 ({size})"),
                )));
            }
        }
        self.inbound(ch, translate::inbound(ch, class)).map_err(at)
    }

    /// Carries out what a client method maps to.
    fn inbound(&self, ch: u16, inbound: Inbound) -> Result<Next, ConnError> {
        match inbound {
            Inbound::Request { msg, nowait } => {
                if let Message::ChannelOpen(_) = msg {
                    self.count_channel(ch)?;
                }
                self.request(ch, &msg, nowait);
            }
            Inbound::Nothing => {}
            Inbound::Publish(p) => {
                let mut st = self.st.borrow_mut();
                let Some(c) = st.channels.get_mut(&ch) else {
                    return Err(ConnError::new(
                        ErrorCode::ChannelError,
                        format_args!("expected 'channel.open' (channel {ch} is not open)"),
                    ));
                };
                c.content = Some(Content::new(p, &self.meter));
                st.published = true;
            }
            Inbound::Settle(s) => self.settle(ch, s),
            Inbound::ChannelClose => self.client_closes_channel(ch)?,
            Inbound::ChannelCloseOk => {
                let chan = self.st.borrow_mut().channels.remove(&ch);
                if chan.is_some_and(|c| !c.broker_done) {
                    self.flush_batches();
                    self.to_broker(0, &Message::ChannelCloseOk(ch));
                }
            }
            Inbound::ConnectionClose => {
                self.st.borrow_mut().client_closed = true;
                self.flush_batches();
                self.request(0, &close_msg(200, "closed by client"), false);
            }
            Inbound::ConnectionCloseOk => return Ok(Next::Finished),
            Inbound::UpdateSecret { reason } => {
                // As RabbitMQ 3.10 with its internal user database, whose
                // credentials never expire: accepted, never logged.
                info!(%reason, "client updated its secret");
                let ok = connection::AMQPMethod::UpdateSecretOk(connection::UpdateSecretOk {});
                self.client_method(0, AMQPClass::Connection(ok));
            }
            Inbound::Invalid(refusal) => return Err(refusal.into()),
        }
        Ok(Next::Continue)
    }

    /// A channel opens: as RabbitMQ, `channel_max` limits how many are
    /// open at once (any number 1..=65535 may be used).
    fn count_channel(&self, ch: u16) -> Result<(), ConnError> {
        let mut st = self.st.borrow_mut();
        let (open, max) = (st.channels.len(), usize::from(st.channel_max));
        if !st.channels.contains_key(&ch) && max > 0 && open >= max {
            return Err(ConnError::new(
                ErrorCode::NotAllowed,
                format_args!(
                    "number of channels opened ({open}) has reached the negotiated channel_max ({max})"
                ),
            ));
        }
        st.channels.entry(ch).or_default();
        Ok(())
    }

    /// Adds a settlement to the channel's batch (sent with the batch, or
    /// before the next publish or request).
    fn settle(&self, ch: u16, s: m::Settle) {
        let flush_first = {
            let st = self.st.borrow();
            st.publishes.is_some() || st.settles.as_ref().is_some_and(|(c, _)| *c != ch)
        };
        if flush_first {
            self.flush_batches();
        }
        let mut st = self.st.borrow_mut();
        st.settles.get_or_insert_with(|| (ch, Vec::new())).1.push(s);
    }

    /// The client closes a channel: the broker is asked, the number freed.
    fn client_closes_channel(&self, ch: u16) -> Result<(), ConnError> {
        let known = match self.st.borrow_mut().channels.get_mut(&ch) {
            Some(c) => {
                c.content = None;
                true
            }
            None => false,
        };
        if !known {
            return Err(ConnError::new(
                ErrorCode::ChannelError,
                format_args!("channel {ch} is not open"),
            ));
        }
        let close = m::ChannelClose {
            channel: ch,
            code: 200,
            text: "closed by client".into(),
            failed_kind: 0,
        };
        self.request(ch, &Message::ChannelClose(close), false);
        self.st.borrow_mut().channels.remove(&ch);
        Ok(())
    }

    /// True when content frames on `ch` are to be discarded (a close is
    /// in progress); an error when the channel is not open.
    fn discards_content(&self, ch: u16) -> Result<bool, ConnError> {
        let st = self.st.borrow();
        let c = st.channels.get(&ch).ok_or_else(|| not_open(ch))?;
        Ok(c.closing)
    }

    fn on_header(&self, ch: u16, f: &RawFrame) -> Result<(), ConnError> {
        if self.discards_content(ch)? {
            return Ok(());
        }
        if self.content_of(ch, |c| c.has_header()) != Some(false) {
            return Err(content_error(content::unexpected(
                "content header without basic.publish",
            )));
        }
        check_header_tables(&f.payload)
            .map_err(|e| ConnError::new(ErrorCode::SyntaxError, e).at(60, 0))?;
        let header =
            parse_header(&f.payload).map_err(|e| ConnError::new(ErrorCode::SyntaxError, e))?;
        let max = self.cfg.max_message_size as u64;
        let progress = match self.content_of(ch, |c| c.header(&header, max)) {
            Some(Err(ContentError::TooLarge(r))) => {
                self.fail_channel(ch, ConnError::from(r).at(60, 40));
                return Ok(());
            }
            Some(p) => p.map_err(content_error)?,
            None => return Ok(()),
        };
        if progress == Progress::Complete {
            self.finish_publish(ch);
        }
        Ok(())
    }

    fn on_body(&self, ch: u16, f: &RawFrame) -> Result<(), ConnError> {
        if self.discards_content(ch)? {
            return Ok(());
        }
        let progress = match self.content_of(ch, |c| c.body(&f.payload)) {
            Some(Err(ContentError::TooLarge(r))) => {
                self.fail_channel(ch, ConnError::from(r).at(60, 40));
                return Ok(());
            }
            Some(p) => p.map_err(content_error)?,
            None => {
                return Err(content_error(content::unexpected(
                    "content body without basic.publish",
                )))
            }
        };
        if progress == Progress::Complete {
            self.finish_publish(ch);
        }
        Ok(())
    }

    /// Runs `f` on the content being assembled on `ch`, if any.
    fn content_of<R>(&self, ch: u16, f: impl FnOnce(&mut Content) -> R) -> Option<R> {
        let mut st = self.st.borrow_mut();
        st.channels
            .get_mut(&ch)
            .and_then(|c| c.content.as_mut())
            .map(f)
    }

    /// Moves a whole publish into the channel's batch.
    fn finish_publish(&self, ch: u16) {
        let mut st = self.st.borrow_mut();
        let Some(content) = st.channels.get_mut(&ch).and_then(|c| c.content.take()) else {
            return;
        };
        let p = content.finish();
        let flush_first =
            st.settles.is_some() || st.publishes.as_ref().is_some_and(|(c, _)| *c != ch);
        if flush_first {
            drop(st);
            self.flush_batches();
            st = self.st.borrow_mut();
        }
        let batch = st.publishes.get_or_insert_with(|| (ch, Vec::new()));
        batch.1.push(p);
        if batch.1.len() >= PUBLISH_BATCH {
            drop(st);
            self.flush_batches();
        }
    }

    /// Closes a channel for an error the gateway found itself: AMQP
    /// channel.close to the client, native ChannelClose to the broker.
    fn fail_channel(&self, ch: u16, e: ConnError) {
        if let Some(c) = self.st.borrow_mut().channels.get_mut(&ch) {
            c.closing = true;
            c.broker_done = true;
            c.content = None;
        }
        let close = m::ChannelClose {
            channel: ch,
            code: e.refusal.code.as_u16(),
            text: e.refusal.text.clone(),
            failed_kind: 0,
        };
        self.request(ch, &Message::ChannelClose(close), true);
        self.send_channel_close(ch, &e);
    }
}

/// The error for a frame on a channel that is not open.
fn not_open(ch: u16) -> ConnError {
    ConnError::new(
        ErrorCode::ChannelError,
        format_args!("channel {ch} is not open"),
    )
}

/// A content error that closes the connection.
fn content_error(e: ContentError) -> ConnError {
    match e {
        ContentError::Connection(r) | ContentError::TooLarge(r) => r.into(),
    }
}
