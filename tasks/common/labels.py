"""Targets from stored label text: class indices in a fixed order, or regression floats. Every
modality that stores its labels as text (sequences, audio) reads them back with :func:`targets`."""

from __future__ import annotations

from typing import Any

import numpy as np

from trainflow.errors import DataError, shown


def targets(y: np.ndarray, task: str, source: str, classes: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Class indices (classification) or floats (regression) from the stored label text."""
    if task == "classification":
        classes = classes or sorted({str(v) for v in y}, key=_label_key)
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index.get(str(v), -1) for v in y], dtype=np.int64), classes
    try:
        return y.astype(np.float64), []
    except ValueError:
        bad = next(v for v in y if not _is_number(v))
        raise DataError(f"'{source}': the regression target {shown(bad)} is not a number.") from None


def look_alike(y: Any) -> list[list[str]]:
    """Groups of distinct class labels that differ only by case or surrounding spaces ('Adelie' and
    'adelie '): each is a class of its own, which is rarely what the data meant."""
    import pandas as pd

    seen: dict[str, set[str]] = {}
    for v in {str(v) for v in pd.unique(np.asarray(y, dtype=object)) if v is not None and v == v}:  # (NaN != NaN)
        seen.setdefault(v.strip().casefold(), set()).add(v)
    return sorted(sorted(g) for g in seen.values() if len(g) > 1)


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _label_key(v: str) -> tuple[int, Any]:
    return (0, float(v)) if _is_number(v) else (1, v)
