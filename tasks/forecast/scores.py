"""Scores of a forecast and its intervals on one series' test horizon, and their panel aggregates.

MASE divides the MAE by the in-sample MAE of the seasonal naive forecast (lag = the season, 1
without one), so that series of any scale average; sMAPE is the M-competitions' (0..200); the
interval scores: coverage (share of test points inside), width scaled like MASE, and the mean
scaled interval score (MSIS, Gneiting & Raftery 2007, as in M4): width plus 2/alpha times each miss.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def seasonal_scale(train: np.ndarray, season: int) -> float:
    """The in-sample MAE of the seasonal naive forecast (NaN steps skipped); NaN when undefined or 0."""
    train = np.asarray(train, dtype=float)
    lag = season if season >= 2 and len(train) > season else 1
    d = np.abs(train[lag:] - train[:-lag])
    d = d[~np.isnan(d)]
    scale = float(d.mean()) if len(d) else math.nan
    return scale if scale > 0 else math.nan


def seasonal_naive(train: np.ndarray, season: int, horizon: int) -> np.ndarray:
    """The last season repeated (the last value without one); the panel's baseline."""
    train = np.asarray(train, dtype=float)
    lag = season if season >= 2 and len(train) >= season else 1
    last = train[-lag:]
    return np.array([last[i % lag] for i in range(horizon)])


def point(truth: np.ndarray, pred: np.ndarray, scale: float) -> dict[str, float]:
    """MASE, sMAPE, RMSE and MAE over the test steps with a known truth."""
    keep = ~np.isnan(truth)
    t, p = truth[keep], pred[keep]
    if not len(t):
        return {}
    err = np.abs(t - p)
    denom = np.abs(t) + np.abs(p)
    smape = float(np.mean(np.where(denom > 0, 200 * err / np.where(denom > 0, denom, 1), 0.0)))
    return {"mase": float(err.mean() / scale) if math.isfinite(scale) else math.nan, "smape": smape,
            "rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(err.mean())}


def interval(truth: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: int, scale: float) -> dict[str, float]:
    """Coverage, scaled width and MSIS of one level's interval."""
    keep = ~np.isnan(truth)
    t, lo, hi = truth[keep], lower[keep], upper[keep]
    if not len(t):
        return {}
    alpha = 1 - level / 100
    inside = (t >= lo) & (t <= hi)
    penalty = (hi - lo) + 2 / alpha * ((lo - t) * (t < lo) + (t - hi) * (t > hi))
    ok = math.isfinite(scale)
    return {f"coverage_{level}": float(inside.mean()), f"points_{level}": float(len(t)),
            f"width_{level}": float(np.mean(hi - lo) / scale) if ok else math.nan,
            f"msis_{level}": float(np.mean(penalty) / scale) if ok else math.nan}


def aggregate(per_series: dict[str, dict[str, float]], levels: list[int]) -> dict[str, float]:
    """Panel metrics: the mean of each per-series score over the series that have it (coverage
    weighted by test points, i.e. the share of all test points inside)."""
    out: dict[str, float] = {}
    keys = {k for s in per_series.values() for k in s if not k.startswith("points_")}
    for key in sorted(keys):
        if key.startswith("coverage_"):
            level = key.split("_", 1)[1]
            pairs = [(s[key], s[f"points_{level}"]) for s in per_series.values() if key in s]
            out[key] = float(sum(c * n for c, n in pairs) / max(sum(n for _, n in pairs), 1))
            continue
        vals = [s[key] for s in per_series.values() if key in s and math.isfinite(s[key])]
        if vals:
            out[key] = float(np.mean(vals))
    return out


def left_out(per_series: dict[str, dict[str, float]], keys: tuple[str, ...] = ("mase", "smape", "rmse")) -> list[str]:
    """Notes naming, per score, the series its panel mean leaves out (no finite value: a constant
    training part leaves MASE no scale, a test horizon with no known value scores nothing, an
    overflowing forecast has no RMSE), so that a mean over fewer series never passes for all."""
    notes = []
    for key in keys:
        out = [sid for sid, s in per_series.items() if not math.isfinite(s.get(key, math.nan))]
        name = {"smape": "sMAPE"}.get(key, key.upper())
        if out:
            notes.append(f"{name} is the mean over {len(per_series) - len(out)} of {len(per_series)} series; left out, "
                         f"with no finite {name}: {', '.join(out[:10])}{' ...' if len(out) > 10 else ''}")
    return notes


def worst(per_series: dict[str, dict[str, float]], k: int = 10, by: str = "mase") -> list[tuple[str, dict[str, Any]]]:
    """The ``k`` series with the highest ``by`` score."""
    scored = [(sid, s) for sid, s in per_series.items() if math.isfinite(s.get(by, math.nan))]
    return sorted(scored, key=lambda item: -item[1][by])[:k]
