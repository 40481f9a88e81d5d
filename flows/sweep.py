"""``trainflow sweep``: train a grid of spec variants in parallel and promote the best.

The data is loaded and validated once (validation overlapping the profile and the splits, as in
the pipeline flow, and finished before any candidate trains); every candidate (one combination of
the ``--grid`` values) is then trained and evaluated by its own Prefect task on a task runner: a thread or
process pool here, a Dask cluster (local, or at a scheduler address) or a Ray cluster. The
candidates are compared in one table artifact on their selection score, which never looks at the test
split (cross-validation on the training split, a network's validation part, the forecasting backtest:
:mod:`trainflow.tasks.common.selection`); the best one alone is then scored on the test split, published as
a normal run folder and offered for promotion like any run.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import socket
from datetime import datetime
from typing import Any

from prefect import flow, task

from trainflow.errors import SpecError, TrainflowError
from trainflow.flows.monitor import TRAIN_TAG, looking_up_limit
from trainflow.tasks.common import validation_process
from trainflow.flows.pipeline import (RETRIES, cache_dir, evaluate_model, load_data, profile_data, promote_published,
                                      publish_run, refresh_requested, run_cached, split_data, validates_apart,
                                      validating)
from trainflow.spec import PipelineSpec, spec_model
from trainflow import modalities
from trainflow import resources
from trainflow.refs import DataRef, SplitRef
from trainflow.tasks.common import publish as publishing

RUNNERS = ("threads", "processes", "dask", "ray")
#: the tag of sweep flow runs, beside the pipeline's own (:func:`trainflow.flows.monitor.run_tags`)
SWEEP_TAG = "sweep"


def default_workers() -> int:
    """Parallel candidates when ``--workers`` is not given: the usable cores, at most 4."""
    return max(1, min(4, resources.available()))


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``["model.C=0.1,1,10", ...]`` -> ``{"model.C": ["0.1", "1", "10"]}`` (values parsed later as YAML);
    SpecError listing every malformed, fixed (:func:`~trainflow.tasks.common.tuning.fixed_key_problem`)
    or repeated key."""
    from trainflow.tasks.common.tuning import fixed_key_problem

    grid: dict[str, list[str]] = {}
    problems = []
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        parts = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not parts:
            problems.append(f"--grid expects KEY=V1,V2,..., e.g. model.C=0.1,1,10. Got {item!r}.")
        elif why := fixed_key_problem(key, "sweep"):
            problems.append(f"--grid {key}: {why}.")
        elif key in grid:  # the later one would replace the earlier without a word
            problems.append(f"--grid {key} is given twice ({','.join(grid[key])} and {','.join(parts)}): "
                            f"list all its values in one --grid {key}=V1,V2,....")
        elif twice := sorted({v for v in parts if parts.count(v) > 1}):
            problems.append(f"--grid {key} lists {', '.join(twice)} more than once: each value is one "
                            f"candidate, trained once.")
        else:
            grid[key] = parts
    if problems:
        raise SpecError(problems)
    return grid


