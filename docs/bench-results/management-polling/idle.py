#!/usr/bin/env python3
"""Idle broker (1000 durable queues, no load): broker CPU with the poller ON vs OFF, alternating 40 s windows."""
import os, signal, subprocess, sys, tempfile, time, json
sys.path.insert(0, "/tmp/abmgmt")
import importlib.util
spec = importlib.util.spec_from_file_location("ab3", "/tmp/abmgmt/ab3.py"); ab = importlib.util.module_from_spec(spec)
sys.argv = [sys.argv[0]] + sys.argv[1:]
spec.loader.exec_module(ab)
CORES = sys.argv[1] if len(sys.argv) > 1 else "0"
WIN = float(sys.argv[2]) if len(sys.argv) > 2 else 40
N = int(sys.argv[3]) if len(sys.argv) > 3 else 3
data = tempfile.mkdtemp(prefix="ringmq-idle-", dir="/tmp/abmgmt")
n, m, p = ab.free_port(), ab.free_port(), ab.free_port()
cmd = [f"{ab.R}/ringmq", "--data-dir", data, "--listen", f"127.0.0.1:{n}", "--cores", CORES,
       "--management-listen", f"127.0.0.1:{m}", "--prometheus-listen", f"127.0.0.1:{p}"]
print(" ".join(cmd), flush=True)
broker = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
poller = None
try:
    time.sleep(1.5)
    for i in range(1, 1001):
        ab.put_queue(m, f"q{i}")
    poller = subprocess.Popen([ab.POLLER, f"127.0.0.1:{m}", f"127.0.0.1:{p}"], start_new_session=True)
    os.killpg(poller.pid, signal.SIGSTOP)
    time.sleep(3)
    res = {"on": {}, "off": {}}
    for k in range(2 * N):
        arm = "on" if k % 4 in (0, 3) else "off"
        os.killpg(poller.pid, signal.SIGCONT if arm == "on" else signal.SIGSTOP)
        time.sleep(1)
        a = ab.cpu_snapshot(broker.pid, poller.pid); time.sleep(WIN); b = ab.cpu_snapshot(broker.pid, poller.pid)
        d = {key: b[key] - a[key] for key in b if key in a}
        print(arm, {key: (round(v, 2) if key == "wall" else v) for key, v in d.items() if key not in ("sys_busy", "harness", "steal")}, flush=True)
        for key, v in d.items():
            res[arm][key] = res[arm].get(key, 0) + v
    for arm in ("on", "off"):
        w = res[arm]["wall"]
        print(arm, "wall", round(w, 1), {key: f"{100 * v / 100 / w:.3f}% core" for key, v in res[arm].items()
                                          if key not in ("wall", "sys_busy", "harness", "steal")})
finally:
    if poller:
        os.killpg(poller.pid, signal.SIGCONT); os.killpg(poller.pid, signal.SIGTERM); poller.wait()
    broker.terminate(); broker.wait(timeout=20)
    subprocess.run(["rm", "-rf", data])
