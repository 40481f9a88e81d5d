"""The tabular loaders: ``csv`` and ``parquet``.

Each returns a DataFrame holding the features, the id column and the target; a missing file or
column is a DataError naming it (with a close match among the columns).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainflow.errors import DataError, did_you_mean
from trainflow.registry import component
from trainflow.tasks.common.load import NA_VALUES, existing_file, read_csv_file, read_parquet_file


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
    na_values: list[str] = Field(NA_VALUES, description="Markers read as missing")


@component("loader", "csv", CsvConfig, modality="tabular")
def load_csv(config: CsvConfig) -> Any:
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
    return _select(df, config, path)


@component("loader", "parquet", TableConfig, modality="tabular")
def load_parquet(config: TableConfig) -> Any:
    """An Apache Parquet file."""
    return _select(read_parquet_file(existing_file(config.path)), config, Path(config.path))


def _select(df: Any, config: TableConfig, path: Path) -> Any:
    """Check the named columns exist and keep the features and the target."""
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
