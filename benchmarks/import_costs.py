"""What importing skops and Great Expectations costs a run, plainly and through ``trainflow.imports``.

    python benchmarks/import_costs.py [--repeats 5]

Each import runs in a fresh process after the libraries a run has imported by then (pandas,
scikit-learn, Prefect), plain and through trainflow's helper alternated; prints the medians of CPU
and wall seconds and the number of modules each import adds. Nothing is written to RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import fmt, load, machine, median  # noqa: E402

CHILD = """
import json, sys, time
import pandas, sklearn, prefect
from trainflow import imports
before = set(sys.modules)
cpu, wall = time.process_time(), time.perf_counter()
{how}
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(json.dumps({{"cpu": cpu, "wall": wall, "modules": len(set(sys.modules) - before),
                  "torch": "torch" in sys.modules, "sqlalchemy": "sqlalchemy" in sys.modules}}))
"""

CASES = {
    "skops.io": ("import skops.io", "imports.skops_io()"),
    "great_expectations": ("import great_expectations", "imports.great_expectations()"),
}


def measure(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(how=code)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory']}; load {m['load']}")
    print("| import | side | CPU s | wall s | modules added | torch / sqlalchemy imported |")
    print("|---|---|---|---|---|---|")
    for name, (plain, ours) in CASES.items():
        runs: dict[str, list[dict]] = {"plain": [], "trainflow.imports": []}
        for r in range(args.repeats):
            order = [("plain", plain), ("trainflow.imports", ours)]
            for side, code in order if r % 2 == 0 else order[::-1]:
                runs[side].append(measure(code))
        for side, res in runs.items():
            print(f"| {name} | {side} | {fmt(median([x['cpu'] for x in res]))} | "
                  f"{fmt(median([x['wall'] for x in res]))} | {res[0]['modules']} | "
                  f"{res[0]['torch']} / {res[0]['sqlalchemy']} |")
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
