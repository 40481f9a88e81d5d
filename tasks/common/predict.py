"""Prediction with a saved run: ``trainflow predict <run-folder> <input> --out <file>``."""

from __future__ import annotations

import json
import os
from pathlib import Path

from trainflow.errors import DataError
from trainflow import modality as modalities


def resolve_run(model: str | os.PathLike) -> Path:
    """The run folder to predict with; it must be a complete run (with metrics.json)."""
    path = Path(model)
    if not (path / "metrics.json").is_file():
        raise DataError(f"'{path}' is not a finished run folder (no metrics.json); "
                        f"expected <out>/<pipeline>/<run-id>.")
    return path


def predict_to_file(model: str | os.PathLike, input_path: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Predict for ``input_path`` and write a CSV to ``out`` atomically; returns ``out``."""
    run_dir = resolve_run(model)
    summary = json.loads((run_dir / "metrics.json").read_text())
    # the modality the spec decided; runs published before it was recorded name their loader only
    name = summary.get("modality") or modalities.modality_of_loader(summary["spec"]["data"]["loader"])
    frame = modalities.get(name).predict(run_dir, input_path)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    frame.to_csv(tmp, index=False)
    os.replace(tmp, out)
    return out
