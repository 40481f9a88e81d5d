"""Prediction intervals of a panel calibrated on its backtest (split conformal, pooled over the series).

A statistical model's own interval assumes its form is right; over a panel some forecasters' are too
narrow (damped ETS covered 71 % of M1 monthly's test points at 80 %), others too wide (Theta 95 %).
At every backtest origin and step, the error (truth - forecast) is divided by the interval's
half-width on its side (the upper one for an error above the forecast, so a skewed interval keeps its
shape). Over all the panel's series that backtested a forecaster, the conformal quantile of these
ratios at the level (the ceil((n + 1) level)-th smallest of n) is the factor that forecaster's
half-widths are multiplied by at that step: the intervals then cover their level of the backtest
errors. Every series that backtested the forecaster counts, not only those that chose it (their
backtest errors are low by selection). A step with too few ratios for its own quantile
(fewer than ``TAIL`` beyond it) takes the factor of all steps pooled; with fewer still the model's
own interval stays. Chosen on the training parts only: the test horizon is never seen.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: ratios expected beyond a step's quantile for it to have its own factor (5 / (1 - level) in all)
TAIL = 5

Bands = dict[int, tuple[np.ndarray, np.ndarray]]


def ratios(truths: list[np.ndarray], outs: list[tuple[np.ndarray, Bands]], levels: list[int]
           ) -> dict[int, list[list[float]]]:
    """Per level, rows (origins) of error / half-width at each step; NaN where the truth is missing
    or the interval has no width on that side while the error is zero (undefined)."""
    found: dict[int, list[list[float]]] = {lv: [] for lv in levels}
    for truth, (mean, bands) in zip(truths, outs):
        err = truth - mean[:len(truth)]
        for lv in levels:
            lo, hi = bands[lv]
            half = np.where(err >= 0, hi[:len(truth)] - mean[:len(truth)], mean[:len(truth)] - lo[:len(truth)])
            with np.errstate(divide="ignore", invalid="ignore"):
                r = np.where(half > 0, np.abs(err) / np.where(half > 0, half, 1), np.where(err == 0, 0.0, np.inf))
            found[lv].append([float(v) for v in np.where(np.isnan(err), np.nan, r)])
    return found


def _quantile(values: np.ndarray, level: int) -> float:
    """The conformal quantile: the ceil((n + 1) level)-th smallest of n (NaN when n is too small)."""
    n = len(values)
    rank = math.ceil((n + 1) * level / 100)
    return float(np.sort(values)[rank - 1]) if n and rank <= n else math.nan


def factors(samples: list[dict[int, list[list[float]]]], levels: list[int], horizon: int) -> dict[int, list[float]]:
    """Per level, the factor [horizon] for each step from the ratios of many series (``samples``: one
    :func:`ratios` result each); a level without a finite factor is left out (the model's own)."""
    out = {}
    for lv in levels:
        rows = [row[:horizon] + [math.nan] * (horizon - len(row)) for s in samples for row in s.get(lv, [])]
        if not rows:
            continue
        grid = np.asarray(rows, dtype=float)
        pooled = _quantile(grid[~np.isnan(grid)], lv)
        if not math.isfinite(pooled):
            continue
        need = TAIL * 100 / (100 - lv)
        steps = []
        for j in range(horizon):
            col = grid[:, j][~np.isnan(grid[:, j])]
            q = _quantile(col, lv) if len(col) >= need else pooled
            steps.append(q if math.isfinite(q) else pooled)
        out[lv] = steps
    return out


def held_out(samples: list[dict[int, list[list[float]]]], levels: list[int], horizon: int) -> dict[int, float]:
    """A backtest of the calibration itself: per level, the share of the latest origin's errors (of
    every series with two origins or more) that factors from the earlier origins cover."""
    both = [s for s in samples if all(len(s.get(lv, [])) >= 2 for lv in levels)]
    found = factors([{lv: s[lv][:-1] for lv in levels} for s in both], levels, horizon)
    out = {}
    for lv, f in found.items():
        last = np.asarray([s[lv][-1][:horizon] + [math.nan] * (horizon - len(s[lv][-1])) for s in both], dtype=float)
        known = ~np.isnan(last)
        if known.any():
            out[lv] = float(np.mean((last <= np.asarray(f)[None, :])[known]))
    return out


def scaled(mean: np.ndarray, bands: Bands, factor: dict[int, list[float]]) -> Bands:
    """``bands`` with each half-width multiplied by its level's factor at each step (levels without
    a factor unchanged); a level's interval kept at least as wide as a lower level's (each factor is
    its own estimate, and a 95 % interval inside the 80 % one would read as nonsense)."""
    out, inner = {}, None
    for lv, (lo, hi) in sorted(bands.items()):
        f = np.asarray(factor[lv][:len(mean)]) if lv in factor else 1.0
        lo, hi = mean - f * (mean - lo), mean + f * (hi - mean)
        if inner is not None:
            lo, hi = np.minimum(lo, inner[0]), np.maximum(hi, inner[1])
        out[lv] = inner = (lo, hi)
    return out


def as_json(found: dict[str, dict[int, list[float]]]) -> dict[str, dict[str, list[float]]]:
    """Factors by forecaster and level, with the levels as JSON keys."""
    return {name: {str(lv): [round(v, 6) for v in f] for lv, f in by_level.items()} for name, by_level in found.items()}


def of_json(saved: Any, name: str) -> dict[int, list[float]]:
    """A forecaster's factors from a saved (checked) panel config's ``calibration``."""
    return {int(lv): f for lv, f in (saved or {}).get(name, {}).items()}


def check(saved: Any, horizon: int, names: tuple[str, ...]) -> str | None:
    """What is wrong with a saved ``calibration`` mapping (None when usable)."""
    if not isinstance(saved, dict):
        return "a 'calibration' that is not a mapping of forecasters"
    for name, by_level in saved.items():
        if name not in names or not isinstance(by_level, dict):
            return f"a calibration for {name!r}, not a known forecaster"
        for lv, f in by_level.items():
            ok = isinstance(f, list) and len(f) == horizon and all(
                isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 1e6 for v in f)
            if not (lv.isdigit() and 1 <= int(lv) <= 99) or not ok:
                return f"calibration factors of {name!r} that are not {horizon} finite numbers per level"
    return None


def summary(found: dict[str, dict[int, list[float]]]) -> list[dict[str, Any]]:
    """The report's rows: per forecaster and level, the factor's mean and range over the steps."""
    return [{"forecaster": name, "level": f"{lv}%", "mean factor": round(float(np.mean(f)), 3),
             "first step": round(f[0], 3), "last step": round(f[-1], 3)}
            for name, by_level in found.items() for lv, f in sorted(by_level.items())]
