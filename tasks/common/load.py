"""Loading: the flow's load task, and the file checks and readers every loader shares.

A loader component takes its pydantic config and returns the loaded data (each modality's loaders
live beside it, e.g. ``tasks/tabular/loaders.py``). The load task fingerprints the source files,
lets the loader read them, and lets the spec's modality store the result in the run cache,
returning a :class:`~trainflow.refs.DataRef`.
"""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from trainflow import modalities
from trainflow.errors import DataError, did_you_mean
from trainflow.files import open_regular, path_problem
from trainflow.refs import DataRef, file_digest, json_digest

if TYPE_CHECKING:
    from trainflow.spec import DataSpec, SplitSpec


#: the markers read as a missing value by default
NA_VALUES = ["", "NA", "N/A", "NaN", "nan", "null"]


#: dates written with slashes and the year last: read day-first or month-first
SLASHED = ("%d/%m/%Y", "%m/%d/%Y")


class AmbiguousDates(ValueError):
    """Dates that read as regular times both day-first and month-first."""


def dates_of(values: Any) -> Any:
    """``pd.to_datetime(values, errors="coerce")``, except that dates like ``01/02/1990`` are read both
    day-first and month-first: the one reading under which every value is a date wins, and where both
    are, the one under which they fill their span (month starts written ``01/mm/yyyy`` read
    month-first are 12 days of January, which pandas would take silently). AmbiguousDates when both
    readings fill it alike."""
    import pandas as pd

    text = pd.Series(values).astype(str)
    if not len(text) or not text.str.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}").all():
        return pd.to_datetime(values, errors="coerce")
    read = {f: pd.to_datetime(text, format=f, errors="coerce") for f in SLASHED}
    whole = [f for f in SLASHED if read[f].notna().all()]
    if len(whole) == 1:
        return read[whole[0]]
    if not whole:
        return pd.to_datetime(values, errors="coerce")  # the caller names the first value that is no date
    cover = {f: _coverage(read[f]) for f in whole}
    best, other = sorted(whole, key=cover.get, reverse=True)
    if cover[best] >= 2 * cover[other]:
        return read[best]
    raise AmbiguousDates(f"dates such as {text.iloc[0]!r} read as regular times both day-first and month-first")


def _coverage(dates: Any) -> float:
    """The share of the steps between the first and last distinct dates, at their most common step,
    that hold a date: near 1 for a series (a gap or two aside), near 0 for a reading that turns month
    starts into a few days of each January."""
    import numpy as np

    days = np.unique(dates.to_numpy().astype("datetime64[D]").astype(np.int64))
    if len(days) < 3:
        return 1.0
    steps, counts = np.unique(np.diff(days), return_counts=True)
    return len(days) / ((days[-1] - days[0]) / steps[np.argmax(counts)] + 1)


def file_dates(values: Any, path: Any, column: str) -> Any:
    """:func:`dates_of` the time column ``column`` of the file ``path``; DataError naming both when its
    dates read both day-first and month-first, or its times carry different UTC offsets, which pandas
    refuses to order (a clock change written as ``+01:00`` / ``+02:00``)."""
    import pandas as pd

    try:
        return dates_of(values)
    except AmbiguousDates as exc:
        raise DataError(f"The time column '{column}' of '{path}': {exc}; write them as YYYY-MM-DD.") from None
    except ValueError as exc:
        if "timezone" not in str(exc).lower():
            raise
        text = pd.Series(values).astype(str)
        offsets = sorted(set(text.str.extract(r"([+-]\d\d:?\d\d|Z)\s*$")[0].dropna()))
        raise DataError(f"The time column '{column}' of '{path}' mixes time zones (UTC offsets "
                        f"{', '.join(offsets[:5]) or 'and times without one'}); write every time with the same "
                        f"offset, or convert them to UTC.") from None


