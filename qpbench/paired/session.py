"""The driver of the paired regression check: two builds measured interleaved, solve by solve.

One measurement server runs in each build (:mod:`qpbench.paired.server`); the driver asks them in
turn for single timed solves of the same unit, in ABBA order (baseline, candidate, candidate,
baseline, ...), round after round over the units. Consecutive solves of the two builds are tens of
milliseconds apart, so a change of machine load (on the 2-core development machine it moves in
steps of up to 2x that last seconds) meets both builds alike and cancels in their paired ratio.
Whole-process interleaving (one suite run per build, alternating, as asv's interleaved mode does
per benchmark) leaves seconds between the two measurements of a case and did not cancel it.

Each build's rows are written as a normal results table (``OUT/baseline``, ``OUT/candidate``);
``solve_times`` holds the solves in request order, so entry i of the two tables is one pair, and
the ``pairing`` column names the session so that the regression check knows the tables are
paired. See ``docs/regression.md``.
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
    outcome: str
    error: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.case_id, self.solver, self.tolerance


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
class PairedSession:
    """Both builds' servers, started together; :meth:`measure` adds pairs, :meth:`write` saves."""

    suite: Path
    solvers: list[str]
    baseline: BuildCommand
    candidate: BuildCommand
    threads: int | None = None
    log: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr))
    pairing: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    units: list[UnitInfo] = field(default_factory=list)
    pairs: int = 0
    _servers: dict[str, Server] = field(default_factory=dict)
    _environments: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __enter__(self) -> PairedSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start both servers (they prepare in parallel) and check they offer the same units."""
        for build in (self.baseline, self.candidate):
            self._servers[build.label] = Server(build, self.suite, self.solvers, self.threads)
        offered: dict[str, list[UnitInfo]] = {}
        for label, server in self._servers.items():
            ready = server.read(START_TIMEOUT)
            if not ready.get("ready"):
                raise ServerError(label, f"did not start: {ready.get('error', ready)}; {server.stderr_tail()}")
            offered[label] = [UnitInfo(**unit) for unit in ready["units"]]
            self._environments[label] = dict(ready.get("environment") or {})
        base_keys = [u.key for u in offered[self.baseline.label]]
        cand_keys = [u.key for u in offered[self.candidate.label]]
        if base_keys != cand_keys:
            raise ServerError(
                self.baseline.label,
                f"offers units {sorted(set(base_keys) ^ set(cand_keys))} that the other build does not "
                "(both read the same suite file: do the two builds expand it differently?)",
            )
        self.units = offered[self.candidate.label]
        if not self.units:
            raise ServerError(self.candidate.label, f"no unit of solvers {self.solvers} in suite {self.suite}")

    def measure(self, pairs: int, rounds: int) -> None:
        """``pairs`` more pairs per unit, spread over ``rounds`` rounds through all units, each
        round's units in the opposite order of the last one's."""
        if pairs < 1 or rounds < 1:
            raise ValueError(f"pairs and rounds must be >= 1, got pairs={pairs}, rounds={rounds}")
        timed = [i for i, u in enumerate(self.units) if u.outcome == "ok"]
        per_round = [pairs // rounds + (r < pairs % rounds) for r in range(rounds)]
        started = time.monotonic()
        for r, count in enumerate(per_round):
            order = timed if r % 2 == 0 else timed[::-1]
            for index in order:
                for k in range(count):
                    self._pair(index, first_baseline=(self.pairs + k) % 2 == 0)
            self.pairs_done_note(r + 1, rounds, started)
        self.pairs += pairs

    def pairs_done_note(self, done: int, rounds: int, started: float) -> None:
        self.log(f"paired: round {done}/{rounds} done ({time.monotonic() - started:.0f} s)")

    def _pair(self, index: int, first_baseline: bool) -> None:
        unit = self.units[index]
        if unit.outcome != "ok":
            return
        order = (self.baseline, self.candidate) if first_baseline else (self.candidate, self.baseline)
        answers = []
        for build in order:
            answer = self._servers[build.label].ask({"op": "solve", "unit": index}, unit.time_limit + SOLVE_GRACE)
            answers.append((build.label, answer))
        failed = [(label, a["error"]) for label, a in answers if "error" in a]
        if failed:
            # a solve that raised ends this unit's timing in both builds (its row records why)
            self.units[index] = UnitInfo(**{**vars(unit), "outcome": "failed", "error": "; ".join(
                f"{label}: {error}" for label, error in failed)})

    def write(self, out: Path) -> dict[str, Path]:
        """Both builds' tables under ``out`` (``baseline/``, ``candidate/``); returns the folders."""
        folders = {}
        for build in (self.baseline, self.candidate):
            answer = self._servers[build.label].ask({"op": "rows"}, START_TIMEOUT)
            if "rows" not in answer:
                raise ServerError(build.label, f"did not return its rows: {answer.get('error', answer)}")
            folder = Path(out) / build.label
            results = folder / "results.jsonl"
            if results.exists():
                results.unlink()
            for row in answer["rows"]:
                write_row(folder, {k: v for k, v in {**row, "pairing": self.pairing}.items() if k in COLUMNS})
            environment = self._environments[build.label]
            environment["git"] = {"commit": build.commit, "dirty": build.dirty}
            environment["pairing"] = {"session": self.pairing, "build": build.label, "pairs": self.pairs}
            write_environment(folder, environment)
            folders[build.label] = folder
        return folders

    def close(self) -> None:
        for server in self._servers.values():
            server.close()
