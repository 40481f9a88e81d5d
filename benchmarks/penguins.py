"""The penguins demo through ``trainflow run`` vs its plain script, with a warm and a cold server.

    python benchmarks/penguins.py [--repeats 5] [--no-write]

Alternates, each in a fresh process: ``penguins_plain.py``; ``trainflow run`` against a warm
``prefect server start`` (started here on a free 127.0.0.1 port); ``trainflow run`` with no server
configured, so that it starts Prefect's temporary one (cold; its database already exists, made
by one discarded run first). Prints and writes to RESULTS.md ("## Orchestration overhead") the
medians of the whole process and of each stage, and the per-task overhead in ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (HERE, REPO, fmt, load, machine, machine_lines, median, prefect_server, run_metered,  # noqa: E402
                    stage_table, task_overhead_ms, thread_env, write_section)

SPEC = REPO / "flows" / "specs" / "penguins.yaml"
DATA = REPO / "data" / "penguins.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="OMP/BLAS threads of every side (default: the libraries' own)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trainflow-bench-penguins-"))
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; load {m['load']}", flush=True)
    base = thread_env(args.threads) if args.threads else {}
    # cold: no PREFECT_API_URL, so each run starts Prefect's temporary server in this home
    cold = {**base, "PREFECT_HOME": str(work / "cold-home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    cold_env = {k: v for k, v in {**os.environ, **cold}.items() if k != "PREFECT_API_URL"}
    ours = [sys.executable, str(HERE / "trainflow_child.py"), str(SPEC), "--out"]
    print("creating the cold server's database (discarded run) ...", flush=True)
    run_metered([*ours, str(work / "discard")], env=cold_env, clean_env=True)

    runs: dict[str, list[dict]] = {"plain": [], "warm": [], "cold": []}
    with prefect_server() as server:
        warm_env = {**server, **base}
        for r in range(args.repeats):
            sides = ["plain", "warm", "cold"]
            for side in sides[r % 3:] + sides[:r % 3]:  # rotate who goes first
                out = str(work / "runs" / f"{r}-{side}")
                if side == "plain":
                    res = run_metered([sys.executable, str(HERE / "penguins_plain.py"), str(DATA), out], env=base)
                elif side == "warm":
                    res = run_metered([*ours, out], env=warm_env)
                else:
                    res = run_metered([*ours, out], env=cold_env, clean_env=True)
                runs[side].append(res)
                print(f"run {r + 1} {side:<5}: {res['wall_s']:6.2f} s  balanced accuracy "
                      f"{res['metrics']['balanced_accuracy']:.4f}", flush=True)

    body = machine_lines(m, load()) + report(runs, args.repeats, args.threads)
    print("\n".join(body))
    if not args.no_write:
        write_section("Orchestration overhead", body)
        print(f"\nwritten to {HERE / 'RESULTS.md'}")


def report(runs: dict[str, list[dict]], repeats: int, threads: int | None) -> list[str]:
    plain = median([r["wall_s"] for r in runs["plain"]])
    flag = f" --threads {threads}" if threads else ""
    lines = [f"- Command: `python benchmarks/penguins.py --repeats {repeats}{flag}`; the penguins demo "
             "(`flows/specs/penguins.yaml`: 344 rows, median imputation, one-hot, scaling, SMOTE, logistic "
             "regression) vs `benchmarks/penguins_plain.py` doing the same work without Prefect, GX or plots",
             "- Each run a fresh process, alternated; medians. Warm: a `prefect server start` on 127.0.0.1 that "
             "the benchmark started; cold: no server configured, so the run starts Prefect's temporary server "
             "(its database already made)",
             "- Task overhead: a task call as the flow sees it minus the time of the task's own function, "
             "mean over the run's tasks",
             "- Read the load averages above: on a busy machine absolute times are noisy, the side-by-side "
             "ratios less so.", "",
             "| side | whole process s | minus plain s | CPU s | task overhead ms | balanced accuracy |",
             "|---|---|---|---|---|---|"]
    for side in ("plain", "warm", "cold"):
        wall = median([r["wall_s"] for r in runs[side]])
        over = task_overhead_ms(runs[side]) if side != "plain" else float("nan")
        lines.append(f"| {side} | {fmt(wall)} | {fmt(wall - plain) if side != 'plain' else '-'} | "
                     f"{fmt(median([r['cpu_s'] for r in runs[side]]), 1)} | "
                     f"{fmt(over, 0) if side != 'plain' else '-'} | {runs[side][0]['metrics']['balanced_accuracy']:.4f} |")
    for side in ("warm", "cold"):
        lines += ["", f"Stages, {side} server (median s / peak MB):", ""]
        lines += stage_table(runs["plain"], runs[side], label=f"trainflow ({side})")
    return lines


if __name__ == "__main__":
    main()
