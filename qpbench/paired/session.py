"""The driver of interleaved measurement: solvers of one or two builds timed in turn, solve by solve.

One measurement server runs in each build (:mod:`qpbench.paired.server`); the driver asks them in
turn for timed solves of the same case, in ABBA order (baseline, candidate, candidate, baseline,
...), round after round over the cases. Consecutive timings are tens of milliseconds apart, so a
change of machine load (on the 2-core development machine it moves in steps of up to 2x that
last seconds) meets both alike and cancels in their ratio. Whole-process interleaving (one suite
run per build, alternating, as asv's interleaved mode does per benchmark) leaves seconds between
the two measurements of a case and did not cancel it.

Each build's rows are written as a normal results table (``OUT/<label>``); ``solve_times`` holds
the timings in request order, so entry i of every row of a session is one pair, and the
``pairing`` column names the session. See ``docs/regression.md``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qpbench.results import COLUMNS, write_environment, write_row

SERVER_MODULE = "qpbench.paired.server"
START_TIMEOUT = 600.0  # seconds for a server to import, build the problems, set up and warm up
SOLVE_GRACE = 5.0  # seconds past a case's time limit before a build counts as hung


class ServerError(RuntimeError):
    """A build's measurement server failed, hung or answered nonsense; ``build`` says which."""

    def __init__(self, build: str, message: str) -> None:
        super().__init__(f"{build} build: {message}")
        self.build = build


@dataclass(frozen=True)
class BuildCommand:
    """How to start the measurement server of one build."""

    label: str  # "baseline" or "candidate"
    python: Path
    cwd: Path
    env: dict[str, str]
    commit: str | None  # recorded as the build's git commit in its environment.json
    dirty: bool | None = False


@dataclass(frozen=True)
class UnitInfo:
    case_id: str
    solver: str
    tolerance: str
    time_limit: float
    warmup_seconds: float
    outcome: str
    error: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.case_id, self.solver, self.tolerance

    @classmethod
    def from_message(cls, unit: dict[str, Any]) -> UnitInfo:
        """From a server's description (keys it does not send, as an older build may not, default)."""
        return cls(
            case_id=str(unit["case_id"]),
            solver=str(unit["solver"]),
            tolerance=str(unit["tolerance"]),
            time_limit=float(unit.get("time_limit", 60.0)),
            warmup_seconds=float(unit.get("warmup_seconds", float("nan"))),
            outcome=str(unit.get("outcome", "ok")),
            error=str(unit.get("error", "")),
        )


@dataclass(frozen=True)
class Lane:
    """One timed series of a case: a solver in a build (server unit ``index``, timed in ``runs``)."""

    build: str
    solver: str
    index: int
    runs: int = 1


MAX_RUNS = 64  # solves per timed entry for a very short reference solve


