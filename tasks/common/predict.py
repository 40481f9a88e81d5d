"""Prediction with a saved run: ``trainflow predict <run-folder> <input> --out <file>``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from trainflow import modality as modalities
from trainflow.errors import DataError, did_you_mean


def resolve_run(model: str | os.PathLike) -> Path:
    """The run folder to predict with; it must be a complete run (with metrics.json)."""
    path = Path(model)
    if not (path / "metrics.json").is_file():
        raise DataError(f"'{path}' is not a finished run folder (no metrics.json); "
                        f"expected <out>/<pipeline>/<run-id>.")
    return path


PARQUET_SUFFIXES = (".parquet", ".pq")


def passthrough(df: Any, id_column: str | None, keep: list[str] | tuple[str, ...], source: str | os.PathLike,
                from_spec: bool = False) -> Any:
    """The id and pass-through columns of the input rows, in that order; DataError naming a missing one."""
    named = [(id_column, "the training spec's data.id" if from_spec else "--id")] if id_column else []
    named += [(c, "--keep") for c in keep]
    columns: list[str] = []
    for col, option in named:
        if col not in df.columns:
            raise DataError(f"The input file '{source}' has no column '{col}' ({option}){did_you_mean(col, df.columns)}. "
                            f"Its columns are: {', '.join(map(str, df.columns))}.")
        if col not in columns:
            columns.append(col)
    return df[columns]


def predict_to_file(model: str | os.PathLike, input_path: str | os.PathLike, out: str | os.PathLike,
                    id_column: str | None = None, keep: list[str] | tuple[str, ...] = ()) -> Path:
    """Predict for ``input_path`` and write the predictions to ``out`` atomically: Parquet for a ``.parquet``
    or ``.pq`` name, CSV otherwise. ``id_column`` and ``keep`` (tables only) are copied from the input."""
    run_dir = resolve_run(model)
    summary = json.loads((run_dir / "metrics.json").read_text())
    # the modality the spec decided; runs published before it was recorded name their loader only
    name = summary.get("modality") or modalities.modality_of_loader(summary["spec"]["data"]["loader"])
    mod = modalities.get(name)
    if id_column or keep:
        if not mod.predict_passes_columns:
            raise DataError(f"--id and --keep apply to tables; the model of '{run_dir}' reads {name} data, whose "
                            "predictions already name each item (file or series).")
        frame = mod.predict(run_dir, input_path, id_column=id_column, keep=keep)
    else:
        frame = mod.predict(run_dir, input_path)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() in PARQUET_SUFFIXES:
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    os.replace(tmp, out)
    return out