def combinations(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of the grid's values, as ``{key: value}``."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def candidate_specs(path: str, overrides: list[str], grid: dict[str, list[str]]) -> tuple[list[PipelineSpec], list[dict[str, str]]]:
    """The spec of every grid combination (``--set`` overrides first); all are validated before any run."""
    from trainflow.spec import load_spec

    from trainflow.tasks.common import tuning
    from trainflow.tasks.common.selection import selection_overrides

    combos = combinations(grid)
    specs, problems = [], []
    # every candidate measures a selection score (CV folds, a validation part) where its spec asks for none
    base = load_spec(path, overrides)
    scored = selection_overrides(base)
    problems += [f"--grid {k}: {why}, so every candidate would be the same model; vary a field the spec's model "
                 f"uses." for k in grid if (why := tuning.unread_section(base, k))]
    for combo in combos if not problems else ():
        # a model chosen by name starts from its own defaults (the spec's options are its model's), as in tune
        sets = [f'model={{"name": "{v}"}}' if k == "model.name" else f"{k}={v}"
                for k, v in sorted(combo.items(), key=lambda kv: kv[0] != "model.name")]
        try:
            specs.append(load_spec(path, [*scored, *overrides, *sets]))
        except SpecError as exc:
            problems += [f"candidate {combo}: {p}" for p in exc.problems]
    if problems:
        raise SpecError(problems, path)
    return specs, combos


def make_task_runner(kind: str = "threads", address: str | None = None, workers: int | None = None,
                     dask_processes: bool = True) -> Any:
    """A Prefect task runner with at most ``workers`` candidates at once.

    ``dask`` without an address starts a local cluster of ``workers`` single-threaded workers
    (worker processes, or threads with ``dask_processes=False``); with an address it connects to
    that scheduler. ``ray`` needs ``prefect-ray`` (``pip install 'trainflow[ray]'``).
    """
    from trainflow.errors import expected

    workers = default_workers() if workers is None else workers
    if workers < 1:  # 0 is refused, not read as "the default"
        raise SpecError(f"--workers must be at least 1. Got {workers}.")
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise TrainflowError("--runner dask needs prefect-dask: pip install 'trainflow[dask]'") from None
        if address:
            return DaskTaskRunner(address=address)
        return DaskTaskRunner(cluster_class="distributed.LocalCluster", cluster_kwargs={
            "n_workers": workers, "threads_per_worker": 1, "processes": dask_processes,
            "dashboard_address": None})
    if kind == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError:
            raise TrainflowError("--runner ray needs prefect-ray and ray, which are not installed: "
                                 "pip install 'trainflow[ray]'") from None
        return RayTaskRunner(address=address) if address else RayTaskRunner()
    raise SpecError(expected("--runner", RUNNERS, kind))


@task(name="candidate", tags=[TRAIN_TAG], **RETRIES)
def train_candidate(spec: PipelineSpec, split: SplitRef, cache: str, threads: int | None = None) -> dict[str, Any]:
    """Fit one candidate on the shared split's training part; returns its model, its selection score
    (:func:`~trainflow.tasks.common.selection.selection_of`; the test split is not touched) and
    ``ran_on`` (``host:pid`` of the process that trained it: on a cluster, which worker).

    ``threads``: this candidate's CPU threads (joblib, BLAS, OpenMP, torch; :mod:`trainflow.resources`),
    None: the spec's ``resources.threads``.
    """
    from trainflow.tasks.common.selection import selection_of
    from trainflow.tasks.common.training import fresh_start

    mod = modalities.get(spec.modality)
    threads = threads or resources.resolve(spec.resources.threads)
    with resources.using(threads):
        with fresh_start(refresh_requested()):
            model = mod.fit(split, spec.training_view(), cache)
        model = model.model_copy(update={"meta": {**model.meta, "threads": threads}})
    return {"model": model, "selection": selection_of(model, spec), "ran_on": f"{socket.gethostname()}:{os.getpid()}"}


def threads_per_candidate(runner: str, workers: int | None, threads: int = 0) -> int | None:
    """CPU threads for each of ``workers`` candidates trained at once on this machine: the run's
    ``threads`` (``resources.threads``; 0: every usable core) shared out, so that together they use
    the cores once (each library would otherwise start one thread per core in every candidate).
    None for clusters: their workers are set up there (each candidate then uses its spec's
    ``resources.threads``, resolved on the worker)."""
    if runner not in ("threads", "processes"):
        return None
    return resources.share(resources.resolve(threads), workers or default_workers())


def _score(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def choose(labels: list[dict[str, str]], results: dict[int, dict[str, Any] | BaseException]
           ) -> tuple[list[dict[str, Any]], int | None]:
    """The sweep table (one row per candidate: its selection score, or why it has none) and the index
    of the candidate with the best selection score (None when none has one). No test score is read."""
    from trainflow.tasks.common.selection import better, usable

    rows, best, best_value = [], None, None
    for i, label in enumerate(labels):
        result = results[i]
        row: dict[str, Any] = {"candidate": i, **label}
        if isinstance(result, BaseException):
            row |= {"selection_metric": None, "selection_score": None,
                    "status": f"failed: {type(result).__name__}: {result}"[:120]}
        elif not result["selection"] or not usable(result["selection"]["value"]):
            row |= {"selection_metric": None, "selection_score": None,
                    "status": "no selection score (no cross-validation, validation part or backtest)"}
        else:
            sel = result["selection"]
            row |= {"selection_metric": sel["metric"], "selection_score": sel["value"], "status": "ok",
                    "ran_on": result["ran_on"]}
            if better(sel["value"], best_value, sel.get("greater_is_better", True)):
                best, best_value = i, sel["value"]
        rows.append(row)
    for row in rows:
        row["best"] = "yes" if row["candidate"] == best else ""
    return rows, best


def with_selection(model: Any, selection: dict[str, Any], candidates: int) -> Any:
    """``model`` whose meta says it was chosen among ``candidates`` on ``selection`` (metrics.json's
    ``selection``)."""
    record = {**selection, "candidates": candidates}
    return model.model_copy(update={"meta": {**model.meta, "selection": record}})


def _run_name() -> str:
    from prefect.runtime import flow_run

    spec = flow_run.parameters.get("spec")
    name = spec.get("name") if isinstance(spec, dict) else getattr(spec, "name", "pipeline")
    return f"sweep-{name}-{datetime.now():%Y-%m-%d-%H%M%S}"



spec_model()  # the modality sections, before Prefect reads the flow's parameter form


@flow(name="trainflow-sweep", flow_run_name=_run_name, log_prints=True)
def sweep_pipeline(spec: PipelineSpec, candidates: list[PipelineSpec], labels: list[dict[str, str]],
                   out: str = "runs", threads: int | None = None) -> dict[str, Any]:
    """Train ``candidates`` (variants of ``spec``) in parallel; publish and offer the best for promotion.

    ``threads``: CPU threads per candidate (see :func:`threads_per_candidate`).
    Returns the best run's summary with ``"sweep"``: one row per candidate.
    """
    from trainflow.flows.monitor import run_tags, untagged_tasks

    with untagged_tasks([*run_tags(spec), SWEEP_TAG]):  # the flow run keeps them; its task runs need none
        return _sweep(spec, candidates, labels, out, threads)


def _sweep(spec: PipelineSpec, candidates: list[PipelineSpec], labels: list[dict[str, str]], out: str,
           threads: int | None) -> dict[str, Any]:
    from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
    from prefect.futures import as_completed

    from trainflow.tasks.common.metrics import PRIMARY
    from trainflow.tasks.common.publish import artifact_key

    cache = cache_dir(out)
    train_limited = looking_up_limit(TRAIN_TAG)  # answered by the time the candidates start
    run = publishing.open_run(out, spec.name)
    primary = spec.evaluate.primary or PRIMARY[spec.task]
    try:
        if validates_apart(spec):
            validation_process.prestart()  # its imports overlap the load
        data: DataRef = load_data(spec.data, cache, spec.modality, spec.split)
        with validating(data, spec, run.docs) as checking:  # overlaps profile and the splits
            data = profile_data(data, spec)
            splits = [run_cached(split_data, cache, data, c.training_view(), cache)  # sequential: shared files
                      for c in candidates]
        validation = checking.result()  # no candidate trains on data that failed validation
        progress = create_progress_artifact(0.0, key=f"{artifact_key(spec.name)}-sweep-progress",
                                            description=f"{len(candidates)} candidates")
        results: dict[int, dict[str, Any] | BaseException] = {}
        # the pools' sizes are process-wide: hold the share here too, so that no candidate finishing lifts it
        # for the rest (it restores what was set before it: this)
        # as in the pipeline's fit: the tag costs a server call per candidate, worth it only with a limit
        training = train_candidate if train_limited.result() else train_candidate.with_options(tags=[])
        with resources.using(threads) if threads else contextlib.nullcontext():
            futures = {training.submit(c, s, cache, threads): i for i, (c, s) in enumerate(zip(candidates, splits))}
            for done in as_completed(list(futures)):
                i = futures[done]
                try:
                    results[i] = done.result()
                except Exception as exc:  # one failed candidate does not sink the sweep
                    results[i] = exc
                update_progress_artifact(progress, 100.0 * len(results) / len(candidates))
                print(f"sweep: candidate {i} {labels[i]} done ({len(results)}/{len(candidates)})")

        rows, best = choose(labels, results)
        if best is None:
            raise TrainflowError(f"no sweep candidate has a selection score ({len(candidates)} candidates): "
                                 + "; ".join(str(r["status"]) for r in rows))
        chosen = results[best]
        model = with_selection(chosen["model"], chosen["selection"], len(candidates))
        # the test split, once, for the chosen candidate only
        evaluation = evaluate_model(model, splits[best], candidates[best], run.plots)
        test = _score(evaluation.metrics, primary)
        rows[best][f"test_{primary}"] = test
        create_table_artifact(table=rows, key=f"{artifact_key(spec.name)}-sweep",
                              description=f"Sweep of {len(candidates)} candidates, chosen on "
                                          f"{chosen['selection']['metric']} ({chosen['selection']['method']}); "
                                          f"test {primary} of the chosen one only")
        print(f"sweep: chose candidate {best} {labels[best]} on {chosen['selection']['metric']} = "
              f"{chosen['selection']['value']:.4f}; its test {primary} = {test}")
        evaluation = evaluation.model_copy(update={"tables": {**evaluation.tables, "Sweep candidates": rows}})
        summary = publish_run(run, candidates[best], data, validation, splits[best], model, evaluation)
    except BaseException as exc:
        validation_process.discard()  # one started ahead for a run that failed before validating
        publishing.fail_run(run, exc)
        raise
    summary["promotion"] = promote_published(run, summary, candidates[best], splits[best])
    summary["sweep"] = rows
    return summary


def run_sweep(path: str, grid_items: list[str], overrides: list[str] | None = None, out: str = "runs",
              runner: str = "threads", address: str | None = None, workers: int | None = None,
              dask_processes: bool = True) -> dict[str, Any]:
    """Build the candidates of a spec file and a grid, and run the sweep flow on the chosen runner."""
    from trainflow.flows.monitor import run_tags
    from trainflow.flows.runtime import prefect_settings
    from trainflow.spec import load_spec

    base = load_spec(path, list(overrides or []))
    specs, labels = candidate_specs(path, list(overrides or []), parse_grid(grid_items))
    task_runner = make_task_runner(runner, address, workers, dask_processes)
    with prefect_settings():
        from prefect import tags

        with tags(*run_tags(base), SWEEP_TAG):
            threads = threads_per_candidate(runner, workers, base.resources.threads)
            return sweep_pipeline.with_options(task_runner=task_runner)(base, specs, labels, out=out, threads=threads)
