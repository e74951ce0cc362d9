#!/usr/bin/env python3
"""Memory per idle AMQP connection, side by side: for each target, opens N
connections (each with one open channel, as an idle application holds them),
waits, and reports how much the RSS of the target's server processes grew per
connection, then closes them and reports what stayed.

    idle_connections.py --n 1000 --target ringmq=127.0.0.1:5672:BROKER_PID,GATEWAY_PID \
                                 --target rabbitmq=127.0.0.1:5673:BEAM_PID

Needs pika, and file descriptors for N sockets here and in the servers
(`ulimit -n 65536` before starting them). Connections are made with
heartbeats off, so an idle connection costs only what the server holds for it.
"""
import argparse
import resource
import sys
import time

import pika


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def total_rss(pids):
    return sum(rss_kib(p) for p in pids)


def connect(host, port):
    params = pika.ConnectionParameters(
        host=host, port=port, credentials=pika.PlainCredentials("guest", "guest"),
        heartbeat=0, connection_attempts=3, retry_delay=0.2, socket_timeout=10, blocked_connection_timeout=30,
    )
    conn = pika.BlockingConnection(params)
    conn.channel()
    return conn


def measure(name, host, port, pids, n, settle):
    # Warm up: pools and first-use allocations are not per connection.
    for c in [connect(host, port) for _ in range(10)]:
        c.close()
    time.sleep(settle)
    before = total_rss(pids)
    before_each = {p: rss_kib(p) for p in pids}
    t0 = time.monotonic()
    conns = [connect(host, port) for _ in range(n)]
    opened = time.monotonic() - t0
    time.sleep(settle)
    held = total_rss(pids)
    per_proc = {p: rss_kib(p) for p in pids}
    for c in conns:
        c.close()
    time.sleep(settle)
    after = total_rss(pids)
    per_conn = (held - before) / n
    print(
        f"{name}: {n} idle connections opened in {opened:.1f} s; RSS {before / 1024:.1f} -> "
        f"{held / 1024:.1f} MiB ({per_conn:.1f} KiB per connection; by process "
        f"{', '.join(f'{p}: {before_each[p] / 1024:.1f} -> {v / 1024:.1f} MiB' for p, v in per_proc.items())}); "
        f"{after / 1024:.1f} MiB after closing them",
        flush=True,
    )
    return per_conn


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait before each reading")
    ap.add_argument("--target", action="append", required=True, help="NAME=HOST:PORT:PID[,PID...]")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.n + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < args.n + 64:
        sys.exit(f"only {want} file descriptors: raise the hard limit")
    for t in args.target:
        name, rest = t.split("=", 1)
        host, port, pids = rest.split(":")
        measure(name, host, int(port), [int(p) for p in pids.split(",")], args.n, args.settle)


if __name__ == "__main__":
    main()
