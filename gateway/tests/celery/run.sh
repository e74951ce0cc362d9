#!/usr/bin/env bash
# Runs the Celery suite (pytest, real `celery worker` processes) against
# AMQP_URL, or amqp://guest:guest@127.0.0.1:$AMQP_PORT. Installs Celery into
# the repository's .venv (with the pika suite's packages) on first use.
#   gateway/tests/with_ringmq.sh target/debug gateway/tests/celery/run.sh   # a fresh ringmq
#   AMQP_URL=amqp://guest:guest@127.0.0.1:5673 gateway/tests/celery/run.sh  # e.g. RabbitMQ
# Extra arguments go to pytest.
set -euo pipefail
exec "$(dirname "$0")/../pytest_in_venv.sh" "$(dirname "$0")" "$@"
