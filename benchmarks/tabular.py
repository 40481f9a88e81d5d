"""trainflow's tabular pipeline vs a plain script doing the same work, side by side.

    python benchmarks/tabular.py [--sizes 10000,100000] [--repeats 3] [--no-write]
    python benchmarks/tabular.py --sizes 20000 --model random_forest --section "Random forest"
    python benchmarks/tabular.py --sizes 100000 --busy 1 --section "One core busy"

For each size, a generated Parquet table (50 numeric features, a 5 % minority class, 10 % of
the values missing) is trained on by ``trainflow run`` (median imputation, SMOTE, hist gradient
boosting; a Prefect server started here, i.e. warm) and by ``tabular_plain.py``, alternately,
each run in a fresh process. Prints, and writes to RESULTS.md as the generated block of
"## Tabular pipeline" (hand-written notes under that heading are kept), the median time and peak RSS of each stage and of the whole process, their ratios, and how time grows with
the number of rows. The 1M-row size takes minutes per run: ``--sizes 10000,100000,1000000``.
``--model random_forest``: a 200-tree forest on both sides (plain: ``n_jobs=-1``; trainflow: its
default ``resources.threads``). ``--busy N``: N processes each keep one core busy (a Python spin
loop) for the whole benchmark, so that both sides run under the same synthetic load.
``--plain-report``: the plain script also makes what trainflow's report holds (bootstrap intervals,
calibration, permutation importance, plots: ``plain_metrics.report``), the same work as trainflow's
evaluate; without it the plain side only scores the test split.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (HERE, fmt, growth_exponent, load, machine, machine_lines, median, prefect_server,  # noqa: E402
                    run_metered, stage_seconds, stage_table, thread_env, write_section)

SPEC = """\
name: bench-tabular
task: classification
seed: 0
data: {{loader: parquet, path: {path}, target: label}}
validation: {{min_rows: 100}}
split: {{test_size: 0.25, stratify: true, seed: 42}}
preprocess:
  impute: {{method: median, add_indicator: false}}
  scale: {{method: none}}
  resample: {{method: smote}}
model: {{name: {model}}}
"""


def make_table(rows: int, path: Path, features: int = 50, seed: int = 0) -> Path:
    """50 informative/noise numeric features, 5 % minority, 10 % NaN; written once per size."""
    if path.exists():
        return path
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=features, n_informative=12, n_redundant=6,
                               weights=[0.95, 0.05], flip_y=0.01, random_state=seed)
    rng = np.random.default_rng(seed)
    X[rng.random(X.shape) < 0.10] = np.nan
    df = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(features)])
    df["label"] = np.where(y == 1, "minority", "majority")
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated row counts")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side per size (alternated)")
    parser.add_argument("--workdir", help="where data and runs go (default: a temporary folder)")
    parser.add_argument("--threads", type=int, help="OMP/BLAS threads of both sides (default: the libraries' own); "
                                                    "1 keeps a busy machine's contention out of the comparison")
    parser.add_argument("--model", default="hist_gradient_boosting", choices=["hist_gradient_boosting", "random_forest"],
                        help="the model of both sides (trainflow's defaults; the plain forest has n_jobs=-1)")
    parser.add_argument("--busy", type=int, default=0, help="cores kept busy by a synthetic load during every run")
    parser.add_argument("--section", default="Tabular pipeline", help="RESULTS.md section to write")
    parser.add_argument("--plain-report", action="store_true",
                        help="the plain script also makes what trainflow's report holds (bootstrap intervals, "
                             "calibration, permutation importance, four plots: plain_metrics.report)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="trainflow-bench-tabular-"))
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; load {m['load']}", flush=True)

    results: dict[int, dict[str, list[dict]]] = {}
    with prefect_server() as env, busy_cores(args.busy):
        if args.threads:
            env = {**env, **thread_env(args.threads)}
        for rows in sizes:
            data = make_table(rows, work / "data" / f"table-{rows}.parquet")
            spec = work / f"spec-{rows}.yaml"
            spec.write_text(SPEC.format(path=data, model=args.model))
            runs = results[rows] = {"trainflow": [], "plain": []}
            for r in range(args.repeats):
                # alternate which side goes first, so a load spike or a warm page cache favours neither
                order = ["plain", "trainflow"] if r % 2 == 0 else ["trainflow", "plain"]
                for side in order:
                    out = work / "runs" / f"{rows}-{r}-{side}"
                    # a reused --workdir holds the last run's cache: trainflow would reuse its split and model
                    shutil.rmtree(out, ignore_errors=True)
                    if side == "plain":
                        cmd = [sys.executable, str(HERE / "tabular_plain.py"), str(data), str(out), "--model", args.model,
                               *(["--report"] if args.plain_report else [])]
                    else:
                        cmd = [sys.executable, str(HERE / "trainflow_child.py"), str(spec), "--out", str(out)]
                    res = run_metered(cmd, env=env)
                    runs[side].append(res)
                    print(f"{rows:>8} rows  {side:<9} run {r + 1}: {res['wall_s']:7.2f} s, "
                          f"peak {res['process_peak_mb']:7.0f} MB{largest_overhead(res)}", flush=True)

    body = report(results, sizes, args.repeats, args.threads, args.model, args.busy, args.section, args.plain_report)
    body[:0] = machine_lines(m, load())
    print("\n".join(body))
    if not args.no_write:
        write_section(args.section, body)
        print(f"\nwritten to {HERE / 'RESULTS.md'}")


@contextlib.contextmanager
def busy_cores(n: int):
    """``n`` processes that each keep one core busy until the block ends (a synthetic load)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def largest_overhead(run: dict) -> str:
    """``, most overhead: fit 2031 ms`` for a trainflow run: a median of few runs hides one slow task
    (a retried server call waits ~2 s), the per-run line shows which it was."""
    own = run.get("own_seconds", {})
    if not own:
        return ""
    stage = max(own, key=lambda s: stage_seconds(run, s) - own[s])
    return f", most overhead: {stage} {1000 * (stage_seconds(run, stage) - own[stage]):.0f} ms"


