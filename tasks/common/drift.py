"""Reference profiles and drift: what a model's data looked like, and whether new data still does.

A modality turns its items into a frame of per-item summaries (:meth:`Modality.drift_frame`: a
table's feature columns; an image's channel means; a text's length and out-of-vocabulary rate):
numeric columns and categorical ones. At publish, the training part's frame becomes the run's
reference profile (``profile.json``): for a numeric column 20 quantile bins, their counts and a
seeded sample of at most 1,000 values; for a categorical one the counts of each category; missing
counts for both. The test split's predictions are profiled the same way.

New data is compared column by column: Kolmogorov-Smirnov (``scipy.stats.ks_2samp``) against the
stored sample for numbers, a chi-squared test of the 2 x k table of counts
(``scipy.stats.chi2_contingency``) for categories and for missing shares, every p-value corrected
for the number of tests by Holm's method, the population stability index (PSI) beside them. A
column with fewer than :data:`MIN_ROWS` values in the batch is not tested, and says so: too few
rows are no evidence either way. (Rabanser et al. 2019, "Failing Loudly": per-feature two-sample
tests with a Bonferroni-type correction are a strong baseline for detecting dataset shift.)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

if TYPE_CHECKING:
    import pandas as pd

PROFILE_FILE = "profile.json"
FORMAT = 1
#: quantile bins of a numeric column (PSI and the plot use them)
BINS = 20
#: values of a numeric column kept for the two-sample test (seeded; all of them below this)
SAMPLE = 1000
#: items of a training part a reference profile summarises at most (a seeded sample above it): the
#: bins and the test's sample of SAMPLE values need no more, and 50,000 images cost seconds
REFERENCE_ITEMS = 10_000
#: categories of a column kept by name; the rarer ones are counted together as OTHER
TOP_CATEGORIES = 50
OTHER = "(other)"
#: values a batch needs in a column before it is tested (fewer: reported as too few, never an alarm)
MIN_ROWS = 20
#: family-wise error rate of one comparison (Holm-corrected)
ALPHA = 0.05
#: the largest profile.json read (a profile of thousands of columns stays far below)
MAX_PROFILE_BYTES = 64 << 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NumericColumn(_Strict):
    """A numeric column: quantile edges and counts per bin, a sample, missing count."""

    kind: Literal["numeric"]
    rows: NonNegativeInt
    missing: NonNegativeInt
    edges: list[float]
    bin_counts: list[NonNegativeInt]
    sample: list[float]
    mean: float | None
    std: float | None


class CategoricalColumn(_Strict):
    """A categorical column: the count of each category (rare ones as OTHER), missing count."""

    kind: Literal["categorical"]
    rows: NonNegativeInt
    missing: NonNegativeInt
    counts: dict[str, NonNegativeInt]


class TokensColumn(_Strict):
    """A column of token lists (a text's words): the reference vocabulary (words in at least
    :data:`MIN_DF` documents), the documents holding each of the most frequent tokens, and the
    out-of-vocabulary rate of each reference document, measured leave-one-out (its own words do not
    count towards the vocabulary it is measured against), so that it matches what a new document gets."""

    kind: Literal["tokens"]
    rows: NonNegativeInt
    missing: NonNegativeInt
    vocabulary: list[str]
    top: dict[str, NonNegativeInt]
    oov: NumericColumn


Column = Annotated[Union[NumericColumn, CategoricalColumn, TokensColumn], Field(discriminator="kind")]


class Profile(_Strict):
    """The reference profile of a run (``profile.json``)."""

    format: Literal[1]
    modality: str
    reference: str  # which rows: "training split (275 rows)"
    columns: dict[str, Column]
    prediction: Column | None = None
    prediction_source: str = ""
    notes: list[str] = []


# ---------------------------------------------------------------- building a profile


def is_numeric(values: pd.Series) -> bool:
    """Numbers (not booleans) are compared as distributions; everything else as categories."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


