"""A panel of series in long form (``series_id, t, value``): reading, per-series checks, the split by time.

Each series is checked on its own: its times unique (a repeat names the series and both lines) and
one step apart (a gap names the series, the line and the missing step; a missing value is written as
an empty cell, not as a missing row). The split is by time within each series: its last ``horizon``
steps are its test. A single series with exogenous regressors goes the same way, as a panel of one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trainflow.errors import DataError, did_you_mean, shown
from trainflow.tasks.common.load import NA_VALUES, existing_file, file_dates, read_csv_file

#: the series column of a single series read as a panel of one
ONE = "series"
#: what a series file may write for a missing value (spreadsheet exports write 'n/a' and a lone '-')
MISSING = [*NA_VALUES, "?", "n/a", "-"]


def numeric_values(df: Any, path: Path, named: list[tuple[str, str]], cols: list[str], besides: str) -> None:
    """Check that the ``named`` (column, spec option) pairs and the value columns ``cols`` are in ``df`` and
    turn the value columns into floats in place; DataError naming the file, the line and the text that
    is not a number, or the missing column (with a did-you-mean) and the columns there are."""
    import pandas as pd

    for col, option in named + [(c, "data.values") for c in cols]:
        if col not in df.columns:
            raise DataError(f"The column '{col}' ({option}) is not in '{path}'{did_you_mean(col, list(df.columns))}. "
                            f"Its columns are: {', '.join(df.columns)}.")
    if not cols:
        raise DataError(f"'{path}' has no value column besides {besides}.")
    for col in cols:
        converted = pd.to_numeric(df[col], errors="coerce")
        bad = df[col][converted.isna() & df[col].notna()]
        if len(bad):
            raise DataError(f"'{path}', line {bad.index[0] + 2}: column '{col}' holds {shown(bad.iloc[0])}, "
                            f"which is not a number.")  # (line 1 is the header)
        df[col] = converted.astype(float)


def read_panel(path: str | Path, id_col: str, time: str | None, values: list[str] | None, delimiter: str = ",") -> Any:
    """Read and check a long CSV: one row per series and step. Returns a DataFrame (series, time,
    values), each series sorted by time. DataError naming the file, series and line for a repeated
    time, a gap, text in a value column, an empty series id or a missing column."""
    import pandas as pd

    path = existing_file(path)
    df = read_csv_file(path, delimiter, na_values=MISSING, text=(id_col,))  # '007' and '7' are two series
    time = time or next((c for c in df.columns if c != id_col), id_col)
    cols = values or [c for c in df.columns if c not in (id_col, time)]
    numeric_values(df, path, [(id_col, "data.id"), (time, "data.time")], cols,
                   f"the series column '{id_col}' and time column '{time}'")
    for col, what in ((id_col, "series column"), (time, "time column")):
        empty = np.flatnonzero(df[col].isna().to_numpy())
        if len(empty):
            raise DataError(f"'{path}', line {empty[0] + 2}: the {what} '{col}' is empty.")
    raw = df[time]
    t = raw if pd.api.types.is_numeric_dtype(raw) else file_dates(raw.astype(str), path, time)
    if t.isna().any():
        i = int(np.flatnonzero(t.isna().to_numpy())[0])
        raise DataError(f"'{path}', line {i + 2}: the time column '{time}' holds {shown(raw.iloc[i])}, "
                        f"which is neither a date nor a number.")
    frame = pd.DataFrame({id_col: df[id_col].astype(str), "_t": t, "_line": np.arange(len(df)) + 2})
    order = frame.sort_values([id_col, "_t"], kind="stable").index
    frame = frame.loc[order]
    _check_steps(frame, id_col, time, path, raw.astype(str))
    out = pd.DataFrame({id_col: frame[id_col].to_numpy(), time: raw.loc[order].astype(str).to_numpy()})
    for col in cols:
        out[col] = df[col].loc[order].to_numpy()
    out.attrs["time"] = time
    return out


def _check_steps(frame: Any, id_col: str, time: str, path: Path, raw: Any) -> None:
    """DataError for a repeated time or a gap in any series (frame sorted by series and time)."""
    import pandas as pd

    same = (frame[id_col].to_numpy()[1:] == frame[id_col].to_numpy()[:-1])
    t = frame["_t"]
    lines = frame["_line"].to_numpy()
    dup = np.flatnonzero(same & (t.to_numpy()[1:] == t.to_numpy()[:-1]))
    if len(dup):
        i = dup[0]
        raise DataError(f"'{path}', line {lines[i + 1]}: series '{frame[id_col].iloc[i]}' has the time "
                        f"'{raw.iloc[lines[i + 1] - 2]}' twice (also on line {lines[i]}); each time may appear once "
                        f"per series.")
    numeric = pd.api.types.is_numeric_dtype(t)
    if numeric:
        gaps = np.diff(t.to_numpy(dtype=float))[same]
        step = float(np.min(gaps)) if len(gaps) else 1.0
        wrong = np.flatnonzero(same & ~np.isclose(np.diff(t.to_numpy(dtype=float)), step))
        expected = None
    else:
        longest = frame[id_col].value_counts().index[0]
        freq = pd.infer_freq(pd.DatetimeIndex(t[frame[id_col] == longest])) if (frame[id_col] == longest).sum() >= 3 else None
        if freq is None:
            return  # irregular dates: no step to check against (the time axis says 'irregular')
        nxt = (pd.DatetimeIndex(t.to_numpy()[:-1]) + pd.tseries.frequencies.to_offset(freq)).to_numpy()
        wrong = np.flatnonzero(same & (t.to_numpy()[1:] != nxt))
        expected = nxt
    if len(wrong):
        i = wrong[0]
        want = f"{t.iloc[i] + step:g}" if numeric else str(pd.Timestamp(expected[i]).date())
        raise DataError(f"'{path}', line {lines[i + 1]}: series '{frame[id_col].iloc[i]}' jumps from "
                        f"'{raw.iloc[lines[i] - 2]}' (line {lines[i]}) to '{raw.iloc[lines[i + 1] - 2]}'; the step "
                        f"{want} is missing. Each series needs one row per step (leave the value empty where it is "
                        f"not known).")


def as_long(df: Any, meta: dict[str, Any], exogenous: list[str]) -> tuple[Any, str, str, list[str]]:
    """The stored frame as a panel: (frame with the series column first, series column, target
    column, exogenous columns). A single series becomes a panel of one. DataError when the
    exogenous columns are not value columns or leave other than one target."""
    values = list(meta["values"])
    missing = [c for c in exogenous if c not in values]
    if missing:
        raise DataError(f"forecast.exogenous names {', '.join(map(repr, missing))}, not value columns of "
                        f"'{meta['source']}' ({', '.join(values)}).")
    targets = [c for c in values if c not in exogenous]
    if len(targets) != 1:
        raise DataError(f"A panel (data.id) or a series with forecast.exogenous has one value column to forecast; "
                        f"'{meta['source']}' has {len(targets)}: {', '.join(targets) or 'none'}. Name it in "
                        f"data.values (with the exogenous columns).")
    id_col = meta.get("id")
    if not id_col:
        df = df.copy()
        id_col = ONE if ONE not in df.columns else "_series"
        df.insert(0, id_col, targets[0])
    return df, id_col, targets[0], list(exogenous)


def groups(df: Any, id_col: str) -> list[tuple[str, Any]]:
    """(series id, its rows) in the order of the file's sorted ids."""
    return [(str(k), part) for k, part in df.groupby(id_col, sort=True)]


