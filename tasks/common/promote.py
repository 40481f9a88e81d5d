"""Model promotion: each pipeline has one champion run, named by ``<out>/<pipeline>/champion.json``.

A finished run replaces the champion only when it passed validation and is better than the
champion on the spec's primary metric; otherwise the champion stays and the run's report says why.
``promotion.rule: paired`` (the default) scores the champion's saved model on this run's test rows
(:mod:`trainflow.tasks.common.paired`) and promotes when the paired bootstrap 95% interval of the
difference lies above ``-tolerance`` (lower-is-better metrics: below ``+tolerance``); when the
champion cannot score those rows the decision falls back, with a warning, to ``point``: the two
stored values, each from its own test rows, within ``tolerance``. The pointer is written to a temporary file and switched
with ``os.replace``, so a reader sees the old champion or the new one, never half a file; a lock
on the pipeline folder serialises two runs of the same pipeline that finish at the same moment.

A damaged pointer (empty, truncated, not a run id) is rebuilt, with a warning, from the run
folders: the champion is the finished run whose ``metrics.json`` most recently recorded that it
was promoted. Promoting again after a failed attempt (a task retry) gives the same result.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from trainflow.alerts import warn
from trainflow.errors import DataError, shown
from trainflow.files import read_text_capped
from trainflow.refs import atomic_write_text
from trainflow.tasks.common.publish import folder_lock

CHAMPION_FILE = "champion.json"


def champion_file(out: str | os.PathLike, pipeline: str) -> Path:
    """Where the champion pointer of ``pipeline`` lives."""
    return Path(out) / pipeline / CHAMPION_FILE


def read_champion(out: str | os.PathLike, pipeline: str) -> dict[str, Any] | None:
    """The champion pointer (with ``run_dir`` resolved), or None when the pipeline has none.

    A damaged pointer is rebuilt from the run folders (see :func:`rebuild_champion`); call this
    with the pipeline folder locked (``folder_lock``) when the pointer may be rewritten.
    """
    path = champion_file(out, pipeline)
    if not path.is_file():
        return None
    try:
        pointer = _record(path)
        run_id = pointer["run_id"]
        if not isinstance(run_id, str) or not run_id or run_id in (".", "..") or "/" in run_id or "\\" in run_id:
            raise ValueError(f"'run_id' is {shown(run_id)}, not the name of a run folder")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, DataError) as exc:
        pointer = rebuild_champion(path.parent, f"{type(exc).__name__}: {exc}")
        if pointer is None:
            return None
    pointer["run_dir"] = str(path.parent / pointer["run_id"])
    return pointer


def _record(path: Path) -> Any:
    """A JSON record of another run (a pointer, a metrics.json): other runs' folders are shared, so it is read
    as a regular file of capped size (DataError otherwise: a FIFO there would block the run for ever)."""
    try:
        return json.loads(read_text_capped(path, "run record"))
    except RecursionError:  # a damaged record, like any other: the callers rebuild or skip it
        raise ValueError(f"'{path}' is nested too deeply") from None


def _pointer(summary: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    return {"pipeline": summary["pipeline"], "run_id": summary["run_id"], "metric": decision["metric"],
            "value": decision["value"], "promoted": decision["decided"], "reason": decision["reason"],
            "flow_run_id": summary.get("flow_run_id"), "data_digest": summary.get("data_digest"),
            "model_digest": summary.get("model_digest"), "previous": decision["champion_run_id"]}


def rebuild_champion(folder: Path, why: str) -> dict[str, Any] | None:
    """Rewrite a damaged ``champion.json`` in ``folder`` from the run folders: the finished run whose
    metrics.json most recently recorded a promotion (what the pointer named before it broke). With
    no such run the pointer is removed and the next eligible run becomes the first champion."""
    path = folder / CHAMPION_FILE
    promoted = []
    for run in folder.iterdir():
        metrics = run / "metrics.json"
        if run.name.startswith(".") or run.name.endswith(".failed") or not metrics.is_file():
            continue
        try:
            summary = _record(metrics)
            decision = summary.get("promotion") or {}
        except (ValueError, UnicodeDecodeError, AttributeError, DataError):
            continue
        if isinstance(decision, dict) and decision.get("promoted") is True and summary.get("run_id") == run.name:
            promoted.append((str(decision.get("decided", "")), run.name, summary, decision))
    if not promoted:
        path.unlink(missing_ok=True)
        warn(f"'{path}' was damaged ({why}) and no run folder records a promotion; it was removed, and the "
             f"next run that passes validation becomes the champion.")
        return None
    _, _, summary, decision = max(promoted, key=lambda p: (p[0], p[1]))
    pointer = {**_pointer(summary, decision), "rebuilt": why}
    atomic_write_text(path, json.dumps(pointer, indent=2))
    warn(f"'{path}' was damaged ({why}); rebuilt from the run folders: the champion is run {summary['run_id']}, "
         f"the last one promoted.")
    return pointer


def _value(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def decide(summary: dict[str, Any], champion: dict[str, Any] | None, policy: Any,
           paired: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Whether the run in ``summary`` (its metrics.json) should replace ``champion``.

    ``policy`` is the spec's ``promotion`` section; ``paired`` (rule ``paired``) compares the two
    models on this run's test rows when called: a :func:`paired.compare` result, or ``{"error":
    reason}``. Returns ``{"promoted": bool, "reason": str, "rule", "metric", "value",
    "champion_run_id", "champion_value", ...}`` (``paired`` with the comparison, ``fallback`` with
    why the point rule decided instead); ``reason`` is one readable sentence.
    """
    metric = summary["primary_metric"]
    value = _value(summary["metrics"], metric)
    rule = getattr(policy, "rule", "point")
    decision: dict[str, Any] = {"promoted": False, "rule": rule, "run_id": summary["run_id"], "metric": metric,
                                "value": value,
                                "champion_run_id": champion["run_id"] if champion else None,
                                "champion_value": None, "tolerance": policy.tolerance}

    def result(promoted: bool, reason: str) -> dict[str, Any]:
        return {**decision, "promoted": promoted, "reason": reason}

    refused = _refusal(summary, policy, metric, value)
    if refused:
        return result(False, refused)
    if champion is not None and champion["run_id"] == summary["run_id"]:
        # a retried promotion: the pointer was switched before the earlier attempt failed
        return {**result(True, champion.get("reason") or "this run is already the champion."),
                "champion_run_id": champion.get("previous")}
    if champion is None:
        return result(True, f"first champion of the pipeline ({metric} = {value:.4f}).")
    if rule == "paired":
        comparison = decision["paired"] = _paired_comparison(paired)
        if "error" not in comparison:
            return result(*_paired_reason(comparison, champion["run_id"], policy.tolerance))
        decision["rule"] = "point (fallback)"
        decision["fallback"] = comparison["error"]
        warn(f"promotion of run {summary['run_id']}: the paired comparison with the champion {champion['run_id']} "
             f"is not possible: {comparison['error']}; deciding on the stored values (rule 'point') instead.")
    return result(*_point_reason(decision, champion, metric, value, policy.tolerance))


