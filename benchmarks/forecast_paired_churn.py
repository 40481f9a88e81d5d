"""How often the single-series paired rule (tolerance 0) promotes an equally strong challenger
(docs/decisions.md), and the panel rule likewise: both forecasts' errors on one test window are drawn from the same distribution,
either independent per step or with a level error shared by the window's steps (both forecast from
one origin); the challenger is promoted when the whole 95% interval of the RMSE difference (the
circular block bootstrap of :mod:`trainflow.tasks.forecast.paired`; for a panel the bootstrap of the
series' mean per-series difference) lies below 0. Seeded; seconds.

    python benchmarks/forecast_paired_churn.py [--trials 200]
"""

from __future__ import annotations

import argparse

import numpy as np

from trainflow.tasks.forecast.paired import _blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for h in (6, 12, 18):
        for level_sd, label in ((0.0, "independent steps"), (1.0, "a level error shared by the window (sd 1) + step noise (sd 1)")):
            promoted = 0
            for trial in range(args.trials):
                a = rng.normal(0, level_sd) + rng.normal(size=h)  # the challenger's errors
                b = rng.normal(0, level_sd) + rng.normal(size=h)  # the champion's, from the same distribution
                c = _blocks(h, lambda rows, e: float(np.sqrt(np.mean(e[rows] ** 2))), a, b, trial, 1000)
                promoted += c["interval"][1] < 0
            print(f"horizon {h}, {label}: an equally strong challenger promoted in {promoted}/{args.trials}")
    for n in (6, 30, 100):  # panels of n series, horizon 12, a level error per series and window
        promoted = 0
        for trial in range(args.trials):
            e = rng.normal(0, 1, (2, n, 1)) + rng.normal(size=(2, n, 12))
            d = np.sqrt((e[0] ** 2).mean(1)) - np.sqrt((e[1] ** 2).mean(1))  # per-series RMSE differences
            draws = d.ravel()[np.random.default_rng(trial).integers(0, n, (1000, n))].mean(1)
            promoted += np.percentile(draws, 97.5) < 0
        print(f"panel of {n} series, horizon 12, shared level errors: an equally strong challenger promoted in "
              f"{promoted}/{args.trials}")


if __name__ == "__main__":
    main()
