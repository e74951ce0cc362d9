#!/usr/bin/env bash
# Builds and starts ringmq with working defaults: the broker (native
# protocol on 127.0.0.1:5680, data under ./data) and the AMQP gateway
# (127.0.0.1:5672, for pika.ConnectionParameters('localhost')), user
# guest/guest from loopback. Two processes; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release -p ringmq-core -p ringmq-gateway
./target/release/ringmq --data-dir ./data "$@" &
broker=$!
trap 'kill $broker $gateway 2>/dev/null; wait' EXIT INT TERM
for i in $(seq 100); do (echo > /dev/tcp/127.0.0.1/5680) 2>/dev/null && break; sleep 0.1; done
./target/release/ringmq-gateway &
gateway=$!
wait
