"""Wall time and peak memory per stage of one process, for the benchmarks.

Peak RSS per stage comes from Linux's high-water mark: writing ``5`` to ``/proc/self/clear_refs``
resets it, ``VmHWM`` in ``/proc/self/status`` reads it. Elsewhere the process-wide peak
(``getrusage``) is reported for every stage. This module imports nothing but the standard
library, so the plain scripts can use it without importing trainflow.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path

#: set by the benchmark to the parent's time.time() just before it starts this process
T0_ENV = "BENCH_T0"
RESULT_PREFIX = "BENCH_RESULT "


def _hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


class StageMeter:
    """Records ``{stage: seconds}`` and ``{stage: peak MB}``; the process peak is the max over all."""

    def __init__(self) -> None:
        self.t0 = float(os.environ.get(T0_ENV, time.time()))
        self.seconds: dict[str, float] = {}
        self.peak_mb: dict[str, float] = {}
        #: stages that ran beside the others (in a thread): their wall seconds, kept out of ``seconds``
        #: so that the sequential stages still add up to the run; their memory counts in the
        #: sequential stages they overlapped (one process, one high-water mark)
        self.overlapped: dict[str, float] = {}
        self.extra: dict[str, object] = {}
        self._overall = 0.0
        self._last_end = time.time()
        self._per_stage = _hwm_mb() is not None and _reset_hwm()

    def _peak(self) -> float:
        value = _hwm_mb() if self._per_stage else _maxrss_mb()
        self._overall = max(self._overall, value or 0.0)
        return value or 0.0

    def mark_start(self, name: str = "start") -> None:
        """Time from process launch (the parent's clock) to now: interpreter, imports, set-up."""
        now = time.time()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self.t0
        self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), self._peak())
        if self._per_stage:
            _reset_hwm()
        self._last_end = now

    @contextmanager
    def stage(self, name: str):
        """Time the block; stages of the same name add up."""
        if self._per_stage:
            self._peak()
            _reset_hwm()
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), self._peak())
            self._last_end = time.time()

    def overlap(self, name: str, seconds: float) -> None:
        """Record a stage that ran beside the others; stages of the same name add up."""
        self.overlapped[name] = self.overlapped.get(name, 0.0) + seconds

    def report(self) -> None:
        """Print the figures as one JSON line the benchmark picks out of stdout."""
        self._peak()
        self.extra.setdefault("wall_in_process_s", time.time() - self.t0)
        print(RESULT_PREFIX + json.dumps({"seconds": self.seconds, "overlapped": self.overlapped,
                                          "peak_mb": self.peak_mb,
                                          "process_peak_mb": max(self._overall, _maxrss_mb() if not self._per_stage else 0),
                                          "per_stage_peaks": self._per_stage, **self.extra}), flush=True)


def parse_result(stdout: str) -> dict:
    """The figures a metered process printed."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    raise RuntimeError("the benchmarked process printed no result line:\n" + stdout[-3000:])


def timed(fn, record):
    """``fn`` wrapped so that each call passes its wall time in seconds to ``record`` (also when it raises)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            record(time.perf_counter() - t0)
    return wrapper
