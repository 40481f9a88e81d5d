"""A plain script doing a forecast panel's work by hand: damped ETS per series with calibrated intervals.

    python benchmarks/forecast_panel_plain.py PANEL.csv [--horizon 18] [--season 12] [--workers 2]

The comparison side of ``forecast_panel_scale.py``: statsmodels and joblib only, the same statistical
work as ``trainflow run`` with ``model: {name: ets, trend: add_damped}`` on a panel: per series (its
last ``horizon`` steps held out) a rolling-origin backtest at 3 origins one season apart (the
seasonal form chosen by AICc at the first and refitted at the others, searched at each when the
first is too short for the season's forms), a final fit on the training part
with the form chosen by AICc, its forecast and 80 / 95 % intervals; then one factor per step and
level that scales the half-widths to cover the backtest errors pooled over the series (conformal),
and the test's mean MASE and coverage. Prints one JSON line of results.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings

import numpy as np

LEVELS = (80, 95)


def ets(y: np.ndarray, seasonal: str | None, season: int):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    return ETSModel(y, error="add", trend="add", damped_trend=True, seasonal=seasonal,
                    seasonal_periods=season if seasonal else None)


def best_fit(y: np.ndarray, season: int, forms: list[str | None]):
    """The lowest AICc of the seasonal ``forms`` (None: no season)."""
    best = None
    for seasonal in forms:
        try:
            res = ets(y, seasonal, season).fit(disp=False)
        except (ValueError, np.linalg.LinAlgError, ZeroDivisionError, FloatingPointError):
            continue
        if best is None or res.aicc < best[1].aicc:
            best = (seasonal, res)
    return best


def bands(res, n: int, h: int) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]]]:
    pred = res.get_prediction(start=n, end=n + h - 1, rng=np.random.default_rng(0))
    out = {}
    for lv in LEVELS:
        frame = pred.summary_frame(alpha=1 - lv / 100)
        out[lv] = (frame["pi_lower"].to_numpy(), frame["pi_upper"].to_numpy())
    return np.asarray(pred.predicted_mean), out


def one_series(y: np.ndarray, h: int, season: int) -> dict:
    """Backtest ratios, test forecast and bounds of one series (y: its training part)."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = season if len(y) >= 2 * season else 1
        forms = [None, "add"] + (["mul"] if (y > 0).all() else [])
        allowed = lambda n: [f for f in forms if f is None or (s >= 2 and n >= 2 * s + 2)] or [None]  # noqa: E731
        cuts = sorted(o for o in (len(y) - h - k * min(s, h) if s >= 2 else len(y) - h - k * h for k in range(3))
                      if o >= max(s, 6))
        ratios = {lv: [] for lv in LEVELS}
        if cuts and cuts[0] >= 10:
            form = best_fit(pd.Series(y[:cuts[0]]), s, allowed(cuts[0]))
            pin = cuts[0] >= 3 * s + 2  # a first origin too short for the season's forms: each origin searches
            for o in cuts:
                if form is None:
                    break
                res = (form[1] if o == cuts[0] else ets(pd.Series(y[:o]), form[0], s).fit(disp=False) if pin
                       else best_fit(pd.Series(y[:o]), s, allowed(o))[1])
                mean, b = bands(res, o, h)
                err = y[o:o + h] - mean
                if s >= 2 and o < 2 * s + 2:
                    continue  # calibration counts the origins with room for the season's forms
                for lv in LEVELS:
                    half = np.where(err >= 0, b[lv][1] - mean, mean - b[lv][0])
                    ratios[lv].append(np.abs(err) / half)
        final = best_fit(pd.Series(y), s, allowed(len(y)))
        mean, b = bands(final[1], len(y), h)
    return {"ratios": ratios, "mean": mean, "bands": b, "season": s}


def conformal(values: np.ndarray, level: int) -> float:
    values = np.sort(values[np.isfinite(values)])
    rank = math.ceil((len(values) + 1) * level / 100)
    return float(values[rank - 1]) if 0 < rank <= len(values) else math.nan


def main() -> None:
    import pandas as pd
    from joblib import Parallel, delayed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--horizon", type=int, default=18)
    parser.add_argument("--season", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    t0 = time.perf_counter()
    df = pd.read_csv(args.csv)
    h = args.horizon
    series = [(g["value"].to_numpy(dtype=float)[:-h], g["value"].to_numpy(dtype=float)[-h:])
              for _, g in df.groupby("series_id", sort=False)]
    out = Parallel(n_jobs=args.workers, backend="loky", batch_size=8)(
        delayed(one_series)(y, h, args.season) for y, _ in series)
    factor = {}
    for lv in LEVELS:
        grid = np.vstack([r for o in out for r in o["ratios"][lv]])
        pooled = conformal(grid.ravel(), lv)
        factor[lv] = [conformal(grid[:, j], lv) if np.isfinite(grid[:, j]).sum() >= 5 * 100 / (100 - lv) else pooled
                      for j in range(h)]
    mase, inside = [], {lv: [] for lv in LEVELS}
    for (y, truth), o in zip(series, out):
        lag = o["season"] if o["season"] >= 2 else 1
        mase.append(np.mean(np.abs(truth - o["mean"])) / np.mean(np.abs(y[lag:] - y[:-lag])))
        for lv in LEVELS:
            f = np.asarray(factor[lv])
            lo, hi = o["mean"] - f * (o["mean"] - o["bands"][lv][0]), o["mean"] + f * (o["bands"][lv][1] - o["mean"])
            inside[lv] += list((truth >= lo) & (truth <= hi))
    print(json.dumps({"series": len(series), "mase": float(np.mean(mase)),
                      **{f"coverage_{lv}": float(np.mean(inside[lv])) for lv in LEVELS},
                      "wall_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
