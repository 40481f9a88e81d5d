"""Reference profiles and drift: calibrated alarms on penguins and digits, the profile file read with care,
and ``trainflow predict`` comparing new rows with the profile saved with the model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import DATA, SPECS
from tests.helpers import complete_runs, run_cli
from trainflow.errors import DataError
from trainflow.tasks.common import drift as D

FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]


@pytest.fixture(scope="module")
def penguins_train():
    """The training rows of a seeded 80/20 split of penguins (features only) and their profile."""
    df = pd.read_csv(DATA / "penguins.csv")[FEATURES]
    train = df.sample(frac=0.8, random_state=0).reset_index(drop=True)
    return train, D.build_profile(train, "tabular", "training rows")


# ---------------------------------------------------------------- calibration (on the profile functions)


def test_bootstrap_batches_from_training_rows_rarely_alarm(penguins_train):
    """Batches of 100 rows resampled from the reference distribution: drift in at most 5 of 100."""
    train, profile = penguins_train
    rng = np.random.default_rng(1)
    alarms = sum(bool(D.drifted(D.compare(profile, train.iloc[rng.integers(0, len(train), 100)])))
                 for _ in range(100))
    assert alarms <= 5, alarms


def test_half_sd_shift_of_one_feature_is_found_and_named(penguins_train):
    """+0.5 standard deviation on flipper_length_mm in batches of 500: found in at least 95 of 100, by name,
    and the features left alone are not blamed."""
    train, profile = penguins_train
    rng = np.random.default_rng(2)
    shift = 0.5 * train["flipper_length_mm"].std()
    named = others = 0
    for _ in range(100):
        batch = train.iloc[rng.integers(0, len(train), 500)].copy()
        batch["flipper_length_mm"] += shift
        found = D.drifted(D.compare(profile, batch))
        named += "flipper_length_mm" in found
        others += bool(set(found) - {"flipper_length_mm"})
    assert named >= 95 and others <= 5, (named, others)


def test_too_few_rows_are_said_not_alarmed(penguins_train):
    train, profile = penguins_train
    batch = train.head(10).copy()
    batch["body_mass_g"] += 5000  # absurd, but ten rows are no evidence for a test
    rows = D.compare(profile, batch)
    assert not D.drifted(rows)
    assert all(r["status"].startswith("too few values") for r in rows if "missing share" not in r["test"])
    assert "not tested (too few values)" in D.summary_line(rows, len(batch))


def test_unseen_category_and_missing_share_drift(penguins_train):
    train, profile = penguins_train
    batch = train.sample(200, replace=True, random_state=3).reset_index(drop=True)
    batch.loc[:99, "island"] = "Anvers"
    batch.loc[:79, "bill_depth_mm"] = np.nan
    rows = D.compare(profile, batch)
    assert {"island", "bill_depth_mm"} <= set(D.drifted(rows))
    [island] = [r for r in rows if r["feature"] == "island"]
    assert island["unseen"] == 100
    assert "values training never saw: island (100 row(s))" in D.summary_line(rows, len(batch))
    assert "never saw" not in D.summary_line(D.compare(profile, train.head(200)), 200)
    assert any(r["feature"] == "bill_depth_mm" and "missing share" in r["test"] and r["drift"] for r in rows)


def test_digits_noise_and_rotation_are_flagged_clean_held_out_are_not():
    from scipy.ndimage import rotate

    from trainflow.tasks.image import loaders as IL
    from trainflow.tasks.image.drift import image_summaries

    images = IL.load_digits(IL.NoOptions())
    x = images.x.astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    train, held_out = x[order[:1400]], x[order[1400:]]
    profile = D.build_profile(image_summaries(train, 16), "image", "training images")
    rng = np.random.default_rng(4)
    noisy = np.clip(held_out + rng.normal(0, 2, held_out.shape), 0, 16)
    rotated = np.clip(rotate(held_out, 30, axes=(1, 2), reshape=False, order=1), 0, 16)
    verdict = {name: D.drifted(D.compare(profile, image_summaries(batch, 16)))
               for name, batch in (("clean", held_out), ("noise", noisy), ("rotated", rotated))}
    assert verdict["clean"] == [] and verdict["noise"] and verdict["rotated"], verdict


# ---------------------------------------------------------------- the profile file


def test_profile_round_trip_and_missing(tmp_path, penguins_train):
    _, profile = penguins_train
    assert D.read_profile(tmp_path) is None  # saved before profiles: no file, no error
    D.write_profile(tmp_path, profile)
    assert D.read_profile(tmp_path) == profile


@pytest.mark.parametrize("damage, says", [
    (lambda p: p.write_text("{not json"), "JSONDecodeError"),
    (lambda p: p.write_text(json.dumps([1, 2])), "not a trainflow profile"),
    (lambda p: p.write_text(p.read_text().replace('"format":1', '"format":7')), "format"),
    (lambda p: p.write_text(p.read_text().replace('"kind":"numeric"', '"kind":"vector"', 1)), "not a trainflow"),
    (lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "extra": 1})), "extra"),
    (lambda p: _reverse_edges(p), "not finite and increasing"),
])
def test_damaged_profile_is_a_clear_data_error(tmp_path, penguins_train, damage, says):
    _, profile = penguins_train
    D.write_profile(tmp_path, profile)
    damage(tmp_path / D.PROFILE_FILE)
    with pytest.raises(DataError) as err:
        D.read_profile(tmp_path)
    assert str(tmp_path / D.PROFILE_FILE) in str(err.value) and says in str(err.value)


def _reverse_edges(path):
    raw = json.loads(path.read_text())
    raw["columns"]["bill_length_mm"]["edges"].reverse()
    path.write_text(json.dumps(raw))


def test_profile_that_is_a_link_out_of_the_folder_is_refused(tmp_path, penguins_train):
    _, profile = penguins_train
    elsewhere = tmp_path / "elsewhere"
    D.write_profile(elsewhere, profile)
    (tmp_path / "run").mkdir()
    os.symlink(elsewhere / D.PROFILE_FILE, tmp_path / "run" / D.PROFILE_FILE)
    with pytest.raises(DataError, match="symbolic link"):
        D.read_profile(tmp_path / "run")


# ---------------------------------------------------------------- trainflow predict


OVERRIDES = ("preprocess.resample.method=none", "evaluate.importance=false")


@pytest.fixture(scope="module")
def penguins_run(tmp_path_factory, prefect_server):
    out = tmp_path_factory.mktemp("drift") / "runs"
    code, _ = run_cli("run", SPECS / "penguins.yaml", "--out", out, *[a for o in OVERRIDES for a in ("--set", o)])
    assert code == 0
    [run] = complete_runs(out, "penguins")
    return run


def _batch(tmp_path, name, shift=0.0, n=300, drop=None):
    df = pd.read_csv(DATA / "penguins.csv").drop(columns=["species"]).sample(n, replace=True, random_state=5)
    df["bill_length_mm"] += shift * df["bill_length_mm"].std()
    if drop:
        df = df.drop(columns=[drop])
    path = tmp_path / f"{name}.csv"
    df.to_csv(path, index=False)
    return path


def test_run_folder_holds_its_profile(penguins_run):
    profile = D.read_profile(penguins_run)
    assert set(profile.columns) == set(FEATURES) and profile.modality == "tabular"
    assert profile.reference.startswith("training split") and profile.columns["island"].kind == "categorical"
    assert profile.prediction.kind == "categorical" and set(profile.prediction.counts) == {"Adelie", "Chinstrap",
                                                                                           "Gentoo"}
    assert "profile.json" in json.loads((penguins_run / "metrics.json").read_text())["model_files"]


def test_a_large_training_table_is_profiled_on_a_seeded_sample_and_says_so(penguins_run, tmp_path, monkeypatch):
    """Above drift.REFERENCE_ITEMS rows the reference profile summarises a seeded sample (as images do),
    the same rows every time, and its reference line names the share."""
    from types import SimpleNamespace

    from trainflow import modalities
    from trainflow.refs import DataRef

    monkeypatch.setattr(D, "REFERENCE_ITEMS", 50)
    train = pd.read_csv(DATA / "penguins.csv").head(120)
    train.to_parquet(tmp_path / "train.parquet")
    ref = DataRef(path=str(tmp_path / "train.parquet"), digest="d", modality="tabular", meta={})
    mod = modalities.get("tabular")
    frame = mod.drift_frame(penguins_run, ref)
    assert len(frame) == 50 and frame.attrs["of"] == 120 and list(frame.columns) == FEATURES
    assert frame.equals(mod.drift_frame(penguins_run, ref))  # seeded: the same rows
    run = tmp_path / "run"
    shutil.copytree(penguins_run, run)
    confusion = {"labels": ["Adelie", "Chinstrap", "Gentoo"], "matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}
    D.profile_run(mod, SimpleNamespace(train=ref), confusion, "classification", run)
    profile = D.read_profile(run)
    assert profile.reference == "training split (a seeded 50 of its 120 items)"
    assert profile.columns["bill_length_mm"].rows == 50


def test_predict_reports_drift_and_fails_on_it_when_asked(penguins_run, tmp_path, capsys):
    clean, shifted = _batch(tmp_path, "clean"), _batch(tmp_path, "shifted", shift=0.5)
    code, err = run_cli("predict", penguins_run, clean, "--out", tmp_path / "a" / "p.csv", "--fail-on-drift",
                        capsys=capsys)
    assert code == 0 and "drift: none found" in err, err
    code, err = run_cli("predict", penguins_run, shifted, "--out", tmp_path / "b" / "p.csv", "--fail-on-drift",
                        capsys=capsys)
    assert code == 5 and "bill_length_mm" in err and err.count("\n") == 1, err
    table = pd.read_csv(tmp_path / "b" / "p.drift.csv")
    assert table.loc[table["drift"], "feature"].unique().tolist() == ["bill_length_mm"]
    assert (tmp_path / "b" / "p.drift.png").stat().st_size > 1000 and (tmp_path / "b" / "p.csv").is_file()
    assert run_cli("predict", penguins_run, shifted, "--out", tmp_path / "c.csv", capsys=capsys)[0] == 0


def test_predict_bad_inputs(penguins_run, tmp_path, capsys):
    code, err = run_cli("predict", penguins_run, _batch(tmp_path, "short", drop="sex"), "--out", tmp_path / "p.csv",
                        capsys=capsys)
    assert code == 3 and "'sex'" in err and "Traceback" not in err
    copy = tmp_path / "old" / penguins_run.name
    shutil.copytree(penguins_run, copy)
    (copy / D.PROFILE_FILE).write_text('{"format": 1, "modality": "tabular"}')
    code, err = run_cli("predict", copy, _batch(tmp_path, "clean"), "--out", tmp_path / "q.csv", capsys=capsys)
    assert code == 3 and str(copy / D.PROFILE_FILE) in err and "damaged" in err and "Traceback" not in err
    assert not (tmp_path / "q.csv").exists()
    (copy / D.PROFILE_FILE).unlink()  # a model saved before profiles: predictions, and a note
    code, err = run_cli("predict", copy, _batch(tmp_path, "clean"), "--out", tmp_path / "r.csv", "--fail-on-drift",
                        capsys=capsys)
    assert code == 0 and "not checked" in err and (tmp_path / "r.csv").is_file()


def _snapshot(folder: Path) -> dict[Path, tuple[int, int, int]]:
    """Every entry under ``folder`` with its inode, kind and modification time: a replace changes them."""
    return {p: (p.lstat().st_ino, p.lstat().st_mode, p.lstat().st_mtime_ns) for p in folder.rglob("*")}


def _out_case(case: str, run: Path, tmp_path: Path) -> tuple[list, str]:
    """The predict arguments of an --out that must be refused, and a phrase of the refusal."""
    rows = _batch(tmp_path, "rows", n=30)
    copy = tmp_path / "runs" / run.parent.name  # the pipeline folder, champion.json included
    shutil.copytree(run.parent, copy)
    mine = copy / run.name
    if case == "the input":
        return [mine, rows, "--out", rows], "is the input"
    if case == "the input, as the drift table beside --out":
        return [mine, _batch(tmp_path, "p.drift", n=30), "--out", tmp_path / "p.csv"], "drift report"
    if case == "a file of the model":
        return [mine, rows, "--out", mine / "schema.json"], "inside the run folder"
    if case == "a file of the champion":
        return ["penguins", rows, "--runs", tmp_path / "runs", "--out", mine / "model.skops", "--no-drift"], \
            "inside the run folder"
    if case == "a FIFO":
        os.mkfifo(tmp_path / "pipe.csv")
        return [mine, rows, "--out", tmp_path / "pipe.csv"], "FIFO"
    if case == "a FIFO as the drift plot":
        os.mkfifo(tmp_path / "p.drift.png")
        return [mine, rows, "--out", tmp_path / "p.csv"], "FIFO"
    if case == "a folder not made yet":
        return [mine, rows, "--out", f"{tmp_path / 'newdir'}/"], "names a folder"
    (tmp_path / "afile").write_text("x")
    return [mine, rows, "--out", tmp_path / "afile" / "p.csv"], f"'{tmp_path / 'afile'}' is a file, not a folder"


@pytest.mark.parametrize("case", ["the input", "the input, as the drift table beside --out", "a file of the model",
                                  "a file of the champion", "a FIFO", "a FIFO as the drift plot",
                                  "a folder not made yet", "a file below a file"])
def test_predict_refuses_an_out_it_must_not_write(penguins_run, tmp_path, capsys, case):
    """The input, the model's files (the champion's too) and non-regular files are never replaced:
    exit 3 naming the path, before anything is written (the drift report beside --out included)."""
    args, says = _out_case(case, penguins_run, tmp_path)
    before = _snapshot(tmp_path)
    code, err = run_cli("predict", *args, capsys=capsys)
    assert code == 3 and says in err and "Traceback" not in err, err
    assert _snapshot(tmp_path) == before


def test_predict_refuses_an_out_inside_an_input_folder(tmp_path):
    """A folder of images or clips: --out (or its drift report) inside it would replace an item or be
    read as one by the next predict."""
    from trainflow.errors import OutputError
    from trainflow.tasks.common.predict import output_file

    folder = tmp_path / "images"
    (folder / "cats").mkdir(parents=True)
    (folder / "cats" / "a.png").write_bytes(b"png")
    run = tmp_path / "run"
    run.mkdir()
    for out in (folder / "cats" / "a.png", folder / "p.csv"):
        with pytest.raises(OutputError, match="lies inside the input folder"):
            output_file(out, folder, run, with_drift=False)
    assert output_file(tmp_path / "p.csv", folder, run, with_drift=True) == tmp_path / "p.csv"


@pytest.mark.parametrize("option, column", [("--keep", "prediction"), ("--id", "prediction"),
                                            ("--keep", "proba_Adelie")])
@pytest.mark.parametrize("no_drift", [False, True])
def test_predict_refuses_to_copy_a_column_named_like_a_prediction(penguins_run, tmp_path, capsys, option, column,
                                                                  no_drift):
    rows = pd.read_csv(_batch(tmp_path, "rows", n=30)).assign(prediction="x", proba_Adelie=0.5)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    code, err = run_cli("predict", penguins_run, tmp_path / "rows.csv", "--out", tmp_path / "p.csv", option, column,
                        *(["--no-drift"] if no_drift else []), capsys=capsys)
    assert code == 3 and f"'{column}' ({option})" in err and "Traceback" not in err, err
    assert not (tmp_path / "p.csv").exists()


def test_series_louder_or_faster_are_flagged_like_ones_are_not():
    """Sequences and audio: level, spread and spectral centroid of each signal."""
    rng = np.random.default_rng(6)

    def series(n, amplitude=1.0, freq=0.1):
        t = np.arange(120)
        return [amplitude * np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3)) + rng.normal(0, 0.3, 120)
                for _ in range(n)]

    profile = D.build_profile(D.signal_summaries(series(300)), "sequence", "training series")
    verdict = {name: D.drifted(D.compare(profile, D.signal_summaries(batch)))
               for name, batch in (("like", series(100)), ("louder", series(100, amplitude=1.5)),
                                   ("faster", series(100, freq=0.2)))}
    assert verdict["like"] == [] and "spread" in verdict["louder"] and "centroid" in verdict["faster"], verdict


# ---------------------------------------------------------------- the monitor, its event and the automation


def test_monitor_event_starts_the_training_deployment_through_its_automation(penguins_run, tmp_path):
    """With the real server: the training deployment of deploy/prefect.yaml registered as ``trainflow serve``
    registers it (its drift trigger becomes an automation); a clean batch emits nothing and starts nothing; a
    drifted one emits trainflow.drift.detected, the automation creates a run of the training deployment
    with the event in its parameters, and that run, executed here, trains and its report names the event."""
    import time

    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from tests.conftest import REPO
    from trainflow.flows import serve, watch

    runs = penguins_run.parent.parent
    [deployment] = serve.runner_deployments(REPO / "deploy" / "prefect.yaml", only=["penguins-nightly"], out=str(runs))
    deployment.parameters["overrides"] = list(OVERRIDES)  # the fixture's spec: the retrain reuses its cached fit
    deployment_id = deployment.apply()
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.move(_batch(tmp_path, "clean"), incoming / "1.csv")
    clean = watch.monitor_batch(pipeline=str(SPECS / "penguins.yaml"), batch=str(incoming), runs=str(runs))
    assert clean["event_id"] is None and clean["drifted"] == [] and clean["batch"].endswith("1.csv")
    shutil.move(_batch(tmp_path, "shifted", shift=0.5), incoming / "2.csv")
    os.utime(incoming / "2.csv", ns=(time.time_ns() + 10**9,) * 2)  # the newest, whatever the clock's grain
    found = watch.monitor_batch(pipeline="penguins", batch=str(incoming), runs=str(runs))
    assert found["drifted"] == ["bill_length_mm"] and found["event_id"] and found["batch"].endswith("2.csv")
    history = [json.loads(line) for line in (runs / "penguins" / "monitor" / "history.jsonl").read_text().splitlines()]
    assert [h["drifted"] for h in history] == [0, 1]

    with get_client(sync_client=True) as client:
        deadline, started = time.monotonic() + 60, []
        while not started and time.monotonic() < deadline:
            started = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
            time.sleep(0.5)
    assert len(started) == 1, "the automation did not start exactly one training run"
    trigger = started[0].parameters["trigger"]
    assert trigger["id"] == found["event_id"] and trigger["event"] == watch.DRIFT_EVENT
    assert trigger["drifted"] == ["bill_length_mm"] and trigger["batch"].endswith("2.csv")
    # run what the automation started, here (a worker or `trainflow serve` would pick it up)
    from prefect.flow_engine import run_flow

    retrain = run_flow(serve.run_spec_file, flow_run=started[0], parameters=started[0].parameters)
    assert retrain["trigger"]["id"] == found["event_id"] and "reused" not in retrain
    report = (Path(retrain["run_dir"]) / "report.md").read_text()
    assert "## Started by" in report and found["event_id"] in report and "bill_length_mm" in report


def test_text_from_another_source_is_flagged_by_its_out_of_vocabulary_rate():
    """SMS held-out messages against the SMS training profile: quiet; tweets: out-of-vocabulary words."""
    import re

    def frame(texts):
        words = [re.findall(r"\w+", t.lower()) for t in texts]
        return pd.DataFrame({"words": [len(w) for w in words], "tokens": pd.Series(words, dtype=object)})

    sms = pd.read_csv(DATA / "SMSSpamCollection.tsv", sep="\t")["SMS"].astype(str)
    order = np.random.default_rng(0).permutation(len(sms))
    profile = D.build_profile(frame(sms.iloc[order[:4000]].tolist()), "text", "training messages")
    assert len(profile.columns["tokens"].vocabulary) > 1000 and "you" in profile.columns["tokens"].top
    held_out = D.compare(profile, frame(sms.iloc[order[4000:4200]].tolist()))
    tweets = D.compare(profile, frame(pd.read_csv(DATA / "tweeteval_stance_abortion.csv")["text"].head(200).tolist()))
    assert D.drifted(held_out) == [] and "tokens (oov rate)" in D.drifted(tweets), D.summary_line(tweets, 200)


def test_monitor_cli_bad_batches(penguins_run, tmp_path, capsys):
    """An empty drop folder, a glob matching nothing, a batch of another kind: exit 3 naming it, no batch
    folder left behind."""
    runs = penguins_run.parent.parent
    (tmp_path / "empty").mkdir()
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    before = sorted((runs / "penguins" / "monitor").glob("*")) if (runs / "penguins" / "monitor").exists() else []
    for batch, says in ((tmp_path / "empty", "is empty"), (tmp_path / "none" / "*.csv", "matches no file"),
                        (images, "a.png")):
        code, err = run_cli("monitor", "penguins", batch, "--runs", runs, capsys=capsys)
        assert code == 3 and says in err and "Traceback" not in err, err
    after = sorted((runs / "penguins" / "monitor").glob("*")) if (runs / "penguins" / "monitor").exists() else []
    assert after == before


def test_monitor_keeps_the_newest_batch_folders_when_asked(penguins_run, tmp_path, capsys):
    """``--keep-batches 2``: after three batches two folders stay, the newest, and the history has all
    three lines; ``--keep-batches 0`` is exit 2 naming the setting, before anything is written."""
    runs = tmp_path / "runs"
    shutil.copytree(penguins_run.parent.parent / "penguins", runs / "penguins", symlinks=True,
                    ignore=shutil.ignore_patterns("monitor"))  # the module's runs hold other tests' batches
    monitor = runs / "penguins" / "monitor"
    for i in range(3):
        code, err = run_cli("monitor", "penguins", _batch(tmp_path, f"b{i}"), "--runs", runs, "--keep-batches", 2,
                            capsys=capsys)
        assert code == 0, err
    folders = sorted(p.name for p in monitor.iterdir() if p.is_dir())
    assert len(folders) == 2 and folders[0].endswith("-b1.csv") and folders[1].endswith("-b2.csv"), folders
    assert all((monitor / f / "predictions.csv").is_file() for f in folders)
    history = [json.loads(line) for line in (monitor / "history.jsonl").read_text().splitlines()]
    assert [h["batch"] for h in history] == ["b0.csv", "b1.csv", "b2.csv"]
    code, err = run_cli("monitor", "penguins", _batch(tmp_path, "b3"), "--runs", runs, "--keep-batches", 0,
                        capsys=capsys)
    assert code == 2 and "keep_batches must be a whole number of at least 1" in err and "Traceback" not in err, err
    assert sorted(p.name for p in monitor.iterdir() if p.is_dir()) == folders
    assert len((monitor / "history.jsonl").read_text().splitlines()) == 3


def test_warnings_inside_silenced_are_dropped(tmp_path, capsys):
    """The drift check reads the input predict has read: what predict warned about is said once."""
    from trainflow.alerts import silenced, warn

    with silenced():
        warn("said while silenced")
    warn("said once")
    # only trainflow's own lines: in some test orders Prefect's console handler, bound to an earlier test's
    # closed stream, adds a "--- Logging error ---" report to stderr that quotes the message again
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("trainflow: warning:")]
    assert said == ["trainflow: warning: said once"], said


def test_a_panel_is_profiled_per_series_and_a_level_shift_is_flagged(tmp_path):
    """Forecasting: each series of a panel is an item (level, spread, centroid, missing share). A longer
    history of the same series is not drift; the panel lifted by 1.5 times the spread of its series'
    levels is (per-series summaries compare the panel's series as a population, so a shift small against
    the differences between series goes unseen: docs/monitoring.md)."""
    import json

    from trainflow.refs import DataRef
    from trainflow.tasks.forecast.modality import series_summaries

    rng = np.random.default_rng(0)
    t = np.arange(60)
    levels = 100 + rng.normal(0, 10, 40)  # series of one scale, as a product line's

    def panel(steps: int, lift: float = 0.0) -> pd.DataFrame:
        rows = []
        for i, level in enumerate(levels):
            base = level + 5 * np.sin(2 * np.pi * t[:steps] / 12) + rng.normal(0, 1, steps)
            rows.append(pd.DataFrame({"series_id": f"S{i:02d}", "t": t[:steps], "value": base + lift * 10}))
        return pd.concat(rows, ignore_index=True)

    (tmp_path / "model.json").write_text(json.dumps({
        "values": ["value"], "time": "t", "id": "series_id", "loader_options": {"id": "series_id"},
        "forecast": {"exogenous": []}}))
    panel(48).to_parquet(tmp_path / "train.parquet")
    train = series_summaries(tmp_path, DataRef(path=str(tmp_path / "train.parquet"), digest="d", modality="forecast",
                                               meta={"values": ["value"], "id": "series_id", "source": "train"}))
    assert len(train) == 40 and list(train.columns) == ["level", "spread", "centroid", "missing"]
    profile = D.build_profile(train, "forecast", "training split (40 items)")
    for name, frame, drift in (("later", panel(60), False), ("lifted", panel(60, lift=1.5), True)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        found = D.drifted(D.compare(profile, series_summaries(tmp_path, tmp_path / f"{name}.csv")))
        assert ("level" in found) is drift and (bool(found) is drift), (name, found)


def test_a_history_with_future_regressor_rows_is_summarised_on_its_past(tmp_path):
    """predict's history carries each regressor's future rows after the last value: they are the horizon,
    not missing values of the series, and not part of the regressor's past mean."""
    import json

    from trainflow.tasks.forecast.modality import series_summaries

    (tmp_path / "model.json").write_text(json.dumps({
        "values": ["value", "holiday"], "time": "t", "id": "series_id", "loader_options": {"id": "series_id"},
        "forecast": {"exogenous": ["holiday"]}}))
    rows = []
    for sid in ("A", "B"):
        value = [10.0 + np.sin(k) for k in range(24)] + [np.nan] * 6  # 24 observed steps, 6 future rows
        value[5] = np.nan  # one gap inside the history is missing
        rows.append(pd.DataFrame({"series_id": sid, "t": range(30), "value": value,
                                  "holiday": [0] * 24 + [1] * 6}))
    pd.concat(rows).to_csv(tmp_path / "history.csv", index=False)
    frame = series_summaries(tmp_path, tmp_path / "history.csv")
    assert frame["missing"].tolist() == pytest.approx([1 / 24, 1 / 24])
    assert frame["holiday mean"].tolist() == [0.0, 0.0]


