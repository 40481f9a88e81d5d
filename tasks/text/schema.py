"""The saved schema of a TF-IDF (or embedding) text model (``schema.json``), read back with its shape checked.

A run folder is shared, so the schema is untrusted input like the model file beside it: the keys and
types that prediction uses are checked here, and a schema of another shape is a damaged file naming
it (exit 3), not a KeyError deep in prediction (as ``tasks/tabular/schema.py`` does for tables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainflow import trust
from trainflow.tasks.common.load import Encoding


class _Saved(BaseModel):
    # extra keys (the vocabulary size, tfidf_auto's selection, the embedding) are other readers'
    model_config = ConfigDict(extra="allow", strict=True)


class Reading(_Saved):
    delimiter: str | None = Field(None, min_length=1, max_length=1)
    quoting: Literal["minimal", "none"] = "minimal"
    encoding: Encoding = "utf-8"


class Schema(_Saved):
    task: Literal["classification", "multilabel"] = "classification"
    classes: list[str | int | float | bool] = []
    lowercase: bool
    text_column: str
    keep: list[str] = []
    reading: Reading = Reading()
    labels: list[str] | None = None
    thresholds: list[float] | None = None
    constant_labels: dict[str, float] = {}


def read_schema(path: str | Path) -> dict[str, Any]:
    """The saved schema at ``path`` as fit wrote it; DataError naming the file when it is missing, not
    JSON or not of the shape prediction relies on."""
    raw, schema = trust.read_shaped(path, Schema, "text schema")
    if schema.labels is None and len(schema.classes) < 2:
        raise trust.damaged(path, "a classifier's schema lists fewer than two classes")
    if schema.labels is not None and (schema.thresholds is None or len(schema.thresholds) != len(schema.labels)):
        raise trust.damaged(path, "its labels and thresholds are missing or of different lengths")
    return raw