#: documents a word must appear in to belong to a text vocabulary; words kept at most; top tokens kept
MIN_DF, VOCABULARY, TOP_TOKENS = 2, 20_000, 50


def is_tokens(values: pd.Series) -> bool:
    """A column whose values are token lists."""
    first = values.dropna().head(1)
    return len(first) > 0 and isinstance(first.iloc[0], (list, tuple, np.ndarray))


def tokens_profile(values: pd.Series, seed: int = 0) -> TokensColumn:
    """The vocabulary, top tokens and leave-one-out OOV rates of a column of token lists."""
    import pandas as pd
    from collections import Counter

    docs = [set(map(str, v)) for v in values.dropna()]
    df = Counter(t for d in docs for t in d)
    vocabulary = {t for t, n in df.most_common(VOCABULARY) if n >= MIN_DF}
    oov = []
    for v, d in zip(values.dropna(), docs):
        words = [str(t) for t in v]
        # a word of this document is known when other documents hold it at least MIN_DF times
        known = sum(1 for t in words if t in vocabulary and df[t] - (t in d) >= MIN_DF)
        oov.append(1 - known / len(words) if words else np.nan)
    return TokensColumn(kind="tokens", rows=len(values), missing=int(values.isna().sum()),
                        vocabulary=sorted(vocabulary), top={t: n for t, n in df.most_common(TOP_TOKENS)},
                        oov=column_profile(pd.Series(oov, dtype=float), seed))


def oov_rates(values: pd.Series, vocabulary: set[str]) -> pd.Series:
    """The out-of-vocabulary share of each token list (NaN for an empty one)."""
    import pandas as pd

    rates = [np.nan if v is None or not len(v) else 1 - sum(str(t) in vocabulary for t in v) / len(v)
             for v in values]
    return pd.Series(rates, dtype=float)


def column_profile(values: pd.Series, seed: int = 0) -> NumericColumn | CategoricalColumn | TokensColumn:
    """The profile of one column of per-item values."""
    if values.dtype == object and is_tokens(values):
        return tokens_profile(values, seed)
    missing = int(values.isna().sum())
    if is_numeric(values):
        x = values.dropna().to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        edges = np.unique(np.quantile(x, np.linspace(0, 1, BINS + 1))) if len(x) else np.array([])
        rng = np.random.default_rng(seed)
        sample = x if len(x) <= SAMPLE else rng.choice(x, SAMPLE, replace=False)
        return NumericColumn(kind="numeric", rows=len(values), missing=missing, edges=edges.tolist(),
                             bin_counts=np.bincount(bin_of(x, edges), minlength=max(len(edges) - 1, 1)).tolist(),
                             sample=[float(v) for v in np.sort(sample)],
                             mean=float(x.mean()) if len(x) else None, std=float(x.std()) if len(x) else None)
    counts = values.dropna().astype(str).value_counts()
    top = counts.iloc[:TOP_CATEGORIES]
    kept = {str(k): int(v) for k, v in top.items()}
    if len(counts) > TOP_CATEGORIES:
        kept[OTHER] = int(counts.iloc[TOP_CATEGORIES:].sum())
    return CategoricalColumn(kind="categorical", rows=len(values), missing=missing, counts=kept)


def bin_of(x: np.ndarray, edges: np.ndarray | list[float]) -> np.ndarray:
    """The quantile bin of each value; values outside the reference's range fall in the outer bins."""
    inner = np.asarray(edges, dtype=float)[1:-1]
    return np.searchsorted(inner, x, side="right")


def build_profile(frame: pd.DataFrame | None, modality: str, reference: str, predictions: Any = None,
                  prediction_source: str = "", notes: list[str] | None = None, seed: int = 0) -> Profile:
    """The reference profile of ``frame`` (one row per item) and of ``predictions`` (a Series of
    predicted classes or values, or a ready :class:`CategoricalColumn`)."""
    columns = {} if frame is None else {str(c): column_profile(frame[c], seed) for c in frame.columns}
    if predictions is not None and not isinstance(predictions, (NumericColumn, CategoricalColumn)):
        predictions = column_profile(predictions, seed)
    return Profile(format=FORMAT, modality=modality, reference=reference, columns=columns, prediction=predictions,
                   prediction_source=prediction_source if predictions is not None else "", notes=notes or [])


