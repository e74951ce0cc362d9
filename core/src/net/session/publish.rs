//! Publishing: a `PublishBatch` is read straight from its verified view,
//! each message routed on this core with the local metadata replica and
//! posted to the shards that own its queues; unroutable mandatory messages
//! are returned; confirms are accounted for as each message is routed.

use std::rc::Rc;
use std::sync::Arc;

use ringmq_protocol::flatbuffers::{ForwardsUOffset, Vector};
use ringmq_protocol::frame::{Frame, Kind};
use ringmq_protocol::message as pm;
use ringmq_protocol::verify::{body_slice, dense_bodies, view};
use ringmq_protocol::{wire, ErrorCode, Properties, Refusal};

use super::authz::{Authz, Resource};
use super::confirms::Confirms;
use super::reply_to::rewrite_reply_to;
use super::state::{ChanState, Channel};
use super::{Session, Stop};
use crate::exchange::sender_selected::take_header_routes;
use crate::exchange::{Exchange, Targets};
use crate::message::{Message, Parts, Text};
use crate::meta::{Perm, Vhost};
use crate::queue::args::Overflow;
use crate::shard::counters::bump;
use crate::shard::mesh::ConfirmRef;

/// Frames up to this size are shared by the messages they carry (their
/// bodies are slices of the frame, no copy).
pub(crate) const SHARED_FRAME_MAX: usize = 256 * 1024;

/// True when a message of `len` bytes would keep a much larger frame
/// alive: from a frame above [`SHARED_FRAME_MAX`], a message smaller than
/// half of it is copied out, so no message pins more than the larger of
/// that size and twice its own.
fn pins_more_than_it_holds(frame_len: usize, len: usize) -> bool {
    frame_len > SHARED_FRAME_MAX && len * 2 < frame_len
}

impl Session {
    /// Handles a `Publish` frame.
    pub(super) fn publish(self: &Rc<Self>, frame: &Frame) -> Result<(), Stop> {
        let kind = Kind::Publish.as_u16();
        let batch = view::<wire::PublishBatch>(Kind::Publish, &frame.body)
            .map_err(|e| Stop::new(e.code(), &e, kind, 0))?;
        let ch = batch.channel();
        if self.usable_channel(ch, Kind::Publish)? == ChanState::Closing {
            return Ok(());
        }
        if !self.published.replace(true) {
            // A first publish during an alarm: the connection is blocked
            // from now on, and told so.
            if let Some(reason) = self.shard.alarm_reason() {
                self.tell_blocked(Some(&reason));
            }
        }
        let result = match (batch.dense(), batch.messages()) {
            (Some(_), Some(m)) if !m.is_empty() => Err(Refusal::new(
                ErrorCode::SyntaxError,
                "PublishBatch has both `messages` and `dense`",
            )),
            (Some(dense), _) => self.publish_dense(frame, ch, dense),
            (None, Some(messages)) => self.publish_all(frame, ch, messages),
            (None, None) => Ok(()),
        };
        result.or_else(|r| self.refuse(r, kind, ch, 0))
    }

    /// The per-message form: each message is checked and routed.
    fn publish_all(
        self: &Rc<Self>,
        frame: &Frame,
        ch: u16,
        messages: Vector<'_, ForwardsUOffset<wire::Publish<'_>>>,
    ) -> Result<(), Refusal> {
        let limits = &self.shard.config.limits;
        let at = crate::shard::latency::now_us();
        self.routed(ch, |out, authz| {
            let vhost = out.vhost;
            let mut targets = Targets::default();
            let mut cached: Option<(&str, &Exchange)> = None;
            for p in messages.iter() {
                if p.immediate() {
                    return Err(Refusal::new(ErrorCode::NotImplemented, "immediate=true"));
                }
                let body = body_slice(&frame.body, p.body());
                check_size(body.len(), limits.max_message_size)?;
                let xname = p.exchange().unwrap_or("");
                let x = match cached {
                    Some((n, x)) if n == xname => x,
                    _ => {
                        let x = publish_target(vhost, xname, authz)?;
                        cached = Some((xname, x));
                        x
                    }
                };
                let routing_key = p.routing_key().unwrap_or("");
                authz.check_topic(Perm::Write, x, routing_key)?;
                let mut props = checked_props(p.properties(), authz)?;
                let cc = header_routes(&mut props);
                let props = rewrite_reply_to(props, out.channel)?;
                check_publish_names(xname, routing_key, limits.max_name_len)?;
                let mut msg = Message::new(Parts {
                    exchange: Text::slice_of(&frame.body, xname),
                    routing_key: Text::slice_of(&frame.body, routing_key),
                    props,
                    body,
                    publisher: self.id,
                    published_us: at,
                });
                if pins_more_than_it_holds(frame.body.len(), msg.body.len()) {
                    msg.detach();
                }
                check_expiration(&msg)?;
                let cc = cc?;
                targets.clear();
                vhost.route_with_cc(x, routing_key, &cc, msg.headers(), &mut targets);
                out.accept(msg, &targets, p.mandatory())?;
            }
            Ok(())
        })
    }

