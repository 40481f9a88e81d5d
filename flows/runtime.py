"""Prefect settings for runs started from the command line.

Without ``PREFECT_API_URL`` a run uses a temporary local server. On a fresh ``PREFECT_HOME`` that
server can take over 20 s to start (its database is created and migrated), longer than Prefect's
default start-up timeout, so a new user's first demo would fail: we allow it 180 s. The per-flow
heartbeat only helps a server detect crashed runs of deployments; locally it costs ~1 s a flow,
so it is off. With ``PREFECT_API_URL`` set, the user's server and settings are used as they are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

EPHEMERAL_STARTUP_TIMEOUT_S = 180


def quiet_libraries() -> None:
    """Environment defaults that keep library side effects out of pipeline runs."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # Great Expectations would phone home
    os.environ.setdefault("MPLBACKEND", "Agg")  # plots are written to files; there is no display
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from a local run


def uses_remote_server() -> bool:
    """True when runs report to a server the user runs (PREFECT_API_URL set)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


@contextlib.contextmanager
def prefect_settings() -> Iterator[None]:
    """Settings for a CLI run: local-run tuning unless a server is configured."""
    quiet_libraries()
    from prefect.settings import temporary_settings

    if uses_remote_server():
        yield
        return
    with temporary_settings(updates={
        "flows.heartbeat_frequency": None,
        "server.ephemeral.startup_timeout_seconds": EPHEMERAL_STARTUP_TIMEOUT_S,
    }):
        yield
