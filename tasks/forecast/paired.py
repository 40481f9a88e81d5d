"""Paired promotion of forecasters: the champion forecasts the challenger's test horizon from the
challenger's training history (the CSV that ``predict`` reads), and both forecasts are scored on it.

What is resampled is chosen for the dependence of forecast errors. The steps of one horizon are not
independent rows: every step is forecast from the same origin, so an error in the level at that origin
moves them all together. So:

- **a panel** resamples its **series** (each with all its steps): series are the panel's independent
  units, and the panel's metric is the mean of a per-series score (as :func:`panels.evaluate` reports
  it: MASE, sMAPE, RMSE or MAE of each series' horizon, MASE scaled by the series' in-sample seasonal
  naive error), so the difference of two forecasters is the mean of per-series differences;
- **a single series** (with or without regressors) has one test window. Backtest origins inside its
  training part would give more windows, but the challenger was fitted on them (the weights of a
  network, the parameters of a statistical model), which would favour it. A bootstrap of the window's
  few steps is too narrow (an equally strong challenger won 16-40 in 200 at horizons 18-6), so for
  RMSE, MAE, MASE and sMAPE (means of a per-step loss) the interval is the Diebold-Mariano one with
  the Harvey-Leybourne-Newbold small-sample correction (Diebold & Mariano 1995, JBES 13(3);
  Harvey, Leybourne & Newbold 1997, IJF 13(2)): the mean per-step loss differential, its Newey-West
  (Bartlett) variance over ``ceil(sqrt(horizon)) - 1`` lags, the HLN factor for that dependence
  length and a t quantile with ``horizon - 1`` degrees of freedom; RMSE's interval is that of the MSE
  difference carried to the RMSE scale (the same sign, so the same decision at tolerance 0). Other
  metrics keep the circular block bootstrap. What no interval from one window can see is an error
  shared by all its steps (a level the origin got wrong): for a single series the rule is best read
  with a tolerance, or a panel used, whose series give real replicates.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from trainflow import trust
from trainflow.errors import DataError
from trainflow.refs import SplitRef, atomic_write_text
from trainflow.tasks.common import metrics as M
from trainflow.tasks.common import uncertainty as U
from trainflow.tasks.common.neural import CONFIG_FILE
from trainflow.tasks.forecast import scores


class Unscorable(DataError):
    """The two forecasts cannot be compared on these steps (a readable sentence)."""


def scoring_rows(split: SplitRef) -> tuple[Path, Any]:
    """The challenger's training history as the CSV ``predict`` reads (a panel in long form; with
    exogenous regressors the test rows follow with the target left empty, their regressors being the
    future values predict needs), written beside the test part, and the test part's frame (the truth)."""
    import pandas as pd

    meta = split.train.meta
    train, test = pd.read_parquet(split.train.path), pd.read_parquet(split.test.path)
    history = train
    exog = list(meta.get("exogenous") or [])
    if exog:
        future = test.copy()
        future[meta["target"]] = np.nan
        history = pd.concat([train, future], ignore_index=True)
    delimiter = (meta.get("loader_options") or {}).get("delimiter") or ","
    path = Path(split.test.path).with_name("scoring_history.csv")
    atomic_write_text(path, history.to_csv(index=False, sep=delimiter))
    return path, test


def paired_difference(run_dir: str | Path, split: SplitRef, metric: str, truth: Any, new: Any, old: Any,
                      seed: int = 0, resamples: int = U.RESAMPLES) -> dict[str, Any]:
    """``metric`` of the two forecasts (``predict`` frames of the challenger ``new`` and the champion
    ``old``) on the test horizon in ``truth``, their difference and its interval (a bootstrap of a
    panel's series; for a single series Diebold-Mariano with the HLN correction: the module docstring)."""
    meta = split.test.meta
    if meta.get("id") or meta.get("exogenous"):
        return _panel(run_dir, split, metric, truth, new, old, seed, resamples)
    cols = list(meta["values"])
    y = truth[cols].to_numpy(dtype=float)
    a, b = (_steps(frame, cols, len(y), who) for frame, who in ((new, "challenger"), (old, "champion")))
    keep = ~np.isnan(y)
    loss = U.MEAN_METRICS.get(metric)

    def value(rows: np.ndarray, pred: np.ndarray) -> float:
        k = keep[rows]
        if loss is not None:  # RMSE, MAE: from the errors directly (1000 resamples of metrics.score cost seconds)
            m = float(np.mean(loss(y[rows][k] - pred[rows][k])))
            return math.sqrt(m) if metric == "rmse" else m
        return M.score([metric], y[rows][k], pred[rows][k])[metric]

    if metric in U.MEAN_METRICS:
        # per-step sums of the cells' losses, scaled so their mean is the mean over all known cells
        steps = keep.any(axis=1)
        per_step = [np.where(keep, loss(y - p), 0.0).sum(axis=1)[steps] * steps.sum() / keep.sum() for p in (a, b)]
        return _dm(per_step[0], per_step[1], metric, resamples) | {"rows": int(keep.sum())}
    return _blocks(len(y), value, a, b, seed, resamples) | {"rows": int(keep.sum())}


