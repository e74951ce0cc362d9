#!/usr/bin/env bash
# Runs the aio-pika/aiormq and py-amqp suites (pytest) against AMQP_URL, or
# amqp://guest:guest@127.0.0.1:$AMQP_PORT. Installs the clients into the
# repository's .venv on first use.
#   gateway/tests/with_ringmq.sh target/debug gateway/tests/pyclients/run.sh   # a fresh ringmq
#   AMQP_PORT=5673 gateway/tests/pyclients/run.sh                              # e.g. RabbitMQ
# Extra arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
venv="$root/.venv"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
stamp="$venv/.pyclients-requirements"
if ! cat "$here/requirements.txt" "$here/../pika/requirements.txt" | cmp -s - "$stamp"; then
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
  cat "$here/requirements.txt" "$here/../pika/requirements.txt" > "$stamp"
fi
cd "$here"
exec "$venv/bin/pytest" -q -p no:cacheprovider "$here" "$@"
