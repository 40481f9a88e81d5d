"""Warnings meant for the user: in the Prefect run log at WARNING level, or on stderr outside a run."""

from __future__ import annotations

import logging
import sys


def warn(message: str) -> None:
    """Log ``message`` as a warning of the current Prefect task or flow run; outside one (``trainflow predict``)
    print it on stderr as ``trainflow: warning: ...`` and pass it to the ``trainflow`` logger if it has a handler."""
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
