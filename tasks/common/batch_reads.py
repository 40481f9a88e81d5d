"""One batch, read once: ``trainflow predict`` and its drift check read the same input.

Prediction decodes a batch (images, clips) and the drift check that follows summarises the same
batch. Inside :func:`one_read` (the scope of one predict or monitor call) a reader decorated with
:func:`read_once` keeps its result for the same input and options, so the second reader gets the
arrays the first decoded: the drift report then describes exactly the rows that were predicted,
even if the file changed in between, and nothing is decoded twice. Outside the scope nothing is
kept. Kept arrays are made read-only: a reader that changed them in place would change what the
other sees.
"""

from __future__ import annotations

import contextlib
import functools
import json
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

_KEPT: ContextVar[dict[Any, Any] | None] = ContextVar("trainflow_batch_reads", default=None)


@contextlib.contextmanager
def one_read() -> Iterator[None]:
    """The scope in which a batch is read once (left: everything kept is dropped)."""
    token = _KEPT.set({})
    try:
        yield
    finally:
        _KEPT.reset(token)


def read_once(reader: Callable[..., Any]) -> Callable[..., Any]:
    """``reader(path, config)`` that, inside :func:`one_read`, reads each (path, config) once."""

    @functools.wraps(reader)
    def wrapper(path: Path, config: dict[str, Any]) -> Any:
        kept = _KEPT.get()
        if kept is None:
            return reader(path, config)
        key = (reader.__module__, reader.__qualname__, str(Path(path).resolve()),
               json.dumps(config, sort_keys=True, default=str))
        if key not in kept:
            kept[key] = _frozen(reader(path, config))
        return kept[key]

    return wrapper


def _frozen(value: Any) -> Any:
    for item in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(item, np.ndarray):
            item.flags.writeable = False
        elif isinstance(item, list):
            _frozen(item)
    return value