class Server:
    """One build's measurement server process, spoken to one JSON line at a time."""

    def __init__(self, build: BuildCommand, suite: Path, solvers: list[str], threads: int | None) -> None:
        self.build = build
        argv = [str(build.python), "-m", SERVER_MODULE, str(suite)]
        for solver in solvers:
            argv += ["--solver", solver]
        if threads is not None:
            argv += ["--threads", str(threads)]
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; close() closes it
        self._buffer = b""
        try:
            self.process = subprocess.Popen(
                argv, cwd=build.cwd, env=build.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr,
            )
        except OSError as exc:
            raise ServerError(build.label, f"cannot start {build.python}: {exc}") from None

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except OSError:
            raise self._failure("stopped before the request") from None
        return self.read(timeout)

    def read(self, timeout: float) -> dict[str, Any]:
        """The next reply line, waiting at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise self._failure(f"no answer within {timeout:.0f} s (killed)")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._failure("exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise self._failure(f"answered something that is not JSON: {line[:200]!r}") from None

    def _failure(self, what: str) -> ServerError:
        code = self.process.poll()
        status = f" (exit status {code})" if code is not None else ""
        return ServerError(self.build.label, f"measurement server {what}{status}; {self.stderr_tail()}")

    def stderr_tail(self, lines: int = 8) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace").strip().splitlines()
        return "stderr: " + (" | ".join(text[-lines:]) if text else "(empty)")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._stderr.close()


@dataclass
class InterleavedSession:
    """Measurement servers of one or two builds, timed in turn case by case.

    Every (build, solver) of a case is a lane; each pair of a case visits its lanes in turn,
    forwards then backwards (ABBA for two lanes), so that every lane meets the same moments of
    load. Two builds with the judged solver make the paired check; one build with the judged
    solver and reference solvers makes an interleaved table whose in-house / reference ratios
    the unpaired check compares across time. :meth:`measure` adds pairs, :meth:`write` saves.
    """

    suite: Path
    solvers: list[str]
    builds: list[BuildCommand]
    threads: int | None = None
    # solves per timed entry by (case_id, solver), e.g. a baseline's, so that a comparison times
    # every solver exactly as the baseline did; the others are planned from the warm-ups
    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    log: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr))
    pairing: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    units: list[UnitInfo] = field(default_factory=list)  # of the first build; the others offer the same
    pairs: int = 0
    _servers: dict[str, Server] = field(default_factory=dict)
    _environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lanes: dict[tuple[str, str], list[Lane]] = field(default_factory=dict)  # (case_id, tolerance) -> lanes
    _timed: dict[tuple[str, str], int] = field(default_factory=dict)  # pairs timed per case

    def __enter__(self) -> InterleavedSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start every build's server (they prepare in parallel) and check they offer the same
        units; on any failure all are stopped before the error is raised."""
        try:
            self._start()
        except BaseException:
            for server in self._servers.values():
                server.kill()  # it may still be preparing; waiting for it would only delay the error
            self.close()
            raise

    def _start(self) -> None:
        labels = [b.label for b in self.builds]
        if not self.builds or len(set(labels)) != len(labels):
            raise ValueError(f"builds must be one or more with distinct labels, got {labels}")
        for build in self.builds:
            self._servers[build.label] = Server(build, self.suite, self.solvers, self.threads)
        offered: dict[str, list[UnitInfo]] = {}
        for label, server in self._servers.items():
            ready = server.read(START_TIMEOUT)
            if not ready.get("ready"):
                raise ServerError(label, f"did not start: {ready.get('error', ready)}; {server.stderr_tail()}")
            offered[label] = [UnitInfo.from_message(unit) for unit in ready["units"]]
            self._environments[label] = dict(ready.get("environment") or {})
        first, *others = labels
        for label in others:
            if [u.key for u in offered[label]] != [u.key for u in offered[first]]:
                differ = sorted({u.key for u in offered[label]} ^ {u.key for u in offered[first]})
                raise ServerError(label, f"offers other units than the {first} build: {differ} (both read the "
                                  "same suite file: do the two builds expand it differently?)")
        self.units = offered[first]
        if not self.units:
            raise ServerError(first, f"no unit of solvers {self.solvers} in suite {self.suite}")
        self._lanes = self._plan_lanes(offered)

    def _plan_lanes(self, offered: dict[str, list[UnitInfo]]) -> dict[tuple[str, str], list[Lane]]:
        """The lanes of every case whose units are ok in all builds, each solver timed in runs that
        last about as long as the case's slowest solver: the same runs in every build, so that two
        builds' timings of a solver are always alike (one build's slow warm-up must not change them)."""
        cases: dict[tuple[str, str], list[int]] = {}
        for index, unit in enumerate(self.units):
            if all(offered[label][index].outcome == "ok" for label in offered):
                cases.setdefault((unit.case_id, unit.tolerance), []).append(index)
        lanes: dict[tuple[str, str], list[Lane]] = {}
        for case, indices in cases.items():
            # a solver's duration: its fastest warm-up over the builds (load only adds time)
            seconds = {i: min(offered[label][i].warmup_seconds for label in offered) for i in indices}
            longest = max(seconds.values())
            runs = {i: self.runs.get((case[0], self.units[i].solver)) or _runs_for(seconds[i], longest)
                    for i in indices}
            lanes[case] = [Lane(label, self.units[i].solver, i, runs[i]) for i in indices for label in offered]
        return lanes

    def measure(self, pairs: int, rounds: int) -> None:
        """``pairs`` more pairs per case, spread over ``rounds`` rounds through all cases, each
        round's cases in the opposite order of the last one's."""
        if pairs < 1 or rounds < 1:
            raise ValueError(f"pairs and rounds must be >= 1, got pairs={pairs}, rounds={rounds}")
        cases = list(self._lanes)
        per_round = [pairs // rounds + (r < pairs % rounds) for r in range(rounds)]
        started = time.monotonic()
        for r, count in enumerate(per_round):
            for case in cases if r % 2 == 0 else cases[::-1]:
                for _ in range(count):
                    self._pair(case)
            self.log(f"interleaved: round {r + 1}/{rounds} done ({time.monotonic() - started:.0f} s)")
        self.pairs += pairs

    def _pair(self, case: tuple[str, str]) -> None:
        lanes = self._lanes.get(case)
        if not lanes:
            return
        forwards = self._timed.get(case, 0) % 2 == 0  # ABBA: every lane goes first equally often
        self._timed[case] = self._timed.get(case, 0) + 1
        failed = []
        for lane in lanes if forwards else lanes[::-1]:
            limit = self.units[lane.index].time_limit * lane.runs + SOLVE_GRACE
            answer = self._servers[lane.build].ask({"op": "solve", "unit": lane.index, "runs": lane.runs}, limit)
            if "error" in answer:
                failed.append(f"{lane.build} {lane.solver}: {answer['error']}")
        if failed:  # a solve that raised ends the case's timing in every lane (its rows record why)
            self.log(f"interleaved: {case[0]}: stopped timing: {'; '.join(failed)}")
            del self._lanes[case]

    def write(self, folders: dict[str, Path]) -> None:
        """Every build's table (``results.jsonl``, ``environment.json``) into its folder, by label."""
        for build in self.builds:
            answer = self._servers[build.label].ask({"op": "rows"}, START_TIMEOUT)
            if "rows" not in answer:
                raise ServerError(build.label, f"did not return its rows: {answer.get('error', answer)}")
            folder = Path(folders[build.label])
            results = folder / "results.jsonl"
            if results.exists():
                results.unlink()
            for row in answer["rows"]:
                write_row(folder, {k: v for k, v in {**row, "pairing": self.pairing}.items() if k in COLUMNS})
            environment = self._environments[build.label]
            environment["git"] = {"commit": build.commit, "dirty": build.dirty}
            environment["pairing"] = {"session": self.pairing, "builds": [b.label for b in self.builds],
                                      "solvers": self.solvers, "pairs": self.pairs}
            write_environment(folder, environment)

    def close(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()


def _runs_for(seconds: float, longest: float) -> int:
    """Solves per timed entry that make a solve of ``seconds`` last about as long as ``longest``."""
    if not (seconds > 0 and longest > 0):
        return 1
    return max(1, min(MAX_RUNS, round(longest / seconds)))
