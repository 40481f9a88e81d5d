"""CPU threads: the spec's ``resources`` section and the one place that applies it.

``resources.threads`` (0, the default: every core this process may use, :func:`available`) is
applied by :func:`using` around the fit, the evaluation and prediction, to every pool a library
may start there:

- joblib's ``n_jobs`` (forests, k-NN, SMOTE's neighbours, permutation importance: whatever leaves
  ``n_jobs`` unset), on threads: the data is shared, not copied into worker processes;
- BLAS and OpenMP pools (threadpoolctl): numpy's BLAS, hist gradient boosting, torch's OpenMP;
- torch's intra-op threads, where a modality trains networks (``train.num_threads: 0`` follows
  :func:`current`; an explicit count wins, see :func:`trainflow.tasks.common.training.torch_threads`).

joblib's setting holds for the calling thread, the pools' for the whole process: a sweep that
trains candidates side by side gives each its share (:func:`share`), so that together they use the
cores once.

Cores busy with other processes' work are left to them (:class:`OthersLoad`, :func:`free`): an
OpenMP pool whose threads share a core with another busy process waits at each of its barriers
for the thread that was not scheduled (a boosting fit on 2 threads beside one spinning core took
9-17x its idle time; on the 1 free core, 2x). That count is used only where results do not depend
on it (see :func:`trainflow.cache_keys.default_threads`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field


class ResourcesSpec(BaseModel):
    """What a run may use of the machine (``resources``)."""

    model_config = ConfigDict(extra="forbid")

    threads: int = Field(0, ge=0, description="CPU threads for fitting, evaluating and predicting (joblib n_jobs, "
                                              "BLAS/OpenMP, torch); 0 = every core this process may use")


_current: contextvars.ContextVar[int | None] = contextvars.ContextVar("trainflow_threads", default=None)


def available() -> int:
    """The cores this process may run on (its CPU affinity, as a container or ``taskset`` limits
    it; the CPU count where the platform has no affinity)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def resolve(threads: int | None) -> int:
    """The thread count a ``resources.threads`` value means here (0 or None: :func:`available`)."""
    return int(threads) if threads else available()


def current() -> int:
    """The thread count of the innermost :func:`using` block of this context, else :func:`available`."""
    return _current.get() or available()


def share(threads: int, parallel: int) -> int:
    """Each one's threads when ``parallel`` jobs run at once on ``threads`` (at least 1)."""
    return max(1, threads // max(1, parallel))


class OthersLoad:
    """How many cores other processes kept busy between :meth:`start` and :meth:`cores`: the
    machine's busy time (``/proc/stat``) less this process's and its children's (``/proc/*/stat``).
    Linux only; elsewhere, and over a window too short to tell (< 0.05 s), it reads 0."""

    def __init__(self) -> None:
        self._at: tuple[float, int, int] | None = None

    def start(self) -> OthersLoad:
        self._at = _snapshot()
        return self

    def cores(self) -> float:
        now = _snapshot()
        if self._at is None or now is None or now[0] - self._at[0] < 0.05:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        others = (now[1] - self._at[1]) - (now[2] - self._at[2])
        return max(0.0, others / ticks / (now[0] - self._at[0]))


def _snapshot() -> tuple[float, int, int] | None:
    """(monotonic time, the machine's busy ticks, this process tree's ticks), or None off Linux."""
    import time

    try:
        with open("/proc/stat", encoding="ascii") as f:
            cpu = [int(v) for v in f.readline().split()[1:]]
        return time.monotonic(), sum(cpu) - cpu[3] - (cpu[4] if len(cpu) > 4 else 0), _own_ticks()
    except (OSError, ValueError, IndexError):
        return None


def _own_ticks() -> int:
    """CPU ticks of this process (its reaped children included) and of its living children."""
    me, total = os.getpid(), 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        except OSError:
            continue  # exited meanwhile
        pid, ppid = int(entry.name), int(fields[1])
        if pid == me:
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        elif ppid == me:
            total += int(fields[11]) + int(fields[12])
    return total


def free(threads: int, load: OthersLoad | None) -> int:
    """``threads`` less the cores ``load`` saw taken by other processes (a core counts from 0.6 of
    one kept busy), at least 1."""
    taken = int(load.cores() + 0.4) if load is not None else 0
    return max(1, threads - taken)


@contextlib.contextmanager
def using(threads: int) -> Iterator[int]:
    """Within this block, joblib (this thread), BLAS, OpenMP and torch, where it is imported (the
    process), use ``threads`` threads, and :func:`current` says so; the previous settings are
    restored after. A network's fit sets torch's count itself (it imports torch later)."""
    from joblib import parallel_config
    from threadpoolctl import threadpool_limits

    token = _current.set(threads)
    torch = sys.modules.get("torch")  # not imported for this: a tabular run never pays for torch
    before = torch.get_num_threads() if torch is not None else None
    try:
        # threading: an estimator leaving n_jobs unset then runs on threads (forests, k-NN release
        # the GIL), where joblib's default would start worker processes and copy the data to them
        with parallel_config(backend="threading", n_jobs=threads), threadpool_limits(limits=threads):
            if torch is not None:
                torch.set_num_threads(threads)
            yield threads
    finally:
        if torch is not None:
            torch.set_num_threads(before)
        _current.reset(token)
