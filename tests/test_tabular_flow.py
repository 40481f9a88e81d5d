"""The penguins pipeline end to end on a real Prefect server: run folder, report, artifacts,
prediction, and resuming a crashed run without training again."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tests.conftest import DATA, SPECS
from tests.helpers import complete_runs, run_cli, write_spec
from trainflow.registry import component

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(scope="module")
def penguins_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("penguins") / "runs"
    assert run_cli("run", SPECS / "penguins.yaml", "--out", out)[0] == 0
    [run] = complete_runs(out, "penguins")
    return run


def test_run_folder_is_complete(penguins_run):
    names = {p.name for p in penguins_run.iterdir()}
    assert {"metrics.json", "model.skops", "schema.json", "spec.yaml", "report.md", "validation", "plots"} <= names
    assert (penguins_run / "validation" / "index.html").is_file()
    summary = json.loads((penguins_run / "metrics.json").read_text())
    assert summary["pipeline"] == "penguins" and summary["task"] == "classification"
    assert len(summary["data_digest"]) == 64
    assert summary["spec"]["preprocess"]["resample"]["method"] == "smote"
    assert summary["metrics"]["balanced_accuracy"] >= 0.97
    assert set(summary["per_class"]) == {"Adelie", "Chinstrap", "Gentoo"}
    assert sum(map(sum, summary["confusion"]["matrix"])) == 86  # the 25% test split
    report = (penguins_run / "report.md").read_text()
    assert "balanced_accuracy" in report and "plots/confusion_matrix.png" in report


def test_no_model_file_is_a_pickle(penguins_run):
    for path in penguins_run.rglob("*"):
        assert path.suffix not in (".pkl", ".pickle", ".joblib")


def test_report_and_metrics_are_prefect_artifacts(penguins_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    summary = json.loads((penguins_run / "metrics.json").read_text())
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[
            "penguins-report", "penguins-metrics"])))
    mine = [a for a in arts if str(a.flow_run_id) == summary["flow_run_id"]]
    kinds = {a.key: a for a in mine}
    assert set(kinds) == {"penguins-report", "penguins-metrics"}
    assert "data:image/png;base64," in kinds["penguins-report"].data
    assert "## Promotion" in kinds["penguins-report"].data  # the report says whether it became champion
    assert "balanced_accuracy" in json.dumps(kinds["penguins-metrics"].data)


def test_predict_writes_labels_and_probabilities(penguins_run, tmp_path):
    rows = pd.read_csv(DATA / "penguins.csv").drop(columns=["species"]).head(12)
    rows.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "pred.csv"
    assert run_cli("predict", penguins_run, tmp_path / "new.csv", "--out", out)[0] == 0
    pred = pd.read_csv(out)
    assert len(pred) == 12
    assert set(pred["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    assert (pred["prediction"] == "Adelie").mean() > 0.8  # the first rows of the file are Adelie
    assert pred.filter(like="proba_").sum(axis=1).round(6).eq(1).all()


def test_predict_rejects_input_missing_a_training_column(penguins_run, tmp_path, capsys):
    rows = pd.read_csv(DATA / "penguins.csv").drop(columns=["species", "bill_depth_mm"]).head(5)
    rows.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "pred.csv"
    rc, err = run_cli("predict", penguins_run, tmp_path / "new.csv", "--out", out, capsys=capsys)
    assert rc == 3
    assert "new.csv" in err and "'bill_depth_mm'" in err
    assert not out.exists()


CRASHES = {"armed": True}


@component("stage", "crash_once")
def crash_once(config, context):
    """Test stage: fails the first time it runs (a crash after training), then passes."""
    if CRASHES["armed"]:
        CRASHES["armed"] = False
        raise RuntimeError("simulated crash after training")


def test_rerun_after_crash_does_not_train_again(tmp_path, monkeypatch, capsys):
    from trainflow.tasks.tabular import modality as tabular

    fits = []
    real_fit = tabular.fit
    monkeypatch.setattr(tabular.Tabular, "fit", staticmethod(lambda *a, **k: fits.append(1) or real_fit(*a, **k)))
    raw = yaml.safe_load((SPECS / "penguins.yaml").read_text())
    raw["data"]["path"] = str(DATA / "penguins.csv")
    raw["model"] = {"name": "random_forest", "n_estimators": 25}  # a model no other test has trained
    raw["stages"] = [{"name": "crash_once", "after": "fit"}]
    spec = write_spec(tmp_path / "spec.yaml", raw)
    out = tmp_path / "runs"

    rc, _ = run_cli("run", spec, "--out", out, capsys=capsys)
    assert rc != 0 and fits == [1]
    assert complete_runs(out, "penguins") == []

    rc, _ = run_cli("run", spec, "--out", out, capsys=capsys)
    assert rc == 0
    assert fits == [1], "the second run trained again instead of reusing the cached model"
    assert len(complete_runs(out, "penguins")) == 1
