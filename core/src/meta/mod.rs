//! Replicated metadata: virtual hosts, exchanges, queue definitions and
//! bindings. Pure: no I/O, no logging.
//!
//! Every shard holds an identical replica. Changes are [`MetaOp`]s that the
//! coordinator shard validates ([`Meta::check_*`]), applies, and broadcasts;
//! every other shard applies the same ops in the same order, so `apply` must
//! be deterministic (auto-deleted exchanges are derived the same way
//! everywhere). Queue *state* (messages, consumers) is not here: it lives
//! only on the queue's owning shard.

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use ringmq_mgmt::view::{AccessChange, VhostRow};
use ringmq_protocol::{ErrorCode, FieldTable};

use crate::exchange::reply_to::ReplyTo;
use crate::exchange::{Dest, Exchange, ExchangeDef, ExchangeKind, QueueId, QueueRef, Targets};
use crate::queue::args::QueueArgs;
use ringmq_protocol::Refusal;

/// Most exchanges one publish is routed through (exchange-to-exchange
/// bindings and alternate exchanges included).
pub const MAX_ROUTE_EXCHANGES: usize = 4096;

/// Exchanges reached beyond this many are tracked in a hash set instead of
/// by a linear scan.
const LINEAR_SEEN: usize = 16;

/// True when `x` was reached already; records it otherwise (in `seen`
/// once the list is long).
fn was_reached<'a>(
    reached: &[&'a Exchange],
    seen: &mut Option<FxHashSet<*const Exchange>>,
    x: &'a Exchange,
) -> bool {
    let ptr: *const Exchange = x;
    if reached.len() < LINEAR_SEEN {
        return reached.iter().any(|r| std::ptr::eq(*r, ptr));
    }
    let seen = seen.get_or_insert_with(|| reached.iter().map(|r| *r as *const Exchange).collect());
    !seen.insert(ptr)
}

/// Server-wide id of a client connection (session).
pub type SessionId = u64;

/// A queue's definition, replicated to every shard.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QueueDef {
    /// This incarnation's id.
    pub id: QueueId,
    /// Name.
    pub name: String,
    /// Owning shard.
    pub shard: u16,
    /// Survives restarts.
    pub durable: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// The session that owns an exclusive queue.
    pub exclusive_owner: Option<SessionId>,
    /// Declare arguments as given.
    pub arguments: FieldTable,
    /// Parsed arguments.
    pub args: QueueArgs,
}

impl QueueDef {
    /// Reference used in routing.
    pub fn qref(&self) -> QueueRef {
        QueueRef {
            id: self.id,
            shard: self.shard,
        }
    }

    /// True when `session` may use the queue.
    pub fn accessible_by(&self, session: SessionId) -> bool {
        self.exclusive_owner.is_none_or(|o| o == session)
    }
}

/// A binding destination by name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DestName {
    /// A queue.
    Queue(String),
    /// An exchange.
    Exchange(String),
}

/// One change to the metadata.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum MetaOp {
    /// Create an exchange (no-op if it exists).
    DeclareExchange {
        /// Virtual host.
        vhost: String,
        /// Definition.
        def: ExchangeDef,
    },
    /// Delete an exchange and its bindings.
    DeleteExchange {
        /// Virtual host.
        vhost: String,
        /// Name.
        name: String,
    },
    /// Create a queue.
    DeclareQueue {
        /// Virtual host.
        vhost: String,
        /// Definition.
        def: QueueDef,
    },
    /// Delete a queue (that incarnation) and its bindings.
    DeleteQueue {
        /// Virtual host.
        vhost: String,
        /// The queue.
        id: QueueId,
    },
    /// Add a binding.
    Bind {
        /// Virtual host.
        vhost: String,
        /// Source exchange.
        source: String,
        /// Destination.
        dest: DestName,
        /// Binding key.
        key: String,
        /// Arguments.
        args: FieldTable,
    },
    /// Remove a binding.
    Unbind {
        /// Virtual host.
        vhost: String,
        /// Source exchange.
        source: String,
        /// Destination.
        dest: DestName,
        /// Binding key.
        key: String,
        /// Arguments.
        args: FieldTable,
    },
    /// Every id issued so far to a durable queue (exclusive or not, in any
    /// virtual host), and until the next reservation, is below `below`.
    /// Stored and synced before the coordinator gives a durable queue an id
    /// at or above the previous reservation, so that recovery can tell a
    /// queue that was deleted (an id below it, absent) from metadata that
    /// is missing (an id at or above it: never issued by this metadata).
    ReserveQueueIds {
        /// The bound.
        below: u64,
    },
    /// A change to users, vhosts or permissions.
    Access(AccessChange),
    /// The store holds users and vhosts: the configuration's seed users
    /// and vhosts were applied once and are not applied again.
    Seeded,
    /// Only in the metadata store's op log, first in a log written to
    /// replace one whose write failed: everything stored before it (the
    /// snapshot included) is superseded by the ops after it. Never applied.
    Reset,
}