def _losses(metric: str, y: np.ndarray, pred: np.ndarray, scale: float) -> np.ndarray | None:
    """Per-step losses whose mean is ``metric`` of one series (as :func:`scores.point` computes it), or
    None where the metric is no such mean."""
    keep = ~np.isnan(y)
    err = np.abs(y - pred)[keep]
    if metric in ("rmse", "mae"):
        return U.MEAN_METRICS[metric](err)
    if metric == "mase":
        return err / scale if math.isfinite(scale) else None
    if metric == "smape":
        denom = np.abs(y[keep]) + np.abs(pred[keep])
        return np.where(denom > 0, 200 * err / np.where(denom > 0, denom, 1), 0.0)
    return None


def _dm(new: np.ndarray, old: np.ndarray, metric: str, resamples: int) -> dict[str, Any]:
    """Both forecasts' ``metric`` from their per-step losses on one window, the difference and its
    Diebold-Mariano interval with the Harvey-Leybourne-Newbold correction (module docstring)."""
    from scipy import stats

    h = len(new)
    finish = math.sqrt if metric == "rmse" else (lambda m: m)
    mean_new, mean_old = float(np.mean(new)), float(np.mean(old))
    out = {"new": finish(mean_new), "old": finish(mean_old), "resamples": resamples, "level": U.LEVEL, "rows": h}
    out["difference"] = out["new"] - out["old"]
    lags = max(1, math.ceil(math.sqrt(h))) - 1
    if h < 3:
        return {**out, "interval": None, "method": f"none: {h} test steps cannot support an interval"}
    d = new - old
    dc = d - d.mean()
    gamma = [float(dc[k:] @ dc[:h - k]) / h for k in range(lags + 1)]
    lrv = gamma[0] + 2 * sum((1 - k / (lags + 1)) * gamma[k] for k in range(1, lags + 1))  # Bartlett: >= 0
    m = lags + 1  # the dependence length HLN correct for (their h: errors MA(m - 1))
    hln = (h + 1 - 2 * m + m * (m - 1) / h) / h
    half = float(stats.t.ppf(0.5 + U.LEVEL / 2, h - 1)) * math.sqrt(max(lrv, 0.0) / h / max(hln, 1e-12))
    low, high = d.mean() - half, d.mean() + half
    if metric == "rmse":  # the MSE difference carried to the RMSE scale: monotone, 0 stays 0
        low, high = (math.sqrt(max(mean_old + v, 0.0)) - out["old"] for v in (low, high))
    return {**out, "interval": [float(low), float(high)],
            "method": f"Diebold-Mariano interval with the Harvey-Leybourne-Newbold correction over the test "
                      f"horizon's {h} steps (Newey-West variance, {lags} lag(s); t with {h - 1} df: one "
                      f"window's errors share its forecast origin)"}


def _blocks(h: int, value: Any, a: np.ndarray, b: np.ndarray, seed: int, resamples: int) -> dict[str, Any]:
    """``value(steps, forecast)`` of both forecasts of one window of ``h`` steps, their difference and
    its interval over circular blocks of ``ceil(sqrt(h))`` consecutive steps, resampled."""
    everything = np.arange(h)
    out = {"new": value(everything, a), "old": value(everything, b)}
    block = max(1, math.ceil(math.sqrt(h)))
    starts = np.random.default_rng(seed).integers(0, h, (resamples, math.ceil(h / block)))
    draws = [value(idx, a) - value(idx, b)
             for idx in ((s[:, None] + np.arange(block)).ravel()[:h] % h for s in starts)]
    return {**out, "difference": out["new"] - out["old"], "interval": U.percentile_interval(np.asarray(draws)),
            "resamples": resamples, "level": U.LEVEL, "rows": h,
            "method": f"paired circular block bootstrap of the test horizon's {h} steps (blocks of {block} "
                      f"consecutive steps: one window's errors share its forecast origin)"}


