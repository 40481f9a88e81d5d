"""Multi-label text and audio (task: multilabel) by spec change: labels as 0/1 columns or one
delimited column, TF-IDF binary relevance, neural text and audio networks with one sigmoid output
per label, thresholds saved and applied at predict; the spec and data errors of multi-label labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from tests.helpers import assert_fails_clearly, complete_runs, run_cli, write_spec  # noqa: E402
from tests.test_multilabel_neural import exported, stages, trivial_micro_f1  # noqa: E402
from trainflow.errors import DataError, SpecError  # noqa: E402
from trainflow.spec import spec_from_dict  # noqa: E402

TOPICS = {"sport": ["goal", "match", "team", "score", "league"],
          "politics": ["vote", "party", "minister", "law", "election"],
          "tech": ["code", "chip", "software", "robot", "network"],
          "food": ["recipe", "bread", "cheese", "soup", "spice"]}
FILLER = ["the", "a", "today", "news", "about", "some", "new", "big", "our", "week"]
TONES = {"low": 300.0, "mid": 800.0, "high": 2000.0}


def corpus(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Short documents of filler words plus two words of each topic they are about (each topic on
    with probability 0.4, at least one per document)."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((n, len(TOPICS))) < 0.4).astype(int)
    Y[Y.sum(1) == 0, 0] = 1
    texts = []
    for row in Y:
        words = list(rng.choice(FILLER, 6))
        for j, words_of in enumerate(TOPICS.values()):
            words += list(rng.choice(words_of, 2)) if row[j] else []
        rng.shuffle(words)
        texts.append(" ".join(words))
    return texts, Y


def write_corpus(path: Path, n: int = 160) -> np.ndarray:
    texts, Y = corpus(n)
    df = pd.DataFrame({"id": range(n), "body": texts, **{t: Y[:, j] for j, t in enumerate(TOPICS)}})
    df["tags"] = ["|".join(t for j, t in enumerate(TOPICS) if row[j]) for row in Y]
    df.to_csv(path, index=False)
    return Y


def text_spec(path: Path, labels: dict, **extra) -> dict:
    return {"text_validation": {"max_duplicate_share": 1.0}, "split": {"test_size": 0.25},
            "data": {"loader": "text_table", "path": str(path), "text": "body", "keep": ["id"], **labels}, **extra}


def chords(folder: Path, n: int, seed: int = 0, rate: int = 8000, seconds: float = 0.25) -> np.ndarray:
    """Clips ``c<i>.wav`` whose labels are the tones they hold (each on with probability 0.45), with noise."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    Y = (rng.random((n, len(TONES))) < 0.45).astype(int)
    Y[Y.sum(1) == 0, 0] = 1
    t = np.arange(int(rate * seconds)) / rate
    folder.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(Y):
        wave = 0.05 * rng.normal(size=len(t))
        for j, hz in enumerate(TONES.values()):
            if row[j]:
                wave += 0.3 * np.sin(2 * np.pi * hz * rng.uniform(0.97, 1.03) * t + rng.uniform(0, 2 * np.pi))
        sf.write(folder / f"c{i:03d}.wav", wave.astype(np.float32), rate, subtype="PCM_16")
    return Y


# ---------------------------------------------------------------- text


def test_tfidf_binary_relevance_learns_the_topics_and_predict_applies_its_tuned_thresholds(tmp_path):
    Y = write_corpus(tmp_path / "docs.csv")
    spec, mod, split, model, ev = stages(text_spec(tmp_path / "docs.csv", {"targets": list(TOPICS)},
                                                   multilabel={"threshold": "tuned"}), tmp_path)
    assert spec.model.name == "tfidf_logistic" and split.meta["label_counts"]["test"].keys() == set(TOPICS)
    assert ev.metrics["micro_f1"] >= 0.9 > trivial_micro_f1(Y) + 0.25, ev.metrics
    assert ev.metrics["hamming_loss"] <= 0.08 and "Per-label scores" in ev.plots
    assert "split by iterative stratification over the labels" in ev.notes

    run = exported(mod, model, tmp_path / "run")
    schema = json.loads((run / "schema.json").read_text())
    assert schema["labels"] == list(TOPICS) and len(schema["thresholds"]) == 4
    assert schema["thresholds"] != [0.5] * 4  # tuned on a carve-out, saved
    texts, new_Y = corpus(40, seed=9)
    pd.DataFrame({"body": texts, "id": range(40)}).to_csv(tmp_path / "new.csv", index=False)
    out = mod.predict(run, tmp_path / "new.csv")
    assert list(out.columns) == ["id", *TOPICS, *[f"proba_{t}" for t in TOPICS]]
    proba = out[[f"proba_{t}" for t in TOPICS]].to_numpy()
    np.testing.assert_array_equal(out[list(TOPICS)].to_numpy(), (proba >= np.array(schema["thresholds"])).astype(int))
    assert (out[list(TOPICS)].to_numpy() == new_Y).mean() >= 0.9


