"""Prediction with a saved run: ``trainflow predict <run-folder> <input> --out <file>``."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from trainflow.errors import DataError, OutputError
from trainflow.files import path_problem
from trainflow.modality import modality


def resolve_run(model: str | os.PathLike) -> Path:
    """The run folder to predict with; it must be a complete run (with metrics.json)."""
    path = Path(model)
    if not (path / "metrics.json").is_file():
        raise DataError(f"'{path}' is not a finished run folder (no metrics.json); "
                        f"expected <out>/<pipeline>/<run-id>.")
    return path


def predict_to_file(model: str | os.PathLike, input_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Predict for ``input_path`` and write a CSV to ``out`` atomically; returns ``out``.

    Raises DataError for an input that is missing or not a file or folder (checked before reading
    it), OutputError when ``out`` cannot be written; a failed write leaves no partial file.
    """
    run_dir = resolve_run(model)
    problem = path_problem(input_path, folder_ok=True)
    if problem:
        raise DataError(f"The input '{input_path}' {problem}.")
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"The predictions file '{out}' (--out) is a folder; give a file name such as "
                          f"'{out / 'predictions.csv'}'.")
    summary = json.loads((run_dir / "metrics.json").read_text())
    kind = summary.get("spec", {}).get("data", {}).get("loader", "csv")
    from trainflow.registry import REGISTRY

    frame = modality(REGISTRY.get("loader", kind).modality or "tabular").predict(run_dir, input_path)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(tmp, index=False)
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"Cannot write the predictions file '{out}' (--out): {exc.strerror or exc}.") from None
    finally:
        with contextlib.suppress(OSError):  # gone once replaced; never leave a half-written file behind
            tmp.unlink()
    return out
