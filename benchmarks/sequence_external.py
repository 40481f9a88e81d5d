"""Sequence classification and forecasting on public sets that are not in this repository.

    python benchmarks/sequence_external.py [--sets ArrowHead,JapaneseVowels] [--models default,minirocket,...]
                                           [--no-forecast] [--series Lynx,...] [--no-write] [--out DIR]

The UCR/UEA sets and forecasting series come from the installed sktime wheel
(``sktime/datasets/data``; nothing is downloaded). Each run is one ``trainflow run`` process
(``trainflow_child.py``) against one throw-away Prefect server. Classification: the default spec
(only the data named) and each classical model, with test accuracy, the fit's CPU seconds and the
published accuracy of MiniRocket and of the best InceptionTime / HIVE-COTE-class method, each with
its source. Forecasting: ``auto`` with default settings (only the data and the task named) on
Lynx (annual, ~10-year cycle), ShampooSales (36 months) and Airline: the chosen forecaster, the mean
backtest RMSE of every candidate, and the test RMSE of the chosen one and of every baseline.
Writes the "Sequence sets not in the repository" section of RESULTS.md (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HERE, fmt, load, machine, machine_lines, prefect_server, run_metered, write_section  # noqa: E402

SECTION = "Sequence sets not in the repository"

# ---------------------------------------------------------------- published accuracies
# Univariate: means over the 30 train/test resamples of the UCR archive's "bake off" protocol, from
# the results table of the MultiRocket repository (Tan et al. 2022), which collects MiniRocket
# (Dempster et al. 2021; the same figures as angus924/minirocket results/results_ucr109_mean.csv),
# InceptionTime (Ismail Fawaz et al. 2020), HIVE-COTE 1.0, HC-TDE, HC-CIF, TS-CHIEF and MultiRocket.
# Multivariate and PLAID: InceptionTime's own results on the archive's default split. HIVE-COTE 2
# (Middlehurst et al. 2021) per-set figures were not found in the sources at hand.
BAKEOFF = "ChangWeiTan/MultiRocket results/all_resamples_average.csv (30 resamples)"
MINIROCKET = "angus924/minirocket results/results_ucr109_mean.csv (Dempster et al. 2021, 30 resamples)"
IT_MTS = "hfawaz/InceptionTime results-mts.csv (Ismail Fawaz et al. 2020, default split)"
IT_UCR = "hfawaz/InceptionTime results-InceptionTime-128.csv (Ismail Fawaz et al. 2020, default split)"

#: the bake-off table's columns after MiniRocket, in the order of the rows of BAKEOFF_ROWS
BAKEOFF_METHODS = ("InceptionTime", "HIVE-COTE 1.0", "HC-TDE", "HC-CIF", "TS-CHIEF", "MultiRocket")
#: set -> MiniRocket's accuracy, then those of BAKEOFF_METHODS
BAKEOFF_ROWS = {
    "ArrowHead": (0.881, 0.880, 0.876, 0.889, 0.877, 0.881, 0.893),
    "ItalyPowerDemand": (0.960, 0.960, 0.958, 0.959, 0.959, 0.962, 0.961),
    "OSULeaf": (0.958, 0.953, 0.975, 0.975, 0.975, 0.974, 0.965),
    "ACSF1": (0.822, 0.827, 0.850, 0.855, 0.851, 0.807, 0.850),
    "GunPoint": (0.992, 0.995, 0.998, 0.999, 0.999, 1.000, 0.993),
}
#: set -> {"minirocket": (accuracy, source) or None, "best": {method: accuracy}, "best_source": source}
PUBLISHED: dict[str, dict] = {
    **{name: {"minirocket": (row[0], MINIROCKET), "best_source": BAKEOFF, "best": dict(zip(BAKEOFF_METHODS, row[1:]))}
       for name, row in BAKEOFF_ROWS.items()},
    # unequal length: not among the 109/112 equal-length sets of the MiniRocket and bake-off tables
    "PLAID": {"minirocket": None, "best_source": IT_UCR, "best": {"InceptionTime": 0.944}},
    "BasicMotions": {"minirocket": None, "best_source": IT_MTS, "best": {"InceptionTime": 1.000}},
    "JapaneseVowels": {"minirocket": None, "best_source": IT_MTS, "best": {"InceptionTime": 0.992}},
}
SETS = ["ItalyPowerDemand", "ArrowHead", "GunPoint", "OSULeaf", "ACSF1", "PLAID", "BasicMotions", "JapaneseVowels"]
MODELS = ["default", "minirocket", "rocket", "multirocket", "knn_dtw"]
#: sktime loader, file name, time column, value column, time format (annual: integer years)
SERIES = {"Lynx": "load_lynx", "ShampooSales": "load_shampoo_sales", "Airline": "load_airline"}


def run_child(spec: Path, out: Path, env: dict, failed: dict, rows: list, tail: int) -> dict | None:
    """``trainflow run`` of ``spec`` in a metered child; None when it fails, after printing the end of
    its error and adding a row of ``failed`` (what was run) with the error's first line to ``rows``."""
    try:
        return run_metered([sys.executable, str(HERE / "trainflow_child.py"), str(spec), "--out", str(out)],
                           env=env, timeout=3600)
    except RuntimeError as exc:
        print(f"{' '.join(map(str, failed.values()))}: FAILED {str(exc)[-tail:]}", file=sys.stderr, flush=True)
        rows.append({**failed, "error": str(exc).splitlines()[0][:120]})
        return None


