"""Where the time of a neural pipeline run goes: whole run vs pure training, stage by stage.

    python benchmarks/neural_demos.py SPEC [SPEC ...] [--set KEY=VALUE ...] [--repeats 3] [--out DIR]
                                      [--variant [NAME/]LABEL:KEY=VALUE,...] [--json FILE] [--markdown FILE]

    e.g. python benchmarks/neural_demos.py flows/specs/digits.yaml flows/specs/gunpoint.yaml \
             --variant gunpoint/gru:model.name=gru --variant-repeats 2

Runs each spec as a real Prefect flow run (the CLI's settings: a temporary local server unless
PREFECT_API_URL is set), in this one process, ``--repeats`` times with fresh output folders (so no
cached split or model is reused). The stage functions of the modality and the training loop are
wrapped with timers, so each run reports: the whole flow call, load, validate, split, fit (and within
it the training call's set-up and the epochs themselves), evaluate, export, and what is left (Prefect's
task and flow machinery, publish, promote). For a classical model (GunPoint's default
``minirocket``) the "training" is the classifier's own ``fit`` (transform + ridge), timed the same way.
Each run also reports the CPU seconds of this process (all its threads; the Prefect server is
another process), whole and in training, which a busy machine distorts less than wall time. The first
run of each spec is "cold" (the process's first also pays the imports and the server start; a spec's
first, its own lazy imports and JIT compilation); later runs show the steady state ("warm", median). ``--variant`` adds runs
with more overrides (e.g. ``bf16:train.precision=bf16``), all warm; ``NAME/LABEL:...`` adds it to
the spec named NAME only (e.g. ``gunpoint/gru:model.name=gru``). Prints a Markdown table, then the
process's CPU seconds by stage and, per spec, one line with the time outside training (the whole run
less its epochs, wall and CPU; issue 25's CIFAR target reads it).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

STAGES = ("load", "validate", "split", "fit", "evaluate", "export")
TIMES: dict[str, float] = defaultdict(float)
RUNS: list[dict[str, float]] = []  # every run of this process
SEEN: set[str] = set()  # specs run once already: a spec's first run is cold (imports, JIT compilation)


def _timed(name, fn):
    """``fn`` timed as stage ``name``: wall seconds, and the process's CPU seconds as ``cpu_<name>``."""
    from meter import timed

    inner = timed(fn, lambda seconds: TIMES.__setitem__(name, TIMES[name] + seconds))

    @functools.wraps(fn)
    def with_cpu(*args, **kwargs):
        c0 = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            TIMES[f"cpu_{name}"] += time.process_time() - c0
    return with_cpu


