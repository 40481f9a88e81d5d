"""Manifests: a CSV naming each item's file, its label (or labels) and optionally its split.

The ``audio_manifest`` and ``image_manifest`` loaders share this: the columns they take
(:class:`ManifestColumns`), reading and checking the CSV (:func:`read_manifest`: a missing column,
label or file is a DataError naming the CSV, the row and the column), and the files a manifest
names for the load digest (:func:`manifest_files`: an edited image or clip is new data though the
CSV is unchanged), and predict's side: the columns a model keeps (:func:`saved_columns`) so that
:func:`read_new_manifest` reads a CSV of new items as the training manifest was read. Decoding the
files is the loader's own business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.errors import DataError
from trainflow.files import path_problem


class ManifestColumns(BaseModel):
    """The options every manifest loader shares (mixed into its options beside ``path``)."""

    model_config = ConfigDict(extra="forbid")
    file: str = Field("file", description="Column with the file path (relative to 'root')")
    label: str | None = Field("label", description="Column with the label (null: unlabelled)")
    targets: list[str] | None = Field(None, description="Multi-label: the 0/1 label columns (task: multilabel); "
                                                        "'label' is then not read")
    separator: str | None = Field(None, description="Multi-label: 'label' holds labels joined by this, e.g. '|'")
    split: str | None = Field(None, description="Deprecated: use the spec's 'split: {column: ..., test: [...]}'. "
                                                "Column that marks the fixed split (its test rows: 'test_value')")
    test_value: str = Field("test", description="Deprecated with 'split': value of the split column that marks a "
                                                "test item")
    root: str | None = Field(None, description="Folder the file paths are relative to; default: the CSV's folder")


@dataclass
class Manifest:
    """A checked manifest: per row the file as written and as resolved, the label (single-label) or a
    row of ``label_matrix`` (multi-label), whether it is a test row, and why its file cannot be read
    (None when it can be tried)."""

    path: Path
    names: list[str]
    files: list[Path]
    problems: list[str | None]
    labels: list[str] | None = None
    label_matrix: np.ndarray | None = None
    label_names: list[str] = field(default_factory=list)
    is_test: np.ndarray | None = None
    keys: np.ndarray | None = None  # the values of the spec's split column or group (tasks/common/holdout.py)
    table: Any = None  # the CSV as read (a DataFrame)

    def row_text(self, row: int, column: str) -> str:
        """``(row 3, column 'file')`` for messages; rows count from 1 as in a spreadsheet's data rows."""
        return f"(row {row + 1}, column '{column}')"


def manifest_root(config: Any, path: Path) -> Path:
    """The folder the manifest's file paths are relative to: ``root``, else the CSV's folder."""
    return Path(config.root).expanduser() if config.root else path.parent


