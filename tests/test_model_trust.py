"""A model folder is something people share: loading one never runs code.

`trainflow predict` on a run folder whose model.skops was crafted (an `eval` hidden in a
FunctionTransformer, `os.system`, a class from elsewhere) exits 3 naming the file and the refused
types, and the payload does not run; a damaged model file is reported as damaged; a plug-in model
loads once its component declares the types its fitted models hold.
"""

from __future__ import annotations

import builtins
import functools
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import FunctionTransformer

from tests.conftest import DATA, SPECS
from tests.helpers import complete_runs, install_plugin, run_cli
from trainflow import trust
from trainflow.errors import ComponentError
from trainflow.spec import load_spec
from trainflow.tasks.tabular import modality as tabular


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, prefect_server):
    """A finished penguins run folder and a few new rows to predict."""
    folder = tmp_path_factory.mktemp("shared")
    out = folder / "runs"
    assert run_cli("run", SPECS / "penguins.yaml", "--out", out, "--set", "preprocess.resample.method=none")[0] == 0
    [run] = complete_runs(out, "penguins")
    rows = pd.read_csv(DATA / "penguins.csv").drop(columns=["species"]).dropna().head(5)
    rows.to_csv(folder / "new.csv", index=False)
    return run, folder / "new.csv"


def tampered(shared_run, tmp_path, step=None, raw: bytes | None = None):
    """A copy of the shared run whose model has ``step`` put in front, or whose file is ``raw``."""
    run, rows = shared_run
    copy = tmp_path / "received" / run.name
    shutil.copytree(run, copy)
    if raw is not None:
        (copy / tabular.MODEL_FILE).write_bytes(raw)
    else:
        pipe = sio.load(run / tabular.MODEL_FILE, trusted=sorted(trust.skops_types(run / tabular.MODEL_FILE)))
        pipe.steps.insert(0, ("prepare", step))
        sio.dump(pipe, copy / tabular.MODEL_FILE)
    return copy, rows


def predict_refused(run, rows, tmp_path, capsys) -> str:
    code, err = run_cli("predict", run, rows, "--out", tmp_path / "pred.csv", capsys=capsys)
    assert code == 3, err
    assert str(run / tabular.MODEL_FILE) in err and "Traceback" not in err
    assert not (tmp_path / "pred.csv").exists()
    return err


class Sneaky(BaseEstimator, TransformerMixin):
    """A transformer from outside the trusted set that leaves a marker when it runs."""

    def __init__(self, marker: str = ""):
        self.marker = marker

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        open(self.marker, "w").close()
        return X