def sktime_data() -> Path:
    import sktime.datasets

    return Path(sktime.datasets.__file__).parent / "data"


def ts_shape(path: Path) -> tuple[int, int, str]:
    """Series count, channels and length (``min-max`` when unequal) of a ``.ts`` file."""
    n, channels, lengths = 0, 0, set()
    data = False
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.lower() == "@data":
            data = True
            continue
        if data:
            dims = line.split(":")[:-1]
            n, channels = n + 1, len(dims)
            lengths.update(len(d.split(",")) for d in dims)
    return n, channels, f"{min(lengths)}" if len(lengths) == 1 else f"{min(lengths)}-{max(lengths)}"


def write_spec(folder: Path, name: str, body: dict) -> Path:
    import yaml

    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **body}, sort_keys=False))
    return path


def run_model_json(out: Path) -> dict:
    """The ``model.json`` of the single run under ``out``."""
    found = sorted(out.glob("*/*/model.json"))
    return json.loads(found[-1].read_text()) if found else {}


def classify(sets: list[str], models: list[str], work: Path, env: dict) -> list[dict]:
    data = sktime_data()
    rows = []
    for name in sets:
        train, test = data / name / f"{name}_TRAIN.ts", data / name / f"{name}_TEST.ts"
        n_train, channels, length = ts_shape(train)
        n_test = ts_shape(test)[0]
        for model in models:
            body = {"task": "classification", "data": {"loader": "ts", "train": str(train), "test": str(test)},
                    "validation": {"min_rows": 10}, "evaluate": {"primary": "accuracy"}}
            if model != "default":
                body["model"] = {"name": model}
            spec = write_spec(work, f"{name.lower()}-{model.replace('_', '-')}", body)
            out = work / "runs" / spec.stem
            t0 = time.time()
            res = run_child(spec, out, env, {"set": name, "model": model}, rows, tail=500)
            if res is None:
                continue
            cfg = run_model_json(out)
            row = {"set": name, "model": model, "train": n_train, "test": n_test, "length": length,
                   "channels": channels, "accuracy": res["metrics"].get("accuracy", math.nan),
                   "fitted": cfg.get("model", "?"), "normalize": cfg.get("preprocess", {}).get("normalize", "?"),
                   "fit_cpu_s": cfg.get("fit_cpu_seconds", math.nan), "fit_s": cfg.get("fit_seconds", math.nan),
                   "run_cpu_s": res["cpu_s"], "run_wall_s": time.time() - t0,
                   "choice": cfg.get("normalize_choice", "")}
            rows.append(row)
            print(f"{name} {model}: accuracy {row['accuracy']:.4f} ({row['fitted']}, normalize {row['normalize']}, "
                  f"fit CPU {fmt(row['fit_cpu_s'])} s, run CPU {row['run_cpu_s']:.1f} s)", file=sys.stderr, flush=True)
    return rows


