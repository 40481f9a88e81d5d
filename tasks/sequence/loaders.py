"""Sequence loaders: the sktime/aeon ``.ts`` format, wide CSV, long CSV and ``.npz`` files.

Every loader returns a :class:`SeriesSet`: one array [time, channels] per series (NaN where a value
is missing), a label or regression target per series (kept as text; the task decides how it is
read), and, when the data comes as separate ``train`` and ``test`` files (as the UCR archive
does), the fold of each series, so the split stays the published one. Parsers are strict: a bad
file raises :class:`~trainflow.errors.DataError` naming the file, the line and what was expected.

The time-series CSV loader for forecasting (``timeseries_csv``) lives here too; it returns a
DataFrame (time column + value columns) for the ``forecast`` modality.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from trainflow.alerts import warn
from trainflow.archives import DATA_ZIP_BYTES, check_zip
from trainflow.errors import DataError, did_you_mean, shown
from trainflow.files import read_text_capped
from trainflow.registry import component
from trainflow.tasks.common.load import NA_VALUES, SplitFilesConfig, existing_file, file_dates, label_names, read_csv_file

MISSING_MARKERS = {"?", "nan", "NaN", "NA", ""}


@dataclass
class SeriesSet:
    """Series of possibly unequal length, with labels/targets and an optional fixed train/test fold."""

    series: list[np.ndarray]  # each [time, channels], float64, NaN = missing
    y: list[str] | None  # label or target per series (text), None for unlabelled data
    ids: list[str]
    source: str
    fold: list[str] | None = None  # "train" / "test" per series when the files fix the split
    class_labels: list[str] | None = None  # labels declared by the file (.ts @classLabel)
    channel_names: list[str] = field(default_factory=list)
    # multi-label: a [n, labels] 0/1 matrix and its column names (y then holds each series' labels joined by "|")
    label_matrix: np.ndarray | None = None
    label_names: list[str] | None = None
    keys: list[str] | None = None  # the values of the spec's split column or group per series

    @property
    def channels(self) -> int:
        return self.series[0].shape[1] if self.series else 0

    def concat(self, other: SeriesSet) -> SeriesSet:
        """This set followed by ``other`` (both must have the same channels)."""
        return SeriesSet(self.series + other.series,
                         None if self.y is None or other.y is None else self.y + other.y,
                         self.ids + other.ids, f"{self.source} + {other.source}",
                         (self.fold or []) + (other.fold or []) or None,
                         self.class_labels or other.class_labels, self.channel_names or other.channel_names,
                         None if self.label_matrix is None or other.label_matrix is None
                         else np.concatenate([self.label_matrix, other.label_matrix]), self.label_names,
                         None if self.keys is None or other.keys is None else self.keys + other.keys)


#: bytes the padded [n, T, C] array and its mask may take: one outlier length pads every series to it
PAD_BUDGET = 512 << 20


def check_padding(lengths: list[int], channels: int, itemsize: int, length: int | None = None) -> None:
    """DataError when padding series of these ``lengths`` to one length (``length`` or the longest) takes more
    than :data:`PAD_BUDGET` bytes, naming the longest series, the median length and the way out
    (``data.max_length``); checked before anything is allocated."""
    n, T = len(lengths), length or max(lengths, default=0)
    need = n * T * channels * itemsize
    if need > PAD_BUDGET:
        longest = int(np.argmax(lengths))
        raise DataError(f"Padding {n:,} series to {T:,} steps needs {need / 2**30:.1f} GiB, more than the "
                        f"{PAD_BUDGET / 2**30:.1f} GiB budget: series #{longest + 1} has {lengths[longest]:,} steps "
                        f"where the median is {int(np.median(lengths)):,}. Set data.max_length to cut longer series "
                        f"to their first steps, drop the outlier series, or split long recordings into windows.")


def cut(data: SeriesSet, max_length: int | None) -> SeriesSet:
    """``data`` with every series longer than ``max_length`` cut to its first ``max_length`` steps (the
    spec's ``data.max_length``; a warning counts them). ``None`` leaves the series as they are."""
    if not max_length:
        return data
    long = [i for i, s in enumerate(data.series) if len(s) > max_length]
    if long:
        warn(f"{len(long)} of {len(data.series)} series in '{data.source}' are longer than "
             f"data.max_length ({max_length:,} steps; the longest has "
             f"{max(len(data.series[i]) for i in long):,}): cut to their first {max_length:,}.")
    return replace(data, series=[s[:max_length] for s in data.series])


def pad(series: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack series into [n, T, C] (zeros after each series' end) and a mask [n, T] of real steps.

    DataError when that needs more than :data:`PAD_BUDGET` bytes (:func:`check_padding`)."""
    n = len(series)
    channels = series[0].shape[1] if n else 0
    T = length or max((len(s) for s in series), default=0)
    check_padding([len(s) for s in series], channels + 1, 4, T)
    x = np.zeros((n, T, channels), dtype=np.float32)
    mask = np.zeros((n, T), dtype=np.float32)
    for i, s in enumerate(series):
        m = min(len(s), T)
        x[i, :m] = s[:m]
        mask[i, :m] = 1
    return x, mask


# ---------------------------------------------------------------- configs


class SeriesFilesConfig(SplitFilesConfig):
    """One file (``path``, split by the spec) or a fixed ``train`` + ``test`` pair (e.g. UCR)."""

    max_length: int | None = Field(None, ge=1, description="Cut series longer than this to their first max_length "
                                   "steps (a warning counts them), here and at predict; by default a series long "
                                   "enough to pad the set past the memory budget is an error naming it")


class TsConfig(SeriesFilesConfig):
    pass


class WideCsvConfig(SeriesFilesConfig):
    label: str | None = Field("label", description="Column with the label/target; null for unlabelled series")
    id: str | None = Field(None, description="Column naming each series (optional)")
    delimiter: str = ","


class LongCsvConfig(SeriesFilesConfig):
    id: str = Field("series_id", description="Column naming the series a row belongs to")
    time: str = Field("time", description="Column ordering the steps of a series (numbers or dates)")
    values: list[str] | None = Field(None, description="Value columns (channels); default: every other column")
    label: str | None = Field("label", description="Column with the series' label/target (constant per series)")
    delimiter: str = ","


class NpzConfig(SeriesFilesConfig):
    x: str = Field("x", description="Array [n, time, channels] (or [n, time])")
    y: str | None = Field("y", description="Array [n] of labels/targets, or [n, labels] of 0/1 for task multilabel "
                                           "(an optional array 'labels' names its columns); null for unlabelled series")
    lengths: str | None = Field("lengths", description="Optional array [n] of true series lengths (padding after)")


def _files(config: SeriesFilesConfig) -> list[tuple[Path, str | None]]:
    if config.path:
        return [(existing_file(config.path, "data.path"), None)]
    return [(existing_file(config.train, "data.train"), "train"), (existing_file(config.test, "data.test"), "test")]


def _read_all(config: SeriesFilesConfig, reader: Any) -> SeriesSet:
    parts = []
    for path, fold in _files(config):
        part = reader(path)
        if not part.series:
            raise DataError(f"The data file '{path}' holds no series.")
        if fold:
            part.fold = [fold] * len(part.series)
        parts.append(part)
    result = parts[0]
    for part in parts[1:]:
        if part.channels != result.channels:
            raise DataError(f"'{part.source}' has {part.channels} channel(s) but '{result.source}' has "
                            f"{result.channels}; train and test files must have the same channels.")
        if (part.y is None) != (result.y is None):
            raise DataError(f"'{part.source}' and '{result.source}' must both have labels, or neither.")
        if part.label_names != result.label_names:
            raise DataError(f"'{part.source}' has the labels {part.label_names} but '{result.source}' has "
                            f"{result.label_names}; train and test files must have the same label columns.")
        result = result.concat(part)
    return result


# ---------------------------------------------------------------- .ts (sktime / aeon)


def _bool(value: str, path: Path, lineno: int, key: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise DataError(f"'{path}', line {lineno}: {key} must be 'true' or 'false'. Got {shown(value)}.")
    return v == "true"


def _number(text: str, path: Path, lineno: int, channel: int) -> float:
    t = text.strip()
    if t in MISSING_MARKERS:
        return float("nan")
    try:
        return float(t)
    except ValueError:
        raise DataError(f"'{path}', line {lineno}: channel {channel + 1} holds {shown(t)}, which is not a number "
                        f"(missing values are written '?' or 'NaN').") from None


def read_ts(path: str | Path) -> SeriesSet:
    """Parse a ``.ts`` file: header keys (``@problemName``, ``@univariate``, ``@dimensions``,
    ``@equalLength``, ``@seriesLength``, ``@classLabel``, ``@targetLabel``, ...), then ``@data`` and one
    line per series, channels separated by ``:``, values by ``,``, the label last.

    Raises DataError naming the file, line and reason for a missing ``@data`` line, a row whose
    channel count differs, a label not declared in ``@classLabel``, a length that contradicts
    ``@equalLength``/``@seriesLength``, or a value that is not a number.
    """
    path = Path(path)
    try:
        lines = read_text_capped(path, ".ts file").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"'{path}' is not UTF-8 text ({exc.reason} at byte {exc.start}); is it a .ts file?") from None
    header: dict[str, str] = {}
    class_labels: list[str] | None = None
    has_label, data_line = False, None
    for i, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("@"):
            raise DataError(f"'{path}', line {i}: missing '@data' line: this data row comes before it; a .ts file "
                            f"needs its header (@problemName, @classLabel, ...) followed by '@data'.")
        key, _, value = line.partition(" ")
        key = key.lower()
        if key == "@data":
            data_line = i
            break
        header[key] = value.strip()
        if key == "@classlabel":
            words = value.split()
            has_label = bool(words) and _bool(words[0], path, i, "@classLabel")
            class_labels = words[1:] if has_label else None
            if has_label and not class_labels:
                raise DataError(f"'{path}', line {i}: '@classLabel true' must list the class labels.")
        elif key == "@targetlabel":
            has_label = _bool(value, path, i, "@targetLabel") or has_label
        elif key == "@timestamps" and _bool(value, path, i, "@timeStamps"):
            raise DataError(f"'{path}', line {i}: time-stamped .ts files ('@timeStamps true') are not supported; "
                            f"use the long CSV loader for series with explicit times.")
    if data_line is None:
        raise DataError(f"'{path}': missing '@data' line; a .ts file needs its header "
                        f"(@problemName, @classLabel, ...) followed by '@data' and one line per series.")
    dims = None
    if "@dimensions" in header:
        try:
            dims = int(header["@dimensions"])
        except ValueError:
            raise DataError(f"'{path}': @dimensions must be a whole number. Got {shown(header['@dimensions'])}.") from None
    elif header.get("@univariate", "").lower() == "true":
        dims = 1
    equal = header.get("@equallength", "").lower() == "true"
    length = int(header["@serieslength"]) if header.get("@serieslength", "").isdigit() else None
    series, ys, ids, first_row = [], [], [], None
    for i, raw in enumerate(lines[data_line:], start=data_line + 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if has_label:
            if len(fields) < 2:
                raise DataError(f"'{path}', line {i}: expected channels then ':' and a label; found no label.")
            *fields, label = fields
            label = label.strip()
            if class_labels is not None and label not in class_labels:
                raise DataError(f"'{path}', line {i}: the class label {shown(label)} is not one of those declared in "
                                f"@classLabel: {', '.join(map(repr, class_labels))}{did_you_mean(label, class_labels)}.")
            ys.append(label)
        expected_dims = dims if dims is not None else (len(series[0][0]) if first_row else None)
        if expected_dims is not None and len(fields) != expected_dims:
            origin = "@dimensions" if dims is not None else f"the first series (line {first_row})"
            raise DataError(f"'{path}', line {i}: {len(fields)} channel(s), expected {expected_dims} "
                            f"as in {origin}.")
        chans = [[_number(v, path, i, c) for v in f.split(",")] for c, f in enumerate(fields)]
        lengths = {len(c) for c in chans}
        if len(lengths) > 1:
            raise DataError(f"'{path}', line {i}: the channels of a series must have the same length; "
                            f"got lengths {sorted(lengths)}.")
        n = lengths.pop()
        if equal and length is not None and n != length:
            raise DataError(f"'{path}', line {i}: a series of length {n}, but the header says "
                            f"@equalLength true and @seriesLength {length}.")
        if equal and series and n != series[0][0].shape[1]:
            raise DataError(f"'{path}', line {i}: a series of length {n}, but the header says @equalLength true "
                            f"and the first series has length {series[0][0].shape[1]}.")
        first_row = first_row or i
        series.append((np.array(chans, dtype=np.float64), i))
        ids.append(f"{path.name}:{i}")
    return SeriesSet([s.T for s, _ in series], ys if has_label else None, ids, str(path), class_labels=class_labels)


@component("loader", "ts", TsConfig, modality="sequence")
def load_ts(config: TsConfig) -> SeriesSet:
    """sktime/aeon .ts text files (uni/multivariate, equal or unequal length, class labels or targets)."""
    return _read_all(config, read_ts)


# ---------------------------------------------------------------- CSV


def read_csv_frame(path: Path, delimiter: str) -> Any:
    """A CSV with a header and at least one row (``?`` and the usual NA markers read as missing)."""
    return read_csv_file(path, delimiter, na_values=[*NA_VALUES, "?"])


def _need(df: Any, col: str, path: Path, option: str) -> None:
    if col not in df.columns:
        raise DataError(f"The column '{col}' ({option}) is not in '{path}'{did_you_mean(col, list(df.columns))}. "
                        f"Its columns are: {', '.join(df.columns)}.")


def _numeric(df: Any, cols: list[str], path: Path, row_of: Any = None) -> None:
    import pandas as pd

    for col in cols:
        if pd.api.types.is_numeric_dtype(df[col]):
            continue
        converted = pd.to_numeric(df[col], errors="coerce")
        bad = df[col][converted.isna() & df[col].notna()]
        line = (row_of(bad.index[0]) if row_of else bad.index[0] + 2)
        raise DataError(f"'{path}', line {line}: column '{col}' holds {shown(bad.iloc[0])}, which is not a number.")


def _label_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_wide_csv(path: Path, config: WideCsvConfig, split: Any = None) -> SeriesSet:
    """One row per series: optional id and label columns (and the spec's split column or group), every
    other column one time step. Empty cells at the end of a row shorten that series (unequal
    lengths); empty cells inside are missing."""
    from trainflow.tasks.common import holdout

    df = read_csv_frame(path, config.delimiter)
    for col, option in ((config.label, "data.label"), (config.id, "data.id")):
        if col:
            _need(df, col, path, option)
    key = split.key if split is not None and split.key else None
    keys = holdout.key_values(df, split, path).tolist() if key else None
    steps = [c for c in df.columns if c not in (config.label, config.id, key)]
    if not steps:
        raise DataError(f"'{path}' has no time-step columns besides the label/id.")
    _numeric(df, steps, path)
    values = df[steps].to_numpy(dtype=np.float64)
    series = []
    for i, row in enumerate(values):
        real = np.flatnonzero(~np.isnan(row))
        end = real[-1] + 1 if len(real) else len(row)  # an all-NaN row is kept: validation reports it
        series.append(row[:end, None])
    ys = None
    if config.label:
        if df[config.label].isna().any():
            line = int(np.flatnonzero(df[config.label].isna().to_numpy())[0]) + 2
            raise DataError(f"'{path}', line {line}: the label column '{config.label}' is empty.")
        ys = [_label_text(v) for v in df[config.label]]
    ids = [str(v) for v in df[config.id]] if config.id else [f"{path.name}:{i + 2}" for i in range(len(df))]
    return SeriesSet(series, ys, ids, str(path), channel_names=["value"], keys=keys)


@component("loader", "wide_csv", WideCsvConfig, modality="sequence", split_key=True)
def load_wide_csv(config: WideCsvConfig, split: Any = None) -> SeriesSet:
    """CSV with one row per univariate series: a label column and one column per time step."""
    return _read_all(config, lambda p: read_wide_csv(p, config, split))


def _sortable_time(col: Any, path: Path, name: str) -> Any:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(col):
        return col
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.notna().all():
        return numeric
    dates = file_dates(col, path, name)
    if dates.notna().all():
        return dates
    bad = col[dates.isna()]
    raise DataError(f"'{path}', line {bad.index[0] + 2}: the time column '{name}' holds {shown(bad.iloc[0])}, "
                    f"which is neither a number nor a date.")


def read_long_csv(path: Path, config: LongCsvConfig, split: Any = None) -> SeriesSet:
    """One row per (series, time step): id, time, value column(s), and a label constant per series
    (and the spec's split column or group, constant per series too). Duplicate (series, time) pairs
    and labels that change within a series are errors."""
    from trainflow.tasks.common import holdout

    df = read_csv_frame(path, config.delimiter)
    for col, option in ((config.id, "data.id"), (config.time, "data.time"), (config.label, "data.label")):
        if col:
            _need(df, col, path, option)
    key = split.key if split is not None and split.key else None
    if key:
        df[holdout.KEY] = holdout.key_values(df, split, path)
    values = config.values or [c for c in df.columns if c not in (config.id, config.time, config.label, key,
                                                                    holdout.KEY)]
    for col in values:
        _need(df, col, path, "data.values")
    if not values:
        raise DataError(f"'{path}' has no value columns besides the id, time and label.")
    _numeric(df, values, path)
    df = df.assign(_t=_sortable_time(df[config.time], path, config.time), _line=np.arange(len(df)) + 2)
    dup = df.duplicated([config.id, "_t"], keep=False)
    if dup.any():
        rows = df[dup].sort_values([config.id, "_t", "_line"])
        first = rows.iloc[0]
        lines = rows[(rows[config.id] == first[config.id]) & (rows["_t"] == first["_t"])]["_line"].tolist()
        raise DataError(f"'{path}': series '{first[config.id]}' has more than one row for time "
                        f"'{first[config.time]}' (lines {', '.join(map(str, lines))}); each (series, time) pair "
                        f"must appear once ({int(dup.sum())} duplicated rows in all).")
    series, ys, ids, keys = [], [], [], []
    for sid, part in df.sort_values("_t", kind="stable").groupby(config.id, sort=False):
        series.append(part[values].to_numpy(dtype=np.float64))
        ids.append(str(sid))
        if key:
            found = part[holdout.KEY].unique()
            if len(found) != 1:
                raise DataError(f"'{path}': series '{sid}' has {len(found)} values of '{key}' "
                                f"({holdout.option(split)}: {', '.join(repr(v) for v in found[:5])}); a series "
                                f"lies in one part, so the column must be constant per series.")
            keys.append(str(found[0]))
        if config.label:
            labels = part[config.label].dropna().unique()
            if len(labels) != 1:
                raise DataError(f"'{path}': series '{sid}' has {len(labels)} different labels "
                                f"({', '.join(repr(str(v)) for v in labels[:5])}); a series has exactly one label "
                                f"(first row: line {int(part['_line'].min())}).")
            ys.append(_label_text(labels[0]))
    return SeriesSet(series, ys if config.label else None, ids, str(path), channel_names=values,
                     keys=keys if key else None)


@component("loader", "long_csv", LongCsvConfig, modality="sequence", split_key=True)
def load_long_csv(config: LongCsvConfig, split: Any = None) -> SeriesSet:
    """CSV with one row per time step: series_id, time, value column(s), label."""
    return _read_all(config, lambda p: read_long_csv(p, config, split))


# ---------------------------------------------------------------- .npz


def read_npz(path: Path, config: NpzConfig) -> SeriesSet:
    """Arrays ``x`` [n, time, channels] (or [n, time]), ``y`` [n], optional ``lengths`` [n]."""
    try:
        check_zip(path, DATA_ZIP_BYTES, ".npz file")  # declared sizes, before NumPy allocates them
        arrays = np.load(path, allow_pickle=False)
    except DataError:
        raise
    except Exception as exc:  # numpy raises several types for a file that is not an .npz
        raise DataError(f"'{path}' is not a readable .npz file: {exc}") from None
    with arrays:
        keys = list(arrays.keys())
        if config.x not in keys:
            raise DataError(f"'{path}' has no array '{config.x}' (data.x){did_you_mean(config.x, keys)}; "
                            f"it holds: {', '.join(keys) or 'nothing'}.")
        x = arrays[config.x]
        y = None
        if config.y:
            if config.y not in keys:
                raise DataError(f"'{path}' has no array '{config.y}' (data.y){did_you_mean(config.y, keys)}; it "
                                f"holds: {', '.join(keys)}. Set data.y: null for unlabelled series.")
            y = arrays[config.y]
        lengths = arrays[config.lengths] if config.lengths and config.lengths in keys else None
        label_array = arrays["labels"] if "labels" in keys else None
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3 or x.dtype.kind not in "fiu":
        raise DataError(f"'{path}': array '{config.x}' must be numeric with shape [n, time, channels] or "
                        f"[n, time]. Got dtype {x.dtype} and shape {list(x.shape)}.")
    if y is not None and (y.ndim not in (1, 2) or len(y) != len(x) or (y.ndim == 2 and y.dtype.kind not in "fiub")):
        raise DataError(f"'{path}': array '{config.y}' must have shape [{len(x)}] (one label per series) or "
                        f"[{len(x)}, labels] (0/1 per label). Got shape {list(y.shape)} and dtype {y.dtype}.")
    if lengths is not None and (lengths.shape != (len(x),) or (lengths < 1).any() or (lengths > x.shape[1]).any()):
        raise DataError(f"'{path}': array '{config.lengths}' must hold {len(x)} lengths between 1 and {x.shape[1]}.")
    ends = lengths if lengths is not None else [x.shape[1]] * len(x)
    series = [x[i, : int(ends[i])].astype(np.float64) for i in range(len(x))]
    ids = [f"{path.name}[{i}]" for i in range(len(x))]
    if y is not None and y.ndim == 2:  # multi-label; values other than 0/1 are left for validation to report
        names = label_names(label_array, y.shape[1], path)
        ys = ["|".join(n for n, v in zip(names, row) if v == 1) for row in y.tolist()]
        return SeriesSet(series, ys, ids, str(path), label_matrix=y.astype(np.float64), label_names=names)
    ys = [_label_text(v.item()) for v in y] if y is not None else None
    return SeriesSet(series, ys, ids, str(path))


@component("loader", "npz_series", NpzConfig, modality="sequence")
def load_npz_series(config: NpzConfig) -> SeriesSet:
    """NumPy .npz with x [n, time, channels], y [n] and optional lengths [n]."""
    return _read_all(config, lambda p: read_npz(p, config))


def read_any(path: str | Path, loader: str, options: dict[str, Any]) -> SeriesSet:
    """New series for prediction, in any supported format (by extension: .ts, .npz, .csv).

    A CSV is read as long when it has the training loader's id and time columns (or ``series_id``
    and ``time``), else as wide. Labels are optional.
    """
    path = existing_file(str(path), "input")
    suffix = path.suffix.lower()
    if suffix == ".ts":
        return read_ts(path)
    if suffix == ".npz":
        return read_npz(path, NpzConfig(path=str(path), x=options.get("x", "x"),
                                        y=options.get("y", "y") if _npz_has(path, options.get("y", "y")) else None,
                                        lengths=options.get("lengths", "lengths")))
    import pandas as pd

    header = [str(c).strip() for c in pd.read_csv(path, nrows=0, sep=options.get("delimiter", ",")).columns]
    id_col, time_col = options.get("id") or "series_id", options.get("time") or "time"
    label = options.get("label", "label")
    if loader == "long_csv" or (id_col in header and time_col in header):
        vals = options.get("values")
        return read_long_csv(path, LongCsvConfig(path=str(path), id=id_col, time=time_col, values=vals,
                                                 label=label if label in header else None,
                                                 delimiter=options.get("delimiter", ",")))
    return read_wide_csv(path, WideCsvConfig(path=str(path), label=label if label in header else None,
                                             id=options.get("id") if options.get("id") in header else None,
                                             delimiter=options.get("delimiter", ",")))


def _npz_has(path: Path, key: str | None) -> bool:
    if not key:
        return False
    with np.load(path, allow_pickle=False) as arrays:
        return key in arrays.keys()
