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

Exogenous regressors (``forecast.exogenous``) are extra input channels: each is transformed like its
series' target (the same difference, standardized by the series' own training history, per column;
no log), and a window reads them over its ``lookback`` steps and the ``horizon`` steps it forecasts
(known future values; the target channel is 0 there), so the network reads ``lookback + horizon``
steps of ``1 + k`` channels.
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


def exog_fc(fc: ForecastConfig) -> ForecastConfig:
    """The transform settings of the regressors: the target's difference and scaling, never a log
    (a 0/1 holiday has no logarithm; the difference is what keeps them aligned with the target's)."""
    return fc.model_copy(update={"transform": "none"})


def exog_scaler(fc: ForecastConfig, missing: str, x: np.ndarray | None, source: str = "") -> SeriesTransform | None:
    """The regressors' transform fitted on ``x`` [t, k] (the series' own history, per column); None without."""
    if x is None:
        return None
    return SeriesTransform(exog_fc(fc), missing).fit(np.asarray(x, dtype=float), source)


def padded(z: np.ndarray, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``lookback`` values of ``z`` [t] (or [t, k]) left-padded with zeros, and the mask (1 where given)."""
    z = z[-lookback:]
    x, m = np.zeros((lookback, *z.shape[1:]), np.float32), np.zeros(lookback, np.float32)
    x[lookback - len(z):], m[lookback - len(z):] = z, 1
    return x, m


def window_input(z: np.ndarray, fc: ForecastConfig, e: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A window's input (x [steps, channels], mask [steps]) after the transformed history ``z`` [t]: its
    last ``lookback`` values; with the transformed regressors ``e`` [t + horizon, k] (aligned with ``z``,
    then the horizon's known values) their values at those steps and at the ``horizon`` steps after,
    where the target channel is 0 and the mask 1 (the regressors are given)."""
    x, m = padded(z, fc.lookback)
    if e is None:
        return x[:, None], m
    h = fc.horizon
    past = padded(e[:len(z)], fc.lookback)[0]
    future = np.concatenate([np.zeros((h, 1), np.float32), e[len(z):len(z) + h].astype(np.float32)], axis=1)
    assert len(future) == h, "the regressors must reach the end of the horizon"
    x = np.concatenate([np.concatenate([x[:, None], past], axis=1), future])
    return x, np.concatenate([m, np.ones(h, np.float32)])


def input_steps(fc: ForecastConfig, exogenous: list[str]) -> int:
    """The steps a window reads: the lookback, and the horizon's too with regressors."""
    return fc.lookback + (fc.horizon if exogenous else 0)


def windows(z: np.ndarray, fc: ForecastConfig, last: int | None = None, e: np.ndarray | None = None
            ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(input, mask, target) of every window of ``z`` [t] whose input has at least :func:`min_input`
    steps and whose target ends by ``last`` (default: the end); ``e`` [t, k]: the transformed
    regressors aligned with ``z``."""
    h, end = fc.horizon, len(z) if last is None else last
    return [(*window_input(z[:o], fc, None if e is None else e[:o + h]), z[o:o + h].astype(np.float32))
            for o in range(min_input(fc), end - h + 1)]


def tensors(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[Any, Any, Any]:
    """The training loop's tensors (x [n, steps, channels], mask [n, steps], target [n, horizon])."""
    import torch

    x, m, y = (np.stack(col) for col in zip(*rows))
    return torch.from_numpy(x), torch.from_numpy(m), torch.from_numpy(y)


#: what a network forecasts from: the series' transform, its history y [t], and with regressors their
#: transform and values [t + horizon, k] (the history's, then the horizon's)
Item = tuple[SeriesTransform, np.ndarray, SeriesTransform | None, np.ndarray | None]


def raw_forecasts(model: Any, fc: ForecastConfig, items: list[Item]) -> list[np.ndarray]:
    """The next ``horizon`` raw values [H] after each history ``y`` [t], scaled by its transform."""
    import torch

    from trainflow.tasks.common.training import predict

    if not items:
        return []
    inputs = [window_input(tf.forward(y[:, None])[:, 0], fc, None if xt is None else xt.forward(x))
              for tf, y, xt, x in items]
    x = torch.from_numpy(np.stack([i[0] for i in inputs]))
    out = predict(model, (x, torch.from_numpy(np.stack([i[1] for i in inputs]))), device="cpu").numpy()
    return [tf.inverse(o[:, None], y[:, None])[:, 0] for (tf, y, _, _), o in zip(items, out)]


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


def _stats_ok(mean: Any, std: Any, k: int) -> bool:
    """``k`` finite means and ``k`` positive finite stds (a series' saved scaling)."""
    return all(isinstance(v, list) and len(v) == k and all(isinstance(a, (int, float)) and math.isfinite(a) for a in v)
               for v in (mean, std)) and all(a > 0 for a in std)


def check_scaling(record: dict[str, Any], k: int) -> str | None:
    """What is wrong with the scaling a series that the network forecasts keeps (None when usable):
    its own, and its ``k`` regressors'."""
    if not _stats_ok(record.get("mean"), record.get("std"), 1):
        return "without its scaling (one finite mean and one positive std)"
    if k and not _stats_ok(record.get("exog_mean"), record.get("exog_std"), k):
        return (f"without its regressors' scaling ({k} finite means and {k} positive stds, "
                f"'exog_mean' and 'exog_std')")
    return None
