//! Exchanges and their bindings: pure routing, no I/O.
//!
//! Every shard holds a replica of every exchange (see `meta`), so a publish
//! is routed on the core that read it. Each exchange keeps its bindings in a
//! kind-specific index built when bindings change, never scanned per message
//! (except headers exchanges, whose bindings are arbitrary predicates, as in
//! RabbitMQ):
//! - direct: hash map from binding key to destinations;
//! - fanout: list of destinations;
//! - topic: a word trie ([`topic::TopicMatcher`]);
//! - headers: compiled patterns ([`headers::HeadersPattern`]).
//!
//! The default exchange also routes to direct reply-to consumers
//! ([`reply_to`]), which are not queues.

pub mod headers;
pub mod reply_to;
pub mod sender_selected;
pub mod topic;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use ringmq_protocol::FieldTable;

use self::headers::HeadersPattern;
use self::topic::TopicMatcher;

/// Identity of one queue incarnation (a redeclared queue gets a new id).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct QueueId(pub u64);

impl std::fmt::Display for QueueId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "q{}", self.0)
    }
}

/// A queue and the shard that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueRef {
    /// The queue.
    pub id: QueueId,
    /// Its owning shard.
    pub shard: u16,
}

/// Where a binding sends messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dest {
    /// A queue.
    Queue(QueueRef),
    /// Another exchange (exchange-to-exchange binding), by name.
    Exchange(String),
}

/// The exchange types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExchangeKind {
    /// Exact routing-key match.
    Direct,
    /// Every bound destination.
    Fanout,
    /// Routing-key patterns with `*` and `#`.
    Topic,
    /// Header-value patterns.
    Headers,
}

impl ExchangeKind {
    /// Parses the AMQP type name.
    pub fn parse(s: &str) -> Option<ExchangeKind> {
        match s {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            _ => None,
        }
    }

    /// The AMQP type name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

enum Index {
    Direct(FxHashMap<String, SmallVec<[Dest; 2]>>),
    Fanout(Vec<Dest>),
    Topic(TopicMatcher<Dest>),
    Headers(Vec<(HeadersPattern, Dest)>),
}

/// The declared properties of an exchange.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExchangeDef {
    /// Name.
    pub name: String,
    /// Type.
    pub kind: ExchangeKind,
    /// Survives restarts.
    pub durable: bool,
    /// Deleted when its last binding (as a source) goes.
    pub auto_delete: bool,
    /// Not publishable by clients.
    pub internal: bool,
    /// Declare arguments as given.
    pub arguments: FieldTable,
}

impl ExchangeDef {
    /// The `alternate-exchange` argument.
    pub fn alternate(&self) -> Option<&str> {
        self.arguments
            .get("alternate-exchange")
            .and_then(|v| v.as_str())
    }
}

/// An exchange with its bindings (as the source).
pub struct Exchange {
    /// Declared properties.
    pub def: ExchangeDef,
    /// The alternate exchange a policy gives it (its own argument wins).
    pub policy_alternate: Option<String>,
    /// (destination, binding key) → the argument tables bound with it.
    bindings: FxHashMap<(Dest, String), SmallVec<[FieldTable; 1]>>,
    index: Index,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("def", &self.def)
            .field("bindings", &self.bindings.len())
            .finish()
    }
}

/// A binding could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindError {
    /// Headers binding with a bad `x-match`.
    BadMatchMode(String),
}

impl Exchange {
    /// An exchange without bindings.
    pub fn new(def: ExchangeDef) -> Exchange {
        let index = match def.kind {
            ExchangeKind::Direct => Index::Direct(FxHashMap::default()),
            ExchangeKind::Fanout => Index::Fanout(Vec::new()),
            ExchangeKind::Topic => Index::Topic(TopicMatcher::new()),
            ExchangeKind::Headers => Index::Headers(Vec::new()),
        };
        Exchange {
            def,
            policy_alternate: None,
            bindings: FxHashMap::default(),
            index,
        }
    }

    /// Its alternate exchange: its `alternate-exchange` argument, else a
    /// policy's.
    pub fn alternate(&self) -> Option<&str> {
        self.def.alternate().or(self.policy_alternate.as_deref())
    }

