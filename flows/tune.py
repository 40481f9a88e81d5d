"""``trainflow tune``: an Optuna search over spec fields; the winner is published like a normal run.

The data is loaded, validated and split once, as in the sweep; every trial (a point of the space,
sampled by a seeded TPE sampler) is fitted on the training part by its own Prefect task on the
sweep's task runners (threads, processes, Dask, Ray), reporting its validation metric per epoch (networks)
or its CV mean per fold (tables) so that the median pruner stops hopeless trials early. Trials are
ranked on their selection score (:mod:`trainflow.tasks.common.selection`), never on the test split.
The study lives in SQLite under the pipeline's cache folder: a killed tune, run again, keeps its
finished trials and runs only the missing ones. The best trial's model (retrained where its cached files
are gone) is scored once on the test split, published and offered for promotion; the trials table, the
optimisation history and the parameter importance are artifacts of the flow run and tables of the report.
"""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from typing import Any

from prefect import flow, task

from trainflow import resources
from trainflow.errors import SpecError, TrainflowError
from trainflow.tasks.common import validation_process
from trainflow.flows.monitor import TRAIN_TAG, looking_up_limit
from trainflow.flows.pipeline import (RETRIES, cache_dir, evaluate_model, fit_model, load_data, profile_data,
                                      promote_published, publish_run, run_cached, split_data, validates_apart, validating)
from trainflow.flows.sweep import default_workers, make_task_runner, threads_per_candidate, with_selection
from trainflow.refs import SplitRef
from trainflow.spec import PipelineSpec
from trainflow.tasks.common import publish as publishing

#: the tag of tune flow runs, beside the pipeline's own (:func:`trainflow.flows.monitor.run_tags`)
TUNE_TAG = "tune"


def need_optuna() -> None:
    """TrainflowError with the install line when the ``tune`` extra is missing."""
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise TrainflowError("trainflow tune needs Optuna, which is not installed: pip install 'trainflow[tune]'")


@task(name="trial", tags=[TRAIN_TAG], **RETRIES)
def tune_trial(spec: PipelineSpec, split: SplitRef, cache: str, storage: str, study: str, trial_id: int,
               threads: int | None = None) -> dict[str, Any]:
    """Fit one trial (:func:`trainflow.tasks.common.tuning.run_trial`); a pruned trial is a result, not a failure."""
    from trainflow.tasks.common import tuning

    result = tuning.run_trial(spec, split, cache, storage, study, trial_id, threads)
    print(f"trial: {result['state']} after {result['steps']} of {result['steps_max']} steps"
          + (f", {result['selection']['metric']} = {result['value']:.4f}" if result["state"] == "complete" else ""))
    return result


def _run_name() -> str:
    from prefect.runtime import flow_run

    spec = flow_run.parameters.get("spec")
    name = spec.get("name") if isinstance(spec, dict) else getattr(spec, "name", "pipeline")
    return f"tune-{name}-{datetime.now():%Y-%m-%d-%H%M%S}"


@flow(name="trainflow-tune", flow_run_name=_run_name, log_prints=True)
def tune_pipeline(spec: PipelineSpec, path: str, overrides: list[str], space: list[str], trials: int,
                  out: str = "runs", workers: int = 1, threads: int | None = None) -> dict[str, Any]:
    """Run the study of ``spec`` (read from ``path`` with ``overrides``) over ``space`` until ``trials``
    trials are finished, ``workers`` at a time; publish the best one. Returns the run's summary with
    ``"tune"``: the trials table, the best trial and the pruned steps."""
    from trainflow.flows.monitor import run_tags, untagged_tasks

    with untagged_tasks([*run_tags(spec), TUNE_TAG]):
        return _tune(spec, path, overrides, space, trials, out, workers, threads)


