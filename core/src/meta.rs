//! Replicated metadata: virtual hosts, exchanges, queue definitions and
//! bindings. Pure: no I/O, no logging.
//!
//! Every shard holds an identical replica. Changes are [`MetaOp`]s that the
//! coordinator shard validates ([`Meta::check_*`]), applies, and broadcasts;
//! every other shard applies the same ops in the same order, so `apply` must
//! be deterministic (auto-deleted exchanges are derived the same way
//! everywhere). Queue *state* (messages, consumers) is not here: it lives
//! only on the queue's owning shard.

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use ringmq_protocol::{ErrorCode, FieldTable};

use crate::exchange::{Dest, Exchange, ExchangeDef, ExchangeKind, QueueId, QueueRef, Targets};
use crate::queue::args::{check_equivalent, QueueArgs, EQUIVALENCE_ARGS};
use ringmq_protocol::Refusal;

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
}

/// One virtual host.
#[derive(Debug, Default)]
pub struct Vhost {
    /// Name.
    pub name: String,
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
    fn new(name: &str) -> Vhost {
        let mut v = Vhost {
            name: name.to_owned(),
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
    /// bindings and alternate exchanges, into `out` (deduplicated).
    pub fn route(
        &self,
        x: &Exchange,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Targets,
    ) {
        let mut seen: SmallVec<[&str; 4]> = SmallVec::new();
        self.walk(x, routing_key, headers, out, &mut seen);
    }

    fn walk<'a>(
        &'a self,
        x: &'a Exchange,
        routing_key: &str,
        headers: Option<&FieldTable>,
        out: &mut Targets,
        seen: &mut SmallVec<[&'a str; 4]>,
    ) {
        seen.push(&x.def.name);
        if x.def.name.is_empty() {
            if let Some(q) = self.queues.get(routing_key) {
                out.add(q.qref());
            }
            return;
        }
        let mut matched = false;
        let mut next: SmallVec<[&'a str; 4]> = SmallVec::new();
        x.route(routing_key, headers, |d| {
            matched = true;
            match d {
                Dest::Queue(q) => out.add(*q),
                Dest::Exchange(name) => {
                    if let Some((k, _)) = self.exchanges.get_key_value(name.as_str()) {
                        if !next.contains(&k.as_str()) {
                            next.push(k.as_str());
                        }
                    }
                }
            }
        });
        if !matched {
            if let Some(ae) = x
                .def
                .alternate()
                .and_then(|a| self.exchanges.get_key_value(a))
            {
                next.push(ae.0.as_str());
            }
        }
        for name in next {
            if seen.contains(&name) {
                continue;
            }
            if let Some(nx) = self.exchanges.get(name) {
                self.walk(nx, routing_key, headers, out, seen);
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
            } => {
                let Some(d) = self.resolve(dest) else { return };
                if let Some(x) = self.exchanges.get_mut(source) {
                    if x.bind(d.clone(), key, args) {
                        self.bound_to.entry(d).or_default().push((
                            source.clone(),
                            key.clone(),
                            args.clone(),
                        ));
                    }
                }
            }
            MetaOp::Unbind {
                source,
                dest,
                key,
                args,
                ..
            } => {
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
    }
}

/// All virtual hosts.
#[derive(Debug, Default)]
pub struct Meta {
    vhosts: FxHashMap<String, Vhost>,
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
                .map(|v| (v.to_owned(), Vhost::new(v)))
                .collect(),
        }
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
            MetaOp::DeclareExchange { vhost, .. }
            | MetaOp::DeleteExchange { vhost, .. }
            | MetaOp::DeclareQueue { vhost, .. }
            | MetaOp::DeleteQueue { vhost, .. }
            | MetaOp::Bind { vhost, .. }
            | MetaOp::Unbind { vhost, .. } => vhost,
        };
        if let Some(v) = self.vhosts.get_mut(vhost) {
            v.apply(op);
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

    /// Validates an exchange declare.
    ///
    /// # Errors
    /// 404 (passive, missing), 403 (reserved name), 503 (unknown type),
    /// 406 (different properties, bad `alternate-exchange`).
    pub fn check_exchange_declare(
        &self,
        vhost: &str,
        def: &ExchangeDef,
        kind_name: &str,
        passive: bool,
    ) -> Result<Declared, Refusal> {
        let v = self.vh(vhost)?;
        let name = &def.name;
        let existing = v.exchanges.get(name);
        if passive {
            if name.is_empty() {
                return Err(Refusal::new(
                    ErrorCode::AccessRefused,
                    "operation not permitted on the default exchange",
                ));
            }
            return match existing {
                Some(_) => Ok(Declared::Exists),
                None => Err(Refusal::no_exchange(vhost, name)),
            };
        }
        if name.is_empty() {
            return Err(Refusal::new(
                ErrorCode::AccessRefused,
                "operation not permitted on the default exchange",
            ));
        }
        if ExchangeKind::parse(kind_name).is_none() {
            return Err(Refusal::new(
                ErrorCode::CommandInvalid,
                format_args!("unknown exchange type '{kind_name}'"),
            ));
        }
        if let Some(x) = existing {
            let cur = &x.def;
            let b = |v: bool| format!("'{v}'");
            if cur.kind != def.kind {
                return Err(Refusal::inequivalent(
                    "type",
                    "exchange",
                    name,
                    vhost,
                    &format!("'{}'", def.kind.as_str()),
                    &format!("'{}'", cur.kind.as_str()),
                ));
            }
            for (arg, want, have) in [
                ("durable", def.durable, cur.durable),
                ("auto_delete", def.auto_delete, cur.auto_delete),
                ("internal", def.internal, cur.internal),
            ] {
                if want != have {
                    return Err(Refusal::inequivalent(
                        arg,
                        "exchange",
                        name,
                        vhost,
                        &b(want),
                        &b(have),
                    ));
                }
            }
            check_equivalent(
                &["alternate-exchange"],
                &def.arguments,
                &cur.arguments,
                "exchange",
                name,
                vhost,
            )?;
            return Ok(Declared::Exists);
        }
        if is_reserved(name) {
            return Err(Refusal::reserved("exchange", name));
        }
        if let Some(ae) = def.arguments.get("alternate-exchange") {
            if ae.as_str().is_none() {
                return Err(Refusal::invalid_arg(
                    "alternate-exchange",
                    "exchange",
                    name,
                    vhost,
                    "not a string",
                ));
            }
        }
        Ok(Declared::Create)
    }

    /// Validates an exchange delete. `Ok(false)` when there is nothing to
    /// delete (deleting a missing exchange succeeds, as in RabbitMQ).
    ///
    /// # Errors
    /// 403 for the default and `amq.` exchanges, 406 for `if_unused` on an
    /// exchange with bindings.
    pub fn check_exchange_delete(
        &self,
        vhost: &str,
        name: &str,
        if_unused: bool,
    ) -> Result<bool, Refusal> {
        let v = self.vh(vhost)?;
        if name.is_empty() || is_reserved(name) {
            return Err(Refusal::new(
                ErrorCode::AccessRefused,
                if name.is_empty() {
                    "operation not permitted on the default exchange".to_owned()
                } else {
                    format!("deletion of system exchange '{name}' in vhost '{vhost}' not allowed")
                },
            ));
        }
        let Some(x) = v.exchanges.get(name) else {
            return Ok(false);
        };
        if if_unused && x.binding_count() > 0 {
            return Err(Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!("exchange '{name}' in vhost '{vhost}' in use"),
            ));
        }
        Ok(true)
    }

    /// Validates a queue declare by `session`. Returns the existing queue,
    /// or `None` when it must be created.
    ///
    /// # Errors
    /// 404 (passive, missing), 403 (reserved name), 405 (exclusive to
    /// another session), 406 (different properties or invalid arguments).
    #[allow(clippy::too_many_arguments)]
    pub fn check_queue_declare(
        &self,
        vhost: &str,
        name: &str,
        passive: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: &FieldTable,
        session: SessionId,
    ) -> Result<Option<&QueueDef>, Refusal> {
        let v = self.vh(vhost)?;
        // As RabbitMQ: every named non-passive declare is checked, even of
        // an existing (e.g. server-named) queue.
        if !passive && is_reserved(name) {
            return Err(Refusal::reserved("queue", name));
        }
        let existing = v.queues.get(name);
        if let Some(q) = existing {
            if !q.accessible_by(session) {
                return Err(Refusal::locked(vhost, name));
            }
        }
        if passive {
            return existing
                .map(Some)
                .ok_or_else(|| Refusal::no_queue(vhost, name));
        }
        match existing {
            Some(q) => {
                let b = |v: bool| format!("'{v}'");
                if q.durable != durable {
                    return Err(Refusal::inequivalent(
                        "durable",
                        "queue",
                        name,
                        vhost,
                        &b(durable),
                        &b(q.durable),
                    ));
                }
                if q.exclusive_owner.is_some() != exclusive {
                    return Err(Refusal::locked(vhost, name));
                }
                if q.auto_delete != auto_delete {
                    return Err(Refusal::inequivalent(
                        "auto_delete",
                        "queue",
                        name,
                        vhost,
                        &b(auto_delete),
                        &b(q.auto_delete),
                    ));
                }
                check_equivalent(
                    EQUIVALENCE_ARGS,
                    arguments,
                    &q.arguments,
                    "queue",
                    name,
                    vhost,
                )?;
                Ok(Some(q))
            }
            None => {
                QueueArgs::parse(arguments, name, vhost, durable, exclusive)?;
                Ok(None)
            }
        }
    }

    /// Looks up a queue `session` may use.
    ///
    /// # Errors
    /// 404 missing, 405 exclusive to another session.
    pub fn usable_queue(
        &self,
        vhost: &str,
        name: &str,
        session: SessionId,
    ) -> Result<&QueueDef, Refusal> {
        let q = self
            .vh(vhost)?
            .queues
            .get(name)
            .ok_or_else(|| Refusal::no_queue(vhost, name))?;
        if !q.accessible_by(session) {
            return Err(Refusal::locked(vhost, name));
        }
        Ok(q)
    }

    /// Validates a bind or unbind by `session`.
    ///
    /// # Errors
    /// 404 for a missing source or destination, 403 for the default
    /// exchange, 405 for another session's exclusive queue, 406 for a bad
    /// headers `x-match`.
    pub fn check_bind(
        &self,
        vhost: &str,
        source: &str,
        dest: &DestName,
        args: &FieldTable,
        session: SessionId,
    ) -> Result<(), Refusal> {
        let v = self.vh(vhost)?;
        let default_refused = || {
            Refusal::new(
                ErrorCode::AccessRefused,
                "operation not permitted on the default exchange",
            )
        };
        if source.is_empty() || matches!(dest, DestName::Exchange(d) if d.is_empty()) {
            return Err(default_refused());
        }
        let x = v
            .exchanges
            .get(source)
            .ok_or_else(|| Refusal::no_exchange(vhost, source))?;
        match dest {
            DestName::Queue(q) => {
                self.usable_queue(vhost, q, session)?;
            }
            DestName::Exchange(d) => {
                if !v.exchanges.contains_key(d) {
                    return Err(Refusal::no_exchange(vhost, d));
                }
            }
        }
        x.check_bind(args).map_err(|crate::exchange::BindError::BadMatchMode(m)| {
            Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!("Invalid x-match field value {m}; expected all, any, all-with-x, or any-with-x"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmq_protocol::FieldValue;

    fn xdef(name: &str, kind: ExchangeKind) -> ExchangeDef {
        ExchangeDef {
            name: name.into(),
            kind,
            durable: false,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::new(),
        }
    }

    fn qdef(id: u64, name: &str) -> QueueDef {
        QueueDef {
            id: QueueId(id),
            name: name.into(),
            shard: 0,
            durable: false,
            auto_delete: false,
            exclusive_owner: None,
            arguments: FieldTable::new(),
            args: QueueArgs::default(),
        }
    }

    fn route(m: &Meta, x: &str, key: &str) -> Vec<u64> {
        let v = m.vhost("/").unwrap();
        let mut t = Targets::default();
        v.route(v.exchange(x).unwrap(), key, None, &mut t);
        let mut ids: Vec<u64> = t.queues.iter().map(|q| q.id.0).collect();
        ids.sort();
        ids
    }

    fn bind(source: &str, dest: DestName, key: &str) -> MetaOp {
        MetaOp::Bind {
            vhost: "/".into(),
            source: source.into(),
            dest,
            key: key.into(),
            args: FieldTable::new(),
        }
    }

    #[test]
    fn default_exchange_routes_by_queue_name() {
        let mut m = Meta::new(["/"]);
        m.apply(&MetaOp::DeclareQueue {
            vhost: "/".into(),
            def: qdef(1, "hello"),
        });
        assert_eq!(route(&m, "", "hello"), vec![1]);
        assert_eq!(route(&m, "", "other"), Vec::<u64>::new());
    }

    #[test]
    fn exchange_to_exchange_and_alternate() {
        let mut m = Meta::new(["/"]);
        let vh = || "/".to_owned();
        for (id, n) in [(1, "q1"), (2, "q2"), (3, "unrouted")] {
            m.apply(&MetaOp::DeclareQueue {
                vhost: vh(),
                def: qdef(id, n),
            });
        }
        let mut main = xdef("main", ExchangeKind::Direct);
        main.arguments
            .insert("alternate-exchange", FieldValue::string("ae"));
        m.apply(&MetaOp::DeclareExchange {
            vhost: vh(),
            def: main,
        });
        m.apply(&MetaOp::DeclareExchange {
            vhost: vh(),
            def: xdef("ae", ExchangeKind::Fanout),
        });
        m.apply(&MetaOp::DeclareExchange {
            vhost: vh(),
            def: xdef("down", ExchangeKind::Topic),
        });
        m.apply(&bind("main", DestName::Queue("q1".into()), "a"));
        m.apply(&bind("main", DestName::Exchange("down".into()), "b"));
        m.apply(&bind("down", DestName::Queue("q2".into()), "#"));
        m.apply(&bind("ae", DestName::Queue("unrouted".into()), ""));
        // A cycle must not loop.
        m.apply(&bind("down", DestName::Exchange("main".into()), "#"));
        assert_eq!(route(&m, "main", "a"), vec![1]);
        assert_eq!(route(&m, "main", "b"), vec![2]);
        assert_eq!(route(&m, "main", "zzz"), vec![3]);
    }

    #[test]
    fn deleting_a_queue_drops_its_bindings_and_auto_delete_exchanges() {
        let mut m = Meta::new(["/"]);
        let vh = || "/".to_owned();
        m.apply(&MetaOp::DeclareQueue {
            vhost: vh(),
            def: qdef(1, "q"),
        });
        let mut ad = xdef("ad", ExchangeKind::Fanout);
        ad.auto_delete = true;
        m.apply(&MetaOp::DeclareExchange {
            vhost: vh(),
            def: ad,
        });
        m.apply(&bind("ad", DestName::Queue("q".into()), ""));
        assert_eq!(route(&m, "ad", ""), vec![1]);
        m.apply(&MetaOp::DeleteQueue {
            vhost: vh(),
            id: QueueId(1),
        });
        assert!(
            m.vhost("/").unwrap().exchange("ad").is_none(),
            "auto-delete exchange goes with its last binding"
        );
    }

    #[test]
    fn declare_checks() {
        let mut m = Meta::new(["/"]);
        let vh = "/";
        let mut q = qdef(1, "q");
        q.exclusive_owner = Some(7);
        m.apply(&MetaOp::DeclareQueue {
            vhost: vh.into(),
            def: q,
        });
        let none = FieldTable::new();
        let err = m
            .check_queue_declare(vh, "q", false, false, true, false, &none, 8)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::ResourceLocked);
        let err = m
            .check_queue_declare(vh, "missing", true, false, false, false, &none, 8)
            .unwrap_err();
        assert_eq!(err.text, "NOT_FOUND - no queue 'missing' in vhost '/'");
        let err = m
            .check_queue_declare(vh, "q", false, true, true, false, &none, 7)
            .unwrap_err();
        assert!(
            err.text
                .starts_with("PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q'"),
            "{}",
            err.text
        );
        let err = m
            .check_queue_declare(vh, "amq.x", false, false, false, false, &none, 7)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::AccessRefused);
        let err = m
            .check_exchange_declare(
                vh,
                &xdef("amq.direct", ExchangeKind::Fanout),
                "fanout",
                false,
            )
            .unwrap_err();
        assert!(err.text.contains("inequivalent arg 'type'"), "{}", err.text);
        let err = m
            .check_exchange_declare(vh, &xdef("e", ExchangeKind::Direct), "bogus", false)
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::CommandInvalid);
        let mut topic = xdef("amq.topic", ExchangeKind::Topic);
        topic.durable = true;
        assert_eq!(
            m.check_exchange_declare(vh, &topic, "topic", false),
            Ok(Declared::Exists)
        );
    }
}
