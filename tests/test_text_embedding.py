"""``text_embedding``: wordllama's bundled embeddings + logistic regression (the 'embeddings' extra).
The saved model is the classifier only; the schema names the embedding, and reading it back rebuilds it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_text_neural import corpus, stages
from trainflow import trust
from trainflow.errors import DataError, SpecError
from trainflow.imports import leaving_out
from trainflow.spec import spec_from_dict
from trainflow.tasks.text import embedding
from trainflow.tasks.text import modality as T


def raw_spec(data: Path) -> dict:
    return {"name": "msgs", "task": "classification",
            "data": {"loader": "text_table", "path": str(data), "text": "message", "target": "label"},
            "validation": {"min_rows": 4}, "text_validation": {"max_duplicate_share": 1.0},
            "model": {"name": "text_embedding", "dim": 64, "C": 10}}


def test_without_the_extra_the_spec_names_the_install(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "wordllama", raising=False)  # restored afterwards
    with leaving_out(["wordllama"]), pytest.raises(SpecError, match=r"trainflow\[embeddings\]"):
        spec_from_dict(raw_spec(tmp_path / "msgs.csv"))


@pytest.mark.skipif(not embedding.installed(), reason="needs the 'embeddings' extra (wordllama)")
def test_fits_saves_the_classifier_only_and_rebuilds_the_embedding(tmp_path):
    data = tmp_path / "msgs.csv"
    corpus().to_csv(data, index=False)
    spec, mod, split, cache = stages(tmp_path, raw_spec(data))
    folder = Path(mod.fit(split, spec.training_view(), cache).path)
    schema = json.loads((folder / T.SCHEMA_FILE).read_text())
    assert schema["embedding"] == {"package": "wordllama", "embedding": "l2_supercat", "dim": 64}
    saved = trust.load_skops(folder / T.MODEL_FILE, T.trusted_types())
    assert type(saved).__name__ == "LogisticRegression" and saved.n_features_in_ == 64
    pipe, _ = T.load_model(folder)  # from the files, not the in-memory model
    test = T.read_parquet(split.test.path, keep=False)
    pred = np.asarray(schema["classes"])[pipe.predict_proba(T.normalise(test["text"], True)).argmax(axis=1)]
    assert (pred == test["label"].astype(str).to_numpy()).mean() >= 0.9  # spammy vs hammy words
    schema["embedding"]["dim"] = 300  # a size we do not ship: the folder is refused, naming the file
    (folder / T.SCHEMA_FILE).write_text(json.dumps(schema))
    with pytest.raises(DataError, match="schema.json"):
        T.load_model(folder)
