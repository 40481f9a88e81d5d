"""How often the single-series paired rule (tolerance 0) promotes an equally strong challenger
(docs/decisions.md), and the panel rule likewise: both forecasts' errors on one test window are drawn from the same distribution,
either independent per step or with a level error shared by the window's steps (both forecast from
one origin); the challenger is promoted when the whole 95% interval of the RMSE difference lies below
0: for a single series the Diebold-Mariano/HLN interval of :mod:`trainflow.tasks.forecast.paired`
(beside it, the circular block bootstrap it replaced), for a panel the bootstrap of the series' mean
per-series difference. The same draws with a truly better challenger (half, or a quarter of, the
champion's error variance, both error parts) say how often it is still promoted. Seeded; seconds.

    python benchmarks/forecast_paired_churn.py [--trials 200]
"""

from __future__ import annotations

import argparse

import numpy as np

from trainflow.tasks.forecast.paired import _blocks, _dm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for h in (6, 12, 18):
        for level_sd, label in ((0.0, "independent steps"), (1.0, "a level error shared by the window (sd 1) + step noise (sd 1)")):
            for scale, who in ((1.0, "an equally strong"), (np.sqrt(0.5), "a better (half the error variance)"),
                               (0.5, "a much better (a quarter of the error variance)")):
                dm = blocks = 0
                for trial in range(args.trials):
                    a = scale * (rng.normal(0, level_sd) + rng.normal(size=h))  # the challenger's errors
                    b = rng.normal(0, level_sd) + rng.normal(size=h)  # the champion's
                    dm += _dm(a ** 2, b ** 2, "rmse", 1000)["interval"][1] < 0
                    c = _blocks(h, lambda rows, e: float(np.sqrt(np.mean(e[rows] ** 2))), a, b, trial, 1000)
                    blocks += c["interval"][1] < 0
                print(f"horizon {h}, {label}: {who} challenger promoted in {dm}/{args.trials} "
                      f"(Diebold-Mariano/HLN; block bootstrap {blocks}/{args.trials})")
    for n in (6, 30, 100):  # panels of n series, horizon 12, a level error per series and window
        for scale, who in ((1.0, "an equally strong"), (np.sqrt(0.5), "a better (half the error variance)")):
            promoted = 0
            for trial in range(args.trials):
                e = rng.normal(0, 1, (2, n, 1)) + rng.normal(size=(2, n, 12))
                e[0] *= scale
                d = np.sqrt((e[0] ** 2).mean(1)) - np.sqrt((e[1] ** 2).mean(1))  # per-series RMSE differences
                draws = d.ravel()[np.random.default_rng(trial).integers(0, n, (1000, n))].mean(1)
                promoted += np.percentile(draws, 97.5) < 0
            print(f"panel of {n} series, horizon 12, shared level errors: {who} challenger promoted in "
                  f"{promoted}/{args.trials}")


if __name__ == "__main__":
    main()
