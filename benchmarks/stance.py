"""TweetEval stance (five topics, official split): trainflow's text default vs plain TF-IDF SVM scripts.

    python benchmarks/stance.py [--data /work/shared/datasets/tweeteval_stance] [--seeds 0] [--set KEY=VALUE ...]

The protocol is TweetEval's (``evaluaton_script.py`` of cardiffnlp/tweeteval): one model per topic,
its test predictions for the five topics **pooled** into one list, and the score the mean of the F1 of
``against`` and of ``favor`` on that pooled list (x100): the figure the leaderboard gives (SVM 67.3).
The mean of the five per-topic scores is printed too; it is not the official figure (it weighs the
169-tweet climate set, with 11 ``against`` tweets, like the others).

For each topic, every side trains on the official train + val tweets and is scored once on the
official test tweets.

- trainflow: a spec naming only the data (``text_table``, text and label columns), so its default
  model and settings (``tfidf_auto``: chosen by cross-validation on the training tweets), fitted and
  scored by the text modality's own fit stage on that fixed split (no Prefect server: the model is
  what is measured); ``--seeds`` repeats it with other seeds (the folds change, so may the choice).
- plain: ``TfidfVectorizer()`` + ``LinearSVC()`` with scikit-learn's defaults.
- plain, tuned on val: TweetEval's baseline protocol as far as the paper states it (a linear SVM on
  TF-IDF features, per topic, hyper-parameters chosen on the validation split): word n-gram range,
  C and class weights chosen by macro-F1 on the official val tweets after fitting on train, then
  refitted on train + val.

Prints a Markdown table and the load average.
"""

from __future__ import annotations

import argparse
import itertools
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
PUBLISHED_SVM = 67.3


def official(y_true, y_pred) -> float:
    """Mean F1 of 'against' and 'favor' (x100), the SemEval-2016 / TweetEval stance score."""
    from sklearn.metrics import f1_score

    return 100 * float(f1_score(y_true, y_pred, labels=["against", "favor"], average="macro", zero_division=0))


def plain(train, test) -> list[str]:
    """The plain script: TF-IDF with defaults + LinearSVC with defaults; its test predictions."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    return list(make_pipeline(TfidfVectorizer(), LinearSVC()).fit(train["text"], train["label"]).predict(test["text"]))


def plain_tuned(train, val, test) -> tuple[list[str], str]:
    """TF-IDF + LinearSVC with n-grams, C and class weights chosen on the val split (macro-F1), refitted
    on train + val; its test predictions and the choice."""
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    def make(ngrams, C, weight):
        return make_pipeline(TfidfVectorizer(ngram_range=ngrams), LinearSVC(C=C, class_weight=weight))

    grid = list(itertools.product([(1, 1), (1, 2), (1, 3)], [0.01, 0.1, 1.0, 10.0], [None, "balanced"]))
    on_val = [f1_score(val["label"], make(*g).fit(train["text"], train["label"]).predict(val["text"]),
                       average="macro") for g in grid]
    best = grid[max(range(len(grid)), key=on_val.__getitem__)]  # ties: the first
    both = pd.concat([train, val])
    pred = make(*best).fit(both["text"], both["label"]).predict(test["text"])
    return list(pred), f"1-{best[0][1]}-grams C={best[1]:g}{' balanced' if best[2] else ''}"


def trainflow_default(train, test, overrides: list[str]) -> tuple[list[str], str]:
    """trainflow's text modality with a spec naming only the data, on the fixed split; its test
    predictions and what its model chose (the first preprocessing line)."""
    import numpy as np
    import yaml

    from trainflow import modalities
    from trainflow.refs import SplitRef
    from trainflow.spec import load_spec
    from trainflow.tasks.common.load import load
    from trainflow.tasks.text.modality import normalise, scorer

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
        score, schema = scorer(model.path)
        proba = score(normalise(test["text"], schema["lowercase"]))
        pred = np.asarray(schema["classes"])[proba.argmax(axis=1)]
        return list(pred), (model.meta.get("steps") or [spec.model.name])[0]


def _short(choice: str) -> str:
    """'tfidf_auto chose character 2-5-grams (char_wb) + logistic regression (C=10, ...): ...' shortened."""
    head = choice.split(":")[0].removeprefix("tfidf_auto chose ")
    return head.replace(" (char_wb)", "").replace(" class weights", "")


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="trainflow's seeds (the first gives the table)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    print(f"load average before: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    print("| topic | trainflow default | plain TF-IDF + LinearSVC | plain, tuned on val | trainflow's choice "
          "| plain tuned's choice |\n|---|---|---|---|---|---|")
    sides = {"trainflow": {s: [] for s in args.seeds}, "plain": [], "tuned": []}
    gold, per_topic = [], {"trainflow": [], "plain": [], "tuned": []}
    for topic in TOPICS:
        df = pd.read_csv(Path(args.data) / f"{topic}.csv", keep_default_na=False)
        train, val, test = (df[df["split"] == s].copy() for s in ("train", "val", "test"))
        both = pd.concat([train, val])
        gold += list(test["label"])
        for seed in args.seeds:
            pred, chose = trainflow_default(both, test, [*args.overrides, f"seed={seed}"])
            sides["trainflow"][seed] += pred
            if seed == args.seeds[0]:
                first, first_choice = pred, chose
        tuned, tuned_choice = plain_tuned(train, val, test)
        for name, pred in (("trainflow", first), ("plain", plain(both, test)), ("tuned", tuned)):
            per_topic[name].append(official(test["label"], pred))
            if name != "trainflow":
                sides[name] += pred
        print(f"| {topic} | {per_topic['trainflow'][-1]:.1f} | {per_topic['plain'][-1]:.1f} | "
              f"{per_topic['tuned'][-1]:.1f} | {_short(first_choice)} | {tuned_choice} |", flush=True)
    pooled = {"trainflow": official(gold, sides["trainflow"][args.seeds[0]]),
              "plain": official(gold, sides["plain"]), "tuned": official(gold, sides["tuned"])}
    print(f"| **all five pooled (the official figure)** | **{pooled['trainflow']:.1f}** | **{pooled['plain']:.1f}** | "
          f"**{pooled['tuned']:.1f}** | | |")
    print(f"| mean of the five topics' scores | {statistics.mean(per_topic['trainflow']):.1f} | "
          f"{statistics.mean(per_topic['plain']):.1f} | {statistics.mean(per_topic['tuned']):.1f} | | |")
    print(f"\npublished TweetEval SVM (pooled): {PUBLISHED_SVM}")
    if len(args.seeds) > 1:
        print("trainflow pooled by seed: " + ", ".join(
            f"seed {s}: {official(gold, sides['trainflow'][s]):.1f}" for s in args.seeds))
    print(elapsed_line(t0, c0, ' (this process)'))
    return 0


if __name__ == "__main__":
    sys.exit(main())
