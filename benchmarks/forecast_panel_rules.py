"""Selection and calibration rules for ``auto`` on a panel, compared side by side on M1 monthly and tourism quarterly.

    python benchmarks/forecast_panel_rules.py collect [--sets NAME ...] [--series N] [--origins K] [--out rules.json]
    python benchmarks/forecast_panel_rules.py table [--input rules.json]

``collect`` runs, for every series and every ``auto`` candidate, the panel's own rolling-origin
backtest (``tasks/forecast/panel.py``: the same fits, forms and intervals) with ``K`` origins, and
the candidate's forecast of the test horizon after it is fitted on the whole training part; it keeps
per origin the scaled error and the interval ratios, and per candidate the test errors and its own
interval half-widths. ``table`` then applies each rule offline: a rule reads only the backtest
(its choice of model and its interval factors); the test horizon only scores what it chose. Every
rule is printed with both sets in one table (mean MASE, 80 % / 95 % coverage).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path("/work/shared/datasets/forecast_panels")
SETS = {"m1_monthly": {"horizon": 18, "season": 12}, "tourism_quarterly": {"horizon": 8, "season": 4}}
LEVELS = [80, 95]


def _series(name: str, count: int | None, skip: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    import pandas as pd

    train, test = (pd.read_csv(DATA / f"{name}_{part}.csv") for part in ("train", "test"))
    ids = train.series_id.drop_duplicates().iloc[skip:]
    ids = ids.head(count) if count else ids
    tr, te = dict(tuple(train.groupby("series_id"))), dict(tuple(test.groupby("series_id")))
    return [(str(s), tr[s].sort_values("t").value.to_numpy(float), te[s].sort_values("t").value.to_numpy(float))
            for s in ids]


def collect_one(y: np.ndarray, truth: np.ndarray, settings: dict) -> dict:
    """One series: per candidate, per-origin scaled MAE and interval ratios; test errors and half-widths."""
    from trainflow.tasks.forecast import (
        backtest,
        calibration,
        panel,
        scores,
        statistical,
    )

    h, season = settings["horizon"], settings["season"]
    level = panel.fill(y, False)
    step = min(season, h)
    need = max(season, 6, *(panel.MIN_STEPS[panel.model_of(n)] for n in settings["candidates"]))  # as backtest_series
    cuts = (backtest.origins(len(level), h, settings["origins"], step, need)
            or backtest.origins(len(level), h, settings["origins"], step, max(season, 6)))
    mean_step = float(np.mean(np.abs(np.diff(level)))) or 1.0
    snaive_scale = scores.seasonal_scale(level, season)
    out = {"n": len(level), "cuts": cuts, "mean_step": mean_step, "snaive_scale": snaive_scale, "cand": {}}
    fitted, runs = {}, {}
    keep = bool(cuts) and cuts[0] >= panel.SEARCH_STEPS * max(season, 1) + 2
    for name in sorted(settings["candidates"], key=lambda n: panel.model_of(n) == "combination"):
        rec: dict = {}
        if cuts and cuts[0] >= panel.MIN_STEPS[panel.model_of(name)]:
            try:
                col, outs = panel._origins(name, settings, level, None, season, cuts, fitted, runs)
                truths = [level[o:o + h] for o in cuts]
                errs = [float(np.mean(np.abs(t - m[:len(t)]))) for t, (m, _) in zip(truths, outs)]
                if all(math.isfinite(e) for e in errs):
                    fitted[name], runs[name] = col, outs
                    rec["bt"] = errs
                    rec["ratios"] = {str(lv): rows for lv, rows in calibration.ratios(truths, outs, LEVELS).items()}
            except Exception as exc:  # noqa: BLE001 - a candidate that cannot fit is left out, as in the panel
                rec["bt_error"] = str(exc)[:100]
        forms = {n: panel.pinned(n, c, settings["options"].get(n, {})) for n, c in fitted.items()} if keep else {}
        try:
            fit = panel.fit_series(y, None, name, forms, settings)
            mean, bands = statistical.forecast_one(fit["state"]["columns"][0], level, h, LEVELS)
            err = truth - mean
            rec["test"] = {"chosen": fit["chosen"], "err": err.tolist(),
                           "half": {str(lv): np.where(err >= 0, hi - mean, mean - lo).tolist()
                                    for lv, (lo, hi) in bands.items()}}
        except Exception as exc:  # noqa: BLE001
            rec["test_error"] = str(exc)[:100]
        out["cand"][name] = rec
    return out


def collect(args: argparse.Namespace) -> None:
    from trainflow.tasks.forecast import panel, panels
    from trainflow.tasks.forecast.timeaxis import TimeAxis

    from trainflow.spec import spec_from_dict

    results = {}
    for name, sizes in SETS.items():
        if args.sets and name not in args.sets:
            continue
        t0 = time.perf_counter()
        spec = spec_from_dict({"name": "panel", "task": "forecasting", "model": {"name": "auto"},
                               "forecast": {**sizes, "origins": args.origins},
                               "data": {"loader": "timeseries_csv", "path": "x.csv", "id": "series_id"}})
        names, options, _ = panels._candidates(spec)
        settings = panel.settings_of(spec.forecast, "auto", names, options, TimeAxis("integer", step=1.0))
        items = [(sid, (y, truth)) for sid, y, truth in _series(name, args.series, args.skip)]
        found = panel.run_chunks(items, settings, collect_one, args.threads,
                                 lambda d, t, name=name, t0=t0: print(f"{name}: {d}/{t} ({time.perf_counter() - t0:.0f} s)",
                                                                      flush=True))
        results[name] = {"horizon": sizes["horizon"], "season": sizes["season"], "series": found}
    Path(args.out).write_text(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--sets", nargs="+", choices=list(SETS), help="only these panels (default: both)")
    c.add_argument("--series", type=int, default=150, help="the first N series of each set (0: all)")
    c.add_argument("--skip", type=int, default=0, help="leave out the first N series of each set")
    c.add_argument("--origins", type=int, default=8)
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--out", default="forecast_panel_rules.json")
    t = sub.add_parser("table")
    t.add_argument("--input", default="forecast_panel_rules.json")
    args = parser.parse_args()
    if args.cmd == "collect":
        collect(args)
    else:
        from forecast_panel_rules_table import table

        table(json.loads(Path(args.input).read_text()))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
