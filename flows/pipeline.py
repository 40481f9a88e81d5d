"""The pipeline flow: load -> validate -> split -> fit -> evaluate -> publish.

Each stage is a Prefect task. Validation is a pure check whose result gates training and the
published report, so it runs beside profile and split (:func:`validating`: its own task run, the
Great Expectations work in a child process, see :mod:`trainflow.tasks.common.validation_process` for why
not a thread) and ``fit`` waits for it; a failed validation stops the run before training as before.
Tasks exchange small references (path + digest), never DataFrames or models. ``split`` and ``fit``
cache on their inputs (data digests, spec) plus the fingerprint of the code they run
(:mod:`trainflow.cache_keys`), with results persisted under ``<out>/.cache``, so re-running a run
that crashed after training reuses the trained model, and a code change retrains. The cache is
disposable: a cached result whose files are gone or damaged is recomputed (:func:`run_cached`).
Transient errors (I/O) are retried with backoff; spec and data errors fail at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.flows import Flow
from prefect.futures import PrefectFuture
from prefect.tasks import Task, exponential_backoff

from trainflow.cache_keys import code_fingerprint, default_threads
from trainflow.cache_records import CheckedResults
from trainflow.errors import TrainflowError
from trainflow.flows.monitor import TRAIN_TAG, looking_up_limit, run_tags, untagged_tasks
from trainflow.tasks.common import validation_process
from trainflow.spec import DataSpec, PipelineSpec, SplitSpec, StageSpec, spec_model
from trainflow import modalities
from trainflow import resources
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, damage
from trainflow.tasks.common import load as loading
from trainflow.tasks.common import metrics
from trainflow.tasks.common import publish as publishing
from trainflow.tasks.common import warmup

# Prefect reads the flows' parameter forms when they are defined: the spec needs its modality sections by then
spec_model()
from trainflow.tasks.common.publish import RunFolder


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry I/O and connection errors; never a bad spec, bad data or failed validation."""
    try:
        state.result()
    except TrainflowError:
        return False
    except (OSError, TimeoutError, ConnectionError):
        return True
    except Exception:
        return False
    return False


@dataclass
class CodeFingerprint(CachePolicy):
    """Cache-key part for the code a task's ``spec`` runs (:func:`trainflow.cache_keys.code_fingerprint`).

    ``TASK_SOURCE`` alone hashes only the few lines of the task function, not the modality module,
    training loop or (plug-in) component bodies it calls."""

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        spec = inputs.get("spec")
        return code_fingerprint(spec, inputs.get("threads")) if spec is not None else None


class SpecKey(CachePolicy):
    """Cache-key part for a task's ``spec``: its :meth:`~trainflow.spec.PipelineSpec.key_dump`, so that the
    modalities' sections left at their defaults (which a newly installed plug-in adds to every spec) do
    not change the key, as they do not change the model (``INPUTS`` would hash the whole spec)."""

    def compute_key(self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        from trainflow.refs import json_digest

        spec = inputs.get("spec")
        return json_digest(spec.key_dump()) if spec is not None else None


RETRIES = dict(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=2), retry_condition_fn=retry_transient)
# a task's ``threads`` input is keyed only where results depend on it (CodeFingerprint, see trainflow.cache_keys)
CACHED = dict(cache_policy=INPUTS - "threads" - "spec" + SpecKey() + TASK_SOURCE + CodeFingerprint(), persist_result=True,
              result_serializer="json")


def cache_dir(out: str) -> str:
    """Content-addressed store of data, splits, models, checkpoints and the persisted results of
    cached tasks (``results/``), shared by the runs under ``out``; safe to delete."""
    return str(Path(out).resolve() / ".cache")


def refresh_requested() -> bool:
    """True when cached results must be recomputed (``--refresh-cache``, PREFECT_TASKS_REFRESH_CACHE)."""
    from prefect.settings import get_current_settings

    return bool(get_current_settings().tasks.refresh_cache)


