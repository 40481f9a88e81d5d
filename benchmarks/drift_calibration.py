"""Calibration of the drift alarms (docs/monitoring.md): false alarms on batches resampled from the
reference distribution, and detection of a +0.5 standard deviation shift of one feature, on penguins;
digits with noise or a 30 degree rotation against clean held-out digits; SMS messages against tweets. Only the profile functions run
(no flow, no model), so the figures take seconds:

    python benchmarks/drift_calibration.py [--trials 100]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from trainflow.tasks.common import drift as D  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
NUMERIC = FEATURES[1:5]


def penguins(trials: int) -> None:
    df = pd.read_csv(REPO / "data" / "penguins.csv")[FEATURES]
    train = df.sample(frac=0.8, random_state=0).reset_index(drop=True)
    held_out = df.drop(df.sample(frac=0.8, random_state=0).index).reset_index(drop=True)
    profile = D.build_profile(train, "tabular", "training rows")
    rng = np.random.default_rng(1)
    alarms = sum(bool(D.drifted(D.compare(profile, train.iloc[rng.integers(0, len(train), 100)])))
                 for _ in range(trials))
    print(f"penguins, batches of 100 resampled from the {len(train)} training rows: alarms in {alarms}/{trials}")
    # rows the profile never saw, each once: a fresh 80/20 split per trial, its held-out part as the batch
    # (resampling 100 rows from the 69 held-out ones would repeat rows, which a test counts as evidence)
    alarms = 0
    for seed in range(trials):
        chosen = df.sample(frac=0.8, random_state=seed)
        alarms += bool(D.drifted(D.compare(D.build_profile(chosen.reset_index(drop=True), "tabular", "rows"),
                                           df.drop(chosen.index))))
    print(f"penguins, the {len(held_out)} held-out rows of {trials} random 80/20 splits: alarms in {alarms}/{trials}")
    for feature in NUMERIC:
        shift = 0.5 * train[feature].std()
        named = others = 0
        for _ in range(trials):
            batch = train.iloc[rng.integers(0, len(train), 500)].copy()
            batch[feature] += shift
            found = D.drifted(D.compare(profile, batch))
            named += feature in found
            others += bool(set(found) - {feature})
        print(f"penguins, +0.5 sd on {feature}, batches of 500: named in {named}/{trials}, "
              f"another feature blamed in {others}/{trials}")


def digits(trials: int) -> None:
    from scipy.ndimage import rotate

    from trainflow.tasks.image import loaders as IL
    from trainflow.tasks.image.drift import image_summaries

    x = IL.load_digits(IL.NoOptions()).x.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    train, held_out = x[order[:1400]], x[order[1400:]]
    profile = D.build_profile(image_summaries(train, 16), "image", "training images")
    rng = np.random.default_rng(4)
    kinds = {"clean": lambda b: b, "noise (sd 2 of 16)": lambda b: np.clip(b + rng.normal(0, 2, b.shape), 0, 16),
             "rotated 30 degrees": lambda b: np.clip(rotate(b, 30, axes=(1, 2), reshape=False, order=1), 0, 16)}
    for name, change in kinds.items():
        flagged = 0
        for _ in range(trials):
            batch = change(held_out[rng.choice(len(held_out), 100, replace=False)])
            flagged += bool(D.drifted(D.compare(profile, image_summaries(batch, 16))))
        print(f"digits, batches of 100 held-out images, {name}: flagged in {flagged}/{trials}")


def text(trials: int) -> None:
    import re

    def frame(texts: list[str]) -> pd.DataFrame:  # what the text modality's drift_frame gives
        words = [re.findall(r"\w+", t.lower()) for t in texts]
        return pd.DataFrame({"words": [len(w) for w in words], "chars": [len(t) for t in texts],
                             "tokens": pd.Series(words, dtype=object)})

    sms = pd.read_csv(REPO / "data" / "SMSSpamCollection.tsv", sep="\t")["SMS"].astype(str)
    order = np.random.default_rng(0).permutation(len(sms))
    profile = D.build_profile(frame(sms.iloc[order[:4000]].tolist()), "text", "training messages")
    held_out = sms.iloc[order[4000:]]
    alarms = sum(bool(D.drifted(D.compare(profile, frame(held_out.sample(200, random_state=i).tolist()))))
                 for i in range(trials))
    print(f"sms, batches of 200 of the {len(held_out)} held-out messages: alarms in {alarms}/{trials}")
    tweets = pd.read_csv(REPO / "data" / "tweeteval_stance_abortion.csv")["text"].astype(str)
    flagged = sum(bool(D.drifted(D.compare(profile, frame(tweets.sample(200, random_state=i).tolist()))))
                  for i in range(trials))
    print(f"sms profile, batches of 200 tweets (TweetEval stance): flagged in {flagged}/{trials}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    start = time.process_time()
    penguins(args.trials)
    digits(args.trials)
    text(args.trials)
    print(f"{time.process_time() - start:.1f} s CPU")
