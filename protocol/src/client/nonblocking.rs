//! An async client over `futures-io` streams, runtime-agnostic (used on
//! glommio by ringmq's own tools; any executor works).
//!
//! [`connect`] performs the handshake and returns a [`Client`] and a
//! [`Driver`]; spawn `driver.run()` on the executor. The driver reads
//! frames (answering calls, routing deliveries, returns, confirms and
//! cancels to their channel) and writes what the client queued, batching
//! publishes and settlements of one channel into one frame.
//!
//! Single-threaded by design (`Rc`), like a glommio shard.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bytes::BytesMut;
use futures_channel::{mpsc, oneshot};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};

use crate::frame::{FrameDecoder, DEFAULT_FRAME_MAX};
use crate::message::{self as m, Message};
use crate::{Encoder, ErrorCode};

use super::{ClientError, ConnectOptions, Event};

type Answer = Result<Message, ClientError>;

struct Shared {
    out: RefCell<BytesMut>,
    enc: RefCell<Encoder>,
    publishes: RefCell<Vec<(u16, Vec<m::Publish>)>>,
    settles: RefCell<Vec<(u16, Vec<m::Settle>)>>,
    wake: mpsc::UnboundedSender<()>,
    pending: RefCell<HashMap<u64, (u16, oneshot::Sender<Answer>)>>,
    channels: RefCell<HashMap<u16, mpsc::UnboundedSender<Event>>>,
    next_corr: Cell<u64>,
    next_channel: Cell<u16>,
    closed: RefCell<Option<(u16, String)>>,
}

impl Shared {
    fn closed_error(&self) -> Option<ClientError> {
        self.closed
            .borrow()
            .as_ref()
            .map(|(code, text)| ClientError::ConnectionClosed {
                code: *code,
                text: text.clone(),
            })
    }

    fn queue_frame(&self, corr: u64, msg: &Message) {
        self.enc
            .borrow_mut()
            .encode(&mut self.out.borrow_mut(), corr, msg);
        let _ = self.wake.unbounded_send(());
    }

    /// Encodes buffered publishes and settlements into the output.
    fn encode_batches(&self) {
        let mut enc = self.enc.borrow_mut();
        let mut out = self.out.borrow_mut();
        for (channel, messages) in self.publishes.borrow_mut().drain(..) {
            enc.encode(
                &mut out,
                0,
                &Message::Publish(m::PublishBatch { channel, messages }),
            );
        }
        for (channel, items) in self.settles.borrow_mut().drain(..) {
            enc.encode(
                &mut out,
                0,
                &Message::Settle(m::SettleBatch { channel, items }),
            );
        }
    }

    fn fail_all(&self, code: u16, text: &str) {
        self.closed.replace(Some((code, text.to_owned())));
        for (_, (_, tx)) in self.pending.borrow_mut().drain() {
            let _ = tx.send(Err(ClientError::ConnectionClosed {
                code,
                text: text.to_owned(),
            }));
        }
        self.channels.borrow_mut().clear();
    }
}

/// A connection to the broker.
#[derive(Clone)]
pub struct Client {
    shared: Rc<Shared>,
    /// The server's handshake answer.
    pub server: Rc<m::HelloOk>,
}

/// Reads and writes the connection's frames; run it on the executor.
pub struct Driver<R, W> {
    shared: Rc<Shared>,
    reader: R,
    writer: W,
    decoder: FrameDecoder,
    wake: mpsc::UnboundedReceiver<()>,
}

