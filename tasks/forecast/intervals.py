"""Prediction intervals of a single series' forecast: a statistical model's own, or conformal ones.

A network has no forecast variance of its own. Its interval comes from the rolling-origin backtest
on the training part: the absolute errors at every origin and step, each divided by the square root
of its step (errors grow with the horizon, roughly as a random walk's), give one pooled sample; its
finite-sample conformal quantile (the ceil((n + 1) level)-th smallest of n) times sqrt(step) is the
half-width at that step. Few origins give few errors: the report says how many.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainflow.tasks.forecast import statistical


def conformal(residuals: list[list[float | None]], pred: np.ndarray, levels: list[int]
              ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Bounds [H] around ``pred`` [H] from backtest ``residuals`` (origins x steps, truth - forecast);
    {} without residuals; a level the sample is too small for (n < 1 / (1 - level)) is left out."""
    h = len(pred)
    scaled = [abs(e) / math.sqrt(j + 1) for row in residuals for j, e in enumerate(row[:h])
              if e is not None and math.isfinite(e)]
    n, bands = len(scaled), {}
    for level in levels:
        rank = math.ceil((n + 1) * level / 100)
        if not n or rank > n:
            continue
        q = float(np.sort(scaled)[rank - 1])
        half = q * np.sqrt(np.arange(1, h + 1))
        bands[level] = (pred - half, pred + half)
    return bands


def statistical_bands(state: dict[str, Any], level: np.ndarray, horizon: int, levels: list[int]
                      ) -> list[dict[int, tuple[np.ndarray, np.ndarray]]]:
    """A statistical forecaster's own bounds, per column of ``level`` [t, C] (filled, logged)."""
    return [statistical.forecast_one(col, level[:, c], horizon, levels, log=state["log"])[1]
            for c, col in enumerate(state["columns"])]
