"""Repeated trials of the CI regression gate under load, with slowdowns injected from outside.

    .venv/bin/python scripts/regression_trials.py --trials 20 --out /tmp/regression-trials

With a CPU-bound competing process on the machine for the whole time (started and stopped
here), every trial runs the gate the way CI does, once per setting, settings taking turns so
that slow changes of the machine's load reach them alike:

* paired (``qpbench compare reports/baseline/ci --paired``): unchanged, slowed ~1.25x, ~2x;
* unpaired against the committed table (``qpbench compare reports/baseline/ci``, which measures
  the suite interleaved with Clarabel): unchanged, slowed ~1.5x, ~2x.

The slowdown comes from ``scripts/slowdown`` (a wrapping adapter swapped in by ``sitecustomize``
for the candidate only); what it actually costs is measured here first, on the ci cases in one
process, slowed and plain solves alternating, and reported beside the nominal setting. Every
trial's verdict goes to OUT/trials.jsonl as it finishes; the summary table (Markdown) is printed
and, with --table, written to a file. A re-run with the same --out resumes. docs/regression.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLOWDOWN_DIR = ROOT / "scripts" / "slowdown"
BASELINE = ROOT / "reports" / "baseline" / "ci"
EXIT_VERDICTS = {0: "pass", 1: "regression", 3: "inconclusive"}


@dataclass(frozen=True)
class Setting:
    mode: str  # "paired" or "unpaired"
    nominal: str  # "1x", "1.25x", ...
    slowdown: str  # QPBENCH_TRIAL_SLOWDOWN value ("" = unchanged)
    target: str  # what the issue asks of it

    @property
    def label(self) -> str:
        return f"{self.mode} {self.nominal}"


SETTINGS = (
    Setting("paired", "1x", "", "passes >= 19/20"),
    Setting("paired", "1.25x", "burn:0.25", "caught >= 19/20"),
    Setting("paired", "2x", "resolve:1", "caught 20/20"),
    Setting("unpaired", "1x", "", "passes >= 19/20"),
    Setting("unpaired", "1.5x", "burn:0.5", "caught >= 19/20"),
    Setting("unpaired", "2x", "resolve:1", "never passes"),
)
# Just under the paired promise: how the gate behaves at its edge (--edge; no target).
EDGE_SETTINGS = (Setting("paired", "1.2x", "burn:0.2", "none (just under the promise)"),)


@dataclass
class Trial:
    setting: str
    trial: int
    exit_code: int
    verdict: str
    change: float | None
    low: float | None
    high: float | None
    remeasured: bool
    seconds: float
    load: float
    findings: list[str]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20, help="trials per setting (default 20)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/regression-trials"), help="work folder")
    parser.add_argument("--table", type=Path, help="also write the summary table (Markdown) here")
    parser.add_argument("--factor-pairs", type=int, default=40, help="pairs per case when measuring factors")
    parser.add_argument("--no-competitor", action="store_true", help="without the CPU-bound competing process")
    parser.add_argument("--edge", action="store_true", help="run the settings just under the promise instead")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` stops the competitor
    competitor = None if args.no_competitor else start_competitor()
    settings = EDGE_SETTINGS if args.edge else SETTINGS
    try:
        factors = measured_factors(args.out, args.factor_pairs, settings)
        run_trials(args.out, args.trials, settings)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    table = summary(load_trials(args.out), factors, args.trials, competitor is not None)
    print(table)
    if args.table is not None:
        args.table.write_text(table, encoding="utf-8")
    return 0


def start_competitor() -> subprocess.Popen[bytes]:
    """A CPU-bound process for the whole trial (one core's worth of load on the 2-core machine)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


# ----------------------------------------------------------------------------- the injected factors


def measured_factors(out: Path, pairs: int, settings: tuple[Setting, ...]) -> dict[str, dict[str, float]]:
    """Each slowdown setting's actual factor on the ci cases: slowed / plain solve time, pairs
    alternating in one process (median per case; geometric mean, min and max over the cases)."""
    saved = out / "factors.json"
    factors = json.loads(saved.read_text()) if saved.exists() else {}
    kinds = sorted({s.slowdown for s in settings if s.slowdown} - set(factors))
    if not kinds:
        return factors
    code = FACTOR_PROBE.format(root=str(ROOT), slowdown=str(SLOWDOWN_DIR), kinds=kinds, pairs=pairs)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    factors.update(json.loads(done.stdout.strip().splitlines()[-1]))
    saved.write_text(json.dumps(factors, indent=2))
    return factors


FACTOR_PROBE = """
import json, math, statistics, sys, time
sys.path.insert(0, {slowdown!r})
import torch
from qpbench.adapters.base import Tolerance
from qpbench.adapters.inhouse import InHouseAdapter
from qpbench.runner import expand, load_suite
from qpbench.runner.cases import build_batch
from slowed_inhouse import SlowedInHouseAdapter, Slowdown
torch.set_num_threads(1)
cases = expand(load_suite({root!r} + "/problems/ci.toml"))
result = {{}}
for kind in {kinds!r}:
    slow, plain = SlowedInHouseAdapter(Slowdown.parse(kind)), InHouseAdapter()
    per_case = []
    for case in cases:
        prepared = plain.setup(build_batch(case), Tolerance.parse("mid"))
        logs = []
        for k in range({pairs} + 2):
            order = (plain, slow) if k % 2 == 0 else (slow, plain)
            seconds = {{}}
            for adapter in order:
                start = time.perf_counter(); adapter.solve(prepared); seconds[id(adapter)] = time.perf_counter() - start
            if k >= 2:
                logs.append(math.log(seconds[id(slow)] / seconds[id(plain)]))
        per_case.append(math.exp(statistics.median(logs)))
    result[kind] = {{"geomean": math.exp(statistics.fmean(map(math.log, per_case))), "min": min(per_case),
                    "max": max(per_case)}}
print(json.dumps(result))
"""


# ----------------------------------------------------------------------------- the trials


def run_trials(out: Path, trials: int, settings: tuple[Setting, ...]) -> None:
    done = {(t.setting, t.trial) for t in load_trials(out)}
    builds = out / "builds"  # the baseline build is made once and reused (keyed by its commit)
    for trial in range(1, trials + 1):
        for setting in settings:
            if (setting.label, trial) in done:
                continue
            result = run_one(setting, trial, out, builds)
            with open(out / "trials.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(result)) + "\n")
            print(f"{setting.label:14s} trial {trial:2d}: {result.verdict:12s} "
                  f"{_fmt(result.change)} [{_fmt(result.low)}, {_fmt(result.high)}] "
                  f"{result.seconds:.0f} s, load {result.load:.1f}", flush=True)


def run_one(setting: Setting, trial: int, out: Path, builds: Path) -> Trial:
    verdict_file = out / "verdicts" / f"{setting.mode}-{setting.nominal}-{trial}.json"
    verdict_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "qpbench", "compare", str(BASELINE), "--json", str(verdict_file),
               "--output", str(verdict_file.with_suffix(".md"))]
    if setting.mode == "paired":
        command += ["--paired", "--build-dir", str(builds)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QPBENCH_TRIAL_SLOWDOWN")}
    if setting.slowdown:
        env.update(PYTHONPATH=str(SLOWDOWN_DIR), QPBENCH_TRIAL_SLOWDOWN=setting.slowdown)
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - start
    load = float(Path("/proc/loadavg").read_text().split()[0])
    if not verdict_file.exists():
        return Trial(setting.label, trial, done.returncode, f"error: {done.stderr.strip()[-200:]}", None, None, None,
                     False, seconds, load, [])
    verdict = json.loads(verdict_file.read_text())
    aggregate = verdict.get("aggregate") or {}
    notes = " ".join(verdict.get("notes", []))
    return Trial(
        setting=setting.label,
        trial=trial,
        exit_code=done.returncode,
        verdict=EXIT_VERDICTS.get(done.returncode, f"exit {done.returncode}"),
        change=aggregate.get("change"),
        low=aggregate.get("low"),
        high=aggregate.get("high"),
        remeasured="inconclusive at first" in notes,
        seconds=seconds,
        load=load,
        findings=[r["metric"] for r in verdict.get("regressions", [])],
    )


def load_trials(out: Path) -> list[Trial]:
    path = out / "trials.jsonl"
    if not path.exists():
        return []
    return [Trial(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


# ----------------------------------------------------------------------------- the table


def summary(trials: list[Trial], factors: dict[str, dict[str, float]], wanted: int, competitor: bool) -> str:
    lines = [
        "| mode | injected | measured factor (geomean over cases; min-max) | trials | pass | regression | "
        "inconclusive | re-measured | gate's estimate, median [min, max] | target | met | seconds per trial |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in (*SETTINGS, *EDGE_SETTINGS):
        rows = [t for t in trials if t.setting == setting.label]
        if not rows and setting in EDGE_SETTINGS:
            continue
        counts = {v: sum(t.verdict == v for t in rows) for v in ("pass", "regression", "inconclusive")}
        factor = factors.get(setting.slowdown)
        measured = f"{factor['geomean']:.2f}x ({factor['min']:.2f}-{factor['max']:.2f})" if factor else "1 (unchanged)"
        changes = sorted(t.change for t in rows if t.change is not None)
        estimate = (f"{statistics.median(changes):.3f}x [{changes[0]:.3f}x, {changes[-1]:.3f}x]" if changes else "-")
        seconds = statistics.median(t.seconds for t in rows) if rows else math.nan
        lines.append(
            f"| {setting.mode} | {setting.nominal} (`{setting.slowdown or 'none'}`) | {measured} | {len(rows)} | "
            f"{counts['pass']} | {counts['regression']} | {counts['inconclusive']} | "
            f"{sum(t.remeasured for t in rows)} | {estimate} | {setting.target} | {_met(setting, counts, len(rows))} | "
            f"{seconds:.0f} |"
        )
    loads = [t.load for t in trials]
    lines += [
        "",
        f"{len(trials)} trials (up to {wanted} per setting), "
        + ("with a CPU-bound competing process (`python -c 'while True: pass'`) running throughout; " if competitor
           else "without a competing process; ")
        + (f"1-minute load average at the end of each trial {min(loads):.1f} to {max(loads):.1f} "
           f"(median {statistics.median(loads):.1f}): the machine was also loaded by other work." if loads else ""),
    ]
    return "\n".join(lines) + "\n"


def _met(setting: Setting, counts: dict[str, int], total: int) -> str:
    if total == 0:
        return "-"
    if setting in EDGE_SETTINGS:
        return "-"
    if setting.nominal == "1x":
        ok = counts["pass"] >= math.ceil(0.95 * total)
    elif setting.target == "never passes":
        ok = counts["pass"] == 0
    elif setting.target == "caught 20/20":
        ok = counts["regression"] == total
    else:
        ok = counts["regression"] >= math.ceil(0.95 * total)
    if setting.nominal == "2x" and counts["pass"]:
        ok = False  # in no mode may a 2x slowdown pass
    return "yes" if ok else "**no**"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


if __name__ == "__main__":
    sys.exit(main())