def _steps(frame: Any, cols: list[str], horizon: int, who: str) -> np.ndarray:
    """A single series' predict frame as [horizon, columns]."""
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise Unscorable(f"the {who} does not forecast the column(s) {', '.join(missing)}")
    if len(frame) != horizon:
        raise Unscorable(f"the {who} forecasts {len(frame)} steps; the test horizon has {horizon}")
    return frame[cols].to_numpy(dtype=float)


def _panel(run_dir: str | Path, split: SplitRef, metric: str, truth: Any, new: Any, old: Any, seed: int,
           resamples: int) -> dict[str, Any]:
    """Per-series scores of both forecasts, their means and the series-resampled interval."""
    import pandas as pd

    from trainflow.tasks.forecast.panel_data import as_long, groups

    config = trust.read_json(Path(run_dir) / CONFIG_FILE)
    meta = split.test.meta
    exog = list(meta.get("exogenous") or [])
    train, id_col, target, _ = as_long(pd.read_parquet(split.train.path), meta, exog)
    test = as_long(truth, meta, exog)[0]
    history = dict(groups(train, id_col))
    if metric not in ("mase", "smape", "rmse", "mae"):
        raise Unscorable(f"'{metric}' is not a per-series score of a panel (mase, smape, rmse, mae)")
    series = []  # (truth, challenger's forecast, champion's forecast, scale) per series
    for sid, part in groups(test, id_col):
        y = part[target].to_numpy(dtype=float)
        season = int((config.get("series", {}).get(sid) or {}).get("state", {}).get("season", 1))
        series.append((y, _series_forecast(new, id_col, sid, len(y), "challenger"),
                       _series_forecast(old, id_col, sid, len(y), "champion"),
                       scores.seasonal_scale(history[sid][target].to_numpy(dtype=float), season)))
    if len(series) == 1:  # a single series with regressors: one window, resampled in blocks of steps
        y, pa, pb, scale = series[0]
        la, lb = _losses(metric, y, pa, scale), _losses(metric, y, pb, scale)
        if la is not None and lb is not None:
            return _dm(la, lb, metric, resamples)
        return _blocks(len(y), lambda rows, pred: scores.point(y[rows], pred[rows], scale).get(metric, math.nan),
                       pa, pb, seed, resamples)
    a = np.asarray([scores.point(y, pa, scale).get(metric, math.nan) for y, pa, _, scale in series])
    b = np.asarray([scores.point(y, pb, scale).get(metric, math.nan) for y, _, pb, scale in series])
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 2:
        raise Unscorable(f"fewer than two series have '{metric}' for both forecasts")
    d = (a - b)[both]
    value_new, value_old = float(np.nanmean(a)), float(np.nanmean(b))  # each as its own evaluation reports it
    return {"new": value_new, "old": value_old, "difference": value_new - value_old,
            "interval": U.mean_interval(d, resamples, seed), "resamples": resamples, "level": U.LEVEL,
            "rows": int(len(test)), "series": int(both.sum()),
            "method": f"paired bootstrap of the {int(both.sum())} series (each with all its test steps): the mean "
                      f"of per-series {metric} differences"}


def _series_forecast(frame: Any, id_col: str, sid: str, horizon: int, who: str) -> np.ndarray:
    """One series' first ``horizon`` forecast steps from a panel's predict frame."""
    if id_col not in frame.columns or "prediction" not in frame.columns:
        raise Unscorable(f"the {who}'s forecasts have no '{id_col}' and 'prediction' columns")
    rows = frame[frame[id_col].astype(str) == sid].sort_values("step")
    if len(rows) < horizon:
        raise Unscorable(f"the {who} forecasts {len(rows)} steps of series '{sid}'; its test horizon has {horizon}")
    return rows["prediction"].to_numpy(dtype=float)[:horizon]