def run_cached(stage: Task, cache: str, *args: Any) -> Any:
    """Call a cached task (split or fit) with its result persisted in ``<cache>/results``.

    Prefect returns a cached result without calling the task, so the files a cached reference points
    to are checked here: when one is missing or does not match its digest, the task runs again with
    ``refresh_cache`` and a warning says why. A result the task has just made is not read again (its
    files were digested as they were written; re-reading the split costs 0.25 s at 1M rows).
    """
    def stored(**options: Any) -> Task:
        task = stage.with_options(result_storage=Path(cache) / "results", **options)
        # Records are checked before Prefect reads them, so a poisoned one is a cache miss (cache_records).
        # Set after construction: Task() accepts only saved blocks, for workers that read results remotely,
        # which these local records never are (a Path becomes an unsaved LocalFileSystem the same way).
        task.result_storage = CheckedResults(basepath=str(Path(cache) / "results"))
        return task

    state = stored()(*args, return_state=True)
    ref = state.result()  # raises the task's error as a plain call would
    problem = damage(ref) if state.name == "Cached" else None
    if problem:
        get_run_logger().warning(f"{stage.name}: recomputing, the cached result cannot be used: {problem}")
        ref = stored(refresh_cache=True)(*args)
    return ref


@task(name="load", **RETRIES)
def load_data(data: DataSpec, cache: str, modality: str, split: SplitSpec | None = None) -> DataRef:
    """Read the dataset with the spec's loader (carrying the split's column or group when the spec
    names one); the spec's modality stores it in the cache."""
    ref = loading.load(data, cache, modality, split if split is not None and split.key else None)
    print(f"load: {ref.meta.get('rows', '?')} rows from {ref.meta.get('source', data.loader)} (digest {ref.digest[:12]})")
    return ref


@task(name="validate", **RETRIES)
def validate_data(data: DataRef, spec: PipelineSpec, docs_dir: str | None,
                  apart: bool = False, ticket: str | None = None, docs_later: bool = False) -> dict[str, Any] | None:
    """Great Expectations checks; a failure stops the run before training. ``apart``: in a child
    process (:mod:`trainflow.tasks.common.validation_process`) where the modality allows it; ``ticket``
    names the gate (:func:`~trainflow.tasks.common.validation_process.gate`) that the flow opens when the
    stages it runs beside this task are done: a validation the child hands back waits there before
    it runs in this process, so that two threads never race their first imports; ``docs_later``: the
    child answers before writing the Data Docs, and the flow calls
    :func:`~trainflow.tasks.common.validation_process.wait_for_docs` before it needs them."""
    if not spec.validation.enabled:
        print("validate: skipped (validation.enabled is false)")
        return None
    mod = modalities.get(spec.modality)
    ran, summary = (validation_process.validate_apart(mod, data, spec, docs_dir, docs_later=docs_later)
                    if apart else (False, None))
    if not ran:
        if apart:
            print(f"validate: in this process, after the stages beside it ({summary})")
        if ticket:
            validation_process.gate(ticket).wait()
        with warmup.WARMING:  # never beside the flow's warm-up imports (see validating)
            summary = mod.validate(data, spec, docs_dir)
    print(f"validate: {summary['evaluated']} expectations passed on {summary['rows']} rows")
    return summary


@task(name="profile", **RETRIES)
def profile_data(data: DataRef, spec: PipelineSpec) -> DataRef:
    """Profile the data before the split where the modality does (tables: the columns and the feature
    plan, which travels in the reference's meta)."""
    ref = modalities.get(spec.modality).profile(data, spec)
    if ref.meta.get("profile"):
        publishing.profile_artifact(spec.name, ref.meta["profile"])
    return ref


@task(name="split", **RETRIES, **CACHED)
def split_data(data: DataRef, spec: PipelineSpec, cache: str) -> SplitRef:
    """Hold out the test split (fixed by split.seed)."""
    ref = modalities.get(spec.modality).split(data, spec, cache)
    val = f"{ref.validation.meta.get('rows')} validation / " if ref.validation is not None else ""
    print(f"split: {ref.train.meta.get('rows')} train / {val}{ref.test.meta.get('rows')} test rows")
    return ref


