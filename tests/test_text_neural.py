"""The neural text models: vocabulary (training texts only), word vectors, every network and pooling,
imbalance handling on the training split only, the CLI end to end with predict, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_fails_clearly, complete_runs, run_cli, write_spec
from trainflow import modalities
from trainflow.errors import DataError
from trainflow.spec import spec_from_dict
from trainflow.tasks.common import load
from trainflow.tasks.text.vocab import OOV, PAD, Vocabulary, read_vectors

SPAMMY = ["win", "free", "prize", "cash", "claim", "urgent", "call", "now"]
HAMMY = ["see", "you", "at", "lunch", "home", "later", "mum", "dinner"]


def corpus(n: int = 240, spam_share: float = 0.5, seed: int = 0) -> pd.DataFrame:
    """``n`` short messages of 4-9 words: spam from spammy words, ham from hammy ones, a shared filler word each."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        spam = rng.random() < spam_share
        words = list(rng.choice(SPAMMY if spam else HAMMY, rng.integers(3, 8))) + [f"w{rng.integers(0, 30)}"]
        rows.append({"id": i, "message": " ".join(words), "label": "spam" if spam else "ham"})
    return pd.DataFrame(rows)


def raw_spec(data: Path, **sections) -> dict:
    """A spec of a neural text model on ``data`` (2 epochs, one thread); ``sections`` replace the defaults."""
    return {"name": "msgs", "task": "classification",
            "data": {"loader": "text_table", "path": str(data), "text": "message", "target": "label", "keep": ["id"]},
            "validation": {"min_rows": 4}, "text_validation": {"max_duplicate_share": 1.0},
            "model": {"name": "text_gru", "embedding_dim": 8, "hidden": 8},
            "train": {"epochs": 8, "batch_size": 32, "lr": 0.01, "num_threads": 1, "checkpoint": False},
            **sections}


def stages(tmp_path: Path, raw: dict):
    """Load, split and the spec, without Prefect: ``(spec, modality, split, cache)``."""
    spec = spec_from_dict(raw)
    mod, cache = modalities.get(spec.modality), str(tmp_path / "cache")
    data = load.load(spec.data, cache, spec.modality)
    return spec, mod, mod.split(data, spec.training_view(), cache), cache


@pytest.fixture
def msgs(tmp_path) -> Path:
    path = tmp_path / "msgs.csv"
    corpus().to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- vocabulary


def test_vocabulary_max_size_min_freq_max_length_and_oov():
    texts = ["a a a b b c", "a b d", "e"]  # counts: a 4, b 3, c 1, d 1, e 1
    vocab = Vocabulary(max_size=None, min_freq=2).fit(texts)
    assert vocab.tokens_ == [PAD, OOV, "a", "b"] and vocab.dropped_ == 3
    assert Vocabulary(max_size=1).fit(texts).tokens_ == [PAD, OOV, "a"]
    assert Vocabulary().fit(texts).tokens_ == [PAD, OOV, "a", "b", "c", "d", "e"]  # ties by token
    ids, lengths = Vocabulary(min_freq=2, max_length=3).fit(texts).transform(["a c b a", "", "zz"])
    assert ids.tolist() == [[2, 1, 3], [1, 0, 0], [1, 0, 0]]  # cut at 3; unknown and empty texts are <oov>
    assert lengths.tolist() == [3, 1, 1]
    char = Vocabulary(tokenizer="char", char_ngram=3).fit(["abc"])
    assert set(char.tokens_[2:]) == {" ab", "abc", "bc "}  # scikit-learn's char_wb n-grams
    again = Vocabulary.from_state(json.loads(json.dumps(char.state())))
    assert again.transform(["abc"])[0].tolist() == char.transform(["abc"])[0].tolist()


