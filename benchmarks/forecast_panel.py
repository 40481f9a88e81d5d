"""Forecast panels: ``auto`` (only the data named) vs damped ETS, side by side, on M1 monthly and tourism quarterly.

    python benchmarks/forecast_panel.py [--data /work/shared/datasets/forecast_panels] [--sets m1_monthly tourism_quarterly]
                                        [--series N] [--threads T]
                                        [--models auto "damped ETS" "global MLP" "auto + global MLP"]

For each set, the competition's training and test files are joined into one long CSV; the panel's
split by time takes each series' last ``horizon`` steps (exactly the competition's test horizon).
Both sides run the forecast modality's own stages (store, split, fit, evaluate; no Prefect server:
the models are what is measured) with the same season and horizon: ``auto`` with its default
candidates (a backtest choice per series) and ``ets`` with ``trend: add_damped`` (season chosen by
AICc). Prints mean MASE (scaled by the in-sample seasonal naive), sMAPE, the coverage of the 80 % /
95 % intervals (targets 75-85 % / 90-98 %), the fit and evaluate wall and CPU seconds (this process
and its workers) and the load average; on stderr the picks, auto's backtest ranking and the
calibration note (with its check on the backtest's latest origin).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load  # noqa: E402

DATA = Path("/work/shared/datasets/forecast_panels")
SETS = {"m1_monthly": {"horizon": 18, "season": 12}, "tourism_quarterly": {"horizon": 8, "season": 4}}
MODELS = {"auto": {"name": "auto"}, "damped ETS": {"name": "ets", "trend": "add_damped"},
          "global MLP": {"name": "global_mlp"}, "auto + global MLP": {"name": "auto", "candidates": "+global_mlp"}}


def _model(model: dict) -> dict:
    """``model`` with ``candidates: "+NAME"`` / ``"-NAME"`` read as auto's default panel candidates with
    NAME added / left out."""
    from trainflow.tasks.forecast.panels import PANEL_CANDIDATES

    extra = model.get("candidates")
    if isinstance(extra, str) and extra[:1] in "+-":
        names = extra[1:].split(",")
        given = [*PANEL_CANDIDATES, *names] if extra[0] == "+" else [n for n in PANEL_CANDIDATES if n not in names]
        return {**model, "candidates": list(dict.fromkeys(given))}
    return model


def cpu() -> float:
    """CPU seconds of this process, its live children (the pool's workers, which outlive a fit) and its
    finished ones."""
    import psutil

    me, done = psutil.Process(), resource.getrusage(resource.RUSAGE_CHILDREN)
    live = 0.0
    for child in me.children(recursive=True):
        try:
            t = child.cpu_times()
            live += t.user + t.system
        except psutil.Error:
            pass
    t = me.cpu_times()
    return t.user + t.system + live + done.ru_utime + done.ru_stime


def joined(name: str, folder: Path, series: int | None) -> Path:
    import pandas as pd

    df = pd.concat([pd.read_csv(DATA / f"{name}_train.csv"), pd.read_csv(DATA / f"{name}_test.csv")])
    if series:
        df = df[df.series_id.isin(df.series_id.drop_duplicates().head(series))]
    path = folder / f"{name}.csv"
    df.sort_values(["series_id", "t"]).to_csv(path, index=False)
    return path


def run(path: Path, sizes: dict[str, int], model: dict, folder: Path, threads: int) -> dict[str, float]:
    from trainflow import resources
    from trainflow.spec import spec_from_dict
    from trainflow.tasks.forecast import modality as forecast

    spec = spec_from_dict({"name": "panel", "task": "forecasting", "model": _model(model), "forecast": sizes,
                           "data": {"loader": "timeseries_csv", "path": str(path), "id": "series_id"}})
    cache = str(folder / "cache")
    split = forecast.stored_split(spec, cache, f"{path.stem}-{model['name']}")
    with resources.using(threads):
        w0, c0 = time.perf_counter(), cpu()
        fitted = forecast.fit(split, spec.training_view(), cache)
        w1, c1 = time.perf_counter(), cpu()
        ev = forecast.evaluate(fitted, split, spec, str(folder / "plots"))
        w2, c2 = time.perf_counter(), cpu()
    return {**ev.metrics, "fit_wall": w1 - w0, "fit_cpu": c1 - c0, "eval_wall": w2 - w1, "eval_cpu": c2 - c1,
            "choices": " | ".join(dict.fromkeys([*fitted.meta["notes"][:2],
                                                 *(n for n in fitted.meta["notes"]
                                                   if n.startswith(("intervals", "global_mlp")))]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--series", type=int, default=None, help="the first N series of each set (default: all)")
    parser.add_argument("--threads", type=int, default=0, help="worker processes (0: every core)")
    parser.add_argument("--models", nargs="+", default=list(MODELS)[:2], choices=list(MODELS),
                        help="'global MLP': one network over every series (tasks/forecast/global_panel.py); "
                             "'auto + global MLP': auto's default panel candidates and that network")
    args = parser.parse_args()
    globals()["DATA"] = args.data
    from trainflow import resources

    threads = resources.resolve(args.threads)
    print(f"load average before: {load()}; {threads} worker(s)", flush=True)
    print("| set | forecaster | series | mean MASE | sMAPE | seasonal naive MASE | 80% coverage | 95% coverage "
          "| fit wall / CPU s | evaluate wall / CPU s |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            path = joined(name, Path(tmp), args.series)
            for label, model in ((k, MODELS[k]) for k in args.models):
                m = run(path, SETS[name], model, Path(tmp) / label.replace(" ", "_"), threads)
                print(f"| {name} | {label} | {m['series']:.0f} | {m['mase']:.3f} | {m['smape']:.2f} | "
                      f"{m['snaive_mase']:.3f} | {100 * m.get('coverage_80', float('nan')):.1f}% | "
                      f"{100 * m.get('coverage_95', float('nan')):.1f}% | {m['fit_wall']:.0f} / {m['fit_cpu']:.0f} | "
                      f"{m['eval_wall']:.0f} / {m['eval_cpu']:.0f} |", flush=True)
                print(f"  {label}: {m['choices']}", file=sys.stderr, flush=True)
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
