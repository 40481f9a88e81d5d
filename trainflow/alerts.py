"""Warnings meant for the user: in the Prefect run log at WARNING level, or on stderr outside a run."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator

_silenced: contextvars.ContextVar[bool] = contextvars.ContextVar("trainflow_alerts_silenced", default=False)


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """No warnings inside the block: for reading again what was just read and warned about (the drift
    check reads the input ``predict`` has read, and would repeat its warnings word for word)."""
    token = _silenced.set(True)
    try:
        yield
    finally:
        _silenced.reset(token)


def warn(message: str) -> None:
    """Log ``message`` as a warning of the current Prefect task or flow run; outside one (``trainflow predict``)
    print it on stderr as ``trainflow: warning: ...`` and pass it to the ``trainflow`` logger if it has a handler."""
    if _silenced.get():
        return
    try:
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger

        try:
            get_run_logger().warning(message)
            return
        except MissingContextError:
            pass
    except ImportError:  # pragma: no cover - prefect is a dependency; keep the module usable without it
        pass
    print(f"trainflow: warning: {message}", file=sys.stderr)
    logger = logging.getLogger("trainflow")
    if logger.hasHandlers():  # without one, Python's last-resort handler would print the line a second time
        logger.warning(message)
