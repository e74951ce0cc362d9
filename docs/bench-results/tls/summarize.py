#!/usr/bin/env python3
"""Pools the rounds of run1..run3 (same setup, run.sh) per scenario and target:
medians and ranges of msg/s and server CPU per delivery, per-round paired
TLS-vs-plain figures, and socat's CPU per delivery (from socat-cpu.txt).
Run from this directory: ./summarize.py > summary.txt"""
import glob, json, re, statistics as st

RUNS = ["run1", "run2", "run3"]
TARGETS = ["plain", "plain-socat", "tls-socat"]
cpu = lambda d: d["cpu"]["broker_us_per_msg"] + (d["cpu"]["gateway_us_per_msg"] or 0)
gw = lambda d: d["cpu"]["gateway_us_per_msg"] or 0
br = lambda d: d["cpu"]["broker_us_per_msg"]
rate = lambda d: d["consume_rate"]
fmt = lambda v, k=1: f"{st.median(v)*k:.2f} [{min(v)*k:.2f}-{max(v)*k:.2f}]"

for proto in ["native", "amqp"]:
    for sc in ["transient-16B", "transient-1KiB"]:
        print(f"== {proto} {sc}")
        rounds = []  # dicts target -> summary, one per (run, round)
        for rd in RUNS:
            for f in sorted(glob.glob(f"{rd}/{proto}/{sc}/{sc}-plain-r*.json")):
                k = f[-7:]
                rounds.append({t: json.load(open(f"{rd}/{proto}/{sc}/{sc}-{t}-{k}")) for t in TARGETS})
        print(f"  rounds: {len(rounds)}")
        for t in TARGETS:
            ds = [r[t] for r in rounds]
            print(f"  {t:12} msg/s (M) {fmt([rate(d) for d in ds], 1e-6)}  server us/msg {fmt([cpu(d) for d in ds])}"
                  f"  broker {fmt([br(d) for d in ds])}  gateway {fmt([gw(d) for d in ds])}")
        pair = lambda f: [f(r) for r in rounds]
        print("  paired per round: TLS/plain msg/s", fmt(pair(lambda r: rate(r["tls-socat"]) / rate(r["plain"]))))
        print("                    TLS/socat-TCP msg/s", fmt(pair(lambda r: rate(r["tls-socat"]) / rate(r["plain-socat"]))))
        print("                    server us TLS-plain", fmt(pair(lambda r: cpu(r["tls-socat"]) - cpu(r["plain"]))))
        print("                    server us TLS-socat-TCP", fmt(pair(lambda r: cpu(r["tls-socat"]) - cpu(r["plain-socat"]))))
        if proto == "amqp":
            print("                    gateway us TLS-socat-TCP", fmt(pair(lambda r: gw(r["tls-socat"]) - gw(r["plain-socat"]))))
        for i, t in enumerate(["plain-socat", "tls-socat"]):
            tot = n = 0
            for rd in RUNS:
                lines = open(f"{rd}/{proto}/{sc}/socat-cpu.txt").read().split("\n")
                nums = [l.split() for l in lines if re.match(r"^\d+ \d+$", l)]
                tot += int(nums[2 + i][1]) - int(nums[i][1])
                n += sum(json.load(open(f))["consumed"] for f in glob.glob(f"{rd}/{proto}/{sc}/{sc}-{t}-r*.json"))
            print(f"  socat {t}: {tot / 100:.1f} s CPU for {n} deliveries = {tot * 1e4 / n:.2f} us/msg")
