#!/usr/bin/env bash
# Repeated trials of the CI regression gate on this machine (figures in problems/regression.md):
#   TRIALS runs of the ci suite with the solver unchanged, each compared with the committed
#   baseline (false alarms), then TRIALS runs with the in-house solver slowed by the test-only
#   knob QPBENCH_INHOUSE_EXTRA_FACTORIZATIONS=EXTRA (catches). Every compare uses the same
#   --confirm-cmd as CI, so a speed finding must reproduce in a fresh run to count.
# Usage: scripts/regression_trials.sh [TRIALS=5] [EXTRA=15] [WORKDIR=/tmp/regression-trials]
set -euo pipefail

TRIALS=${1:-5}
EXTRA=${2:-15}
WORK=${3:-/tmp/regression-trials}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
QPBENCH=${QPBENCH:-"$ROOT/.venv/bin/qpbench"}
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
BASELINE="$ROOT/reports/baseline/ci"
CONFIRM="$QPBENCH run ci --out {out} --fresh --no-report --quiet"

rm -rf "$WORK" && mkdir -p "$WORK"
cd "$ROOT"

# The knob's real effect on the ci problems, timed in one process with the unchanged and the
# slowed solve interleaved, so machine load hits both alike.
"$PYTHON" - "$EXTRA" <<'PY'
import math
import statistics
import sys
import time

import torch

from qpbench.generators import generate
from qpbench.runner import expand, load_suite
from qpbench.solver import SolverSettings, solve

torch.set_num_threads(1)
extra = int(sys.argv[1])
plain, slowed = (SolverSettings(eps_abs=1e-6, eps_rel=0.0, extra_factorizations=e) for e in (0, extra))
ratios = []
for case in expand(load_suite("ci")):
    batch = generate(case.family, case.batch_size, case.n, case.m, case.k, seed=case.seed)
    times: dict[int, list[float]] = {0: [], 1: []}
    for step in range(18):  # 2 warm-ups each, then 7 timed each, alternating
        which = step % 2
        start = time.perf_counter()
        solve(batch, slowed if which else plain)
        if step >= 4:
            times[which].append(time.perf_counter() - start)
    ratio = statistics.median(times[1]) / statistics.median(times[0])
    ratios.append(ratio)
    print(f"knob check {case.case_id}: {statistics.median(times[0]) * 1e3:.1f} ms -> {ratio:.2f}x")
geomean = math.exp(sum(map(math.log, ratios)) / len(ratios))
print(f"knob check: EXTRA={extra} slows the in-house solve {geomean:.2f}x (geomean), smallest {min(ratios):.2f}x")
PY

trial() {  # trial LABEL: one ci run + compare; the exit code goes to LABEL.rc
    local label=$1
    "$QPBENCH" run ci --out "$WORK/$label" --fresh --no-report --quiet >/dev/null 2>&1
    set +e
    "$QPBENCH" compare "$BASELINE" "$WORK/$label" --confirm-cmd "$CONFIRM" --output "$WORK/$label.md" >/dev/null 2>&1
    echo $? >"$WORK/$label.rc"
    set -e
    echo "$label: load $(cut -d' ' -f1 /proc/loadavg), compare exit $(cat "$WORK/$label.rc")"
}

unset QPBENCH_INHOUSE_EXTRA_FACTORIZATIONS
for i in $(seq "$TRIALS"); do trial "same-$i"; done
export QPBENCH_INHOUSE_EXTRA_FACTORIZATIONS=$EXTRA
for i in $(seq "$TRIALS"); do trial "slow-$i"; done
unset QPBENCH_INHOUSE_EXTRA_FACTORIZATIONS

"$PYTHON" - "$WORK" "$TRIALS" "$EXTRA" <<'PY'
"""Summarise the trials: verdicts, aggregate change vs its limit, and the knob's real slowdown."""
import math
import re
import sys
from pathlib import Path

from qpbench.results import load_table

work, trials, extra = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
aggregate = re.compile(r"geometric mean of ratio changes ([\d.]+)x \(fails above ([\d.]+)x\)")
case_change = re.compile(r"\| ([\d.]+)x \(limit ([\d.]+)x\) \|")
for kind, expect in (("same", 0), ("slow", 1)):
    hits = 0
    for i in range(1, trials + 1):
        label = f"{kind}-{i}"
        rc = int((work / f"{label}.rc").read_text())
        text = (work / f"{label}.md").read_text()
        hits += rc == expect
        agg = aggregate.findall(text) or [("nan", "nan")]  # the first run's aggregate
        cases = case_change.findall(text)
        worst = max((float(c) / float(lim) for c, lim in cases), default=float("nan"))
        confirmed = "confirmation re-run" in text
        print(
            f"{label}: exit {rc}; aggregate change {agg[0][0]}x, limit {agg[0][1]}x"
            + f"; worst case change/limit {worst:.2f}; confirmation re-run: {confirmed}"
        )
    want = "no regression" if expect == 0 else "regression"
    print(f"== {kind}: {hits}/{trials} verdicts '{want}' ==")

# The knob's real effect: in-house median solve time slowed / unchanged, paired trial by trial.
ratios: dict[str, list[float]] = {}
for i in range(1, trials + 1):
    same, slow = (load_table(work / f"{kind}-{i}") for kind in ("same", "slow"))
    same, slow = (t[t["solver"] == "inhouse"].set_index("case_id") for t in (same, slow))
    for case in same.index:
        ratios.setdefault(case, []).append(slow.loc[case, "solve_time_median"] / same.loc[case, "solve_time_median"])
print(f"in-house slowdown with EXTRA={extra} (median over trials of slowed/unchanged median solve time):")
for case, values in ratios.items():
    print(f"  {case}: {sorted(values)[len(values) // 2]:.2f}x")
medians = [sorted(v)[len(v) // 2] for v in ratios.values()]
print(f"  geometric mean {math.exp(sum(map(math.log, medians)) / len(medians)):.2f}x, smallest {min(medians):.2f}x")
PY
