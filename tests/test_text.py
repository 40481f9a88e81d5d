"""The text modality: loaders, the CLI end to end with predict, each model, bad input, and the SMS demo's figures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import assert_fails_clearly, complete_runs, run_cli, write_spec
from trainflow.errors import DataError
from trainflow.tasks.text.loaders import TextFolderConfig, TextTableConfig, load_text_folder, load_text_table
from trainflow.tasks.text.modality import normalise

ROOT = Path(__file__).resolve().parents[1]
SPAMMY, HAMMY = ["win", "free", "prize", "cash", "claim"], ["see", "you", "at", "lunch", "home"]


def messages(n: int = 40) -> pd.DataFrame:
    """``n`` short messages, half spam (spammy words) and half ham, with an id column."""
    rows = []
    for i in range(n):
        words = SPAMMY if i % 2 else HAMMY
        rows.append({"id": i, "message": " ".join(words[(i + k) % 5] for k in range(4)) + f" n{i}",
                     "label": "spam" if i % 2 else "ham"})
    return pd.DataFrame(rows)


def text_spec(tmp_path: Path, data_file: Path, **extra) -> Path:
    raw = {"name": "msgs", "task": "classification",
           "data": {"loader": "text_table", "path": str(data_file), "text": "message", "target": "label",
                    "keep": ["id"]},
           "validation": {"min_rows": 4}, **extra}
    return write_spec(tmp_path / "spec.yaml", raw)


# ---------------------------------------------------------------- loaders (no server)


def test_text_table_reads_unquoted_tsv_keeps_columns_and_normalises(tmp_path):
    path = tmp_path / "m.tsv"
    path.write_text('label\tsms\tid\nham\t"Hi" there  ＡＢ\t1\nspam\tWIN now\t2\n', encoding="utf-8")
    df = load_text_table(TextTableConfig(path=str(path), text="sms", target="label", keep=["id"], quoting="none"))
    assert list(df.columns) == ["text", "label", "id"]
    assert df["text"].tolist() == ['"Hi" there  ＡＢ', "WIN now"]  # quote marks are text
    assert normalise(df["text"]) == ['"hi" there ab', "win now"]  # NFKC, lowercase, one space


def test_text_table_invalid_utf8_names_the_file_and_data_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.csv.*not valid utf-8.*data.encoding"):
        load_text_table(TextTableConfig(path=str(path), target="label"))
    df = load_text_table(TextTableConfig(path=str(path), target="label", encoding="latin-1"))
    assert df["text"].tolist() == ["café"]


def test_text_folder_labels_from_subfolders(tmp_path):
    for label, texts in (("spam", ["win cash", "free prize"]), ("ham", ["see you"])):
        (tmp_path / label).mkdir()
        for i, t in enumerate(texts):
            (tmp_path / label / f"{i}.txt").write_text(t)
    df = load_text_folder(TextFolderConfig(path=str(tmp_path)))
    assert sorted(zip(df["label"], df["text"])) == [("ham", "see you"), ("spam", "free prize"), ("spam", "win cash")]
    assert set(df["file"]) == {"ham/0.txt", "spam/0.txt", "spam/1.txt"}
    with pytest.raises(DataError, match="no class subfolders"):
        load_text_folder(TextFolderConfig(path=str(tmp_path / "ham")))


# ---------------------------------------------------------------- end to end (server)


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("model", ["tfidf_logistic", "tfidf_svm", "tfidf_nb"])
def test_text_pipeline_runs_and_predicts_new_texts(tmp_path, capsys, model):
    unquoted = model == "tfidf_nb"  # this one trains on an unquoted TSV (quote marks are text)
    data = tmp_path / ("msgs.tsv" if unquoted else "msgs.csv")
    messages().to_csv(data, index=False, sep="\t" if unquoted else ",")
    spec = text_spec(tmp_path, data, model={"name": model},
                     preprocess={"text": {"analyzer": "char_wb" if model == "tfidf_nb" else "word",
                                          "ngram_min": 1, "ngram_max": 3}})
    if unquoted:
        spec.write_text(spec.read_text().replace("keep:", "quoting: none\n  keep:"))
    out = tmp_path / "runs"
    rc, err = run_cli("run", spec, "--out", out, capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(out, "msgs")
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert metrics["accuracy"] == 1.0 and metrics["pr_auc"] == 1.0 and metrics["f1_spam"] == 1.0
    assert {"model.skops", "vocabulary.json", "schema.json"} <= {p.name for p in run.iterdir()}
    new = tmp_path / "new.csv"
    pd.DataFrame({"id": [7, 8], "message": ["claim your free cash prize", "see you at home for lunch"]}).to_csv(new, index=False)
    rc, err = run_cli("predict", run, new, "--out", tmp_path / "pred.csv", capsys=capsys)
    assert rc == 0, err
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert pred["id"].tolist() == [7, 8] and pred["prediction"].tolist() == ["spam", "ham"]
    assert ((pred["proba_spam"] + pred["proba_ham"]).round(6) == 1).all()
    if unquoted:  # read as the training file was: a quote opens no field; a blank line is an empty document
        lines = ['claim "your free cash', "", "   ", 'see you at "home" for lunch', "win a prize"]
        (tmp_path / "new.tsv").write_text("message\n" + "\n".join(lines) + "\n")
        rc, err = run_cli("predict", run, tmp_path / "new.tsv", "--out", tmp_path / "pred.csv", capsys=capsys)
        pred = pd.read_csv(tmp_path / "pred.csv")
        assert rc == 0 and len(pred) == 5, (err, pred)
        assert pred["prediction"][[0, 3, 4]].tolist() == ["spam", "ham", "spam"]
        assert "2 of 5 documents of" in err and "(rows 2, 3)" in err, err
    if model == "tfidf_logistic":  # an empty text is predicted, with a warning naming its row
        pd.DataFrame({"id": [7, 8], "message": ["claim your free cash prize", "  "]}).to_csv(new, index=False)
        rc, err = run_cli("predict", run, new, "--out", tmp_path / "pred.csv", capsys=capsys)
        assert rc == 0 and "1 of 2 documents of" in err and "empty after normalisation (rows 2)" in err, err
    (run / "vocabulary.json").write_text('{"win": 0}')  # JSON, but not a list of terms
    rc, err = run_cli("predict", run, new, "--out", tmp_path / "pred2.csv", capsys=capsys)
    assert rc == 3 and "vocabulary.json' is damaged" in err and "Traceback" not in err
    assert not (tmp_path / "pred2.csv").exists()
    for schema in ("{}", "[]", '{"lowercase": "yes", "text_column": "message", "classes": ["ham", "spam"]}',
                   '{"lowercase": true, "text_column": "message", "classes": ["ham", "spam"], '
                   '"reading": {"encoding": "nope-enc"}}'):
        (run / "schema.json").write_text(schema)  # JSON of another shape: a damaged file, not a KeyError
        rc, err = run_cli("predict", run, new, "--out", tmp_path / "pred2.csv", capsys=capsys)
        assert rc == 3 and "schema.json' is damaged (not a trainflow text schema" in err and "Traceback" not in err, err


@pytest.mark.usefixtures("prefect_server")
def test_report_lists_misclassified_texts(tmp_path, capsys):
    df = messages(60)
    df.loc[df.index % 10 == 1, "label"] = "ham"  # spammy texts labelled ham: some test texts are misclassified
    data = tmp_path / "msgs.csv"
    df.to_csv(data, index=False)
    out = tmp_path / "runs"
    # a fixed recipe: tfidf_auto's character n-grams classify every test text of this data right
    rc, err = run_cli("run", text_spec(tmp_path, data, model={"name": "tfidf_logistic"}), "--out", out, capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(out, "msgs")
    report = (run / "report.md").read_text()
    section = report.split("## Misclassified texts (most confident first)")[1]
    assert "| spam |" in section or "| ham |" in section  # a row: text | true | predicted | probability


# ---------------------------------------------------------------- bad input (server)


def bad_case(tmp_path: Path, content: bytes, **data) -> Path:
    path = tmp_path / "msgs.csv"
    path.write_bytes(content)
    raw = {"name": "msgs", "task": "classification",
           "data": {"loader": "text_table", "path": str(path), "text": "message", "target": "label", **data},
           "validation": {"min_rows": 4}}
    return write_spec(tmp_path / "spec.yaml", raw)


GOOD = messages().to_csv(index=False).encode()
CASES = {
    "empty file": (b"", 3, ["msgs.csv", "is empty"]),
    "no text column": (GOOD.replace(b"message", b"body"), 3, ["msgs.csv", "no column 'message'", "data.text"]),
    "one class": (messages().assign(label="ham").to_csv(index=False).encode(), 4,
                  ["expect_column_unique_value_count_to_be_between", "label", "at least two classes"]),
    "texts all empty after normalisation": (messages().assign(message=" \t ").to_csv(index=False).encode(), 3,
                                            ["msgs.csv", "Every text of the column 'message'", "empty"]),
    "some texts empty": (messages().assign(message=lambda d: d["message"].where(d.index % 7 > 0, "   "))
                         .to_csv(index=False).encode(), 4, ["tokens", "text_validation.min_tokens"]),
    "invalid utf-8": (GOOD + "caf\xe9 now,ham,99\n".encode("latin-1"), 3, ["msgs.csv", "not valid utf-8", "data.encoding"]),
    "missing labels": (GOOD + b"99,hello there,\n", 4, ["label", "every document needs a label"]),
}


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("case", CASES)
def test_bad_text_input_fails_clearly(tmp_path, capsys, case):
    content, code, phrases = CASES[case]
    assert_fails_clearly(bad_case(tmp_path, content), tmp_path / "runs", "msgs", code, phrases, capsys)


def test_spec_problems_of_the_text_section(tmp_path, capsys):
    data = tmp_path / "msgs.csv"
    messages().to_csv(data, index=False)
    spec = text_spec(tmp_path, data, model={"name": "tfidf_nb"},
                     preprocess={"text": {"ngram_min": 3, "ngram_max": 1, "class_weight": True}})
    rc, err = run_cli("run", spec, "--out", tmp_path / "runs", capsys=capsys)
    assert rc == 2
    assert "'preprocess.text.ngram_min' (3) is above 'preprocess.text.ngram_max' (1)" in err
    assert "model 'tfidf_nb' takes no class weights" in err and "Traceback" not in err


# ---------------------------------------------------------------- the demo's figures (server, ~20 s)


@pytest.mark.usefixtures("prefect_server")
def test_sms_spam_demo_reaches_its_targets(tmp_path, capsys):
    rc, err = run_cli("demo", "text", "--out", tmp_path, capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(tmp_path, "sms_spam")
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["metrics"]["accuracy"] >= 0.98 and summary["metrics"]["f1_spam"] >= 0.93
    assert summary["per_class"]["spam"]["support"] == 187  # stratified 25% of 747 spam


def test_a_class_below_the_minimum_share_is_named(tmp_path):
    from trainflow.errors import ValidationFailed
    from trainflow.spec import spec_from_dict
    from trainflow.tasks.text import modality as text

    df = messages(200)
    df.loc[5, "label"] = "Ham "  # a stray spelling: one document of 200
    df.to_csv(tmp_path / "m.csv", index=False)
    config = TextTableConfig(path=str(tmp_path / "m.csv"), text="message", target="label")
    ref = text.store(load_text_table(config), str(tmp_path), "t" * 64, config)
    spec = spec_from_dict({"name": "m", "task": "classification", "data": {"loader": "text_table", "path": config.path,
                                                                            "text": "message", "target": "label"}})
    with pytest.raises(ValidationFailed, match=r"min_class_share is 0.01 \(classes below it: 'Ham ' \(0.50%\)\)"):
        text.validate(ref, spec, None)
