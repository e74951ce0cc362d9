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

use std::hash::Hash;

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

/// Sentinel for "no child".
const NONE: u32 = u32::MAX;
/// Index of the root node; it is never freed.
const ROOT: u32 = 0;
/// Above this many destinations on one node, a hash index is kept so that
/// insert/remove of a destination stays O(1) expected.
const DEST_INDEX_THRESHOLD: usize = 8;
/// Up to this many literal children are kept in a linearly scanned vector.
const CHILDREN_LINEAR_MAX: usize = 8;
/// Active-set size up to which membership is checked by linear scan.
const ACTIVE_LINEAR_LIMIT: usize = 32;
/// Longest word stored inline in a [`WordKey`].
const INLINE_MAX: usize = 23;
/// Length byte marking a [`WordKey`] that holds an interned long-word id.
const LONG_TAG: u8 = 0xFF;

/// One pattern word, classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edge<'a> {
    Literal(&'a [u8]),
    Star,
    Hash,
}

fn classify(word: &[u8]) -> Edge<'_> {
    match word {
        b"*" => Edge::Star,
        b"#" => Edge::Hash,
        w => Edge::Literal(w),
    }
}

/// Splits on `'.'`; the empty string has no words (RabbitMQ's
/// `split_topic_key`). Works on bytes: `'.'` is ASCII, so otherwise this is
/// exactly `str::split('.')`, without the generic searcher's overhead.
fn words(s: &str) -> impl Iterator<Item = &[u8]> {
    let n = if s.is_empty() { 0 } else { usize::MAX };
    s.as_bytes().split(|&b| b == b'.').take(n)
}

/// The words of `pattern`, classified, with runs of `#` collapsed into one.
fn pattern_edges(pattern: &str) -> impl Iterator<Item = Edge<'_>> {
    let mut prev_hash = false;
    words(pattern).map(classify).filter(move |e| {
        let is_hash = *e == Edge::Hash;
        let keep = !(is_hash && prev_hash);
        prev_hash = is_hash;
        keep
    })
}

/// A literal word as a fixed-size key: up to [`INLINE_MAX`] bytes inline
/// (little-endian, zero-padded) with the length in the last byte; or
/// [`LONG_TAG`] in the last byte and an interned id in the first word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct WordKey([u64; 3]);

impl Hash for WordKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Three plain word writes (the derived impl would hash a byte slice).
        let [a, b, c] = self.0;
        state.write_u64(a);
        state.write_u64(b);
        state.write_u64(c);
    }
}

impl WordKey {
    /// The inline key of `word`, if it is short enough. Built in registers
    /// (no byte buffer, so no store-to-load forwarding stalls).
    #[inline]
    fn inline(word: &[u8]) -> Option<Self> {
        if word.len() > INLINE_MAX {
            return None;
        }
        let mut w = [0u64; 3];
        let (full, rest) = word.as_chunks::<8>();
        for (dst, chunk) in w.iter_mut().zip(full) {
            *dst = u64::from_le_bytes(*chunk);
        }
        let mut tail = 0u64;
        for (i, &b) in rest.iter().enumerate() {
            tail |= u64::from(b) << (8 * i);
        }
        // At most two full chunks, so this slot exists.
        if let Some(dst) = w.get_mut(full.len()) {
            *dst |= tail;
        }
        // `word.len() <= 23`, and the tail never reaches the top byte.
        w[2] |= (word.len() as u64) << 56;
        Some(WordKey(w))
    }

    fn long(id: u32) -> Self {
        WordKey([u64::from(id), 0, u64::from(LONG_TAG) << 56])
    }
}

/// Interned words longer than [`INLINE_MAX`] bytes, reference-counted by the
/// trie edges that carry them.
#[derive(Clone, Debug, Default)]
struct LongWords {
    /// word -> (id, number of trie edges labelled with it)
    ids: FxHashMap<Box<[u8]>, (u32, u32)>,
    /// Ids of forgotten words, for reuse.
    free: Vec<u32>,
    /// Next never-used id.
    next: u32,
}

