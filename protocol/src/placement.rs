//! Shard-aware connections: which shard owns a queue, and where that
//! shard listens on its own.
//!
//! A broker's queues are spread over its shards (one per core) by a hash of
//! (vhost, queue name). A connection lands on any shard; work on a queue
//! owned by another shard crosses cores (a wake-up of the other core per
//! batch). A broker started with per-shard ports (`server.shard_port_base`)
//! says so in its `HelloOk` (`shard`, `shards`, `shard_port_base`), and a
//! client that mostly uses one queue can connect to that queue's shard
//! directly, as ScyllaDB's shard-aware drivers do.

/// The shard owning queue `name` of `vhost` among `shards` shards:
/// CRC32C of the vhost, a zero byte, then the name, modulo the shard count.
pub fn shard_of(vhost: &str, name: &str, shards: u16) -> u16 {
    let shards = u32::from(shards.max(1));
    let h = crc32c::crc32c_append(crc32c::crc32c(vhost.as_bytes()), &[0]);
    let h = crc32c::crc32c_append(h, name.as_bytes());
    (h % shards) as u16
}

/// The port shard `shard` listens on by itself, if the server has
/// per-shard ports (`base` from `HelloOk::shard_port_base`).
pub fn shard_port(base: u16, shard: u16) -> Option<u16> {
    (base != 0).then(|| base.checked_add(shard)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        assert_eq!(shard_of("/", "hello", 2), shard_of("/", "hello", 2));
        assert_eq!(shard_of("/", "x", 1), 0);
        assert_eq!(shard_of("/", "x", 0), 0);
        let on_one = (0..1000)
            .filter(|i| shard_of("/", &format!("q{i}"), 2) == 1)
            .count();
        assert!((400..600).contains(&on_one), "{on_one}");
        // vhost and name are separated: ("a", "bc") differs from ("ab", "c").
        let spread: std::collections::HashSet<u16> = (0..64)
            .map(|i| shard_of(&format!("v{i}"), "q", 64))
            .collect();
        assert!(spread.len() > 20);
    }

    #[test]
    fn ports() {
        assert_eq!(shard_port(0, 1), None);
        assert_eq!(shard_port(5690, 0), Some(5690));
        assert_eq!(shard_port(5690, 1), Some(5691));
        assert_eq!(shard_port(u16::MAX, 1), None);
    }
}
