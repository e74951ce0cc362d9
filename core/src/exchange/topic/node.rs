//! The trie's building blocks: a node's literal children, its
//! destinations, and the active set used while matching.

use std::hash::Hash;

use rustc_hash::{FxHashMap, FxHashSet};
use smallvec::SmallVec;

use super::words::WordKey;

/// Sentinel for "no child".
pub(super) const NONE: u32 = u32::MAX;
/// Index of the root node; it is never freed.
pub(super) const ROOT: u32 = 0;
/// Above this many destinations on one node, a hash index is kept so that
/// insert/remove of a destination stays O(1) expected.
pub(super) const DEST_INDEX_THRESHOLD: usize = 8;
/// Up to this many literal children are kept in a linearly scanned vector.
pub(super) const CHILDREN_LINEAR_MAX: usize = 8;
/// Active-set size up to which membership is checked by linear scan.
pub(super) const ACTIVE_LINEAR_LIMIT: usize = 32;

/// Literal children of a node.
#[derive(Clone, Debug)]
pub(super) enum Children {
    /// At most [`CHILDREN_LINEAR_MAX`] entries, scanned linearly.
    Few(Vec<(WordKey, u32)>),
    /// Larger fan-outs (boxed to keep nodes small).
    Many(Box<FxHashMap<WordKey, u32>>),
}

impl Children {
    pub(super) fn is_empty(&self) -> bool {
        match self {
            Children::Few(v) => v.is_empty(),
            Children::Many(m) => m.is_empty(),
        }
    }

    #[inline]
    pub(super) fn get(&self, key: &WordKey) -> Option<u32> {
        match self {
            Children::Few(v) => v.iter().find(|(k, _)| k == key).map(|&(_, c)| c),
            Children::Many(m) => m.get(key).copied(),
        }
    }

    /// Inserts an entry for a key known to be absent.
    pub(super) fn insert(&mut self, key: WordKey, child: u32) {
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

    pub(super) fn remove(&mut self, key: &WordKey) {
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
pub(super) struct Dests<D> {
    /// (destination, count), count >= 1. Iterated when matching.
    pub(super) entries: SmallVec<[(D, u32); 1]>,
}

/// Side index of a large [`Dests`]: destination -> position in `entries`.
pub(super) type DestIndex<D> = FxHashMap<D, usize>;

impl<D> Dests<D> {
    pub(super) fn new() -> Self {
        Dests {
            entries: SmallVec::new(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<D: Clone + Eq + Hash> Dests<D> {
    pub(super) fn position(&self, index: &Option<DestIndex<D>>, dest: &D) -> Option<usize> {
        match index {
            Some(index) => index.get(dest).copied(),
            None => self.entries.iter().position(|(d, _)| d == dest),
        }
    }

    /// Adds one count of `dest`; returns true if it was not present.
    pub(super) fn add(&mut self, index: &mut Option<DestIndex<D>>, dest: D) -> bool {
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
    pub(super) fn remove_one(
        &mut self,
        index: &mut Option<DestIndex<D>>,
        dest: &D,
    ) -> Option<bool> {
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
pub(super) struct Node<D> {
    pub(super) children: Children,
    pub(super) star: u32,
    pub(super) hash: u32,
    pub(super) is_hash: bool,
    pub(super) dests: Dests<D>,
}

impl<D> Node<D> {
    pub(super) fn new(is_hash: bool) -> Self {
        Node {
            children: Children::Few(Vec::new()),
            star: NONE,
            hash: NONE,
            is_hash,
            dests: Dests::new(),
        }
    }

    pub(super) fn is_prunable(&self) -> bool {
        self.children.is_empty() && self.star == NONE && self.hash == NONE && self.dests.is_empty()
    }
}

/// Deduplicated set of active trie nodes used while matching. Stack-allocated
/// with a linear membership test while small; spills to a hash set if large.
pub(super) struct ActiveSet {
    pub(super) items: SmallVec<[u32; ACTIVE_LINEAR_LIMIT]>,
    pub(super) seen: Option<FxHashSet<u32>>,
}

impl ActiveSet {
    pub(super) fn new() -> Self {
        ActiveSet {
            items: SmallVec::new(),
            seen: None,
        }
    }

    pub(super) fn clear(&mut self) {
        self.items.clear();
        if let Some(seen) = &mut self.seen {
            seen.clear();
        }
    }

    /// Returns true if `n` was not yet in the set.
    #[inline(always)]
    pub(super) fn insert(&mut self, n: u32) -> bool {
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
