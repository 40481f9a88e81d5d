"""One network over every series of a panel (a global forecaster): ``model.name`` a network.

    fit: each series scaled by its own training history (the networks' transform: missing values,
    log, the ``forecast.detrend`` difference, standardization) -> windows from every series -> one
    network trained on all of them with the shared loop, its epochs chosen on a validation part
    carved by time (each series' last ``horizon`` training steps, never the test) -> a fresh network
    trained on every window for that many epochs -> conformal intervals from the first network's
    errors on the carved part, through :mod:`.calibration` -> safetensors + JSON
    forecast: each series' last ``lookback`` steps through the network, back to the series' scale

A series the model has not seen is forecast the same way, scaled by its own history: the network
reads any series. A series too short for the transform and half a lookback falls back to
``forecast.fallback`` (a statistical model, its own intervals), with a note.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from trainflow.registry import component
from trainflow.tasks.forecast import calibration, scores
from trainflow.tasks.forecast.config import ForecastConfig, diff_lag
from trainflow.tasks.forecast.timeaxis import TimeAxis
from trainflow.tasks.forecast.transform import SeriesTransform

#: the longest lookback a saved model may declare (a larger one is damage, refused before building)
MAX_LOOKBACK = 10_000


class GlobalMlpConfig(BaseModel):
    """Options of the ``global_mlp`` network."""

    model_config = ConfigDict(extra="forbid")
    # Two layers of 256 train in seconds on a few thousand windows on a CPU (N-BEATS's blocks are
    # four layers of 512; a panel of a few hundred short series does not need that many)
    hidden: list[int] = Field([256, 256], min_length=1, description="Units of each dense layer")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout after each dense layer")


def global_recipe(n: int) -> dict[str, Any]:
    """Training defaults for a network over a panel's ``n`` windows: batch 256 (128 below 2,000
    windows), up to 200 epochs, stopped after 10 without a better loss on the validation part
    (each series' last window, carved by time)."""
    return {"batch_size": 256 if n >= 2000 else 128, "epochs": 200, "patience": 10}


@component("model", "global_mlp", GlobalMlpConfig, tasks=("forecasting",), modality="forecast", random=True,
           neural=True, train_recipe=global_recipe)
def build_global_mlp(config: GlobalMlpConfig, *, in_channels: int, out_features: int, lookback: int = 24,
                     **_: Any) -> Any:
    """Dense layers over the last ``lookback`` steps and their mask; on a panel one network over
    every series (each scaled by its own history), on a single series trained like the others."""
    from trainflow.tasks.forecast.window_net import WindowMlp

    return WindowMlp(in_channels, out_features, lookback, config.hidden, config.dropout)


# ---------------------------------------------------------------- windows


def resolve(fc: ForecastConfig, axis: TimeAxis, longest: np.ndarray) -> tuple[ForecastConfig, list[str]]:
    """``fc`` with the panel's season (``forecast.season``, else detected on its ``longest`` series:
    one differencing lag for every series) and the lookback (two seasons, else two horizons)."""
    from trainflow.tasks.forecast.plan import detect_season

    if fc.season:
        season, why = fc.season, f"season {fc.season} (forecast.season)"
    else:
        filled = SeriesTransform(fc).fill(np.asarray(longest, dtype=float)[:, None])
        season, why = detect_season(filled, axis)
        why += " (on the panel's longest series)"
    lookback = fc.lookback or (2 * season if season >= 2 else 2 * fc.horizon)
    resolved = fc.model_copy(update={"season": season, "lookback": lookback})
    return resolved, [f"{why}; {fc.detrend} lag {diff_lag(resolved)}, lookback {lookback}"]


def min_input(fc: ForecastConfig) -> int:
    """The fewest transformed steps a window reads (half the lookback; the rest padded and masked)."""
    return max(2, (fc.lookback or 2) // 2)


def long_enough(fc: ForecastConfig, y: np.ndarray) -> bool:
    """Whether ``y`` has the steps of the difference and a forecast input."""
    return len(y) >= diff_lag(fc) + min_input(fc)


def scaler(fc: ForecastConfig, missing: str, y: np.ndarray, source: str = "") -> SeriesTransform | None:
    """The series' transform fitted on ``y`` (its own statistics), or None when it is too short."""
    if not long_enough(fc, y):
        return None
    return SeriesTransform(fc, missing).fit(np.asarray(y, dtype=float)[:, None], source)


def padded(z: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``lookback`` values of ``z`` [t] left-padded with zeros, and the mask (1 where given)."""
    z = z[-lookback:]
    x, m = np.zeros(lookback, np.float32), np.zeros(lookback, np.float32)
    x[lookback - len(z):], m[lookback - len(z):] = z, 1
    return x, m


def windows(z: np.ndarray, fc: ForecastConfig, last: int | None = None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(input, mask, target) of every window of ``z`` [t] whose input has at least :func:`min_input`
    steps and whose target ends by ``last`` (default: the end)."""
    h, end = fc.horizon, len(z) if last is None else last
    return [(*padded(z[:o], fc.lookback), z[o:o + h].astype(np.float32)) for o in range(min_input(fc), end - h + 1)]


def tensors(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[Any, Any, Any]:
    """The training loop's tensors (x [n, lookback, 1], mask [n, lookback], target [n, horizon])."""
    import torch

    x, m, y = (np.stack(col) for col in zip(*rows))
    return torch.from_numpy(x[..., None]), torch.from_numpy(m), torch.from_numpy(y)


def raw_forecasts(model: Any, fc: ForecastConfig, items: list[tuple[SeriesTransform, np.ndarray]]) -> list[np.ndarray]:
    """The next ``horizon`` raw values [H] after each history ``y`` [t], scaled by its transform."""
    import torch

    from trainflow.tasks.common.training import predict

    if not items:
        return []
    inputs = [padded(tf.forward(y[:, None])[:, 0], fc.lookback) for tf, y in items]
    x = torch.from_numpy(np.stack([i[0] for i in inputs])[..., None])
    out = predict(model, (x, torch.from_numpy(np.stack([i[1] for i in inputs]))), device="cpu").numpy()
    return [tf.inverse(o[:, None], y[:, None])[:, 0] for (tf, y), o in zip(items, out)]


def interval_scale(y: np.ndarray, season: int) -> float:
    """A series' unit of interval width: its in-sample seasonal naive MAE (MASE's scale), else its
    spread, else 1; the calibration factors are in this unit, so they pool over series of any scale."""
    s = scores.seasonal_scale(y, season)
    if not math.isfinite(s):
        s = float(np.nanstd(y))
    return s if math.isfinite(s) and s > 0 else 1.0


def bands(mean: np.ndarray, scale: float, factors: dict[int, list[float]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The calibrated bounds: a half-width of ``scale`` at each level with a factor, scaled by it per step."""
    unit = {lv: (mean - scale, mean + scale) for lv in factors}
    return calibration.scaled(mean, unit, factors)
