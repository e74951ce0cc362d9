//! Permission checks, as RabbitMQ's channel makes them, against this
//! core's replica of the users and permissions (so a change applies to
//! the next operation of every open connection):
//!
//! | Operation | Needs |
//! |---|---|
//! | exchange.declare (not passive) | configure on the exchange; creating one with an `alternate-exchange`: read on it and write on the alternate |
//! | exchange.delete | configure on the exchange |
//! | queue.declare (not passive) | configure on the queue (a server-named one under its `amq.gen-` name); creating one with `x-dead-letter-exchange`: read on the queue and write on that exchange |
//! | queue.delete | configure on the queue |
//! | queue.purge, basic.consume, basic.get | read on the queue |
//! | queue.bind/unbind, exchange.bind/unbind | write on the destination, read on the source; on a topic source, topic read on the binding key |
//! | basic.publish | write on the exchange (the default exchange is `amq.default`); on a topic exchange, topic write on the routing key |
//!
//! Passive declares need nothing. A refusal is 403 ACCESS_REFUSED with
//! RabbitMQ's text: "access to queue 'q' in vhost 'v' refused for user
//! 'u'".

use ringmq_protocol::message::{self as pm, Message as Wire};
use ringmq_protocol::{ErrorCode, Refusal};

use super::Session;
use crate::exchange::{Exchange, ExchangeKind};
use crate::meta::{Access, Meta, Perm, Perms, Vhost};

/// What a permission is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resource {
    /// An exchange ("" is the default exchange, checked as `amq.default`).
    Exchange,
    /// A queue.
    Queue,
}

/// The login's permissions in its vhost, borrowed from the replica.
pub(super) struct Authz<'a> {
    access: &'a Access,
    perms: Option<&'a Perms>,
    user: &'a str,
    vhost: &'a str,
    topics: bool,
}

impl<'a> Authz<'a> {
    /// The permissions of `user` in `vhost`.
    pub(super) fn new(meta: &'a Meta, user: &'a str, vhost: &'a str) -> Authz<'a> {
        let access = meta.access();
        Authz {
            access,
            perms: access.perms(user, vhost),
            user,
            vhost,
            topics: access.has_topic_permissions(user, vhost),
        }
    }

    /// The login's user.
    pub(super) fn user(&self) -> &str {
        self.user
    }

    /// True when the user is tagged `impersonator` (may set another
    /// user's name in `user_id`).
    pub(super) fn impersonator(&self) -> bool {
        self.access
            .user(self.user)
            .is_some_and(|u| u.has("impersonator"))
    }

    /// Ok when the login may `perm` the resource named `name`.
    ///
    /// # Errors
    /// 403 ACCESS_REFUSED in RabbitMQ's words.
    pub(super) fn check(&self, perm: Perm, what: Resource, name: &str) -> Result<(), Refusal> {
        let (kind, name) = match what {
            Resource::Exchange if name.is_empty() => ("exchange", "amq.default"),
            Resource::Exchange => ("exchange", name),
            Resource::Queue => ("queue", name),
        };
        if self.perms.is_some_and(|p| p.allows(perm, name)) {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorCode::AccessRefused,
            format_args!(
                "access to {kind} '{name}' in vhost '{}' refused for user '{}'",
                self.vhost, self.user
            ),
        ))
    }

    /// Ok when the login may `perm` (write: publish, read: bind) the
    /// routing key `key` on exchange `x`: anything but a topic exchange
    /// the user has topic permissions on passes.
    ///
    /// # Errors
    /// 403 ACCESS_REFUSED in RabbitMQ's words.
    pub(super) fn check_topic(&self, perm: Perm, x: &Exchange, key: &str) -> Result<(), Refusal> {
        if !self.topics || x.def.kind != ExchangeKind::Topic {
            return Ok(());
        }
        let name = &x.def.name;
        if self
            .access
            .topic_allows(self.user, self.vhost, name, perm, key)
        {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorCode::AccessRefused,
            format_args!(
                "access to topic '{key}' in exchange '{name}' in vhost '{}' refused for user '{}'",
                self.vhost, self.user
            ),
        ))
    }
}

