#!/usr/bin/env bash
# Runs RabbitMQ's rabbitmqadmin against the management API on MGMT_PORT
# (default 15672) with pytest from the repository's .venv (README.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
venv="$root/.venv"
[ -x "$venv/bin/pytest" ] || { python3 -m venv "$venv"; "$venv/bin/pip" install -q -r "$root/gateway/tests/pika/requirements.txt"; }
cd "$here"
exec "$venv/bin/pytest" -q -p no:cacheprovider "$here" "$@"