impl LongWords {
    /// Key of `word` if it labels some edge (always for short words).
    #[inline]
    fn key(&self, word: &[u8]) -> Option<WordKey> {
        WordKey::inline(word).or_else(|| self.ids.get(word).map(|&(id, _)| WordKey::long(id)))
    }

    /// Key of `word` for a new edge, counting one more use of a long word.
    fn acquire(&mut self, word: &[u8]) -> WordKey {
        if let Some(key) = WordKey::inline(word) {
            return key;
        }
        if let Some((id, refs)) = self.ids.get_mut(word) {
            *refs += 1;
            return WordKey::long(*id);
        }
        let id = self.free.pop().unwrap_or_else(|| {
            let id = self.next;
            // Every id labels at least one edge to a distinct trie node and
            // node indices are u32, so this cannot actually saturate.
            self.next = self.next.saturating_add(1);
            id
        });
        self.ids.insert(word.into(), (id, 1));
        WordKey::long(id)
    }

    /// Counts one use fewer of `word` (no-op for short words).
    fn release(&mut self, word: &[u8]) {
        let Some((id, refs)) = self.ids.get_mut(word) else {
            return;
        };
        *refs -= 1;
        if *refs == 0 {
            let id = *id;
            self.ids.remove(word);
            self.free.push(id);
            if self.ids.is_empty() {
                *self = LongWords::default();
            }
        }
    }
}

/// Literal children of a node.
#[derive(Clone, Debug)]
enum Children {
    /// At most [`CHILDREN_LINEAR_MAX`] entries, scanned linearly.
    Few(Vec<(WordKey, u32)>),
    /// Larger fan-outs (boxed to keep nodes small).
    Many(Box<FxHashMap<WordKey, u32>>),
}

impl Children {
    fn is_empty(&self) -> bool {
        match self {
            Children::Few(v) => v.is_empty(),
            Children::Many(m) => m.is_empty(),
        }
    }

    #[inline]
    fn get(&self, key: &WordKey) -> Option<u32> {
        match self {
            Children::Few(v) => v.iter().find(|(k, _)| k == key).map(|&(_, c)| c),
            Children::Many(m) => m.get(key).copied(),
        }
    }

    /// Inserts an entry for a key known to be absent.
    fn insert(&mut self, key: WordKey, child: u32) {
        match self {
            Children::Few(v) if v.len() < CHILDREN_LINEAR_MAX => v.push((key, child)),
            Children::Few(v) => {
                let mut m: FxHashMap<WordKey, u32> = v.drain(..).collect();
                m.insert(key, child);
                *self = Children::Many(Box::new(m));
            }
            Children::Many(m) => {
                m.insert(key, child);
            }
        }
    }

    fn remove(&mut self, key: &WordKey) {
        match self {
            Children::Few(v) => {
                if let Some(i) = v.iter().position(|(k, _)| k == key) {
                    v.swap_remove(i);
                }
                if v.is_empty() {
                    *v = Vec::new();
                }
            }
            Children::Many(m) => {
                m.remove(key);
                if m.len() <= CHILDREN_LINEAR_MAX / 2 {
                    *self = Children::Few(m.drain().collect());
                }
            }
        }
    }
}

/// Destinations bound at one node, each with its binding count.
///
/// For large sets, a `destination -> position` index is kept outside the node
/// (in [`TopicMatcher`]'s `dest_index`, passed in as `index`) so that nodes
/// stay small and cache-friendly for matching.
#[derive(Clone, Debug)]
struct Dests<D> {
    /// (destination, count), count >= 1. Iterated when matching.
    entries: SmallVec<[(D, u32); 1]>,
}

/// Side index of a large [`Dests`]: destination -> position in `entries`.
type DestIndex<D> = FxHashMap<D, usize>;

