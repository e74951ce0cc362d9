#!/usr/bin/env bash
# Runs the pika suite against a fresh ringmq broker + gateway on free ports,
# with data in a temp dir and a restart command (kill -9 + restart of the
# broker on the same port and data) for the durability tests.
#   gateway/tests/pika/run_against_ringmq.sh [target/debug|target/release] [pytest args…]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
bin=${1:-$root/target/debug}
shift || true
here="$root/gateway/tests/pika"
venv="$root/.venv"
if [ ! -x "$venv/bin/pytest" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
native=$(free_port)
amqp=$(free_port)
cat > "$work/start-broker.sh" <<EOS
#!/usr/bin/env bash
RINGMQ_LOG=\${RINGMQ_LOG:-warn} "$bin/ringmq" --listen 127.0.0.1:$native --data-dir "$work/data" >>"$work/broker.log" 2>&1 &
echo \$! > "$work/broker.pid"
for i in \$(seq 100); do
  (echo > /dev/tcp/127.0.0.1/$native) 2>/dev/null && exit 0
  sleep 0.1
done
echo "broker did not start" >&2; exit 1
EOS
cat > "$work/restart-broker.sh" <<EOS
#!/usr/bin/env bash
kill -9 \$(cat "$work/broker.pid") 2>/dev/null || true
while kill -0 \$(cat "$work/broker.pid") 2>/dev/null; do sleep 0.05; done
exec "$work/start-broker.sh"
EOS
chmod +x "$work"/*.sh
cleanup() {
  kill "$(cat "$work/broker.pid" 2>/dev/null)" 2>/dev/null || true
  kill "$gw_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
"$work/start-broker.sh"
RINGMQ_LOG=${RINGMQ_LOG:-warn} "$bin/ringmq-gateway" --listen 127.0.0.1:$amqp --broker 127.0.0.1:$native >"$work/gateway.log" 2>&1 &
gw_pid=$!
trap cleanup EXIT
for i in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$amqp) 2>/dev/null && break; sleep 0.1; done
status=0
RINGMQ_BACKLOG_MIB=${RINGMQ_BACKLOG_MIB:-256} RINGMQ_BIN="$bin" AMQP_PORT=$amqp BROKER_RESTART_CMD="$work/restart-broker.sh" "$venv/bin/pytest" -q -p no:cacheprovider "$here" "$@" || status=$?
if [ $status -ne 0 ]; then
  echo "--- broker log (tail)"; tail -n 50 "$work/broker.log" || true
  echo "--- gateway log (tail)"; tail -n 50 "$work/gateway.log" || true
fi
exit $status
