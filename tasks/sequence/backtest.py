"""Rolling-origin backtesting inside the training part of a series.

Each forecast origin cuts the training part: a candidate forecaster is fitted on the steps before
the origin and forecasts the ``horizon`` steps after it, which are scored against the truth. The
origins are the last ``count`` cut points, ``step`` apart (the latest leaves exactly ``horizon``
steps after it), each with at least ``min_history`` steps before it. The test split is never
touched: it stays for the final, untouched comparison in the report.
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
        return {"origins": self.origins, "horizon": self.horizon, "errors": self.errors, "failed": self.failed}


def run(candidates: dict[str, Callable[[np.ndarray], np.ndarray]], values: np.ndarray, cuts: list[int],
        horizon: int) -> Backtest:
    """Score each candidate (a function: the history [t, C] -> the next ``horizon`` values [H, C]) at
    each origin of ``cuts`` on ``values`` [n, C]. A candidate that raises DataError at an origin is
    left out, with the reason in ``failed``."""
    bt = Backtest(origins=list(cuts), horizon=horizon)
    for name, forecast in candidates.items():
        errs = []
        try:
            for o in cuts:
                errs.append(rmse(values[o:o + horizon], forecast(values[:o])))
        except DataError as exc:
            bt.failed[name] = str(exc)
            continue
        bt.errors[name] = errs
    return bt