def test_eval_payload_is_refused_and_never_runs(shared_run, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    code = f"__import__('os').system('touch {marker}')"
    # locals may be any mapping, so eval accepts the DataFrame FunctionTransformer passes it
    run, rows = tampered(shared_run, tmp_path, FunctionTransformer(func=functools.partial(builtins.eval, code, {})))

    # The payload is real: loaded with everything in it trusted, the pipeline's first step runs it.
    pipe = sio.load(run / tabular.MODEL_FILE, trusted=sorted(trust.skops_types(run / tabular.MODEL_FILE)))
    pipe.named_steps["prepare"].transform(pd.read_csv(rows))
    assert marker.exists()
    marker.unlink()

    err = predict_refused(run, rows, tmp_path, capsys)
    assert "Refusing to load the model file" in err and "builtins.eval" in err and "functools.partial" in err
    assert not marker.exists()


def test_os_system_payload_is_refused(shared_run, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    run, rows = tampered(shared_run, tmp_path, FunctionTransformer(func=functools.partial(os.system, f"touch {marker}")))
    err = predict_refused(run, rows, tmp_path, capsys)
    assert f"{os.system.__module__}.system" in err and "functools.partial" in err  # posix.system on Linux
    assert not marker.exists()


def test_custom_class_is_refused(shared_run, tmp_path, capsys):
    marker = tmp_path / "PWNED"
    run, rows = tampered(shared_run, tmp_path, Sneaky(marker=str(marker)))
    err = predict_refused(run, rows, tmp_path, capsys)
    assert f"{__name__}.Sneaky" in err
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_damaged_model_file_is_reported_as_damaged(shared_run, tmp_path, capsys, damage):
    good = (shared_run[0] / tabular.MODEL_FILE).read_bytes()
    raw = {"truncated": good[: len(good) // 2], "empty": b"", "garbage": os.urandom(2048)}[damage]
    run, rows = tampered(shared_run, tmp_path, raw=raw)
    err = predict_refused(run, rows, tmp_path, capsys)
    assert "is damaged" in err


def with_schema(shared_run, tmp_path, edit):
    """A copy of the shared run whose schema.json is ``edit`` of the saved one."""
    run, rows = shared_run
    copy = tmp_path / "received" / run.name
    shutil.copytree(run, copy)
    schema = json.loads((run / tabular.SCHEMA_FILE).read_text())
    (copy / tabular.SCHEMA_FILE).write_text(json.dumps(edit(schema)))
    return copy, rows


@pytest.mark.parametrize("edit, says", [
    (lambda s: {}, "task: Field required"),
    (lambda s: [], "the top level"),
    (lambda s: {**s, "plan": {**s["plan"], "features": 5}}, "plan.features"),
    (lambda s: {**s, "features": [{"kind": "numeric"}]}, "features.0.name"),
    (lambda s: {**s, "features": [{**f, "kind": "text"} for f in s["features"]]}, "features.0.kind"),
    (lambda s: {**s, "classes": []}, "lists no classes"),
    (lambda s: {**s, "reading": {"encoding": "rot13"}}, "reading.encoding"),
], ids=["empty object", "a list", "plan features a number", "a feature without a name", "an unknown kind",
        "no classes", "a codec that is not a text encoding"])
def test_a_damaged_schema_is_reported_as_damaged(shared_run, tmp_path, capsys, edit, says):
    run, rows = with_schema(shared_run, tmp_path, edit)
    code, err = run_cli("predict", run, rows, "--out", tmp_path / "pred.csv", capsys=capsys)
    assert code == 3 and f"'{run / tabular.SCHEMA_FILE}' is damaged" in err and says in err, err
    assert "Traceback" not in err and not (tmp_path / "pred.csv").exists()


def test_a_model_file_from_another_run_is_refused_as_not_matching_its_schema(shared_run, tmp_path, capsys):
    """The model was fitted with 'sex'; a schema without it is what a model.skops copied in from a
    run with other columns looks like."""
    def without_sex(s):
        return {**s, "features": [f for f in s["features"] if f["name"] != "sex"],
                "plan": {**s["plan"], "features": [c for c in s["plan"]["features"] if c != "sex"]}}

    run, rows = with_schema(shared_run, tmp_path, without_sex)
    err = predict_refused(run, rows, tmp_path, capsys)
    assert "does not match the schema" in err and "the schema lacks 'sex'" in err


def test_the_untouched_model_still_predicts(shared_run, tmp_path, capsys):
    run, rows = shared_run
    assert run_cli("predict", run, rows, "--out", tmp_path / "pred.csv", capsys=capsys)[0] == 0
    assert len(pd.read_csv(tmp_path / "pred.csv")) == 5


def test_trusted_set_is_exact_names_without_code():
    names = tabular.trusted_types()
    for dangerous in ("builtins.eval", "builtins.exec", "builtins.getattr", "builtins.__import__", "functools.partial",
                      "posix.system", "os.system", "_operator.attrgetter", "_operator.methodcaller", "builtins.type"):
        assert dangerous not in names
    assert all("." in n and not n.endswith(".") for n in names)
    assert "sklearn.linear_model._logistic.LogisticRegression" in names  # built by a registered model
    assert "imblearn.over_sampling._smote.base.SMOTE" in names  # and by a registered sampler


@pytest.mark.parametrize("declared", [("builtins",), ("sklearn.",), ("numpy.*",), ("functools",)])
def test_a_component_cannot_trust_a_module_prefix(declared):
    from trainflow.registry import component

    with pytest.raises(ComponentError, match="never a module prefix"):
        component("model", "greedy", trusted_types=declared)(lambda config: None)


def tiny_table(task: str) -> tuple[pd.DataFrame, np.ndarray]:
    df = pd.read_csv(DATA / "penguins.csv").drop(columns=["year"]).dropna(subset=["species", "body_mass_g"])
    df = df.groupby("species").head(20).reset_index(drop=True)
    if task == "classification":
        return df.drop(columns=["species"]), df["species"].astype("category").cat.codes.to_numpy()
    return df.drop(columns=["body_mass_g"]), df["body_mass_g"].to_numpy(float)


def variants():
    """Spec overrides that together use every registered tabular component once."""
    from trainflow.registry import REGISTRY

    fields = {"imputer": "preprocess.impute", "encoder": "preprocess.encode", "scaler": "preprocess.scale",
              "reducer": "preprocess.reduce", "sampler": "preprocess.resample"}
    for kind, field in fields.items():
        for name in REGISTRY.names(kind):
            yield pytest.param([f"{field}={{method: {name}}}"], "classification", id=f"{kind}:{name}")
            if kind == "reducer":
                yield pytest.param([f"{field}={{method: {name}}}"], "regression", id=f"{kind}:{name}:regression")
    for task in ("classification", "regression"):
        for name in REGISTRY.names("model", task):
            if REGISTRY.get("model", name).modality == "tabular":
                yield pytest.param([f"model={{name: {name}}}"], task, id=f"model:{name}:{task}")
    yield pytest.param(["model={name: logistic_regression, multiclass: ovr}"], "classification", id="ovr")
    yield pytest.param(["model={name: svm, multiclass: ovo}"], "classification", id="ovo")


@pytest.mark.parametrize(("overrides", "task"), list(variants()))
def test_every_component_saves_a_model_that_loads(overrides, task, tmp_path):
    """What skops writes for each component, fitted, is inside the trusted set (an upgrade of
    scikit-learn that adds a helper type shows up here, not at a user's predict)."""
    base = ["preprocess.resample.method=none"]
    if task == "regression":
        base += ["task=regression", "data.target=body_mass_g", "validation.labels=[]", "model={name: ridge}",
                 "evaluate.primary=rmse"]
    spec = load_spec(SPECS / "penguins.yaml", base + overrides)
    X, y = tiny_table(task)
    if spec.preprocess.impute.method == "drop_rows":
        keep = X.notna().all(axis=1).to_numpy()
        X, y = X[keep], y[keep]
    numeric, categorical = tabular.column_kinds(X)
    pipe = tabular.build_pipeline(spec, numeric, categorical, tabular._encoded_width(X, numeric, categorical))
    pipe.fit(X, y)
    sio.dump(pipe, tmp_path / tabular.MODEL_FILE)
    features = [{"name": c, "kind": "numeric" if c in numeric else "categorical"} for c in X.columns]
    classes = sorted(set(y.tolist())) if task == "classification" else []
    (tmp_path / tabular.SCHEMA_FILE).write_text(json.dumps({"task": task, "classes": classes, "features": features}))
    loaded, _ = tabular.load_model(tmp_path)
    assert np.array_equal(loaded.predict(X), pipe.predict(X))


BALL_KNN = '''
from pydantic import BaseModel, ConfigDict
from trainflow.registry import component


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


@component("model", "{name}", Options, tasks=("classification",), modality="tabular"{declaration})
def ball_knn(config, seed=0, class_weight=None, task="classification"):
    """k-nearest neighbours on a ball tree."""
    from sklearn.neighbors import KNeighborsClassifier
    return KNeighborsClassifier(n_neighbors=3, algorithm="ball_tree")
'''


def test_plugin_model_loads_once_it_declares_its_types(tmp_path, monkeypatch, capsys, prefect_server):
    rows = pd.read_csv(DATA / "penguins.csv").drop(columns=["species"]).dropna().head(5)
    rows.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "runs"
    common = ["--out", out, "--set", "preprocess.resample.method=none"]

    # Without a declaration the fitted ball tree is not trusted: the run's own evaluation refuses it.
    install_plugin(tmp_path / "a", "acme_undeclared", BALL_KNN.format(name="ball_knn_undeclared", declaration=""),
                   monkeypatch)
    code, err = run_cli("run", SPECS / "penguins.yaml", *common, "--set", "model={name: ball_knn_undeclared}",
                        capsys=capsys)
    assert code == 3 and "sklearn.neighbors._ball_tree.BallTree" in err and "trusted_types" in err, err

    declaration = (', trusted_types=("sklearn.neighbors._ball_tree.BallTree", '
                   '"sklearn.metrics._dist_metrics.EuclideanDistance64")')
    install_plugin(tmp_path / "b", "acme_declared", BALL_KNN.format(name="ball_knn", declaration=declaration),
                   monkeypatch)
    assert run_cli("run", SPECS / "penguins.yaml", *common, "--set", "model={name: ball_knn}")[0] == 0
    [run] = complete_runs(out, "penguins")
    assert "sklearn.neighbors._ball_tree.BallTree" in trust.skops_types(run / tabular.MODEL_FILE)
    code, err = run_cli("predict", run, tmp_path / "new.csv", "--out", tmp_path / "pred.csv", capsys=capsys)
    assert code == 0, err
    assert len(pd.read_csv(tmp_path / "pred.csv")) == 5


class _RunsShell:
    """Pickles as a call to os.system: what a crafted checkpoint would hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_checkpoint_with_code_is_refused(tmp_path):
    """Checkpoints are read with torch.load(weights_only=True): tensors and plain values only."""
    import torch

    from trainflow.errors import TrainflowError
    from trainflow.tasks.common.training import load_checkpoint

    marker = tmp_path / "PWNED"
    torch.save({"epoch": 3, "model": {"w": torch.zeros(2)}, "extra": _RunsShell(marker)}, tmp_path / "ckpt.pt")
    with pytest.raises(TrainflowError, match="ckpt.pt' cannot be read"):
        load_checkpoint(tmp_path / "ckpt.pt")
    assert not marker.exists()
