"""Issue 22 items 3-6: paired promotion, bootstrap intervals, calibration, permutation importance."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA, SPECS
from tests.helpers import complete_runs, flow_run_records, run_cli
from trainflow.spec import PromotionSpec
from trainflow.tasks.common import calibration, paired, promote
from trainflow.tasks.common import uncertainty as U

FULL = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


# ---------------------------------------------------------------- intervals


def test_confusion_metrics_match_scikit_learn():
    from sklearn import metrics as skm

    rng = np.random.default_rng(0)
    for k in (2, 3, 5):
        for _ in range(20):
            C = rng.integers(0, 6, (k, k))
            C[0, 0] += 1
            t = np.repeat(np.repeat(np.arange(k)[:, None], k, 1).ravel(), C.ravel())
            p = np.repeat(np.tile(np.arange(k), k), C.ravel())
            expected = {"accuracy": skm.accuracy_score(t, p), "balanced_accuracy": skm.balanced_accuracy_score(t, p),
                        "f1_macro": skm.f1_score(t, p, average="macro", zero_division=0),
                        "precision_macro": skm.precision_score(t, p, average="macro", zero_division=0),
                        "recall_macro": skm.recall_score(t, p, average="macro", zero_division=0)}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for name, value in expected.items():
                    assert U.confusion_metric(name, C[None])[0] == pytest.approx(value), (name, C)


def test_interval_covers_the_truth_and_narrows_with_rows():
    """A model right with probability 0.8: its accuracy interval holds 0.8 and shrinks as rows grow."""
    rng = np.random.default_rng(1)
    widths = []
    for n in (100, 1600):
        y = rng.integers(0, 3, n)
        pred = np.where(rng.random(n) < 0.8, y, (y + 1) % 3)
        low, high = U.metric_interval("accuracy", y, pred, seed=0)
        assert low < 0.8 < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2.5  # ~1/sqrt(16) = 1/4 of the width
    # the row-by-row path (a metric that is not a confusion matrix's) agrees with the counts path in spread
    y = rng.normal(size=200)
    low, high = U.metric_interval("rmse", y, y + rng.normal(size=200), task="regression", seed=0)
    assert low < 1.0 < high and high - low < 0.3
    # same seed, same interval
    assert U.metric_interval("rmse", y, y + 1, task="regression", seed=3) == U.metric_interval(
        "rmse", y, y + 1, task="regression", seed=3)


# ---------------------------------------------------------------- paired promotion on real models


@pytest.fixture(scope="module")
def penguins():
    d = pd.read_csv(DATA / "penguins.csv").dropna().reset_index(drop=True)
    d = d.sample(frac=1, random_state=0).reset_index(drop=True)  # the file is ordered by species
    classes = sorted(d.species.unique())
    return d, classes


def _fit(d, classes, rows, features, seed, noise=False):
    """A scaled logistic regression on ``rows`` (75% of them; the other 25% are its test rows)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = d.species.to_numpy()[rows]
    tr, te = train_test_split(np.asarray(rows), test_size=0.25, random_state=seed, stratify=y)
    X = _inputs(d, tr, features, noise, seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, d.species[tr])
    return model, te


def _inputs(d, rows, features, noise, seed):
    X = d.loc[rows, features].to_numpy(dtype=float)
    if noise:  # a broken upstream column: the model's input is noise
        X = np.random.default_rng(seed).normal(size=X.shape)
    return X


def _frame(model, d, rows, features, noise=False, seed=0):
    proba = model.predict_proba(_inputs(d, rows, features, noise, seed))
    frame = pd.DataFrame({"prediction": model.classes_[proba.argmax(1)]})
    for i, c in enumerate(model.classes_):
        frame[f"proba_{c}"] = proba[:, i]
    return frame


def _summary(tmp_path, run_id, value):
    run_dir = tmp_path / "p" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = {"pipeline": "p", "run_id": run_id, "run_dir": str(run_dir), "primary_metric": "balanced_accuracy",
               "metrics": {"balanced_accuracy": value}, "validation": {"success": True}, "modality": "tabular",
               "task": "classification"}
    (run_dir / "metrics.json").write_text(json.dumps(summary))
    return summary


