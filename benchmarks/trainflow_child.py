"""``trainflow run`` with a meter on every task of the pipeline flow, for the benchmarks.

    python benchmarks/trainflow_child.py SPEC --out OUT [--set KEY=VALUE ...]

Runs the CLI's ``run`` command in this process. Each task call in the flow is one stage: its
wall time as the flow sees it (state changes, result persistence and API calls included) and the
time of the task's own function; their difference is the orchestration overhead of that task.
``start`` is the time from process launch to the first task call. ``validate`` runs in a thread
beside ``profile`` and ``split`` (:func:`trainflow.flows.pipeline.validating`): it is metered as an
overlapped stage, from its submission to the end of its task run; its memory is that of its child
process, counted in the process peak (``StageMeter.overlap``). ``warm-up``: the imports of fit
and evaluate that the flow's thread runs while it waits for the validation child
(:mod:`trainflow.tasks.common.warmup`). Prints the figures as one JSON line (see meter.py).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from meter import StageMeter, timed  # noqa: E402

meter = StageMeter()

TASKS = {"load_data": "load", "validate_data": "validate", "profile_data": "profile", "split_data": "split", "fit_model": "fit",
         "evaluate_model": "evaluate", "publish_run": "publish", "promote_run": "promote"}
#: stages the flow runs beside the others (metered by their submission, not by a call)
OVERLAPPED = {"validate"}


def instrument() -> dict[str, float]:
    """Wrap each task of the pipeline flow; returns the time of each task's own function."""
    from trainflow.flows import pipeline

    own: dict[str, float] = {}

    def timed_fn(name, fn):
        return timed(fn, lambda seconds: own.__setitem__(name, own.get(name, 0.0) + seconds))

    class Timed:
        """A task whose calls are metered as one stage; ``with_options`` keeps the meter (the flow
        calls the cached stages through ``task.with_options(...)``)."""

        def __init__(self, name, task):
            self.stage_name, self.task = name, task

        def __call__(self, *args, **kwargs):
            if "start" not in meter.seconds:
                meter.mark_start("start")
            with meter.stage(self.stage_name):
                return self.task(*args, **kwargs)

        def with_options(self, **options):
            return Timed(self.stage_name, self.task.with_options(**options))

        def __getattr__(self, attr):
            return getattr(self.task, attr)

    for attr, name in TASKS.items():
        task = getattr(pipeline, attr)
        task.fn = timed_fn(name, task.fn)
        if name not in OVERLAPPED:
            setattr(pipeline, attr, Timed(name, task))

    from trainflow.tasks.common import validation_process

    validating = pipeline.validating

    @contextmanager
    def timed_validating(*args, **kwargs):
        """The overlapped validation, from its submission to the end of its task run."""
        submitted = time.perf_counter()
        with validating(*args, **kwargs) as checking:
            checking.add_done_callback(lambda _: meter.overlap("validate", submitted, time.perf_counter(),
                                                               validation_process.last_peak_mb))
            yield checking

    pipeline.validating = timed_validating

    from trainflow.tasks.common import warmup

    run_next = warmup.run_next

    def timed_run_next(steps):
        """The flow thread's warm-up imports while it waits for the validation child: one stage."""
        started = time.perf_counter()
        ran = run_next(steps)
        if ran:  # a step ran (else the flow only waits)
            meter.add("warm-up", started, time.perf_counter())
        return ran

    warmup.run_next = timed_run_next  # the flow looks it up on the module at each step
    return own


def main() -> int:
    from trainflow.flows import cli
    from trainflow.tasks.common import validation_process

    validation_process.prestart()  # first thing, as `trainflow run` does (cli.cmd_run)
    own = instrument()
    args = cli.build_parser().parse_args(["run", *sys.argv[1:]])
    from trainflow.spec import load_spec

    summary = cli.run_spec(load_spec(args.spec, args.overrides), args.out)
    meter.child_peak(validation_process.last_peak_mb)  # with the Data Docs it wrote after answering
    meter.extra["own_seconds"] = own
    meter.extra["metrics"] = summary["metrics"]
    meter.report()
    return 0


if __name__ == "__main__":
    from trainflow.fast_exit import exit_without_teardown

    exit_without_teardown(main)  # as the trainflow command exits
