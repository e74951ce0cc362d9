//! Words: splitting keys and patterns, classifying pattern words, and the
//! fixed-size keys (inline or interned) literal words are indexed by.

use std::hash::Hash;

use rustc_hash::FxHashMap;

/// Longest word stored inline in a [`WordKey`].
pub(super) const INLINE_MAX: usize = 23;
/// Length byte marking a [`WordKey`] that holds an interned long-word id.
pub(super) const LONG_TAG: u8 = 0xFF;

/// One pattern word, classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Edge<'a> {
    Literal(&'a [u8]),
    Star,
    Hash,
}

pub(super) fn classify(word: &[u8]) -> Edge<'_> {
    match word {
        b"*" => Edge::Star,
        b"#" => Edge::Hash,
        w => Edge::Literal(w),
    }
}

/// Splits on `'.'`; the empty string has no words (RabbitMQ's
/// `split_topic_key`). Works on bytes: `'.'` is ASCII, so otherwise this is
/// exactly `str::split('.')`, without the generic searcher's overhead.
pub(super) fn words(s: &str) -> impl Iterator<Item = &[u8]> {
    let n = if s.is_empty() { 0 } else { usize::MAX };
    s.as_bytes().split(|&b| b == b'.').take(n)
}

/// The words of `pattern`, classified, with runs of `#` collapsed into one.
pub(super) fn pattern_edges(pattern: &str) -> impl Iterator<Item = Edge<'_>> {
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
pub(super) struct WordKey([u64; 3]);

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
    pub(super) fn inline(word: &[u8]) -> Option<Self> {
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

    pub(super) fn long(id: u32) -> Self {
        WordKey([u64::from(id), 0, u64::from(LONG_TAG) << 56])
    }
}

/// Interned words longer than [`INLINE_MAX`] bytes, reference-counted by the
/// trie edges that carry them.
#[derive(Clone, Debug, Default)]
pub(super) struct LongWords {
    /// word -> (id, number of trie edges labelled with it)
    pub(super) ids: FxHashMap<Box<[u8]>, (u32, u32)>,
    /// Ids of forgotten words, for reuse.
    pub(super) free: Vec<u32>,
    /// Next never-used id.
    pub(super) next: u32,
}

impl LongWords {
    /// Key of `word` if it labels some edge (always for short words).
    #[inline]
    pub(super) fn key(&self, word: &[u8]) -> Option<WordKey> {
        WordKey::inline(word).or_else(|| self.ids.get(word).map(|&(id, _)| WordKey::long(id)))
    }

    /// Key of `word` for a new edge, counting one more use of a long word.
    pub(super) fn acquire(&mut self, word: &[u8]) -> WordKey {
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
    pub(super) fn release(&mut self, word: &[u8]) {
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
