"""Text defaults chosen by the data (``tfidf_auto``) and length checks that tolerate a few bad documents."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_fails_clearly, complete_runs, run_cli
from tests.test_text import messages, text_spec
from trainflow.spec import load_spec
from trainflow.tasks.text import select


def suffix_texts(n: int = 120, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Texts whose class is a word ending ('...ing' vs '...ed') on words never seen twice: word
    n-grams cannot generalise, character n-grams can."""
    rng = np.random.default_rng(seed)
    texts, y = [], []
    for i in range(n):
        label = i % 2
        stems = ["".join(rng.choice(list("bcdfgklmnprst"), 4)) + f"{i}x{k}" for k in range(3)]
        texts.append(" ".join(s + ("ing" if label else "ed") for s in stems))
        y.append(label)
    return texts, np.array(y)


def test_auto_prefers_character_ngrams_where_only_they_generalise(tmp_path):
    data = tmp_path / "msgs.csv"
    messages().to_csv(data, index=False)
    spec = load_spec(text_spec(tmp_path, data, evaluate={"primary": "accuracy"}))
    assert spec.model.name == "tfidf_auto" and spec.model.options() == {"metric": "accuracy"}  # the default, filled in
    texts, y = suffix_texts()
    choice = select.choose(texts, y, ["ed", "ing"], spec)
    assert choice["features"] in ("char", "both") and choice["metric"] == "accuracy" and choice["value"] > 0.9
    assert len(choice["table"]) == 12 and choice["folds"] == 3
    word = max(r["accuracy"] for r in choice["table"] if r["features"] == "word")
    assert word < choice["value"]  # the table holds every candidate's own CV score
    assert not choice["class_weight"]  # balanced classes and accuracy: no weights
    assert select.choose(texts, y, ["ed", "ing"], spec) == choice  # seeded: the same choice again


def test_class_weights_follow_the_metric_and_the_class_counts():
    even, skewed = np.array([0, 1] * 10), np.array([0] * 16 + [1] * 4)
    assert select.wants_balance("f1_macro", even, "auto")[0]
    assert not select.wants_balance("accuracy", even, "auto")[0]
    assert select.wants_balance("accuracy", skewed, "auto") == (True, "the classes are imbalanced (16 vs 4 training texts)")
    assert not select.wants_balance("f1_macro", skewed, "none")[0]


def test_a_bad_metric_and_imbalance_options_are_spec_errors(tmp_path, capsys):
    data = tmp_path / "msgs.csv"
    messages().to_csv(data, index=False)
    spec = text_spec(tmp_path, data, model={"name": "tfidf_auto", "metric": "f1_macr"},
                     preprocess={"text": {"oversample": True}})
    rc, err = run_cli("run", spec, "--out", tmp_path / "runs", capsys=capsys)
    assert rc == 2 and "Traceback" not in err
    assert "'model.metric' of tfidf_auto must be one of" in err and "did you mean 'f1_macro'" in err
    assert "'preprocess.text.oversample' set with model 'tfidf_auto'" in err


@pytest.mark.usefixtures("prefect_server")
def test_auto_run_reports_its_choice_and_predicts_with_word_and_character_features(tmp_path, capsys):
    data = tmp_path / "msgs.csv"
    messages(60).to_csv(data, index=False)
    spec = text_spec(tmp_path, data, model={"name": "tfidf_auto", "features": ["both"], "folds": 3})
    out = tmp_path / "runs"
    rc, err = run_cli("run", spec, "--out", out, capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(out, "msgs")
    summary = json.loads((run / "metrics.json").read_text())
    selection = summary["selection"]
    assert selection["method"] == "cv" and selection["metric"] == "balanced_accuracy" and selection["folds"] == 3
    assert selection["chosen"]["features"] == "both" and 0 < selection["value"] <= 1
    report = (run / "report.md").read_text()
    assert "## Model selection: 3-fold cross-validation on the training split" in report
    assert "tfidf_auto chose word 1-2-grams + character 2-5-grams" in report
    vocabulary = json.loads((run / "vocabulary.json").read_text())
    assert set(vocabulary) == {"word", "char"} and "win" in vocabulary["word"] and " wi" in vocabulary["char"]
    new = tmp_path / "new.csv"
    pd.DataFrame({"id": [7, 8], "message": ["claim your free cash prize", "see you at home for lunch"]}).to_csv(
        new, index=False)
    rc, err = run_cli("predict", run, new, "--out", tmp_path / "pred.csv", capsys=capsys)
    assert rc == 0, err
    assert pd.read_csv(tmp_path / "pred.csv")["prediction"].tolist() == ["spam", "ham"]
    (run / "vocabulary.json").write_text(json.dumps({"word": vocabulary["word"]}))  # the char list is gone
    rc, err = run_cli("predict", run, new, "--out", tmp_path / "pred2.csv", capsys=capsys)
    assert rc == 3 and "vocabulary.json' is damaged" in err and "'word', 'char'" in err


def corpus(n: int, empty: int) -> pd.DataFrame:
    """``n`` messages, ``empty`` of them blank (every ``n // empty``-th from row 5)."""
    df = messages(n)
    rows = [5 + i * (n // empty) for i in range(empty)]
    df.loc[rows, "message"] = "  "
    return df


@pytest.mark.usefixtures("prefect_server")
def test_a_few_empty_texts_are_left_out_of_training_with_a_warning(tmp_path, capsys, caplog):
    data = tmp_path / "msgs.csv"
    corpus(2000, 8).to_csv(data, index=False)
    spec = text_spec(tmp_path, data, model={"name": "tfidf_logistic"},
                     text_validation={"max_duplicate_share": 1.0})
    out = tmp_path / "runs"
    rc, err = run_cli("run", spec, "--out", out, capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(out, "msgs")
    notes = [n for n in json.loads((run / "metrics.json").read_text())["notes"] + [
        line for line in (run / "report.md").read_text().splitlines()] if "left out of training" in n]
    assert notes, "the dropped rows are not reported"
    note = notes[0]
    # the blank rows of the training part, named by their 1-based row in the file
    blank = {f"row {5 + i * 250 + 1}" for i in range(8)}
    named = {part.strip() for part in note.split(": ")[-1].split(" (e.g.")[0].split(",")}
    assert named and named <= blank and "min_tokens 1" in note
    # the warning, in the run's log (caplog: in a full session Prefect's console handler writes to the
    # stream of the test that configured logging first)
    assert "left out of training" in err + caplog.text


@pytest.mark.usefixtures("prefect_server")
def test_too_many_empty_texts_fail_validation(tmp_path, capsys):
    data = tmp_path / "msgs.csv"
    corpus(2000, 100).to_csv(data, index=False)  # 5%
    spec = text_spec(tmp_path, data, model={"name": "tfidf_logistic"}, text_validation={"max_duplicate_share": 1.0})
    assert_fails_clearly(spec, tmp_path / "runs", "msgs", 4, ["tokens", "100 of 2000", "99.5%"], capsys)


@pytest.mark.usefixtures("prefect_server")
def test_strict_length_checks_fail_on_a_single_empty_text(tmp_path, capsys):
    data = tmp_path / "msgs.csv"
    corpus(200, 1).to_csv(data, index=False)
    spec = text_spec(tmp_path, data, model={"name": "tfidf_logistic"},
                     text_validation={"max_duplicate_share": 1.0, "strict": True})
    assert_fails_clearly(spec, tmp_path / "runs", "msgs", 4, ["tokens", "1 of 200", "100.0%"], capsys)