def write_profile(folder: str | os.PathLike, profile: Profile) -> str:
    """Write ``profile.json`` into a run folder (atomically); returns its name."""
    from trainflow.refs import atomic_write_text

    atomic_write_text(Path(folder) / PROFILE_FILE, profile.model_dump_json())
    return PROFILE_FILE


def read_profile(run_dir: str | os.PathLike) -> Profile | None:
    """The run's reference profile; None when the run has none (saved before profiles existed).

    Read as every model file is: a regular file inside the folder, below a size cap, of exactly the
    expected shape; anything else is a DataError naming the file (exit 3)."""
    from trainflow import trust
    from trainflow.files import folder_member, read_capped

    path = Path(run_dir) / PROFILE_FILE
    if not (path.exists() or path.is_symlink()):
        return None
    member = folder_member(run_dir, PROFILE_FILE)
    try:
        raw = json.loads(read_capped(member, "saved file", MAX_PROFILE_BYTES).decode("utf-8"))
        profile = Profile.model_validate(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # ValidationError is a ValueError
        reason = _first_error(exc) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        raise trust.damaged(member, reason) from None
    except RecursionError:
        raise trust.damaged(member, "it is nested too deeply") from None
    problem = _profile_problem(profile)
    if problem:
        raise trust.damaged(member, problem)
    return profile


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "the top level"
    return f"not a trainflow profile: {where}: {err['msg']}"


def _profile_problem(profile: Profile) -> str | None:
    """What the schema cannot say: edges sorted and finite, one count per bin, counts within rows."""
    items = list(profile.columns.items()) + ([("prediction", profile.prediction)] if profile.prediction else [])
    items += [(f"{name} (oov rate)", col.oov) for name, col in profile.columns.items() if isinstance(col, TokensColumn)]
    for name, col in items:
        if isinstance(col, TokensColumn):
            continue  # its oov column is checked as one of the items
        if isinstance(col, NumericColumn):
            edges = np.asarray(col.edges, dtype=float)
            if not np.all(np.isfinite(edges)) or np.any(np.diff(edges) <= 0):
                return f"the bin edges of '{name}' are not finite and increasing"
            if len(col.bin_counts) != max(len(edges) - 1, 1) or not np.all(np.isfinite(col.sample)):
                return f"the bins or sample of '{name}' do not match its edges"
        counted = sum(col.bin_counts) if isinstance(col, NumericColumn) else sum(col.counts.values())
        if counted + col.missing > col.rows:
            return f"'{name}' counts {counted + col.missing} values in {col.rows} rows"
    return None


# ---------------------------------------------------------------- comparing a batch


def psi(ref_counts: np.ndarray, new_counts: np.ndarray) -> float:
    """Population stability index of two histograms on the same bins (empty bins smoothed by half a count)."""
    p = (ref_counts + 0.5) / (ref_counts.sum() + 0.5 * len(ref_counts))
    q = (new_counts + 0.5) / (new_counts.sum() + 0.5 * len(new_counts))
    return float(np.sum((q - p) * np.log(q / p)))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (family-wise error control, uniformly more powerful
    than Bonferroni)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order]))
    out = np.empty_like(p)
    out[order] = adjusted
    return out.tolist()


def _numeric_test(ref: NumericColumn, values: pd.Series) -> dict[str, Any]:
    from scipy.stats import ks_2samp

    x = values.dropna().to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    row: dict[str, Any] = {"test": "Kolmogorov-Smirnov", "new_mean": float(x.mean()) if len(x) else None,
                           "ref_mean": ref.mean}
    if len(x) < MIN_ROWS or len(ref.sample) < MIN_ROWS:
        return {**row, "status": f"too few values ({len(x)} new, {len(ref.sample)} reference; {MIN_ROWS} needed)"}
    result = ks_2samp(np.asarray(ref.sample), x)
    new_counts = np.bincount(bin_of(x, ref.edges), minlength=len(ref.bin_counts))
    return {**row, "statistic": float(result.statistic), "p_value": float(result.pvalue),
            "psi": psi(np.asarray(ref.bin_counts), new_counts)}


