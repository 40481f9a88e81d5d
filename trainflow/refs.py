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

from trainflow import memo


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
    """Write a DataFrame once to ``<cache>/data/<digest>.parquet`` (atomically); return the path.

    The frame is remembered (see :mod:`trainflow.memo`), so the next stage in this process does not
    read the file back.
    """
    path = Path(cache_dir) / "data" / f"{digest}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        write_parquet(df, tmp)
        os.replace(tmp, path)
    memo.remember(path, df)
    return path


def write_parquet(df: Any, path: str | os.PathLike) -> None:
    """``df.to_parquet`` without an index, dictionary-encoding only the columns that are not floats:
    measured floats rarely repeat, and trying a dictionary on each float column costs a third of
    the write time for nothing."""
    import pandas as pd

    dictionary = [str(c) for c in df.columns if not pd.api.types.is_float_dtype(df[c])]
    df.to_parquet(path, index=False, use_dictionary=dictionary or False)


def read_parquet(path: str | os.PathLike, keep: bool = True) -> Any:
    """The table in a Parquet file: the frame this process wrote or read there if it is unchanged,
    else read from disk. ``keep=False`` when the caller is the last stage that needs it. Callers
    must not modify the frame in place."""
    df = memo.recall(path, keep=keep)
    if df is None:
        import pandas as pd

        df = pd.read_parquet(path)
        if keep:
            memo.remember(path, df)
    return df


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file so that readers see the old content or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