def read_manifest(config: Any, what: str, file_problem: Callable[[Path], str | None] = path_problem,
                  strict: bool = True, file_option: str = "data.file", split: Any = None) -> Manifest:
    """The manifest ``config.path`` read and checked against ``config`` (:class:`ManifestColumns`).

    DataError naming the CSV when it is missing or empty, a column it lacks, or (naming the row and
    column) a row without a file name or without a label. ``what`` names the files in messages
    ("audio file"); ``file_problem`` says why a file cannot be read before decoding it: with
    ``strict`` the first such file is a DataError, else it is left in ``problems`` for the loader to
    skip and report. ``file_option`` names the file column's setting in messages."""
    from trainflow.tasks.common.load import existing_file, read_csv_file
    from trainflow.tasks.common.load import require_column

    path = existing_file(config.path)
    df = read_csv_file(path, na_values=[""], what="manifest")
    label = None if config.targets else config.label
    for col, option in [(config.file, file_option), *([(label, "data.label")] if label else []),
                        *((c, "data.targets") for c in config.targets or []),
                        *([(config.split, "data.split")] if config.split else [])]:
        require_column(df, col, path, option)
    m = Manifest(path=path, names=[], files=[], problems=[], table=df)
    root = manifest_root(config, path)
    for row, name in enumerate(df[config.file]):
        if isinstance(name, float) and np.isnan(name):
            raise DataError(f"The manifest '{path}' has no file name in row {row + 1} (column '{config.file}').")
        m.names.append(str(name))
        m.files.append(root / str(name))
        problem = file_problem(m.files[-1])
        if problem and strict:
            raise DataError(f"The manifest '{path}' names the {what} '{name}' {m.row_text(row, config.file)}, "
                            f"which {problem} (looked for '{m.files[-1]}').")
        m.problems.append(problem)
    if config.targets or config.separator:  # the tabular parsing: 0/1 columns, or one delimited column
        from trainflow.tasks.common.multilabel import labels_from_columns

        marked = labels_from_columns(df.copy(), config.targets, config.label, config.separator, path)
        m.label_names = marked.attrs["labels"]
        m.label_matrix = marked[m.label_names].to_numpy()
    elif config.label:
        if df[config.label].isna().any():
            row = int(np.flatnonzero(df[config.label].isna().to_numpy())[0])
            raise DataError(f"The manifest '{path}' has no label in row {row + 1} (column '{config.label}').")
        m.labels = df[config.label].astype(str).tolist()
    if split is not None and split.key:
        from trainflow.tasks.common import holdout

        m.keys = holdout.key_values(df, split, path)
    if getattr(config, "split", None):
        from trainflow.alerts import warn

        warn(f"data.split / data.test_value are deprecated and go in the next release: write "
             f"'split: {{column: {config.split}, test: [{config.test_value}]}}' in the spec instead.")
        m.is_test = (df[config.split].astype(str) == config.test_value).to_numpy()
    return m


def manifest_files(config: BaseModel) -> list[Path]:
    """The files a manifest names (a loader's ``source_files``, for the load task's digest: the CSV
    alone would not notice an edited file); [] for other loaders, whose folders are digested whole."""
    if not isinstance(config, ManifestColumns):
        return []
    from trainflow.tasks.common.load import read_csv_file

    path = Path(config.path)
    if path_problem(path):
        return []
    try:
        df = read_csv_file(path, na_values=[""], what="manifest")
    except DataError:
        return []  # the loader reports it
    root = manifest_root(config, path)
    return [root / str(f) for f in df.get(config.file, [])]


class NewItems(ManifestColumns):
    """A CSV of new items to predict: the files only (labels, if any, are not needed)."""

    path: str
    label: str | None = None


def saved_columns(loader_options: dict[str, Any]) -> dict[str, Any]:
    """What predict needs of the training manifest's columns (saved in the model's config): the file
    column, and the delimited label column with its separator (multi-label); {} when the model was
    not trained on a manifest."""
    if "file" not in loader_options:
        return {}
    return {k: loader_options.get(k) for k in ("file", "label", "separator")}


def read_new_manifest(path: Path, saved: dict[str, Any] | None, what: str,
                      file_problem: Callable[[Path], str | None] = path_problem) -> Manifest:
    """The manifest of new items to predict: each row's file in the column the model was trained with
    (``saved``: :func:`saved_columns`; column 'file' for a model trained on another loader or saved
    before the column was recorded), relative to the CSV's folder. DataError naming the CSV, and its
    columns, when it lacks that column; naming the row when a file is missing (as :func:`read_manifest`)."""
    column = (saved or {}).get("file") if isinstance(saved, dict) or not saved else saved
    if column is not None and (not isinstance(saved, dict) or not isinstance(column, str) or not column.strip()):
        # a model folder is shared: a hand-edited config is refused by name, not met with a type error
        raise DataError(f"The model's config names its training manifest's file column as {column!r}; expected "
                        "a column name. Re-run the pipeline to save the model again.")
    column = column or "file"
    option = ("the file column of the model's training manifest, data.file" if saved
              else "the file column predict reads")
    return read_manifest(NewItems(path=str(path), file=column), what, file_problem, file_option=option)