def _categorical_test(ref: CategoricalColumn, values: pd.Series) -> dict[str, Any]:
    from scipy.stats import chi2_contingency

    seen = values.dropna().astype(str)
    known = set(ref.counts)
    seen = seen.where(seen.isin(known), OTHER)
    new = seen.value_counts()
    names = list(ref.counts) + ([OTHER] if OTHER not in known and OTHER in new.index else [])
    table = np.array([[ref.counts.get(c, 0) for c in names], [int(new.get(c, 0)) for c in names]])
    table = table[:, table.sum(axis=0) > 0]
    row: dict[str, Any] = {"test": "chi-squared", "unseen": int(new.get(OTHER, 0)) if OTHER not in known else 0}
    if len(seen) < MIN_ROWS or table[0].sum() < MIN_ROWS:
        return {**row, "status": f"too few values ({len(seen)} new, {int(table[0].sum())} reference; "
                                 f"{MIN_ROWS} needed)"}
    if table.shape[1] < 2:
        return {**row, "statistic": 0.0, "p_value": 1.0, "psi": 0.0}
    result = chi2_contingency(table)
    return {**row, "statistic": float(result.statistic), "p_value": float(result.pvalue),
            "psi": psi(table[0], table[1])}


def _missing_test(ref: NumericColumn | CategoricalColumn, values: pd.Series) -> dict[str, Any] | None:
    """A test of the missing share, where either side has missing values."""
    from scipy.stats import chi2_contingency

    missing = int(values.isna().sum())
    if not (missing or ref.missing) or len(values) < MIN_ROWS:
        return None
    table = np.array([[ref.missing, ref.rows - ref.missing], [missing, len(values) - missing]])
    if (table.sum(axis=0) == 0).any():
        return None
    result = chi2_contingency(table)
    return {"test": "chi-squared (missing share)", "statistic": float(result.statistic),
            "p_value": float(result.pvalue)}


def _tokens_rows(base: dict[str, Any], ref: TokensColumn, values: pd.Series) -> list[dict[str, Any]]:
    """A token column: the KS test of its OOV rates, and the shares of the top tokens (PSI, no test: the
    tokens of one document are not independent draws)."""
    from collections import Counter

    rates = oov_rates(values.dropna(), set(ref.vocabulary))
    oov = {**base, "feature": f"{base['feature']} (oov rate)", "kind": "numeric", **_numeric_test(ref.oov, rates)}
    docs = Counter(t for v in values.dropna() for t in set(map(str, v)))
    n_new, n_ref = max(len(values.dropna()), 1), max(ref.rows - ref.missing, 1)
    tops = list(ref.top)
    shares_ref = np.array([ref.top[t] / n_ref for t in tops] + [0.0])
    shares_new = np.array([docs.get(t, 0) / n_new for t in tops] + [0.0])
    top = {**base, "feature": f"{base['feature']} (top {len(tops)} tokens)", "kind": "tokens",
           "test": "- (PSI of document shares)", "psi": psi(shares_ref * n_ref, shares_new * n_new),
           "status": "reported, not tested"}
    return [oov, top]


