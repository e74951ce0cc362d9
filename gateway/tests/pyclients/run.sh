#!/usr/bin/env bash
# Runs the aio-pika/aiormq and py-amqp suites (pytest) against AMQP_URL, or
# amqp://guest:guest@127.0.0.1:$AMQP_PORT. Installs the clients into the
# repository's .venv on first use.
#   gateway/tests/with_ringmq.sh target/debug gateway/tests/pyclients/run.sh   # a fresh ringmq
#   AMQP_PORT=5673 gateway/tests/pyclients/run.sh                              # e.g. RabbitMQ
# Extra arguments go to pytest.
set -euo pipefail
exec "$(dirname "$0")/../pytest_in_venv.sh" "$(dirname "$0")" "$@"
