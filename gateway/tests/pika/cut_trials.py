"""Connection cuts, measured (issue 12). Not a test (pytest does not collect it):
a tool to repeat random cuts and see how long a client takes to get an error.

  cut_trials.py trial --port P [--leg client|broker] --mode M --n N --delay D [--confirms]
      One trial: a proxy in front of port P (the AMQP port for --leg client; the
      broker's native port for --leg broker, with a private gateway, --gateway,
      started on the proxy), and a pika client (heartbeat=1) publishing (with
      confirms or not) and consuming in a loop through it. The proxy cuts after N
      bytes and D more seconds. Prints one JSON line: the error and t_err
      (seconds from the cut). With `run`, a trial still going after 45 s + D
      is a HANG.
  cut_trials.py run --port P [--leg ..] --trials K --jobs J [--modes a,b] [--seed S]
      K trials of each mode (random N, D and confirms from the seed) in J parallel
      subprocesses; a table per mode at the end.

Against the gateway, e.g. started by run_against_ringmq.sh or by hand:
  .venv/bin/python gateway/tests/pika/cut_trials.py run --port 5672 --trials 4
  .venv/bin/python gateway/tests/pika/cut_trials.py run --leg broker --port 5680 --trials 4
Against RabbitMQ:  ... run --port 5673 --trials 4
"""
import argparse
import asyncio
import concurrent.futures
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

MODES = ["close", "rst", "half_c2s", "half_s2c", "blackhole", "blackhole_c2s",
         "blackhole_s2c", "stall", "stall_c2s", "stall_s2c"]
HANG_AFTER = 30.0


class Cutter:
    """A TCP proxy that forwards until `n` bytes went through (both directions),
    waits `delay` seconds, then cuts the connection in the given `mode`:
      close          FIN to both sides
      rst            RST to both sides (SO_LINGER 0)
      half_c2s       shutdown(WR) towards the server (it reads EOF); the rest flows
      half_s2c       shutdown(WR) towards the client (it reads EOF); the rest flows
      blackhole      both directions read and discarded, nothing closed
      blackhole_c2s  client->server discarded; server->client still flows
      blackhole_s2c  server->client discarded; client->server still flows
      stall          nothing read any more in either direction, nothing closed
      stall_c2s      the client is not read any more; server->client still flows
      stall_s2c      the server is not read any more; client->server still flows
    Only the first connection is cut; later ones are forwarded as-is.
    """

    def __init__(self, upstream_port, mode, n, delay):
        self.up = upstream_port
        self.mode, self.n, self.delay = mode, n, delay
        self.count = 0
        self.cut_at = None
        self.first = True
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.keep = []
        t = threading.Thread(target=self._run, daemon=True)
        t.start()
        self.ready.wait()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _accept(self, cr, cw):
        try:
            sr, sw = await asyncio.open_connection("127.0.0.1", self.up)
        except OSError:
            cw.close()
            return
        self.keep.append((cr, cw, sr, sw))
        cut = self.first
        self.first = False
        state = {"c2s": True, "s2c": True, "discard_c2s": False, "discard_s2c": False,
                 "stall": False, "stall_c2s": False, "stall_s2c": False,
                 "trigger": asyncio.Event()}

        async def pump(r, w, key):
            try:
                while True:
                    if state["stall"] or state["stall_" + key]:
                        await asyncio.sleep(3600)
                    data = await r.read(65536)
                    if state["stall"] or state["stall_" + key]:
                        await asyncio.sleep(3600)
                    if not data:
                        if state[key] and not state["discard_" + key]:
                            try:
                                w.write_eof()
                            except OSError:
                                pass
                        return
                    if state["discard_" + key] or not state[key]:
                        continue
                    w.write(data)
                    await w.drain()
                    if cut:
                        self.count += len(data)
                        if self.count >= self.n:
                            state["trigger"].set()
            except (OSError, asyncio.CancelledError):
                return

        tasks = [asyncio.ensure_future(pump(cr, sw, "c2s")),
                 asyncio.ensure_future(pump(sr, cw, "s2c"))]
        if not cut:
            return
        await state["trigger"].wait()
        await asyncio.sleep(self.delay)
        self.cut_at = time.monotonic()
        m = self.mode
        if m == "close":
            for t in tasks:
                t.cancel()
            cw.close()
            sw.close()
        elif m == "rst":
            for t in tasks:
                t.cancel()
            for w in (cw, sw):
                s = w.get_extra_info("socket")
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                w.transport.abort()
        elif m == "half_c2s":
            state["c2s"] = False
            try:
                sw.write_eof()
            except OSError:
                pass
        elif m == "half_s2c":
            state["s2c"] = False
            try:
                cw.write_eof()
            except OSError:
                pass
        elif m == "blackhole":
            state["discard_c2s"] = state["discard_s2c"] = True
        elif m == "blackhole_c2s":
            state["discard_c2s"] = True
        elif m == "blackhole_s2c":
            state["discard_s2c"] = True
        elif m in ("stall", "stall_c2s", "stall_s2c"):
            state[m] = True
        else:
            raise ValueError(m)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def trial(a):
    import pika
    gw = None
    proxy = Cutter(a.port, a.mode, a.n, a.delay)
    amqp_port = proxy.port
    if a.leg == "broker":
        amqp_port = free_port()
        gw = subprocess.Popen(
            [a.gateway, "--listen", f"127.0.0.1:{amqp_port}", "--broker",
             f"127.0.0.1:{proxy.port}", "--cores", "1"] + a.gateway_arg,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, RINGMQ_LOG=os.environ.get("RINGMQ_LOG", "info")))
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", amqp_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
    t0 = time.monotonic()
    out = {"mode": a.mode, "n": a.n, "delay": a.delay, "confirms": a.confirms, "leg": a.leg}
    published = [0]
    consumed = [0]
    try:
        params = pika.ConnectionParameters(
            host="127.0.0.1", port=amqp_port, heartbeat=1,
            credentials=pika.PlainCredentials("guest", "guest"),
            connection_attempts=1, socket_timeout=5, stack_timeout=20,
            blocked_connection_timeout=None)
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        if a.confirms:
            ch.confirm_delivery()
        ch.basic_qos(prefetch_count=50)

        def on_msg(c, m, p, b):
            consumed[0] += 1
            c.basic_ack(m.delivery_tag)

        ch.basic_consume(q, on_message_callback=on_msg)
        body = b"x" * 200
        while True:
            for _ in range(5):
                ch.basic_publish("", q, body)
                published[0] += 1
            conn.process_data_events(time_limit=0.002)
    except BaseException as e:  # noqa: BLE001
        now = time.monotonic()
        out["error"] = type(e).__name__
        out["msg"] = str(e)[:120]
        out["t_err"] = round(now - (proxy.cut_at or now), 3) if proxy.cut_at else None
        out["before_cut"] = proxy.cut_at is None
        out["at"] = time.strftime("%H:%M:%S", time.gmtime()) + f"{time.time() % 1:.3f}"[1:]
    out["published"], out["consumed"] = published[0], consumed[0]
    if gw:
        gw.kill()
        gw.wait()
    print(json.dumps(out), flush=True)


