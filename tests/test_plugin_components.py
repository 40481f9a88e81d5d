"""A component from a throw-away third-party package, found through the entry-point group,
listed by `trainflow components` and usable by name in a pipeline."""

from __future__ import annotations


import pytest
import yaml

from tests.conftest import DATA, SPECS
from tests.helpers import complete_runs, install_plugin, plugin_installed, run_cli, write_spec
from trainflow import registry

PLUGIN = '''
"""A plug-in adding a k-nearest-neighbours model and a stage that writes a notification file."""
import json
from pathlib import Path
from pydantic import BaseModel, ConfigDict, Field
from trainflow.registry import component


class KnnOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_neighbors: int = Field(5, ge=1)


@component("model", "knn_plugin", KnnOptions, tasks=("classification",), modality="tabular")
def knn(config, seed=0, class_weight=None, task="classification"):
    """k-nearest neighbours (from the acme_trainflow plug-in)."""
    from sklearn.neighbors import KNeighborsClassifier
    return KNeighborsClassifier(n_neighbors=config.n_neighbors)


class NotifyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str


@component("stage", "notify_file", NotifyOptions)
def notify(config, context):
    """Append the run's metrics to a file (a stand-in for a chat or e-mail notification)."""
    summary = context["summary"]
    with open(config.path, "a") as fh:
        fh.write(json.dumps({"run": summary["run_id"], "metrics": summary["metrics"]}) + "\\n")
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    with plugin_installed(tmp_path / "site", monkeypatch, "acme_trainflow", PLUGIN) as site:
        yield site


def test_plugin_is_listed(plugin, capsys):
    assert run_cli("components", "--kind", "model")[0] == 0
    listed = capsys.readouterr().out
    assert "knn_plugin" in listed and "k-nearest neighbours (from the acme_trainflow plug-in)" in listed
    assert "n_neighbors (default 5)" in listed


@pytest.mark.usefixtures("prefect_server")
def test_plugin_model_and_stage_run_in_a_pipeline(plugin, tmp_path):
    raw = yaml.safe_load((SPECS / "penguins.yaml").read_text())
    raw["data"]["path"] = str(DATA / "penguins.csv")
    notes = tmp_path / "notifications.jsonl"
    raw["model"] = {"name": "knn_plugin", "n_neighbors": 3}
    raw["stages"] = [{"name": "notify_file", "after": "publish", "path": str(notes)}]
    out = tmp_path / "runs"
    assert run_cli("run", write_spec(tmp_path / "spec.yaml", raw), "--out", out)[0] == 0
    [run] = complete_runs(out, "penguins")
    assert "KNeighborsClassifier" in (run / "model.skops").read_bytes().decode("latin-1")
    line = yaml.safe_load(notes.read_text())
    assert line["run"] == run.name and line["metrics"]["balanced_accuracy"] > 0.9


def test_broken_plugin_fails_naming_its_module(tmp_path, monkeypatch):
    with pytest.raises(registry.ComponentError, match="'broken_plugin'.*needs libfoo"):
        install_plugin(tmp_path / "site", "broken_plugin", "raise ImportError('needs libfoo')\n", monkeypatch)
    monkeypatch.undo()
    registry.discover(force=True)
