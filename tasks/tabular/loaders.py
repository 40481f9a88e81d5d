"""The tabular loaders: ``csv``, ``parquet`` and ``arff``.

Each returns a DataFrame holding the features, the id column and the target; a missing file or
column is a DataError naming it (with a close match among the columns).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainflow.errors import DataError, did_you_mean
from trainflow.registry import component
from trainflow.tasks.common.load import (NA_VALUES, Encoding, SplitFilesConfig, existing_file, read_csv_file,
                                        read_parquet_file)


class TableConfig(BaseModel):
    """Options shared by the tabular loaders."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="File to read")
    target: str | None = Field(None, description="Column to predict")
    features: list[str] | None = Field(None, description="Feature columns; default: every other column")
    drop: list[str] = Field([], description="Columns to ignore")
    id: str | None = Field(None, description="Column naming each row; not a feature, kept in predictions")
    targets: list[str] | None = Field(None, description="Multi-label: the 0/1 label columns (task: multilabel)")
    separator: str | None = Field(None, description="Multi-label: 'target' holds labels joined by this, e.g. '|'")


class CsvConfig(TableConfig):
    delimiter: str = ","
    encoding: Encoding = "utf-8"
    na_values: list[str] = Field(NA_VALUES, description="Markers read as missing")


@component("loader", "csv", CsvConfig, modality="tabular", split_key=True)
def load_csv(config: CsvConfig, split: Any = None) -> Any:
    """A delimited text file with a header line (delimiter, encoding and NA markers configurable)."""
    path = existing_file(config.path)
    df = read_csv_file(path, config.delimiter, config.encoding, config.na_values)
    if len(df.columns) == 1:
        header = str(df.columns[0])
        for other in (",", ";", "\t", "|"):
            if other != config.delimiter and other in header:
                raise DataError(
                    f"The data file '{path}' has a single column with delimiter {config.delimiter!r}, but "
                    f"its header {header[:60]!r} contains {other!r}: set data.delimiter: {other!r}."
                )
    return _select(df, config, path, split)


@component("loader", "parquet", TableConfig, modality="tabular", split_key=True)
def load_parquet(config: TableConfig, split: Any = None) -> Any:
    """An Apache Parquet file."""
    return _select(read_parquet_file(existing_file(config.path)), config, Path(config.path), split)


def unchanged_parquet(df: Any, config: Any) -> Path | None:
    """The file the ``parquet`` loader read ``df`` from, when it reads back as exactly ``df``: every
    column in the file's order under its own name, the default row index and no labels; else None.
    The cache can then copy the file instead of encoding the table again (``refs.store_parquet``)."""
    import pyarrow.parquet as pq

    if type(config) is not TableConfig or df.attrs:
        return None
    if not (df.index.equals(_default_index(len(df))) and df.index.name is None):
        return None
    try:
        schema = pq.read_schema(config.path)
    except Exception:  # not readable as Parquet now: let the table be written out
        return None
    pandas_meta = schema.pandas_metadata or {}
    stored_index = [i for i in pandas_meta.get("index_columns", []) if not isinstance(i, dict)]
    names = [n for n in schema.names if n not in stored_index]
    if stored_index or names != list(df.columns) or any(c.get("name") for c in pandas_meta.get("column_indexes", [])):
        return None
    return Path(config.path)


def _default_index(n: int) -> Any:
    import pandas as pd

    return pd.RangeIndex(n)


def _select(df: Any, config: TableConfig, path: Path, split: Any = None) -> Any:
    """Check the named columns exist and keep the features and the target (and, under
    ``holdout.KEY``, the column of ``split`` when it names one: not a feature unless listed)."""
    from trainflow.tasks.common import holdout

    columns = list(df.columns)
    if len(df) == 0:
        raise DataError(f"The data file '{path}' has a header but no data rows.")
    key = holdout.key_values(df, split, path) if split is not None and split.key else None
    named = ([(config.target, "data.target")] if config.target else []) \
        + [(c, "data.features") for c in config.features or []] + [(c, "data.drop") for c in config.drop] \
        + ([(config.id, "data.id")] if config.id else [])
    for col, option in named:
        if col not in columns:
            role = "target column" if option == "data.target" else "column"
            raise DataError(
                f"The {role} '{col}' ({option}) is not in '{path}'{did_you_mean(col, columns)}. "
                f"Its columns are: {', '.join(columns)}."
            )
    from trainflow.tasks.common import multilabel

    for col in config.targets or []:
        if col not in columns:
            raise DataError(f"The label column '{col}' (data.targets) is not in '{path}'"
                            f"{did_you_mean(col, columns)}. Its columns are: {', '.join(columns)}.")
    labels = set(config.targets or [])
    features = config.features or [c for c in columns if c != config.target and c not in config.drop
                                    and c not in labels and (key is None or c != split.key)]
    keep = features + [c for c in (config.id, config.target, *(config.targets or [])) if c and c not in features]
    df = df[keep]
    if key is not None:
        df = df.assign(**{holdout.KEY: key})
    if config.separator and config.target:
        return multilabel.expand_delimited(df, config.target, config.separator, path)
    if config.targets:
        return multilabel.with_labels(df, config.targets)
    return df


class ArffConfig(SplitFilesConfig):
    """An ARFF file (``path``) or a fixed ``train`` + ``test`` pair, as MULAN and MEKA ship multi-label data."""

    labels: list[str] | None = Field(None, description="Label attributes; default: from the relation's '-C n' option")
    target: str | None = Field(None, description="Single-label: the attribute to predict")
    drop: list[str] = Field([], description="Attributes to ignore")
    id: str | None = Field(None, description="Attribute naming each row; not a feature, kept in predictions")


@component("loader", "arff", ArffConfig, modality="tabular")
def load_arff(config: ArffConfig) -> Any:
    """ARFF (Weka/MULAN/MEKA): multi-label attributes named by 'labels' or the relation's '-C n' option;
    'train' + 'test' keep a fixed split."""
    import pandas as pd

    from trainflow.tasks.common import multilabel

    parts, labels = [], None
    for fold, name in (("all", config.path), ("train", config.train), ("test", config.test)):
        if not name:
            continue
        path = existing_file(name, option=f"data.{fold if fold != 'all' else 'path'}")
        df, found = multilabel.read_arff(path, config.labels)
        if labels is not None and found != labels:
            raise DataError(f"The label attributes of '{path}' ({', '.join(found)}) differ from those of the "
                            f"training file ({', '.join(labels)}).")
        labels = found
        if fold != "all":
            df[multilabel.FOLD] = fold
        parts.append(df)
    df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    named = [c for c in [config.target, config.id, *config.drop] if c]
    for col in named:
        if col not in df.columns:
            raise DataError(f"The attribute '{col}' is not in '{config.path or config.train}'"
                            f"{did_you_mean(col, list(df.columns))}.")
    df = df.drop(columns=config.drop)
    return multilabel.with_labels(df, labels) if labels else df
