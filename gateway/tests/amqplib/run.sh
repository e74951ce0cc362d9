#!/usr/bin/env bash
# Runs the amqplib suite (node's built-in test runner) against AMQP_URL, or
# amqp://guest:guest@127.0.0.1:$AMQP_PORT. Installs Node.js and npm from
# Debian if they are missing, and amqplib (package-lock.json) on first use.
#   gateway/tests/with_ringmq.sh target/debug gateway/tests/amqplib/run.sh   # a fresh ringmq
#   AMQP_URL=amqp://guest:guest@127.0.0.1:5673 gateway/tests/amqplib/run.sh  # e.g. RabbitMQ
# Extra arguments go to `node --test` (e.g. --test-name-pattern=close).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
cd "$here"
if ! cmp -s package-lock.json node_modules/.installed-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.installed-lock
fi
# Node 18 (Debian's) has no --test-timeout; every wait in the suite has its own deadline.
timeout=()
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ] && timeout=(--test-timeout=60000)
exec node --test "${timeout[@]}" "$@"