def series_csv(name: str, folder: Path) -> tuple[Path, str, str]:
    """The sktime series written as ``time,value`` CSV (annual periods as integer years)."""
    import pandas as pd
    import sktime.datasets as ds

    y = getattr(ds, SERIES[name])()
    index = y.index
    if isinstance(index, pd.PeriodIndex):
        times = index.year if index.freqstr.startswith(("Y", "A")) else index.strftime("%Y-%m")
    else:
        times = index
    value = str(y.name or "value").replace(" ", "_").lower()
    path = folder / f"{name}.csv"
    pd.DataFrame({"time": list(times), value: y.to_numpy()}).to_csv(path, index=False)
    return path, "time", value


def forecast(series: list[str], work: Path, env: dict) -> list[dict]:
    rows = []
    for name in series:
        path, time_col, value = series_csv(name, work)
        spec = write_spec(work, f"{name.lower()}-auto", {
            "task": "forecasting", "data": {"loader": "timeseries_csv", "path": str(path), "time": time_col,
                                            "values": [value]},
            "evaluate": {"primary": "rmse"}})
        out = work / "runs" / spec.stem
        t0 = time.time()
        res = run_child(spec, out, env, {"series": name}, rows, tail=800)
        if res is None:
            continue
        cfg = run_model_json(out)
        bt = cfg.get("backtest", {})
        backtest = {k: float(sum(v) / len(v)) if v and not any(e is None or math.isnan(e) for e in v) else math.nan
                    for k, v in bt.get("errors", {}).items()}
        m = res["metrics"]
        fc = cfg.get("forecast", {})
        row = {"series": name, "steps": sum(1 for _ in open(path)) - 1, "horizon": fc.get("horizon"),
               "season": fc.get("season"), "chosen": cfg.get("chosen", "?"), "backtest": backtest,
               "origins": len(bt.get("origins", [])), "test_rmse": m.get("rmse", math.nan),
               "baselines": {b: m.get(f"{b}_rmse", math.nan) for b in ("naive", "seasonal_naive", "drift", "ets",
                                                                        "arima")},
               "notes": [n for n in cfg.get("notes", []) if "season" in n or "left out" in n][:3],
               "run_cpu_s": res["cpu_s"], "run_wall_s": time.time() - t0}
        rows.append(row)
        print(f"{name}: chose {row['chosen']}, test RMSE {row['test_rmse']:.2f}, backtest "
              + ", ".join(f"{k} {v:.2f}" for k, v in sorted(backtest.items(), key=lambda kv: kv[1])),
              file=sys.stderr, flush=True)
    return rows


