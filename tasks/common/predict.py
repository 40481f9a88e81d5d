"""Prediction with a saved run: ``trainflow predict <run-folder> <input> --out <file>``."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from trainflow import modalities
from trainflow import resources, trust
from trainflow.errors import DataError, OutputError, did_you_mean
from trainflow.files import path_problem, replace_problem
from trainflow.tasks.common.batch_reads import one_read


def resolve_run(model: str | os.PathLike) -> Path:
    """The run folder to predict with; it must be a complete run (with metrics.json)."""
    path = Path(model)
    if not (path / "metrics.json").is_file():
        raise DataError(f"'{path}' is not a finished run folder (no metrics.json); "
                        f"expected <out>/<pipeline>/<run-id>.")
    return path


PARQUET_SUFFIXES = (".parquet", ".pq")


def passthrough_columns(id_column: str | None, keep: list[str] | tuple[str, ...],
                        outputs: list[str] | tuple[str, ...] = (), from_spec: bool = False) -> list[tuple[str, str]]:
    """The id and pass-through columns, each once, with the option that named it. DataError when one is
    named like a column of the predictions (``outputs``): the output would hold two columns of that name.
    Needs no input rows, so it is checked before any is read."""
    named = [(id_column, "the training spec's data.id" if from_spec else "--id")] if id_column else []
    named += [(c, "--keep") for c in keep]
    columns: list[tuple[str, str]] = []
    for col, option in named:
        if col in outputs:
            raise DataError(f"The column '{col}' ({option}) has the name of a column the predictions are written "
                            f"to ({', '.join(map(repr, outputs))}); the output would hold two columns '{col}'. "
                            f"Rename it in the input, or leave it out of {option}.")
        if col not in (c for c, _ in columns):
            columns.append((col, option))
    return columns


def passthrough(df: Any, columns: list[tuple[str, str]], source: str | os.PathLike) -> Any:
    """The input rows' ``columns`` (from :func:`passthrough_columns`), in that order; DataError naming
    a missing one and the option that asked for it."""
    for col, option in columns:
        if col not in df.columns:
            raise DataError(f"The input file '{source}' has no column '{col}' ({option}){did_you_mean(col, df.columns)}. "
                            f"Its columns are: {', '.join(map(str, df.columns))}.")
    return df[[c for c, _ in columns]]


def predict_to_file(model: str | os.PathLike, input_path: str | os.PathLike, out: str | os.PathLike,
                    id_column: str | None = None, keep: list[str] | tuple[str, ...] = ()) -> Path:
    """Predict for ``input_path`` and write the predictions to ``out`` atomically: Parquet for a ``.parquet``
    or ``.pq`` name, CSV otherwise; returns ``out``. ``id_column`` and ``keep`` (tables only) are copied
    from the input. Raises DataError for an input that is missing or not a file or folder (checked before
    reading it), OutputError when ``out`` cannot or must not be written (:func:`output_file`); a failed
    write leaves no partial file.
    """
    return _write(*_predictions(model, input_path, out, id_column, keep)[1:])


def predict_with_drift(model: str | os.PathLike, input_path: str | os.PathLike, out: str | os.PathLike,
                       id_column: str | None = None, keep: list[str] | tuple[str, ...] = ()) -> tuple[Path, Any]:
    """:func:`predict_to_file`, then the batch compared with the run's reference profile: the drift table
    and plot beside ``out`` (``<out stem>.drift.csv`` / ``.png``); returns ``out`` and the
    :class:`~trainflow.tasks.common.drift.DriftCheck`."""
    from trainflow.tasks.common import drift

    with one_read():  # the drift check summarises the batch predict has just decoded
        mod, frame, out = _predictions(model, input_path, out, id_column, keep, with_drift=True)
        run_dir = resolve_run(model)
        check = drift.check_batch(mod, run_dir, input_path, frame, out.parent, stem=drift_stem(out))
    return _write(frame, out), check


def _predictions(model: str | os.PathLike, input_path: str | os.PathLike, out: str | os.PathLike,
                 id_column: str | None, keep: list[str] | tuple[str, ...],
                 with_drift: bool = False) -> tuple[Any, Any, Path]:
    """The modality, the predictions frame and the checked output path."""
    run_dir = resolve_run(model)
    problem = path_problem(input_path, folder_ok=True)
    if problem:
        raise DataError(f"The input '{input_path}' {problem}.")
    out = output_file(out, input_path, run_dir, with_drift)
    try:  # before predicting: the drift report goes beside the predictions, and neither may fail late
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot write the predictions file '{out}' (--out): {exc.strerror or exc}.") from None
    mod = saved_modality(run_dir / "metrics.json")
    name = mod.name
    if (id_column or keep) and not mod.predict_passes_columns:
        raise DataError(f"--id and --keep apply to tables; the model of '{run_dir}' reads {name} data, whose "
                        "predictions already name each item (file or series).")
    columns = {"id_column": id_column, "keep": keep} if id_column or keep else {}
    with resources.using(resources.available()):  # this machine's cores, not the training run's count
        frame = mod.predict(run_dir, input_path, **columns)
    return mod, frame, out


def drift_stem(out: Path) -> str:
    """The prefix of the drift report's names beside ``out`` (``p.csv`` -> ``p.drift.csv``, ``p.drift.png``)."""
    return f"{out.stem}."


