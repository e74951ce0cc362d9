//! Which shard owns a queue: a stable hash of (vhost, queue name), so the
//! same queue lands on the same shard after a restart with the same shard
//! count.

/// The shard owning queue `name` of `vhost` among `shards` shards.
/// The hash is the protocol's ([`ringmq_protocol::placement::shard_of`]):
/// shard-aware clients compute the same.
pub fn owner(vhost: &str, name: &str, shards: usize) -> u16 {
    let shards = u16::try_from(shards).unwrap_or(u16::MAX);
    ringmq_protocol::placement::shard_of(vhost, name, shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        assert_eq!(owner("/", "hello", 2), owner("/", "hello", 2));
        assert_eq!(owner("/", "x", 1), 0);
        let on_one = (0..1000)
            .filter(|i| owner("/", &format!("q{i}"), 2) == 1)
            .count();
        assert!((400..600).contains(&on_one), "{on_one}");
        // vhost and name are separated: ("a", "bc") differs from ("ab", "c").
        let spread: std::collections::HashSet<u16> =
            (0..64).map(|i| owner(&format!("v{i}"), "q", 64)).collect();
        assert!(spread.len() > 20);
    }
}
