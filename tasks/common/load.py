"""Loading: the ``csv`` and ``parquet`` loaders, and the flow's load task.

A loader component takes its pydantic config and returns the loaded data (a DataFrame for
tabular loaders). The load task fingerprints the source files, lets the loader read them, and
stores the result in the run cache, returning a :class:`~trainflow.refs.DataRef`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainflow.errors import DataError, did_you_mean
from trainflow import modality as modalities
from trainflow.refs import DataRef, file_digest, json_digest
from trainflow.registry import component


class TableConfig(BaseModel):
    """Options shared by the tabular loaders."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="File to read")
    target: str | None = Field(None, description="Column to predict")
    features: list[str] | None = Field(None, description="Feature columns; default: every other column")
    drop: list[str] = Field([], description="Columns to ignore")
    id: str | None = Field(None, description="Column naming each row; not a feature, kept in predictions")


class CsvConfig(TableConfig):
    delimiter: str = ","
    encoding: str = "utf-8"
    na_values: list[str] = Field(["", "NA", "N/A", "NaN", "nan", "null"], description="Markers read as missing")


@component("loader", "csv", CsvConfig, modality="tabular")
def load_csv(config: CsvConfig) -> Any:
    """A delimited text file with a header line (delimiter, encoding and NA markers configurable)."""
    import pandas as pd

    path = existing_file(config.path)
    if path.stat().st_size == 0:
        raise DataError(f"The data file '{path}' is empty: expected a header line and data rows.")
    try:
        df = pd.read_csv(
            path, sep=config.delimiter, encoding=config.encoding,
            na_values=config.na_values, keep_default_na=False, skipinitialspace=True,
        )
    except UnicodeDecodeError as exc:
        raise DataError(f"The data file '{path}' is not valid {config.encoding} text ({exc.reason} at byte "
                        f"{exc.start}); set data.encoding.") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"The data file '{path}' is empty: expected a header line and data rows.") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"The data file '{path}' could not be parsed as CSV with delimiter "
                        f"{config.delimiter!r}: {exc}") from None
    if len(df.columns) == 1:
        header = str(df.columns[0])
        for other in (",", ";", "\t", "|"):
            if other != config.delimiter and other in header:
                raise DataError(
                    f"The data file '{path}' has a single column with delimiter {config.delimiter!r}, but "
                    f"its header {header[:60]!r} contains {other!r}: set data.delimiter: {other!r}."
                )
    return _select(df, config, path)


@component("loader", "parquet", TableConfig, modality="tabular")
def load_parquet(config: TableConfig) -> Any:
    """An Apache Parquet file."""
    import pandas as pd

    path = existing_file(config.path)
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"The data file '{path}' is not a readable Parquet file: {exc}") from None
    return _select(df, config, path)


def existing_file(value: str | Path, option: str = "data.path") -> Path:
    """``value`` as a Path to a file; DataError naming the spec ``option`` when it is missing or a folder."""
    path = Path(value)
    if not path.exists():
        raise DataError(f"The data file '{path}' does not exist ({option}).")
    if not path.is_file():
        raise DataError(f"The data path '{path}' is a folder; expected a file ({option}).")
    return path


def _select(df: Any, config: TableConfig, path: Path) -> Any:
    """Check the named columns exist and keep the features and the target."""
    df.columns = [str(c).strip() for c in df.columns]
    columns = list(df.columns)
    if len(df) == 0:
        raise DataError(f"The data file '{path}' has a header but no data rows.")
    named = ([config.target] if config.target else []) + list(config.features or []) + list(config.drop) \
        + ([config.id] if config.id else [])
    for col in named:
        if col not in columns:
            role = "target" if col == config.target else "column"
            raise DataError(
                f"The {role} column '{col}' is not in '{path}'{did_you_mean(col, columns)}. "
                f"Its columns are: {', '.join(columns)}."
            )
    features = config.features or [c for c in columns if c != config.target and c not in config.drop]
    keep = features + [c for c in (config.id, config.target) if c and c not in features]
    return df[keep]


def fingerprint(config: BaseModel) -> str:
    """Digest of a loader's options and the content of every file they name (not their paths)."""
    options = config.model_dump(mode="json")
    files = {}
    for key in ("path", "train", "test"):
        value = options.get(key)
        if isinstance(value, str) and Path(value).exists():
            # the content counts, not where it lies: a moved or re-cloned dataset keeps its digest
            files[key] = file_digest(options.pop(key))
    return json_digest({"options": options, "files": files})


def load(data_spec: Any, cache_dir: str, modality: str) -> DataRef:
    """Run the spec's loader and let the spec's ``modality`` store what it read in ``cache_dir``
    (logic of the load task)."""
    comp, config = data_spec.resolve("data")
    digest = fingerprint(config)
    loaded = comp.build(config)
    return modalities.get(modality).store(loaded, cache_dir, digest, config)
