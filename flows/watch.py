"""The monitor flow: score a new batch with a pipeline's champion and watch its data for drift.

``monitor_batch(pipeline, batch)`` finds the batch (a file, the newest match of a glob or the newest
entry of a drop folder), predicts with the champion, compares the batch with the champion's reference
profile (:mod:`trainflow.tasks.common.drift`) and publishes, as Prefect artifacts of its flow run, the
drift table, the plot, and the pipeline's drift history (one table artifact keyed per pipeline that
grows a row per batch). When drift is found it emits the Prefect event :data:`DRIFT_EVENT` (resource:
the pipeline; payload: the drifted features and their statistics), on which an automation can run the
training deployment (``deploy/automations.yaml``; docs/monitoring.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from prefect import flow

DRIFT_EVENT = "trainflow.drift.detected"
#: statistics of at most this many drifted tests travel in the event's payload
PAYLOAD_TESTS = 20


def pipeline_name(pipeline: str) -> str:
    """The pipeline a monitor watches: a name, or a spec file (its ``name``)."""
    path = Path(pipeline)
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        from trainflow.spec import read_raw_spec

        name = read_raw_spec(path).get("name")
        if isinstance(name, str) and name:
            return name
    return pipeline


def resource(name: str) -> dict[str, str]:
    """The event resource of a pipeline."""
    return {"prefect.resource.id": f"trainflow.pipeline.{name}", "prefect.resource.name": name,
            "trainflow.pipeline": name}


def _run_name() -> str:
    from datetime import datetime

    from prefect.runtime import flow_run

    return f"monitor-{pipeline_name(str(flow_run.parameters.get('pipeline', 'pipeline')))}-{datetime.now():%Y-%m-%d-%H%M%S}"


@flow(name="trainflow-monitor", flow_run_name=_run_name, log_prints=True)
def monitor_batch(pipeline: str, batch: str, runs: str = "runs", id_column: str | None = None,
                  keep: list[str] | None = None, keep_batches: int | None = None) -> dict[str, Any]:
    """Score ``batch`` with the champion of ``pipeline`` (a name or its spec file) under ``runs``; returns
    where the predictions and the drift report went, the summary line, the drifted features and the id of
    the drift event (None when nothing drifted). ``keep_batches``: once the batch is scored, only the
    newest that many batch folders stay (None: all)."""
    from trainflow.errors import SpecError
    from trainflow.tasks.common import batches
    from trainflow.tasks.common.predict import predict_with_drift
    from trainflow.tasks.common.promote import resolve_model

    if keep_batches is not None and (isinstance(keep_batches, bool) or not isinstance(keep_batches, int)
                                     or keep_batches < 1):
        raise SpecError(f"keep_batches must be a whole number of at least 1 (or left out to keep every batch "
                        f"folder); got {keep_batches!r}.", what="monitor setting")
    name = pipeline_name(pipeline)
    run_dir = resolve_model(name, runs)
    source = batches.resolve_batch(batch)
    folder = batches.batch_folder(runs, name, source)
    try:
        out, check = predict_with_drift(run_dir, source, folder / "predictions.csv", id_column, list(keep or []))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # a batch that could not be scored leaves no folder
        raise
    scored = check.scored
    print(f"monitor: {scored} predictions for {source} with {run_dir.name} -> {out}")
    print(check.line)
    history = batches.append_history(runs, name, batches.history_row(source, run_dir, check.rows, scored, check.line))
    if keep_batches is not None:
        removed = batches.prune_batch_folders(runs, name, keep_batches)
        if removed:
            print(f"monitor: removed {len(removed)} older batch folder(s), keeping the newest {keep_batches} "
                  f"(their lines stay in the history)")
    _artifacts(name, check, history)
    event_id = _emit(name, source, run_dir, check) if check.drifted else None
    return {"pipeline": name, "batch": str(source), "model": str(run_dir), "predictions": str(out),
            "drift_table": str(check.table) if check.table else None, "summary": check.line,
            "drifted": check.drifted, "event_id": event_id}


def _artifacts(name: str, check: Any, history: list[dict[str, Any]]) -> None:
    """The batch's drift table and report (with the plot), and the pipeline's drift history."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from trainflow.tasks.common.plots import data_uri
    from trainflow.tasks.common.publish import artifact_key

    key = artifact_key(name)
    if check.rows:
        rows = [{k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()} for r in check.rows]
        create_table_artifact(table=rows, key=f"{key}-drift", description=f"Drift of the latest batch: {check.line}")
    image = f"\n\n![drift]({data_uri(check.plot)})" if check.plot else ""
    create_markdown_artifact(markdown=f"# {name}: drift of the latest batch\n\n{check.line}{image}",
                             key=f"{key}-drift-report", description=check.line)
    create_table_artifact(table=history, key=f"{key}-drift-history",
                          description=f"Drift of every batch scored by the {name} monitor, one row per batch")


def _emit(name: str, source: Path, run_dir: Path, check: Any) -> str | None:
    """Emit :data:`DRIFT_EVENT` for the pipeline; its id (None when events cannot be sent)."""
    from prefect.events import emit_event

    worst = sorted((r for r in check.rows if r["drift"]), key=lambda r: r.get("p_adjusted", 0.0))[:PAYLOAD_TESTS]
    statistics = [{k: r.get(k) for k in ("feature", "test", "statistic", "p_adjusted", "psi", "status")}
                  for r in worst]
    event = emit_event(event=DRIFT_EVENT, resource=resource(name),
                       payload={"pipeline": name, "batch": str(source), "model": str(run_dir),
                                "drifted": check.drifted, "statistics": statistics, "summary": check.line})
    if event is None:
        print("monitor: drift found, but Prefect events are not available here: no event was sent")
        return None
    print(f"monitor: emitted {DRIFT_EVENT} ({event.id}) for {', '.join(check.drifted)}")
    return str(event.id)