def _decisions(tmp_path, d, classes, features, seed, champion, champion_value, challenger_features=None,
               noise=False):
    """The paired and the point decision (promote.decide) on a challenger fitted on rows 99-: each
    model's own test score for the point rule, both models on the challenger's test rows for the paired."""
    from trainflow.tasks.common.metrics import score

    features_new = challenger_features or features
    model, test = _fit(d, classes, list(range(99, len(d))), features_new, seed, noise)
    truth = d.species[test].reset_index(drop=True)
    new = _frame(model, d, test, features_new, noise, seed)
    own = score(["balanced_accuracy"], truth.to_numpy(), new["prediction"].to_numpy())["balanced_accuracy"]
    summary = _summary(tmp_path, f"c{seed}{features_new[0]}{noise}", own)
    pointer = {"run_id": "champ", "run_dir": str(tmp_path / "p" / "champ")}
    compare = lambda: paired.compare("balanced_accuracy", "classification", truth, new,  # noqa: E731
                                     _frame(champion, d, test, features), seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_pair = promote.decide(summary, pointer, PromotionSpec(rule="paired"), compare)
        by_point = promote.decide(summary, pointer, PromotionSpec(rule="point"))
    return by_pair, by_point


def test_paired_rule_keeps_an_equally_strong_champion_where_the_point_rule_churns(tmp_path, penguins):
    """Champion: bill length only, rows 0-249; 20 challengers: the same model on rows 99-332 with
    another seed (another split). The paired rule keeps the champion in at least 18 of 20; the point
    rule, comparing scores from different test rows, flips about half the time."""
    from trainflow.tasks.common.metrics import score

    d, classes = penguins
    features = ["bill_length_mm"]
    champion, champion_test = _fit(d, classes, list(range(250)), features, 0)
    champion_value = score(["balanced_accuracy"], d.species[champion_test].to_numpy(),
                           champion.predict(d.loc[champion_test, features].to_numpy(float)))["balanced_accuracy"]
    _summary(tmp_path, "champ", champion_value)
    kept = flipped = 0
    for seed in range(1, 21):
        by_pair, by_point = _decisions(tmp_path, d, classes, features, seed, champion, champion_value)
        assert by_pair["rule"] == "paired" and by_pair["paired"]["rows"] == 59  # 25% of rows 99-332
        low, high = by_pair["paired"]["interval"]
        assert low <= by_pair["paired"]["difference"] <= high
        kept += not by_pair["promoted"]
        flipped += by_point["promoted"]
    assert kept >= 18
    assert 6 <= flipped <= 14, flipped  # 11 of 20 with these seeds

    for seed in range(1, 6):
        # truly better: the same model given the missing measurements back
        better, _ = _decisions(tmp_path, d, classes, features, seed, champion, champion_value, challenger_features=FULL)
        assert better["promoted"], better["reason"]
        # crippled: its input column is broken (noise)
        crippled, _ = _decisions(tmp_path, d, classes, features, seed, champion, champion_value, noise=True)
        assert not crippled["promoted"] and "the champion stays" in crippled["reason"]


def test_lower_is_better_metric_is_mirrored():
    y = np.linspace(0, 10, 200)
    good = pd.DataFrame({"prediction": y + 0.1})
    bad = pd.DataFrame({"prediction": y + 1.0})
    c = paired.compare("rmse", "regression", pd.Series(y), good, bad)
    assert c["difference"] < 0 and c["interval"][1] < 0
    assert paired.verdict(c, higher_is_better=False, tolerance=0) is True
    assert paired.verdict(paired.compare("rmse", "regression", pd.Series(y), bad, good), False, 0) is False


# ---------------------------------------------------------------- calibration


def test_ece_and_brier_on_known_probabilities():
    # always 0.9 sure and right 90% of the time: calibrated; right 60%: ECE 0.3
    y = np.zeros(100, dtype=int)
    proba = np.tile([0.9, 0.1], (100, 1))
    y[:10] = 1
    assert calibration.ece(y, proba) == pytest.approx(0.0)
    y[:40] = 1
    assert calibration.ece(y, proba) == pytest.approx(0.3)
    assert calibration.brier(y, proba) == pytest.approx(np.mean((proba[:, 1] - y) ** 2))


def test_temperature_lowers_the_ece_of_overconfident_logits():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    logits = rng.normal(size=(2000, 4))
    logits[np.arange(2000), y] += 1.5
    hot = logits * 4  # the same ranking, four times too sure
    t = calibration.fit_temperature(hot[:1000], y[:1000])
    assert 2.2 < t < 3.2  # the calibrated logits are 1.5 x (the noise model), so T = 4 / 1.5
    softmax = lambda z: np.exp(z - z.max(1, keepdims=True)) / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)  # noqa: E731
    assert calibration.ece(y[1000:], softmax(hot[1000:] / t)) < calibration.ece(y[1000:], softmax(hot[1000:])) / 3


