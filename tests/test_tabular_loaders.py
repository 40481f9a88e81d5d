"""The csv and parquet loaders, and the local Prefect settings a first run needs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainflow.errors import DataError
from trainflow.tasks.common.load import fingerprint
from trainflow.tasks.tabular.loaders import CsvConfig, TableConfig, load_csv, load_parquet


def test_csv_options_delimiter_encoding_and_na_markers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("größe;farbe;ziel\n1,5;rot;a\n?;grün;b\n3;?;a\n".encode("latin-1"))
    df = load_csv(CsvConfig(path=str(path), target="ziel", delimiter=";", encoding="latin-1", na_values=["?"]))
    assert list(df.columns) == ["größe", "farbe", "ziel"]
    assert df["größe"].isna().sum() == 1 and df["farbe"].isna().sum() == 1


def test_wrong_encoding_is_named(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("a,b\n\xff\xfe,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="d.csv.*not valid utf-8"):
        load_csv(CsvConfig(path=str(path)))


def test_parquet_loader_selects_features_and_target(tmp_path):
    path = tmp_path / "d.parquet"
    pd.DataFrame({"a": [1, 2], "b": [3, 4], "junk": [0, 0], "y": ["p", "q"]}).to_parquet(path)
    df = load_parquet(TableConfig(path=str(path), target="y", drop=["junk"]))
    assert list(df.columns) == ["a", "b", "y"]
    with pytest.raises(DataError, match="not a readable Parquet file"):
        (tmp_path / "bad.parquet").write_text("nope")
        load_parquet(TableConfig(path=str(tmp_path / "bad.parquet")))


def test_a_missing_named_column_is_named_once_with_its_option(tmp_path):
    # the message said "The column column 'bill_lenght_mm'" and not which option named it
    path = tmp_path / "d.csv"
    path.write_text("bill_length_mm,sex,y\n1,m,p\n2,f,q\n")
    for config, message in [
        (CsvConfig(path=str(path), target="y", features=["bill_lenght_mm"]),
         "The column 'bill_lenght_mm' (data.features) is not in"),
        (CsvConfig(path=str(path), target="y", drop=["sx"]), "The column 'sx' (data.drop) is not in"),
        (CsvConfig(path=str(path), target="why"), "The target column 'why' (data.target) is not in"),
    ]:
        with pytest.raises(DataError) as err:
            load_csv(config)
        assert str(err.value).startswith(message) and "column column" not in str(err.value), str(err.value)
    with pytest.raises(DataError, match="did you mean 'bill_length_mm'"):
        load_csv(CsvConfig(path=str(path), target="y", features=["bill_lenght_mm"]))


def test_fingerprint_follows_file_content_and_options(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,p\n")
    one = fingerprint(CsvConfig(path=str(path)))
    assert fingerprint(CsvConfig(path=str(path))) == one
    assert fingerprint(CsvConfig(path=str(path), delimiter=";")) != one
    moved = tmp_path / "elsewhere.csv"
    moved.write_text(path.read_text())
    assert fingerprint(CsvConfig(path=str(moved))) == one  # same content, other place
    path.write_text("a,y\n2,p\n")
    assert fingerprint(CsvConfig(path=str(path))) != one


def test_local_runs_get_a_long_server_startup_and_no_heartbeat(tmp_path):
    """In a fresh process without PREFECT_API_URL (the test session has a server, so not here)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PREFECT_HOME"] = str(tmp_path)
    env.pop("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", None)
    from trainflow.flows.runtime import EPHEMERAL_STARTUP_TIMEOUT_S

    assert settings_in_a_fresh_process(
        "[s.api.url, s.server.ephemeral.startup_timeout_seconds, s.flows.heartbeat_frequency]",
        env) == [None, EPHEMERAL_STARTUP_TIMEOUT_S, None]


def settings_in_a_fresh_process(expression: str, env: dict[str, str]) -> object:
    """The JSON value of ``expression`` (``s``: the current settings; ``before``: those before) inside
    ``prefect_settings()``, in a fresh process with environment ``env``."""
    import json
    import subprocess
    import sys

    code = ("import json; from prefect.settings import get_current_settings as g; "
            "from trainflow.flows.runtime import prefect_settings\n"
            "before = g()\n"
            "with prefect_settings():\n"
            f"    s = g(); print(json.dumps({expression}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.usefixtures("prefect_server")  # a configured server that answers (PREFECT_API_URL is its URL)
def test_configured_server_settings_are_left_alone():
    from prefect.settings import get_current_settings, temporary_settings

    from trainflow.flows.runtime import prefect_settings

    assert get_current_settings().api.url
    with temporary_settings(updates={"flows.heartbeat_frequency": 60}):
        with prefect_settings():
            assert get_current_settings().flows.heartbeat_frequency == 60


@pytest.mark.usefixtures("prefect_server")
def test_configured_server_runs_have_no_heartbeat_unless_the_user_set_one(tmp_path):
    """Prefect's default heartbeat (180 s) costs a CLI run 0-1 s at the flow's end (its thread sleeps in
    1 s steps); one the user set, in the environment or the profile, stays."""
    import os

    from prefect.settings import get_current_settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path), PREFECT_API_URL=str(get_current_settings().api.url))

    def heartbeats(**extra: str) -> object:
        return settings_in_a_fresh_process("[before.flows.heartbeat_frequency, s.flows.heartbeat_frequency]",
                                           {**env, **extra})

    assert heartbeats() == [180, None]  # Prefect's default, turned off
    assert heartbeats(PREFECT_FLOWS_HEARTBEAT_FREQUENCY="45") == [45, 45]
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('active = "p"\n[profiles.p]\nPREFECT_FLOWS_HEARTBEAT_FREQUENCY = "90"\n')
    assert heartbeats(PREFECT_PROFILES_PATH=str(profiles)) == [90, 90]