def test_vocabulary_is_fitted_on_the_training_texts_only(tmp_path):
    df = corpus()
    df.loc[df.index[-60:], "message"] += " onlyhere"  # some texts carry a word; check where it lands
    df.to_csv(tmp_path / "msgs.csv", index=False)
    spec, mod, split, cache = stages(tmp_path, raw_spec(tmp_path / "msgs.csv", split={"test_size": 0.5, "seed": 1}))
    from trainflow.refs import read_parquet
    from trainflow.tasks.text.neural_text import prepare

    train, test = read_parquet(split.train.path), read_parquet(split.test.path)
    word_in = {name: part["text"].str.contains("onlyhere").any() for name, part in (("train", train), ("test", test))}
    assert word_in["test"] and word_in["train"]  # the split put the word on both sides
    tokens = set(prepare(split, spec).config["vocabulary"]["tokens"])
    assert "onlyhere" in tokens
    # now only the test split has it: the vocabulary must not know it
    test_only = train[~train["text"].str.contains("onlyhere")]
    from trainflow.refs import DataRef, SplitRef, store_parquet

    path = store_parquet(test_only, cache, "trainonly")
    split = SplitRef(train=DataRef(path=str(path), digest="trainonly", modality="text", meta=split.train.meta),
                     test=split.test, meta=split.meta)
    prepared = prepare(split, spec)
    assert "onlyhere" not in prepared.config["vocabulary"]["tokens"]
    vocab = Vocabulary.from_state(prepared.config["vocabulary"])
    assert vocab.transform(["onlyhere"])[0].tolist() == [[1]]  # out of vocabulary


# ---------------------------------------------------------------- word vectors


