"""The data profile of a table and the feature plan made from it.

Before a table is split, every column gets a profile row (type, missing share, distinct count;
">= N" where a sample of a long float column settles its role) and a role guess: identifier,
constant, free text, date/time, high-cardinality categorical, categorical or numeric. The spec's ``features:`` section turns the guesses into a plan: which
columns are features, which are excluded and why, which dates are expanded into numbers. The plan
travels with the data to the split, is saved with the model (``schema.json``) and is applied again
at predict time, so prediction uses exactly the training features.

The guesses look at the whole table, test rows included. That is safe here because they only ever
*remove* columns (a column unique per row, constant or free text says nothing the test rows could
leak into a fitted statistic); anything fitted on data, the leakage alarms included, sees the
training split only (``tasks/leakage.py``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from trainflow.alerts import warn
from trainflow.errors import DataError, did_you_mean, shown
from trainflow.refs import DataRef, read_parquet

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

#: roles that are not used as features unless listed in data.features or features.keep
AUTO_EXCLUDED = ("identifier", "constant", "free text")
#: parts a date/time column expands into with ``features.dates: expand``
DATE_PARTS = ("year", "month", "dayofweek")
DATE_REGEX = r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?.*)?\s*$"
ID_SHARE = 0.95  # distinct values per row at which a text or integer column counts as an identifier
FREE_TEXT_WORDS = 4  # mean words per value from which text is free text (a name or a code has fewer)
FREE_TEXT_DISTINCT = 20  # distinct values of four words or more from which repeated text is free text
HIGH_CARDINALITY = 50  # distinct categories above which one-hot encoding gets wide
#: rows of a float column looked at before counting all its distinct values (see :func:`sampled_measurement`)
SAMPLE_ROWS = 10_000
#: words of a column name that mark an identifier or a record label, when its values agree
ID_WORDS = frozenset({"id", "no", "number", "sample", "study"})
#: words of a column name that mark notes typed by people
NOTE_WORDS = frozenset({"comment", "note", "remark"})
#: a code: one token of letters and digits with at least one of each (``N1A1``, ``PAL0708``)
CODE_REGEX = r"(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-./:#]+"
#: distinct values from which a column unique within groups is an identifier (fewer: a small category)
GROUP_ID_DISTINCT = 20
#: distinct values up to which a column can be a group for :func:`unique_within_groups`
GROUP_MAX = 20
#: rows looked at first to reject an ordinary column in :func:`unique_within_groups`
GROUP_HEAD = 5_000


def _pd():
    import pandas as pd

    return pd


def name_words(name: object) -> set[str]:
    """The lower-case words of a column name, split at non-letters and camelCase (``studyName`` ->
    {"study", "name"}), each also without a plural ``s`` (``Comments`` -> "comment")."""
    words = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", str(name))
    lower = {w.lower() for w in words}
    return lower | {w[:-1] for w in lower if w.endswith("s") and len(w) > 3}


def guess_role(s: Any, distinct: int | None = None) -> tuple[str, str]:
    """The role of one column (a pandas Series) and why, e.g. ``("identifier", "344 distinct values in 344 rows")``;
    ``distinct``: its number of distinct non-missing values, when the caller has counted them. The
    column's name is a hint where its values alone are ambiguous (see :data:`ID_WORDS`, :data:`NOTE_WORDS`)."""
    pd = _pd()
    values = s.dropna()
    n = len(values)
    distinct = int(values.nunique()) if distinct is None else distinct
    if distinct <= 1:
        return "constant", f"{distinct} distinct value" + ("" if distinct == 1 else "s") + " in the non-missing rows"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "date/time", "a date/time column"
    if pd.api.types.is_bool_dtype(s):
        return "categorical", "true/false values"
    unique_share = distinct / n
    words_in_name = name_words(s.name)
    if pd.api.types.is_numeric_dtype(s):
        # A measurement can be unique per row too; an integer that is unique *and* counts through the rows
        # (a row or sample number) is an identifier.
        whole = pd.api.types.is_integer_dtype(s) or bool((values == values.round()).all())
        if unique_share >= ID_SHARE and whole and (values.max() - values.min() + 1) <= 2 * n:
            return "identifier", f"{distinct} distinct whole numbers in {n} rows, a running number"
        if whole and words_in_name & ID_WORDS and unique_share >= 0.5:
            return "identifier", f"{distinct} distinct whole numbers in {n} rows, named like an identifier"
        return "numeric", "numbers"
    text = values.astype(str)
    if text.str.match(DATE_REGEX).mean() >= 0.9:
        return "date/time", f"text such as {shown(text.iloc[0])} that reads as dates"
    words = float(text.str.split().str.len().mean())
    if words >= FREE_TEXT_WORDS and unique_share >= 0.5:
        return "free text", f"{distinct} distinct texts of {words:.0f} words on average"
    # Notes are written on the few rows that need one, a category is filled in on every row: long
    # texts on a minority of rows are notes even when a handful of phrases repeat (`Comments` of the raw
    # penguins export: 10 distinct, 84% missing).
    missing = 1 - n / len(s)
    if words >= FREE_TEXT_WORDS and missing >= 0.5 and distinct >= 5:
        return "free text", (f"{distinct} distinct texts of {words:.0f} words on average, "
                             f"on {1 - missing:.0%} of the rows")
    # Sentences that repeat (observations picked from a list of a few dozen) are still sentences: a
    # category of four words or more comes in a handful of values, not dozens.
    if words >= FREE_TEXT_WORDS and distinct >= FREE_TEXT_DISTINCT:
        return "free text", f"{distinct} distinct texts of {words:.0f} words on average"
    if words_in_name & NOTE_WORDS and words >= 2:
        return "free text", f"{distinct} distinct texts of {words:.0f} words on average, named like notes"
    if unique_share >= ID_SHARE:
        return "identifier", f"{distinct} distinct values in {n} rows"
    if words_in_name & ID_WORDS and text.str.fullmatch(CODE_REGEX).mean() >= 0.9:
        return "identifier", f"codes such as {shown(text.iloc[0])} ({distinct} distinct), named like an identifier"
    if distinct > HIGH_CARDINALITY:
        return "high-cardinality categorical", f"{distinct} distinct categories"
    return "categorical", f"{distinct} categories"