def test_the_cache_copies_an_unchanged_parquet_source_and_writes_anything_else(tmp_path, monkeypatch):
    """The load stage's cache file is a real copy of a Parquet source that reads back as the loaded
    frame and has not changed since before the process started; otherwise the frame is written out."""
    import os
    import time

    from trainflow import refs
    from trainflow.tasks.common.load import load
    from trainflow.spec import spec_from_dict

    path = tmp_path / "d.parquet"
    pd.DataFrame({"a": [1.5, 2.5, 3.5], "junk": [0, 0, 1], "y": ["p", "q", "p"]}).to_parquet(path)

    def stored(settled: bool, **data) -> tuple[pd.DataFrame, bytes]:
        # not settled: the process "started" before the source was written (now - 1 s is not that on a loaded
        # machine, where the first load can take longer than a second)
        monkeypatch.setattr(refs, "_SETTLED_BEFORE_NS", time.time_ns() + 10**9 if settled
                            else path.stat().st_ctime_ns - 10**9)
        spec = spec_from_dict({"name": "t", "data": {"loader": "parquet", "path": str(path), "target": "y", **data}})
        ref = load(spec.data, str(tmp_path / f"cache-{settled}-{len(data)}"), "tabular")
        return pd.read_parquet(ref.path), open(ref.path, "rb").read()

    back, raw = stored(settled=True)
    assert raw == path.read_bytes(), "an unchanged source was not copied byte for byte"
    pd.testing.assert_frame_equal(back, pd.read_parquet(path))
    back, raw = stored(settled=False)  # changed while this process ran: written from the frame
    assert raw != path.read_bytes()
    pd.testing.assert_frame_equal(back, pd.read_parquet(path))
    back, raw = stored(settled=True, drop=["junk"])  # not the whole file: written from the frame
    assert list(back.columns) == ["a", "y"] and raw != path.read_bytes()

    # a copy, not a link: a later edit of the source does not show through the cache
    cache_file = next((tmp_path / "cache-True-0" / "data").glob("*.parquet"))
    before = cache_file.read_bytes()
    monkeypatch.setattr(refs, "_SETTLED_BEFORE_NS", time.time_ns())
    time.sleep(0.05)  # past the file system clock's coarseness
    with open(path, "r+b") as fh:
        fh.write(b"XXXX")
    assert cache_file.read_bytes() == before and os.stat(cache_file).st_ino != os.stat(path).st_ino
    # edited in place after the process started: not copied
    assert not refs.copy_unchanged(path, tmp_path / "again.parquet") and not (tmp_path / "again.parquet").exists()


def test_predict_reads_new_rows_as_the_training_csv_was_read(tmp_path):
    """A model trained on a ';'-delimited latin-1 file with '?' for missing reads new rows in that format."""
    from trainflow.spec import spec_from_dict
    from trainflow.tasks.tabular import modality as tabular

    rng = np.random.default_rng(0)
    rows = [(f"{x:.2f}".replace(".", ","), "grün" if x > 0 else "rot", "hoch" if x > 0 else "tief")
            for x in rng.normal(0, 1, 80)]
    lines = ["größe;farbe;ziel"] + [";".join(r) for r in rows] + ["?;rot;tief"]
    (tmp_path / "d.csv").write_bytes("\n".join(lines).encode("latin-1") + b"\n")
    data = {"loader": "csv", "path": str(tmp_path / "d.csv"), "target": "ziel", "delimiter": ";",
            "encoding": "latin-1", "na_values": ["?"]}
    spec = spec_from_dict({"name": "de", "data": data, "validation": {"min_rows": 10}, "model": {"name": "logistic_regression"}})
    cfg = CsvConfig(**{k: v for k, v in data.items() if k != "loader"})
    cache = str(tmp_path / "cache")
    ref = tabular.store(load_csv(cfg), cache, "d" * 64, cfg)
    model = tabular.fit(tabular.split(ref, spec, cache), spec, cache)
    run = tmp_path / "run"
    run.mkdir()
    tabular.export(model, str(run))
    (tmp_path / "new.csv").write_bytes("größe;farbe\n1,5;grün\n?;rot\n".encode("latin-1"))
    pred = tabular.predict(run, tmp_path / "new.csv")
    assert len(pred) == 2 and pred["prediction"].iloc[0] == "hoch"


def test_a_nameless_column_is_dropped_when_empty_and_named_by_position_otherwise(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,ziel,\n1,2,x,\n3,4,y,\n")  # a delimiter at the end of every line
    assert list(load_csv(CsvConfig(path=str(path), target="ziel")).columns) == ["a", "b", "ziel"]
    path.write_text(",a,ziel\n0,2,x\n1,4,y\n")  # the index a DataFrame writes first
    assert list(load_csv(CsvConfig(path=str(path), target="ziel")).columns) == ["column 1", "a", "ziel"]