def run(a):
    rng = random.Random(a.seed)
    modes = a.modes.split(",") if a.modes else MODES
    jobs = []
    for i in range(a.trials):
        for m in modes:
            n = rng.choice([rng.randint(50, 900), rng.randint(900, 20000), rng.randint(20000, 200000)])
            d = round(rng.choice([0, rng.uniform(0, 0.3), rng.uniform(0.3, 2.5)]), 3)
            c = rng.random() < 0.5
            jobs.append((m, n, d, c))

    def one(job):
        m, n, d, c = job
        cmd = [sys.executable, __file__, "trial", "--port", str(a.port), "--leg", a.leg,
               "--mode", m, "--n", str(n), "--delay", str(d), "--gateway", a.gateway]
        cmd += [f"--gateway-arg={x}" for x in a.gateway_arg]
        if c:
            cmd.append("--confirms")
        t = time.monotonic()
        # A session of its own, so that a hung trial is killed with its gateway.
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        try:
            out, err = p.communicate(timeout=HANG_AFTER + d + 15)
            line = out.decode().strip().splitlines()
            r = json.loads(line[-1]) if line else {"mode": m, "error": "noresult",
                                                   "msg": err.decode()[-300:]}
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            r = {"mode": m, "n": n, "delay": d, "confirms": c, "error": "HANG",
                 "t_err": None}
        r["wall"] = round(time.monotonic() - t, 2)
        return r

    results = []
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
        for r in ex.map(one, jobs):
            results.append(r)
            print(json.dumps(r), flush=True)
    table(results)


def table(results):
    by = {}
    for r in results:
        by.setdefault(r["mode"], []).append(r)
    print(f"{'mode':15} {'trials':>6} {'hangs':>5} {'pre-cut':>7} {'t_err p50':>9} {'max':>6}  errors")
    for m, rs in by.items():
        hangs = sum(1 for r in rs if r.get("error") == "HANG")
        pre = sum(1 for r in rs if r.get("before_cut"))
        ts = sorted(r["t_err"] for r in rs if r.get("t_err") is not None)
        p50 = ts[len(ts) // 2] if ts else float("nan")
        mx = ts[-1] if ts else float("nan")
        kinds = {}
        for r in rs:
            kinds[r.get("error")] = kinds.get(r.get("error"), 0) + 1
        print(f"{m:15} {len(rs):6} {hangs:5} {pre:7} {p50:9.2f} {mx:6.2f}  {kinds}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--leg", default="client")
    ap.add_argument("--mode")
    ap.add_argument("--modes")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--confirms", action="store_true")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gateway", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "../../../target/debug/ringmq-gateway"))
    ap.add_argument("--gateway-arg", action="append", default=[],
                    help="passed to the private gateway (--leg broker), e.g. --gateway-arg=--broker-heartbeat=1")
    a = ap.parse_args()
    {"trial": trial, "run": run}[a.cmd](a)
