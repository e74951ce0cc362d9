#!/usr/bin/env bash
# Browser test of the management dashboard (mgmt/ui) in headless Chromium.
#
#   UI_URL=http://127.0.0.1:15672 AMQP_PORT=5672 mgmt/tests/browser/run.sh     # a server serving UI + /api
#   API_URL=http://127.0.0.1:15672 AMQP_PORT=5673 mgmt/tests/browser/run.sh    # UI via proxy.py, API elsewhere
#
# UI_URL: base URL of a server serving /, /app.js, /app.css and /api/... (e.g. ringmq's management port).
# Without UI_URL, API_URL names a management API (e.g. a real RabbitMQ 3.10) and proxy.py serves the
# UI files in front of it on a free port for the length of the run.
# AMQP_PORT (default 5672): the broker's AMQP port for pika. UI_USER/UI_PASS default to guest/guest.
# SCREENSHOT_DIR (default /tmp/ringmq-ui-screenshots) receives a PNG of each page.
# Extra arguments go to pytest. Needs Debian's chromium (installed here when missing, as root) and
# the packages of requirements.txt in the project's .venv (installed when missing).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export AMQP_PORT="${AMQP_PORT:-5672}"
export PYTHONDONTWRITEBYTECODE=1
export SCREENSHOT_DIR="${SCREENSHOT_DIR:-/tmp/ringmq-ui-screenshots}"

if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "run.sh: $CHROMIUM not found; install Debian's chromium (apt-get install chromium)" >&2; exit 2
  fi
fi
"$PY" -c 'import playwright, pika, pytest' 2>/dev/null || "$PY" -m pip install -q -r "$HERE/requirements.txt"

proxy_pid=""
cleanup() { [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [ -z "${UI_URL:-}" ]; then
  if [ -z "${API_URL:-}" ]; then
    echo "run.sh: set UI_URL (server with UI + /api) or API_URL (API only; proxy.py serves the UI)" >&2; exit 2
  fi
  portfile="$(mktemp)"
  "$PY" -u "$HERE/proxy.py" --api "$API_URL" --port 0 >"$portfile" 2>&1 &
  proxy_pid=$!
  for _ in $(seq 1 100); do grep -q '^PORT ' "$portfile" && break; sleep 0.1; done
  port="$(awk '/^PORT /{print $2}' "$portfile")"
  rm -f "$portfile"
  [ -n "$port" ] || { echo "run.sh: proxy.py did not start" >&2; exit 1; }
  UI_URL="http://127.0.0.1:$port"
  echo "run.sh: dashboard via proxy.py at $UI_URL -> $API_URL"
fi
export UI_URL
mkdir -p "$SCREENSHOT_DIR"
set +e
"$PY" -m pytest -v -p no:cacheprovider "$HERE/test_dashboard.py" "$@"
rc=$?
set -e
echo "run.sh: screenshots in $SCREENSHOT_DIR"
exit $rc