/// Connects over an established stream (split into halves) and performs
/// the handshake.
///
/// # Errors
/// Socket errors or a refused login.
pub async fn connect<R, W>(
    mut reader: R,
    mut writer: W,
    opts: &ConnectOptions,
) -> Result<(Client, Driver<R, W>), ClientError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut enc = Encoder::new();
    let mut out = BytesMut::new();
    enc.encode(&mut out, 1, &opts.hello());
    writer.write_all(&out).await?;
    let mut decoder = FrameDecoder::new(DEFAULT_FRAME_MAX);
    let mut buf = vec![0u8; 64 * 1024];
    let hello_ok = loop {
        if let Some(f) = decoder.next_frame().map_err(ClientError::Decode)? {
            match Message::decode(&f).map_err(ClientError::Decode)? {
                Message::HelloOk(ok) => break ok,
                Message::Close(c) => {
                    return Err(ClientError::ConnectionClosed {
                        code: c.code,
                        text: c.text,
                    })
                }
                other => return Err(ClientError::Unexpected(other.kind())),
            }
        }
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Err(ClientError::ConnectionClosed {
                code: 0,
                text: "socket closed during the handshake".into(),
            });
        }
        decoder.extend(&buf[..n]);
    };
    let (wake_tx, wake_rx) = mpsc::unbounded();
    let shared = Rc::new(Shared {
        out: RefCell::new(BytesMut::with_capacity(64 * 1024)),
        enc: RefCell::new(enc),
        publishes: RefCell::default(),
        settles: RefCell::default(),
        wake: wake_tx,
        pending: RefCell::default(),
        channels: RefCell::default(),
        next_corr: Cell::new(2),
        next_channel: Cell::new(1),
        closed: RefCell::new(None),
    });
    Ok((
        Client {
            shared: shared.clone(),
            server: Rc::new(hello_ok),
        },
        Driver {
            shared,
            reader,
            writer,
            decoder,
            wake: wake_rx,
        },
    ))
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Driver<R, W> {
    /// Runs until the connection closes.
    ///
    /// # Errors
    /// Socket or decode errors; a server-initiated close is `Ok`.
    pub async fn run(self) -> Result<(), ClientError> {
        let Driver {
            shared,
            mut reader,
            mut writer,
            mut decoder,
            mut wake,
        } = self;
        let write = async {
            while wake.next().await.is_some() {
                while wake.try_recv().is_ok() {}
                shared.encode_batches();
                let chunk = shared.out.borrow_mut().split();
                if !chunk.is_empty() {
                    writer.write_all(&chunk).await?;
                }
                if shared.closed.borrow().is_some() && shared.out.borrow().is_empty() {
                    break;
                }
            }
            let _ = writer.close().await;
            Ok::<(), ClientError>(())
        };
        let read = async {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                while let Some(f) = decoder.next_frame().map_err(ClientError::Decode)? {
                    let corr = f.header.corr_id;
                    let is_reply = f.header.kind & 0x8000 != 0;
                    let msg = Message::decode(&f).map_err(ClientError::Decode)?;
                    if dispatch(&shared, corr, is_reply, msg) {
                        return Ok(());
                    }
                }
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    shared.fail_all(0, "socket closed by peer");
                    let _ = shared.wake.unbounded_send(());
                    return Ok(());
                }
                decoder.extend(&buf[..n]);
            }
        };
        let (r, w) = futures_lite::future::zip(read, write).await;
        r.and(w)
    }
}

/// Handles one frame; true when the connection is closed.
fn dispatch(shared: &Shared, corr: u64, is_reply: bool, msg: Message) -> bool {
    let to_channel = |ch: u16, e: Event| {
        if let Some(tx) = shared.channels.borrow().get(&ch) {
            let _ = tx.unbounded_send(e);
        }
    };
    match msg {
        Message::Close(c) => {
            shared.queue_frame(0, &Message::CloseOk);
            shared.fail_all(c.code, &c.text);
            return true;
        }
        Message::CloseOk => {
            shared.fail_all(ErrorCode::ReplySuccess.as_u16(), "closed");
            let _ = shared.wake.unbounded_send(());
            return true;
        }
        Message::Heartbeat => shared.queue_frame(0, &Message::Heartbeat),
        Message::ChannelClose(c) => {
            shared.queue_frame(0, &Message::ChannelCloseOk(c.channel));
            let waiting: Vec<u64> = shared
                .pending
                .borrow()
                .iter()
                .filter(|(_, (ch, _))| *ch == c.channel)
                .map(|(k, _)| *k)
                .collect();
            for k in waiting {
                if let Some((_, tx)) = shared.pending.borrow_mut().remove(&k) {
                    let _ = tx.send(Err(ClientError::ChannelClosed {
                        channel: c.channel,
                        code: c.code,
                        text: c.text.clone(),
                    }));
                }
            }
            to_channel(c.channel, Event::ChannelClosed(c.clone()));
            shared.channels.borrow_mut().remove(&c.channel);
        }
        Message::Deliver(b) => {
            for d in b.deliveries {
                to_channel(b.channel, Event::Deliver(b.channel, d));
            }
        }
        Message::Return(b) => {
            for r in b.returns {
                to_channel(b.channel, Event::Return(b.channel, r));
            }
        }
        Message::Confirm(b) => {
            for c in b.items {
                to_channel(b.channel, Event::Confirm(b.channel, c));
            }
        }
        Message::ServerCancel(t) => to_channel(t.channel, Event::Cancelled(t)),
        Message::Blocked { reason } => {
            for tx in shared.channels.borrow().values() {
                let _ = tx.unbounded_send(Event::Blocked(reason.clone()));
            }
        }
        Message::Unblocked => {
            for tx in shared.channels.borrow().values() {
                let _ = tx.unbounded_send(Event::Unblocked);
            }
        }
        other if is_reply => {
            if let Some((_, tx)) = shared.pending.borrow_mut().remove(&corr) {
                let _ = tx.send(Ok(other));
            }
        }
        _ => {}
    }
    false
}

