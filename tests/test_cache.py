"""The cache, on a real Prefect server: keys cover the code (a plug-in edit retrains), results live
under ``<out>/.cache``, and the cache is disposable (deleted or damaged files are recomputed);
``--refresh-cache`` trains every epoch again."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import DATA, SPECS
from tests.helpers import complete_runs, run_cli, write_spec
from tests.test_plugin_components import plugin  # noqa: F401  (the throw-away plug-in package fixture)
from tests.test_sequence_flow import toy_series, ts_text
from trainflow import cache_keys, registry
from trainflow.flows import serve
from trainflow.spec import load_spec

pytestmark = pytest.mark.usefixtures("prefect_server")


def penguins_spec(tmp_path: Path, model: dict) -> Path:
    raw = yaml.safe_load((SPECS / "penguins.yaml").read_text())
    raw["data"]["path"] = str(DATA / "penguins.csv")
    raw["model"] = model
    return write_spec(tmp_path / "spec.yaml", raw)


def newest_metrics(out: Path, pipeline: str) -> dict:
    newest = max(complete_runs(out, pipeline), key=lambda p: p.name)
    return json.loads((newest / "metrics.json").read_text())


@pytest.fixture
def fits(monkeypatch) -> list[int]:
    """Counts the tabular fits that really ran (a Cached fit does not call it)."""
    from trainflow.tasks.tabular import modality as tabular

    calls: list[int] = []
    real_fit = tabular.fit
    monkeypatch.setattr(tabular.Tabular, "fit", staticmethod(lambda *a, **k: calls.append(1) or real_fit(*a, **k)))
    return calls


def test_code_fingerprint_covers_the_plugins_a_spec_uses(plugin, tmp_path):  # noqa: F811
    with_plugin = load_spec(penguins_spec(tmp_path, {"name": "knn_plugin"}))
    without = load_spec(penguins_spec(tmp_path, {"name": "logistic_regression"}))
    assert "acme_trainflow" in cache_keys.used_modules(with_plugin)
    before = cache_keys.code_fingerprint(with_plugin), cache_keys.code_fingerprint(without)
    source = plugin / "acme_trainflow" / "__init__.py"
    source.write_text(source.read_text() + "\n# an edit\n")
    assert cache_keys.code_fingerprint(with_plugin) != before[0]
    assert cache_keys.code_fingerprint(without) == before[1], "a plug-in the spec does not use changed its key"


def test_editing_a_component_retrains_and_an_unchanged_rerun_reuses(plugin, tmp_path, fits):  # noqa: F811
    spec = penguins_spec(tmp_path, {"name": "knn_plugin", "n_neighbors": 3})
    out = tmp_path / "runs"
    assert run_cli("run", spec, "--out", out)[0] == 0
    first = newest_metrics(out, "penguins")
    assert run_cli("run", spec, "--out", out)[0] == 0
    assert fits == [1], "an unchanged re-run trained again instead of reusing the cached model"
    assert newest_metrics(out, "penguins")["model_digest"] == first["model_digest"]

    source = plugin / "acme_trainflow" / "__init__.py"
    edited = source.read_text().replace("KNeighborsClassifier(n_neighbors=config.n_neighbors)",
                                        "KNeighborsClassifier(n_neighbors=config.n_neighbors, weights='distance')")
    assert edited != source.read_text()
    source.write_text(edited)
    sys.modules.pop("acme_trainflow", None)
    registry.discover(force=True)  # what a new process would import
    assert run_cli("run", spec, "--out", out)[0] == 0
    assert fits == [1, 1], "the edited component did not retrain"
    third = newest_metrics(out, "penguins")
    assert third["model_digest"] != first["model_digest"]
    assert third["code_fingerprint"] != first["code_fingerprint"]


PROBE_MODALITY = """
from pydantic import BaseModel, ConfigDict
from trainflow.modality import Modality
from trainflow.registry import component


class Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    level: int = 1


@component("modality", "probe_modality")
class Probe(Modality):
    \"\"\"A plug-in modality installed after the first run: its sections join every spec.\"\"\"
    sections = {"probe": Opts, "preprocess.probe": Opts}
    default_models = {"classification": "logistic_regression"}
