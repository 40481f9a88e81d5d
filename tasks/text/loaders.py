"""The text loaders: ``text_table`` (a text column of a CSV/TSV/Parquet table) and ``text_folder``
(one subfolder of ``.txt`` files per class).

Each returns a DataFrame with the columns ``text`` and ``label`` (absent when unlabelled) plus the
columns kept for the prediction output; a missing file, column or class folder, text that is not
valid in the given encoding, or a table whose texts are all empty is a DataError naming it.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainflow.errors import DataError
from trainflow.files import read_text_capped
from trainflow.registry import component
from trainflow.tasks.common.load import Encoding, existing_file, read_csv_file, read_parquet_file, require_column

TEXT, LABEL = "text", "label"


class TextTableConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="CSV, TSV (.tsv/.tab) or Parquet file")
    text: str = Field("text", description="Column holding the documents")
    target: str | None = Field(None, description="Column holding the labels")
    targets: list[str] | None = Field(None, description="Multi-label: the 0/1 label columns (task: multilabel)")
    separator: str | None = Field(None, description="Multi-label: 'target' holds labels joined by this, e.g. '|'")
    keep: list[str] = Field([], description="Columns copied beside the predictions (e.g. an id)")
    delimiter: str | None = Field(None, description="Field delimiter; default: tab for .tsv/.tab, else ','")
    quoting: Literal["minimal", "none"] = Field(
        "minimal", description="minimal: fields may be quoted; none: quote marks are text (unquoted TSV)")
    encoding: Encoding = Field("utf-8", description="Text encoding of a CSV/TSV file")


class TextFolderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="Folder with one subfolder of .txt files per class")
    encoding: Encoding = Field("utf-8", description="Text encoding of the .txt files")


def reading_options(config: Any) -> dict[str, Any]:
    """How a text table was read (delimiter, quoting, encoding), kept with the model so that
    ``predict`` reads new documents the same way; {} for a folder of .txt files."""
    if not isinstance(config, TextTableConfig):
        return {}
    return {"delimiter": config.delimiter, "quoting": config.quoting, "encoding": config.encoding}


def read_text_table(path: Path, config: TextTableConfig, what: str = "data file", blank_rows: bool = False) -> Any:
    """The table at ``path`` read as text columns (no value is turned into a number or a gap);
    ``blank_rows``: a blank line of a one-column table is an empty document, not skipped (predict
    answers every row it is given)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return read_parquet_file(path, what=what)
    delimiter = config.delimiter or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    quoting = csv.QUOTE_NONE if config.quoting == "none" else csv.QUOTE_MINIMAL
    return read_csv_file(path, delimiter, config.encoding, na_values=[""], what=what, quoting=quoting,
                         blank_rows=blank_rows)


@component("loader", "text_table", TextTableConfig, modality="text", split_key=True)
def load_text_table(config: TextTableConfig, split: Any = None) -> Any:
    """Documents in a column of a CSV/TSV/Parquet table, a label column, and kept columns (and the
    column of ``split`` when it names one, under ``holdout.KEY``)."""
    from trainflow.tasks.common import holdout

    path = existing_file(config.path)
    df = read_text_table(path, config)
    key = holdout.key_values(df, split, path) if split is not None and split.key else None
    for col, option in [(config.text, "data.text"), *([(config.target, "data.target")] if config.target else []),
                        *((c, "data.targets") for c in config.targets or []), *((c, "data.keep") for c in config.keep)]:
        require_column(df, col, path, option)
    out = df[list(config.keep)].copy()
    out.insert(0, TEXT, df[config.text].fillna("").astype(str))
    if not out[TEXT].str.strip().any():
        raise DataError(f"Every text of the column '{config.text}' of '{path}' is empty (data.text).")
    if key is not None:
        out[holdout.KEY] = key
    if config.targets or config.separator:  # multi-label: one 0/1 column per label after the text
        from trainflow.tasks.common.multilabel import labels_from_columns

        labelled = [c for c in (config.targets or [config.target]) if c]
        out = out.join(df[[c for c in labelled if c not in out.columns]])
        return labels_from_columns(out, config.targets, config.target, config.separator, path)
    if config.target:
        out.insert(1, LABEL, df[config.target].where(df[config.target].notna(), None).astype(object))
    return out


@component("loader", "text_folder", TextFolderConfig, modality="text")
def load_text_folder(config: TextFolderConfig) -> Any:
    """A folder of class subfolders of ``.txt`` documents; the subfolder names are the labels."""
    import pandas as pd

    root = Path(config.path)
    if not root.is_dir():
        raise DataError(f"The text folder '{root}' does not exist or is not a folder (data.path).")
    rows = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(sub.glob("*.txt")):
            rows.append({TEXT: read_text_file(file, config.encoding), LABEL: sub.name,
                         "file": str(file.relative_to(root))})
    if not rows:
        raise DataError(f"The text folder '{root}' holds no class subfolders with .txt files (data.path): "
                        f"expected {root}/<class>/<document>.txt.")
    return pd.DataFrame(rows)


def read_text_file(file: Path, encoding: str) -> str:
    """One document; DataError naming the file when it is not valid ``encoding`` text."""
    try:
        return read_text_capped(file, "text file", encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"The text file '{file}' is not valid {encoding} text ({exc.reason} at byte {exc.start}); "
                        f"set data.encoding to the file's encoding (for trainflow predict: save it as {encoding}).") from None