/// The first queue id a coordinator started at `now_ms` (ms since the
/// epoch) issues: ids grow with time, so a restart does not reuse one.
pub fn first_queue_id(now_ms: u64) -> u64 {
    now_ms << 16
}

/// One virtual host.
#[derive(Debug, Default)]
pub struct Vhost {
    /// Name.
    pub name: String,
    /// Description, tags, default queue type.
    pub info: VhostRow,
    exchanges: FxHashMap<String, Exchange>,
    queues: FxHashMap<String, QueueDef>,
    names_by_id: FxHashMap<QueueId, String>,
    /// Reverse index: destination → (source, key, args) of bindings to it.
    bound_to: FxHashMap<Dest, Vec<(String, String, FieldTable)>>,
}

/// Names of the exchanges every virtual host has.
pub const PREDECLARED: &[(&str, ExchangeKind)] = &[
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

impl Vhost {
    fn new(info: VhostRow) -> Vhost {
        let mut v = Vhost {
            name: info.name.clone(),
            info,
            ..Vhost::default()
        };
        for (x, kind) in PREDECLARED {
            v.exchanges.insert(
                (*x).to_owned(),
                Exchange::new(ExchangeDef {
                    name: (*x).to_owned(),
                    kind: *kind,
                    durable: true,
                    auto_delete: false,
                    internal: false,
                    arguments: FieldTable::new(),
                }),
            );
        }
        v
    }

    /// Sets the queue's effective arguments from its declared ones and
    /// the policies that apply to it (its declared ones alone when the
    /// combination does not parse).
    fn apply_queue_policies(&mut self, name: &str, policies: &Policies) {
        let Some(def) = self.queues.get_mut(name) else {
            return;
        };
        if crate::stream::args::is_stream(&def.arguments) {
            return;
        }
        let applied = policies.for_queue(&self.name, name);
        let table = if applied.policy.is_none() && applied.operator.is_none() {
            def.arguments.clone()
        } else {
            applied.queue_arguments(&def.arguments)
        };
        let parse = |t: &FieldTable| {
            QueueArgs::parse(
                t,
                &def.name,
                &self.name,
                def.durable,
                def.exclusive_owner.is_some(),
                def.auto_delete,
            )
        };
        if let Ok(args) = parse(&table).or_else(|_| parse(&def.arguments)) {
            def.args = args;
        }
    }

    /// Sets the exchange's alternate exchange from the policy that applies
    /// to it.
    fn apply_exchange_policy(&mut self, name: &str, policies: &Policies) {
        let alternate = policies
            .for_exchange(&self.name, name)
            .and_then(Policy::alternate_exchange)
            .map(str::to_owned);
        if let Some(x) = self.exchanges.get_mut(name) {
            x.policy_alternate = alternate;
        }
    }

    /// The exchange named `name`.
    pub fn exchange(&self, name: &str) -> Option<&Exchange> {
        self.exchanges.get(name)
    }

    /// The queue named `name`.
    pub fn queue(&self, name: &str) -> Option<&QueueDef> {
        self.queues.get(name)
    }

    /// The queue with id `id`.
    pub fn queue_by_id(&self, id: QueueId) -> Option<&QueueDef> {
        self.names_by_id.get(&id).and_then(|n| self.queues.get(n))
    }

    /// Every queue.
    pub fn queues(&self) -> impl Iterator<Item = &QueueDef> {
        self.queues.values()
    }

    /// Number of queues.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Every exchange.
    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.exchanges.values()
    }

    /// Number of bindings whose destination is the queue.
    pub fn bindings_to(&self, id: QueueId, shard: u16) -> usize {
        self.bound_to
            .get(&Dest::Queue(QueueRef { id, shard }))
            .map_or(0, Vec::len)
    }

    /// Routes a message published to `x`, following exchange-to-exchange
    /// bindings and alternate exchanges, into `out` (deduplicated). The
    /// default exchange routes a direct reply-to name to its consumer.
    ///
    /// Iterative, breadth first: every exchange reached is visited once
    /// (a cycle or a diamond costs nothing extra), and at most
    /// [`MAX_ROUTE_EXCHANGES`] are visited, so a client-built chain can
    /// neither exhaust the stack nor stall the core.
    pub fn route(
        &self,
        x: &Exchange,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Targets,
    ) {
        self.route_with_cc(x, routing_key, &[], headers, out);
    }

    /// [`Vhost::route`] with the keys a message's `CC` and `BCC` headers
    /// add (`exchange::sender_selected`), as RabbitMQ routes a message with
    /// several routing keys: each exchange reached routes every key (direct
    /// and topic exchanges; fanout and headers exchanges ignore keys), its
    /// alternate exchange is used only when no key matched in it, and a
    /// queue reached by several keys gets one copy. A direct reply-to name
    /// counts only as the publish's own routing key.
    pub fn route_with_cc(
        &self,
        x: &Exchange,
        routing_key: &str,
        cc: &[String],
        headers: Option<&FieldTable>,
        out: &mut Targets,
    ) {
        let mut reached: SmallVec<[&Exchange; 4]> = SmallVec::new();
        reached.push(x);
        let mut seen: Option<FxHashSet<*const Exchange>> = None;
        let mut i = 0;
        while i < reached.len() && i < MAX_ROUTE_EXCHANGES {
            let x = reached[i];
            i += 1;
            if x.def.name.is_empty() {
                if let Some(q) = self.queues.get(routing_key) {
                    out.add(q.qref());
                } else if let Some(r) = ReplyTo::parse(routing_key) {
                    out.add_reply(r);
                }
                for key in cc {
                    if let Some(q) = self.queues.get(key.as_str()) {
                        out.add(q.qref());
                    }
                }
                continue;
            }
            let mut next: SmallVec<[&Exchange; 4]> = SmallVec::new();
            let mut matched = false;
            let mut to = |d: &Dest| {
                matched = true;
                match d {
                    Dest::Queue(q) => out.add(*q),
                    Dest::Exchange(name) => next.extend(self.exchanges.get(name.as_str())),
                }
            };
            x.route(routing_key, headers, &mut to);
            if matches!(x.def.kind, ExchangeKind::Direct | ExchangeKind::Topic) {
                for key in cc {
                    x.route(key, headers, &mut to);
                }
            }
            if !matched {
                next.extend(x.alternate().and_then(|a| self.exchanges.get(a)));
            }
            for nx in next {
                if !was_reached(&reached, &mut seen, nx) {
                    reached.push(nx);
                }
            }
        }
    }

    fn resolve(&self, dest: &DestName) -> Option<Dest> {
        match dest {
            DestName::Queue(n) => self.queues.get(n).map(|q| Dest::Queue(q.qref())),
            DestName::Exchange(n) => self
                .exchanges
                .contains_key(n)
                .then(|| Dest::Exchange(n.clone())),
        }
    }

    /// Removes every binding to `dest` and every binding from exchange
    /// `source` (when given), then auto-deletes exchanges left without
    /// bindings.
    fn drop_bindings(&mut self, dest: &Dest) {
        let mut emptied = Vec::new();
        if let Some(list) = self.bound_to.remove(dest) {
            for (source, key, args) in list {
                if let Some(x) = self.exchanges.get_mut(&source) {
                    x.unbind(dest, &key, &args);
                    if x.def.auto_delete && x.binding_count() == 0 {
                        emptied.push(source);
                    }
                }
            }
        }
        for name in emptied {
            self.delete_exchange(&name);
        }
    }

    fn delete_exchange(&mut self, name: &str) {
        let Some(x) = self.exchanges.remove(name) else {
            return;
        };
        // Bindings from it: forget them in the reverse index.
        for (dest, key, args) in x.bindings() {
            if let Some(list) = self.bound_to.get_mut(dest) {
                if let Some(at) = list
                    .iter()
                    .position(|(s, k, a)| s == name && k == key && a == args)
                {
                    list.remove(at);
                }
                if list.is_empty() {
                    self.bound_to.remove(dest);
                }
            }
        }
        // Bindings to it (exchange-to-exchange).
        self.drop_bindings(&Dest::Exchange(name.to_owned()));
    }

    fn apply(&mut self, op: &MetaOp) {
        match op {
            MetaOp::DeclareExchange { def, .. } => {
                self.exchanges
                    .entry(def.name.clone())
                    .or_insert_with(|| Exchange::new(def.clone()));
            }
            MetaOp::DeleteExchange { name, .. } => self.delete_exchange(name),
            MetaOp::DeclareQueue { def, .. } => {
                if let Some(old) = self.queues.insert(def.name.clone(), def.clone()) {
                    self.names_by_id.remove(&old.id);
                }
                self.names_by_id.insert(def.id, def.name.clone());
            }
            MetaOp::DeleteQueue { id, .. } => {
                if let Some(name) = self.names_by_id.remove(id) {
                    if let Some(q) = self.queues.remove(&name) {
                        self.drop_bindings(&Dest::Queue(q.qref()));
                    }
                }
            }
            MetaOp::Bind {
                source,
                dest,
                key,
                args,
                ..
            } => self.bind(source, dest, key, args),
            MetaOp::Unbind {
                source,
                dest,
                key,
                args,
                ..
            } => self.unbind(source, dest, key, args),
            // Not per vhost (see `Meta::apply`).
            MetaOp::ReserveQueueIds { .. } | MetaOp::Reset | MetaOp::Seeded | MetaOp::Access(_) => {
            }
        }
    }

    fn bind(&mut self, source: &str, dest: &DestName, key: &str, args: &FieldTable) {
        let Some(d) = self.resolve(dest) else { return };
        if let Some(x) = self.exchanges.get_mut(source) {
            if x.bind(d.clone(), key, args) {
                let entry = (source.to_owned(), key.to_owned(), args.clone());
                self.bound_to.entry(d).or_default().push(entry);
            }
        }
    }

    /// Removes a binding; an auto-delete source left without bindings
    /// goes too.
    fn unbind(&mut self, source: &str, dest: &DestName, key: &str, args: &FieldTable) {
        let Some(d) = self.resolve(dest) else { return };
        let Some(x) = self.exchanges.get_mut(source) else {
            return;
        };
        if !x.unbind(&d, key, args) {
            return;
        }
        let now_empty = x.def.auto_delete && x.binding_count() == 0;
        if let Some(list) = self.bound_to.get_mut(&d) {
            if let Some(at) = list
                .iter()
                .position(|(s, k, a)| s == source && k == key && a == args)
            {
                list.remove(at);
            }
            if list.is_empty() {
                self.bound_to.remove(&d);
            }
        }
        if now_empty {
            self.delete_exchange(source);
        }
    }
}