impl<D> Dests<D> {
    fn new() -> Self {
        Dests {
            entries: SmallVec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<D: Clone + Eq + Hash> Dests<D> {
    fn position(&self, index: &Option<DestIndex<D>>, dest: &D) -> Option<usize> {
        match index {
            Some(index) => index.get(dest).copied(),
            None => self.entries.iter().position(|(d, _)| d == dest),
        }
    }

    /// Adds one count of `dest`; returns true if it was not present.
    fn add(&mut self, index: &mut Option<DestIndex<D>>, dest: D) -> bool {
        if let Some(entry) = self
            .position(index, &dest)
            .and_then(|i| self.entries.get_mut(i))
        {
            // Four billion identical bindings cannot happen in practice;
            // saturate rather than wrap.
            entry.1 = entry.1.saturating_add(1);
            return false;
        }
        let pos = self.entries.len();
        if let Some(index) = index {
            index.insert(dest.clone(), pos);
        }
        self.entries.push((dest, 1));
        if index.is_none() && self.entries.len() > DEST_INDEX_THRESHOLD {
            let built = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (d, _))| (d.clone(), i))
                .collect();
            *index = Some(built);
        }
        true
    }

    /// Removes one count of `dest`. `None` if absent, otherwise
    /// `Some(true)` if this was the last count (the pair is gone).
    fn remove_one(&mut self, index: &mut Option<DestIndex<D>>, dest: &D) -> Option<bool> {
        let i = self.position(index, dest)?;
        let entry = self.entries.get_mut(i)?;
        if entry.1 > 1 {
            entry.1 -= 1;
            return Some(false);
        }
        self.entries.swap_remove(i);
        if let Some(ix) = index {
            ix.remove(dest);
            if let Some((moved, _)) = self.entries.get(i) {
                if let Some(slot) = ix.get_mut(moved) {
                    *slot = i;
                }
            }
            if self.entries.len() <= DEST_INDEX_THRESHOLD / 2 {
                *index = None;
            }
        }
        if self.entries.is_empty() {
            // Release any heap allocation: empty nodes are pruned or reused.
            self.entries = SmallVec::new();
        }
        Some(true)
    }
}

/// A trie node. See the module documentation.
#[derive(Clone, Debug)]
struct Node<D> {
    children: Children,
    star: u32,
    hash: u32,
    is_hash: bool,
    dests: Dests<D>,
}

impl<D> Node<D> {
    fn new(is_hash: bool) -> Self {
        Node {
            children: Children::Few(Vec::new()),
            star: NONE,
            hash: NONE,
            is_hash,
            dests: Dests::new(),
        }
    }

    fn is_prunable(&self) -> bool {
        self.children.is_empty() && self.star == NONE && self.hash == NONE && self.dests.is_empty()
    }
}

/// Deduplicated set of active trie nodes used while matching. Stack-allocated
/// with a linear membership test while small; spills to a hash set if large.
struct ActiveSet {
    items: SmallVec<[u32; ACTIVE_LINEAR_LIMIT]>,
    seen: Option<FxHashSet<u32>>,
}

impl ActiveSet {
    fn new() -> Self {
        ActiveSet {
            items: SmallVec::new(),
            seen: None,
        }
    }

    fn clear(&mut self) {
        self.items.clear();
        if let Some(seen) = &mut self.seen {
            seen.clear();
        }
    }