def test_a_fitted_temperature_is_kept_only_where_it_helps_rows_it_was_not_fitted_on():
    """choose_temperature: four-times-too-sure logits keep their T; calibrated logits (T fitted near 1)
    and a validation part with no error (its log loss falls as T -> 0: no minimum) keep T = 1."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4))
    logits[np.arange(300), y] += 1.5
    hot = calibration.choose_temperature(logits * 4, y)
    assert hot["kept"] and 2 < hot["fitted"] < 3.5 and hot["cv_log_loss_fitted"] < hot["cv_log_loss_1"]
    calm = calibration.choose_temperature(logits * 1.5, y)  # the calibrated logits of this noise model
    assert not calm["kept"] and calm["gain_interval"][0] <= 0
    right = rng.normal(size=(150, 4))
    right[np.arange(150), y[:150]] += 8  # every row right and sure
    perfect = calibration.choose_temperature(right, y[:150])
    assert perfect["no_minimum"] and not perfect["kept"] and perfect["fitted"] < 0.2


def test_calibrate_is_checked_against_the_modality_and_task(tmp_path):
    from trainflow.errors import SpecError
    from trainflow.spec import load_spec

    with pytest.raises(SpecError, match="'evaluate.calibrate' of tabular models must be one of none .*temperature"):
        load_spec(SPECS / "penguins.yaml", ["evaluate.calibrate=temperature"])
    with pytest.raises(SpecError, match="'tfidf_logistic' is a TF-IDF model"):
        load_spec(SPECS / "sms_spam.yaml", ["evaluate.calibrate=temperature", "model.name=tfidf_logistic"])
    with pytest.raises(SpecError, match="'minirocket' is a classical model"):
        load_spec(SPECS / "gunpoint.yaml", ["evaluate.calibrate=temperature", "model.name=minirocket"])
    assert load_spec(SPECS / "digits.yaml", ["evaluate.calibrate=temperature"]).evaluate.calibrate == "temperature"
    with pytest.raises(SpecError, match="calibration is for classifiers"):
        load_spec(SPECS / "penguins.yaml", ["task=regression", "data.target=body_mass_g",
                                            "evaluate.calibrate=sigmoid", "evaluate.primary=rmse",
                                            "validation.labels=null"])


# ---------------------------------------------------------------- one flow, on a real Prefect server


@pytest.mark.usefixtures("prefect_server")
def test_paired_promotion_flow_calibration_and_importance(tmp_path):
    """Champion on penguins rows 1-250, challenger on rows 100-344 with another seed and sigmoid
    calibration: the challenger's metrics.json and promotion artifact show both models scored on its
    test rows with the interval; its report has ECE, Brier, intervals and the importance table;
    predict applies the calibrated model; a champion that cannot score the rows falls back to point."""
    from prefect.client.orchestration import get_client

    raw = pd.read_csv(DATA / "penguins.csv")
    raw.iloc[:250].to_csv(tmp_path / "first.csv", index=False)
    raw.iloc[99:].to_csv(tmp_path / "second.csv", index=False)
    out = tmp_path / "runs"
    common = ["--out", out, "--set", "validation.min_rows=100"]
    assert run_cli("run", SPECS / "penguins.yaml", *common, "--set", f"data.path={tmp_path / 'first.csv'}")[0] == 0
    [champion] = complete_runs(out, "penguins")
    assert run_cli("run", SPECS / "penguins.yaml", *common, "--set", f"data.path={tmp_path / 'second.csv'}",
                   "--set", "seed=7", "--set", "evaluate.calibrate=sigmoid")[0] == 0
    [challenger] = [r for r in complete_runs(out, "penguins") if r != champion]
    summary = json.loads((challenger / "metrics.json").read_text())
    decision = summary["promotion"]
    assert decision["rule"] == "paired" and decision["champion_run_id"] == champion.name
    c = decision["paired"]
    assert c["rows"] == sum(v["support"] for v in summary["per_class"].values())  # the challenger's test rows
    assert c["new"] == pytest.approx(summary["metrics"]["balanced_accuracy"])
    assert c["difference"] == pytest.approx(c["new"] - c["old"])
    assert len(c["interval"]) == 2 and c["interval"][0] <= c["difference"] <= c["interval"][1]
    assert c["resamples"] >= 1000
    # intervals and calibration in metrics.json and the report
    for name in ("balanced_accuracy", "accuracy", "f1_macro"):
        low, high = summary["metrics"][f"{name}_ci"]
        assert low <= summary["metrics"][name] <= high
    report = (challenger / "report.md").read_text()
    for phrase in ("| ece |", "| brier |", "95% interval", "Reliability diagram", "calibration: sigmoid",
                   "Permutation importance (test split)", "Both models scored on the same"):
        assert phrase in report, phrase
    importance = report.split("## Permutation importance (test split)")[1].split("\n## ")[0]
    top = [line.split("|")[1].strip() for line in importance.splitlines() if line.startswith("| ")][1:3]
    assert all(t.startswith(("bill_", "flipper_")) for t in top), top
    with get_client(sync_client=True) as client:
        _, artifacts = flow_run_records(client, summary["flow_run_id"])
    shown = artifacts["penguins-promotion"].data
    assert champion.name in shown and "95% interval, low" in shown and f"same {c['rows']} test rows" in shown

    # predict with the calibrated model: probabilities from the calibrated last step
    raw.drop(columns=["species"]).head(4).to_csv(tmp_path / "new.csv", index=False)
    assert run_cli("predict", challenger, tmp_path / "new.csv", "--out", tmp_path / "pred.csv")[0] == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 4 and np.allclose(pred.filter(like="proba_").sum(1), 1)

    # a champion whose model file is damaged cannot score the rows: reported, point rule, no crash
    # (the same run again: split and fit come from the cache)
    assert promote.read_champion(out, "penguins")["run_id"] == challenger.name  # it knows Chinstrap; rows 1-250 lack it
    (challenger / "model.skops").write_bytes(b"not a model")
    assert run_cli("run", SPECS / "penguins.yaml", *common, "--set", f"data.path={tmp_path / 'second.csv'}",
                   "--set", "seed=7", "--set", "evaluate.calibrate=sigmoid")[0] == 0
    [third] = [r for r in complete_runs(out, "penguins") if r not in (champion, challenger)]
    decision = json.loads((third / "metrics.json").read_text())["promotion"]
    assert decision["rule"] == "point (fallback)" and "cannot score the new test rows" in decision["fallback"]
    assert "could not be scored" in (third / "report.md").read_text()


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_a_calibrated_pipeline_saves_and_loads_through_the_trust_checks(method, tmp_path):
    """The calibrated model is one more step of the saved skops pipeline; every type in it is trusted."""
    from trainflow import trust
    from trainflow.spec import load_spec
    from trainflow.tasks.tabular import calibrate
    from trainflow.tasks.tabular.modality import build_pipeline, trusted_types

    d = pd.read_csv(DATA / "penguins.csv").dropna()
    X, y = d[FULL + ["island"]], d.species.astype("category").cat.codes.to_numpy()
    spec = load_spec(SPECS / "penguins.yaml", [f"evaluate.calibrate={method}"])
    pipe = build_pipeline(spec, FULL, ["island"], 7)
    tr, va = calibrate.validation_part(y, 0)
    pipe.fit(X.iloc[tr], y[tr])
    note = calibrate.calibrate(pipe, X.iloc[va], y[va], method)
    assert f"calibration: {method}" in note and type(pipe.steps[-1][1]).__name__ == "CalibratedClassifierCV"
    trust.skops_io().dump(pipe, tmp_path / "model.skops")
    loaded = trust.load_skops(tmp_path / "model.skops", trusted_types())
    assert np.allclose(loaded.predict_proba(X.head(20)), pipe.predict_proba(X.head(20)))
