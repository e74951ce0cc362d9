#!/usr/bin/env bash
# Runs a command against a fresh ringmq broker + AMQP gateway started from
# BIN on free ports, with data in a temp dir; stops both afterwards and, if
# the command failed, prints the tail of their logs. The command gets:
#   AMQP_PORT, AMQP_URL       the gateway (guest/guest, vhost /)
#   MGMT_PORT, UI_URL         the broker's management API and dashboard
#   RINGMQ_BIN, RINGMQ_BROKER the binaries' directory and the broker's native address
#                             (for tests that start a gateway of their own)
#   BROKER_RESTART_CMD        kill -9 + restart of the broker on the same port and data
#   AMQPS_PORT, TLS_DIR       the gateway's AMQP-over-TLS listener (client certificates
#                             verified, not required) and its PEM files: ca.pem/ca.key
#                             (a CA made here), server.pem/server.key (localhost, 127.0.0.1);
#                             EXTERNAL is offered there, through the gateway's user
#                             `ringmq-gateway` (tagged impersonator)
#
#   gateway/tests/with_ringmq.sh [target/debug|target/release] COMMAND [ARGS…]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "${1:-$root/target/debug}" && pwd)
shift
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
native=$(free_port)
amqp=$(free_port)
mgmt=$(free_port)
amqps=$(free_port)
tls="$work/tls"
mkdir -p "$tls"
# A CA and a server certificate, made for this run.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ringmq test CA" \
  -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$tls/san.ext"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
  -days 2 -extfile "$tls/san.ext" -out "$tls/server.pem" 2>/dev/null
cat > "$work/start-broker.sh" <<EOS
#!/usr/bin/env bash
RINGMQ_LOG=\${RINGMQ_LOG:-warn} "$bin/ringmq" --listen 127.0.0.1:$native --data-dir "$work/data" --management-listen 127.0.0.1:$mgmt --prometheus-listen off >>"$work/broker.log" 2>&1 &
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
gw_pid=
cleanup() {
  kill "$(cat "$work/broker.pid" 2>/dev/null)" 2>/dev/null || true
  [ -z "$gw_pid" ] || kill "$gw_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$work/start-broker.sh"
# The gateway's own user, tagged impersonator, so that it may log AMQPS
# clients in with EXTERNAL as the user their certificate names.
head -c 18 /dev/urandom | base64 > "$work/gateway.password"
python3 - "$mgmt" "$work/gateway.password" <<'EOP'
import base64, json, sys, time, urllib.request
port, pw = sys.argv[1], open(sys.argv[2]).read().strip()
body = json.dumps({"password": pw, "tags": "impersonator"}).encode()
auth = "Basic " + base64.b64encode(b"guest:guest").decode()
for attempt in range(100):
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/users/ringmq-gateway", body, method="PUT",
                                     headers={"Authorization": auth, "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("could not create the gateway's user")
EOP
RINGMQ_LOG=${RINGMQ_LOG:-warn} "$bin/ringmq-gateway" --listen 127.0.0.1:$amqp --broker 127.0.0.1:$native \
  --amqps-listen 127.0.0.1:$amqps --tls-cert "$tls/server.pem" --tls-key "$tls/server.key" \
  --tls-ca "$tls/ca.pem" --tls-verify-peer \
  --external-auth-user ringmq-gateway --external-auth-password-file "$work/gateway.password" \
  >"$work/gateway.log" 2>&1 &
gw_pid=$!
for i in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$amqp) 2>/dev/null && break; sleep 0.1; done
status=0
AMQP_PORT=$amqp AMQP_URL="amqp://guest:guest@127.0.0.1:$amqp" \
  MGMT_PORT=$mgmt UI_URL="http://127.0.0.1:$mgmt" \
  RINGMQ_BIN="$bin" RINGMQ_BROKER="127.0.0.1:$native" \
  BROKER_RESTART_CMD="$work/restart-broker.sh" AMQPS_PORT=$amqps TLS_DIR="$tls" "$@" || status=$?
if [ $status -ne 0 ]; then
  echo "--- broker log (tail)"; tail -n 50 "$work/broker.log" || true
  echo "--- gateway log (tail)"; tail -n 50 "$work/gateway.log" || true
fi
exit $status
