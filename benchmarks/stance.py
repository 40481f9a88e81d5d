"""TweetEval stance (five topics, official split): trainflow's text default vs a plain TF-IDF SVM.

    python benchmarks/stance.py [--data /work/shared/datasets/tweeteval_stance] [--set KEY=VALUE ...]

For each topic, the training texts are the official train + val tweets and the test texts the
official test tweets, for both sides. trainflow: a spec naming only the data (``text_table``, text
and label columns), so its default model and settings, fitted and scored by the text modality's own
fit and evaluate stages on that fixed split (no Prefect server: the model is what is measured). The
plain baseline: ``TfidfVectorizer()`` + ``LinearSVC()`` with scikit-learn's defaults. The score is
the official one, the mean of the F1 of ``against`` and ``favor``; prints a Markdown table and the
load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import elapsed_line  # noqa: E402

TOPICS = ("abortion", "atheism", "climate", "feminist", "hillary")
DATA = Path("/work/shared/datasets/tweeteval_stance")


def official(y_true, y_pred) -> float:
    """Mean F1 of 'against' and 'favor' (x100), the SemEval-2016 / TweetEval stance score."""
    from sklearn.metrics import f1_score

    return 100 * float(f1_score(y_true, y_pred, labels=["against", "favor"], average="macro", zero_division=0))


def plain(train, test) -> float:
    """The plain script: TF-IDF with defaults + LinearSVC with defaults."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    model = make_pipeline(TfidfVectorizer(), LinearSVC()).fit(train["text"], train["label"])
    return official(test["label"], model.predict(test["text"]))


def trainflow_default(train, test, overrides: list[str]) -> tuple[float, str]:
    """trainflow's text modality with a spec naming only the data, on the fixed split; the score and
    what its model chose (the first preprocessing line)."""
    import numpy as np
    import yaml

    from trainflow import modalities
    from trainflow.refs import SplitRef
    from trainflow.spec import load_spec
    from trainflow.tasks.common.load import load

    with tempfile.TemporaryDirectory(prefix="stance-") as tmp:
        refs = {}
        for part, frame in (("train", train), ("test", test)):
            frame[["text", "label"]].to_csv(Path(tmp) / f"{part}.csv", index=False)
            spec_file = Path(tmp) / f"{part}.yaml"
            spec_file.write_text(yaml.safe_dump({"name": "stance", "data": {
                "loader": "text_table", "path": str(Path(tmp) / f"{part}.csv"), "text": "text", "target": "label"}}))
            spec = load_spec(spec_file, overrides)
            refs[part] = load(spec.data, tmp, spec.modality)
        mod = modalities.get(spec.modality)
        split = SplitRef(train=refs["train"], test=refs["test"], meta={"notes": []})
        model = mod.fit(split, spec.training_view(), tmp)
        from trainflow.tasks.text.modality import normalise, scorer

        score, schema = scorer(model.path)

        proba = score(normalise(test["text"], schema["lowercase"]))
        pred = np.asarray(schema["classes"])[proba.argmax(axis=1)]
        return official(test["label"], pred), (model.meta.get("steps") or [spec.model.name])[0]


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    print(f"load average before: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    print("| topic | trainflow default | plain TF-IDF + LinearSVC | trainflow's choice |\n|---|---|---|---|")
    ours, theirs = [], []
    for topic in TOPICS:
        df = pd.read_csv(Path(args.data) / f"{topic}.csv", keep_default_na=False)
        train, test = df[df["split"] != "test"].copy(), df[df["split"] == "test"].copy()
        score, chose = trainflow_default(train, test, args.overrides)
        ours.append(score)
        theirs.append(plain(train, test))
        print(f"| {topic} | {ours[-1]:.1f} | {theirs[-1]:.1f} | {chose.split(':')[0]} |", flush=True)
    print(f"| **mean** | **{statistics.mean(ours):.1f}** | **{statistics.mean(theirs):.1f}** | |")
    print(elapsed_line(t0, c0, ' (this process)'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
