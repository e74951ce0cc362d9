//! AMQP topic-exchange matching (RabbitMQ semantics), precompiled into a trie.
//!
//! # Semantics
//!
//! Routing keys and binding patterns are split on `'.'` into *words*, as
//! RabbitMQ 3.10 does: the empty key `""` has no words at all, `"a..b"` has an
//! empty middle word and `"a."` ends with an empty word. In a pattern:
//!
//! * the word `*` matches exactly one word (which may be the empty word);
//! * the word `#` matches zero or more words;
//! * every other word (including `"a*"`, `"#a"` or `""`) matches only itself,
//!   byte for byte. Only whole words are wildcards.
//!
//! Consequences: `"#"` matches every key including `""`; `""` matches only `""`;
//! `"a.#"` matches `"a"` and `"a.b.c"`; `"#.a"` matches `"a"` and `"x.y.a"`;
//! `"*"` matches `"x"` but neither `""` nor `"x.y"`; `"a.*.#"` matches `"a.b"` but
//! not `"a"`. A run of consecutive `#` words is equivalent to a single `#`, so
//! runs are collapsed when a pattern is inserted or removed: `"a.#.#.b"` and
//! `"a.#.b"` are the *same* binding as far as [`TopicMatcher`] counting goes.
//!
//! # Structure
//!
//! All bindings of an exchange live in one trie whose nodes are kept in an arena
//! (`Vec<Node>`, addressed by `u32` index; freed nodes go on a free list and are
//! reused, so the arena does not grow under insert/remove churn). Each node has
//!
//! * `children`: literal word → child node. Words are keyed by a fixed-size
//!   `WordKey` (three `u64`s): words of up to 23 bytes are stored inline
//!   (bytes + length), so hashing and comparing never chase a pointer; longer
//!   words are interned in a reference-counted side table and keyed by id. A
//!   node with at most 8 literal children keeps them in a small vector scanned
//!   linearly; larger fan-outs use an `FxHashMap<WordKey, u32>`.
//! * `star`: the child reached by a `*` word,
//! * `hash`: the child reached by a `#` word,
//! * `is_hash`: whether the node itself was reached by a `#` edge (such a node
//!   may absorb any number of further words),
//! * the destinations (with binding counts) of the patterns ending there,
//!   inline for a single destination; nodes with more than 8 destinations also
//!   get a `destination -> position` index, kept in a side table so that nodes
//!   stay at one cache line (64 bytes for a small destination type).
//!
//! A (normalised) pattern is a path from the root, so insert and remove walk
//! one edge per word. Remove prunes the nodes that become empty on the way back.
//!
//! # Matching
//!
//! The trie is run as an NFA over the routing-key words. The *active set* holds
//! the trie nodes that can be reached after consuming a prefix of the key, closed
//! under "a `#` may match zero words" (whenever a node is added, its `hash` child
//! is added too). For each word (converted to a `WordKey` once), every active
//! node contributes its literal child for that word, its `star` child, and — if
//! it is a `#` node — itself. The active set is deduplicated, so after the last
//! word each terminal node appears at most once and every (pattern,
//! destination) pair is reported at most once per call, however many ways the
//! pattern matches (`"#.#"`, `"a.#.x.#"`, ...). There is no backtracking, hence
//! no exponential blow-up.
//!
//! # Complexity
//!
//! With `W` key words, `A` the largest active set and `M` the number of
//! reported (pattern, destination) pairs, [`TopicMatcher::for_each_match`] costs
//! `O(W · A)` child lookups (each `O(1)` expected) plus `O(M)` callbacks. `A` is
//! bounded by the number of distinct pattern prefixes that match some prefix of
//! the key: a handful for realistic binding sets, independent of the total
//! number of bindings (worst case: the number of trie nodes). The active set
//! lives on the stack; only an active set of more than 32 nodes spills to the
//! heap. [`TopicMatcher::insert`] and [`TopicMatcher::remove`] cost `O(P)` for
//! a pattern of `P` bytes plus `O(1)` expected for the destination lookup at
//! the final node.

mod node;
mod words;

use std::hash::Hash;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use self::node::{ActiveSet, DestIndex, Node, NONE, ROOT};
use self::words::{pattern_edges, words, Edge, LongWords, WordKey};