def unique_within_groups(df: Any, col: str, groups: list[str]) -> str | None:
    """The first column of ``groups`` within each of whose values ``col`` never repeats, when ``col``
    is whole numbers counting up within each group (``Sample Number`` restarts per species) or text
    (``Individual ID``: N1A1 in every study); None when there is none. Such a column numbers the rows
    of each group: an identifier that repeats across groups."""
    pd = _pd()
    s = df[col]
    integer = pd.api.types.is_integer_dtype(s) or (pd.api.types.is_float_dtype(s)
                                                   and bool((s.dropna() == s.dropna().round()).all()))
    if not (integer or pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s)):
        return None
    for g in groups:
        head = df[[g, col]].iloc[:GROUP_HEAD].dropna()
        if head.duplicated().any():  # cheap rejection of an ordinary column on a long table
            continue
        pairs = df[[g, col]].dropna()
        if len(pairs) < 2 or pairs.duplicated().any():
            continue
        if integer:
            by = pairs.groupby(g, observed=True)[col]
            if ((by.max() - by.min() + 1) > 2 * by.size()).any():
                continue
        return g
    return None


def profile_table(df: Any, target: str | list[str] | None) -> list[dict[str, Any]]:
    """One row per column: name, type, missing share, distinct count, role guess and why (``target``:
    the target column, or the label columns of multi-label data)."""
    targets = target if isinstance(target, list) else [target]
    rows = []
    for col in df.columns:
        s = df[col]
        seen = None if col in targets else sampled_measurement(s)
        if seen is not None:  # the role is settled; the count says what the sample showed
            distinct, role, why = f">= {seen}", "numeric", "numbers"
        else:
            distinct = int(s.nunique())  # counted once: the most expensive part of a profile
            role, why = ("target", "data.target") if col in targets else guess_role(s, distinct)
        rows.append({"column": str(col), "type": str(s.dtype), "missing": round(float(s.isna().mean()), 4),
                     "distinct": distinct, "role": role, "why": why})
    # Identifiers that restart per group: the groups are the columns of few values, the target included.
    groups = [r["column"] for r in rows if isinstance(r["distinct"], int) and 2 <= r["distinct"] <= GROUP_MAX]
    names = {str(c): c for c in df.columns}
    for r in rows:
        if r["role"] in ("numeric", "categorical", "high-cardinality categorical") \
                and isinstance(r["distinct"], int) and r["distinct"] >= GROUP_ID_DISTINCT:
            g = unique_within_groups(df, names[r["column"]], [names[c] for c in groups if c != r["column"]])
            if g is not None:
                r["role"] = "identifier"
                r["why"] = (f"{r['distinct']} distinct values in {int(df[names[r['column']]].notna().sum())} rows, "
                            f"unique within each '{g}' and repeated across them, a running number or code per group")
    return rows


