"""Result storage for cached tasks that hands Prefect only records of trainflow's own shape.

A Prefect result record names its own serializer (``pickle`` unpickles, a JSON record's
``object_decoder`` or ``__class__`` names anything to import), and ``<out>/.cache`` is a folder people
share, so a record is checked *before* Prefect reads it: the JSON serializer exactly as trainflow
writes it, no expiration or storage block, and a result that is one of trainflow's references
(:mod:`trainflow.refs`) valid against its schema, with no other ``__class__`` or ``__exc_type__``
anywhere. A record that fails is a cache miss with a warning naming it: the task runs again and
overwrites it.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from prefect.filesystems import LocalFileSystem
from pydantic import ValidationError
from prefect.serializers import JSONSerializer

from trainflow.files import path_problem
from trainflow.refs import DataRef, ModelRef, SplitRef

#: the result types of the cached tasks (split, fit) and the loaded dataset
RESULT_TYPES = {f"trainflow.refs.{cls.__name__}": cls for cls in (DataRef, SplitRef, ModelRef)}

#: a record is a few KB (a reference and its metadata); anything far larger is not one we wrote
MAX_RECORD_BYTES = 8 * 1024 * 1024

_METADATA_KEYS = {"storage_key", "expiration", "serializer", "prefect_version", "storage_block_id"}
_log = logging.getLogger(__name__)


def _expected_serializer() -> dict[str, Any]:
    return JSONSerializer().model_dump(mode="json")


def _no_hooks(node: Any, top: bool = True) -> None:
    """Refuse ``__class__`` / ``__exc_type__`` anywhere but the top of the result."""
    if isinstance(node, dict):
        if "__exc_type__" in node:
            raise ValueError("it names an exception type")
        if "__class__" in node and not top:
            raise ValueError("it names a class inside the result")
        for value in node.values():
            _no_hooks(value, top=False)
    elif isinstance(node, list):
        for value in node:
            _no_hooks(value, top=False)


def record_problem(content: bytes) -> str | None:
    """Why ``content`` is not a result record trainflow wrote (None when it is one). Nothing in it
    is imported or run: it is parsed as plain JSON and the result validated with its schema."""
    try:
        record = json.loads(content)
        if not isinstance(record, dict) or set(record) != {"metadata", "result"}:
            return "it is not a result record of the expected shape"
        meta = record["metadata"]
        if not isinstance(meta, dict) or not set(meta) <= _METADATA_KEYS or "serializer" not in meta:
            return "its metadata is not of the expected shape"
        if meta["serializer"] != _expected_serializer():
            kind = meta["serializer"].get("type") if isinstance(meta["serializer"], dict) else None
            return ("it names a serializer other than trainflow's JSON one"
                    + (f" (type {str(kind)[:40]!r})" if isinstance(kind, str) else ""))
        if meta.get("expiration") is not None or meta.get("storage_block_id") is not None:
            return "it names an expiration or a storage block, which trainflow never writes"
        if not isinstance(record["result"], str):
            return "its result is not a JSON text"
        result = json.loads(record["result"])
        if not isinstance(result, dict) or set(result) != {"__class__", "data"}:
            return "its result is not a trainflow reference"
        cls = RESULT_TYPES.get(result["__class__"]) if isinstance(result["__class__"], str) else None
        if cls is None:
            return "its result names a class that is not a trainflow reference"
        _no_hooks(result["data"], top=False)
        cls.model_validate(result["data"])
    except json.JSONDecodeError:
        return "it is not valid JSON"
    except ValidationError:
        return "its reference does not match trainflow's schema"
    except ValueError as exc:  # from _no_hooks: a fixed message, never the input
        return str(exc)
    except RecursionError:
        return "it is nested too deeply"
    return None


def _warn(message: str) -> None:
    try:
        from prefect.logging import get_run_logger

        get_run_logger().warning(message)
    except Exception:  # outside a run (a test reading a record directly)
        _log.warning(message)


class CheckedResults(LocalFileSystem):
    """A :class:`~prefect.filesystems.LocalFileSystem` whose reads return only records that pass
    :func:`record_problem`; any other raises, which Prefect's cache lookup treats as a miss."""

    _block_type_slug = "trainflow-checked-results"

    def _checked(self, path: str) -> bytes:
        full = self._resolve_path(path)
        problem = path_problem(full)
        if problem is None and os.stat(full).st_size > MAX_RECORD_BYTES:
            problem = f"is larger than {MAX_RECORD_BYTES // 2**20} MB"
        if problem is None:
            with open(full, "rb") as fh:
                content = fh.read(MAX_RECORD_BYTES + 1)
            problem = record_problem(content)
            problem = problem and f"cannot be used: {problem}"
        else:
            problem = None if problem == "does not exist" else problem
            if problem is None:
                raise ValueError(f"Path {full} does not exist.")
        if problem:
            _warn(f"The cached result record '{full}' {problem}; treating it as a cache miss and recomputing.")
            raise ValueError(f"untrusted result record '{full}'")
        return content

    def read_path(self, path: str, **_: Any) -> bytes:  # type: ignore[override]
        """The record at ``path`` once it passes :func:`record_problem` (ValueError otherwise)."""
        return self._checked(path)

    async def aread_path(self, path: str) -> bytes:  # type: ignore[override]
        """Async form of :meth:`read_path`."""
        return self._checked(path)
