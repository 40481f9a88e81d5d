"""The real raw Palmer LTER export (data/penguins_raw.csv, as shipped in the palmerpenguins package):
its record labels, running numbers, per-group ids, notes, constants and dates are excluded and named,
it trains on the measurements and the honest categoricals; ``predict --id`` traces each prediction
back to its row."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import DATA
from tests.helpers import complete_runs, run_cli, write_spec
from trainflow.tasks.tabular.profile import profile_table

pytestmark = pytest.mark.usefixtures("prefect_server")

RAW = DATA / "penguins_raw.csv"
TARGET = "Species"
#: what must be excluded, by the role guessed and a phrase of its reason
EXCLUDED = {"studyName": ("identifier", "named like an identifier"),
            "Sample Number": ("identifier", "unique within each 'Species'"),
            "Individual ID": ("identifier", "named like an identifier"),
            "Region": ("constant", "1 distinct value"),
            "Stage": ("constant", "1 distinct value"),
            "Date Egg": ("date/time", "reads as dates"),
            "Comments": ("free text", "on 16% of the rows")}
FEATURES = ["Island", "Clutch Completion", "Culmen Length (mm)", "Culmen Depth (mm)", "Flipper Length (mm)",
            "Body Mass (g)", "Sex", "Delta 15 N (o/oo)", "Delta 13 C (o/oo)"]


def raw_spec(tmp_path: Path, **data) -> Path:
    """A small spec on the real export: target Species, defaults everywhere else."""
    spec = {"name": "penguins-raw", "seed": 0,
            "data": {"loader": "csv", "path": str(RAW), "target": TARGET, **data},
            "validation": {"min_rows": 100}, "split": {"test_size": 0.25, "stratify": True, "seed": 42},
            "model": {"name": "logistic_regression"}, "evaluate": {"primary": "balanced_accuracy"}}
    return write_spec(tmp_path / "raw.yaml", spec)


def test_the_shipped_file_is_the_real_export():
    df = pd.read_csv(RAW)
    assert df.shape == (344, 17)
    assert df["Individual ID"].nunique() == 190 and (df.groupby("Individual ID")[TARGET].nunique() > 1).any()
    assert df.groupby(TARGET)["Sample Number"].min().eq(1).all()  # restarts per species
    assert df["Comments"].nunique() == 10 and df["Comments"].isna().mean() > 0.8


def test_role_guesses_on_the_real_export():
    rows = {r["column"]: r for r in profile_table(pd.read_csv(RAW), TARGET)}
    for col, (role, why) in EXCLUDED.items():
        assert rows[col]["role"] == role and why in rows[col]["why"], rows[col]
    assert {c for c, r in rows.items() if r["role"] in ("numeric", "categorical")} == set(FEATURES)


def test_raw_export_trains_on_the_measurements_and_says_what_it_dropped(tmp_path, capsys, caplog):
    rc, err = run_cli("run", raw_spec(tmp_path), "--out", tmp_path / "raw", capsys=capsys)
    err += caplog.text  # in a full session Prefect's console handler writes to an earlier test's stream
    assert rc == 0, err
    run, = complete_runs(tmp_path / "raw", "penguins-raw")
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    schema = json.loads((run / "schema.json").read_text())
    assert sorted(f["name"] for f in schema["features"]) == sorted(FEATURES)
    report = (run / "report.md").read_text()
    for col, (role, _) in EXCLUDED.items():
        assert f"excluded column '{col}': {role}" in report
        assert f"features: excluded '{col}': {role}" in err  # the warning on the console
        assert schema["plan"]["excluded"][col].startswith(role)
    # Without the ids the measurements still separate the species (the clean demo scores ~0.99); the
    # figure is honest because no id, label or note is among the features above.
    assert metrics["balanced_accuracy"] > 0.95
    assert "balanced_accuracy" in err or "balanced_accuracy" in report


def test_predict_keeps_ids_and_pass_through_columns(tmp_path, capsys):
    out = tmp_path / "runs"
    assert run_cli("run", raw_spec(tmp_path, id="Individual ID"), "--out", out, capsys=capsys)[0] == 0
    rows = pd.read_csv(RAW).sample(20, random_state=0)
    rows.to_csv(tmp_path / "new.csv", index=False)
    rc, err = run_cli("predict", "penguins-raw", tmp_path / "new.csv", "--runs", out, "--keep", "Sample Number",
                      "--out", tmp_path / "p.parquet", capsys=capsys)
    assert rc == 0, err
    got = pd.read_parquet(tmp_path / "p.parquet")
    assert list(got.columns[:3]) == ["Individual ID", "Sample Number", "prediction"]
    assert got["Individual ID"].tolist() == rows["Individual ID"].tolist()
    assert (got["prediction"].to_numpy() == rows[TARGET].to_numpy()).mean() > 0.9

    rc, err = run_cli("predict", "penguins-raw", tmp_path / "new.csv", "--runs", out, "--id", "studyName",
                      "--keep", "Regoin", "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 3 and "no column 'Regoin' (--keep)" in err and "did you mean 'Region'" in err
    assert "Traceback" not in err and not (tmp_path / "p.csv").exists()
    rc, err = run_cli("predict", "penguins-raw", tmp_path / "new.csv", "--runs", out, "--id", "studyName",
                      "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 0, err
    assert pd.read_csv(tmp_path / "p.csv")["studyName"].tolist() == rows["studyName"].tolist()