"""


def test_a_plugin_modality_installed_later_reuses_the_cached_split_and_model(tmp_path):
    """A run, then the same run in a process where a plug-in modality (with its own spec sections) is
    imported: split and fit come from the cache (Prefect's key holds the spec's key_dump, not the
    default sections the plug-in adds to every spec)."""
    import subprocess

    from prefect.settings import get_current_settings

    spec, out = penguins_spec(tmp_path, {"name": "logistic_regression"}), tmp_path / "runs"
    assert run_cli("run", spec, "--out", out)[0] == 0
    (tmp_path / "probe_mod.py").write_text(PROBE_MODALITY)
    code = ("import sys, probe_mod; from trainflow.flows.cli import entry; "
            f"sys.argv = ['trainflow', 'run', {str(spec)!r}, '--out', {str(out)!r}]; sys.exit(entry())")
    env = {**__import__("os").environ, "PREFECT_API_URL": str(get_current_settings().api.url),
           "PYTHONPATH": str(tmp_path), "PREFECT_LOGGING_LEVEL": "INFO"}  # the task runs' final states
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-3000:]
    for stage in ("split", "fit"):
        assert re.search(rf"Task run '{stage}-\w+' - Finished in state Cached", log), f"{stage} ran again:\n{log[-3000:]}"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_deleted_or_damaged_cache_files_are_recomputed(tmp_path, fits, caplog):
    spec = penguins_spec(tmp_path, {"name": "logistic_regression", "C": 0.7})
    out = tmp_path / "runs"
    cache = out / ".cache"
    assert run_cli("run", spec, "--out", out)[0] == 0
    results = sorted((cache / "results").iterdir())
    assert len(results) == 2, "the persisted results of split and fit belong under <out>/.cache/results"
    assert run_cli("run", spec, "--out", out)[0] == 0
    assert fits == [1]
    caplog.clear()

    # A file a cached result points to: the flow notices, says why (naming the file), and recomputes.
    # One model file and one split file per run: the split is checked and recomputed first, with the
    # same digests, so the fit's cached result is then checked as if the split were untouched.
    for patterns in (("models/*/model.skops", "splits/*/train.parquet"),
                     ("models/*/schema.json", "splits/*/test.parquet")):
        paths = [path for pattern in patterns for path in cache.glob(pattern)]
        assert len(paths) == 2, patterns
        for path in paths:
            _truncate(path)
        assert run_cli("run", spec, "--out", out)[0] == 0, f"truncated {patterns}"
        assert caplog.text.count("recomputing, the cached result cannot be used") == 2, patterns
        for path in paths:
            assert f"'{path}' does not match its recorded digest" in caplog.text, path
        caplog.clear()
    assert len(fits) == 3  # the two model files; a recomputed split has the same digests
    # The stored dataset is rewritten by every load; an unreadable result record is a cache miss.
    for pattern in ("data/*.parquet", "results/*"):
        for path in cache.glob(pattern):
            path.write_bytes(b"")
        assert run_cli("run", spec, "--out", out)[0] == 0, pattern
    assert len(fits) == 4  # the fit whose result record was emptied
    for path in cache.glob("models/*/*"):
        path.unlink()
    assert run_cli("run", spec, "--out", out)[0] == 0
    assert "model.skops' is missing" in caplog.text
    shutil.rmtree(cache)
    assert run_cli("run", spec, "--out", out)[0] == 0
    assert len(fits) == 6 and len(complete_runs(out, "penguins")) == 8


def test_refresh_cache_trains_every_epoch_again(tmp_path, monkeypatch):
    from trainflow.tasks.common import training

    saved: list[int] = []  # one checkpoint is written per epoch trained
    real_save = training._save_checkpoint
    monkeypatch.setattr(training, "_save_checkpoint", lambda path, state: saved.append(state["epoch"])
                        or real_save(path, state))
    rng = np.random.default_rng(0)
    (tmp_path / "R_TRAIN.ts").write_text(ts_text(*toy_series(16, 12, rng)))
    (tmp_path / "R_TEST.ts").write_text(ts_text(*toy_series(8, 12, rng)))
    spec = write_spec(tmp_path / "ramps.yaml", {
        "name": "ramps", "data": {"loader": "ts", "train": "R_TRAIN.ts", "test": "R_TEST.ts"},
        "validation": {"min_rows": 4}, "model": {"name": "gru", "hidden": 4, "front_channels": 4},
        "train": {"epochs": 3, "batch_size": 8}})
    out = tmp_path / "runs"

    assert run_cli("run", spec, "--out", out)[0] == 0
    assert saved == [1, 2, 3]
    assert run_cli("run", spec, "--out", out)[0] == 0
    assert saved == [1, 2, 3], "an unchanged re-run trained again"
    assert run_cli("run", spec, "--out", out, "--refresh-cache")[0] == 0
    assert saved == [1, 2, 3] * 2, "--refresh-cache resumed from the last checkpoint instead of training"
    assert not any("resumed" in n for n in newest_metrics(out, "ramps")["notes"])
    assert run_cli("run", spec, "--out", out)[0] == 0
    assert saved == [1, 2, 3] * 2, "--refresh-cache outlived its run"

    # A damaged model makes fit run again; its damaged checkpoint is set aside, not trusted.
    for pattern in ("models/*/model.safetensors", "checkpoints/*/checkpoint.pt"):
        [path] = (out / ".cache").glob(pattern)
        _truncate(path)
    assert run_cli("run", spec, "--out", out)[0] == 0
    assert saved == [1, 2, 3] * 3
    assert len(complete_runs(out, "ramps")) == 5


def test_scheduled_run_retrains_when_the_code_changed(tmp_path, monkeypatch):
    spec = penguins_spec(tmp_path, {"name": "logistic_regression", "C": 0.3})
    out = str(tmp_path / "runs")
    first = serve.run_spec_file(str(spec), out=out)
    assert serve.run_spec_file(str(spec), out=out)["reused"] is True
    assert first["code_fingerprint"] == cache_keys.code_fingerprint(load_spec(spec))
    monkeypatch.setattr(cache_keys, "code_fingerprint", lambda spec: "edited code")
    assert "reused" not in serve.run_spec_file(str(spec), out=out)