def test_a_neural_text_model_learns_topics_from_one_delimited_label_column(tmp_path, capsys):
    Y = write_corpus(tmp_path / "docs.csv")
    spec, mod, _, model, ev = stages(text_spec(
        tmp_path / "docs.csv", {"target": "tags", "separator": "|"},
        model={"name": "text_cnn", "embedding_dim": 16, "hidden": 16},
        train={"epochs": 12, "batch_size": 16, "lr": 0.01, "device": "cpu"}), tmp_path)
    labels = sorted(TOPICS)  # a delimited column's labels, sorted
    assert ev.metrics["micro_f1"] >= 0.9 > trivial_micro_f1(Y) + 0.25, ev.metrics
    assert set(ev.per_class) == set(labels) and "Learning curves" in ev.plots
    run = exported(mod, model, tmp_path / "run")
    config = json.loads((run / "model.json").read_text())
    assert config["task"] == "multilabel" and config["labels"] == labels and config["thresholds"] == [0.5] * 4
    pd.DataFrame({"body": ["goal match vote law", "bread soup"], "id": [1, 2]}).to_csv(tmp_path / "new.csv", index=False)
    out = mod.predict(run, tmp_path / "new.csv")
    assert list(out.columns) == ["id", *labels, *[f"proba_{t}" for t in labels]]
    assert out[labels].to_dict("records") == [{"food": 0, "politics": 1, "sport": 1, "tech": 0},
                                              {"food": 1, "politics": 0, "sport": 0, "tech": 0}]
    # a new file whose label column names a label training never saw: predicted all the same, and said
    capsys.readouterr()
    pd.DataFrame({"body": ["goal match", "rain sun"], "id": [1, 2], "tags": ["sport", "weather|food"]}).to_csv(
        tmp_path / "labelled.csv", index=False)
    assert mod.predict(run, tmp_path / "labelled.csv")[labels].shape == (2, 4)
    err = capsys.readouterr().err
    assert ("the input file" in err and "labelled.csv' has labels in column 'tags' never seen in training: 'weather'"
            in err and "it knows food, politics, sport, tech" in err), err


# ---------------------------------------------------------------- audio


def test_an_audio_network_learns_which_tones_a_clip_holds_from_manifest_label_columns(tmp_path):
    Y = chords(tmp_path / "clips", 120)
    pd.DataFrame({"file": [f"c{i:03d}.wav" for i in range(120)], **{k: Y[:, j] for j, k in enumerate(TONES)}}
                 ).to_csv(tmp_path / "clips" / "manifest.csv", index=False)
    spec, mod, _, model, ev = stages({
        "data": {"loader": "audio_manifest", "path": str(tmp_path / "clips" / "manifest.csv"),
                 "targets": list(TONES), "sample_rate": 8000},
        "preprocess": {"audio": {"duration": 0.25, "n_mels": 16, "n_fft": 256, "hop_length": 64}},
        "model": {"width": 4, "dense": 16}, "split": {"test_size": 0.25},
        "train": {"epochs": 8, "batch_size": 16, "lr": 0.01, "device": "cpu"}}, tmp_path)
    assert spec.model.name == "audio_cnn"
    assert ev.metrics["micro_f1"] >= 0.9 > trivial_micro_f1(Y) + 0.2, ev.metrics
    run = exported(mod, model, tmp_path / "run")
    config = json.loads((run / "model.json").read_text())
    assert config["labels"] == list(TONES) and config["thresholds"] == [0.5] * 3
    new_Y = chords(tmp_path / "new", 20, seed=5)
    out = mod.predict(run, tmp_path / "new")
    assert list(out.columns) == ["file", *TONES, *[f"proba_{k}" for k in TONES]]
    assert (out[list(TONES)].to_numpy() == new_Y).mean() >= 0.9


