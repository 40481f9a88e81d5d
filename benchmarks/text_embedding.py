"""Pretrained word embeddings (wordllama, the ``embeddings`` extra) + logistic regression vs ``tfidf_auto``.

    python benchmarks/text_embedding.py [--data /work/shared/datasets/tweeteval_stance]

Both sides see the same training texts and are compared first by 3-fold stratified CV on the training
split (the primary metric tfidf_auto ranks by: balanced accuracy for stance, f1_macro for SMS), which is
what may make the embedding a ``tfidf_auto`` candidate, then scored once on the test split. Stance:
TweetEval's five topics, train + val to train, official test, the pooled official score (mean F1 of
against / favor). SMS spam: the demo's split (75 / 25 stratified, seed 42), accuracy and spam F1.
The embedding side: wordllama's bundled ``l2_supercat`` 256-d model (inside the wheel; nothing is
downloaded), mean-pooled and normalised, then logistic regression with balanced class weights and the
better C of {1, 10} by the same CV. Prints a Markdown table and the load average.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import elapsed_line  # noqa: E402
from stance import DATA, TOPICS, official, trainflow_default  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
C_GRID = (1.0, 10.0)


def embedder():
    """wordllama's bundled model, read from the wheel's own files only (``disable_download``): its
    default lookup looks for the tokenizer in ``wordllama/tokenizer/`` while the wheel ships it in
    ``wordllama/tokenizers/``, and would download it; naming the package folder as the cache finds it."""
    import wordllama

    return wordllama.WordLlama.load(config="l2_supercat", dim=256, cache_dir=Path(wordllama.__file__).parent,
                                    disable_download=True)


def embedding_side(model, train, test, metric: str, seed: int = 0) -> tuple[list[str], float, float]:
    """CV score on the training texts (best C), then test predictions of the refitted model."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold

    score = {"balanced_accuracy": balanced_accuracy_score,
             "f1_macro": lambda a, b: f1_score(a, b, average="macro")}[metric]
    X, y = model.embed(list(train["text"]), norm=True), np.asarray(train["label"])
    folds = list(StratifiedKFold(3, shuffle=True, random_state=seed).split(X, y))
    cv = {}
    for C in C_GRID:
        pred = np.empty(len(y), dtype=object)
        for tr, te in folds:  # pooled over the held-out folds, as tfidf_auto scores
            pred[te] = LogisticRegression(C=C, class_weight="balanced", max_iter=2000).fit(X[tr], y[tr]).predict(X[te])
        cv[C] = float(score(y, pred))
    best = max(C_GRID, key=cv.get)
    clf = LogisticRegression(C=best, class_weight="balanced", max_iter=2000).fit(X, y)
    return list(clf.predict(model.embed(list(test["text"]), norm=True))), cv[best], best


def _cv_value(choice: str) -> float:
    return float(re.search(r"\): \w+ ([0-9.]+) in", choice).group(1))


def main(argv: list[str] | None = None) -> int:
    import pandas as pd
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA))
    args = p.parse_args(argv)
    print(f"load average before: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    t0, c0 = time.perf_counter(), time.process_time()
    model = embedder()
    print("| data | tfidf_auto CV | embedding CV (C) | tfidf_auto test | embedding test |\n|---|---|---|---|---|")
    gold, sides = [], {"tfidf": [], "emb": []}
    for topic in TOPICS:
        df = pd.read_csv(Path(args.data) / f"{topic}.csv", keep_default_na=False)
        train, test = df[df["split"] != "test"].copy(), df[df["split"] == "test"].copy()
        tf_pred, choice = trainflow_default(train, test, [])
        em_pred, em_cv, C = embedding_side(model, train, test, "balanced_accuracy")
        gold += list(test["label"])
        sides["tfidf"] += tf_pred
        sides["emb"] += em_pred
        print(f"| stance {topic} (balanced acc. / official F1) | {_cv_value(choice):.3f} | {em_cv:.3f} ({C:g}) | "
              f"{official(test['label'], tf_pred):.1f} | {official(test['label'], em_pred):.1f} |", flush=True)
    print(f"| **stance, pooled official F1** | | | **{official(gold, sides['tfidf']):.1f}** | "
          f"**{official(gold, sides['emb']):.1f}** |")
    sms = pd.read_csv(REPO / "data" / "SMSSpamCollection.tsv", sep="\t", quoting=3).rename(
        columns={"SMS": "text", "Label": "label"})
    train, test = train_test_split(sms, test_size=0.25, stratify=sms["label"], random_state=42)
    train, test = train.copy(), test.copy()
    tf_pred, choice = trainflow_default(train, test, ["evaluate.primary=f1_macro"])
    em_pred, em_cv, C = embedding_side(model, train, test, "f1_macro")

    def show(pred):
        return (f"acc {accuracy_score(test['label'], pred):.3f}, spam F1 "
                f"{f1_score(test['label'], pred, pos_label='spam'):.3f}")

    print(f"| SMS spam (f1_macro / test) | {_cv_value(choice):.3f} | {em_cv:.3f} ({C:g}) | {show(tf_pred)} | "
          f"{show(em_pred)} |")
    print(elapsed_line(t0, c0, " (this process)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
