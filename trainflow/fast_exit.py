"""Leaving the process at the end of a command without Python's teardown (the ``trainflow`` console
script; the benchmarks' child runs exit the same way)."""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn


def exit_without_teardown(run: Callable[[], int | None]) -> NoReturn:
    """Call ``run`` and exit with its status, skipping the interpreter's teardown.

    Once a run has imported Prefect, Great Expectations, scikit-learn and torch, Python's teardown
    (freeing every module's objects one by one) costs 0.5-2 s of CPU for nothing. The exit
    handlers registered after this call (Prefect's log and event flushes, temporary folders, the
    temporary server's shutdown) still run first: this one, registered first, runs last.
    """
    status: list[Any] = [1]  # an uncaught exception exits with 1, as Python does
    atexit.register(_exit_now, status)
    try:
        status[0] = run()
    except SystemExit as exc:  # argparse's errors and --help
        status[0] = exc.code
        raise
    sys.exit(status[0])


def _exit_now(status: list[Any]) -> NoReturn:
    code = status[0]
    if "logging" in sys.modules:  # handlers left open by libraries: flush them as the teardown would
        import logging

        logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # closed or replaced streams
            pass
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)