@task(name="fit", tags=[TRAIN_TAG], **RETRIES, **CACHED)
def fit_model(split: SplitRef, spec: PipelineSpec, cache: str, threads: int | None = None) -> ModelRef:
    """Fit preprocessing and model on the training split only (from scratch on a refresh), on
    ``threads`` CPU threads (None: every usable core; :mod:`trainflow.resources`)."""
    from trainflow.tasks.common.training import fresh_start

    threads = resources.resolve(threads)
    with fresh_start(refresh_requested()), resources.using(threads):
        ref = modalities.get(spec.modality).fit(split, spec, cache)
    ref = ref.model_copy(update={"meta": {**ref.meta, "threads": threads}})
    print(f"fit: {spec.model.name} with steps {' -> '.join(ref.meta.get('steps', []))} on {threads} threads")
    return ref


@task(name="evaluate", **RETRIES)
def evaluate_model(model: ModelRef, split: SplitRef, spec: PipelineSpec, plots_dir: str,
                   threads: int | None = None) -> Evaluation:
    """Score the model on the held-out split, on ``threads`` (None: the spec's ``resources.threads``)."""
    with resources.using(threads or resources.resolve(spec.resources.threads)):
        ev = modalities.get(spec.modality).evaluate(model, split, spec, plots_dir)
    shown = ", ".join(f"{k}={v:.4f}" for k, v in list(ev.metrics.items())[:4])
    print(f"evaluate: {shown}")
    return ev


@task(name="publish", **RETRIES)
def publish_run(run: RunFolder, spec: PipelineSpec, data: DataRef, validation: dict[str, Any] | None,
                split: SplitRef, model: ModelRef, evaluation: Evaluation) -> dict[str, Any]:
    """Write the run folder atomically (the report artifact follows the promotion decision)."""
    from prefect.runtime import flow_run

    # a retry after the folder was moved into place finds it published: nothing to copy again
    files = [] if publishing.is_published(run) else export_with_profile(run, spec, split, model, evaluation)
    primary = spec.evaluate.primary or metrics.PRIMARY[spec.task]
    summary = publishing.publish(run, spec, data, validation, split, model, evaluation, files, primary,
                                 flow_run_id=flow_run.get_id())
    print(f"publish: {summary['run_dir']}")
    return summary


def export_with_profile(run: RunFolder, spec: PipelineSpec, split: SplitRef, model: ModelRef,
                        evaluation: Evaluation) -> list[str]:
    """The model's files and its reference profile for drift checks (:mod:`trainflow.tasks.common.drift`)."""
    from trainflow.tasks.common import drift

    mod = modalities.get(spec.modality)
    files = mod.export(model, str(run.staging))
    return [*files, drift.profile_run(mod, split, evaluation.confusion, spec.task, run.staging, spec.seed)]


@task(name="promote", **RETRIES)
def promote_run(summary: dict[str, Any], spec: PipelineSpec, split: SplitRef | None = None) -> dict[str, Any]:
    """Make the run the pipeline's champion if it beats the current one (scored on ``split``'s test
    rows under the paired rule); tag the run."""
    from trainflow.flows.monitor import add_flow_run_tags, data_tag
    from trainflow.tasks.common import promote

    publishing.check_champion_file(Path(summary["run_dir"]).parent)  # a folder there: named, not IsADirectoryError
    decision = promote.promote(summary, spec.promotion, split=split, seed=spec.seed)
    # The report artifact is made here, not at publish, so that it says whether the run became champion.
    publishing.publish_artifacts(summary, appendix=promote.report_section(decision))
    promote.promotion_artifact(summary, decision)
    add_flow_run_tags([*run_tags(spec), data_tag(summary["data_digest"])])
    print(f"promote: {'champion' if decision['promoted'] else 'not promoted'}: {decision['reason']}")
    return decision


def promote_published(run: Any, summary: dict[str, Any], spec: PipelineSpec, split: SplitRef | None) -> dict[str, Any]:
    """:func:`promote_run` on a published run; if it fails, the run is marked failed (it must not look
    finished) and a champion pointer already switched to it goes back."""
    from trainflow.tasks.common import promote

    try:
        return promote_run(summary, spec, split)
    except BaseException as exc:
        if publishing.fail_published(run, exc) is not None:
            promote.withdraw(Path(summary["run_dir"]).parent, summary["run_id"])
        raise


@task(name="stage", **RETRIES)
def run_stage(stage: StageSpec, context: dict[str, Any]) -> Any:
    """Run one user-defined extra stage (a registered ``stage`` component)."""
    comp, config = stage.resolve("stages")
    return comp.build(config, context)


