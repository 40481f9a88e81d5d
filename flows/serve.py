"""Scheduled runs: the deployment flow, and ``trainflow serve`` for every deployment in deploy/.

A deployment names a spec file, not a spec: ``run_spec_file(spec_path, overrides, out)`` reads
the file when the run starts, so editing a spec changes the next scheduled run without
redeploying. Before training, a scheduled run compares the data's fingerprint, the spec and the
code fingerprint (:mod:`trainflow.cache_keys`) with the pipeline's last finished run; when none
changed it says so and reuses that run's results
(``skip_if_unchanged``, on by default; set it to false in a deployment's parameters to retrain
every time).

``deploy/prefect.yaml`` serves two routes: ``prefect deploy --all`` (a work pool and workers) and
``trainflow serve`` (this module: every deployment with its schedule, in one process, no pool).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import flow

if TYPE_CHECKING:
    from trainflow.spec import PipelineSpec

#: the project root of a source checkout (deploy/prefect.yaml names specs relative to it)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SPECS_DIR = Path(__file__).resolve().parent / "specs"
DEFAULT_DEPLOY_FILE = PROJECT_ROOT / "deploy" / "prefect.yaml"
#: entry points that ``trainflow serve`` accepts (the same flow, spelled two ways)
ENTRYPOINTS = ("trainflow.flows.serve:run_spec_file", "flows/serve.py:run_spec_file")
#: the monitor flow's (:mod:`trainflow.flows.watch`), whose deployments name a pipeline and a batch
MONITOR_ENTRYPOINTS = ("trainflow.flows.watch:monitor_batch", "flows/watch.py:monitor_batch")


def resolve_spec_path(spec_path: str | os.PathLike) -> Path:
    """Find a spec file: as given (absolute or relative to the working directory), relative to the
    project root, or by file name among the packaged demo specs."""
    from trainflow.errors import SpecError

    p = Path(os.path.expanduser(str(spec_path)))
    candidates = [p] if p.is_absolute() else [Path.cwd() / p, PROJECT_ROOT / p, SPECS_DIR / p.name]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise SpecError(f"the spec file '{spec_path}' does not exist (looked in {', '.join(map(str, candidates))}).")


def last_finished_run(out: str | os.PathLike, pipeline: str) -> dict[str, Any] | None:
    """The metrics.json of the pipeline's newest finished run folder, or None."""
    root = Path(out) / pipeline
    if not root.is_dir():
        return None
    # a `.failed` folder may hold a metrics.json (a run killed between writing it and its publishing
    # rename, swept later): it never finished, so it never counts as the last run
    runs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and not p.name.endswith(".failed") and (p / "metrics.json").is_file())
    if not runs:
        return None
    try:
        summary = json.loads((runs[-1] / "metrics.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None  # a damaged record proves nothing is unchanged: the run trains
    if not isinstance(summary, dict):
        return None
    summary["run_dir"] = str(runs[-1])
    return summary


def unchanged_since(spec: PipelineSpec, out: str | os.PathLike) -> dict[str, Any] | None:
    """The last finished run when its data fingerprint, spec and code fingerprint equal the current
    ones, else None."""
    from trainflow.cache_keys import code_fingerprint
    from trainflow.tasks.common.load import fingerprint

    last = last_finished_run(out, spec.name)
    if last is None:
        return None
    try:
        _, config = spec.data.resolve("data")
        digest = fingerprint(config)
    except Exception:  # unreadable data: let the run itself fail with its own clear message
        return None
    if last.get("data_digest") != digest or not _same_spec(last.get("spec"), spec):
        return None
    if last.get("code_fingerprint") != code_fingerprint(spec):
        return None
    return last


def _same_spec(recorded: Any, spec: PipelineSpec) -> bool:
    """Whether a finished run's recorded spec is ``spec`` (modality sections at their defaults aside)."""
    from trainflow.spec import without_default_sections

    return isinstance(recorded, dict) and without_default_sections(recorded) == spec.key_dump()


def _run_name() -> str:
    from datetime import datetime

    from prefect.runtime import flow_run

    try:
        from trainflow.spec import read_raw_spec

        name = read_raw_spec(resolve_spec_path(flow_run.parameters.get("spec_path", ""))).get("name")
    except Exception:
        name = None
    return f"{name or 'pipeline'}-{datetime.now():%Y-%m-%d-%H%M%S}"


@flow(name="trainflow-scheduled", flow_run_name=_run_name, log_prints=True)
def run_spec_file(spec_path: str, overrides: list[str] | None = None, out: str = "runs",
                  skip_if_unchanged: bool = True, trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the pipeline in ``spec_path`` (with ``--set``-style ``overrides``) into ``out``.

    With ``skip_if_unchanged``, a run whose data and spec equal those of the pipeline's last
    finished run does not train: it returns that run's metrics.json, marked ``"reused": true``.
    ``trigger``: the event that started the run, filled in by an automation (a drift event, see
    ``deploy/prefect.yaml``); such a run always trains, and its report names the event.
    """
    from trainflow.flows.monitor import add_flow_run_tags, data_tag, run_tags
    from trainflow.flows.pipeline import run_pipeline
    from trainflow.flows.runtime import quiet_libraries
    from trainflow.spec import load_spec

    quiet_libraries()
    spec = load_spec(resolve_spec_path(spec_path), list(overrides or []))
    add_flow_run_tags(run_tags(spec))
    if trigger:
        print(f"started by event {trigger.get('event')} ({trigger.get('id')}): {trigger.get('summary', '')}")
        add_flow_run_tags(["triggered"])
    if skip_if_unchanged and not trigger:
        last = unchanged_since(spec, out)
        if last is not None:
            print(f"unchanged: data {last['data_digest'][:12]}, spec and code are those of run {last['run_id']}; "
                  f"reusing its results instead of retraining (skip_if_unchanged)")
            add_flow_run_tags(["unchanged", data_tag(last["data_digest"])])
            _reused_artifact(last)
            return {**last, "reused": True}
    # Run the pipeline's body in this flow run, so its tasks and report belong to the scheduled run.
    summary = run_pipeline.fn(spec, out=out)
    if trigger:
        summary["trigger"] = trigger
        note_trigger(summary["run_dir"], summary["pipeline"], trigger)
    return summary


def _reused_artifact(last: dict[str, Any]) -> None:
    from prefect.artifacts import create_markdown_artifact

    from trainflow.tasks.common.publish import artifact_key
    from trainflow.tasks.common.report import table

    primary = last["primary_metric"]
    text = (f"# {last['pipeline']}: unchanged, not retrained\n\nThe data (digest `{last['data_digest'][:12]}`) "
            f"and the spec are those of run `{last['run_id']}`, so this run reused its results "
            f"({primary} = {last['metrics'].get(primary, float('nan')):.4f}).\n\n"
            + table([{"metric": k, "value": v} for k, v in last["metrics"].items()]))
    create_markdown_artifact(markdown=text, key=f"{artifact_key(last['pipeline'])}-unchanged",
                             description=f"Reused results of run {last['run_id']}")


def note_trigger(run_dir: str | Path, pipeline: str, trigger: dict[str, Any]) -> str:
    """Add "Started by" (the event that started the run: its name, id, time and what it said) to the run
    folder's ``report.md``, and publish it as an artifact of the current flow run; returns the section."""
    from prefect.artifacts import create_markdown_artifact

    from trainflow.refs import atomic_write_text
    from trainflow.tasks.common.publish import artifact_key
    from trainflow.tasks.common.report import table

    rows = [{"field": k, "value": v if isinstance(v, (str, int, float)) else ", ".join(map(str, v or []))
             if isinstance(v, list) else str(v)} for k, v in trigger.items()]
    section = (f"\n\n## Started by\n\nThis run was started by the event `{trigger.get('event', '?')}` "
               f"(id `{trigger.get('id', '?')}`), not by its schedule.\n\n{table(rows)}\n")
    report = Path(run_dir) / "report.md"
    atomic_write_text(report, report.read_text(encoding="utf-8") + section)
    create_markdown_artifact(markdown=f"# {pipeline}: started by an event{section}", key=f"{artifact_key(pipeline)}-trigger",
                             description=f"The event that started this run: {trigger.get('event', '?')}")
    return section


# ---------------------------------------------------------------- deployments from prefect.yaml


WHAT = "deployment file"


def read_deployments(path: str | os.PathLike = DEFAULT_DEPLOY_FILE) -> list[dict[str, Any]]:
    """The ``deployments:`` entries of a prefect.yaml, checked to use :func:`run_spec_file`."""
    import yaml

    from trainflow.errors import DataError, SpecError, shown
    from trainflow.files import path_problem, read_text_capped
    from trainflow.spec import SPEC_MAX_BYTES
    from trainflow.yamlfile import load_yaml_with_aliases

    path = Path(path)
    problem = path_problem(path)
    if problem:  # missing, a folder, a FIFO or a device: named, never opened
        raise SpecError(f"the deployment file '{path}' {problem}.", what=WHAT)
    try:  # Prefect's own format: aliases (work_pool: *pool) are part of it, unlike in a spec
        doc = load_yaml_with_aliases(read_text_capped(path, "deployment file", limit=SPEC_MAX_BYTES)) or {}
    except (yaml.YAMLError, UnicodeDecodeError, DataError) as exc:
        raise SpecError(f"'{path}' is not valid UTF-8 YAML of a readable size: {exc}", what=WHAT) from None
    if not isinstance(doc, dict):
        raise SpecError(f"'{path}' must be a mapping with a 'deployments' list.", what=WHAT)
    entries = doc.get("deployments") or []
    if not isinstance(entries, list):
        raise SpecError(f"'deployments' must be a list of deployments (- name: ..., entrypoint: ...). Got "
                        f"{type(entries).__name__} {shown(entries, 60)}.", str(path), what=WHAT)
    problems = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"deployments[{i}] must be a mapping (name, entrypoint, parameters, schedules). Got "
                            f"{type(entry).__name__} {shown(entry, 60)}.")
            continue
        where = f"deployments[{i}] ({shown(entry.get('name', '?'), 60)})"
        params = entry.get("parameters") or {}
        if not isinstance(params, dict):
            problems.append(f"{where}: parameters must be a mapping (spec_path: ...). Got {type(params).__name__}.")
            continue
        problems += _schedule_problems(entry, where)
        if entry.get("entrypoint") in MONITOR_ENTRYPOINTS:
            problems += [f"{where}: parameters.{p} is required ({why})."
                         for p, why in (("pipeline", "the pipeline whose champion scores the batch"),
                                        ("batch", "a file, glob or folder of new data")) if not params.get(p)]
            continue
        if entry.get("entrypoint") not in ENTRYPOINTS:
            problems.append(f"{where}: entrypoint must be {ENTRYPOINTS[0]!r} (or {MONITOR_ENTRYPOINTS[0]!r} for a "
                            f"monitor). Got {shown(entry.get('entrypoint'))}.")
        if not params.get("spec_path"):
            problems.append(f"{where}: parameters.spec_path is required (the pipeline spec to run).")
    if problems:
        raise SpecError(problems, str(path), what=WHAT)
    return entries


def _schedule_problems(entry: dict[str, Any], where: str) -> list[str]:
    """What is wrong with an entry's ``schedules`` (each a mapping with cron, interval or rrule that
    Prefect accepts), as messages naming the entry."""
    from trainflow.errors import shown

    schedules = entry.get("schedules") or []
    if not isinstance(schedules, list) or not all(isinstance(s, dict) for s in schedules):
        return [f"{where}: schedules must be a list of mappings (- cron: '0 3 * * *', or interval: 3600, or rrule: ...)."]
    problems = []
    for j, s in enumerate(schedules):
        if not {"cron", "interval", "rrule"} & set(s):
            problems.append(f"{where}: schedules[{j}] needs one of cron, interval or rrule. Got {shown(list(s))}.")
            continue
        if "interval" in s and (isinstance(s["interval"], bool) or not isinstance(s["interval"], int | float)
                                or s["interval"] <= 0):
            problems.append(f"{where}: schedules[{j}].interval must be a positive number of seconds. Got "
                            f"{shown(s['interval'])}.")
            continue
        if s.get("timezone") is not None and not _known_zone(s["timezone"]):
            problems.append(f"{where}: schedules[{j}].timezone {shown(s['timezone'])} is not an IANA time zone "
                            f"(e.g. Europe/Berlin, UTC).")
            continue
        try:
            _schedules({"schedules": [{**s, "active": True}]}, None)
        except Exception as exc:  # Prefect's own validation: a bad cron, a negative interval, a bad time zone
            why = " ".join(str(exc).split())[:200]
            problems.append(f"{where}: schedules[{j}] is not a schedule Prefect accepts: {why}")
    return problems


def _known_zone(name: Any) -> bool:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(str(name))
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


def _schedules(entry: dict[str, Any], interval: float | None) -> list[Any]:
    from prefect.schedules import Cron, Interval, RRule

    if interval:
        return [Interval(interval)]
    made = []
    for s in entry.get("schedules") or []:
        if s.get("active") is False:
            continue
        tz = s.get("timezone")
        if "cron" in s:
            made.append(Cron(s["cron"], timezone=tz))
        elif "interval" in s:
            made.append(Interval(s["interval"], timezone=tz))
        elif "rrule" in s:
            made.append(RRule(s["rrule"], timezone=tz))
    return made


def runner_deployments(path: str | os.PathLike = DEFAULT_DEPLOY_FILE, only: list[str] | None = None,
                       interval: float | None = None, out: str | None = None) -> list[Any]:
    """``RunnerDeployment``s for the entries of a prefect.yaml (spec paths and ``out`` made absolute,
    so runs do not depend on the server process's working directory)."""
    from prefect.types.entrypoint import EntrypointType

    from trainflow.errors import SpecError, expected

    entries = read_deployments(path)
    names = [e["name"] for e in entries]
    for name in only or []:
        if name not in names:
            raise SpecError(expected("--only", names, name))
    deployments = []
    for entry in entries:
        if only and entry["name"] not in only:
            continue
        if ((entry.get("work_pool") or {}).get("job_variables") or {}).get("image") and not only:
            continue  # meant to run in a container (Kubernetes, Docker pool): left to that pool's workers
        params = dict(entry.get("parameters") or {})
        if entry["entrypoint"] in MONITOR_ENTRYPOINTS:
            from trainflow.flows.watch import monitor_batch as served_flow

            params["runs"] = str(Path(out or params.get("runs", "runs")).resolve())
            params["batch"] = str(Path(params["batch"]).expanduser().absolute())
        else:
            served_flow = run_spec_file
            params["spec_path"] = str(resolve_spec_path(params["spec_path"]))
            params["out"] = str(Path(out or params.get("out", "runs")).resolve())
        deployments.append(served_flow.to_deployment(
            name=entry["name"], schedules=_schedules(entry, interval), parameters=params,
            tags=entry.get("tags"), description=entry.get("description"), triggers=triggers(entry),
            concurrency_limit=entry.get("concurrency_limit"), entrypoint_type=EntrypointType.MODULE_PATH,
        ))
    return deployments


def triggers(entry: dict[str, Any]) -> list[Any]:
    """The event triggers of a deployment entry (``triggers:`` as ``prefect deploy`` reads them), which
    serving the deployment creates as automations that run it (SpecError naming a malformed one)."""
    from pydantic import TypeAdapter, ValidationError

    from prefect.events import DeploymentTriggerTypes

    from trainflow.errors import SpecError

    try:
        return [TypeAdapter(DeploymentTriggerTypes).validate_python(t) for t in entry.get("triggers") or []]
    except ValidationError as exc:
        raise SpecError(f"deployment {entry.get('name', '?')}: a trigger is malformed: {exc.errors()[0]['msg']} "
                        f"at {'.'.join(map(str, exc.errors()[0]['loc']))}") from None


def serve_all(path: str | os.PathLike = DEFAULT_DEPLOY_FILE, only: list[str] | None = None,
              interval: float | None = None, out: str | None = None, limit: int | None = None) -> None:
    """Serve the deployments of ``path`` with their schedules until interrupted."""
    from prefect import serve

    from trainflow.errors import TrainflowError
    from trainflow.flows.runtime import quiet_libraries, uses_remote_server

    quiet_libraries()
    read_deployments(path)  # a wrong file is named first, with or without a server
    if not uses_remote_server():
        raise TrainflowError("trainflow serve needs a Prefect server to schedule runs: start one with "
                             "'prefect server start' and set PREFECT_API_URL=http://127.0.0.1:4200/api "
                             "(or 'prefect config set PREFECT_API_URL=...').")
    deployments = runner_deployments(path, only, interval, out)
    print(f"serving {len(deployments)} deployment(s) from {path}: {', '.join(d.name for d in deployments)}")
    serve(*deployments, limit=limit)