    /// Number of bindings with this exchange as the source.
    pub fn binding_count(&self) -> usize {
        self.bindings.values().map(SmallVec::len).sum()
    }

    /// True when the binding exists.
    pub fn has_binding(&self, dest: &Dest, key: &str, args: &FieldTable) -> bool {
        self.bindings
            .get(&(dest.clone(), key.to_owned()))
            .is_some_and(|v| v.iter().any(|a| a == args))
    }

    /// Checks that a binding could be added.
    ///
    /// # Errors
    /// Headers bindings with a bad `x-match`.
    pub fn check_bind(&self, args: &FieldTable) -> Result<(), BindError> {
        if self.def.kind == ExchangeKind::Headers {
            HeadersPattern::compile(args).map_err(|e| BindError::BadMatchMode(e.0))?;
        }
        Ok(())
    }

    /// Adds a binding; adding an existing one is a no-op (as in AMQP).
    /// Returns true when it was new.
    pub fn bind(&mut self, dest: Dest, key: &str, args: &FieldTable) -> bool {
        let entry = self
            .bindings
            .entry((dest.clone(), key.to_owned()))
            .or_default();
        if entry.iter().any(|a| a == args) {
            return false;
        }
        entry.push(args.clone());
        match &mut self.index {
            Index::Direct(map) => map.entry(key.to_owned()).or_default().push(dest),
            Index::Fanout(list) => list.push(dest),
            Index::Topic(trie) => {
                trie.insert(key, dest);
            }
            Index::Headers(list) => {
                // check_bind ran first; a bad pattern matches nothing.
                if let Ok(p) = HeadersPattern::compile(args) {
                    list.push((p, dest));
                }
            }
        }
        true
    }

    /// Removes a binding; returns true when it existed.
    pub fn unbind(&mut self, dest: &Dest, key: &str, args: &FieldTable) -> bool {
        let map_key = (dest.clone(), key.to_owned());
        let Some(entry) = self.bindings.get_mut(&map_key) else {
            return false;
        };
        let Some(at) = entry.iter().position(|a| a == args) else {
            return false;
        };
        entry.remove(at);
        if entry.is_empty() {
            self.bindings.remove(&map_key);
        }
        self.unindex(dest, key, Some(args));
        true
    }

    fn unindex(&mut self, dest: &Dest, key: &str, args: Option<&FieldTable>) {
        match &mut self.index {
            Index::Direct(map) => {
                if let Some(list) = map.get_mut(key) {
                    if let Some(at) = list.iter().position(|d| d == dest) {
                        list.remove(at);
                    }
                    if list.is_empty() {
                        map.remove(key);
                    }
                }
            }
            Index::Fanout(list) => {
                if let Some(at) = list.iter().position(|d| d == dest) {
                    list.remove(at);
                }
            }
            Index::Topic(trie) => {
                trie.remove(key, dest);
            }
            Index::Headers(list) => {
                let compiled = args.and_then(|a| HeadersPattern::compile(a).ok());
                if let Some(at) = list
                    .iter()
                    .position(|(p, d)| d == dest && compiled.as_ref().is_none_or(|c| c == p))
                {
                    list.remove(at);
                }
            }
        }
    }

