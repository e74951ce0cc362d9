#!/usr/bin/env bash
# Runs amqplib's own test suite against AMQP_PORT on 127.0.0.1 (not part
# of test.sh: it is amqplib's suite, with its 1 s per-test timeout, and
# some of its tests need what neither server here offers, e.g. IPv6).
# amqplib's git repository is not reachable from here; 2.1.0 is the newest
# npm tarball that still ships test/, so its library and tests are run
# together. Its tests connect to amqp://localhost:5672; preload.js sends
# those to AMQP_PORT, and gives each test a timeout (TEST_TIMEOUT_MS).
#   gateway/tests/with_ringmq.sh target/debug gateway/tests/amqplib/upstream/run.sh
#   AMQP_PORT=5673 gateway/tests/amqplib/upstream/run.sh       # e.g. RabbitMQ
# Extra arguments go to `node --test`, e.g. --test-reporter=spec.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=${AMQPLIB_VERSION:-2.1.0}
: "${AMQP_PORT:?set AMQP_PORT (with_ringmq.sh does)}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "amqplib@$version" >/dev/null
tar xzf "amqplib-$version.tgz"
cd package
# Only the test dependency (claire); not the linters and type checkers.
node -e '
  const fs = require("fs"); const p = JSON.parse(fs.readFileSync("package.json"));
  p.devDependencies = { claire: p.devDependencies.claire }; delete p.scripts;
  fs.writeFileSync("package.json", JSON.stringify(p, null, 2));'
npm install --no-audit --no-fund --no-package-lock --ignore-scripts --loglevel=error >/dev/null
# Not amqplib's --test-timeout=1000: Node 20 applies it to each test file as
# a whole. preload.js times each test out instead; a file whose process
# stays alive after that (an open socket) is ended after FILE_TIMEOUT_MS.
node --require "$here/preload.js" --test --test-timeout="${FILE_TIMEOUT_MS:-60000}" "$@"