    /// The dense form: one exchange, routing key and set of properties for
    /// the whole batch, so the message is routed once.
    fn publish_dense(
        self: &Rc<Self>,
        frame: &Frame,
        ch: u16,
        dense: wire::DensePublish<'_>,
    ) -> Result<(), Refusal> {
        let limits = &self.shard.config.limits;
        let bodies = dense_bodies("DensePublish", dense.sizes(), dense.bodies())
            .map_err(|e| Refusal::new(ErrorCode::SyntaxError, e))?;
        self.routed(ch, |out, authz| {
            let vhost = out.vhost;
            let xname = dense.exchange().unwrap_or("");
            let x = publish_target(vhost, xname, authz)?;
            let routing_key = dense.routing_key().unwrap_or("");
            authz.check_topic(Perm::Write, x, routing_key)?;
            let mut props = checked_props(dense.properties(), authz)?;
            let cc = header_routes(&mut props);
            let props = rewrite_reply_to(props, out.channel)?;
            check_publish_names(xname, routing_key, limits.max_name_len)?;
            let large = frame.body.len() > SHARED_FRAME_MAX;
            let text = |s: &str| {
                if large {
                    Text::new(s)
                } else {
                    Text::slice_of(&frame.body, s)
                }
            };
            let template = Parts {
                exchange: text(xname),
                routing_key: text(routing_key),
                props,
                body: bytes::Bytes::new(),
                publisher: self.id,
                published_us: crate::shard::latency::now_us(),
            };
            check_expiration(&template)?;
            let cc = cc?;
            let mut targets = Targets::default();
            vhost.route_with_cc(x, routing_key, &cc, template.headers(), &mut targets);
            for body in bodies {
                check_size(body.len(), limits.max_message_size)?;
                let body = if pins_more_than_it_holds(frame.body.len(), body.len()) {
                    bytes::Bytes::copy_from_slice(body)
                } else {
                    frame.body.slice_ref(body)
                };
                let msg = Message::new(Parts {
                    body,
                    ..template.clone()
                });
                out.accept(msg, &targets, dense.mandatory())?;
            }
            Ok(())
        })
    }

    /// Runs `route` with the channel's [`Routed`] and the login's
    /// permissions, then
    /// marks the channel for the next flush if anything is to be sent
    /// (also when `route` stops at a refusal halfway through a batch).
    pub(super) fn routed(
        self: &Rc<Self>,
        ch: u16,
        route: impl FnOnce(&mut Routed<'_>, &Authz<'_>) -> Result<(), Refusal>,
    ) -> Result<(), Refusal> {
        let meta = self.shard.meta.borrow();
        let mut st = self.st.borrow_mut();
        let st = &mut *st;
        let Some(vhost) = meta.vhost(&st.vhost) else {
            return Err(Refusal::new(ErrorCode::NotAllowed, "vhost was deleted"));
        };
        let Some(channel) = st.channels.get_mut(&ch) else {
            return Ok(());
        };
        let authz = Authz::new(&meta, &st.user, &st.vhost);
        let mut out = Routed::new(self, vhost, channel, ch);
        let result = route(&mut out, &authz);
        out.finish(&mut st.dirty_channels);
        result
    }
}

/// Where routed publishes go: queues, returns, confirms of one channel.
pub(super) struct Routed<'a> {
    session: &'a Rc<Session>,
    vhost: &'a Vhost,
    channel: &'a mut Channel,
    ch: u16,
    dirty: bool,
}

