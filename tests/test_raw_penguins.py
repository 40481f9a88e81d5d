"""The raw-export case of issue 14: junk columns are excluded, named, and the score matches the clean demo;
``predict --id`` traces each prediction back to its row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import DATA, SPECS
from tests.helpers import complete_runs, run_cli, write_spec

pytestmark = pytest.mark.usefixtures("prefect_server")

CLEAN_FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]
WORDS = ("nest", "never", "observed", "with", "full", "clutch", "adult", "not", "enough", "blood", "for",
         "isotopes", "sex", "determined", "by", "molecular", "analysis", "egg", "stage")


def raw_penguins(seed: int = 0) -> pd.DataFrame:
    """data/penguins.csv with the extra columns of the raw Palmer LTER export (no network here, so they are
    generated, seeded): ``studyName``, ``Sample Number`` and ``Individual ID`` unique per row, a constant
    ``Region``, ``Date Egg`` dates in the study's year and free-text ``Comments`` on most rows. The clean
    measurement, island and sex columns keep their order, so the features match the clean demo's."""
    rng = np.random.default_rng(seed)
    clean = pd.read_csv(DATA / "penguins.csv")
    n = len(clean)
    days = rng.integers(0, 30, n)
    raw = pd.DataFrame({
        "studyName": [f"PAL{y % 100:02d}{(y + 1) % 100:02d}-{i:03d}" for i, y in enumerate(clean["year"], 1)],
        "Sample Number": np.arange(1, n + 1),
        "species": clean["species"],
        "Region": "Anvers",
        "Individual ID": [f"N{i // 2 + 1}A{i % 2 + 1}" for i in range(n)],
        "Date Egg": [f"{y}-11-{d + 1:02d}" for y, d in zip(clean["year"], days)],
    })
    raw = pd.concat([raw, clean[CLEAN_FEATURES]], axis=1)
    raw["Comments"] = [" ".join(rng.choice(WORDS, rng.integers(5, 10))).capitalize() + "."
                       if rng.random() < 0.8 else None for _ in range(n)]
    return raw


def raw_spec(tmp_path: Path, **data) -> Path:
    raw_penguins().to_csv(tmp_path / "raw.csv", index=False)
    spec = yaml.safe_load((SPECS / "penguins.yaml").read_text())
    spec["data"] = {"loader": "csv", "path": str(tmp_path / "raw.csv"), "target": "species", **data}
    return write_spec(tmp_path / "raw.yaml", spec)


def test_raw_export_trains_on_the_measurements_and_scores_like_the_clean_demo(tmp_path, capsys):
    assert run_cli("run", SPECS / "penguins.yaml", "--out", tmp_path / "clean", capsys=capsys)[0] == 0
    assert run_cli("run", raw_spec(tmp_path), "--out", tmp_path / "raw", capsys=capsys)[0] == 0
    clean_run, = complete_runs(tmp_path / "clean", "penguins")
    raw_run, = complete_runs(tmp_path / "raw", "penguins")
    clean = json.loads((clean_run / "metrics.json").read_text())
    raw = json.loads((raw_run / "metrics.json").read_text())
    schema = json.loads((raw_run / "schema.json").read_text())
    assert [f["name"] for f in schema["features"]] == CLEAN_FEATURES
    assert raw["metrics"]["balanced_accuracy"] == pytest.approx(clean["metrics"]["balanced_accuracy"])
    assert raw["metrics"]["balanced_accuracy"] > 0.98
    report = (raw_run / "report.md").read_text()
    for col, role in [("studyName", "identifier"), ("Sample Number", "identifier"), ("Individual ID", "identifier"),
                      ("Region", "constant"), ("Date Egg", "date/time"), ("Comments", "free text")]:
        assert f"excluded column '{col}': {role}" in report
        assert schema["plan"]["excluded"][col].startswith(role)
    assert "## Data profile" in report and "leakage" not in report


def test_predict_keeps_ids_and_pass_through_columns(tmp_path, capsys):
    out = tmp_path / "runs"
    assert run_cli("run", raw_spec(tmp_path, id="Individual ID"), "--out", out, capsys=capsys)[0] == 0
    rows = raw_penguins(seed=1).sample(20, random_state=0)
    rows.to_csv(tmp_path / "new.csv", index=False)
    rc, err = run_cli("predict", "penguins", tmp_path / "new.csv", "--runs", out, "--keep", "Sample Number",
                      "--out", tmp_path / "p.parquet", capsys=capsys)
    assert rc == 0, err
    got = pd.read_parquet(tmp_path / "p.parquet")
    assert list(got.columns[:3]) == ["Individual ID", "Sample Number", "prediction"]
    assert got["Individual ID"].tolist() == rows["Individual ID"].tolist()
    assert (got["prediction"].to_numpy() == rows["species"].to_numpy()).mean() > 0.9

    rc, err = run_cli("predict", "penguins", tmp_path / "new.csv", "--runs", out, "--id", "studyName",
                      "--keep", "Regoin", "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 3 and "no column 'Regoin' (--keep)" in err and "did you mean 'Region'" in err
    assert "Traceback" not in err and not (tmp_path / "p.csv").exists()
    rc, err = run_cli("predict", "penguins", tmp_path / "new.csv", "--runs", out, "--id", "studyName",
                      "--out", tmp_path / "p.csv", capsys=capsys)
    assert rc == 0, err
    assert pd.read_csv(tmp_path / "p.csv")["studyName"].tolist() == rows["studyName"].tolist()
