"""A modality from a throw-away third-party package: registered through the entry-point group with
its own loader, model and spec section, listed by `trainflow components`, checked by the spec, and
run end to end (`trainflow run`, then `trainflow predict`) without any change to trainflow's code."""

from __future__ import annotations


import pandas as pd
import pytest
import yaml

from tests.helpers import complete_runs, plugin_installed, run_cli, write_spec

PLUGIN = '''
"""Points in the plane, classified by the nearest class centroid (a toy modality)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from trainflow.modality import Example, Modality
from trainflow.refs import DataRef, Evaluation, ModelRef, SplitRef, file_digest, json_digest
from trainflow.registry import NoOptions, component
from trainflow.tasks.common import metrics


class PointsCsv(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str


@component("loader", "points_csv", PointsCsv, modality="points")
def load_points(config):
    """A CSV of x, y and label columns."""
    return pd.read_csv(config.path)


@component("model", "nearest_centroid_toy", NoOptions, tasks=("classification",), modality="points")
def nearest_centroid(config, **_):
    """The class whose centroid is nearest."""
    return None


class PointsPreprocess(BaseModel):
    """How points are prepared (``preprocess.points``)."""

    model_config = ConfigDict(extra="forbid")
    scale: float = Field(1.0, gt=0, description="Multiply coordinates by this before fitting")


def _save(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


@component("modality", "points")
class Points(Modality):
    """Points in the plane with a class label."""

    sections = {"preprocess.points": PointsPreprocess}
    default_models = {"classification": "nearest_centroid_toy"}

    def spec_problems(self, spec):
        if spec.preprocess.points.scale > 100:
            return ["'preprocess.points.scale' above 100 makes no sense for points."]
        return []

    def store(self, loaded, cache_dir, digest, config):
        path = Path(cache_dir) / "data" / f"{digest}.npz"
        _save(path, xy=loaded[["x", "y"]].to_numpy(float), label=loaded["label"].to_numpy(dtype=str))
        return DataRef(path=str(path), digest=digest, modality="points", meta={"rows": len(loaded)})

    def validate(self, ref, spec, docs_dir):
        rows = len(np.load(ref.path)["xy"])
        return {"success": True, "evaluated": 1, "failed": [], "docs_path": None, "rows": rows}

    def split(self, ref, spec, cache_dir):
        z = np.load(ref.path)
        test = np.random.default_rng(spec.split.seed).random(len(z["xy"])) < spec.split.test_size
        folder = Path(cache_dir) / "splits" / json_digest([ref.digest, spec.split.model_dump()])[:16]
        refs = {}
        for name, mask in (("train", ~test), ("test", test)):
            _save(folder / f"{name}.npz", xy=z["xy"][mask], label=z["label"][mask])
            refs[name] = DataRef(path=str(folder / f"{name}.npz"), digest=file_digest(folder / f"{name}.npz"),
                                 modality="points", meta={"rows": int(mask.sum())})
        return SplitRef(**refs)

    def fit(self, split, spec, cache_dir):
        z = np.load(split.train.path)
        xy = z["xy"] * spec.preprocess.points.scale
        classes = sorted(set(z["label"]))
        centroids = {c: xy[z["label"] == c].mean(0).tolist() for c in classes}
        folder = Path(cache_dir) / "models" / split.train.digest[:16]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "centroids.json").write_text(json.dumps({"scale": spec.preprocess.points.scale,
                                                             "centroids": centroids}))
        return ModelRef(path=str(folder), digest=file_digest(folder), modality="points",
                        meta={"steps": ["centroids"]})

    @staticmethod
    def _predict(folder, xy):
        saved = json.loads((Path(folder) / "centroids.json").read_text())
        classes = list(saved["centroids"])
        dist = np.stack([np.linalg.norm(xy * saved["scale"] - saved["centroids"][c], axis=1) for c in classes], 1)
        return classes, dist.argmin(1)

    def evaluate(self, model, split, spec, plots_dir):
        z = np.load(split.test.path)
        classes, pred = self._predict(model.path, z["xy"])
        y = np.array([classes.index(c) for c in z["label"]])
        names = spec.evaluate.metrics or ["accuracy", "balanced_accuracy"]
        return Evaluation(metrics=metrics.score(names, y, pred, None, classes))

    def export(self, model, run_dir):
        shutil.copy2(Path(model.path) / "centroids.json", Path(run_dir) / "centroids.json")
        return ["centroids.json"]

    def predict(self, run_dir, input_path):
        new = pd.read_csv(input_path)
        classes, pred = self._predict(run_dir, new[["x", "y"]].to_numpy(float))
        return pd.DataFrame({"prediction": [classes[i] for i in pred]})

    def example(self, folder):
        rng = np.random.default_rng(0)
        label = np.array(["left", "right"] * 20)
        x = rng.normal(size=40) + np.where(label == "right", 3, -3)
        pd.DataFrame({"x": x, "y": rng.normal(size=40), "label": label}).to_csv(folder / "points.csv", index=False)
        pd.DataFrame({"x": [-3.0, 3.0], "y": [0.0, 0.0]}).to_csv(folder / "new.csv", index=False)
        return Example(spec={"data": {"loader": "points_csv", "path": str(folder / "points.csv")}},
                       predict_input=folder / "new.csv")
'''