def compare(profile: Profile, frame: pd.DataFrame | None, predictions: Any = None,
            alpha: float = ALPHA) -> list[dict[str, Any]]:
    """The drift table of a batch against ``profile``: one row per test (a column's values, its
    missing share, the predictions), with Holm-adjusted p-values and ``drift`` True where the
    adjusted p-value is below ``alpha``. A column of the profile absent from ``frame`` is drift."""
    rows: list[dict[str, Any]] = []
    items = [] if frame is None else [(name, col, frame[name] if name in frame.columns else None)
                                      for name, col in profile.columns.items()]
    if profile.prediction is not None and predictions is not None:
        import pandas as pd

        items.append(("(prediction)", profile.prediction, pd.Series(predictions)))
    for name, ref, values in items:
        base = {"feature": name, "kind": ref.kind, "ref_rows": ref.rows,
                "ref_missing_share": round(ref.missing / ref.rows, 4) if ref.rows else None}
        if values is None:
            rows.append({**base, "test": "-", "status": "missing from the batch", "drift": True})
            continue
        base |= {"new_rows": len(values), "new_missing_share": round(float(values.isna().mean()), 4) if len(values)
                 else None}
        if isinstance(ref, TokensColumn):
            rows += _tokens_rows(base, ref, values)
            continue
        if ref.kind == "numeric" and not is_numeric(values):
            import pandas as pd

            values = pd.to_numeric(values, errors="coerce")
        test = _numeric_test if ref.kind == "numeric" else _categorical_test
        rows.append({**base, **test(ref, values)})
        gap = _missing_test(ref, values)
        if gap:
            rows.append({**base, **gap})
    tested = [r for r in rows if "p_value" in r]
    for r, adjusted in zip(tested, holm([r["p_value"] for r in tested])):
        r["p_adjusted"] = adjusted
        r["drift"] = adjusted < alpha
        r["status"] = "drift" if r["drift"] else "ok"
    for r in rows:
        r.setdefault("drift", False)
    return rows


def drifted(rows: list[dict[str, Any]]) -> list[str]:
    """The features (or ``(prediction)``) with drift, each once, in table order."""
    return list(dict.fromkeys(r["feature"] for r in rows if r["drift"]))