/// A channel.
pub struct Channel {
    client: Client,
    /// The channel number.
    pub id: u16,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Client {
    /// Sends a request and waits for its reply.
    ///
    /// # Errors
    /// The channel or connection was closed by the server.
    pub async fn call(&self, msg: Message) -> Result<Message, ClientError> {
        if let Some(e) = self.shared.closed_error() {
            return Err(e);
        }
        let corr = self.shared.next_corr.get();
        self.shared.next_corr.set(corr + 1);
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .borrow_mut()
            .insert(corr, (msg.channel(), tx));
        // Publishes queued before this request go first.
        self.shared.encode_batches();
        self.shared.queue_frame(corr, &msg);
        rx.await.unwrap_or_else(|_| {
            Err(self
                .shared
                .closed_error()
                .unwrap_or(ClientError::ConnectionClosed {
                    code: 0,
                    text: "connection dropped".into(),
                }))
        })
    }

    /// Opens a channel.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn open_channel(&self) -> Result<Channel, ClientError> {
        let id = self.shared.next_channel.get();
        self.shared.next_channel.set(id + 1);
        let (tx, rx) = mpsc::unbounded();
        self.shared.channels.borrow_mut().insert(id, tx);
        self.call(Message::ChannelOpen(id)).await?;
        Ok(Channel {
            client: self.clone(),
            id,
            events: rx,
        })
    }

    /// Closes the connection normally.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn close(&self) -> Result<(), ClientError> {
        let msg = Message::Close(m::Close {
            code: ErrorCode::ReplySuccess.as_u16(),
            text: "bye".into(),
            failed_kind: 0,
            channel: 0,
        });
        match self.call(msg).await {
            Ok(_) | Err(ClientError::ConnectionClosed { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Channel {
    /// Sends a request on this channel (its `channel` field must be this
    /// channel's id) and waits for the reply.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn call(&self, msg: Message) -> Result<Message, ClientError> {
        self.client.call(msg).await
    }

    /// Queues a publish; it leaves with the next write, batched with the
    /// other publishes of this channel.
    pub fn publish(&self, p: m::Publish) {
        let shared = &self.client.shared;
        let mut pubs = shared.publishes.borrow_mut();
        match pubs.last_mut() {
            Some((c, list)) if *c == self.id => list.push(p),
            _ => pubs.push((self.id, vec![p])),
        }
        drop(pubs);
        let _ = shared.wake.unbounded_send(());
    }

    /// Queues an ack, nack or reject.
    pub fn settle(&self, s: m::Settle) {
        let shared = &self.client.shared;
        let mut settles = shared.settles.borrow_mut();
        match settles.last_mut() {
            Some((c, list)) if *c == self.id => list.push(s),
            _ => settles.push((self.id, vec![s])),
        }
        drop(settles);
        let _ = shared.wake.unbounded_send(());
    }

    /// The next event on this channel; `None` once the channel or the
    /// connection is closed.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.next().await
    }

    /// Declares a queue.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn queue_declare(
        &self,
        mut d: m::QueueDeclare,
    ) -> Result<m::QueueDeclareOk, ClientError> {
        d.channel = self.id;
        match self.call(Message::QueueDeclare(d)).await? {
            Message::QueueDeclareOk(ok) => Ok(ok),
            other => Err(ClientError::Unexpected(other.kind())),
        }
    }

    /// Starts a consumer; returns its tag.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn consume(&self, mut c: m::Consume) -> Result<String, ClientError> {
        c.channel = self.id;
        match self.call(Message::Consume(c)).await? {
            Message::ConsumeOk(t) => Ok(t.consumer_tag),
            other => Err(ClientError::Unexpected(other.kind())),
        }
    }

    /// Puts the channel in confirm mode.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn confirm_select(&self) -> Result<(), ClientError> {
        self.call(Message::ConfirmSelect(self.id)).await?;
        Ok(())
    }

    /// Makes the channel transactional: publishes and settlements are held
    /// until [`Channel::tx_commit`].
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn tx_select(&self) -> Result<(), ClientError> {
        self.call(Message::TxSelect(self.id)).await?;
        Ok(())
    }

    /// Applies what the transaction holds; returns once every publish in
    /// it is enqueued.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn tx_commit(&self) -> Result<(), ClientError> {
        self.call(Message::TxCommit(self.id)).await?;
        Ok(())
    }

    /// Discards what the transaction holds.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub async fn tx_rollback(&self) -> Result<(), ClientError> {
        self.call(Message::TxRollback(self.id)).await?;
        Ok(())
    }
}
