"""The ``trainflow`` command line.

Heavy libraries are imported inside the sub-commands, so ``trainflow --help`` stays fast.
Errors the user can fix print one clear message (no traceback) and exit non-zero.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

SPECS_DIR = Path(__file__).resolve().parent / "specs"


def demos() -> dict[str, list[str]]:
    """Demo name -> spec files in flows/specs, run in order (listed in flows/specs/demos.yaml)."""
    from trainflow.yamlfile import load_yaml

    return load_yaml((SPECS_DIR / "demos.yaml").read_text(encoding="utf-8"))


def _overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec field, e.g. --set model.name=random_forest (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainflow", description="Declarative ML pipelines as Prefect flows.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run a pipeline spec as a Prefect flow")
    p.add_argument("spec", help="path to a pipeline spec (YAML)")
    p.add_argument("--out", default="runs", help="folder for run folders (default: runs)")
    p.add_argument("--refresh-cache", action="store_true",
                   help="recompute cached stages (split, fit), training neural networks from epoch 1")
    _overrides(p)

    p = sub.add_parser("validate", help="load and validate the data of a spec, without training")
    p.add_argument("spec")
    p.add_argument("--out", default="runs")
    _overrides(p)

    p = sub.add_parser("demo", help="run the demo pipelines on the embedded data")
    p.add_argument("which", nargs="?", default="all", choices=["all", *demos()],
                   help="which demo (default: all)")
    p.add_argument("--out", default="runs")
    _overrides(p)

    p = sub.add_parser("predict", help="predict with a pipeline's champion or a saved run's model")
    p.add_argument("model", help="a pipeline name (uses its champion) or a run folder (runs/<pipeline>/<run-id>)")
    p.add_argument("input", help="new rows/items to predict (same format as the training data)")
    p.add_argument("--out", required=True, help="where to write the predictions: Parquet for a .parquet/.pq name, "
                                                "else CSV")
    p.add_argument("--id", dest="id_column", metavar="COLUMN",
                   help="column of the input that names each row, written first (default: the spec's data.id)")
    p.add_argument("--keep", action="append", default=[], metavar="COLUMN",
                   help="input column to copy into the output beside the predictions (repeatable)")
    p.add_argument("--runs", default="runs", help="folder of run folders, for a pipeline name (default: runs)")
    p.add_argument("--fail-on-drift", action="store_true",
                   help="exit 5 when the input drifted from the model's reference profile (the predictions and "
                        "the drift report are written all the same)")
    p.add_argument("--no-drift", action="store_true", help="do not compare the input with the reference profile")

    p = sub.add_parser("monitor", help="score a new batch with a pipeline's champion and check it for drift")
    p.add_argument("pipeline", help="a pipeline name or its spec file")
    p.add_argument("batch", help="a file, a glob (its newest match) or a folder of batches (its newest entry)")
    p.add_argument("--runs", default="runs", help="folder of run folders (default: runs); the batch's predictions "
                                                  "and drift report go to <runs>/<pipeline>/monitor/")
    p.add_argument("--id", dest="id_column", metavar="COLUMN", help="as for predict")
    p.add_argument("--keep", action="append", default=[], metavar="COLUMN", help="as for predict (repeatable)")
    p.add_argument("--fail-on-drift", action="store_true", help="exit 5 when the batch drifted")
    p.add_argument("--keep-batches", type=int, metavar="N",
                   help="once the batch is scored, keep only the newest N batch folders under "
                        "<runs>/<pipeline>/monitor/ (default: all; the history keeps a line for every batch)")

    p = sub.add_parser("sweep", help="train a grid of spec variants in parallel and promote the best")
    p.add_argument("spec", help="path to a pipeline spec (YAML)")
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="values to try for a spec field, e.g. model.C=0.1,1,10 (repeatable: the product is tried)")
    p.add_argument("--runner", default="threads", choices=["threads", "processes", "dask", "ray"],
                   help="where candidates train (default: threads)")
    p.add_argument("--address", help="Dask scheduler (tcp://host:8786) or Ray (ray://host:10001) address; "
                                     "default: a local Dask cluster / local Ray")
    p.add_argument("--workers", type=int, help="candidates trained at once (default: CPUs, at most 4)")
    p.add_argument("--out", default="runs")
    _overrides(p)

    p = sub.add_parser("tune", help="search spec fields with Optuna (pruning, resumable) and promote the best")
    p.add_argument("spec", help="path to a pipeline spec (YAML)")
    p.add_argument("--trials", type=int, help="trials in all, finished ones of a resumed study included "
                                              "(default: the spec's tune.trials)")
    p.add_argument("--space", action="append", default=[], metavar="KEY=KIND:ARGS",
                   help="a spec field to search: model.C=loguniform:1e-3:1e2, train.epochs=int:2:20, "
                        "model.name=choice:svm,logistic_regression (repeatable; adds to the spec's tune.space)")
    p.add_argument("--runner", default="threads", choices=["threads", "processes", "dask", "ray"],
                   help="where trials train (default: threads)")
    p.add_argument("--address", help="Dask scheduler or Ray address; default: a local Dask cluster / local Ray")
    p.add_argument("--workers", type=int, help="trials trained at once (default: CPUs, at most 4)")
    p.add_argument("--out", default="runs")
    _overrides(p)

    p = sub.add_parser("serve", help="serve every deployment in deploy/prefect.yaml with its schedule")
    p.add_argument("--file", help="the deployments file (default: deploy/prefect.yaml)")
    p.add_argument("--only", action="append", metavar="NAME", help="serve only this deployment (repeatable)")
    p.add_argument("--interval", type=float, metavar="SECONDS",
                   help="replace every schedule by this interval (for trying things out)")
    p.add_argument("--out", help="folder for run folders (default: each deployment's 'out' parameter)")
    p.add_argument("--limit", type=int, help="most flow runs at once")

    p = sub.add_parser("components", help="list every registered component and its options")
    p.add_argument("--kind", help="only this kind (loader, imputer, model, ...)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``trainflow`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    from trainflow.errors import TrainflowError

    try:
        return COMMANDS[args.command](args)
    except TrainflowError as exc:
        print(f"trainflow: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("trainflow: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a crash: the Prefect log above has the traceback
        if os.environ.get("TRAINFLOW_DEBUG"):
            raise
        full = disk_full(exc, getattr(args, "out", None))
        if full:
            print(f"trainflow: error: {full}", file=sys.stderr)
            return full.exit_code
        print(f"trainflow: failed: {type(exc).__name__}: {exc} (set TRAINFLOW_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


def disk_full(exc: BaseException, out: str | None) -> Exception | None:
    """An OutputError naming the file (or else the ``--out`` folder) when ``exc`` is a full disk or
    quota met while writing; None for any other exception. Libraries that write themselves (Arrow,
    zip files, Prefect's results) report it as an OSError without a file name, or only in the text."""
    from trainflow.errors import OutputError
    from trainflow.files import NO_SPACE

    error = exc
    while error is not None and not (isinstance(error, OSError) and error.errno in NO_SPACE) \
            and "No space left on device" not in str(error) and "Disk quota exceeded" not in str(error):
        error = error.__cause__ or error.__context__
    if error is None:
        return None
    where = f"'{error.filename}'" if isinstance(error, OSError) and error.filename else \
        (f"a file under '{out}' (--out)" if out else "a file")
    return OutputError(f"No space left on the device (or the quota is used up) while writing {where}: free some "
                       f"space or choose another --out, and run again. The run was not published.")


def cmd_run(args: argparse.Namespace) -> int:
    from trainflow.tasks.common import validation_process

    # First thing, before the spec loads and Prefect imports: the validation child's imports (~2.5 s
    # CPU) overlap both as well as the load.
    validation_process.prestart()
    try:
        from trainflow.spec import load_spec

        spec = load_spec(args.spec, args.overrides)
        if not validation_process.runs_apart(spec):
            validation_process.discard()  # validated in this process (or not at all): not needed
        summary = run_spec(spec, args.out, refresh=getattr(args, "refresh_cache", False))
    except BaseException:
        validation_process.discard()  # a bad spec (exit 2) leaves no process behind
        raise
    _print_summary(summary)
    return 0


def run_spec(spec, out: str, refresh: bool = False) -> dict:
    """Run one spec as a flow, with the CLI's Prefect settings; ``refresh`` recomputes cached stages."""
    import contextlib

    from trainflow.tasks.common import validation_process
    from trainflow.flows.runtime import prefect_settings

    if validation_process.runs_apart(spec):
        # the validation child's imports (~2.7 s CPU) then overlap Prefect's start-up and the load
        validation_process.prestart()
    with prefect_settings():
        make_pipeline_folder(out, spec.name)
        from prefect import tags
        from prefect.settings import temporary_settings

        # A setting scoped to this run (not an environment variable that would outlive it), read by
        # the task engine and by the fit task (which then ignores training checkpoints).
        refreshing = temporary_settings(updates={"tasks.refresh_cache": True}) if refresh else contextlib.nullcontext()

        from trainflow.flows.monitor import run_tags
        from trainflow.flows.pipeline import run_pipeline

        with refreshing, tags(*run_tags(spec)):  # tags on the flow run from its start: failed runs are found too
            return run_pipeline(spec, out=out)


def make_pipeline_folder(out: str | os.PathLike, pipeline: str) -> Path:
    """Create ``<out>/<pipeline>`` before any flow starts; OutputError when the system refuses
    (a name too long, ``--out`` naming a file, no permission, a full disk)."""
    from trainflow.errors import OutputError

    from trainflow.tasks.common.publish import check_champion_file, check_cache_folder

    folder = Path(out) / pipeline
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"Cannot create the run folder '{folder}' (--out {out}, pipeline name of "
                          f"{len(pipeline)} characters): {exc.strerror or exc}.") from None
    check_cache_folder(Path(out) / ".cache")  # found now, not as a crash in the middle of the run
    check_champion_file(folder)
    return folder