def summary_line(rows: list[dict[str, Any]], batch_rows: int) -> str:
    """One line: how many columns drifted (the worst by adjusted p-value first), how many were not tested."""
    tested = [r for r in rows if "p_adjusted" in r]
    untested = [r for r in rows if str(r.get("status", "")).startswith("too few")]
    found = drifted(rows)
    skipped = f"; {len(untested)} not tested (too few values)" if untested else ""
    # a category training never saw: the model reads it as no known category, whatever the test says
    unseen = [f"{r['feature']} ({r['unseen']} row(s))" for r in rows if r.get("unseen")]
    skipped += f"; values training never saw: {', '.join(unseen)}" if unseen else ""
    if not found:
        return f"drift: none found in {len(tested)} tests on {batch_rows} rows (Holm-corrected, alpha {ALPHA}){skipped}"
    worst = sorted((r for r in rows if r["drift"]), key=lambda r: r.get("p_adjusted", 0.0))
    shown = ", ".join(f"{r['feature']} (p={r['p_adjusted']:.2g})" if "p_adjusted" in r else
                      f"{r['feature']} ({r['status']})" for r in worst[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return f"drift: {len(found)} of {len(profile_features(rows))} features drifted on {batch_rows} rows: {shown}{more}{skipped}"


def profile_features(rows: list[dict[str, Any]]) -> list[str]:
    """The features the table covers, each once."""
    return list(dict.fromkeys(r["feature"] for r in rows))


# ---------------------------------------------------------------- report files


DRIFT_TABLE = "drift.csv"
DRIFT_PLOT = "drift.png"
TABLE_COLUMNS = ("feature", "kind", "test", "statistic", "p_value", "p_adjusted", "psi", "drift", "status",
                 "ref_rows", "new_rows", "ref_missing_share", "new_missing_share", "ref_mean", "new_mean", "unseen")


def write_report(rows: list[dict[str, Any]], folder: str | os.PathLike, stem: str = "") -> tuple[Path, Path]:
    """The drift table (CSV) and its plot (-log10 adjusted p per test, the alarm line drawn) in
    ``folder``; ``stem`` prefixes both names (``predictions.drift.csv``). Written atomically."""
    import pandas as pd

    from trainflow.refs import atomic_target

    folder = Path(folder)
    table = folder / f"{stem}{DRIFT_TABLE}"
    plot = folder / f"{stem}{DRIFT_PLOT}"
    frame = pd.DataFrame(rows).reindex(columns=[c for c in TABLE_COLUMNS if any(c in r for r in rows)])
    with atomic_target(table) as tmp:
        frame.to_csv(tmp, index=False)
    with atomic_target(plot) as tmp:
        drift_png(rows, tmp)
    return table, plot


def drift_png(rows: list[dict[str, Any]], path: str | os.PathLike) -> str:
    """Bars of -log10(adjusted p) per test; red where drift was found; the alarm threshold dashed."""
    from matplotlib.figure import Figure

    tested = [r for r in rows if "p_adjusted" in r]
    fig = Figure(figsize=(7, max(2.0, 0.6 + 0.3 * len(tested))))  # under 2 in. the title and label do not fit
    ax = fig.add_subplot()
    labels = [r["feature"] + (" (missing)" if "missing share" in r["test"] else "") for r in tested]
    heights = [min(-np.log10(max(r["p_adjusted"], 1e-300)), 50.0) for r in tested]
    ax.barh(labels, heights, color=["tab:red" if r["drift"] else "tab:blue" for r in tested])
    ax.axvline(-np.log10(ALPHA), color="black", linestyle="--", linewidth=1)
    ax.invert_yaxis()
    ax.set_xlabel(f"-log10 adjusted p-value (drift right of the line, alpha {ALPHA})")
    ax.set_title("Drift against the reference profile")
    fig.tight_layout()
    fig.savefig(path, dpi=80, format="png")
    return str(path)


# ---------------------------------------------------------------- summaries of signals


def signal_summaries(signals: list[np.ndarray], rate: float | None = None) -> pd.DataFrame:
    """One row per signal (a series [T] or [T, channels], or an audio clip): its ``length`` (in seconds
    with a sample ``rate``), ``level`` (mean; for audio the RMS level in dBFS), ``spread`` (standard
    deviation), ``centroid`` (the spectral centroid: the power-weighted mean frequency, in Hz with a rate,
    else in cycles per step) and ``missing`` (the share of missing values), channels averaged."""
    import pandas as pd

    rows = []
    for s in signals:
        x = np.asarray(s, dtype=np.float64)
        x = x.reshape(len(x), -1)
        missing = float(np.isnan(x).mean()) if x.size else 1.0
        x = x[~np.isnan(x).all(axis=1)] if x.size else x  # steps with no value in any channel
        v = np.nanmean(x, axis=1) if x.size else np.zeros(0)
        v = v[np.isfinite(v)]
        row = {"length": len(x) / rate if rate else float(len(x)), "missing": missing}
        if len(v) == 0:
            rows.append({**row, "level": np.nan, "spread": np.nan, "centroid": np.nan})
            continue
        rms = float(np.sqrt(np.mean(v * v)))
        power = np.abs(np.fft.rfft(v - v.mean())) ** 2
        freqs = np.fft.rfftfreq(len(v), d=1.0 / rate if rate else 1.0)
        row["level"] = (20 * np.log10(rms) if rms > 0 else np.nan) if rate else float(v.mean())
        row["spread"] = float(v.std())
        row["centroid"] = float((freqs * power).sum() / power.sum()) if power.sum() > 0 else 0.0
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["length", "level", "spread", "centroid", "missing"])
    return frame if not rate else frame.drop(columns=["missing"])


# ---------------------------------------------------------------- the profile of a run


def profile_run(mod: Any, split: Any, confusion: dict[str, Any], task: str, run_dir: str | os.PathLike,
                seed: int = 0) -> str:
    """Write the reference profile of a run being published into ``run_dir`` (its model files
    exported there): the modality's :meth:`~trainflow.modality.Modality.drift_frame` of the training
    part, and the predictions on the test split: for a classifier the predicted column of the test
    confusion matrix; for a regressor the values predicted for the test rows, where the modality hands
    them over (:meth:`~trainflow.modality.Modality.scoring_rows`). Returns the file's name."""
    notes: list[str] = []
    frame = mod.drift_frame(run_dir, split.train)
    if frame is None:
        notes.append(f"the {mod.name} modality does not summarise its items: only predictions are compared")
    predictions, source = _test_predictions(mod, split, confusion, task, run_dir)
    if predictions is None:
        notes.append(f"predictions on the test split are not profiled for {mod.name} {task} models")
    of = frame.attrs.get("of", len(frame)) if frame is not None else 0
    reference = ("none" if frame is None else f"training split ({len(frame)} items)" if of == len(frame)
                 else f"training split (a seeded {len(frame)} of its {of} items)")
    return write_profile(run_dir, build_profile(frame, mod.name, reference, predictions, source, notes, seed))


def _test_predictions(mod: Any, split: Any, confusion: dict[str, Any], task: str,
                      run_dir: str | os.PathLike) -> tuple[Any, str]:
    if task == "classification" and confusion.get("labels"):
        counts = np.asarray(confusion["matrix"]).sum(axis=0)
        return (CategoricalColumn(kind="categorical", rows=int(counts.sum()), missing=0,
                                  counts={str(c): int(n) for c, n in zip(confusion["labels"], counts)}),
                "test split (predicted classes of the confusion matrix)")
    rows = mod.scoring_rows(split) if task == "regression" else None
    if rows is None:
        return None, ""
    frame = mod.predict(run_dir, rows[0])
    return frame["prediction"], f"test split ({len(frame)} predicted values)"


def reference_items(n: int, seed: int = 0) -> np.ndarray:
    """The items of a training part of ``n`` that its reference profile summarises: all of them up
    to :data:`REFERENCE_ITEMS`, else a seeded sample of that many (in order)."""
    if n <= REFERENCE_ITEMS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, REFERENCE_ITEMS, replace=False))


