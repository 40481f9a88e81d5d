"""Small typed records that tasks pass to each other instead of the data itself.

A reference is a path plus a content digest; the digest makes cache keys cheap and exact, and the
data stays on disk in a format made for it (Parquet, ``.npz``, skops, safetensors).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataRef(Ref):
    """A dataset on disk: ``path`` (file or folder), its ``digest``, and a few facts about it."""

    path: str
    digest: str
    modality: str
    meta: dict[str, Any] = {}


class SplitRef(Ref):
    """Train and test parts of a dataset."""

    train: DataRef
    test: DataRef
    meta: dict[str, Any] = {}


class ModelRef(Ref):
    """A fitted model: a folder holding the model file(s), and the digest of their content."""

    path: str
    digest: str
    modality: str
    meta: dict[str, Any] = {}


class Evaluation(Ref):
    """Scores on the held-out split, plus what the report shows."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, int | float]] = {}  # int keeps "support" a count
    confusion: dict[str, Any] = {}
    plots: dict[str, str] = {}  # title -> PNG path
    tables: dict[str, list[dict[str, Any]]] = {}  # title -> rows
    notes: list[str] = []


def file_digest(path: str | os.PathLike, h: Any = None) -> str:
    """SHA-256 of a file's bytes (or of every file under a folder, with their relative names)."""
    path = Path(path)
    h = h or hashlib.sha256()
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(child.relative_to(path)).encode())
            _update_file(h, child)
    else:
        _update_file(h, path)
    return h.hexdigest()


def _update_file(h: Any, path: Path) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def json_digest(obj: Any) -> str:
    """SHA-256 of an object's canonical JSON form."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def store_parquet(df: Any, cache_dir: str | os.PathLike, digest: str) -> Path:
    """Write a DataFrame once to ``<cache>/data/<digest>.parquet`` (atomically); return the path."""
    path = Path(cache_dir) / "data" / f"{digest}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file so that readers see the old content or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
