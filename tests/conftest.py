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
