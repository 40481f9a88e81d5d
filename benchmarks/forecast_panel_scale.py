"""``trainflow run`` on a monthly panel vs a plain script doing the same statistical work, side by side.

    python benchmarks/forecast_panel_scale.py [--series 600] [--workers 2]

The first ``--series`` series of M1 monthly (``/work/shared/datasets/forecast_panels``, training and
test files joined: 617 series, 48-150 months) are one long CSV. ``trainflow run`` (a Prefect server
started here, i.e. warm; ``resources.threads: --workers``) fits damped ETS per series with intervals
calibrated on a 3-origin backtest (load, GX validation, profile, split, fit, evaluate with plots,
publish); ``forecast_panel_plain.py`` does the same fits with statsmodels on a joblib pool of the
same size (:mod:`forecast_panel_plain`). Each runs once, in a fresh process, plain first. Prints
the wall and CPU seconds of each (the process and its children), their ratio (the target: trainflow
at most 1.3x), mean MASE and coverage from both, and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import HERE, load, prefect_server  # noqa: E402

DATA = Path("/work/shared/datasets/forecast_panels")
SPEC = """\
name: bench-panel
task: forecasting
seed: 0
data: {{loader: timeseries_csv, path: {path}, id: series_id, time: t, values: [value]}}
validation: {{min_rows: 30}}
forecast: {{horizon: 18, season: 12, levels: [80, 95]}}
model: {{name: ets, trend: add_damped}}
resources: {{threads: {workers}}}
"""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall and CPU seconds (this process's waited-for children) of ``cmd``, and its stdout."""
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall, after = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, proc.stdout


def main() -> None:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=600)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, prefect_server() as env:
        df = pd.concat([pd.read_csv(DATA / "m1_monthly_train.csv"), pd.read_csv(DATA / "m1_monthly_test.csv")])
        df = df[df.series_id.isin(df.series_id.drop_duplicates().head(args.series))].sort_values(["series_id", "t"])
        path = Path(tmp) / "panel.csv"
        df.to_csv(path, index=False)
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(SPEC.format(path=path, workers=args.workers))
        print(f"load average before: {load()}; {df.series_id.nunique()} series, {args.workers} worker(s)", flush=True)
        wall_p, cpu_p, out = timed([sys.executable, str(HERE / "forecast_panel_plain.py"), str(path),
                                    "--workers", str(args.workers)])
        plain = json.loads(out.strip().splitlines()[-1])
        print(f"plain: {wall_p:.0f} s wall, {cpu_p:.0f} s CPU; MASE {plain['mase']:.3f}, coverage "
              f"{100 * plain['coverage_80']:.1f}% / {100 * plain['coverage_95']:.1f}%; load {load()}", flush=True)
        import os

        trainflow = Path(sys.executable).with_name("trainflow")
        wall_t, cpu_t, _ = timed([str(trainflow), "run", str(spec), "--out", str(Path(tmp) / "runs")],
                                 {**os.environ, **env})
        [run] = [p for p in (Path(tmp) / "runs" / "bench-panel").iterdir() if (p / "metrics.json").is_file()]
        m = json.loads((run / "metrics.json").read_text())["metrics"]
        print(f"trainflow run: {wall_t:.0f} s wall, {cpu_t:.0f} s CPU; MASE {m['mase']:.3f}, coverage "
              f"{100 * m['coverage_80']:.1f}% / {100 * m['coverage_95']:.1f}%", flush=True)
        print(f"ratio trainflow / plain: wall {wall_t / wall_p:.2f}, CPU {cpu_t / cpu_p:.2f}; load average after: {load()}")


if __name__ == "__main__":
    main()
