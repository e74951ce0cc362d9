//! Temporary naive topic matcher (replaced by the trie).
use std::hash::Hash;

/// Naive placeholder.
#[derive(Debug)]
pub struct TopicMatcher<D> {
    items: Vec<(String, D, usize)>,
}

impl<D> Default for TopicMatcher<D> {
    fn default() -> Self {
        TopicMatcher { items: Vec::new() }
    }
}

impl<D: Clone + Eq + Hash> TopicMatcher<D> {
    /// New.
    pub fn new() -> Self {
        Self::default()
    }
    /// Insert.
    pub fn insert(&mut self, pattern: &str, dest: D) -> bool {
        if let Some(e) = self
            .items
            .iter_mut()
            .find(|e| e.0 == pattern && e.1 == dest)
        {
            e.2 += 1;
            return false;
        }
        self.items.push((pattern.to_owned(), dest, 1));
        true
    }
    /// Remove.
    pub fn remove(&mut self, pattern: &str, dest: &D) -> bool {
        if let Some(at) = self
            .items
            .iter()
            .position(|e| e.0 == pattern && e.1 == *dest)
        {
            self.items[at].2 -= 1;
            if self.items[at].2 == 0 {
                self.items.remove(at);
            }
            return true;
        }
        false
    }
    /// Match.
    pub fn for_each_match(&self, key: &str, mut f: impl FnMut(&D)) {
        let k: Vec<&str> = key.split('.').collect();
        for (p, d, _) in &self.items {
            let p: Vec<&str> = p.split('.').collect();
            if m(&p, &k) {
                f(d)
            }
        }
    }
    /// Len.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

fn m(p: &[&str], k: &[&str]) -> bool {
    match p.split_first() {
        None => k.is_empty(),
        Some((&"#", rest)) => (0..=k.len()).any(|i| m(rest, &k[i..])),
        Some((&"*", rest)) => !k.is_empty() && m(rest, &k[1..]),
        Some((w, rest)) => k.first() == Some(w) && m(rest, &k[1..]),
    }
}