def instrument() -> None:
    """Wrap the stage functions of every modality and the training loop with timers."""
    from trainflow import modalities
    from trainflow.tasks.common import load as loading
    from trainflow.tasks.common import training

    loading.load = _timed("load", loading.load)
    for mod in modalities.all_modalities():
        for stage in STAGES[1:]:
            setattr(type(mod), stage, staticmethod(_timed(stage, getattr(type(mod), stage))))
    inner = training.train_model

    @functools.wraps(inner)
    def train_model(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.process_time()
        result = inner(*args, **kwargs)
        TIMES["train_call"] += time.perf_counter() - t0
        TIMES["cpu_training"] += time.process_time() - c0
        TIMES["train_setup"] += result.setup_seconds
        TIMES["epochs"] += sum(h["seconds"] for h in result.history[result.resumed_from:])
        return result

    training.train_model = train_model
    instrument_classical()


def instrument_classical() -> None:
    """Time the ``fit`` of every classical sequence classifier as its training (outermost call only:
    a subclass's fit may call its parent's)."""
    try:
        from trainflow.tasks.sequence import classical
    except ImportError:  # the timeseries extra is not installed
        return
    depth = [0]

    def wrap(fit):
        @functools.wraps(fit)
        def timed_fit(self, *args, **kwargs):
            depth[0] += 1
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                return fit(self, *args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:
                    seconds = time.perf_counter() - t0
                    for key in ("train_call", "epochs"):
                        TIMES[key] += seconds
                    TIMES["cpu_training"] += time.process_time() - c0
        return timed_fit

    todo = [classical.ClassicalClassifier]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if "fit" in vars(cls):
            cls.fit = wrap(vars(cls)["fit"])


def run_once(spec, out: Path, profile: Path | None = None) -> dict[str, float]:
    """One flow run; with ``profile`` (a file name), a warm run is profiled with pyinstrument into it.

    The first run of each spec in the process is "cold": the first also pays the imports and the
    server's start, and a spec's first run its own lazy imports and JIT compilation (MiniRocket's
    numba kernels: over a minute on a busy 2-core machine)."""
    from trainflow.flows.cli import run_spec

    TIMES.clear()
    cold = spec.name not in SEEN
    SEEN.add(spec.name)
    profiler = None
    if profile is not None and not cold:  # the cold run's profile is all imports and the server start
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002)
        profiler.start()
    t0, c0 = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(sys.stderr):  # the flow's log lines, away from the table
        summary = run_spec(spec, str(out))
    if profiler is not None:
        profiler.stop()
        profile.write_text(profiler.output_text(unicode=True, show_all=False))
    row = {"whole": time.perf_counter() - t0, "cpu_whole": time.process_time() - c0, **TIMES, "cold": float(cold)}
    row["cpu_outside_training"] = row["cpu_whole"] - row.get("cpu_training", 0.0)
    RUNS.append(row)
    row["outside_training"] = row["whole"] - row.get("epochs", 0.0)
    row["other"] = row["whole"] - sum(row.get(s, 0.0) for s in STAGES)
    row["fit_outside_loop"] = row.get("fit", 0.0) - row.get("train_call", 0.0)
    # in the training call but neither set-up nor an epoch: checkpoints, log lines, progress updates
    row["loop_rest"] = row.get("train_call", 0.0) - row.get("train_setup", 0.0) - row.get("epochs", 0.0)
    row["primary"] = summary["metrics"].get(summary["primary_metric"], float("nan"))
    row["cpu_fit_outside_training"] = row.get("cpu_fit", 0.0) - row.get("cpu_training", 0.0)
    row["cpu_other"] = row["cpu_whole"] - sum(row.get(f"cpu_{s}", 0.0) for s in STAGES)
    return row


COLUMNS = [("whole", "whole run"), ("epochs", "training (epochs)"), ("outside_training", "outside training"),
           ("load", "load"), ("validate", "validate"), ("split", "split"), ("fit", "fit"),
           ("train_setup", "loop set-up"), ("loop_rest", "checkpoints, log, progress"),
           ("fit_outside_loop", "fit outside loop"), ("evaluate", "evaluate"),
           ("export", "export"), ("other", "Prefect, publish, promote"), ("cpu_whole", "CPU s whole"),
           ("cpu_training", "CPU s training"), ("cpu_outside_training", "CPU s outside training")]


#: the process's CPU seconds by stage (all its threads; the validation child and the server are other
#: processes): what a busy machine distorts less than wall time
CPU_COLUMNS = [("cpu_outside_training", "CPU s outside training"), ("cpu_load", "load"), ("cpu_split", "split"),
               ("cpu_fit_outside_training", "fit outside training"), ("cpu_evaluate", "evaluate"),
               ("cpu_other", "Prefect, publish, promote")]


def outside_lines(results: dict[str, list[dict[str, float]]]) -> str:
    """One line per spec: the warm runs' time outside training (median), wall and CPU, stage by stage."""
    lines = ["", "| run | " + " | ".join(label for _, label in CPU_COLUMNS) + " |", "|---" * (len(CPU_COLUMNS) + 1) + "|"]
    summary = []
    for name, rows in results.items():
        part = [r for r in rows if not r["cold"]] or rows
        med = {k: statistics.median(r.get(k, 0.0) for r in part) for k, _ in CPU_COLUMNS + [("outside_training", "")]}
        lines.append(f"| {name} ({'warm' if part is not rows else 'cold'}, median of {len(part)}) | "
                     + " | ".join(f"{med[k]:.2f}" for k, _ in CPU_COLUMNS) + " |")
        summary.append(f"{name}: outside training {med['outside_training']:.2f} s wall, "
                       f"{med['cpu_outside_training']:.2f} s CPU (whole run less its epochs; "
                       f"{'warm' if part is not rows else 'cold'} median of {len(part)})")
    return "\n".join(lines + [""] + summary)


def table(results: dict[str, list[dict[str, float]]]) -> str:
    lines = ["| run | " + " | ".join(label for _, label in COLUMNS) + " | ratio whole/training | metric |",
             "|---" * (len(COLUMNS) + 3) + "|"]
    for name, rows in results.items():
        cold, warm = [r for r in rows if r["cold"]], [r for r in rows if not r["cold"]]
        for label, part in (("cold (1st run of the spec)", cold), (f"warm (median of {len(warm)})", warm)):
            if not part:
                continue
            med = {k: statistics.median(r.get(k, 0.0) for r in part) for k, _ in COLUMNS}
            ratio = med["whole"] / med["epochs"] if med["epochs"] else float("nan")
            lines.append(f"| {name} {label} | " + " | ".join(f"{med[k]:.2f}" for k, _ in COLUMNS)
                         + f" | {ratio:.2f} | {statistics.median(r['primary'] for r in part):.4f} |")
    return "\n".join(lines) + "\n\nAll times in seconds.\n" + outside_lines(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each spec (the first is the cold one)")
    parser.add_argument("--out", default=None, help="folder for the runs (default: a temporary folder)")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL[:KEY=VALUE,...]",
                        help="also run with these overrides (after the plain runs), --variant-repeats times")
    parser.add_argument("--variant-repeats", type=int, default=1)
    parser.add_argument("--json", default=None, help="write every run's figures here")
    parser.add_argument("--markdown", default=None, help="append the table to this file")
    parser.add_argument("--profile", default=None, metavar="DIR",
                        help="profile each warm run with pyinstrument (pip install pyinstrument) into DIR/NAME-i.txt")
    args = parser.parse_args(argv)

    import tempfile

    from trainflow.spec import load_spec

    instrument()
    base = Path(args.out or tempfile.mkdtemp(prefix="neural-demos-"))
    results: dict[str, list[dict[str, float]]] = {}
    for path in args.specs:
        own = load_spec(path, args.overrides).name
        variants = [("", [], args.repeats)]
        for v in args.variant:
            label, _, kvs = v.partition(":")
            only, _, label = label.rpartition("/")
            if not only or only == own:
                variants.append((label, [kv for kv in kvs.split(",") if kv], args.variant_repeats))
        for label, extra, repeats in variants:
            spec = load_spec(path, args.overrides + extra)
            name = spec.name + (f" {label}" if label else "")
            prof = Path(args.profile) if args.profile else None
            if prof:
                prof.mkdir(parents=True, exist_ok=True)
            results[name] = [run_once(spec, base / f"{spec.name}-{label or 'plain'}-{i}",
                                      prof / f"{spec.name}-{label or 'plain'}-{i}.txt" if prof else None)
                             for i in range(repeats)]
            print(f"{name}: " + ", ".join(f"{r['whole']:.2f} s (training {r.get('epochs', 0):.2f} s)"
                                          for r in results[name]), file=sys.stderr, flush=True)
    text = table(results)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.markdown:
        with open(args.markdown, "a") as fh:
            fh.write(text + "\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