impl<'a> Routed<'a> {
    fn new(
        session: &'a Rc<Session>,
        vhost: &'a Vhost,
        channel: &'a mut Channel,
        ch: u16,
    ) -> Routed<'a> {
        Routed {
            session,
            vhost,
            channel,
            ch,
            dirty: false,
        }
    }

    /// Takes a routed message: held for the commit on a transactional
    /// channel (refused past the channel's `tx_max_bytes`), delivered at
    /// once otherwise.
    fn accept(&mut self, msg: Message, targets: &Targets, mandatory: bool) -> Result<(), Refusal> {
        match &mut self.channel.tx {
            Some(tx) => tx.hold(msg, targets, mandatory, &self.session.shard.config.limits),
            None => {
                self.deliver(msg, targets, mandatory);
                Ok(())
            }
        }
    }

    /// Sends a routed message to its queues, or returns it (mandatory),
    /// and accounts for its confirm.
    pub(super) fn deliver(&mut self, msg: Message, targets: &Targets, mandatory: bool) {
        self.session.shard.deliver_replies(targets, &msg);
        let seq = self.channel.confirms.as_ref().map(Confirms::next_seq);
        let counters = &self.session.shard.counters;
        bump(&counters.published, 1);
        if targets.is_empty() {
            let unroutable = if mandatory {
                &counters.returned_unroutable
            } else {
                &counters.dropped_unroutable
            };
            bump(unroutable, 1);
            if mandatory {
                self.channel.returns.push(pm::Return {
                    reply_code: ErrorCode::NoRoute.as_u16(),
                    reply_text: "NO_ROUTE".to_owned(),
                    exchange: msg.exchange.as_str().to_owned(),
                    routing_key: msg.routing_key.as_str().to_owned(),
                    properties: msg.props.as_deref().cloned().unwrap_or_default(),
                    body: msg.body.clone(),
                });
                self.dirty = true;
            }
            if let Some(c) = &mut self.channel.confirms {
                c.register(0, false);
                self.dirty = true;
            }
            return;
        }
        let confirm = seq.map(|seq| ConfirmRef {
            session: self.session.id,
            channel: self.ch,
            seq,
        });
        let persistent = msg.is_persistent();
        let shard = &self.session.shard;
        let vhost = self.vhost;
        let waiting = shard.enqueue_all(targets, msg, confirm, |q| {
            confirm.is_some()
                && vhost.queue_by_id(q.id).is_some_and(|d| {
                    d.args.overflow != Overflow::DropHead
                        && (d.args.max_length.is_some() || d.args.max_length_bytes.is_some())
                        || (d.durable && persistent && shard.persists())
                        || crate::stream::args::is_stream(&d.arguments)
                })
        });
        if let Some(c) = &mut self.channel.confirms {
            c.register(waiting, false);
            self.dirty = true;
        }
        if let Some(q) = shard.first_in_flow(&targets.queues) {
            self.session.flow_wait.set(Some(q));
        }
        self.session
            .last_target
            .set(targets.queues.first().map(|q| q.id));
    }

    fn finish(self, dirty_channels: &mut Vec<u16>) {
        if self.dirty && !self.channel.dirty {
            self.channel.dirty = true;
            dirty_channels.push(self.ch);
        }
    }
}

/// AMQP names and routing keys are short strings: at most 255 bytes.
fn check_publish_names(exchange: &str, routing_key: &str, max: usize) -> Result<(), Refusal> {
    super::requests::check_name("exchange name", exchange, max)?;
    super::requests::check_name("routing key", routing_key, max)
}

fn check_size(len: usize, max: usize) -> Result<(), Refusal> {
    if len > max {
        return Err(Refusal::new(
            ErrorCode::PreconditionFailed,
            format_args!("message size {len} is larger than configured max size {max}"),
        ));
    }
    Ok(())
}

/// The exchange a client publishes to, if it may.
fn publish_target<'v>(
    vhost: &'v Vhost,
    xname: &str,
    authz: &Authz<'_>,
) -> Result<&'v Exchange, Refusal> {
    authz.check(Perm::Write, Resource::Exchange, xname)?;
    let x = vhost
        .exchange(xname)
        .ok_or_else(|| Refusal::no_exchange(&vhost.name, xname))?;
    if x.def.internal {
        return Err(Refusal::new(
            ErrorCode::AccessRefused,
            format_args!(
                "cannot publish to internal exchange '{xname}' in vhost '{}'",
                vhost.name
            ),
        ));
    }
    Ok(x)
}

/// Decodes publish properties and checks `user_id` against the login.
fn checked_props(
    view: Option<wire::Properties<'_>>,
    authz: &Authz<'_>,
) -> Result<Option<Arc<Properties>>, Refusal> {
    let Some(view) = view else { return Ok(None) };
    let props =
        Properties::decode(Some(view)).map_err(|e| Refusal::new(ErrorCode::SyntaxError, e))?;
    if let Some(u) = &props.user_id {
        let user = authz.user();
        // As RabbitMQ: only an `impersonator` may publish as another user.
        if u != user && !authz.impersonator() {
            return Err(Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!("user_id property set to '{u}' but authenticated user was '{user}'"),
            ));
        }
    }
    Ok(Some(Arc::new(props)))
}

/// The routing keys the `CC` and `BCC` headers add; `BCC` is removed from
/// the properties (see `exchange::sender_selected`).
fn header_routes(props: &mut Option<Arc<Properties>>) -> Result<Vec<String>, Refusal> {
    take_header_routes(props).map_err(|e| Refusal::new(ErrorCode::PreconditionFailed, e))
}

fn check_expiration(msg: &Parts) -> Result<(), Refusal> {
    msg.expiration_ms().map(|_| ()).map_err(|bad| {
        Refusal::new(
            ErrorCode::PreconditionFailed,
            format_args!(
                "invalid expiration '{bad}': not a non-negative integer number of milliseconds"
            ),
        )
    })
}