def classification_table(rows: list[dict]) -> list[str]:
    lines = ["| set | train / test | length | channels | model (fitted; normalize) | test accuracy | fit CPU s | "
             "published MiniRocket | best published (method) | vs MiniRocket / best (points) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        pub = PUBLISHED.get(r["set"], {})
        if "error" in r:
            lines.append(f"| {r['set']} | | | | {r['model']} | failed: {r['error']} | | | | |")
            continue
        mr = pub.get("minirocket")
        best = max(pub.get("best", {}).items(), key=lambda kv: kv[1], default=None)
        gap = []
        if mr:
            gap.append(f"{100 * (r['accuracy'] - mr[0]):+.1f}")
        if best:
            gap.append(f"{100 * (r['accuracy'] - best[1]):+.1f}")
        label = r["model"] if r["model"] != "default" else f"default ({r['fitted']})"
        lines.append(f"| {r['set']} | {r['train']} / {r['test']} | {r['length']} | {r['channels']} | {label}; "
                     f"{r['normalize']} | {r['accuracy']:.3f} | {fmt(r['fit_cpu_s'], 1)} | "
                     f"{f'{mr[0]:.3f}' if mr else 'not found'} | "
                     f"{f'{best[1]:.3f} ({best[0]})' if best else 'not found'} | {' / '.join(gap) or '-'} |")
    return lines


def forecast_table(rows: list[dict]) -> list[str]:
    lines = ["| series | steps, horizon, season | auto chose | mean backtest RMSE (origins) | test RMSE chosen | "
             "test RMSE naive / seasonal naive / drift / ETS / ARIMA |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['series']} | | failed: {r['error']} | | | |")
            continue
        bt = ", ".join(f"{k} {fmt(v, 1)}" for k, v in sorted(r["backtest"].items(), key=lambda kv: kv[1]))
        base = " / ".join(fmt(r["baselines"][b], 1) for b in ("naive", "seasonal_naive", "drift", "ets", "arima"))
        lines.append(f"| {r['series']} | {r['steps']}, {r['horizon']}, {r['season']} | {r['chosen']} | {bt} "
                     f"({r['origins']}) | {fmt(r['test_rmse'], 1)} | {base} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS), help="UCR/UEA sets (sktime's bundled files)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="default (no model named) and model names, e.g. minirocket,multirocket,knn_dtw,inception_time")
    parser.add_argument("--series", default=",".join(SERIES), help="forecasting series")
    parser.add_argument("--no-classify", action="store_true")
    parser.add_argument("--no-forecast", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="accepted for symmetry; the runs are deterministic")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--out", default=None, help="folder for specs and runs (default: a temporary folder)")
    args = parser.parse_args(argv)

    work = Path(args.out or tempfile.mkdtemp(prefix="seq-external-"))
    (work / "runs").mkdir(parents=True, exist_ok=True)
    m = machine()
    t0 = time.time()
    with prefect_server() as env:
        cls = [] if args.no_classify else classify([s for s in args.sets.split(",") if s],
                                                   [x for x in args.models.split(",") if x], work, env)
        fcs = [] if args.no_forecast else forecast([s for s in args.series.split(",") if s], work, env)
    body = [f"Measured {time.strftime('%Y-%m-%d')} with `python benchmarks/sequence_external.py` "
            f"({time.time() - t0:.0f} s in all); data: sktime's bundled UCR/UEA files and series.", "",
            *machine_lines(m, load()), ""]
    if cls:
        body += ["**Classification** (the archive's fixed train/test split; one `trainflow run` each; fit CPU s = "
                 "process CPU time of the model's fit; published figures: means over 30 resamples unless the "
                 "source says default split):", "", *classification_table(cls), "",
                 "Sources: " + "; ".join(sorted({MINIROCKET, BAKEOFF, IT_MTS, IT_UCR})) + ". "
                 "MiniRocket's published figures for PLAID and the UEA multivariate sets were not found.", ""]
        choices = sorted({f"{r['set']}: {r['choice']}" for r in cls if r.get("choice") and r["model"] == "default"})
        if choices:
            body += ["Normalisation chosen by the default (`normalize: auto`):", "", *[f"- {c}" for c in choices], ""]
    if fcs:
        body += ["**Forecasting** (`auto` with default settings: only the data and `task: forecasting` named; "
                 "horizon 12, season detected, test = the last 12 steps):", "", *forecast_table(fcs), ""]
        body += [f"- {r['series']}: {n}" for r in fcs if "notes" in r for n in r["notes"]]
    text = "\n".join(body)
    print(f"## {SECTION}\n\n{text}")
    if not args.no_write:
        write_section(SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