    /// Removes every binding to `dest`; returns how many.
    pub fn unbind_dest(&mut self, dest: &Dest) -> usize {
        let keys: Vec<(Dest, String)> = self
            .bindings
            .keys()
            .filter(|(d, _)| d == dest)
            .cloned()
            .collect();
        let mut removed = 0;
        for k in keys {
            if let Some(all) = self.bindings.remove(&k) {
                for args in &all {
                    self.unindex(&k.0, &k.1, Some(args));
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Every binding: (destination, key, arguments).
    pub fn bindings(&self) -> impl Iterator<Item = (&Dest, &str, &FieldTable)> {
        self.bindings
            .iter()
            .flat_map(|((d, k), args)| args.iter().map(move |a| (d, k.as_str(), a)))
    }

    /// Calls `f` for each destination matching the message (possibly more
    /// than once for the same destination).
    pub fn route(&self, routing_key: &str, headers: Option<&FieldTable>, mut f: impl FnMut(&Dest)) {
        match &self.index {
            Index::Direct(map) => {
                if let Some(list) = map.get(routing_key) {
                    list.iter().for_each(f);
                }
            }
            Index::Fanout(list) => list.iter().for_each(f),
            Index::Topic(trie) => trie.for_each_match(routing_key, f),
            Index::Headers(list) => {
                for (p, d) in list {
                    if p.matches(headers) {
                        f(d);
                    }
                }
            }
        }
    }
}

/// The queues a message goes to, deduplicated, and the direct reply-to
/// consumers it goes to.
#[derive(Debug, Default, Clone)]
pub struct Targets {
    /// Target queues, each once.
    pub queues: SmallVec<[QueueRef; 4]>,
    /// Direct reply-to consumers, each once (empty but for replies).
    pub replies: Vec<reply_to::ReplyTo>,
}

impl Targets {
    /// Adds `q` unless present.
    pub fn add(&mut self, q: QueueRef) {
        if !self.queues.contains(&q) {
            self.queues.push(q);
        }
    }

    /// Adds a direct reply-to consumer unless present.
    pub fn add_reply(&mut self, r: reply_to::ReplyTo) {
        if !self.replies.contains(&r) {
            self.replies.push(r);
        }
    }

    /// Forgets the targets, keeping the allocation.
    pub fn clear(&mut self) {
        self.queues.clear();
        self.replies.clear();
    }

    /// True when no queue matched. Replies do not count: as in RabbitMQ,
    /// a message that only went to a reply consumer is unroutable for
    /// `mandatory` (returned) and confirmed at once.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: u64) -> Dest {
        Dest::Queue(QueueRef {
            id: QueueId(n),
            shard: 0,
        })
    }

    fn def(kind: ExchangeKind) -> ExchangeDef {
        ExchangeDef {
            name: "x".into(),
            kind,
            durable: false,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::new(),
        }
    }

    fn routed(x: &Exchange, key: &str) -> Vec<Dest> {
        let mut out = Vec::new();
        x.route(key, None, |d| out.push(d.clone()));
        out.sort_by_key(|d| format!("{d:?}"));
        out.dedup();
        out
    }

    #[test]
    fn direct_routes_by_exact_key() {
        let mut x = Exchange::new(def(ExchangeKind::Direct));
        let none = FieldTable::new();
        assert!(x.bind(q(1), "error", &none));
        assert!(
            !x.bind(q(1), "error", &none),
            "same binding twice is one binding"
        );
        x.bind(q(2), "info", &none);
        x.bind(q(2), "error", &none);
        assert_eq!(routed(&x, "error"), vec![q(1), q(2)]);
        assert_eq!(routed(&x, "info"), vec![q(2)]);
        assert_eq!(routed(&x, "debug"), vec![]);
        assert!(x.unbind(&q(1), "error", &none));
        assert!(!x.unbind(&q(1), "error", &none));
        assert_eq!(routed(&x, "error"), vec![q(2)]);
        assert_eq!(x.unbind_dest(&q(2)), 2);
        assert_eq!(x.binding_count(), 0);
    }

    #[test]
    fn fanout_ignores_key() {
        let mut x = Exchange::new(def(ExchangeKind::Fanout));
        let none = FieldTable::new();
        x.bind(q(1), "", &none);
        x.bind(q(2), "whatever", &none);
        assert_eq!(routed(&x, "anything"), vec![q(1), q(2)]);
    }

    #[test]
    fn topic_uses_patterns() {
        let mut x = Exchange::new(def(ExchangeKind::Topic));
        let none = FieldTable::new();
        x.bind(q(1), "error.#", &none);
        x.bind(q(2), "*.critical", &none);
        assert_eq!(routed(&x, "error.disk.full"), vec![q(1)]);
        assert_eq!(routed(&x, "error.critical"), vec![q(1), q(2)]);
        assert_eq!(routed(&x, "kern.critical"), vec![q(2)]);
        assert_eq!(routed(&x, "kern.info"), vec![]);
    }
}