/// All virtual hosts.
#[derive(Debug, Default)]
pub struct Meta {
    vhosts: FxHashMap<String, Vhost>,
    /// See [`MetaOp::ReserveQueueIds`].
    queue_ids_below: u64,
    /// Users and permissions.
    access: Access,
    /// Policies and operator policies.
    policies: Policies,
    /// See [`MetaOp::Seeded`].
    seeded: bool,
}

/// What an exchange declare amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// The object exists with the same properties; nothing to change.
    Exists,
    /// The object must be created.
    Create,
}

/// Is `name` reserved (`amq.` prefix)?
pub fn is_reserved(name: &str) -> bool {
    name.starts_with("amq.")
}

impl Meta {
    /// Metadata with the given virtual hosts and their predeclared exchanges.
    pub fn new<'a>(vhosts: impl IntoIterator<Item = &'a str>) -> Meta {
        Meta {
            vhosts: vhosts
                .into_iter()
                .map(|v| (v.to_owned(), Vhost::new(VhostRow::named(v))))
                .collect(),
            ..Meta::default()
        }
    }

    /// Users and permissions.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Policies and operator policies.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// True once the seed users and vhosts were applied.
    pub fn seeded(&self) -> bool {
        self.seeded
    }

    /// Every queue id issued so far is below this (see
    /// [`MetaOp::ReserveQueueIds`]).
    pub fn queue_ids_below(&self) -> u64 {
        self.queue_ids_below
    }

    /// The virtual host named `name`.
    pub fn vhost(&self, name: &str) -> Option<&Vhost> {
        self.vhosts.get(name)
    }

    /// Every virtual host.
    pub fn vhosts(&self) -> impl Iterator<Item = &Vhost> {
        self.vhosts.values()
    }

    /// Applies a validated op.
    pub fn apply(&mut self, op: &MetaOp) {
        let vhost = match op {
            MetaOp::ReserveQueueIds { below } => {
                self.queue_ids_below = self.queue_ids_below.max(*below);
                return;
            }
            MetaOp::Reset => return,
            MetaOp::Seeded => {
                self.seeded = true;
                return;
            }
            MetaOp::Access(change) => {
                match change {
                    AccessChange::PutVhost(info) => match self.vhosts.get_mut(&info.name) {
                        Some(v) => v.info = info.clone(),
                        None => {
                            self.vhosts
                                .insert(info.name.clone(), Vhost::new(info.clone()));
                        }
                    },
                    AccessChange::DeleteVhost { name } => {
                        self.vhosts.remove(name);
                        self.policies.clear_vhost(name);
                    }
                    AccessChange::SetPolicy { operator, row } => {
                        if let Ok(p) = Policy::compile(row.clone(), *operator) {
                            self.policies.set(*operator, p);
                        }
                        self.reapply_policies(&row.vhost);
                    }
                    AccessChange::ClearPolicy {
                        operator,
                        vhost,
                        name,
                    } => {
                        self.policies.clear(*operator, vhost, name);
                        self.reapply_policies(vhost);
                    }
                    _ => {}
                }
                self.access.apply(change);
                return;
            }
            MetaOp::DeclareExchange { vhost, .. }
            | MetaOp::DeleteExchange { vhost, .. }
            | MetaOp::DeclareQueue { vhost, .. }
            | MetaOp::DeleteQueue { vhost, .. }
            | MetaOp::Bind { vhost, .. }
            | MetaOp::Unbind { vhost, .. } => vhost,
        };
        if let Some(v) = self.vhosts.get_mut(vhost) {
            v.apply(op);
            if self.policies.any_in(vhost) {
                match op {
                    MetaOp::DeclareQueue { def, .. } => {
                        v.apply_queue_policies(&def.name, &self.policies)
                    }
                    MetaOp::DeclareExchange { def, .. } => {
                        v.apply_exchange_policy(&def.name, &self.policies)
                    }
                    _ => {}
                }
            }
        }
    }

    /// Recomputes what the policies of `vhost` make of its queues and
    /// exchanges.
    fn reapply_policies(&mut self, vhost: &str) {
        let policies = &self.policies;
        if let Some(v) = self.vhosts.get_mut(vhost) {
            let queues: Vec<String> = v.queues.keys().cloned().collect();
            for q in queues {
                v.apply_queue_policies(&q, policies);
            }
            let exchanges: Vec<String> = v.exchanges.keys().cloned().collect();
            for x in exchanges {
                v.apply_exchange_policy(&x, policies);
            }
        }
    }

    fn vh(&self, vhost: &str) -> Result<&Vhost, Refusal> {
        self.vhosts.get(vhost).ok_or_else(|| {
            Refusal::new(
                ErrorCode::NotAllowed,
                format_args!("vhost '{vhost}' not found"),
            )
        })
    }
}

mod access;
mod checks;
mod policy;

pub use access::{Access, Perm, Perms};
pub use policy::{Applied, Policies, Policy};

#[cfg(test)]
mod tests;
