#!/usr/bin/env bash
# Runs the Celery suite (pytest, real `celery worker` processes) against
# AMQP_URL, or amqp://guest:guest@127.0.0.1:$AMQP_PORT. Installs Celery into
# the repository's .venv (with the pika suite's packages) on first use.
#   gateway/tests/with_ringmq.sh target/debug gateway/tests/celery/run.sh   # a fresh ringmq
#   AMQP_URL=amqp://guest:guest@127.0.0.1:5673 gateway/tests/celery/run.sh  # e.g. RabbitMQ
# Extra arguments go to pytest.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
venv="$root/.venv"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
stamp="$venv/.celery-requirements"
if ! cat "$here/requirements.txt" "$here/../pika/requirements.txt" | cmp -s - "$stamp"; then
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
  cat "$here/requirements.txt" "$here/../pika/requirements.txt" > "$stamp"
fi
cd "$here"
exec "$venv/bin/pytest" -q -p no:cacheprovider "$here" "$@"