def _refusal(summary: dict[str, Any], policy: Any, metric: str, value: float | None) -> str | None:
    """Why the run cannot become champion whatever the champion scored (None: it may)."""
    if not policy.enabled:
        return "promotion is disabled for this pipeline (promotion.enabled: false)."
    validation = summary.get("validation")
    if validation is None and policy.require_validation:
        return "the data was not validated (validation.enabled: false) and promotion.require_validation is true."
    if validation is not None and not validation.get("success", False):
        return "the data failed validation."
    if value is None:
        return f"the run has no value for the primary metric '{metric}'."
    return None


def _paired_comparison(paired: Callable[[], dict[str, Any]] | None) -> dict[str, Any]:
    """The paired comparison, or ``{"error": reason, ...}`` where it cannot decide."""
    comparison = paired() if paired is not None else {"error": "no test rows were given to compare on"}
    if "error" not in comparison and comparison.get("interval") is None:
        comparison = {**comparison, "error": f"no interval of the difference ({comparison.get('method')})"}
    return comparison


def _point_reason(decision: dict[str, Any], champion: dict[str, Any], metric: str, value: float,
                  tolerance: float) -> tuple[bool, str]:
    """Rule ``point``: this run's stored value against the champion's (sets ``decision["champion_value"]``)."""
    from trainflow.tasks.common.metrics import greater_is_better

    champion_metrics = Path(champion["run_dir"]) / "metrics.json"
    if not champion_metrics.is_file():
        return True, f"the champion's run folder '{champion['run_dir']}' is gone; this run replaces it."
    try:
        old = _value(_record(champion_metrics)["metrics"], metric)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError, DataError):
        return True, f"the champion's metrics.json in '{champion['run_dir']}' is damaged; this run replaces it."
    decision["champion_value"] = old
    if old is None:
        return True, f"the champion {champion['run_id']} has no '{metric}' to compare with."
    higher = greater_is_better(metric)
    margin = (value - old) if higher else (old - value)
    direction = "higher" if higher else "lower"
    if margin >= -tolerance:
        return True, (f"{metric} = {value:.4f} is not worse than the champion {champion['run_id']} "
                      f"({old:.4f}; {direction} is better, tolerance {tolerance:g}).")
    return False, (f"{metric} = {value:.4f} is worse than the champion {champion['run_id']} "
                   f"({old:.4f}; {direction} is better, tolerance {tolerance:g}); the champion stays.")