def test_multimodal_rows_are_profiled_per_input_and_a_shifted_input_is_named(tmp_path):
    """Multimodal: each input contributes its own modality's summaries, prefixed with its name, one row
    per joined row; a table column moved by one standard deviation is flagged under its input's name,
    a batch from the training distribution is not, and an input left out of the batch (``missing:
    mask``) shows as that input's columns going missing."""
    from trainflow import modalities
    from trainflow.spec import spec_from_dict
    from trainflow.tasks.common import load
    from trainflow.tasks.common.examples import two_class_images

    def rows(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, pd.DataFrame]:
        x, y = two_class_images(n, seed)
        rng = np.random.default_rng(seed)
        ids = [f"r{seed}_{i}" for i in range(n)]
        np.savez(tmp_path / f"img{seed}.npz", x=x, y=y, ids=np.asarray(ids))
        table = pd.DataFrame({"id": ids, "a": rng.normal(size=n) + y, "b": rng.normal(size=n) + shift})
        table.to_csv(tmp_path / f"tab{seed}.csv", index=False)
        return x, table

    rows(240, 0)
    spec = spec_from_dict({"name": "mm-drift", "data": {"loader": "multimodal", "missing": "mask", "inputs": {
        "image": {"loader": "npz", "path": str(tmp_path / "img0.npz"), "model": {"width": 4, "dense": 8}},
        "extra": {"loader": "csv", "path": str(tmp_path / "tab0.csv")}}},
        "model": {"name": "late_fusion"}, "train": {"epochs": 1, "batch_size": 32}})
    mod = modalities.get("multimodal")
    cache = str(tmp_path / "cache")
    data = mod.profile(load.load(spec.data, cache, spec.modality), spec)
    split = mod.split(data, spec.training_view(), cache)
    model = mod.fit(split, spec.training_view(), cache)
    evaluation = mod.evaluate(model, split, spec, str(tmp_path / "plots"))
    run = tmp_path / "run"
    mod.export(model, str(run))
    D.profile_run(mod, split, evaluation.confusion, spec.task, run)
    profile = D.read_profile(run)
    assert {"image.mean_c0", "image.cell_0_0", "extra.a", "extra.b"} <= set(profile.columns)
    assert profile.columns["extra.b"].rows == split.train.meta["rows"]

    found = {}
    for name, seed, shift, inputs in (("clean", 1, 0.0, "image: img1.npz\nextra: tab1.csv\n"),
                                      ("shifted", 2, 1.0, "image: img2.npz\nextra: tab2.csv\n"),
                                      ("no table", 3, 0.0, "image: img3.npz\n")):
        rows(200, seed, shift)
        (tmp_path / f"{name}.yaml").write_text(inputs)
        frame = mod.predict(run, tmp_path / f"{name}.yaml")
        check = D.check_batch(mod, run, tmp_path / f"{name}.yaml", frame, tmp_path / name)
        found[name] = check.drifted
    assert found["clean"] == [], found
    assert found["shifted"] == ["extra.b"], found
    assert {"extra.a", "extra.b"} <= set(found["no table"]) and not any(f.startswith("image.") for f in found["no table"])


def test_predict_decodes_a_batch_once_for_the_predictions_and_the_drift_check(tmp_path, monkeypatch):
    """Images: predict and its drift check share one read of the batch (tasks/common/batch_reads.py), the
    drift table is still written, and outside a predict call nothing is kept."""
    from trainflow import modalities
    from trainflow.tasks.common.predict import predict_with_drift
    from trainflow.tasks.image import modality as image
    from trainflow.testing import check_round_trip

    mod = modalities.get("image")
    check_round_trip(mod, tmp_path)  # trains the tiny example into tmp_path/run, with its profile
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"modality": "image"}))
    reads = []
    real = image.read_npz
    monkeypatch.setattr(image, "read_npz", lambda path: reads.append(path) or real(path))
    out, check = predict_with_drift(tmp_path / "run", tmp_path / "new.npz", tmp_path / "out" / "p.csv")
    assert len(reads) == 1 and check.line.startswith("drift: ") and check.table.is_file()
    assert len(pd.read_csv(out)) == 4
    image.read_new_images(tmp_path / "new.npz", json.loads((tmp_path / "run" / "model.json").read_text()))
    assert len(reads) == 2
