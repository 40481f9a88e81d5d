"""Rolling-origin backtesting inside the training part of a series.

The origins are the last ``count`` cut points of the training part, ``step`` apart (the latest
leaves exactly ``horizon`` steps after it), each with at least ``min_history`` steps before it. A
candidate forecaster is fitted once, on the steps before the earliest origin; at every origin it
forecasts the ``horizon`` steps after it from the history up to that origin (statistical models
re-run their filter with the fitted parameters, networks read their last ``lookback`` steps), and
the forecast is scored against the truth. Fitting once (rolling origin with fixed parameters)
treats every candidate alike and keeps the cost at one extra fit per candidate. The test split is
never touched: it stays for the final comparison in the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainflow.errors import DataError


def origins(n: int, horizon: int, count: int, step: int, min_history: int) -> list[int]:
    """Up to ``count`` origins (oldest first) in a training part of ``n`` steps."""
    cuts = (n - horizon - k * step for k in range(count))
    return sorted(o for o in cuts if o >= max(min_history, 1))


def rmse(truth: np.ndarray, pred: np.ndarray) -> float:
    """Root mean squared error over the steps where the truth is known."""
    keep = ~np.isnan(truth)
    return float(np.sqrt(np.mean((truth[keep] - pred[keep]) ** 2))) if keep.any() else math.nan


@dataclass
class Backtest:
    """RMSE per origin for each candidate; ``failed`` says why a candidate has no score."""

    origins: list[int]
    horizon: int
    errors: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    #: truth - forecast at every origin (rows) and step of the first column, for conformal intervals
    residuals: dict[str, list[list[float | None]]] = field(default_factory=dict)

    def mean(self, name: str) -> float:
        errs = self.errors.get(name, [])
        return float(np.mean(errs)) if errs and not any(math.isnan(e) for e in errs) else math.nan

    def ranking(self, names: list[str] | None = None) -> list[tuple[str, float]]:
        """Candidates with a score, best (lowest mean RMSE) first; ties keep the given order."""
        names = names if names is not None else list(self.errors)
        scored = [(n, self.mean(n)) for n in names if not math.isnan(self.mean(n))]
        return sorted(scored, key=lambda item: item[1])

    def rows(self, times: list[Any]) -> list[dict[str, Any]]:
        """The report table: one row per candidate, RMSE at each origin (named by its time) and the mean."""
        labels = [f"RMSE from {times[o]}" if o < len(times) else f"RMSE from step {o}" for o in self.origins]
        return [{"forecaster": name, **{lab: round(e, 3) for lab, e in zip(labels, errs)},
                 "mean RMSE": round(self.mean(name), 3)} for name, errs in self.errors.items()]

    def as_dict(self) -> dict[str, Any]:
        return {"origins": self.origins, "horizon": self.horizon, "errors": self.errors, "failed": self.failed,
                "residuals": self.residuals}


Forecast = Callable[[np.ndarray], np.ndarray]


def run(candidates: dict[str, Callable[[np.ndarray], Forecast]], values: np.ndarray, cuts: list[int],
        horizon: int) -> Backtest:
    """Score each candidate at each origin of ``cuts`` on ``values`` [n, C]. A candidate is a function
    that fits on a history [t, C] and returns its forecast function (a history -> the next
    ``horizon`` values [H, C]). A candidate that raises DataError is left out, with the reason in
    ``failed``."""
    bt = Backtest(origins=list(cuts), horizon=horizon)
    for name, fit in candidates.items():
        errs, res = [], []
        try:
            forecast = fit(values[:cuts[0]]) if cuts else None
            for o in cuts:
                pred = forecast(values[:o])
                errs.append(rmse(values[o:o + horizon], pred))
                diff = values[o:o + horizon, 0] - pred[:len(values[o:o + horizon]), 0]
                res.append([None if math.isnan(d) else float(d) for d in diff])
        except DataError as exc:
            bt.failed[name] = str(exc)
            continue
        bt.errors[name], bt.residuals[name] = errs, res
    return bt