def prediction_column(frame: pd.DataFrame) -> Any:
    """The predicted class or value of each item of a predictions frame (None for multi-label ones)."""
    return frame["prediction"] if "prediction" in frame.columns else None


# ---------------------------------------------------------------- a batch against a saved run


@dataclass
class DriftCheck:
    """The outcome of comparing one batch with a run's reference profile."""

    line: str  # the one-line summary
    scored: int = 0  # items predicted
    rows: list[dict[str, Any]] = field(default_factory=list)
    table: Path | None = None
    plot: Path | None = None

    @property
    def drifted(self) -> list[str]:
        return drifted(self.rows)


def check_batch(mod: Any, run_dir: str | os.PathLike, input_path: str | os.PathLike, predictions: pd.DataFrame,
                folder: str | os.PathLike, stem: str = "", alpha: float = ALPHA) -> DriftCheck:
    """Compare the batch ``input_path`` (and its ``predictions``) with the run's profile; write the drift
    table and plot into ``folder``. A run saved before profiles existed: no files, the line says so."""
    profile = read_profile(run_dir)
    if profile is None:
        return DriftCheck(scored=len(predictions), line=f"drift: not checked: the model '{run_dir}' was saved before trainflow wrote "
                               f"reference profiles (no {PROFILE_FILE}); retrain it to check drift")
    from trainflow.alerts import silenced

    with silenced():  # predict has just read this input and said what there was to say about it
        frame = mod.drift_frame(run_dir, input_path) if profile.columns else None
    rows = compare(profile, frame, prediction_column(predictions), alpha)
    if not rows:
        return DriftCheck(scored=len(predictions), line="drift: nothing to compare (the profile holds no columns and no predictions)")
    table, plot = write_report(rows, folder, stem)
    # the rows the tests read: a panel's are its series (its predictions are series x steps)
    compared = len(frame) if frame is not None else len(predictions)
    return DriftCheck(line=summary_line(rows, compared), scored=len(predictions), rows=rows, table=table, plot=plot)
