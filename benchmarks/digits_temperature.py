"""Temperature scaling on the digits CNN (docs/decisions.md): for each training seed and validation
share, one network is fitted with ``evaluate.calibrate: temperature``; its test images are scored at
T = 1, at the fitted T and at the T the run keeps (the fitted one only where a 5-fold
cross-validation within the validation part says it lowers the log loss). The test split is only
read here, to report; nothing is chosen on it.

    python benchmarks/digits_temperature.py [--seeds 0 1 2] [--shares 0.1 0.2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from trainflow import modalities
from trainflow.refs import load_npz
from trainflow.spec import load_spec
from trainflow.tasks.common import calibration, load

REPO = Path(__file__).resolve().parents[1]


def scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """ECE, Brier and log loss of test probabilities."""
    return {"ece": calibration.ece(y, proba), "brier": calibration.brier(y, proba),
            "log_loss": float(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1)).mean())}


def one(seed: int, share: float, cache: str) -> dict[str, float]:
    from trainflow.tasks.image.modality import load_model, probabilities

    spec = load_spec(REPO / "flows" / "specs" / "digits.yaml",
                     [f"seed={seed}", f"train.val_fraction={share}", "evaluate.calibrate=temperature"])
    mod = modalities.get(spec.modality)
    data = mod.profile(load.load(spec.data, cache, spec.modality), spec)
    split = mod.split(data, spec.training_view(), cache)
    model_ref = mod.fit(split, spec.training_view(), cache)
    model, config = load_model(model_ref.path)
    test = load_npz(split.test.path)
    y = test["y"].astype(np.int64)
    check = config["temperature_check"]
    out = {"seed": seed, "share": share, "rows": check["rows"], "T": check["fitted"], "kept": check["kept"],
           "cv_log_loss_T": check.get("cv_log_loss_fitted"), "cv_log_loss_1": check.get("cv_log_loss_1")}
    for name, t in (("T=1", None), ("fitted T", check["fitted"]), ("kept", config.get("temperature"))):
        proba = probabilities(model, {**config, "temperature": t}, test["x"], "cpu")
        out |= {f"{name} {k}": v for k, v in scores(y, proba).items()}
    out["accuracy"] = float((proba.argmax(1) == y).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.1, 0.2])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for share in args.shares:
            for seed in args.seeds:
                row = one(seed, share, cache)
                rows.append(row)
                print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    for share in args.shares:
        mine = [r for r in rows if r["share"] == share]
        means = {k: np.mean([r[k] for r in mine]) for k in ("T=1 ece", "fitted T ece", "kept ece", "T=1 log_loss",
                                                             "fitted T log_loss", "kept log_loss")}
        print(f"share {share}: {len(mine)} seeds, T kept in {sum(r['kept'] for r in mine)}; mean "
              + ", ".join(f"{k} {v:.4f}" for k, v in means.items()))


if __name__ == "__main__":
    main()
