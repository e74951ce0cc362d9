//! Tests of the topic matcher: a property test against an obviously
//! correct matcher, and RabbitMQ's word-splitting cases.

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