def output_file(out: str | os.PathLike, input_path: str | os.PathLike, run_dir: Path, with_drift: bool) -> Path:
    """``out`` as a path, once it (and, ``with_drift``, the drift report beside it) may be written:
    not a folder, not below a file, not an existing FIFO, device or other non-regular file (the
    atomic replace would turn it into a regular file), not the input itself, not inside an input
    folder and not inside the run folder of the model (its files would be replaced). OutputError naming the path otherwise, raised
    before anything is read or written."""
    raw = os.fspath(out)
    out = Path(out)
    if raw.endswith(("/", os.sep)) or out.is_dir():  # Path drops a trailing slash: 'new/' would become a file
        raise OutputError(f"The predictions file '{raw}' (--out) names a folder; give a file name such as "
                          f"'{out / 'predictions.csv'}'.")
    above = next((p for p in out.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise OutputError(f"Cannot write the predictions file '{out}' (--out): '{above}' is a file, not a folder.")
    targets = [(out, f"The predictions file '{out}' (--out)")]
    if with_drift:
        from trainflow.tasks.common.drift import DRIFT_PLOT, DRIFT_TABLE

        targets += [(side, f"The drift report '{side}' (written beside --out '{out}')")
                    for side in (out.with_name(f"{drift_stem(out)}{name}") for name in (DRIFT_TABLE, DRIFT_PLOT))]
    model_folder = os.path.realpath(run_dir)
    # an input folder (images, audio clips): a file written into it replaces an item or becomes one
    input_folder = os.path.realpath(input_path) if os.path.isdir(input_path) else None
    for path, what in targets:
        if input_folder is not None and Path(os.path.realpath(path)).is_relative_to(input_folder):
            raise OutputError(f"{what} lies inside the input folder '{input_path}'; writing it could replace an "
                              f"item being predicted, or be read as one next time. Give an --out outside that folder.")
        problem = replace_problem(path)
        if problem:
            raise OutputError(f"{what} {problem}; trainflow replaces the file it writes, so give an --out "
                              f"that names a regular file or a new one.")
        if _same_file(path, input_path):
            raise OutputError(f"{what} is the input '{input_path}'; writing it would replace the rows being "
                              f"predicted. Give another --out.")
        if Path(os.path.realpath(path)).is_relative_to(model_folder):
            raise OutputError(f"{what} lies inside the run folder '{run_dir}' of the model predicting; writing it "
                              f"could replace a file of the saved model. Give an --out outside that folder.")
    return out


def _same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def _write(frame: Any, out: Path) -> Path:
    """Write the predictions to ``out`` atomically (Parquet or CSV by its name)."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() in PARQUET_SUFFIXES:
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"Cannot write the predictions file '{out}' (--out): {exc.strerror or exc}.") from None
    finally:
        with contextlib.suppress(OSError):  # gone once replaced; never leave a half-written file behind
            tmp.unlink()
    return out


def saved_modality(metrics: Path) -> Any:
    """The modality a run folder's ``metrics.json`` names: the one the spec decided, or, for runs published
    before it was recorded, its loader's. A damaged file (not JSON, the wrong shape, an unknown modality)
    is a DataError naming it (exit 3): it comes from a shared folder, not from the user's spec."""
    from trainflow.errors import SpecError

    summary = trust.read_json(metrics)
    try:
        if not isinstance(summary, dict):
            raise TypeError(f"a JSON {type(summary).__name__}, not an object")
        name = summary.get("modality") or modalities.modality_of_loader(summary["spec"]["data"]["loader"])
        if not isinstance(name, str):
            raise TypeError(f"'modality' is {name!r}")
        return modalities.get(name)
    except (KeyError, TypeError, AttributeError) as exc:
        raise trust.damaged(metrics, exc) from None
    except SpecError as exc:
        raise trust.damaged(metrics, "; ".join(exc.problems)) from None