    /// Returns true if `n` was not yet in the set.
    #[inline(always)]
    fn insert(&mut self, n: u32) -> bool {
        if let Some(seen) = &mut self.seen {
            if !seen.insert(n) {
                return false;
            }
        } else if self.items.contains(&n) {
            return false;
        } else if self.items.len() >= ACTIVE_LINEAR_LIMIT {
            let mut seen: FxHashSet<u32> = self.items.iter().copied().collect();
            seen.insert(n);
            self.seen = Some(seen);
        }
        self.items.push(n);
        true
    }
}

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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet, HashMap};

    /// Obviously-correct reference matcher over word lists.
    fn naive_words(p: &[&str], k: &[&str]) -> bool {
        match p.split_first() {
            None => k.is_empty(),
            Some((&"#", rest)) => (0..=k.len()).any(|i| naive_words(rest, &k[i..])),
            Some((&"*", rest)) => !k.is_empty() && naive_words(rest, &k[1..]),
            Some((w, rest)) => k.first() == Some(w) && naive_words(rest, &k[1..]),
        }
    }

    /// RabbitMQ's split: "" has no words.
    fn split(s: &str) -> Vec<&str> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split('.').collect()
        }
    }

    fn naive(pattern: &str, key: &str) -> bool {
        naive_words(&split(pattern), &split(key))
    }

    /// Pattern with runs of '#' collapsed (the identity of a binding).
    fn normalize(pattern: &str) -> String {
        let mut out: Vec<&str> = Vec::new();
        for w in split(pattern) {
            if w == "#" && out.last() == Some(&"#") {
                continue;
            }
            out.push(w);
        }
        out.join(".")
    }

    fn matches_one(pattern: &str, key: &str) -> bool {
        let mut m = TopicMatcher::new();
        m.insert(pattern, 1u32);
        let mut n = 0;
        m.for_each_match(key, |_| n += 1);
        assert!(n <= 1, "pattern {pattern:?} reported {n} times for {key:?}");
        n == 1
    }

    fn collect(m: &TopicMatcher<u32>, key: &str) -> Vec<u32> {
        let mut v = Vec::new();
        m.for_each_match(key, |d| v.push(*d));
        v.sort_unstable();
        v
    }

    #[test]
    fn table() {
        let rows: &[(&str, &str, bool)] = &[
            ("#", "", true),
            ("#", "a", true),
            ("#", "a.b.c", true),
            ("#", ".", true),
            ("#", "..", true),
            ("", "", true),
            ("", "a", false),
            ("", ".", false),
            ("a.#", "a", true),
            ("a.#", "a.b.c", true),
            ("a.#", "a.", true),
            ("a.#", "b", false),
            ("a.#", "", false),
            ("a.#", "b.a", false),
            ("#.a", "a", true),
            ("#.a", "x.y.a", true),
            ("#.a", "a.x", false),
            ("#.a", "", false),
            ("#.a", ".a", true),
            ("a.#.b", "a.b", true),
            ("a.#.b", "a.x.b", true),
            ("a.#.b", "a.x.y.b", true),
            ("a.#.b", "a", false),
            ("a.#.b", "b", false),
            ("a.#.b", "a.b.c", false),
            ("a.#.b", "a.b.b", true),
            ("#.#", "", true),
            ("#.#", "a", true),
            ("#.#", "a.b.c", true),
            ("#.#.#", "", true),
            ("#.#.#", "x.y", true),
            ("*", "", false),
            ("*", "x", true),
            ("*", "x.y", false),
            ("*", ".", false),
            ("*.*", "a", false),
            ("*.*", "a.b", true),
            ("*.*", ".", true),
            ("*.*", "a.b.c", false),
            ("a.*.#", "a.b", true),
            ("a.*.#", "a", false),
            ("a.*.#", "a.b.c.d", true),
            ("a.*.#", "a.", true),
            ("*.#", "", false),
            ("*.#", "a", true),
            ("*.#", "a.b.c", true),
            ("#.*", "", false),
            ("#.*", "a", true),
            ("#.*", "a.b.c", true),
            ("#.*", ".", true),
            ("#.*.#", "a", true),
            ("#.*.*", "a", false),
            ("#.*.*", "a.b", true),
            ("a.#.#.b", "a.b", true),
            ("a.#.#.b", "a.x.y.z.b", true),
            ("a.#.#.b", "a.x", false),
            ("#.b.#", "b", true),
            ("#.b.#", "a.b.c.d", true),
            ("#.b.#", "a.c", false),
            ("#.a.#.a.#", "a.a", true),
            ("#.a.#.a.#", "a.b.c", false),
            ("a*", "a*", true),
            ("a*", "ab", false),
            ("a*", "a", false),
            ("a#", "a#", true),
            ("a#", "a", false),
            ("#a", "a", false),
            ("a..b", "a..b", true),
            ("a..b", "a.b", false),
            ("a.*.b", "a..b", true),
            ("a.", "a.", true),
            ("a.", "a", false),
            ("#.", "", false),
            ("#.", "a.", true),
            ("#.", "a", false),
            (".#", "", false),
            (".#", "a", false),
            (".#", ".a.b", true),
            ("a.b.c", "a.b.c", true),
            ("a.b.c", "a.b", false),
            ("a.b", "a.b.c", false),
            ("*.b.*", "a.b.c", true),
            ("*.b.*", "a.c.c", false),
            ("A", "a", false),
            ("é.*", "é.x", true),
            ("stock.*.nyse", "stock.usd.nyse", true),
            ("stock.*.nyse", "stock.nyse", false),
            ("a\u{0}", "a", false),
            ("a", "a\u{0}", false),
            ("a\u{0}.*", "a\u{0}.b", true),
            // 23 bytes (inline) and 24+ bytes (interned) words.
            (
                "abcdefghijklmnopqrstuvw.#",
                "abcdefghijklmnopqrstuvw.x",
                true,
            ),
            (
                "abcdefghijklmnopqrstuvwx.#",
                "abcdefghijklmnopqrstuvwx.x",
                true,
            ),
            ("abcdefghijklmnopqrstuvwx", "abcdefghijklmnopqrstuvw", false),
            ("abcdefghijklmnopqrstuvw", "abcdefghijklmnopqrstuvwx", false),
            (
                "#.this-is-a-rather-long-routing-word",
                "x.this-is-a-rather-long-routing-word",
                true,
            ),
            (
                "#.this-is-a-rather-long-routing-word",
                "x.this-is-a-rather-long-routing-wordX",
                false,
            ),
        ];
        assert!(rows.len() >= 40);
        for &(pattern, key, expected) in rows {
            assert_eq!(
                naive(pattern, key),
                expected,
                "reference disagrees with table: {pattern:?} / {key:?}"
            );
            assert_eq!(
                matches_one(pattern, key),
                expected,
                "pattern {pattern:?} key {key:?}"
            );
        }
    }

    #[test]
    fn node_stays_small() {
        // One cache line for small destination types (matching is dominated
        // by node loads when the trie does not fit in cache).
        assert!(std::mem::size_of::<Node<u32>>() <= 64);
    }

    #[test]
    fn counting_and_hash_collapse() {
        let mut m = TopicMatcher::new();
        assert!(m.is_empty());
        assert!(m.insert("a.#", 1u32));
        assert!(!m.insert("a.#", 1));
        assert!(!m.insert("a.#.#", 1)); // same binding after collapsing
        assert!(m.insert("a.#", 2));
        assert_eq!(m.len(), 2);
        assert_eq!(collect(&m, "a.b"), vec![1, 2]);
        assert!(m.remove("a.#.#", &1));
        assert!(m.remove("a.#", &1));
        assert_eq!(collect(&m, "a.b"), vec![1, 2]);
        assert!(m.remove("a.#", &1));
        assert!(!m.remove("a.#", &1));
        assert!(!m.remove("a.#", &3));
        assert!(!m.remove("a.b", &2));
        assert_eq!(collect(&m, "a.b"), vec![2]);
        assert!(m.remove("a.#", &2));
        assert!(m.is_empty());
        assert_eq!(m.node_count(), 1);
    }

    #[test]
    fn many_dests_on_one_node() {
        let mut m = TopicMatcher::new();
        for d in 0..100u32 {
            assert!(m.insert("x.*", d));
        }
        assert_eq!(collect(&m, "x.y"), (0..100).collect::<Vec<_>>());
        // Remove in a scrambled order, checking the index stays consistent.
        let mut order: Vec<u32> = (0..100).map(|i| (i * 37) % 100).collect();
        order.dedup();
        let mut live: BTreeSet<u32> = (0..100).collect();
        for d in order {
            assert!(m.remove("x.*", &d));
            assert!(!m.remove("x.*", &d));
            live.remove(&d);
            assert_eq!(collect(&m, "x.y"), live.iter().copied().collect::<Vec<_>>());
        }
        assert_eq!(m.node_count(), 1);
    }

    #[test]
    fn exhaustive_small_patterns_large_active_set() {
        // All patterns of 1..=4 words over {a, *, #}: many are active at once,
        // which exercises the hash-set spill of the active set.
        let alphabet = ["a", "*", "#"];
        let mut patterns = Vec::new();
        let mut frontier = vec![String::new()];
        for len in 1..=4 {
            let mut nf = Vec::new();
            for p in &frontier {
                for w in alphabet {
                    let q = if len == 1 {
                        w.to_string()
                    } else {
                        format!("{p}.{w}")
                    };
                    patterns.push(q.clone());
                    nf.push(q);
                }
            }
            frontier = nf;
        }
        let mut m = TopicMatcher::new();
        for (i, p) in patterns.iter().enumerate() {
            m.insert(p, i as u32);
        }
        let mut keys = vec![String::new()];
        let mut kf = vec![String::new()];
        for len in 1..=5 {
            let mut nf = Vec::new();
            for k in &kf {
                for w in ["a", "b", ""] {
                    let q = if len == 1 {
                        w.to_string()
                    } else {
                        format!("{k}.{w}")
                    };
                    keys.push(q.clone());
                    nf.push(q);
                }
            }
            kf = nf;
        }
        for key in &keys {
            let got = collect(&m, key);
            let want: Vec<u32> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| naive(p, key))
                .map(|(i, _)| i as u32)
                .collect();
            assert_eq!(got, want, "key {key:?}");
        }
        for (i, p) in patterns.iter().enumerate() {
            assert!(m.remove(p, &(i as u32)));
        }
        assert_eq!(m.node_count(), 1);
    }

    #[test]
    fn churn_returns_to_initial_size() {
        let mut m = TopicMatcher::new();
        let initial = m.node_count();
        let words = [
            "a", "b", "c", "", "*", "#", "stock", "log", "x1", LONG_A, LONG_B,
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut bindings = Vec::new();
        for _ in 0..5000 {
            let n = 1 + (next() % 5) as usize;
            let p: Vec<&str> = (0..n)
                .map(|_| words[(next() % words.len() as u64) as usize])
                .collect();
            bindings.push((p.join("."), (next() % 50) as u32));
        }
        let mut arena_after_first = 0;
        for round in 0..3 {
            for (p, d) in &bindings {
                m.insert(p, *d);
            }
            if round == 0 {
                arena_after_first = m.nodes.len();
            }
            assert_eq!(m.nodes.len(), arena_after_first, "arena grew under churn");
            // Remove in a different order than inserted.
            for (p, d) in bindings.iter().rev().step_by(2) {
                assert!(m.remove(p, d));
            }
            for (p, d) in bindings.iter().rev().skip(1).step_by(2) {
                assert!(m.remove(p, d));
            }
            assert!(m.is_empty());
            assert_eq!(m.node_count(), initial);
            assert!(m.long_words.ids.is_empty(), "word table leaked");
        }
    }

    #[test]
    fn no_panic_or_blowup_on_odd_input() {
        let mut m = TopicMatcher::new();
        let long_hashes = vec!["#"; 1000].join(".");
        // Needs 30 "a" words; would be exponential for a backtracking matcher.
        let alternating = vec!["#.a"; 30].join(".") + ".#";
        let patterns = [
            "",
            ".",
            "..",
            "#",
            "*",
            "#.#.#.#",
            "*.*.*",
            &long_hashes,
            &alternating,
        ];
        for (i, p) in patterns.iter().enumerate() {
            assert!(m.insert(p, i));
        }
        let long_key = vec!["a"; 10_000].join(".");
        let dots = ".".repeat(500);
        for key in [
            "",
            ".",
            "...",
            "#",
            "*",
            "a.#.*",
            &long_key,
            &dots,
            "\u{0}.\u{ffff}",
        ] {
            let mut seen = HashMap::new();
            m.for_each_match(key, |d| *seen.entry(*d).or_insert(0) += 1);
            assert!(
                seen.values().all(|&c| c == 1),
                "duplicate report for {key:?}"
            );
            for (i, p) in patterns.iter().enumerate() {
                let want = if i == 8 {
                    key == long_key
                } else {
                    naive(&normalize(p), key)
                };
                assert_eq!(seen.contains_key(&i), want, "pattern {p:?} key {key:?}");
            }
        }
        for (i, p) in patterns.iter().enumerate() {
            assert!(m.remove(p, &i));
        }
        assert_eq!(m.node_count(), 1);
    }

    /// Words longer than the inline limit (exercise interning).
    const LONG_A: &str = "long-word-number-one-xxxxxxxxxx";
    const LONG_B: &str = "long-word-number-two-xxxxxxxxxx";

    fn word(alphabet: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
        proptest::sample::select(alphabet)
    }

    fn pattern_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(word(&["a", "b", "c", "", "*", "#", LONG_A, LONG_B]), 0..=5)
            .prop_map(|w| w.join("."))
    }

    fn key_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec(word(&["a", "b", "c", "", LONG_A, LONG_B]), 0..=5)
            .prop_map(|w| w.join("."))
    }

    /// 0 = remove an earlier insert, 1 = remove an arbitrary pair, else insert.
    fn op_strategy() -> impl Strategy<Value = (u8, String, u32, usize)> {
        (0u8..5, pattern_strategy(), 0u32..6, any::<usize>())
    }

    /// Compares the matcher with the model on `key`: every destination must be
    /// reported exactly once per distinct live (normalised) matching pattern.
    fn check_key(
        m: &TopicMatcher<u32>,
        model: &HashMap<(String, u32), u32>,
        key: &str,
    ) -> Result<(), TestCaseError> {
        let mut got: BTreeMap<u32, usize> = BTreeMap::new();
        m.for_each_match(key, |d| *got.entry(*d).or_insert(0) += 1);
        let mut want: BTreeMap<u32, usize> = BTreeMap::new();
        for (p, d) in model.keys() {
            if naive(p, key) {
                *want.entry(*d).or_insert(0) += 1;
            }
        }
        prop_assert_eq!(got, want, "key {:?}", key);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn matches_reference(
            ops in proptest::collection::vec(op_strategy(), 0..60),
            keys in proptest::collection::vec(key_strategy(), 1..12),
        ) {
            let mut m = TopicMatcher::new();
            // normalised (pattern, dest) -> count
            let mut model: HashMap<(String, u32), u32> = HashMap::new();
            let mut inserted: Vec<(String, u32)> = Vec::new();
            for (kind, pattern, dest, pick) in ops {
                let (pattern, dest) = match kind {
                    0 if !inserted.is_empty() => inserted[pick % inserted.len()].clone(),
                    _ => (pattern, dest),
                };
                let norm = (normalize(&pattern), dest);
                if kind <= 1 {
                    let present = model.get(&norm).copied().unwrap_or(0);
                    prop_assert_eq!(m.remove(&pattern, &dest), present > 0);
                    if present == 1 {
                        model.remove(&norm);
                    } else if present > 1 {
                        model.insert(norm, present - 1);
                    }
                } else {
                    let present = model.get(&norm).copied().unwrap_or(0);
                    prop_assert_eq!(m.insert(&pattern, dest), present == 0);
                    model.insert(norm, present + 1);
                    inserted.push((pattern, dest));
                }
                prop_assert_eq!(m.len(), model.len());
                prop_assert_eq!(m.is_empty(), model.is_empty());
            }
            for key in &keys {
                check_key(&m, &model, key)?;
            }
            // Drain everything: the trie must shrink back to the root.
            for ((p, d), count) in &model {
                for _ in 0..*count {
                    prop_assert!(m.remove(p, d));
                }
                prop_assert!(!m.remove(p, d));
            }
            prop_assert!(m.is_empty());
            prop_assert_eq!(m.node_count(), 1);
            prop_assert!(m.long_words.ids.is_empty());
        }
    }
}