#: validate beside profile and split, in a child process (see :mod:`trainflow.tasks.common.validation_process`
#: for why not in a thread); False: in this process, before profile and split
APART = True


def validates_apart(spec: PipelineSpec) -> bool:
    """Whether the spec's validation runs in a child process, beside profile and split."""
    return APART and validation_process.runs_apart(spec)


@contextmanager
def validating(data: DataRef, spec: PipelineSpec, docs_dir: str | None,
               docs_later: bool = False) -> Iterator[PrefectFuture]:
    """Run the ``validate`` task while the block runs; yields its future.

    The task runs in a thread of this process, whatever the flow's task runner (the Data Docs go
    to the local run folder), and its stage in a child process (:func:`validates_apart`), so the
    block (profile, split) overlaps it; the caller takes ``.result()`` after the block, before
    anything that needs the data to be valid (fit). The block starts at once: it does not wait for
    the child, whose imports (Great Expectations, ~3 s) may still run. Where the child cannot run
    the modality (it says so, or the modality is not apart), the validation runs in this process
    once the block is done (or, not apart, before it starts): two threads importing the same
    packages for the first time can deadlock. When the block fails, the validation's own failure
    is the error raised, as if validation had run first: a run on bad data stops with exit code 4
    and its report, whatever the overlapping stages made of it.
    ``docs_later``: see :func:`validate_data` (the caller then waits for the docs).

    While this thread waits for the child after the block (its imports take ~3 s from the start,
    then the validation itself), it runs the modality's warm-up imports
    (:mod:`trainflow.tasks.common.warmup`), one at a time, under its ``WARMING`` lock, which an
    in-process validation holds too.
    """
    from uuid import uuid4

    from prefect.task_runners import ThreadPoolTaskRunner

    apart, ticket = validates_apart(spec), uuid4().hex
    block_done = validation_process.gate(ticket)
    # what fit and evaluate will import, done while this thread would only wait for the child
    warm_ups = iter(warmup.steps(spec.modality) if apart else ())
    with ThreadPoolTaskRunner(max_workers=1) as runner:
        # not apart, the flow waits for the validation before the block: no gate to wait at
        checking = runner.submit(validate_data, {"data": data, "spec": spec, "docs_dir": docs_dir,
                                                 "apart": apart, "ticket": ticket if apart else None,
                                                 "docs_later": docs_later})
        if not apart:
            checking.wait()
            if checking.state.is_failed():
                checking.result()  # a failed validation stops the run here, before the block
        try:
            yield checking
            block_done.set()  # a validation handed back may run now (under WARMING, between steps)
            while not checking.wrapped_future.done() and warmup.run_next(warm_ups):
                pass  # the validation still runs in its child: use the wait
        except BaseException:
            block_done.set()
            checking.wait()
            if checking.state.is_failed():
                checking.result()  # raises the validation error; the block's error is its context
            raise
        finally:
            block_done.set()
            checking.wait()  # leaving the runner cancels what still runs
            validation_process.close_gate(ticket)


def _after(spec: PipelineSpec, stage: str, context: dict[str, Any]) -> None:
    for extra in spec.stages:
        if extra.after == stage:
            run_stage.with_options(name=f"stage:{extra.name}")(extra, context)


def _run_name() -> str:
    from prefect.runtime import flow_run

    spec = flow_run.parameters.get("spec")
    name = spec.get("name") if isinstance(spec, dict) else getattr(spec, "name", "pipeline")
    return f"{name}-{datetime.now():%Y-%m-%d-%H%M%S}"


class SpecFlow(Flow):
    """A flow that sends a pydantic model parameter (the spec) and plain values to the server as
    pydantic's JSON of them, the same JSON as Prefect's own ``jsonable_encoder`` gives, without importing
    FastAPI for it (0.09 s CPU of every run's start); any other parameter goes Prefect's way."""

    def serialize_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        from pydantic import BaseModel
        from pydantic_core import to_jsonable_python

        ours = {k for k, v in parameters.items() if isinstance(v, (BaseModel, str, int, float, bool, type(None)))}
        theirs = super().serialize_parameters({k: v for k, v in parameters.items() if k not in ours})
        return {k: to_jsonable_python(v, by_alias=True) if k in ours else theirs[k] for k, v in parameters.items()
                if k in ours or k in theirs}