def report(results: dict[int, dict[str, list[dict]]], sizes: list[int], repeats: int, threads: int | None,
           model: str = "hist_gradient_boosting", busy: int = 0, section: str = "Tabular pipeline",
           plain_report: bool = False) -> list[str]:
    flag = f" --threads {threads}" if threads else ""
    flag += " --plain-report" if plain_report else ""
    flag += f" --model {model}" if model != "hist_gradient_boosting" else ""
    flag += f" --busy {busy}" if busy else ""
    flag += f' --section "{section}"' if section != "Tabular pipeline" else ""
    what = ("a 200-tree random forest (plain: `RandomForestClassifier(n_estimators=200, n_jobs=-1)`; trainflow: "
            "`random_forest` with its default `resources.threads`, every core; trainflow's other defaults)"
            if model == "random_forest" else "hist gradient boosting (trainflow's defaults)")
    lines = [f"- Command: `python benchmarks/tabular.py --sizes {','.join(map(str, sizes))} --repeats {repeats}{flag}`",
             "- Data: 50 numeric features, 5 % minority class, 10 % missing values, Parquet; "
             f"median imputation, SMOTE, {what} on both sides",
             *(["- The plain script makes trainflow's report too (`--report`): bootstrap 95% intervals, Brier "
                "score, reliability table and ECE, scikit-learn's permutation importance on as many test rows as "
                "trainflow's, four matplotlib plots"] if plain_report else []),
             *([f"- Load: {busy} core(s) kept busy by a Python spin loop during every run of both sides"] if busy else []),
             "- trainflow: `trainflow run` in a fresh process against a warm `prefect server start` on 127.0.0.1; "
             "plain: `benchmarks/tabular_plain.py` in a fresh process; alternated, medians of "
             f"{repeats} runs each; peak RSS per process and per stage (Linux VmHWM, reset between stages)",
             "- trainflow validates in a child process beside profile and split: its `validate` row is that "
             "stage's own duration (\"overlapped\", not part of the sum of stages; fit's wait for it counts in "
             "\"rest\") and the child's peak RSS; "
             "trainflow's peak adds the child's peak to the highest stage it overlapped (an upper bound).",
             "- Read the load averages above: on a busy machine absolute times are noisy, the side-by-side "
             "ratios less so.", ""]
    lines += ["| rows | plain s | trainflow s | time ratio | CPU s plain / trainflow | plain peak MB | trainflow peak MB "
              "| memory ratio |", "|---|---|---|---|---|---|---|---|"]
    totals = {"plain": [], "trainflow": []}
    for rows in sizes:
        p = median([r["wall_s"] for r in results[rows]["plain"]])
        t = median([r["wall_s"] for r in results[rows]["trainflow"]])
        pm = median([r["process_peak_mb"] for r in results[rows]["plain"]])
        tm = median([r["process_peak_mb"] for r in results[rows]["trainflow"]])
        totals["plain"].append(p)
        totals["trainflow"].append(t)
        pc = median([r["cpu_s"] for r in results[rows]["plain"]])
        tc = median([r["cpu_s"] for r in results[rows]["trainflow"]])
        lines.append(f"| {rows:,} | {fmt(p)} | {fmt(t)} | {fmt(t / p)}x | {fmt(pc, 1)} / {fmt(tc, 1)} | {pm:.0f} | "
                     f"{tm:.0f} | {fmt(tm / pm)}x |")
    if len(sizes) >= 2:
        lines += ["", f"Growth exponent of the total time with rows (log-log slope over {', '.join(f'{s:,}' for s in sizes)}): "
                      f"plain {fmt(growth_exponent(sizes, totals['plain']))}, "
                      f"trainflow {fmt(growth_exponent(sizes, totals['trainflow']))}."]
    for rows in sizes:
        lines += ["", f"Stages at {rows:,} rows (median s / peak MB):", ""]
        lines += stage_table(results[rows]["plain"], results[rows]["trainflow"])
        mp = results[rows]["plain"][0]["metrics"]
        mt = results[rows]["trainflow"][0]["metrics"]
        lines += ["", f"Results: balanced accuracy plain {mp['balanced_accuracy']:.4f}, "
                      f"trainflow {mt['balanced_accuracy']:.4f}; ROC-AUC {mp['roc_auc']:.4f} / {mt['roc_auc']:.4f}."]
    return lines


if __name__ == "__main__":
    main()