def _tune(spec: PipelineSpec, path: str, overrides: list[str], space_items: list[str], trials: int, out: str,
          workers: int, threads: int | None) -> dict[str, Any]:
    from prefect.artifacts import (create_markdown_artifact, create_progress_artifact, create_table_artifact,
                                   update_progress_artifact)
    from prefect.futures import as_completed

    from trainflow.spec import load_spec
    from trainflow.tasks.common import tuning
    from trainflow.tasks.common.metrics import PRIMARY
    from trainflow.tasks.common.publish import artifact_key
    from trainflow.tasks.common.selection import selection_overrides

    space = tuning.parse_space(space_items, spec.tune.space)
    scored = [*selection_overrides(spec), *overrides]  # every trial measures a selection score
    base = load_spec(path, scored)
    cache = cache_dir(out)
    train_limited = looking_up_limit(TRAIN_TAG)
    tuning.lock_study(cache, spec.name)  # before anything is written: a second tune leaves no run behind
    run = publishing.open_run(out, spec.name)
    primary = spec.evaluate.primary or PRIMARY[spec.task]
    key = artifact_key(spec.name)
    held = contextlib.ExitStack()  # the trials' thread pools; closed however the tune ends
    try:
        if validates_apart(base):
            validation_process.prestart()
        data = load_data(base.data, cache, base.modality)
        with validating(data, base, run.docs) as checking:
            data = profile_data(data, base)
            split = run_cached(split_data, cache, data, base.training_view(), cache)  # one split for every trial
        validation = checking.result()

        study = tuning.open_study(base, space, cache)
        storage = tuning.storage_url(cache, spec.name)
        done = len(tuning.finished(study))
        print(f"tune: study {study.study_name} in {tuning.study_path(cache, spec.name)}: {done} of {trials} "
              f"trials finished before")
        progress = create_progress_artifact(100.0 * min(done, trials) / trials, key=f"{key}-tune-progress",
                                            description=f"{trials} trials")
        training = tune_trial if train_limited.result() else tune_trial.with_options(tags=[])
        failures, last = 0, ""
        if threads:  # the pools' sizes are process-wide: held here so that no trial finishing lifts them
            held.enter_context(resources.using(threads))
        while done < trials:
            futures = {}
            for _ in range(min(workers, trials - done)):
                trial = study.ask({p.key: p.distribution() for p in space})
                try:
                    trial_spec = load_spec(path, [*scored, *tuning.overrides(space, trial.params)])
                except SpecError as exc:  # a combination the spec refuses (the bounds alone were checked)
                    import optuna

                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    failures += 1
                    last = f"trial {trial.number} {trial.params} is not a valid spec: {exc}"
                    print(f"tune: {last}")
                    continue
                futures[training.submit(trial_spec, split, cache, storage, study.study_name, trial._trial_id,
                                        threads)] = trial
            for future in as_completed(list(futures)):
                trial = futures[future]
                try:
                    result = future.result()
                    print(f"tune: trial {trial.number} {trial.params} {result['state']}"
                          + (f" {result['selection']['metric']} = {result['value']:.4f}"
                             if result["state"] == "complete" else f" after {result['steps']} steps"))
                except Exception as exc:  # one failed trial does not sink the study
                    failures += 1
                    last = f"trial {trial.number} {trial.params} failed: {type(exc).__name__}: {exc}"
                    print(f"tune: {last}")
            done = len(tuning.finished(study))
            update_progress_artifact(progress, 100.0 * min(done, trials) / trials)
            # a space whose first trials all fail is broken (a bound the data cannot take): stop there
            if failures > max(3, trials) or (failures >= min(3, trials) and not done):
                raise TrainflowError(f"tune: {failures} trial(s) failed and {done} finished; the last: {last}")

        held.close()
        rows = tuning.trials_table(study, space)
        complete = [t for t in tuning.finished(study) if t.state.name == "COMPLETE"]
        if not complete:
            raise TrainflowError(f"no tune trial completed ({len(rows)} trials): every one was pruned or failed.")
        best = study.best_trial
        winner = load_spec(path, [*scored, *tuning.overrides(space, best.params)])
        model = tuning.stored_model(best)
        if model is None:  # its files are gone from the cache (another machine, a cleaned cache): fit it again
            print(f"tune: the model of trial {best.number} is not in the cache; fitting it again")
            model = run_cached(fit_model, cache, split, winner.training_view(), cache)
        selection = best.user_attrs["selection"]
        model = with_selection(model, selection, len(complete))
        evaluation = evaluate_model(model, split, winner, run.plots)  # the test split, once, for the winner
        saved, most = tuning.pruned_share(rows)
        for row in rows:
            row["best"] = "yes" if row["trial"] == best.number else ""
        rows_by = {r["trial"]: r for r in rows}
        rows_by[best.number][f"test_{primary}"] = evaluation.metrics.get(primary)
        importance = tuning.importance_table(study)
        create_table_artifact(table=rows, key=f"{key}-tune",
                              description=f"Tune trials of {spec.name}, ranked on {selection['metric']} "
                                          f"({selection['method']}); test {primary} of the best trial only")
        create_markdown_artifact(tuning.history_markdown(study, f"Optimisation history of {spec.name}"),
                                 key=f"{key}-tune-history", description="Selection score of each trial")
        if importance:
            create_table_artifact(table=importance, key=f"{key}-tune-importance",
                                  description="Parameter importance (optuna.importance, fANOVA)")
        print(f"tune: best trial {best.number} {best.params} with {selection['metric']} = {selection['value']:.4f}; "
              f"pruning saved {saved} of {most} steps (epochs or folds)")
        evaluation = evaluation.model_copy(update={"tables": {
            **evaluation.tables, "Tune trials": rows, **({"Parameter importance": importance} if importance else {})}})
        summary = publish_run(run, winner, data, validation, split, model, evaluation)
    except BaseException as exc:
        validation_process.discard()
        publishing.fail_run(run, exc)
        raise
    finally:
        held.close()  # a failed tune left the process at the trials' thread count (and contextvar) before
        tuning.release_study(cache, spec.name)
    summary["promotion"] = promote_published(run, summary, winner, split)
    summary["tune"] = {"trials": rows, "best_trial": best.number, "best_params": best.params,
                       "pruned_steps": saved, "steps": most, "study": str(tuning.study_path(cache, spec.name)),
                       "importance": importance}
    return summary


def run_tune(path: str, space_items: list[str], trials: int | None = None, overrides: list[str] | None = None,
             out: str = "runs", runner: str = "threads", address: str | None = None, workers: int | None = None,
             dask_processes: bool = True) -> dict[str, Any]:
    """Check the spec and its space (SpecError naming a bad entry), then run the tune flow on the chosen runner."""
    from trainflow.flows.monitor import run_tags
    from trainflow.flows.runtime import prefect_settings
    from trainflow.spec import load_spec
    from trainflow.tasks.common import tuning

    overrides = list(overrides or [])
    base = load_spec(path, overrides)
    space = tuning.parse_space(list(space_items), base.tune.space)
    tuning.check_space(path, overrides, space)
    need_optuna()
    if trials is not None and trials < 1:
        raise SpecError(f"--trials must be at least 1. Got {trials}.")
    workers = default_workers() if workers is None else workers
    task_runner = make_task_runner(runner, address, workers, dask_processes)
    with prefect_settings():
        from prefect import tags

        with tags(*run_tags(base), TUNE_TAG):
            return tune_pipeline.with_options(task_runner=task_runner)(
                base, os.path.abspath(path), overrides, list(space_items), trials or base.tune.trials, out=out,
                workers=workers, threads=threads_per_candidate(runner, workers, base.resources.threads))
