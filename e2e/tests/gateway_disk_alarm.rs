//! The broker's free disk space alarm reaches AMQP clients through the
//! gateway: `connection.blocked` "low on disk space" when free space falls
//! below `limits.disk_free_limit`, `connection.unblocked` when it is back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use ringmq_core::config::DiskFreeLimit;
use ringmq_core::shard::alarms::disk_free;
use ringmq_e2e::raw::*;
use ringmq_e2e::TestGateway;

const MIB: u64 = 1 << 20;

#[test]
fn amqp_publishers_are_blocked_and_unblocked_by_the_disk_alarm() {
    let scratch = tempfile::tempdir().unwrap();
    let free = disk_free(scratch.path()).unwrap();
    assert!(free > 1024 * MIB, "the test needs 1 GiB free, has {free}");
    let gw = TestGateway::configured(
        |c| c.limits.disk_free_limit = DiskFreeLimit::Bytes(free - 128 * MIB),
        |_| {},
    );
    if gw.is_external() {
        eprintln!("SKIPPED: the disk alarm test needs the in-process broker");
        return;
    }
    let mut c = Raw::open(gw.addr, 0);
    c.open_channel(1);
    publish(&mut c, 1, "nowhere", b"first");

    let ballast = scratch.path().join("ballast");
    let mut f = std::fs::File::create(&ballast).unwrap();
    let block = vec![1u8; MIB as usize];
    for _ in 0..256 {
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(
        next_block_change(&mut c).as_deref(),
        Some("low on disk space")
    );
    std::fs::remove_file(&ballast).unwrap();
    assert_eq!(next_block_change(&mut c), None);
    publish(&mut c, 1, "nowhere", b"after");
    assert_gateway_alive(gw.addr);
    drop(c);
    gw.stop();
}
