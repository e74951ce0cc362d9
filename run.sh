#!/usr/bin/env bash
# Builds and starts ringmq with working defaults: native protocol on
# 127.0.0.1:5680, data under ./data, user guest/guest on loopback.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release -p ringmq-core
exec ./target/release/ringmq --data-dir ./data "$@"