def drop_short(df: Any, id_col: str, horizon: int, source: str, max_share: float) -> tuple[Any, str | None]:
    """``df`` without the series that cannot hold their test horizon plus three training steps (the
    least any forecaster fits on), and a note naming them (up to five); DataError naming them when
    they are more than ``max_share`` of the series (forecast.max_short_share)."""
    sizes = df.groupby(id_col).size()
    short = sizes[sizes < horizon + 3]
    if not len(short):
        return df, None
    named = ", ".join(f"'{k}' ({n} steps)" for k, n in short.head(5).items()) + (" ..." if len(short) > 5 else "")
    if len(short) > max_share * len(sizes):
        raise DataError(f"{len(short)} of {len(sizes)} series in '{source}' are too short for forecast.horizon "
                        f"{horizon}: {named}. Each needs at least {horizon + 3} steps ({horizon} to test, 3 to fit "
                        f"on); a share up to forecast.max_short_share ({max_share:g}) is left out, this is more. "
                        f"Drop them or shorten the horizon.")
    note = (f"{len(short)} of {len(sizes)} series left out, too short for forecast.horizon {horizon} (each needs "
            f"{horizon + 3} steps): {named}")
    return df[~df[id_col].isin(short.index)], note


def split_frames(df: Any, id_col: str, horizon: int) -> tuple[Any, Any]:
    """(train, test): the last ``horizon`` rows of each series are its test."""
    position = df.groupby(id_col).cumcount(ascending=False)
    return df[position >= horizon], df[position < horizon]


def history_and_future(part: Any, sid: str, target: str, exog: list[str], horizon: int, source: str,
                       time: str | None = None) -> tuple[Any, Any]:
    """A series' history (up to its last value) and, with regressors, the ``horizon`` rows after it;
    the regressors must all be given, in the history and the future (DataError naming the column, the
    first missing step and, with ``time``, its time)."""
    known = np.flatnonzero(part[target].notna().to_numpy())
    if not len(known):
        raise DataError(f"Series '{sid}' in '{source}' has no value in '{target}'.")
    history, future = part.iloc[:known[-1] + 1], part.iloc[known[-1] + 1:known[-1] + 1 + horizon]
    if not exog:
        return history, future
    for col in exog:  # as in training (validation's exogenous_missing): every step of the history has them
        gaps = np.flatnonzero(history[col].isna().to_numpy())
        if len(gaps):
            when = f" (time {history.iloc[gaps[0]][time]})" if time in history.columns else ""
            raise DataError(f"Series '{sid}' in '{source}': the exogenous column '{col}' is empty at step "
                            f"{gaps[0] + 1} of its history{when}; the regressors of forecast.exogenous need a "
                            f"value at every step ({len(gaps)} empty in this series).")
    for col in exog:
        given = future[col].notna().to_numpy()
        if len(future) < horizon or not given.all():
            step = int(np.flatnonzero(~given)[0]) + 1 if not given.all() else len(future) + 1
            raise DataError(f"Series '{sid}' in '{source}': the exogenous column '{col}' has no future value at step "
                            f"{step} of {horizon} after the last value of '{target}'; forecast.exogenous needs the "
                            f"future values of each regressor for the whole horizon (rows after the last value, the "
                            f"value column left empty).")
    return history, future