# ---------------------------------------------------------------- spec and data errors


def test_multilabel_label_options_that_do_not_fit_are_spec_errors():
    folder = {"name": "x", "task": "multilabel", "data": {"loader": "text_folder", "path": "docs"}}
    with pytest.raises(SpecError, match="'task' is 'multilabel', so give the labels.*'text_table' loader"):
        spec_from_dict(folder)
    table = {"name": "x", "data": {"loader": "text_table", "path": "d.csv", "targets": ["a", "b"]}}
    with pytest.raises(SpecError, match="'data.targets' is for multi-label labels; set 'task: multilabel'"):
        spec_from_dict(table)
    with pytest.raises(SpecError) as exc:
        spec_from_dict({**table, "task": "multilabel", "preprocess": {"text": {"oversample": True}},
                        "data": {"loader": "text_table", "path": "d.csv", "separator": "|"}})
    assert "'preprocess.text.oversample' repeats texts" in str(exc.value)
    assert "'data.separator' splits the labels of 'data.target'" in str(exc.value)
    with pytest.raises(SpecError, match="'data.label' with 'data.separator'.*'audio_manifest' loader"):
        spec_from_dict({"name": "x", "task": "multilabel", "data": {"loader": "audio_folder", "path": "clips"}})
    assert spec_from_dict({**table, "task": "multilabel"}).model.name == "tfidf_logistic"


def test_a_text_label_column_that_is_not_a_number_is_a_data_error_naming_it(tmp_path):
    from trainflow.tasks.text.loaders import TextTableConfig, load_text_table

    pd.DataFrame({"body": ["a b", "c d"], "spam": ["1", "yes"]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match=r"label column 'spam' \(data.targets\) of '.*d.csv' holds 'yes' in row 2"):
        load_text_table(TextTableConfig(path=str(tmp_path / "d.csv"), text="body", targets=["spam"]))


@pytest.mark.usefixtures("prefect_server")
def test_a_multilabel_text_spec_runs_and_predicts_from_the_cli_and_a_label_value_of_2_fails_validation(
        tmp_path, capsys):
    write_corpus(tmp_path / "docs.csv", n=80)
    spec = write_spec(tmp_path / "s.yaml", {"name": "mltext", "task": "multilabel", "validation": {"min_rows": 5},
                                            **text_spec(tmp_path / "docs.csv", {"target": "tags", "separator": "|"})})
    rc, err = run_cli("run", spec, "--out", tmp_path / "out", capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(tmp_path / "out", "mltext")
    assert {"hamming_loss", "micro_f1", "samples_f1"} <= set(json.loads((run / "metrics.json").read_text())["metrics"])
    assert "Per-label scores" in (run / "report.md").read_text()
    pd.DataFrame({"body": ["goal match", "soup bread"], "id": [1, 2], "tags": ["sport|weather", "food"]}).to_csv(
        tmp_path / "new.csv", index=False)
    rc, err = run_cli("predict", run, tmp_path / "new.csv", "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 0, err
    assert "'weather'" in err and "never seen in training" in err and "new.csv" in err  # reported, not fatal
    assert list(pd.read_csv(tmp_path / "p.csv").columns) == ["id", *sorted(TOPICS),
                                                             *[f"proba_{t}" for t in sorted(TOPICS)]]

    df = pd.read_csv(tmp_path / "docs.csv")
    df.loc[3, "food"] = 2
    df.to_csv(tmp_path / "bad.csv", index=False)
    bad = write_spec(tmp_path / "b.yaml", {"name": "badtext", "task": "multilabel", "validation": {"min_rows": 5},
                                           **text_spec(tmp_path / "bad.csv", {"targets": list(TOPICS)})})
    assert_fails_clearly(bad, tmp_path / "out", "badtext", 4, ["'label food'", "a multi-label label column holds 0 or 1"],
                         capsys)