impl Session {
    /// Runs `f` with the login's permissions.
    pub(super) fn with_authz<T>(&self, f: impl FnOnce(&Authz<'_>, &Meta) -> T) -> T {
        let meta = self.shard.meta.borrow();
        let st = self.st.borrow();
        let authz = Authz::new(&meta, &st.user, &st.vhost);
        f(&authz, &meta)
    }

    /// Ok when the login may `perm` the resource.
    ///
    /// # Errors
    /// 403 ACCESS_REFUSED.
    pub(super) fn permit(&self, perm: Perm, what: Resource, name: &str) -> Result<(), Refusal> {
        self.with_authz(|a, _| a.check(perm, what, name))
    }
}

impl Session {
    /// Checks a pipelined metadata request (declare, delete, bind) against
    /// the login's permissions, in RabbitMQ's order: what the coordinator
    /// refuses anyway (the default exchange, `amq.` deletions, an unknown
    /// exchange type) is left to it.
    ///
    /// # Errors
    /// 403 ACCESS_REFUSED.
    pub(super) fn authorize_pipelined(&self, msg: &Wire) -> Result<(), Refusal> {
        self.with_authz(|a, meta| {
            let vhost = meta.vhost(a.vhost);
            match msg {
                Wire::ExchangeDeclare(d) => {
                    let name = d.exchange.as_str();
                    if name.is_empty() || ExchangeKind::parse(&d.kind).is_none() {
                        return Ok(());
                    }
                    a.check(Perm::Configure, Resource::Exchange, name)?;
                    let exists = vhost.is_some_and(|v| v.exchange(name).is_some());
                    if let (false, Some(ae)) = (exists, d.arguments.get("alternate-exchange")) {
                        if let Some(ae) = ae.as_str() {
                            a.check(Perm::Read, Resource::Exchange, name)?;
                            a.check(Perm::Write, Resource::Exchange, ae)?;
                        }
                    }
                    Ok(())
                }
                Wire::ExchangeDelete(d) => {
                    let name = d.exchange.as_str();
                    if name.is_empty() || crate::meta::is_reserved(name) {
                        return Ok(());
                    }
                    a.check(Perm::Configure, Resource::Exchange, name)
                }
                Wire::QueueDeclare(d) => {
                    let name = if d.queue.is_empty() {
                        crate::shard::server_named_queue()
                    } else {
                        d.queue.clone()
                    };
                    a.check(Perm::Configure, Resource::Queue, &name)?;
                    let exists = vhost.is_some_and(|v| v.queue(&name).is_some());
                    let dlx = d.arguments.get("x-dead-letter-exchange");
                    if let (false, Some(dlx)) = (exists, dlx.and_then(|v| v.as_str())) {
                        a.check(Perm::Read, Resource::Queue, &name)?;
                        a.check(Perm::Write, Resource::Exchange, dlx)?;
                    }
                    Ok(())
                }
                Wire::QueueDelete(d) => a.check(Perm::Configure, Resource::Queue, &d.queue),
                Wire::QueueBind(b) | Wire::QueueUnbind(b) => {
                    a.check(Perm::Write, Resource::Queue, &b.destination)?;
                    check_source(a, vhost, b)
                }
                Wire::ExchangeBind(b) | Wire::ExchangeUnbind(b) => {
                    if !b.destination.is_empty() {
                        a.check(Perm::Write, Resource::Exchange, &b.destination)?;
                    }
                    check_source(a, vhost, b)
                }
                _ => Ok(()),
            }
        })
    }
}

/// Read on a binding's source and, on a topic source, topic read on its
/// key (the default exchange as source is the coordinator's refusal).
fn check_source(a: &Authz<'_>, vhost: Option<&Vhost>, b: &pm::Bind) -> Result<(), Refusal> {
    if b.source.is_empty() {
        return Ok(());
    }
    a.check(Perm::Read, Resource::Exchange, &b.source)?;
    match vhost.and_then(|v| v.exchange(&b.source)) {
        Some(x) => a.check_topic(Perm::Read, x, &b.routing_key),
        None => Ok(()),
    }
}
