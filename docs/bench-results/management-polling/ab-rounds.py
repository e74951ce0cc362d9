#!/usr/bin/env python3
"""A/B rounds on ONE broker: management poller ON (SIGCONT) / OFF (SIGSTOP), ABBA order."""
import fcntl, resource, json, os, signal, socket, subprocess, sys, tempfile, time, urllib.request, base64, csv

R = "/tmp/abmgmt/bin"   # copies of target/release/{ringmq,ringmq-bench}, so a rebuild mid-run cannot swap them
POLLER = "/tmp/abmgmt/bin/management-poller.sh"
PAIRS = int(sys.argv[1]) if len(sys.argv) > 1 else 24     # ABBA blocks; 2 ON + 2 OFF each
DURATION = sys.argv[2] if len(sys.argv) > 2 else "8"
OUT = sys.argv[3] if len(sys.argv) > 3 else "/tmp/abmgmt/run"
CORES = sys.argv[4] if len(sys.argv) > 4 else "0"
TICK = os.sysconf("SC_CLK_TCK")
os.makedirs(OUT, exist_ok=True)


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def stat_ticks(path):
    """utime+stime (and cutime+cstime) from a /proc stat file."""
    with open(path) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    # fields[0] is state (field 3); utime is field 14 -> index 11
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def threads(pid):
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            out[int(tid)] = f.read().strip()
    return out


def cpu_snapshot(bpid, ppid):
    snap = {"broker": stat_ticks(f"/proc/{bpid}/stat")[0], "wall": time.monotonic()}
    for tid, name in threads(bpid).items():
        t = stat_ticks(f"/proc/{bpid}/task/{tid}/stat")[0]
        snap[name] = snap.get(name, 0) + t
    snap["sys_busy"], snap["steal"] = sys_ticks()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)   # reaped ringmq-bench runs
    snap["harness"] = round((ru.ru_utime + ru.ru_stime) * TICK)
    snap["nonshard"] = snap["broker"] - sum(
        snap.get(n, 0) for n in set(threads(bpid).values())
        if n.startswith("ringmq-shard") or n.startswith("iou-wrk"))
    own, children = stat_ticks(f"/proc/{ppid}/stat")
    snap["poller"] = own + children   # bash + reaped curl/sleep children
    return snap


def sys_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return v[0] + v[1] + v[2] + v[5] + v[6], v[7]


