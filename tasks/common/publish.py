"""Run folders and publishing: ``<out>/<pipeline>/<run-id>/`` appears complete or not at all.

A run writes into a hidden staging folder; publishing renames it into place in one step. A run
that fails is renamed to ``<run-id>.failed`` (with ``error.txt`` and whatever validation report it
produced), so no failed run leaves a folder that looks like a finished one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, atomic_write_text

if TYPE_CHECKING:
    from trainflow.flows.spec import PipelineSpec


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


def open_run(out: str, pipeline: str) -> RunFolder:
    """Create the staging folder of a new run."""
    run = RunFolder(out=str(Path(out).resolve()), pipeline=pipeline, run_id=new_run_id())
    run.staging.mkdir(parents=True)
    return run


def fail_run(run: RunFolder, exc: BaseException) -> Path | None:
    """Keep what a failed run produced under ``<run-id>.failed``, with the error."""
    if not run.staging.exists():
        return None
    text = "".join(traceback.format_exception_only(type(exc), exc))
    (run.staging / "error.txt").write_text(text, encoding="utf-8")
    os.replace(run.staging, run.failed)
    return run.failed


def publish(run: RunFolder, spec: PipelineSpec, data: DataRef, validation: dict[str, Any] | None, split: SplitRef,
            model: ModelRef, evaluation: Evaluation, model_files: list[str], primary_metric: str,
            flow_run_id: str | None = None) -> dict[str, Any]:
    """Write metrics, spec and report into the staging folder, then move it into place."""
    import yaml

    from trainflow.cache_keys import code_fingerprint
    from trainflow.tasks.common import report

    staging = run.staging
    plots_dir = staging / "plots"
    summary = {
        "pipeline": spec.name,
        "task": spec.task,
        "modality": spec.modality,
        "run_id": run.run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "flow_run_id": flow_run_id,
        "primary_metric": primary_metric,
        "metrics": evaluation.metrics,
        "per_class": evaluation.per_class,
        "confusion": evaluation.confusion,
        "data_digest": data.digest,
        "model_digest": model.digest,
        "code_fingerprint": code_fingerprint(spec),  # lets a scheduled run see that the code changed
        "model_files": model_files,
        "rows": data.meta.get("rows"),
        "preprocessing": model.meta.get("steps", []),
        "validation": validation,
        "profile": data.meta.get("profile"),
        "notes": model.meta.get("notes", []),
        "spec": spec.model_dump(mode="json"),
    }
    # Plots may have been written to a scratch folder by a cached evaluation: bring them in.
    plots_dir.mkdir(exist_ok=True)
    local_plots = {}
    for title, path in evaluation.plots.items():
        target = plots_dir / Path(path).name
        if Path(path).resolve() != target.resolve():
            shutil.copy2(path, target)
        local_plots[title] = str(target)
    evaluation = evaluation.model_copy(update={"plots": local_plots})
    # the spec as run, defaults filled in (the same text as trainflow.flows.spec.spec_to_yaml)
    atomic_write_text(staging / "spec.yaml", yaml.safe_dump(summary["spec"], sort_keys=False))
    markdown = report.render(summary, evaluation, staging, embed_images=False)
    atomic_write_text(staging / "report.md", markdown)
    # metrics.json is written last: its presence is what marks a run folder as complete.
    atomic_write_text(staging / "metrics.json", json.dumps(summary, indent=2, default=str))
    os.replace(staging, run.final)
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
