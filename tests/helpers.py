"""Helpers shared by tests: run the CLI in-process and inspect run folders."""

from __future__ import annotations

import contextlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from trainflow.flows.cli import main


def run_cli(*argv: str, capsys=None) -> tuple[int, str]:
    """Run ``trainflow`` with ``argv``; returns (exit code, stderr text if capsys given)."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err if capsys is not None else ""
    return code, err


def complete_runs(out: Path, pipeline: str) -> list[Path]:
    """Run folders that look finished (hold metrics.json and are not marked failed or staging)."""
    root = Path(out) / pipeline
    if not root.exists():
        return []
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
            and not p.name.endswith(".failed") and (p / "metrics.json").exists()]


def leftovers(out: Path, pipeline: str) -> list[Path]:
    """Anything in the pipeline folder that could pass for a finished run or a half-written one."""
    root = Path(out) / pipeline
    if not root.exists():
        return []
    return [p for p in root.iterdir() if not p.name.endswith(".failed") and not p.name.startswith("validation-")
            and p.name != "champion.json"]


def assert_nothing_complete(out: Path) -> None:
    """No pipeline folder under ``out`` holds a finished-looking or half-written run, and no run
    folder at all (failed ones included) holds a metrics.json."""
    out = Path(out)
    if not out.exists():
        return
    for root in (p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        assert not complete_runs(out, root.name) and leftovers(out, root.name) == [], list(root.iterdir())
    assert not [p for p in out.rglob("metrics.json") if ".cache" not in p.parts]


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def assert_fails_clearly(spec: Path, out: Path, pipeline: str, code: int, phrases: list[str], capsys) -> str:
    """Run a spec that must fail: exit ``code``, every phrase in the message, no traceback, and
    nothing left in ``out`` that looks like a finished or half-written run. Returns the message."""
    rc, err = run_cli("run", spec, "--out", out, capsys=capsys)
    assert rc == code, err
    for phrase in phrases:
        assert phrase in err, f"{phrase!r} not in {err!r}"
    assert "Traceback" not in err
    assert not complete_runs(out, pipeline) and leftovers(out, pipeline) == []
    return err


def install_plugin(site: Path, module: str, source: str, monkeypatch) -> Path:
    """A throw-away package ``module`` in ``site``, exposed through the ``trainflow.components``
    entry-point group, and the registry rediscovered with it (its components stay registered afterwards)."""
    from trainflow import registry

    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(textwrap.dedent(source))
    dist = site / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[trainflow.components]\n{module} = {module}\n")
    monkeypatch.syspath_prepend(str(site))
    registry.discover(force=True)
    return site


@contextlib.contextmanager
def plugin_installed(site: Path, monkeypatch: Any, module: str, source: str) -> Iterator[Path]:
    """:func:`install_plugin` for a test's duration: the module is forgotten afterwards."""
    yield install_plugin(site, module, source, monkeypatch)
    sys.modules.pop(module, None)



def flow_run_records(client: Any, flow_run_id: str) -> tuple[list[Any], dict[str, Any]]:
    """The task runs and the artifacts (by key) of one flow run. Filtered on the server: an unfiltered
    read returns only the first page (200), which a long test session's server outgrows."""
    from prefect.client.schemas.filters import (ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter,
                                                FlowRunFilterId)

    task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return task_runs, {a.key: a for a in artifacts}


def long_panel(series: list[Any], name: str = "S{:02d}") -> Any:
    """A forecasting panel as the long CSV has it (``series_id``, ``t`` from 1, ``value`` to 3 places)
    from one array of values per series, named by ``name.format(k)``."""
    import pandas as pd

    return pd.DataFrame([{"series_id": name.format(k), "t": i + 1, "value": round(float(v), 3)}
                         for k, y in enumerate(series) for i, v in enumerate(y)])



def assert_damaged_model_exits_3(run: Path, history: Any, damage: Any, why: str, tmp_path: Path, capsys) -> None:
    """A copy of ``run`` whose model.json ``damage(config)`` changed is refused by ``predict`` on
    ``history`` (a frame): exit 3 naming the file and ``why``, no traceback, no output written."""
    import json
    import shutil

    history.to_csv(tmp_path / "history.csv", index=False)
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    config = json.loads((run / "model.json").read_text())
    damage(config)
    (broken / "model.json").write_text(json.dumps(config))
    code, err = run_cli("predict", broken, tmp_path / "history.csv", "--out", tmp_path / "f.csv", capsys=capsys)
    assert code == 3 and "damaged" in err and "model.json" in err and why in err and "Traceback" not in err, err
    assert not (tmp_path / "f.csv").exists()
