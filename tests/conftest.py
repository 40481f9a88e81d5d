"""Shared fixtures: an isolated PREFECT_HOME, one real Prefect server per session, seeds."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

# Before anything imports prefect: keep test runs out of the user's ~/.prefect.
_HOME = tempfile.mkdtemp(prefix="trainflow-test-prefect-")
os.environ["PREFECT_HOME"] = _HOME
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "3600")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def _own_cores() -> None:
    """Under pytest-xdist (``-n``), give each worker its own share of the cores (its CPU affinity,
    which trainflow reads as the cores it may use, and which the processes it starts inherit).
    Without it each worker's torch, BLAS and OpenMP pools would take every core: two workers on
    two cores then wait at each pool barrier for a thread the other worker holds."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= count:
        os.sched_setaffinity(0, cores[int(worker[2:]) % count::count])


_own_cores()


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: one worker a core, at most 4 (each runs its own Prefect server and, in places,
    a Dask or Ray cluster)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SPECS = REPO / "flows" / "specs"


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect API server (temporary database) for every flow test in the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"
