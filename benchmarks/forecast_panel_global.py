"""The global network as a candidate of a panel's ``auto``, judged on the backtest only (no test score).

    python benchmarks/forecast_panel_global.py [--sets m1_monthly tourism_quarterly] [--series 150]

For each set's training part (the competition's training file: the test horizon is never read), runs
``auto``'s statistical phase one (``tasks/forecast/panel.py``: every default candidate at its 6
origins) and the network's backtest at the same origins (``global_panel.backtest``: one network per
origin over the panel cut there), scores the network into each series' result as ``auto`` does
(``global_panel.score``), then prints for the default list without and with ``global_mlp``: the
ranking on all origins, and the rule backtested on itself (champion and switches chosen on all
origins but the latest, scored on the latest: ``panel.switching_helps``), and each candidate's mean
scaled error at the latest origin over the series the network scored.
"""

from __future__ import annotations

import argparse
import copy
import math
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path("/work/shared/datasets/forecast_panels")
SETS = {"m1_monthly": {"horizon": 18, "season": 12}, "tourism_quarterly": {"horizon": 8, "season": 4}}


def phase_one(name: str, series: int | None) -> tuple[dict, dict, dict, object, object]:
    import pandas as pd

    from trainflow import resources
    from trainflow.spec import spec_from_dict
    from trainflow.tasks.forecast import panels
    from trainflow.tasks.forecast.panel import backtest_series, run_chunks, settings_of
    from trainflow.tasks.forecast.timeaxis import TimeAxis

    train = pd.read_csv(DATA / f"{name}_train.csv")
    ids = list(train.series_id.drop_duplicates())[:series] if series else list(train.series_id.drop_duplicates())
    parts = dict(tuple(train.groupby("series_id")))
    ys = {str(s): parts[s].sort_values("t").value.to_numpy(float) for s in ids}
    spec = spec_from_dict({"name": "p", "task": "forecasting", "model": {"name": "auto"}, "forecast": SETS[name],
                           "data": {"loader": "timeseries_csv", "path": "x.csv", "id": "series_id"}})
    stats, options, _ = panels._candidates(spec)  # auto's default panel list
    names = [*stats, "global_mlp"]
    settings = settings_of(spec.forecast, "auto", stats, options, TimeAxis.of(parts[ids[0]].sort_values("t").t))
    threads = resources.resolve(0)
    t0 = time.perf_counter()
    one = run_chunks([(sid, (y, None)) for sid, y in ys.items()], settings, backtest_series, threads,
                     lambda done, total: print(f"  phase one {done}/{total} ({time.perf_counter() - t0:.0f} s)",
                                               flush=True))
    return one, ys, settings, spec, names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--series", type=int, default=150, help="the first N series of each set (0: all)")
    args = parser.parse_args()
    from trainflow.tasks.forecast import global_panel
    from trainflow.tasks.forecast.global_net import resolve
    from trainflow.tasks.forecast.panel import ranking, switching_helps

    for name in args.sets:
        one, ys, settings, spec, names = phase_one(name, args.series or None)
        fc = resolve(spec.forecast, settings["axis"], max(ys.values(), key=len))[0]
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            runs = global_panel.backtest(spec, "global_mlp", fc, ys, {s: None for s in ys}, [], one, settings, tmp,
                                         "bench", name, log=lambda line: None)
        took = time.perf_counter() - t0
        without = copy.deepcopy(one)
        for sid, r in one.items():
            global_panel.score("global_mlp", fc, ys[sid], runs[sid], r, settings)
        scored = [r for r in one.values() if "global_mlp" in r["origins"]]
        print(f"\n{name}, first {len(one)} series: the network's backtest {took:.0f} s wall; it scored {len(scored)}")
        print("| candidates | ranking on all origins (geometric mean of MAE / seasonal naive's) | rule on the latest "
              "origin: champion kept / with switches (mean scaled error) |")
        print("|---|---|---|")
        stats = [n for n in names if n != "global_mlp"]
        for label, phase, cands in (("default without global_mlp", without, stats), ("with global_mlp", one, names)):
            top = ", ".join(f"{k} {math.exp(v):.3f}" for k, v in list(ranking(phase, cands).items())[:4])
            _, switched, kept = switching_helps(phase, cands)
            print(f"| {label} | {top} | {kept:.4f} / {switched:.4f} |")
        for n in ("global_mlp", *stats):
            last = [r["origins"][n][-1] for r in scored if n in r["origins"]]
            print(f"  latest origin, {n}: mean scaled error {np.mean(last):.4f} over {len(last)} series")


if __name__ == "__main__":
    main()