def _how(c: dict[str, Any]) -> str:
    """How the interval was made: a bootstrap's resamples, or the comparison's own method (a test)."""
    method = str(c.get("method") or "")
    if "bootstrap" in method or not method:
        return f"{c['resamples']} paired resamples"
    return method


def _paired_reason(c: dict[str, Any], champion_id: str, tolerance: float) -> tuple[bool, str]:
    from trainflow.tasks.common.metrics import greater_is_better
    from trainflow.tasks.common.paired import verdict

    higher = greater_is_better(c["metric"])
    promoted = verdict(c, higher, tolerance)
    low, high = c["interval"]
    said = (f"on this run's {c['rows']} test rows {c['metric']} = {c['new']:.4f}, the champion {champion_id} "
            f"{c['old']:.4f}: difference {c['difference']:+.4f}, 95% interval [{low:+.4f}, {high:+.4f}] "
            f"({_how(c)}; {'higher' if higher else 'lower'} is better, tolerance {tolerance:g})")
    if promoted:
        return True, f"{said}: better beyond the noise of the test rows."
    return False, f"{said}: not better beyond the noise of the test rows; the champion stays."


def paired_with(summary: dict[str, Any], champion: dict[str, Any], split: Any, policy: Any,
                seed: int) -> Callable[[], dict[str, Any]]:
    """The ``paired`` argument of :func:`decide`: score both saved models on ``split``'s test rows."""
    from trainflow.tasks.common import paired

    def compare() -> dict[str, Any]:
        try:
            truth, new, old = paired.score_both(summary["run_dir"], champion["run_dir"], split, summary["modality"])
            return paired.compare(summary["primary_metric"], summary["task"], truth, new, old, seed=seed,
                                  resamples=getattr(policy, "resamples", 1000), modality=summary["modality"],
                                  run_dir=summary["run_dir"], split=split)
        except paired.CannotCompare as exc:
            return {"error": str(exc)}
        except Exception as exc:  # whatever stops the comparison, the point rule still decides
            return {"error": f"the comparison failed ({type(exc).__name__}: {str(exc)[:300]})"}

    return compare


def promote(summary: dict[str, Any], policy: Any, split: Any = None, seed: int = 0) -> dict[str, Any]:
    """Decide on the published run in ``summary`` and switch the champion pointer if it wins;
    ``split`` (the run's SplitRef) gives the test rows of the paired rule, ``seed`` its resamples.

    The decision is also written into the run's ``metrics.json`` (key ``promotion``) and appended
    to its ``report.md``. Returns the decision (see :func:`decide`).
    """
    run_dir = Path(summary["run_dir"])
    folder = run_dir.parent
    with folder_lock(folder):
        champion = read_champion(folder.parent, summary["pipeline"])
        compare = paired_with(summary, champion, split, policy, seed) if champion and split is not None else None
        decision = decide(summary, champion, policy, compare)
        again = champion is not None and champion["run_id"] == summary["run_id"]
        decision["decided"] = champion["promoted"] if again else datetime.now(timezone.utc).isoformat(timespec="seconds")
        if decision["promoted"] and not again:
            atomic_write_text(folder / CHAMPION_FILE, json.dumps(_pointer(summary, decision), indent=2))
    record(run_dir, decision)
    return decision


PROMOTION_HEADING = "\n## Promotion\n"