@partial(SpecFlow, name="trainflow-pipeline", flow_run_name=_run_name, log_prints=True, validate_parameters=True)
def run_pipeline(spec: PipelineSpec, out: str = "runs") -> dict[str, Any]:
    """Run a whole pipeline spec; returns the content of the run's metrics.json."""
    with untagged_tasks(run_tags(spec)):  # the flow run keeps them; its task runs need none
        return _run_stages(spec, out)


def fit_threads(spec: PipelineSpec, others: resources.OthersLoad, fit_spec: PipelineSpec | None = None) -> int:
    """The fit's threads: ``resources.threads``, or where that is 0 (every core), the cores other
    processes have not kept busy since ``others`` started, unless the count is part of the model's
    cache key (torch left at the run's count: results differ in the last bits with it). ``fit_spec``:
    the spec's training view, where the caller has it."""
    threads = resources.resolve(spec.resources.threads)
    if spec.resources.threads or default_threads(fit_spec or spec.training_view()) is not None:
        return threads
    free = resources.free(threads, others)
    if free < threads:
        print(f"fit: {threads - free} of {threads} cores busy with other processes; fitting on {free}")
    return free


def _run_stages(spec: PipelineSpec, out: str) -> dict[str, Any]:
    cache = cache_dir(out)
    others = resources.OthersLoad().start()  # read when fit starts: the cores other processes keep busy
    train_limited = looking_up_limit(TRAIN_TAG)  # answered by the time fit starts
    run = publishing.open_run(out, spec.name)
    fit_spec = spec.training_view()  # cache keys ignore what cannot change the model
    try:
        if validates_apart(spec):
            validation_process.prestart()  # its imports overlap the load
        data = load_data(spec.data, cache, spec.modality, spec.split)
        _after(spec, "load", {"spec": spec, "data": data})
        # the Data Docs may follow the verdict (fit needs only that): waited for before publishing;
        # not with extra stages, which might read them at any point
        with validating(data, spec, run.docs, docs_later=not spec.stages) as checking:
            profiled = profile_data(data, spec)
            split = run_cached(split_data, cache, profiled, fit_spec, cache)
        validation = checking.result()
        _after(spec, "validate", {"spec": spec, "data": data, "validation": validation})
        data = profiled
        _after(spec, "split", {"spec": spec, "split": split})
        # Without a limit on its tag, the tag would only cost a server call that can wait seconds
        # (see monitor.looking_up_limit); with one, the engine takes a slot as documented.
        training = fit_model if train_limited.result() else fit_model.with_options(tags=[])
        threads = fit_threads(spec, others, fit_spec)
        model = run_cached(training, cache, split, fit_spec, cache, threads)
        # the validation child holds the Data Docs until now: beside the fit they would take a core from its pool
        validation_process.release_docs(run.docs)
        _after(spec, "fit", {"spec": spec, "model": model})
        evaluation = evaluate_model(model, split, spec, run.plots, threads)
        _after(spec, "evaluate", {"spec": spec, "evaluation": evaluation, "run_dir": str(run.staging)})
        validation_process.wait_for_docs(run.docs)  # written by the validation child beside evaluate
        summary = publish_run(run, spec, data, validation, split, model, evaluation)
    except BaseException as exc:
        validation_process.wait_for_docs(run.docs, strict=False)  # kept in the .failed folder
        validation_process.discard()  # one started ahead for a run that failed before validating
        publishing.fail_run(run, exc)
        raise
    summary["promotion"] = promote_published(run, summary, spec, split)
    _after(spec, "publish", {"spec": spec, "summary": summary, "run_dir": summary["run_dir"]})
    return summary


@flow(name="trainflow-validate", log_prints=True)
def validate_pipeline(spec: PipelineSpec, out: str = "runs") -> dict[str, Any] | None:
    """Load and validate only; the Data Docs go to ``<out>/<pipeline>/validation-<time>/``."""
    docs = Path(out).resolve() / spec.name / f"validation-{publishing.new_run_id()}"
    data = load_data(spec.data, cache_dir(out), spec.modality, spec.split)
    summary = validate_data(data, spec, str(docs))
    profile_data(data, spec)  # reports the columns that a run would exclude
    return summary
