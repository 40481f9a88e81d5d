"""The plain script the tabular benchmark compares trainflow with: the same work, no orchestration.

    python benchmarks/tabular_plain.py DATA.parquet OUT_DIR [--target label] [--model random_forest]

Reads the Parquet file, checks it with pandas, splits (stratified, 25 %, seed 42), fits median
imputation -> SMOTE -> hist gradient boosting (trainflow's defaults; ``--model random_forest``: a
200-tree forest with ``n_jobs=-1``, as a plain user writes it, trainflow's other forest defaults),
evaluates on the test split (the same metrics as trainflow), saves the model with skops and writes
metrics.json. Prints the time and peak RSS of each stage as one JSON line (see meter.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from meter import StageMeter  # noqa: E402

meter = StageMeter()

import pandas as pd  # noqa: E402
import skops.io as sio  # noqa: E402
from imblearn.over_sampling import SMOTE  # noqa: E402
from imblearn.pipeline import Pipeline  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from plain_metrics import evaluate_and_publish  # noqa: E402


MODELS = {"hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=200, random_state=0),
          "random_forest": lambda: RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=-1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out")
    parser.add_argument("--target", default="label")
    parser.add_argument("--model", default="hist_gradient_boosting", choices=["hist_gradient_boosting", "random_forest"])
    parser.add_argument("--report", action="store_true",
                        help="also what trainflow's report holds: intervals, calibration, permutation importance, "
                             "plots (plain_metrics.report)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meter.mark_start()

    with meter.stage("load"):
        df = pd.read_parquet(args.data)
    with meter.stage("validate"):
        y_all = df[args.target]
        features = [c for c in df.columns if c != args.target]
        problems = []
        if len(df) < 100:
            problems.append("fewer than 100 rows")
        if y_all.isna().any():
            problems.append("missing targets")
        if y_all.nunique() < 2:
            problems.append("a single class")
        empty = [c for c in features if df[c].isna().all()]
        text = [c for c in features if not pd.api.types.is_numeric_dtype(df[c])]
        if empty or text:
            problems.append(f"empty columns {empty}, text columns {text}")
        if problems:
            raise SystemExit("; ".join(problems))
    with meter.stage("split"):
        train, test = train_test_split(df, test_size=0.25, random_state=42, stratify=y_all, shuffle=True)
        del df, y_all
    with meter.stage("fit"):
        classes = sorted(train[args.target].unique().tolist(), key=str)
        codes = {c: i for i, c in enumerate(classes)}
        X, y = train[features], train[args.target].map(codes).to_numpy()
        pipe = Pipeline([("impute", SimpleImputer(strategy="median")),
                         ("resample", SMOTE(random_state=0)),
                         ("model", MODELS[args.model]())])
        pipe.fit(X, y)
        del train, X, y
        sio.dump(pipe, out / "model.skops")
    evaluate_and_publish(meter, pipe, lambda: (test[features], test[args.target].map(codes).to_numpy()), out,
                         args.report)


if __name__ == "__main__":
    main()
