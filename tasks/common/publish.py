"""Run folders and publishing: ``<out>/<pipeline>/<run-id>/`` appears complete or not at all.

A run writes into a hidden staging folder; publishing renames it into place in one step. A run
that fails is renamed to ``<run-id>.failed`` (with ``error.txt`` and whatever validation report it
produced), so no failed run leaves a folder that looks like a finished one.

A live run holds an advisory lock on its staging folder; a run killed outright (SIGKILL, power
loss) loses it, so the next run into the same ``--out`` finds the folder unlocked and marks it
``.failed`` with a note. Publishing twice (a retried task) finds the run already in place and
does not write it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import traceback
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, atomic_write_text

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec


class RunFolder(BaseModel):
    """Where one run writes: the staging folder while running, the final one once published."""

    out: str
    pipeline: str
    run_id: str

    @property
    def root(self) -> Path:
        return Path(self.out) / self.pipeline

    @property
    def staging(self) -> Path:
        return self.root / f".incomplete-{self.run_id}"

    @property
    def final(self) -> Path:
        return self.root / self.run_id

    @property
    def failed(self) -> Path:
        return self.root / f"{self.run_id}.failed"

    @property
    def docs(self) -> str:
        return str(self.staging / "validation")

    @property
    def plots(self) -> str:
        return str(self.staging / "plots")


def new_run_id() -> str:
    """Sortable, unique run id: UTC time plus a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


try:
    import fcntl
except ImportError:  # Windows: no advisory locks (switches stay atomic; stale staging folders stay)
    fcntl = None  # type: ignore[assignment]

