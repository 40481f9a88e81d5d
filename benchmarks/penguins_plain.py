"""The plain script the penguins benchmark compares the tabular demo with: the same work, no orchestration.

    python benchmarks/penguins_plain.py data/penguins.csv OUT_DIR

Reads the CSV, checks it with pandas, splits (stratified, 25 %, seed 42), fits median imputation /
most-frequent + one-hot for categories, standard scaling, SMOTE and logistic regression (the
demo's spec), evaluates, saves the model with skops and writes metrics.json. Prints the time and
peak RSS of each stage as one JSON line (see meter.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from meter import StageMeter  # noqa: E402

meter = StageMeter()

import pandas as pd  # noqa: E402
import skops.io as sio  # noqa: E402
from imblearn.over_sampling import SMOTE  # noqa: E402
from imblearn.pipeline import Pipeline  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from plain_metrics import evaluate_and_publish  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402


def main() -> None:
    data, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    meter.mark_start()
    with meter.stage("load"):
        df = pd.read_csv(data, na_values=["", "NA"], keep_default_na=False).drop(columns=["year"])
    with meter.stage("validate"):
        assert len(df) >= 100 and df["species"].notna().all()
        assert set(df["species"]) <= {"Adelie", "Chinstrap", "Gentoo"}
        assert set(df["island"].dropna()) <= {"Biscoe", "Dream", "Torgersen"}
        assert set(df["sex"].dropna()) <= {"male", "female"}
        assert df["bill_length_mm"].dropna().between(25, 70).all()
    with meter.stage("split"):
        train, test = train_test_split(df, test_size=0.25, random_state=42, stratify=df["species"])
    with meter.stage("fit"):
        classes = sorted(train["species"].unique())
        X, y = train.drop(columns=["species"]), train["species"].map({c: i for i, c in enumerate(classes)})
        numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
        categorical = [c for c in X.columns if c not in numeric]
        pre = ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
             categorical)])
        pipe = Pipeline([("pre", pre), ("resample", SMOTE(random_state=0)),
                         ("model", LogisticRegression(max_iter=2000, random_state=0))])
        pipe.fit(X, y.to_numpy())
        sio.dump(pipe, out / "model.skops")
    evaluate_and_publish(meter, pipe, lambda: (test.drop(columns=["species"]),
                                               test["species"].map({c: i for i, c in enumerate(classes)}).to_numpy()),
                         out)


if __name__ == "__main__":
    main()