def require_column(df: Any, column: str, path: Path, option: str) -> None:
    """DataError naming the file, the option and the columns it has, when ``df`` lacks ``column``."""
    if column not in df.columns:
        raise DataError(f"The file '{path}' has no column '{column}' ({option}){did_you_mean(column, df.columns)}. "
                        f"Its columns are: {', '.join(map(str, df.columns))}.")


def text_encoding(name: str) -> str:
    """``name`` when Python knows it as a text encoding; ValueError otherwise (a spec error naming the
    field, not a LookupError deep in the reader; ``rot13`` or ``base64`` are codecs but not text)."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        info = None
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise ValueError("must be a text encoding Python knows, such as 'utf-8', 'latin-1' or 'cp1252'")
    return name


#: a loader option naming a text encoding, checked when the spec is read
Encoding = Annotated[str, AfterValidator(text_encoding)]


def read_csv_file(path: Path, delimiter: str = ",", encoding: str = "utf-8", na_values: list[str] | None = None,
                  what: str = "data file", quoting: int = 0, text: tuple[str, ...] = (), blank_rows: bool = False) -> Any:
    """A CSV with a header line and at least one row, checked by :func:`checked_table`; the columns
    named in ``text`` are read as written (ids such as ``007``, never the number 7); with
    ``blank_rows``, a blank line of a one-column file is a row with an empty value, not skipped.

    Raises DataError naming the file (``what`` says which) when it is empty, not valid ``encoding``
    text, not parseable with ``delimiter``, or fails the table checks. ``quoting`` is a ``csv.QUOTE_*``
    constant (0, minimal, by default; ``csv.QUOTE_NONE`` reads quote marks as text).
    """
    import pandas as pd

    if path.stat().st_size == 0:
        raise DataError(f"The {what} '{path}' is empty: expected a header line and data rows.")
    options = dict(sep=delimiter, encoding=encoding, skipinitialspace=True, keep_default_na=False,
                   na_values=NA_VALUES if na_values is None else na_values, quoting=quoting)
    try:
        # read from the descriptor open_regular checked (a FIFO or device swapped in after a check is never read)
        with open_regular(path, what) as fh:
            # The header as written: pandas renames a repeated column ('x' -> 'x.1') when it reads the table.
            header = pd.read_csv(fh, header=None, nrows=1, dtype=str, **options).iloc[0].tolist()
            fh.seek(0)
            df = pd.read_csv(fh, dtype={c: str for c in text} or None,
                             skip_blank_lines=not (blank_rows and len(header) == 1), **options)
    except UnicodeDecodeError as exc:
        raise DataError(f"The {what} '{path}' is not valid {encoding} text ({exc.reason} at byte "
                        f"{exc.start}); set data.encoding to the file's encoding (for trainflow predict: save it as "
                        f"{encoding}, the encoding the model was trained with).") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"The {what} '{path}' is empty: expected a header line and data rows.") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"The {what} '{path}' could not be parsed as CSV with delimiter "
                        f"{delimiter!r}: {exc}") from None
    return checked_table(df, path, what, header=header)


def read_parquet_file(path: Path, what: str = "data file") -> Any:
    """A Parquet file read into a DataFrame and checked by :func:`checked_table`."""
    import pandas as pd

    try:
        with open_regular(path, what) as fh:
            df = pd.read_parquet(fh)
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"The {what} '{path}' is not a readable Parquet file: {exc}") from None
    return checked_table(df, path, what)


def checked_table(df: Any, path: Path, what: str = "data file", header: list[Any] | None = None) -> Any:
    """``df`` with stripped column names; DataError for repeated column names, no data rows, or an
    infinite number (which every scaler and model rejects). ``header`` is the header as written."""
    import numpy as np

    names = ["" if c is None or c != c else str(c).strip() for c in (df.columns if header is None else header)]
    # a nameless column: empty, from a delimiter at the end of every line (dropped), or with values,
    # such as the index a DataFrame writes first (named by its position, then profiled like any column)
    empty = [i for i, n in enumerate(names) if not n and df.iloc[:, i].isna().all()]
    names = [n or f"column {i + 1}" for i, n in enumerate(names)]
    if empty:
        df = df.iloc[:, [i for i in range(len(names)) if i not in empty]].copy()
        names = [n for i, n in enumerate(names) if i not in empty]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        where = "; ".join(f"'{n}' is columns {', '.join(str(i + 1) for i, m in enumerate(names) if m == n)}"
                          for n in repeated)
        raise DataError(f"The {what} '{path}' repeats column names ({where}); every column needs its own name.")
    df.columns = names
    if len(df) == 0:
        raise DataError(f"The {what} '{path}' has a header but no data rows.")
    for col in df.columns:
        values = df[col]
        if values.dtype.kind == "f" and np.isinf(values.to_numpy()).any():
            row = int(np.flatnonzero(np.isinf(values.to_numpy()))[0])
            count = int(np.isinf(values.to_numpy()).sum())
            raise DataError(f"The column '{col}' of the {what} '{path}' holds {count} infinite value(s) (first: "
                            f"{values.iloc[row]} in row {row + 1}); replace them or leave the cells empty.")
    return df


class SplitFilesConfig(BaseModel):
    """Loader options naming one file (``path``, split by the spec) or a fixed ``train`` + ``test`` pair."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(None, description="One file holding every row (the spec's split applies)")
    train: str | None = Field(None, description="Training file of a fixed split (with 'test')")
    test: str | None = Field(None, description="Test file of a fixed split (with 'train')")

    @model_validator(mode="after")
    def _one_source(self) -> SplitFilesConfig:
        if self.path and (self.train or self.test):
            raise ValueError("give either 'path' or 'train' + 'test', not both")
        if not self.path and not (self.train and self.test):
            raise ValueError("give 'path' (one file) or both 'train' and 'test' (a fixed split)")
        return self


def label_names(names: Any, k: int, path: Path) -> list[str]:
    """The names of the ``k`` columns of a 2-D (multi-label) label array: ``names`` (the file's array
    'labels'), else label_0, label_1, ...; DataError naming ``path`` when they do not name each column once."""
    if names is None:
        return [f"label_{j}" for j in range(k)]
    names = [str(v) for v in names.reshape(-1).tolist()]
    if len(names) != k or len(set(names)) != k:
        raise DataError(f"'{path}': the array 'labels' must name each of the {k} label columns of 'y' once; "
                        f"it holds {names}.")
    return names


def existing_file(value: str | Path, option: str = "data.path", what: str = "data file") -> Path:
    """``value`` as a Path to a regular file; DataError naming the spec ``option`` when it is missing,
    a folder, a device, a FIFO or a link loop (checked without reading from it)."""
    path = Path(value)
    problem = path_problem(path)
    if problem:
        raise DataError(f"The {what} '{path}' {problem} ({option}).")
    return path


def fingerprint(config: BaseModel, extra_files: list[Path] | tuple[Path, ...] = ()) -> str:
    """Digest of a loader's options and the content of every file they name (not their paths), and
    of ``extra_files``: files the named ones point to (the clips an audio manifest lists)."""
    options = config.model_dump(mode="json")
    files = {}
    for key in ("path", "train", "test"):
        value = options.get(key)
        if isinstance(value, str) and Path(value).exists():
            # the content counts, not where it lies: a moved or re-cloned dataset keeps its digest
            files[key] = file_digest(options.pop(key))
    named = [str(f) for f in extra_files]
    files |= {f"extra:{i}": file_digest(f) for i, f in enumerate(named) if Path(f).is_file()}
    return json_digest({"options": options, "files": files})


def source_files(comp: Any, config: BaseModel) -> list[Path] | tuple[Path, ...]:
    """The further files a loader lists by its ``source_files`` (the clips a manifest names, data a
    loader reads from an installed package); none for most loaders."""
    extra = comp.extra.get("source_files")
    return extra(config) if extra else ()


def loader_fingerprint(comp: Any, config: BaseModel) -> str:
    """:func:`fingerprint` of a loader's options with the further files it lists (:func:`source_files`)."""
    return fingerprint(config, source_files(comp, config))


def refuse_special_files(config: BaseModel) -> None:
    """DataError for a data path that is a device, a FIFO or a link loop: hashing one would hang.
    A missing path is left to the loader, whose message says what it expected there."""
    for key in ("path", "train", "test"):
        value = getattr(config, key, None)
        if isinstance(value, str) and os.path.lexists(value):
            problem = path_problem(value, folder_ok=True)
            if problem:
                raise DataError(f"The data path '{value}' {problem} (data.{key}).")


def load(data_spec: DataSpec, cache_dir: str, modality: str, split: SplitSpec | None = None) -> DataRef:
    """Run the spec's loader and let the spec's ``modality`` store what it read in ``cache_dir``
    (logic of the load task). ``split``: the spec's split section; when it names a column or group
    (``split.key``) the loader carries its values (``tasks/common/holdout.py``)."""
    from concurrent.futures import ThreadPoolExecutor

    comp, config = data_spec.resolve("data")
    refuse_special_files(config)
    # The source digest (the cache key) is taken while the loader reads: hashlib and the readers
    # release the GIL, so on two cores the ~0.35 s of hashing a 1M-row table hides behind the read.
    # The files a loader lists are found here first: listing them may import (pandas reads a
    # manifest), and two threads importing the same packages for the first time can deadlock.
    listed = source_files(comp, config)
    with ThreadPoolExecutor(1, thread_name_prefix="load-digest") as pool:
        digesting = pool.submit(fingerprint, config, listed)
        key = split.key if split is not None else None
        loaded = comp.build(config, split=split) if key else comp.build(config)
        digest = digesting.result()
    if key:  # the stored data carries the key's values: another split key is other stored data
        digest = json_digest([digest, {"split_key": key}])
    return modalities.get(modality).store(loaded, cache_dir, digest, config)


def existing_folder(path: str, what: str = "data folder") -> Path:
    """The folder ``data.path`` names (``what`` says which kind); DataError when it is not one."""
    root = Path(path).expanduser()
    if not root.is_dir():
        problem = path_problem(root, folder_ok=True) or "is a file; expected a folder"
        raise DataError(f"The {what} '{root}' {problem} (data.path).")
    return root


def files_with_suffix(folder: Path, suffixes: list[str] | tuple[str, ...], recursive: bool = False) -> list[Path]:
    """The files of ``folder`` with one of ``suffixes`` (any case; sorted), optionally of its subfolders too."""
    ends = tuple(s.lower() for s in suffixes)
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.name.lower().endswith(ends))


def pattern_groups(files: list[Path], pattern: str, root: Path, required: tuple[str, ...]) -> dict[str, list[str]]:
    """The named groups of ``pattern`` for each file name (full match); DataError naming the first
    file that does not match, or a required group the pattern lacks."""
    regex = re.compile(pattern)
    missing = [g for g in required if g not in regex.groupindex]
    if missing:
        raise DataError(f"data.pattern {pattern!r} has no named group '{missing[0]}'"
                        f"{did_you_mean(missing[0], regex.groupindex)}; name it as (?P<{missing[0]}>...).")
    groups: dict[str, list[str]] = {g: [] for g in regex.groupindex}
    for f in files:
        m = regex.fullmatch(f.name)
        if m is None:
            raise DataError(f"The file name '{f.relative_to(root)}' in '{root}' does not match data.pattern "
                            f"{pattern!r}; rename or move the file, or change the pattern.")
        for g in groups:
            groups[g].append(m.group(g) or "")
    return groups