/// A precompiled set of topic-exchange bindings `(pattern, destination)`.
///
/// See the [module documentation](self) for the matching semantics, the data
/// structure and the complexity of each operation.
#[derive(Clone, Debug)]
pub struct TopicMatcher<D> {
    nodes: Vec<Node<D>>,
    free: Vec<u32>,
    long_words: LongWords,
    /// Destination indexes of nodes with many destinations (see [`Dests`]).
    dest_index: FxHashMap<u32, DestIndex<D>>,
    len: usize,
    /// Results of recent routing keys (keys repeat in real traffic); cleared
    /// whenever a binding changes, and when it reaches `CACHE_ENTRIES`.
    cache: std::cell::RefCell<FxHashMap<Box<str>, SmallVec<[D; 4]>>>,
}

/// Routing keys remembered per matcher.
const CACHE_ENTRIES: usize = 16 * 1024;

impl<D> Default for TopicMatcher<D> {
    fn default() -> Self {
        TopicMatcher {
            nodes: vec![Node::new(false)],
            free: Vec::new(),
            long_words: LongWords::default(),
            dest_index: FxHashMap::default(),
            len: 0,
            cache: std::cell::RefCell::default(),
        }
    }
}

impl<D: Clone + Eq + Hash> TopicMatcher<D> {
    /// Creates an empty matcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a binding of `pattern` to `dest`. Bindings are counted: adding the
    /// same (pattern, dest) twice needs two removes. Returns true if this
    /// (pattern, dest) pair was not present before.
    ///
    /// Patterns that differ only in runs of consecutive `#` words (`"a.#.#"`
    /// and `"a.#"`) are the same pattern here. Cost: `O(pattern length)`.
    pub fn insert(&mut self, pattern: &str, dest: D) -> bool {
        self.cache.get_mut().clear();
        let mut node = ROOT;
        for edge in pattern_edges(pattern) {
            node = self.child_or_insert(node, edge);
        }
        let mut index = self.dest_index.remove(&node);
        let added = self.node_mut(node).dests.add(&mut index, dest);
        if let Some(index) = index {
            self.dest_index.insert(node, index);
        }
        if added {
            self.len += 1;
        }
        added
    }