def _print_summary(summary: dict) -> None:
    primary = summary["primary_metric"]
    print(f"\n{summary['pipeline']}: {primary} = {summary['metrics'].get(primary, float('nan')):.4f}")
    for k, v in summary["metrics"].items():
        if isinstance(v, list):  # <metric>_ci: [low, high]
            print(f"  {k:<24} [{v[0]:.4f}, {v[1]:.4f}]")
        else:
            print(f"  {k:<24} {v:.4f}")
    print(f"run folder: {summary['run_dir']}")


def cmd_validate(args: argparse.Namespace) -> int:
    from trainflow.flows.runtime import prefect_settings
    from trainflow.spec import load_spec

    spec = load_spec(args.spec, args.overrides)
    with prefect_settings():
        from trainflow.flows.pipeline import validate_pipeline

        summary = validate_pipeline(spec, out=args.out)
    if summary is None:
        print("validation is disabled in this spec")
    else:
        print(f"\nvalidation passed: {summary['evaluated']} expectations on {summary['rows']} rows\n"
              f"report: {summary['docs_path']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from trainflow.spec import load_spec

    listed = demos()
    specs = [load_spec(SPECS_DIR / f, args.overrides) for n in listed if args.which in ("all", n) for f in listed[n]]
    for spec in specs:
        print(f"\n=== demo: {spec.name} ({spec.task}, {spec.modality})")
        _print_summary(run_spec(spec, args.out))
    return 0


#: exit code of ``predict --fail-on-drift`` when the input drifted
DRIFT_EXIT = 5


def cmd_predict(args: argparse.Namespace) -> int:
    from trainflow.tasks.common.predict import predict_to_file, predict_with_drift
    from trainflow.tasks.common.promote import resolve_model

    run_dir = resolve_model(args.model, args.runs)
    if args.no_drift:
        path = predict_to_file(run_dir, args.input, args.out, id_column=args.id_column, keep=args.keep)
        print(f"predictions written to {path} (model: {run_dir})")
        return 0
    path, check = predict_with_drift(run_dir, args.input, args.out, id_column=args.id_column, keep=args.keep)
    print(f"predictions written to {path} (model: {run_dir})")
    if check.table is not None:
        print(f"drift report: {check.table} and {check.plot}")
    print(check.line, file=sys.stderr)
    return DRIFT_EXIT if args.fail_on_drift and check.drifted else 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from trainflow.flows.runtime import prefect_settings

    with prefect_settings():
        from trainflow.flows.watch import monitor_batch

        result = monitor_batch(pipeline=args.pipeline, batch=args.batch, runs=args.runs, id_column=args.id_column,
                               keep=args.keep, keep_batches=args.keep_batches)
    print(f"predictions written to {result['predictions']} (model: {result['model']}, batch: {result['batch']})")
    if result["drift_table"]:
        print(f"drift report: {result['drift_table']}")
    if result["event_id"]:
        print(f"event: trainflow.drift.detected ({result['event_id']})")
    print(result["summary"], file=sys.stderr)
    return DRIFT_EXIT if args.fail_on_drift and result["drifted"] else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from trainflow.flows.sweep import run_sweep

    summary = run_sweep(args.spec, args.grid, args.overrides, out=args.out, runner=args.runner,
                        address=args.address, workers=args.workers)
    primary = summary["primary_metric"]
    shown_apart = ("candidate", "status", "best", "ran_on", "selection_metric", "selection_score", f"test_{primary}")
    for row in summary["sweep"]:
        value = row.get("selection_score")
        shown = f"{row['selection_metric']} = {value:.4f}" if isinstance(value, float) else row["status"]
        if row.get(f"test_{primary}") is not None:  # the chosen candidate only: the test split is scored once
            shown += f"  (test {primary} = {row[f'test_{primary}']:.4f})"
        labels = " ".join(f"{k}={v}" for k, v in row.items() if k not in shown_apart)
        print(f"  {'*' if row['best'] else ' '} {row['candidate']:>3} {labels:<50} {shown}")
    _print_summary(summary)
    print(f"promotion: {summary['promotion']['reason']}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from trainflow.flows.tune import run_tune

    summary = run_tune(args.spec, args.space, args.trials, args.overrides, out=args.out, runner=args.runner,
                       address=args.address, workers=args.workers)
    tune = summary["tune"]
    primary = summary["primary_metric"]
    for row in tune["trials"]:
        params = " ".join(f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}"
                          for k in tune["best_params"])
        score = row["selection_score"]
        shown = f"{row['selection_metric']} = {score:.4f}" if isinstance(score, float) else ""
        test = row.get(f"test_{primary}")
        shown += f"  (test {primary} = {test:.4f})" if isinstance(test, float) else ""
        print(f"  {'*' if row.get('best') else ' '} {row['trial']:>3} {row['state']:<8} {params:<40} "
              f"{row['steps_run']}/{row['steps_max']} steps  {shown}")
    print(f"pruning: {tune['pruned_steps']} of {tune['steps']} steps (epochs or folds) not run")
    _print_summary(summary)
    print(f"promotion: {summary['promotion']['reason']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from trainflow.flows.serve import DEFAULT_DEPLOY_FILE, serve_all

    path = args.file or (Path("deploy/prefect.yaml") if Path("deploy/prefect.yaml").is_file() else DEFAULT_DEPLOY_FILE)
    serve_all(path, only=args.only, interval=args.interval, out=args.out, limit=args.limit)
    return 0


def cmd_components(args: argparse.Namespace) -> int:
    from trainflow.registry import KINDS, REGISTRY

    kind = None
    if args.kind:
        from trainflow.errors import ComponentError, expected

        if args.kind not in KINDS:
            raise ComponentError(expected("--kind", KINDS, args.kind))
        kind = args.kind
    current = None
    for comp in REGISTRY.all():
        if kind and comp.kind != kind:
            continue
        if comp.kind != current:
            current = comp.kind
            plural = comp.kind[:-1] + "ies" if comp.kind.endswith("y") else comp.kind + "s"
            print(f"\n{plural}: {KINDS[comp.kind]}")
        scope = f" [{', '.join(comp.tasks)}]" if comp.tasks else ""
        print(f"  {comp.name:<24}{comp.summary}{scope}")
        if comp.kind == "modality":
            _print_modality(comp.name)
            continue
        for name, field in comp.config.model_fields.items():
            default = "required" if field.is_required() else f"default {field.default!r}"
            desc = f": {field.description}" if field.description else ""
            print(f"      {name} ({default}){desc}")
    return 0


def _print_modality(name: str) -> None:
    """The tasks, loaders, models and spec sections of a modality (for ``trainflow components``)."""
    from trainflow import modalities
    from trainflow.spec import fits
    from trainflow.registry import REGISTRY

    mod = modalities.get(name)
    tasks = ", ".join(f"{t} (default model {m})" for t, m in mod.default_models.items())
    print(f"      tasks: {tasks}")
    print(f"      loaders: {', '.join(c.name for c in REGISTRY.all() if c.kind == 'loader' and c.modality == name)}")
    models = [c.name for c in REGISTRY.all() if c.kind == "model" and fits(c, name)
              and (not c.tasks or set(c.tasks) & set(mod.tasks))]
    print(f"      models: {', '.join(models)}")
    print(f"      spec sections: {', '.join(mod.sections) or 'none'}")


COMMANDS = {
    "run": cmd_run,
    "validate": cmd_validate,
    "demo": cmd_demo,
    "predict": cmd_predict,
    "monitor": cmd_monitor,
    "tune": cmd_tune,
    "components": cmd_components,
    "sweep": cmd_sweep,
    "serve": cmd_serve,
}


def entry() -> NoReturn:
    """The ``trainflow`` console script: :func:`main`, then :func:`~trainflow.fast_exit.exit_without_teardown`."""
    from trainflow.fast_exit import exit_without_teardown

    exit_without_teardown(main)


if __name__ == "__main__":
    entry()
