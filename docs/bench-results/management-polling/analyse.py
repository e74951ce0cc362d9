#!/usr/bin/env python3
import csv, json, random, statistics as st, sys

d = sys.argv[1] if len(sys.argv) > 1 else "/tmp/abmgmt/run"
rows = list(csv.DictReader(open(f"{d}/rounds.csv")))
MAXF = int(sys.argv[2]) if len(sys.argv) > 2 else None
if MAXF is not None:   # keep whole ABBA blocks whose every round had foreign CPU <= MAXF ticks
    keep = []
    for i in range(0, len(rows), 4):
        blk = rows[i:i + 4]
        if all(int(r["foreign_ticks"]) <= MAXF for r in blk):
            keep += blk
    print("blocks kept", len(keep) // 4, "of", len(rows) // 4, file=sys.stderr)
    rows = keep
for r in rows:
    r["rate"] = float(r["consume_rate"])
on = [r["rate"] for r in rows if r["poller"] == "on"]
off = [r["rate"] for r in rows if r["poller"] == "off"]
m_on, m_off = st.median(on), st.median(off)
ratio = m_on / m_off

random.seed(12345)
B = 20000


def boot_ratio(stat):
    """Sorted bootstrap ratios stat(resampled on) / stat(resampled off)."""
    out = []
    for _ in range(B):
        a = [random.choice(on) for _ in on]
        b = [random.choice(off) for _ in off]
        out.append(stat(a) / stat(b))
    out.sort()
    return out


boot = boot_ratio(st.median)
lo, hi = boot[int(0.025 * B)], boot[int(0.975 * B) - 1]

# paired ratios: ABBA blocks -> (ON,OFF) and (OFF,ON) neighbours: rounds 1-2, 3-4, 5-6, ...
pairs = []
for i in range(0, len(rows) - 1, 2):
    a, b = rows[i], rows[i + 1]
    o = a if a["poller"] == "on" else b
    f = b if a["poller"] == "on" else a
    assert o["poller"] == "on" and f["poller"] == "off"
    pairs.append(o["rate"] / f["rate"])
pm = st.mean(pairs)
psd = st.stdev(pairs)
pboot = []
for _ in range(B):
    s = [random.choice(pairs) for _ in pairs]
    pboot.append(st.mean(s))
pboot.sort()
plo, phi = pboot[int(0.025 * B)], pboot[int(0.975 * B) - 1]

# block-level: per ABBA block, mean(ON)/mean(OFF)
blocks = []
for i in range(0, len(rows) - 3, 4):
    blk = rows[i:i + 4]
    o = st.mean(r["rate"] for r in blk if r["poller"] == "on")
    f = st.mean(r["rate"] for r in blk if r["poller"] == "off")
    blocks.append(o / f)

mean_on, mean_off = st.mean(on), st.mean(off)
mboot = boot_ratio(st.mean)

def cv(x):
    return st.stdev(x) / st.mean(x)

out = {
    "n_on": len(on), "n_off": len(off),
    "median_on": m_on, "median_off": m_off, "ratio_of_medians": ratio,
    "ci95_ratio_of_medians": [lo, hi],
    "mean_on": mean_on, "mean_off": mean_off, "ratio_of_means": mean_on / mean_off,
    "ci95_ratio_of_means": [mboot[int(0.025 * B)], mboot[int(0.975 * B) - 1]],
    "cv_on": cv(on), "cv_off": cv(off),
    "min_max_on": [min(on), max(on)], "min_max_off": [min(off), max(off)],
    "paired_n": len(pairs), "paired_mean": pm, "paired_sd": psd,
    "paired_ci95_bootstrap": [plo, phi], "paired_median": st.median(pairs),
    "block_ratio_mean": st.mean(blocks), "block_ratio_median": st.median(blocks),
}
# CPU
sum_ = lambda k, arm=None: sum(int(r[k]) for r in rows if arm is None or r["poller"] == arm)
wall = lambda arm=None: sum(float(r["wall"]) for r in rows if arm is None or r["poller"] == arm)
for arm in ("on", "off"):
    w = wall(arm)
    out[f"cpu_{arm}"] = {
        "wall_s": w,
        "mgmt_s": sum_("mgmt_ticks", arm) / 100, "metrics_s": sum_("metrics_ticks", arm) / 100,
        "nonshard_s": sum_("nonshard_ticks", arm) / 100, "broker_s": sum_("broker_ticks", arm) / 100,
        "poller_clients_s": sum_("poller_ticks", arm) / 100,
        "mgmt_plus_metrics_pct_core": 100 * (sum_("mgmt_ticks", arm) + sum_("metrics_ticks", arm)) / 100 / w,
        "nonshard_pct_core": 100 * sum_("nonshard_ticks", arm) / 100 / w,
        "broker_pct_core": 100 * sum_("broker_ticks", arm) / 100 / w,
        "broker_us_per_msg_median": st.median(float(r["broker_us_per_msg"]) for r in rows if r["poller"] == arm),
        "consumed": sum(int(r["consumed"]) for r in rows if r["poller"] == arm),
    }
print(json.dumps(out, indent=1))