def report_section(decision: dict[str, Any]) -> str:
    """The ``## Promotion`` section of a run's report."""
    verdict = "**promoted to champion**" if decision["promoted"] else "**not promoted**"
    text = f"{PROMOTION_HEADING}\nThis run was {verdict} (rule {decision.get('rule', 'point')}): {decision['reason']}\n"
    c = decision.get("paired") or {}
    if "error" in c:
        text += f"\nThe champion could not be scored on this run's test rows: {c['error']}.\n"
    elif c:
        from trainflow.tasks.common.report import table

        interval = c.get("interval") or [float("nan")] * 2
        text += "\n" + table([
            {"model": f"this run {decision.get('run_id', '')}".strip(), c["metric"]: c["new"]},
            {"model": f"champion {decision['champion_run_id']}", c["metric"]: c["old"]},
            {"model": "difference (this run - champion)", c["metric"]: c["difference"]},
            {"model": "95% interval, low", c["metric"]: interval[0]},
            {"model": "95% interval, high", c["metric"]: interval[1]}]) + (
            f"\n\nBoth models scored on the same {c['rows']} test rows of this run; {c.get('method', '')}, "
            f"{c['resamples']} resamples.\n")
    return text


def record(run_dir: Path, decision: dict[str, Any]) -> None:
    """Put the decision in the run's metrics.json and report.md (each rewritten atomically); a
    second call replaces the section the first one wrote instead of adding another."""
    metrics_path = run_dir / "metrics.json"
    data = json.loads(metrics_path.read_text(encoding="utf-8"))
    data["promotion"] = decision
    report = run_dir / "report.md"
    if report.is_file():
        text = report.read_text(encoding="utf-8")
        if PROMOTION_HEADING in text:  # the section is always last: written by an earlier attempt
            text = text[: text.index(PROMOTION_HEADING)]
        atomic_write_text(report, text + report_section(decision))
    atomic_write_text(metrics_path, json.dumps(data, indent=2, default=str))


def withdraw(folder: Path, run_id: str) -> None:
    """After run ``run_id`` failed past its promotion (its folder is now ``<run-id>.failed``): a pointer
    that names it goes back to the last finished run promoted, or is removed, so that ``predict`` and
    the next promotion never stand on a failed run."""
    path = folder / CHAMPION_FILE
    with folder_lock(folder):
        try:
            pointer = _record(path) if path.is_file() else None
        except (ValueError, UnicodeDecodeError, DataError):
            return  # damaged: the next reader rebuilds it from the finished runs
        if isinstance(pointer, dict) and pointer.get("run_id") == run_id:
            rebuild_champion(folder, f"it named run {run_id}, which failed after its promotion")


def resolve_model(model: str | os.PathLike, runs: str | os.PathLike = "runs") -> Path:
    """The run folder to predict with: a run folder itself, or the champion of a pipeline given by
    name (``<runs>/<name>/champion.json``) or by its folder (``<runs>/<name>``)."""
    path = Path(model)
    if (path / "metrics.json").is_file():
        return path
    if path.name.endswith(".failed") and path.is_dir():
        raise DataError(f"'{model}' is a run that failed (its error.txt says why), not a finished run: it holds no "
                        f"model to predict with. Pass a finished run folder (<runs>/<pipeline>/<run-id>) or the "
                        f"pipeline's name for its champion.")
    for folder in (path, Path(runs) / str(model)):
        if (folder / CHAMPION_FILE).is_file():
            with folder_lock(folder):
                pointer = read_champion(folder.parent, folder.name)
            if pointer is None:
                break
            run_dir = Path(pointer["run_dir"])
            if not (run_dir / "metrics.json").is_file():
                raise DataError(f"The champion of '{folder}' points to '{run_dir}', which is not a finished "
                                f"run folder; run the pipeline again to elect a new champion.")
            return run_dir
    if (Path(runs) / str(model)).is_dir() or path.is_dir():
        raise DataError(f"The pipeline '{model}' has no champion yet (no {CHAMPION_FILE}); no run has been "
                        f"promoted. Pass a run folder (<runs>/<pipeline>/<run-id>) instead.")
    raise DataError(f"'{model}' is neither a finished run folder (with metrics.json) nor a pipeline with a "
                    f"champion under '{runs}'; expected a pipeline name or <runs>/<pipeline>/<run-id>.")


def promotion_artifact(summary: dict[str, Any], decision: dict[str, Any]) -> None:
    """The promotion decision as a markdown artifact of the current flow run."""
    from prefect.artifacts import create_markdown_artifact

    from trainflow.tasks.common.publish import artifact_key

    create_markdown_artifact(markdown=f"# {summary['pipeline']}: run {summary['run_id']}\n" + report_section(decision),
                             key=f"{artifact_key(summary['pipeline'])}-promotion",
                             description="Champion decision of the run")