def glove(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_glove_vectors_initialise_the_embedding_frozen_or_fine_tuned(tmp_path, msgs):
    vectors = glove(tmp_path / "vec.txt", ["win 1 0 0 0", "lunch 0 1 0 0", "absent 9 9 9 9"])
    for freeze in (True, False):
        raw = raw_spec(msgs, preprocess={"tokens": {"vectors": str(vectors), "freeze_vectors": freeze}},
                       model={"name": "text_gru", "hidden": 8})
        spec, mod, split, cache = stages(tmp_path / str(freeze), raw)
        model = mod.fit(split, spec.training_view(), cache)
        assert any("4-d word vectors from 'vec.txt' for 2 of" in s and ("frozen" if freeze else "fine-tuned") in s
                   for s in model.meta["steps"])
        from trainflow.tasks.text.neural_text import load_model

        net, config, vocab = load_model(model.path)
        weight = net.embedding.weight.detach().numpy()
        assert weight.shape[1] == 4  # the file's dimension, not model.embedding_dim (8)
        win, lunch = vocab.index_["win"], vocab.index_["lunch"]
        assert np.array_equal(weight[win], [1, 0, 0, 0]) == freeze
        assert np.allclose(weight[lunch], [0, 1, 0, 0], atol=0.5)  # fine-tuning moves it a little at most
        assert not weight[0].any()  # <pad> stays zero


@pytest.mark.parametrize("lines, phrase", [
    (["win 1 0 0", "lunch 0 1"], "Line 2 of the word-vectors file '.*vec.txt' is not in GloVe format .*expected "
                                 "a word and 3 numbers \\(as on the first line\\); got 2 values"),
    (["win 1 0 x"], "Line 1 .* expected numbers after the word"),
    (["win"], "Line 1 .* expected a word followed by its vector's numbers"),
    ([""], "holds no vectors"),
])
def test_bad_glove_file_names_the_line(tmp_path, lines, phrase):
    with pytest.raises(DataError, match=phrase):
        read_vectors(glove(tmp_path / "vec.txt", lines), {"win": 0})


def test_missing_glove_file_names_the_option(tmp_path):
    with pytest.raises(DataError, match=r"word-vectors file '.*nope.txt' does not exist.*preprocess.tokens.vectors"):
        read_vectors(tmp_path / "nope.txt", {})


def test_glove_dimension_must_match_an_explicit_embedding_dim(tmp_path, msgs):
    vectors = glove(tmp_path / "vec.txt", ["win 1 0 0 0"])
    spec, mod, split, cache = stages(tmp_path, raw_spec(msgs, preprocess={"tokens": {"vectors": str(vectors)}}))
    with pytest.raises(DataError, match="holds 4-d vectors but 'model.embedding_dim' is 8"):
        mod.fit(split, spec.training_view(), cache)


def test_editing_the_vectors_file_changes_the_model_key(tmp_path, msgs):
    from trainflow.cache_keys import model_key

    vectors = glove(tmp_path / "vec.txt", ["win 1 0 0 0"])
    spec, mod, split, cache = stages(tmp_path, raw_spec(msgs, preprocess={"tokens": {"vectors": str(vectors)}}))
    before = model_key(split, spec)
    glove(vectors, ["win 0 1 0 0"])
    assert model_key(split, spec) != before


# ---------------------------------------------------------------- every network and pooling


@pytest.mark.parametrize("model", ["text_gru", "text_lstm", "text_cnn"])
@pytest.mark.parametrize("pool", ["mean", "max", "attention"])
def test_each_network_and_pooling_trains_and_predicts(tmp_path, msgs, model, pool):
    raw = raw_spec(msgs, model={"name": model, "embedding_dim": 8, "hidden": 8, "pool": pool,
                                **({"bidirectional": False} if model == "text_lstm" else {})})
    spec, mod, split, cache = stages(tmp_path, raw)
    ref = mod.fit(split, spec.training_view(), cache)
    ev = mod.evaluate(ref, split, spec, str(tmp_path / "plots"))
    assert ev.metrics["accuracy"] >= 0.9, ev.metrics  # the words separate the classes
    assert {"f1_spam", "f1_ham", "pr_auc"} <= set(ev.metrics) and "Training history" in ev.tables
    run = tmp_path / "run"
    run.mkdir()
    assert mod.export(ref, str(run)) == ["model.safetensors", "model.json"]
    new = tmp_path / "new.csv"
    pd.DataFrame({"id": [7, 8], "message": ["claim free cash now", "see you at home for dinner"]}
                 ).to_csv(new, index=False)
    pred = mod.predict(run, new)
    assert pred["id"].tolist() == [7, 8] and pred["prediction"].tolist() == ["spam", "ham"]
    assert np.allclose(pred["proba_spam"] + pred["proba_ham"], 1)


# ---------------------------------------------------------------- imbalance: the training split only


def test_tfidf_oversampling_sees_only_training_texts(tmp_path, monkeypatch):
    from imblearn.over_sampling import RandomOverSampler

    corpus(200, spam_share=0.2).to_csv(tmp_path / "msgs.csv", index=False)
    raw = raw_spec(tmp_path / "msgs.csv", model={"name": "tfidf_logistic"}, train={},
                   preprocess={"text": {"oversample": True}})
    spec, mod, split, cache = stages(tmp_path, raw)
    seen = []
    real = RandomOverSampler.fit_resample
    monkeypatch.setattr(RandomOverSampler, "fit_resample",
                        lambda self, X, y, **k: seen.append((X.shape[0], np.bincount(y).tolist()))
                        or real(self, X, y, **k))
    ref = mod.fit(split, spec.training_view(), cache)
    counts = split.meta["class_counts"]
    assert seen == [(split.train.meta["rows"], [counts["train"]["ham"], counts["train"]["spam"]])]
    ev = mod.evaluate(ref, split, spec, str(tmp_path / "plots"))
    assert {c: v["support"] for c, v in ev.per_class.items()} == counts["test"]  # the test split is untouched
    assert seen[0][0] == split.train.meta["rows"]  # predicting did not resample


def test_neural_oversampling_draws_from_the_training_split_only(tmp_path, monkeypatch):
    from trainflow.tasks.common import training

    corpus(200, spam_share=0.2).to_csv(tmp_path / "msgs.csv", index=False)
    raw = raw_spec(tmp_path / "msgs.csv", train={"epochs": 2, "imbalance": "oversample", "num_threads": 1,
                                                 "checkpoint": False})
    spec, mod, split, cache = stages(tmp_path, raw)
    drawn = []
    real = training.balanced_weights
    monkeypatch.setattr(training, "balanced_weights", lambda y: drawn.append(len(y)) or real(y))
    ref = mod.fit(split, spec.training_view(), cache)
    assert drawn == [split.train.meta["rows"]] and "imbalance: oversample" in ref.meta["steps"]
    ev = mod.evaluate(ref, split, spec, str(tmp_path / "plots"))
    assert {c: v["support"] for c, v in ev.per_class.items()} == split.meta["class_counts"]["test"]


# ---------------------------------------------------------------- CLI (server)


@pytest.mark.usefixtures("prefect_server")
def test_neural_text_run_and_predict_through_the_cli(tmp_path, msgs, capsys):
    spec = write_spec(tmp_path / "spec.yaml", raw_spec(msgs))
    out = tmp_path / "runs"
    rc, err = run_cli("run", spec, "--out", out, "--set", "model.name=text_cnn", capsys=capsys)
    assert rc == 0, err
    (run,) = complete_runs(out, "msgs")
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["metrics"]["accuracy"] >= 0.9 and "pr_auc" in summary["metrics"]
    assert {"model.safetensors", "model.json"} <= {p.name for p in run.iterdir()}
    assert not list(run.glob("*.skops")) and not list(run.glob("*.pt"))
    config = json.loads((run / "model.json").read_text())
    assert config["vocabulary"]["tokens"][:2] == ["<pad>", "<oov>"] and config["model"] == "text_cnn"
    report = (run / "report.md").read_text()
    assert "Learning curves" in report and "Misclassified texts" in report
    new = tmp_path / "new.csv"
    pd.DataFrame({"id": [7], "message": ["claim your free cash prize now"]}).to_csv(new, index=False)
    rc, err = run_cli("predict", run, new, "--out", tmp_path / "pred.csv", capsys=capsys)
    assert rc == 0, err
    assert pd.read_csv(tmp_path / "pred.csv")["prediction"].tolist() == ["spam"]
    (run / "model.json").write_text(json.dumps({**config, "vocabulary": {"tokens": "x"}}))
    rc, err = run_cli("predict", run, new, "--out", tmp_path / "pred2.csv", capsys=capsys)
    assert rc == 3 and "model.json' is damaged" in err and "Traceback" not in err


BAD_VECTORS = {
    "vectors file missing": (None, 3, ["word-vectors file", "vec.txt' does not exist", "preprocess.tokens.vectors"]),
    "vectors file malformed": ("win 1 0\nlunch 0\n", 3, ["Line 2 of the word-vectors file", "not in GloVe format"]),
}


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("case", BAD_VECTORS)
def test_bad_vectors_file_fails_clearly(tmp_path, msgs, capsys, case):
    content, code, phrases = BAD_VECTORS[case]
    vectors = tmp_path / "vec.txt"
    if content is not None:
        vectors.write_text(content)
    raw = raw_spec(msgs, preprocess={"tokens": {"vectors": str(vectors)}}, model={"name": "text_gru"})
    assert_fails_clearly(write_spec(tmp_path / "spec.yaml", raw), tmp_path / "runs", "msgs", code, phrases, capsys)


def test_imbalance_options_of_the_other_model_kind_are_spec_errors(tmp_path, msgs, capsys):
    neural = raw_spec(msgs, preprocess={"text": {"class_weight": True}})
    rc, err = run_cli("run", write_spec(tmp_path / "a.yaml", neural), "--out", tmp_path / "runs", capsys=capsys)
    assert rc == 2 and "for the neural model 'text_gru' set 'train.imbalance'" in err and "Traceback" not in err
    tfidf = raw_spec(msgs, model={"name": "tfidf_nb"}, train={"imbalance": "class_weight"})
    rc, err = run_cli("run", write_spec(tmp_path / "b.yaml", tfidf), "--out", tmp_path / "runs", capsys=capsys)
    assert rc == 2 and "'train.imbalance' applies to the neural text models" in err