    /// Removes one count of (pattern, dest); returns true if it was present.
    /// Frees trie nodes that become empty (so memory does not grow with churn).
    ///
    /// Accepts the pattern exactly as it was inserted (runs of `#` are
    /// collapsed the same way). Cost: `O(pattern length)`.
    pub fn remove(&mut self, pattern: &str, dest: &D) -> bool {
        self.cache.get_mut().clear();
        // (parent, edge) for every step of the path.
        let mut path: SmallVec<[(u32, Edge<'_>); 8]> = SmallVec::new();
        let mut node = ROOT;
        for edge in pattern_edges(pattern) {
            let child = self.child(node, edge);
            if child == NONE {
                return false;
            }
            path.push((node, edge));
            node = child;
        }
        let mut index = self.dest_index.remove(&node);
        let removed = self.node_mut(node).dests.remove_one(&mut index, dest);
        if let Some(index) = index {
            self.dest_index.insert(node, index);
        }
        match removed {
            None => return false,
            Some(true) => self.len -= 1,
            Some(false) => {}
        }
        while let Some((parent, edge)) = path.pop() {
            if !self.node(node).is_prunable() {
                break;
            }
            match edge {
                Edge::Literal(w) => {
                    if let Some(key) = self.long_words.key(w) {
                        self.node_mut(parent).children.remove(&key);
                        self.long_words.release(w);
                    }
                }
                Edge::Star => self.node_mut(parent).star = NONE,
                Edge::Hash => self.node_mut(parent).hash = NONE,
            }
            self.free_node(node);
            node = parent;
        }
        true
    }

    /// Calls `f` for every destination whose pattern matches `routing_key`.
    /// A destination may be reported more than once if several of its patterns
    /// match (the caller deduplicates); but for a single (pattern, dest) it is
    /// reported at most once per call even if the pattern matches in several
    /// ways (e.g. "#.#" or "a.#.#.b").
    ///
    /// Does not allocate unless more than 32 trie nodes are simultaneously
    /// active. Cost: `O(words · active nodes + reported pairs)`.
    pub fn for_each_match(&self, routing_key: &str, mut f: impl FnMut(&D)) {
        if self.len == 0 {
            return;
        }
        if routing_key.len() > 255 {
            return self.match_trie(routing_key, f);
        }
        if let Some(hit) = self.cache.borrow().get(routing_key) {
            hit.iter().for_each(f);
            return;
        }
        let mut found: SmallVec<[D; 4]> = SmallVec::new();
        self.match_trie(routing_key, |d| found.push(d.clone()));
        found.iter().for_each(&mut f);
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(routing_key.into(), found);
    }

    /// [`TopicMatcher::for_each_match`] without the cache: walks the trie.
    pub fn match_trie(&self, routing_key: &str, mut f: impl FnMut(&D)) {
        if self.len == 0 {
            return;
        }
        let mut sets = [ActiveSet::new(), ActiveSet::new()];
        let mut cur_is_0 = true;
        {
            let [first, _] = &mut sets;
            self.add_closure(first, ROOT);
        }
        for word in words(routing_key) {
            let [a, b] = &mut sets;
            let (cur, next) = if cur_is_0 { (&*a, b) } else { (&*b, a) };
            next.clear();
            // Key of `word`, computed lazily, at most once per word; `None`
            // inside when the word labels no edge at all.
            let mut key: Option<Option<WordKey>> = None;
            for &n in &cur.items {
                let node = self.node(n);
                if node.is_hash {
                    self.add_closure(next, n);
                }
                if node.star != NONE {
                    self.add_closure(next, node.star);
                }
                if !node.children.is_empty() {
                    let key = key.get_or_insert_with(|| self.long_words.key(word));
                    if let Some(child) = key.as_ref().and_then(|k| node.children.get(k)) {
                        self.add_closure(next, child);
                    }
                }
            }
            if next.items.is_empty() {
                return;
            }
            cur_is_0 = !cur_is_0;
        }
        let [a, b] = &sets;
        let cur = if cur_is_0 { a } else { b };
        for &n in &cur.items {
            for (dest, _) in &self.node(n).dests.entries {
                f(dest);
            }
        }
    }

    /// Number of distinct (pattern, dest) pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no bindings.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of live trie nodes (including the root).
    #[cfg(test)]
    fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// Adds `n` and the chain of `#` children hanging off it (a `#` may match
    /// zero words). If `n` is already present, so is its closure.
    #[inline(always)]
    fn add_closure(&self, set: &mut ActiveSet, mut n: u32) {
        while n != NONE && set.insert(n) {
            n = self.node(n).hash;
        }
    }

    fn child(&self, parent: u32, edge: Edge<'_>) -> u32 {
        let p = self.node(parent);
        match edge {
            Edge::Literal(w) => self
                .long_words
                .key(w)
                .and_then(|k| p.children.get(&k))
                .unwrap_or(NONE),
            Edge::Star => p.star,
            Edge::Hash => p.hash,
        }
    }

    fn child_or_insert(&mut self, parent: u32, edge: Edge<'_>) -> u32 {
        let existing = self.child(parent, edge);
        if existing != NONE {
            return existing;
        }
        let child = self.alloc(edge == Edge::Hash);
        match edge {
            Edge::Literal(w) => {
                let key = self.long_words.acquire(w);
                self.node_mut(parent).children.insert(key, child);
            }
            Edge::Star => self.node_mut(parent).star = child,
            Edge::Hash => self.node_mut(parent).hash = child,
        }
        child
    }

    fn alloc(&mut self, is_hash: bool) -> u32 {
        if let Some(i) = self.free.pop() {
            *self.node_mut(i) = Node::new(is_hash);
            return i;
        }
        let i = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&i| i != NONE)
            .expect("topic trie cannot hold more than u32::MAX - 1 nodes");
        self.nodes.push(Node::new(is_hash));
        i
    }

    fn free_node(&mut self, n: u32) {
        // Drop the node's contents now rather than on reuse.
        *self.node_mut(n) = Node::new(false);
        self.dest_index.remove(&n);
        self.free.push(n);
    }

    #[inline]
    fn node(&self, n: u32) -> &Node<D> {
        &self.nodes[n as usize]
    }

    fn node_mut(&mut self, n: u32) -> &mut Node<D> {
        &mut self.nodes[n as usize]
    }
}

#[cfg(test)]
mod tests;