def put_queue(mport, name):
    req = urllib.request.Request(
        f"http://127.0.0.1:{mport}/api/queues/%2F/{name}", data=b'{"durable":true}', method="PUT",
        headers={"content-type": "application/json",
                 "authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(req) as r:
        assert r.status in (201, 204), r.status


def main():
    data = tempfile.mkdtemp(prefix="ringmq-ab-", dir="/tmp/abmgmt")
    nport, mport, pport = free_port(), free_port(), free_port()
    bcmd = [f"{R}/ringmq", "--data-dir", data, "--listen", f"127.0.0.1:{nport}", "--cores", CORES,
            "--management-listen", f"127.0.0.1:{mport}", "--prometheus-listen", f"127.0.0.1:{pport}"]
    print("broker:", " ".join(bcmd), flush=True)
    blog = open(f"{OUT}/broker.log", "w")
    broker = subprocess.Popen(bcmd, stdout=blog, stderr=subprocess.STDOUT, start_new_session=True)
    poller = None
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", mport), timeout=0.2).close(); break
            except OSError:
                time.sleep(0.1)
        for i in range(1, 1001):
            put_queue(mport, f"q{i}")
        print("threads:", threads(broker.pid), flush=True)
        pcmd = [POLLER, f"127.0.0.1:{mport}", f"127.0.0.1:{pport}"]
        print("poller:", " ".join(pcmd), flush=True)
        poller = subprocess.Popen(pcmd, start_new_session=True)   # own process group
        os.killpg(poller.pid, signal.SIGSTOP)

        def bench(label):
            cmd = [f"{R}/ringmq-bench", "run",
                   "--target", f"native://127.0.0.1:{nport}#label={label}", "--broker-pid", str(broker.pid),
                   "--name", "transient-1k", "--publishers", "1", "--consumers", "1", "--queues", "1",
                   "--size", "1024", "--duration", DURATION, "--max-backlog", "10000",
                   "--out", OUT, "-q"]
            if label == "warm1":
                print("bench:", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            with open(f"{OUT}/transient-1k-{label}.json") as f:
                return json.load(f)

        for w in ("warm1", "warm2"):       # discarded
            time.sleep(1); bench(w)

        pattern = [True, False, False, True]   # ABBA: ON OFF OFF ON
        rows = []
        first = cpu_snapshot(broker.pid, poller.pid)
        lockf = open("/tmp/cargo.lock", "a")
        for k in range(4 * PAIRS):
            on = pattern[k % 4]
            if k % 4 == 0:   # hold the cargo lock for one ABBA block: no cargo build runs meanwhile
                t0 = time.monotonic()
                fcntl.flock(lockf, fcntl.LOCK_EX)
                waited = time.monotonic() - t0
            else:
                waited = 0.0
            os.killpg(poller.pid, signal.SIGCONT if on else signal.SIGSTOP)
            time.sleep(1.0)
            a = cpu_snapshot(broker.pid, poller.pid)
            label = f"r{k + 1:03d}-{'on' if on else 'off'}"
            s = bench(label)
            b = cpu_snapshot(broker.pid, poller.pid)
            row = {"round": k + 1, "poller": "on" if on else "off",
                   "consume_rate": s["consume_rate"], "publish_rate": s["publish_rate"],
                   "consumed": s["consumed"], "consume_secs": s["consume_secs"],
                   "broker_us_per_msg": s["cpu"]["broker_us_per_msg"],
                   "wall": b["wall"] - a["wall"],
                   "broker_ticks": b["broker"] - a["broker"],
                   "mgmt_ticks": b.get("ringmq-mgmt", 0) - a.get("ringmq-mgmt", 0),
                   "metrics_ticks": b.get("ringmq-metrics", 0) - a.get("ringmq-metrics", 0),
                   "nonshard_ticks": b["nonshard"] - a["nonshard"],
                   "poller_ticks": b["poller"] - a["poller"]}
            row["steal_ticks"] = b["steal"] - a["steal"]
            row["harness_ticks"] = b["harness"] - a["harness"]
            row["foreign_ticks"] = (b["sys_busy"] - a["sys_busy"]) - row["broker_ticks"] - row["harness_ticks"] - row["poller_ticks"]
            row["lock_wait_s"] = round(waited, 1)
            rows.append(row)
            if k % 4 == 3:
                fcntl.flock(lockf, fcntl.LOCK_UN)
                time.sleep(2.0)   # let a waiting cargo take the lock
            print(f"{row['round']:3d} {row['poller']:3s} {row['consume_rate']:10.0f} msg/s "
                  f"mgmt {row['mgmt_ticks']} metrics {row['metrics_ticks']} nonshard {row['nonshard_ticks']} broker {row['broker_ticks']} harness {row['harness_ticks']} poller {row['poller_ticks']} foreign {row['foreign_ticks']} steal {row['steal_ticks']} wait {row['lock_wait_s']}",
                  flush=True)
        last = cpu_snapshot(broker.pid, poller.pid)
        with open(f"{OUT}/rounds.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys())); w.writeheader(); w.writerows(rows)
        tot = {k: last[k] - first[k] for k in last if k in first}
        tot["tick"] = TICK
        with open(f"{OUT}/cpu_total.json", "w") as f:
            json.dump(tot, f, indent=1)
        print("cpu totals:", tot, flush=True)
    finally:
        if poller is not None:
            os.killpg(poller.pid, signal.SIGCONT)
            os.killpg(poller.pid, signal.SIGTERM)
            poller.wait()
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            broker.kill(); broker.wait()
        subprocess.run(["rm", "-rf", data])


if __name__ == "__main__":
    main()
