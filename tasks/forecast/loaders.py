"""Forecasting loaders: ``timeseries_csv`` (one series: a time column and value columns), and the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.errors import DataError
from trainflow.refs import DataRef, store_parquet
from trainflow.registry import component
from trainflow.tasks.common.load import existing_file, file_dates, read_csv_file
from trainflow.tasks.forecast.panel_data import MISSING, numeric_values


class TimeSeriesCsvConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="CSV file with a time column and value column(s)")
    time: str | None = Field(None, description="Time column (dates or numbers); default: the first column")
    values: list[str] | None = Field(None, description="Value columns; default: every other column")
    id: str | None = Field(None, description="Series column of a panel (a long file: one row per series and "
                                             "step); default: none, the file is one series")
    delimiter: str = ","


def _line(i: int) -> int:
    return int(i) + 2  # header is line 1


@component("loader", "timeseries_csv", TimeSeriesCsvConfig, modality="forecast")
def load_timeseries_csv(config: TimeSeriesCsvConfig) -> Any:
    """CSV for forecasting: a time column (dates or numbers, sorted, unique) and value column(s); with
    ``id``, a panel of many series in long form."""
    if config.id is not None:
        from trainflow.tasks.forecast.panel_data import read_panel

        return read_panel(config.path, config.id, config.time, config.values, config.delimiter)
    return read_timeseries(config.path, config.time, config.values, config.delimiter)


def read_timeseries(path: str | Path, time: str | None, values: list[str] | None, delimiter: str = ",") -> Any:
    """Read and check a time-series CSV; returns a DataFrame (time column first, then the values).

    Raises DataError naming the file and line for unsorted or duplicate times, text in a value
    column, or a missing column.
    """
    import pandas as pd

    path = existing_file(path)
    df = read_csv_file(path, delimiter, na_values=MISSING)
    time = time or df.columns[0]
    cols = values or [c for c in df.columns if c != time]
    numeric_values(df, path, [(time, "data.time")], cols, f"the time column '{time}'")
    raw = df[time]
    if df[time].isna().any():
        raise DataError(f"'{path}', line {_line(np.flatnonzero(raw.isna())[0])}: the time column '{time}' is empty.")
    t = raw if pd.api.types.is_numeric_dtype(raw) else file_dates(raw.astype(str), path, time)
    if t.isna().any():
        i = int(np.flatnonzero(t.isna())[0])
        raise DataError(f"'{path}', line {_line(i)}: the time column '{time}' holds {raw.iloc[i]!r}, "
                        f"which is neither a date nor a number.")
    tv = t.to_numpy()
    for i in range(1, len(tv)):
        if tv[i] == tv[i - 1]:
            raise DataError(f"'{path}', line {_line(i)}: the time {raw.iloc[i]!r} repeats line {_line(i - 1)}; "
                            f"each time may appear once.")
        if tv[i] < tv[i - 1]:
            raise DataError(f"'{path}', line {_line(i)}: the time {raw.iloc[i]!r} comes before {raw.iloc[i - 1]!r} "
                            f"on line {_line(i - 1)}; sort the file by '{time}' (oldest first).")
    out = pd.DataFrame({time: raw.astype(str)})
    for col in cols:
        out[col] = df[col].to_numpy()
    out.attrs["time"] = time
    return out


# ---------------------------------------------------------------- store, validate, split


def store(df: Any, cache_dir: str, digest: str, config: Any) -> DataRef:
    """Save the series (a panel: in long form, the series column first) as Parquet in the cache, named
    by the source's digest."""
    path = store_parquet(df, cache_dir, digest)
    first = 1 if getattr(config, "id", None) else 0
    meta = {"rows": len(df), "time": df.columns[first], "values": list(df.columns[first + 1:]), "source": config.path,
            "loader_options": config.model_dump(mode="json"), "id": getattr(config, "id", None)}
    if first:
        meta["series"] = int(df[config.id].nunique())
    return DataRef(path=str(path), digest=digest, modality="forecast", meta=meta)
