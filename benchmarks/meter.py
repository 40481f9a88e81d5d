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
    """The peak resident memory since the last reset (VmHWM), None off Linux."""
    from trainflow.tasks.common.validation_process import peak_mb

    return peak_mb()


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
        #: stages that ran beside the others: their wall seconds, kept out of ``seconds`` so that the
        #: sequential stages still add up to the run (see :meth:`overlap` for their memory)
        self.overlapped: dict[str, float] = {}
        self._spans: list[tuple[str, float, float, bool]] = []  # (stage, start, end, overlapped)
        self._child_peaks: list[float] = []  # what overlapped children reported as their peak (MB)
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
            self._spans.append((name, t, time.perf_counter(), False))
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
            self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), self._peak())
            self._last_end = time.time()

    def add(self, name: str, start: float, end: float) -> None:
        """Record a sequential stage timed by the caller (``time.perf_counter``); no peak of its own."""
        self._spans.append((name, start, end, False))
        self.seconds[name] = self.seconds.get(name, 0.0) + end - start

    def overlap(self, name: str, start: float, end: float, child_peak_mb: float | None = None) -> None:
        """Record a stage that ran beside the others from ``start`` to ``end`` (``time.perf_counter``).

        In a thread, its memory is in the high-water marks of the stages it overlapped. In a child
        process (the largest child this process waited for), the child's peak RSS is its peak, and
        the process peak becomes at least that plus the highest peak of a stage it overlapped: an
        upper bound of what the two held at once."""
        self.overlapped[name] = self.overlapped.get(name, 0.0) + end - start
        self._spans.append((name, start, end, True))
        if child_peak_mb is not None:  # the child's own figure (its VmHWM), not RUSAGE_CHILDREN's
            self._child_peaks.append(child_peak_mb)

    def child_peak(self, mb: float | None) -> None:
        """A later figure of an overlapped child's peak (the validation child's, once it has also
        written the Data Docs after answering)."""
        if mb is not None:
            self._child_peaks.append(mb)

    def _with_children(self) -> float:
        """The process peak counting children that ran beside stages (see :meth:`overlap`)."""
        # A child's own report where there is one: RUSAGE_CHILDREN takes any child's high-water mark,
        # and a child spawned with vfork (subprocess on Linux) starts with the parent's.
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        child_mb = max(self._child_peaks) if self._child_peaks else (
            child / (1024 * 1024) if sys.platform == "darwin" else child / 1024)
        if not child_mb:
            return self._overall
        self.extra["children_peak_mb"] = child_mb
        beside = [self.peak_mb.get(name, 0.0) for name, s, e, apart in self._spans if not apart
                  and any(o and s < oe and os_ < e for _, os_, oe, o in self._spans)]
        for name, *_, apart in self._spans:
            if apart:
                self.peak_mb[name] = child_mb
        return max(self._overall, max(beside, default=0.0) + child_mb)

    def report(self) -> None:
        """Print the figures as one JSON line the benchmark picks out of stdout."""
        self._peak()
        self._overall = self._with_children()
        self.extra.setdefault("wall_in_process_s", time.time() - self.t0)
        first = min((s for _, s, _, _ in self._spans), default=0.0)
        # when each stage ran, from the first one's start: shows what overlapped what
        self.extra["spans"] = [[name, round(s - first, 3), round(e - first, 3), apart]
                               for name, s, e, apart in sorted(self._spans, key=lambda span: span[1])]
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
