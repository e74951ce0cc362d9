#!/usr/bin/env bash
# The TLS measurement of docs/benchmarks.md ("TLS"), as it was run on 2026-11-26:
# broker + gateway with TLS listeners, four socat proxies, then `ringmq-bench compare`
# over three targets (plain, plain TCP through socat, TLS through socat) for the native
# protocol and for AMQP through the gateway. socat's own CPU is read from /proc before
# and after each compare (its forked per-connection children are counted in its
# cutime/cstime once reaped). Run from the repository root after
#   cargo build --release -p ringmq-core -p ringmq-gateway -p ringmq-bench
# Writes DIR/{native,amqp}/{transient-16B,transient-1KiB}/ (default DIR: /tmp/tls-results).
set -euo pipefail
R=$PWD/target/release
O=${1:-/tmp/tls-results}
ROUNDS=${ROUNDS:-4}
W=$(mktemp -d /tmp/tlsbench.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT

# CA and server certificate (CN localhost, SAN DNS:localhost, IP:127.0.0.1).
mkdir -p "$W/tls" "$W/data"
cd "$W/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=ringmq bench CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile san.ext -out server.pem 2>/dev/null
cd - >/dev/null
cat > "$W/broker.toml" <<EOF
[tls]
listen = "127.0.0.1:35681"
cert = "$W/tls/server.pem"
key = "$W/tls/server.key"
EOF

# Broker: native on 35680, native over TLS on 35681. Gateway: AMQP 35672, AMQPS 35671.
"$R/ringmq" --config "$W/broker.toml" --listen 127.0.0.1:35680 --data-dir "$W/data" \
  --management-listen off --prometheus-listen off > "$W/broker.log" 2>&1 &
B=$!; pids+=($B); sleep 1
"$R/ringmq-gateway" --listen 127.0.0.1:35672 --broker 127.0.0.1:35680 \
  --amqps-listen 127.0.0.1:35671 --tls-cert "$W/tls/server.pem" --tls-key "$W/tls/server.key" \
  > "$W/gateway.log" 2>&1 &
G=$!; pids+=($G)

# Client-side proxies: TLS (the harness has no TLS client) and plain TCP (the same
# extra hop without TLS). socat sends the IP as SNI; rustls logs a warning and ignores it.
proxy() { socat TCP-LISTEN:$1,bind=127.0.0.1,fork,reuseaddr,nodelay "$2" 2>/dev/null & pids+=($!); }
proxy 35691 OPENSSL:127.0.0.1:35681,cafile=$W/tls/ca.pem,nodelay; SN_TLS=$!
proxy 35692 TCP:127.0.0.1:35680,nodelay;                           SN_TCP=$!
proxy 35693 OPENSSL:127.0.0.1:35671,cafile=$W/tls/ca.pem,nodelay; SA_TLS=$!
proxy 35694 TCP:127.0.0.1:35672,nodelay;                           SA_TCP=$!
sleep 1

ticks() { for p in "$@"; do awk -v p="$p" '{ s=$0; sub(/^.*\) /, "", s); split(s, f, " ");
  print p, f[12]+f[13]+f[14]+f[15] }' "/proc/$p/stat"; done; }

for proto in native amqp; do
  if [ $proto = native ]; then
    S1=$SN_TCP; S2=$SN_TLS
    T=(--target "native://127.0.0.1:35680#label=plain,broker=$B"
       --target "native://127.0.0.1:35692#label=plain-socat,broker=$B"
       --target "native://127.0.0.1:35691#label=tls-socat,broker=$B")
  else
    S1=$SA_TCP; S2=$SA_TLS
    T=(--target "amqp://guest:guest@127.0.0.1:35672/%2f#label=plain,broker=$B,gateway=$G"
       --target "amqp://guest:guest@127.0.0.1:35694/%2f#label=plain-socat,broker=$B,gateway=$G"
       --target "amqp://guest:guest@127.0.0.1:35693/%2f#label=tls-socat,broker=$B,gateway=$G")
  fi
  for sc in "transient-16B 16 1000000" "transient-1KiB 1024 200000"; do
    set -- $sc
    d=$O/$proto/$1; mkdir -p "$d"
    { date -u +%FT%TZ
      echo "socat CPU before, ticks of 1/100 s (utime+stime+cutime+cstime): plain-socat tls-socat"
      ticks $S1 $S2; } > "$d/socat-cpu.txt"
    "$R/ringmq-bench" compare -q --rounds "$ROUNDS" --name "$1" --size "$2" --duration 10 \
      --max-backlog "$3" --out "$d" "${T[@]}" > "$d/compare.txt" 2>&1
    sleep 1
    { echo after; ticks $S1 $S2; date -u +%FT%TZ; } >> "$d/socat-cpu.txt"
  done
done