#: staging folder -> descriptor holding its lock, for the life of the run in this process
_staging_locks: dict[str, int] = {}


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` itself (no lock file is left beside the runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _try_lock(folder: Path) -> int | None:
    """A descriptor holding ``folder``'s lock, or None when a live run holds it."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def open_run(out: str, pipeline: str) -> RunFolder:
    """Create the staging folder of a new run (locked while the run lives), after marking the
    staging folders of runs that were killed ``.failed``."""
    run = RunFolder(out=str(Path(out).resolve()), pipeline=pipeline, run_id=new_run_id())
    with folder_lock(run.root):  # so that no sweep sees the new folder before it is locked
        sweep_stale(run.root)
        run.staging.mkdir()
        if fcntl is not None:
            _staging_locks[str(run.staging)] = _try_lock(run.staging)
    return run


def sweep_stale(root: Path) -> list[Path]:
    """Rename the staging folders no live run holds to ``<run-id>.failed``, with a note."""
    swept = []
    for staging in sorted(root.glob(".incomplete-*")) if fcntl is not None else []:
        try:
            fd = _try_lock(staging)
        except OSError:  # gone meanwhile, or not a folder
            continue
        if fd is None:
            continue
        try:
            run_id = staging.name.removeprefix(".incomplete-")
            (staging / "error.txt").write_text(
                f"This run stopped without finishing: its process ended (killed, crashed or the machine "
                f"stopped) while it ran. Found by a later run at {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC.\n",
                encoding="utf-8")
            os.replace(staging, root / f"{run_id}.failed")
            swept.append(root / f"{run_id}.failed")
        finally:
            os.close(fd)
    if swept:
        from trainflow.alerts import warn

        warn(f"marked {len(swept)} run(s) that never finished as failed: {', '.join(p.name for p in swept)}")
    return swept


def release(run: RunFolder) -> None:
    """Give up the staging lock of ``run`` (it is published or failed)."""
    fd = _staging_locks.pop(str(run.staging), None)
    if fd is not None:
        os.close(fd)


def fail_run(run: RunFolder, exc: BaseException) -> Path | None:
    """Keep what a failed run produced under ``<run-id>.failed``, with the error; a validation
    error's message then points to the report in that folder."""
    try:
        if not run.staging.exists():
            return None
        text = "".join(traceback.format_exception_only(type(exc), exc))
        with contextlib.suppress(OSError):  # a full disk may refuse error.txt: the rename still marks it
            (run.staging / "error.txt").write_text(text, encoding="utf-8")
        os.replace(run.staging, run.failed)
    finally:
        release(run)
    from trainflow.errors import ValidationFailed

    if isinstance(exc, ValidationFailed):
        exc.moved(str(run.staging), str(run.failed))
    return run.failed


def fail_published(run: RunFolder, exc: BaseException) -> Path | None:
    """Mark a run that failed after publishing (its promotion) as failed: ``<run-id>`` is renamed to
    ``<run-id>.failed`` with ``error.txt``, as a run failing earlier is, so it never looks finished;
    its metrics stay, as ``metrics.unpublished.json`` (a failed run holds no ``metrics.json``)."""
    if not run.final.is_dir():
        return None
    text = "".join(traceback.format_exception_only(type(exc), exc))
    with contextlib.suppress(OSError):
        (run.final / "error.txt").write_text(f"The run was published, then its promotion failed:\n{text}",
                                             encoding="utf-8")
    with contextlib.suppress(OSError):
        os.replace(run.final / "metrics.json", run.final / "metrics.unpublished.json")
    os.replace(run.final, run.failed)
    return run.failed


def check_champion_file(root: Path) -> None:
    """OutputError unless the pipeline folder's ``champion.json`` is a regular file or absent: a folder or a
    special file there would make the promotion fail after the run is published."""
    from trainflow.errors import OutputError
    from trainflow.files import path_problem

    path = root / "champion.json"
    if not (path.exists() or path.is_symlink()):
        return
    problem = path_problem(path)
    if problem:
        raise OutputError(f"The champion pointer '{path}' {problem}; trainflow writes the pipeline's champion there "
                          f"(a JSON file). Move it away or delete it.")


def check_cache_folder(cache: Path) -> None:
    """OutputError naming the path when ``<out>/.cache`` is not a folder, or it or one of its folders holds
    a symbolic-link loop, a broken link or a special file (the cache holds only trainflow's own files)."""
    from trainflow.errors import OutputError
    from trainflow.files import path_problem

    fix = "the cache is trainflow's and safe to delete: delete it, or move it away"
    if not (cache.exists() or cache.is_symlink()):
        return
    problem = path_problem(cache, folder_ok=True)
    if problem or not cache.is_dir():
        raise OutputError(f"The cache folder '{cache}' {problem or 'is a file; expected a folder'}; {fix}.")
    for top in os.scandir(cache):
        found = path_problem(top.path, folder_ok=True)
        if found:
            raise OutputError(f"The cache entry '{top.path}' {found}; {fix}.")
        if not top.is_dir():
            continue
        for entry in os.scandir(top.path):
            if entry.is_symlink() or not (entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False)):
                found = path_problem(entry.path, folder_ok=True)
                if found:
                    raise OutputError(f"The cache entry '{entry.path}' {found}; {fix}.")


def is_published(run: RunFolder) -> bool:
    """True when an earlier attempt of publishing already moved the run into place."""
    return not run.staging.exists() and (run.final / "metrics.json").is_file()


def _final_paths(value: Any, run: RunFolder) -> Any:
    """``value`` with paths into the staging folder changed to where the files end up."""
    if isinstance(value, dict):
        return {k: _final_paths(v, run) for k, v in value.items()}
    if isinstance(value, list):
        return [_final_paths(v, run) for v in value]
    if isinstance(value, str) and value.startswith(str(run.staging)):
        return str(run.final) + value[len(str(run.staging)):]
    return value


def publish(run: RunFolder, spec: PipelineSpec, data: DataRef, validation: dict[str, Any] | None, split: SplitRef,
            model: ModelRef, evaluation: Evaluation, model_files: list[str], primary_metric: str,
            flow_run_id: str | None = None) -> dict[str, Any]:
    """Write metrics, spec and report into the staging folder, then move it into place.

    Idempotent: when an earlier attempt already moved the folder into place, its metrics.json is
    used as it is (nothing is written twice, no second folder appears)."""
    import yaml

    from trainflow.tasks.common import report

    staging = run.staging
    plots_dir = staging / "plots"
    local_plots = {title: str(plots_dir / Path(path).name) for title, path in evaluation.plots.items()}
    if is_published(run):
        summary = json.loads((run.final / "metrics.json").read_text(encoding="utf-8"))
        return _finish(run, summary, evaluation, local_plots)
    summary = _summary(run, spec, data, validation, model, evaluation, model_files, primary_metric, flow_run_id)
    # Plots may have been written to a scratch folder by a cached evaluation: bring them in.
    plots_dir.mkdir(exist_ok=True)
    for title, path in evaluation.plots.items():
        target = Path(local_plots[title])
        if Path(path).resolve() != target.resolve():
            shutil.copy2(path, target)
    evaluation = evaluation.model_copy(update={"plots": local_plots})
    # the spec as run, defaults filled in (the same text as trainflow.spec.spec_to_yaml)
    atomic_write_text(staging / "spec.yaml", yaml.safe_dump(summary["spec"], sort_keys=False))
    markdown = report.render(summary, evaluation, staging, embed_images=False)
    atomic_write_text(staging / "report.md", markdown)
    # metrics.json is written last: its presence is what marks a run folder as complete.
    atomic_write_text(staging / "metrics.json", json.dumps(summary, indent=2, default=str))
    os.replace(staging, run.final)
    release(run)
    return _finish(run, summary, evaluation, local_plots)


def _summary(run: RunFolder, spec: PipelineSpec, data: DataRef, validation: dict[str, Any] | None, model: ModelRef,
             evaluation: Evaluation, model_files: list[str], primary_metric: str,
             flow_run_id: str | None) -> dict[str, Any]:
    """What the run's metrics.json holds."""
    from trainflow.cache_keys import code_fingerprint
    from trainflow.tasks.common import selection

    return {
        "pipeline": spec.name,
        "task": spec.task,
        "modality": spec.modality,
        "run_id": run.run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "flow_run_id": flow_run_id,
        "primary_metric": primary_metric,
        # each interval beside its metric, as <metric>_ci: [low, high]
        "metrics": {**evaluation.metrics, **{f"{k}_ci": v for k, v in evaluation.intervals.items()}},
        "per_class": evaluation.per_class,
        "confusion": evaluation.confusion,
        "data_digest": data.digest,
        "model_digest": model.digest,
        "code_fingerprint": code_fingerprint(spec),  # lets a scheduled run see that the code changed
        "model_files": model_files,
        "rows": data.meta.get("rows"),
        # rows the loader left out (audio's data.unreadable: skip), where it reports them
        **({"rows_skipped": data.meta["rows_skipped"]} if "rows_skipped" in data.meta else {}),
        "preprocessing": model.meta.get("steps", []),
        # what chose this model, never the test split (trainflow.tasks.common.selection)
        "selection": selection.selection_of(model, spec) or selection.none_record(spec),
        # CPU threads the fit ran on (resources.threads; a cached model: those of the run that fitted it)
        "threads": model.meta.get("threads"),
        # the rows that chose the epoch, thresholds or temperature (networks): the split's part or a carve-out
        **({"validation_part": model.meta["validation_part"]} if model.meta.get("validation_part") else {}),
        "validation": _final_paths(validation, run),
        "profile": data.meta.get("profile"),
        "notes": model.meta.get("notes", []),
        "spec": spec.model_dump(mode="json"),
    }


def _finish(run: RunFolder, summary: dict[str, Any], evaluation: Evaluation,
            local_plots: dict[str, str]) -> dict[str, Any]:
    """The summary of a published run, with its folder and the report for the Prefect UI."""
    from trainflow.tasks.common import report

    summary["run_dir"] = str(run.final)
    summary["report_markdown"] = report.render(summary, evaluation.model_copy(
        update={"plots": {t: str(run.final / "plots" / Path(p).name) for t, p in local_plots.items()}}),
        run.final, embed_images=True)
    return summary


def publish_artifacts(summary: dict[str, Any], appendix: str = "") -> None:
    """The report (plus ``appendix``) and a metrics table as Prefect artifacts of the current flow run."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = artifact_key(summary["pipeline"])
    create_markdown_artifact(markdown=summary["report_markdown"] + appendix, key=f"{key}-report",
                             description=f"Report of run {summary['run_id']}")
    rows = [{"metric": k, "value": round(v, 6) if isinstance(v, float) else v} for k, v in summary["metrics"].items()]
    create_table_artifact(table=rows, key=f"{key}-metrics", description=f"Test metrics of run {summary['run_id']}")


def profile_artifact(pipeline: str, rows: list[dict[str, Any]]) -> None:
    """A data profile (one row per column or item kind) as a Prefect table artifact of the current run."""
    from prefect.artifacts import create_table_artifact

    create_table_artifact(table=rows, key=f"{artifact_key(pipeline)}-data-profile",
                          description="Columns of the data: type, missing share, distinct values, role guess")


def artifact_key(name: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "pipeline"