@pytest.fixture
def points_plugin(tmp_path, monkeypatch):
    with plugin_installed(tmp_path / "site", monkeypatch, "points_trainflow", PLUGIN) as site:
        yield site


def test_plugin_modality_section_is_checked_by_the_spec(points_plugin, tmp_path, capsys):
    from trainflow.spec import spec_from_dict

    raw = {"name": "pts", "data": {"loader": "points_csv", "path": "p.csv"}}
    spec = spec_from_dict(raw)
    assert spec.modality == "points" and spec.model.name == "nearest_centroid_toy"
    assert spec.preprocess.points.scale == 1.0
    bad = {**raw, "preprocess": {"points": {"scael": 2, "scale": 500}}}
    spec_file = write_spec(tmp_path / "bad.yaml", bad)
    code, err = run_cli("run", spec_file, "--out", tmp_path / "runs", capsys=capsys)
    assert code == 2
    assert "'preprocess.points.scael' is not a known option (did you mean 'scale'?)" in err


def test_plugin_modality_is_listed_with_its_loaders_and_models(points_plugin, capsys):
    assert run_cli("components", "--kind", "modality")[0] == 0
    listed = capsys.readouterr().out
    assert "points" in listed and "Points in the plane with a class label." in listed
    assert "loaders: points_csv" in listed and "nearest_centroid_toy" in listed
    assert "spec sections: preprocess.points" in listed


@pytest.mark.usefixtures("prefect_server")
def test_plugin_modality_runs_end_to_end(points_plugin, tmp_path):
    from trainflow.modalities import get

    example = get("points").example(tmp_path)
    raw = {"name": "points", **example.spec, "preprocess": {"points": {"scale": 2.0}}}
    out = tmp_path / "runs"
    assert run_cli("run", write_spec(tmp_path / "spec.yaml", raw), "--out", out)[0] == 0
    [run] = complete_runs(out, "points")
    summary = yaml.safe_load((run / "metrics.json").read_text())
    assert summary["modality"] == "points" and summary["metrics"]["balanced_accuracy"] == 1.0
    assert yaml.safe_load((run / "spec.yaml").read_text())["preprocess"]["points"] == {"scale": 2.0}
    assert (run / "centroids.json").is_file() and (run / "report.md").is_file()

    assert run_cli("predict", run, example.predict_input, "--out", tmp_path / "pred.csv")[0] == 0
    assert pd.read_csv(tmp_path / "pred.csv")["prediction"].tolist() == ["left", "right"]
    assert run_cli("predict", "points", example.predict_input, "--out", tmp_path / "champion.csv",
                   "--runs", out)[0] == 0


def test_the_packaged_contract_checks_pass_the_plugin_and_catch_a_broken_one(points_plugin, tmp_path, monkeypatch):
    """What a plug-in author runs: trainflow.testing's checks on the modality and its components."""
    from trainflow.modalities import get
    from trainflow.testing import ContractError, check_component, check_modality

    assert check_modality("points", tmp_path / "ok") == ["check_interface", "check_round_trip"]
    assert "check_config_round_trip" in check_component("loader", "points_csv", tmp_path / "loader")
    assert "check_unknown_option_refused" in check_component("model", "nearest_centroid_toy", tmp_path / "model")

    points = type(get("points"))
    monkeypatch.setattr(points, "predict", lambda self, run_dir, input_path: pd.DataFrame({"prediction": []}))
    with pytest.raises(ContractError, match="predict"):
        check_modality("points", tmp_path / "broken")
