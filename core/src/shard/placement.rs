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
    fn the_protocol_hash_decides() {
        // Spread and stability are tested with the function itself
        // (`ringmq_protocol::placement`); here only that the broker uses it.
        for i in 0..100 {
            let name = format!("q{i}");
            assert_eq!(
                owner("/", &name, 2),
                ringmq_protocol::placement::shard_of("/", &name, 2)
            );
        }
        assert_eq!(owner("/", "x", 1), 0);
    }
}