def sampled_measurement(s: Any) -> int | None:
    """The distinct values in an evenly spaced sample of :data:`SAMPLE_ROWS` rows of a longer float
    column, when the sample alone settles its role as ``numeric``: two or more values, one of them not
    a whole number, so the column is neither constant nor a running number whatever the other rows
    hold (:func:`guess_role`). None otherwise: its distinct values must be counted on every row.

    Counting every distinct value is a hash of every row: ~2 s for 50 columns of a million rows."""
    pd = _pd()
    if len(s) <= SAMPLE_ROWS or not pd.api.types.is_float_dtype(s):
        return None
    values = s.iloc[::len(s) // SAMPLE_ROWS].dropna().to_numpy(dtype=float)
    seen = len(np.unique(values))
    return seen if seen >= 2 and bool((values != np.round(values)).any()) else None


def plan_features(profile: list[dict[str, Any]], spec: PipelineSpec, source: str = "the data") -> dict[str, Any]:
    """Decide the feature columns from a profile and the spec (``data.features``, ``data.id``, ``features:``).

    Returns ``{"features": [...], "dates": [...], "excluded": {column: reason}}``; ``dates`` are expanded
    into :data:`DATE_PARTS`. Raises DataError for an unknown ``features.keep`` column, for auto-excluded
    columns under ``features.auto_exclude: error`` and when no feature is left.
    """
    policy = spec.features
    options = spec.data.options()
    columns = [r["column"] for r in profile]
    for name in policy.keep:
        if name not in columns:
            raise DataError(f"The column '{name}' of features.keep is not in '{source}'{did_you_mean(name, columns)}. "
                            f"Its columns are: {', '.join(columns)}.")
    explicit = set(options.get("features") or []) | set(policy.keep)
    id_column = options.get("id")
    features, dates, excluded, refused = [], [], {}, []
    for row in profile:
        col, role = row["column"], row["role"]
        if role == "target":
            continue
        if col == id_column:
            excluded[col] = "the rows' id (data.id), kept for predictions"
        elif role == "date/time":
            if col in explicit or policy.dates == "expand":
                dates.append(col)
                features += [f"{col}_{part}" for part in DATE_PARTS]
            else:
                excluded[col] = f"date/time ({row['why']}); features.dates is 'drop'"
        elif role in AUTO_EXCLUDED and col not in explicit:
            reason = f"{role} ({row['why']})"
            if policy.auto_exclude == "error":
                refused.append(f"'{col}': {reason}")
            elif policy.auto_exclude == "drop":
                excluded[col] = reason
            else:
                warn(f"features: '{col}' looks like a {reason} column but is used (features.auto_exclude is 'warn')")
                features.append(col)
        else:
            features.append(col)
    if refused:
        raise DataError(f"Columns of '{source}' that cannot be meaningful features (features.auto_exclude is "
                        f"'error'): {'; '.join(refused)}. List them in data.drop, or in features.keep to use them.")
    if not features:
        why = "; ".join(f"'{c}': {r}" for c, r in excluded.items()) or "the table has only the target"
        raise DataError(f"No usable feature is left in '{source}' after excluding {why}. List the columns to use in "
                        f"features.keep (or data.features), or set features.auto_exclude: warn.")
    for col, reason in excluded.items():
        warn(f"features: excluded '{col}': {reason}")
    return {"features": features, "dates": dates, "excluded": excluded}


def apply_plan(df: Any, plan: dict[str, Any] | None, target: str | None = None, source: str = "the data") -> Any:
    """The plan's feature columns of ``df`` (dates expanded), plus ``target`` when given and present."""
    if not plan:
        return df
    pd = _pd()
    raw = [c for c in plan["features"] if not any(c == f"{d}_{p}" for d in plan["dates"] for p in DATE_PARTS)]
    missing = [c for c in raw + plan["dates"] if c not in df.columns]
    if missing:
        raise DataError(f"'{source}' lacks the feature column(s) {', '.join(map(repr, missing))}"
                        f"{did_you_mean(missing[0], df.columns)}.")
    out = df[raw].copy(deep=False)  # new columns go into this frame only; no second copy of the values
    for col in plan["dates"]:
        when = df[col] if pd.api.types.is_datetime64_any_dtype(df[col]) else \
            pd.to_datetime(df[col].astype("string"), errors="coerce", format="mixed")
        _warn_not_dates(df[col], when, col, source)
        out[f"{col}_year"] = when.dt.year.astype("float64")
        out[f"{col}_month"] = when.dt.month.astype("float64")
        out[f"{col}_dayofweek"] = when.dt.dayofweek.astype("float64")
    out = out[plan["features"]]
    if target and target in df.columns:
        out[target] = df[target].to_numpy()
    return out


def _warn_not_dates(raw: Any, when: Any, col: str, source: str) -> None:
    """A warning naming the values of a date column that are no dates (they become missing parts, then
    imputed, as in training), so that '2008-13-45' is not quietly a gap."""
    bad = when.isna().to_numpy() & raw.notna().to_numpy() & (raw.astype("string").str.strip() != "").to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        warn(f"'{source}': {int(bad.sum())} value(s) of the date column '{col}' are not dates, read as missing "
             f"(first: {shown(raw.iloc[first])} in row {first + 1}).")


def profile_and_plan(ref: DataRef, spec: PipelineSpec) -> DataRef:
    """Profile a stored table and plan its features; both go into the returned reference's ``meta``."""
    from trainflow.tasks.common.holdout import KEY
    from trainflow.tasks.common.multilabel import FOLD

    df = read_parquet(ref.path)  # the frame the load stage has just stored, when it ran in this process
    rows = profile_table(df, [ref.meta.get("target"), *ref.meta.get("labels", []), FOLD, KEY])
    plan = plan_features(rows, spec, source=ref.meta.get("source") or "the data")
    used = set(plan["features"]) | set(plan["dates"])
    for row in rows:
        row["used"] = "target" if row["role"] == "target" else ("yes" if row["column"] in used else "no")
    return ref.model_copy(update={"meta": {**ref.meta, "profile": rows, "plan": plan}})


def profile_notes(plan: dict[str, Any]) -> list[str]:
    """One report line per excluded column and per expanded date."""
    notes = [f"excluded column '{c}': {r}" for c, r in plan.get("excluded", {}).items()]
    notes += [f"date column '{d}' expanded into {', '.join(f'{d}_{p}' for p in DATE_PARTS)}" for d in plan.get("dates", [])]
    return notes
