#!/usr/bin/env bash
# Runs the pika suite against a fresh ringmq broker + gateway on free ports,
# with data in a temp dir and a restart command (kill -9 + restart of the
# broker on the same port and data) for the durability tests; the servers
# are started and stopped by ../with_ringmq.sh.
#   gateway/tests/pika/run_against_ringmq.sh [target/debug|target/release] [pytest args…]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
bin=${1:-$root/target/debug}
shift || true
here="$root/gateway/tests/pika"
venv="$root/.venv"
if [ ! -x "$venv/bin/pytest" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import pika, pytest, pytest_timeout, cryptography" 2>/dev/null; then
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi
RINGMQ_BACKLOG_MIB=${RINGMQ_BACKLOG_MIB:-256} exec "$root/gateway/tests/with_ringmq.sh" "$bin" \
  "$venv/bin/pytest" -q -p no:cacheprovider "$here" "$@"
