"""Prefect settings for runs started from the command line.

Without ``PREFECT_API_URL`` a run uses a temporary local server. On a fresh ``PREFECT_HOME`` that
server can take over 20 s to start (its database is created and migrated), longer than Prefect's
default start-up timeout, so a new user's first demo would fail: we allow it 180 s. The per-flow
heartbeat only helps a server detect crashed runs of deployments (an automation marks a run that stops
beating as crashed); at a flow's end Prefect joins its thread, which sleeps in 1 s steps, so it costs
0-1 s a run: it is off on the temporary server, and for command-line runs against a configured server
unless the user set ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` (environment, profile or ``prefect.toml``;
Prefect's default is 180 s). Deployment runs (``trainflow serve``, workers) keep Prefect's
setting. With ``PREFECT_API_URL`` set, the user's server and other settings are used as they are, once a
quick health check shows the server answers (Prefect alone would retry for minutes). The temporary
server gets a watchdog that stops it when the run is killed (``server_watchdog``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

EPHEMERAL_STARTUP_TIMEOUT_S = 180
#: how long the server at PREFECT_API_URL may take to answer its health check before we give up
HEALTH_TIMEOUT_S = 5.0


def quiet_libraries() -> None:
    """Environment defaults that keep library side effects out of pipeline runs."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # Great Expectations would phone home
    os.environ.setdefault("MPLBACKEND", "Agg")  # plots are written to files; there is no display
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from a local run


def uses_remote_server() -> bool:
    """True when runs report to a server the user runs (PREFECT_API_URL set)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def check_server(url: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Raise TrainflowError unless the Prefect server at ``url`` answers ``GET <url>/health``.

    Prefect itself retries an unreachable server for minutes before failing; one quick request
    turns that into a message saying what to do.
    """
    import httpx

    from trainflow.errors import TrainflowError

    fix = ("Start it with `prefect server start`, correct PREFECT_API_URL, or unset PREFECT_API_URL "
           "to run on a temporary local server.")
    try:
        response = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as exc:
        raise TrainflowError(f"The Prefect server at {url} (PREFECT_API_URL) is unreachable: "
                             f"{type(exc).__name__}: {exc}. {fix}") from None
    if response.status_code != 200:
        raise TrainflowError(f"The Prefect server at {url} (PREFECT_API_URL) answered its health check with "
                             f"HTTP {response.status_code}; is it a Prefect API URL (ending in /api)? {fix}")


class HideUserErrorTracebacks(logging.Filter):
    """Log a spec or data error as its message alone: a traceback into the engine does not help
    someone whose CSV has a typo (the exception type and message stay in the log line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from trainflow.errors import TrainflowError

        if record.exc_info and isinstance(record.exc_info[1], TrainflowError):
            record.exc_info = None
            record.exc_text = None
        return True


def hide_user_error_tracebacks() -> None:
    """Install :class:`HideUserErrorTracebacks` on the loggers Prefect reports run failures with."""
    for name in ("prefect.task_runs", "prefect.flow_runs", "prefect.task_engine", "prefect.flow_engine"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, HideUserErrorTracebacks) for f in logger.filters):
            logger.addFilter(HideUserErrorTracebacks())


def heartbeat_chosen() -> bool:
    """True when the user set the flow-run heartbeat (environment, profile, ``prefect.toml``), rather
    than leaving Prefect's default."""
    from prefect.settings import get_current_settings

    return "heartbeat_frequency" in get_current_settings().flows.model_fields_set


@contextlib.contextmanager
def prefect_settings() -> Iterator[None]:
    """Settings for a CLI run: local-run tuning unless a server is configured; no flow-run heartbeat
    unless the user asked for one."""
    quiet_libraries()
    hide_user_error_tracebacks()
    from prefect.settings import get_current_settings, temporary_settings

    if uses_remote_server():
        check_server(str(get_current_settings().api.url))
        updates: dict[str, object] = {} if heartbeat_chosen() else {"flows.heartbeat_frequency": None}
    else:  # a temporary server ends with the process: nothing would read a heartbeat
        from trainflow.flows import server_watchdog

        server_watchdog.install()  # ... even when the process is killed outright
        updates = {"flows.heartbeat_frequency": None,
                   "server.ephemeral.startup_timeout_seconds": EPHEMERAL_STARTUP_TIMEOUT_S}
    with temporary_settings(updates=updates) if updates else contextlib.nullcontext():
        yield
