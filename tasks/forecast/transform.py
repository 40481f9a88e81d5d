"""The transform chain of a series for networks: missing values, log, differencing, standardization."""

from __future__ import annotations

from typing import Any

import numpy as np

from trainflow.errors import DataError
from trainflow.tasks.forecast.config import ForecastConfig, diff_lag

# ---------------------------------------------------------------- the transform chain (networks)


class SeriesTransform:
    """Missing values -> log -> differencing -> standardization, fitted on the past only, and back."""

    def __init__(self, fc: ForecastConfig, missing: str = "linear"):
        self.fc, self.missing = fc, missing

    def fill(self, v: np.ndarray) -> np.ndarray:
        import pandas as pd

        if not np.isnan(v).any():
            return v
        frame = pd.DataFrame(v)
        if self.missing == "ffill":
            frame = frame.ffill().bfill()
        elif self.missing == "bfill":
            frame = frame.bfill().ffill()
        else:
            frame = frame.interpolate(method="linear", limit_direction="both")
        return frame.to_numpy()

    def level(self, v: np.ndarray, source: str = "") -> np.ndarray:
        """Filled (and logged) values: the series before differencing."""
        v = self.fill(np.asarray(v, dtype=np.float64))
        if self.fc.transform == "log":
            if (v <= 0).any():
                raise DataError(f"forecast.transform is 'log' but the series{f' in {source!r}' if source else ''} "
                                f"has values <= 0 (smallest {v.min():g}); use transform: none.")
            v = np.log(v)
        return v

    def diff(self, level: np.ndarray) -> np.ndarray:
        lag = diff_lag(self.fc)
        return level[lag:] - level[:-lag] if lag else level

    def fit(self, past: np.ndarray, source: str = "") -> SeriesTransform:
        """Learn the standardization of the differenced training past."""
        z = self.diff(self.level(past, source))
        self.mean_ = z.mean(0).tolist() if self.fc.scale == "standard" else [0.0] * z.shape[1]
        std = z.std(0) if self.fc.scale == "standard" else np.ones(z.shape[1])
        self.std_ = np.where(std > 1e-8, std, 1.0).tolist()
        return self

    def forward(self, v: np.ndarray, source: str = "") -> np.ndarray:
        """Raw values [t, C] -> standardized differences [t - lag, C]."""
        return (self.diff(self.level(v, source)) - np.asarray(self.mean_)) / np.asarray(self.std_)

    def inverse(self, z_future: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Standardized future differences [H, C] after raw ``history`` [t, C] -> raw future values [H, C]."""
        d = z_future * np.asarray(self.std_) + np.asarray(self.mean_)
        level = list(self.level(history))
        lag = diff_lag(self.fc)
        for step in d:
            level.append(step + level[-lag] if lag else step)
        future = np.asarray(level[len(history):])
        return np.exp(future) if self.fc.transform == "log" else future

    def state(self) -> dict[str, Any]:
        return {"forecast": self.fc.model_dump(), "missing": self.missing, "mean": self.mean_, "std": self.std_}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SeriesTransform:
        t = cls(ForecastConfig.model_validate(state["forecast"]), state["missing"])
        t.mean_, t.std_ = state["mean"], state["std"]
        return t


def windows(z: np.ndarray, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (lookback -> horizon) window of ``z`` [t, C]: inputs [n, lookback, C], targets [n, horizon * C]."""
    n = len(z) - lookback - horizon + 1
    x = np.stack([z[i:i + lookback] for i in range(n)]).astype(np.float32)
    y = np.stack([z[i + lookback:i + lookback + horizon].reshape(-1) for i in range(n)]).astype(np.float32)
    return x, y
