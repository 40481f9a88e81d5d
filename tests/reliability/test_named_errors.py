"""The crashes issue 23 found, each now a named error: exit code, one message naming the input, no
traceback, nothing that looks complete left behind (and no stray temporary file); the multimodal
table with an integer column and the ARFF label with a ``?`` now work.

Inputs are generated at test time and small. The cases that fail before a flow starts run first;
the others fail inside a flow on the session's Prefect server. Each case is bounded in wall time and in
how much it grows this process's peak memory (the catalogue of resource cases, which run in capped
subprocesses, is tests/reliability/test_adversarial_files.py)."""

from __future__ import annotations

import errno
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import assert_nothing_complete, complete_runs, run_cli, write_spec
from tests.reliability.conftest import MONTHS, recipe_spec

#: wall-clock bound of one failing case, generous for a loaded machine (each takes seconds alone)
CASE_S = 240
#: memory bound of one case: how much it may grow this process at its peak (issue 23: 1 GiB)
RSS_BOUND = 1 << 30


def _status(field: str) -> int:
    """A ``/proc/self/status`` size in bytes (VmRSS: now; VmHWM: the peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> int:
    """Reset this process's peak resident size to its current one (Linux: clear_refs 5); returns it.
    The cases run in this process (on the session's server), so the memory bound is the peak's growth."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _peak_rss() -> int:
    return _status("VmHWM")


def fails(argv: list, code: int, pattern: str, capsys, out: Path) -> str:
    """Run the CLI; assert the exit code, the message, no traceback, nothing complete-looking under
    ``out`` and no temporary file left; returns the message."""
    start, base = time.monotonic(), _reset_peak_rss()
    rc, err = run_cli(*argv, capsys=capsys)
    assert time.monotonic() - start < CASE_S
    assert _peak_rss() - base < RSS_BOUND, f"the case grew this process by {(_peak_rss() - base) / 2**20:.0f} MiB"
    assert rc == code, err
    assert re.search(pattern, err, re.DOTALL), err
    assert "Traceback" not in err and "TRAINFLOW_DEBUG" not in err, err
    assert_nothing_complete(out)
    assert not [p for p in Path(out).rglob("*.tmp*") if ".cache" not in p.parts] if Path(out).exists() else True
    return err


# ---------------------------------------------------------------- before any flow


def test_unknown_encoding_is_a_spec_error_naming_the_field(tmp_path, capsys):
    for encoding in ("utf-99", "rot13"):  # unknown; a codec that is not a text encoding
        spec = recipe_spec(tmp_path, "tabular", data={"encoding": encoding})
        fails(["run", spec, "--out", tmp_path / "runs"], 2,
              rf"'data\.encoding': must be a text encoding .*Got '{encoding}'", capsys, tmp_path / "runs")


def test_a_cache_that_is_a_file_or_holds_a_link_loop(tmp_path, capsys):
    out = tmp_path / "runs"
    out.mkdir()
    spec = recipe_spec(tmp_path, "tabular")
    (out / ".cache").write_text("not a folder")
    fails(["run", spec, "--out", out], 3, r"cache folder '.*runs/\.cache' is a file; expected a folder", capsys, out)
    (out / ".cache").unlink()
    (out / ".cache").mkdir()
    (out / ".cache" / "data").symlink_to(out / ".cache" / "data")
    fails(["run", spec, "--out", out], 3, r"cache entry '.*\.cache/data' is a symbolic link loop", capsys, out)
    (out / ".cache" / "data").unlink()
    (out / ".cache" / "results").mkdir()
    (out / ".cache" / "results" / "abc").symlink_to(out / ".cache" / "results" / "abc")
    fails(["run", spec, "--out", out], 3, r"cache entry '.*results/abc' is a symbolic link loop", capsys, out)


def test_a_champion_pointer_that_is_a_folder_is_named_before_the_run(tmp_path, capsys):
    out = tmp_path / "runs"
    (out / "good-tabular" / "champion.json").mkdir(parents=True)
    fails(["run", recipe_spec(tmp_path, "tabular"), "--out", out], 3,
          r"champion pointer '.*good-tabular/champion\.json' is a folder", capsys, out)
    assert [p.name for p in (out / "good-tabular").iterdir()] == ["champion.json"]


def arff(path: Path, relation: str, rows: list[str]) -> Path:
    path.write_text(f"@relation '{relation}'\n@attribute a numeric\n@attribute b numeric\n"
                    "@attribute l1 {0,1}\n@attribute l2 {0,1}\n@data\n" + "\n".join(rows) + "\n")
    return path


ARFF_ROWS = [f"{i % 5},{i % 3},{i % 2},{(i // 2) % 2}" for i in range(24)]


def test_arff_minus_c_0_is_no_label_not_every_attribute(tmp_path, capsys):
    from trainflow.errors import DataError
    from trainflow.tasks.common.multilabel import read_arff

    for n, what in (("0", "no label attribute"), ("4", "every attribute as a label"), ("-4", "every attribute")):
        with pytest.raises(DataError, match=rf"'-C {n}' of the ARFF file '.*x\.arff' names {what}"):
            read_arff(arff(tmp_path / "x.arff", f"x: -C {n}", ARFF_ROWS), None)


def test_one_question_mark_in_an_arff_label_is_a_reported_gap(tmp_path, capsys):
    from trainflow.tasks.common.multilabel import read_arff

    rows = list(ARFF_ROWS)
    rows[5] = "1,1,?,0"
    df, labels = read_arff(arff(tmp_path / "x.arff", "x: -C -2", rows), None)
    assert labels == ["l1", "l2"] and len(df) == 23
    assert str(df["l1"].dtype) == "int64" and str(df["l2"].dtype) == "int64"  # not text
    err = capsys.readouterr().err
    assert re.search(r"x\.arff': the label attribute 'l1' is missing \('\?'\) in 1 row\(s\) \(data row\(s\) 6\)", err)


def test_arff_minus_c_0_through_the_cli(tmp_path, capsys, prefect_server):
    path = arff(tmp_path / "x.arff", "x: -C 0", ARFF_ROWS)
    spec = write_spec(tmp_path / "arff.yaml", {"name": "arff", "task": "multilabel",
                                                "data": {"loader": "arff", "path": str(path)}})
    fails(["run", spec, "--out", tmp_path / "runs"], 3, r"'-C 0' of the ARFF file '.*x\.arff' names no label attribute",
          capsys, tmp_path / "runs")


# ---------------------------------------------------------------- predict with damaged run folders


@pytest.mark.parametrize("content, why", [
    ("[]", r"a JSON list, not an object"),
    ('{"modality": "nope"}', r"'the data modality' must be one of"),
    ('{"spec": {"data": 3}}', r"TypeError"),
    ('{"spec": 5', r"JSONDecodeError"),
])
def test_predict_with_a_damaged_metrics_json_names_it(content, why, tmp_path, capsys, trained):
    run = shutil.copytree(trained("tabular"), tmp_path / "run")
    (run / "metrics.json").write_text(content)
    (tmp_path / "new.csv").write_text("a,b,c\n1,2,x\n")
    fails(["predict", run, tmp_path / "new.csv", "--out", tmp_path / "p.csv"], 3,
          rf"saved file '.*run/metrics\.json' is damaged \(.*{why}", capsys, tmp_path / "runs")
    assert not (tmp_path / "p.csv").exists()


# ---------------------------------------------------------------- inside a flow


def test_mixed_time_zones_in_a_forecast_time_column(tmp_path, capsys, prefect_server):
    times = [f"{m}-01T00:00:00{'+01:00' if i < 20 else '+02:00'}" for i, m in enumerate(MONTHS)]
    (tmp_path / "tz.csv").write_text("month,value\n" + "".join(f"{t},{100 + i}\n" for i, t in enumerate(times)))
    spec = recipe_spec(tmp_path, "forecast", tmp_path / "tz.csv")
    fails(["run", spec, "--out", tmp_path / "runs"], 3,
          r"time column 'month' of '.*tz\.csv' mixes time zones \(UTC offsets \+01:00, \+02:00\)", capsys,
          tmp_path / "runs")


def test_nan_samples_in_a_wav_are_refused_naming_the_file(tmp_path, capsys, prefect_server):
    import soundfile as sf

    from trainflow.tasks.audio.modality import write_tones

    write_tones(tmp_path / "clips", {"low": 300.0, "high": 1200.0}, per_class=4)
    wave = np.sin(np.arange(2000) / 5).astype(np.float32)
    wave[[10, 500, 900]] = np.nan
    sf.write(tmp_path / "clips" / "low" / "bad.wav", wave, 8000, subtype="FLOAT")
    spec = write_spec(tmp_path / "audio.yaml", {
        "name": "nan-audio", "data": {"loader": "audio_folder", "path": str(tmp_path / "clips"), "sample_rate": 8000,
                                      "unreadable": "error"},  # strict: the default would leave the file out
        "validation": {"min_rows": 4}, "preprocess": {"audio": {"duration": 0.25, "n_mels": 16, "n_fft": 256,
                                                                 "hop_length": 64}},
        "model": {"name": "audio_cnn", "width": 4, "dense": 8}, "train": {"epochs": 1, "batch_size": 8}})
    fails(["run", spec, "--out", tmp_path / "runs"], 3,
          r"audio file '.*low/bad\.wav' holds 3 sample\(s\) that are not finite numbers \(NaN or infinite; the "
          r"first at sample 10\)", capsys, tmp_path / "runs")


def test_a_promotion_failing_after_publish_marks_the_run_failed(tmp_path, capsys, prefect_server, monkeypatch):
    """Another process makes champion.json a folder after the run started (the check before the run
    passed): the run, already published, is renamed .failed with error.txt; no temporary file stays."""
    from trainflow.tasks.common import promote

    real = promote.read_champion

    def racing(out, pipeline):
        (Path(out) / pipeline / "champion.json").mkdir()
        return real(out, pipeline)

    monkeypatch.setattr(promote, "read_champion", racing)
    out = tmp_path / "runs"
    fails(["run", recipe_spec(tmp_path, "tabular"), "--out", out], 3,
          r"champion pointer '.*champion\.json' is a folder", capsys, out)
    failed, = (out / "good-tabular").glob("*.failed")
    assert "promotion failed" in (failed / "error.txt").read_text()
    assert (failed / "metrics.unpublished.json").is_file() and not (failed / "metrics.json").exists()
    assert not list((out / "good-tabular").glob(".*tmp*"))


def test_a_promotion_failing_after_the_switch_gives_the_champion_back(tmp_path, capsys, prefect_server, monkeypatch):
    """The pointer is switched to the new run, then its promotion fails (here: the artifact upload):
    the run is renamed .failed, and the pointer goes back to the champion before it, so that
    `trainflow predict <pipeline>` and the next promotion never stand on a failed run."""
    from trainflow.errors import OutputError
    from trainflow.tasks.common import promote

    out, spec = tmp_path / "runs", recipe_spec(tmp_path, "tabular")
    assert run_cli("run", spec, "--out", out, capsys=capsys)[0] == 0
    first = promote.read_champion(out, "good-tabular")["run_id"]

    def upload_fails(summary, decision):
        assert promote.read_champion(out, "good-tabular")["run_id"] == summary["run_id"]  # switched
        raise OutputError("the artifact could not be written")

    monkeypatch.setattr(promote, "promotion_artifact", upload_fails)
    rc, err = run_cli("run", spec, "--out", out, "--set", "promotion.rule=point", capsys=capsys)
    assert rc == 3 and "the artifact could not be written" in err and "Traceback" not in err, err
    failed, = (out / "good-tabular").glob("*.failed")
    pointer = promote.read_champion(out, "good-tabular")
    assert pointer["run_id"] == first != failed.name.removesuffix(".failed")
    assert "which failed after its promotion" in pointer["rebuilt"]  # and a warning says so (stderr or the run's log)
    assert promote.resolve_model("good-tabular", out) == out / "good-tabular" / first


def mount_tiny_disk(folder: Path, size: str) -> bool:
    """A tmpfs of ``size`` at ``folder`` (root only); False when it cannot be mounted here."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def test_a_full_disk_during_the_run_names_the_file(tmp_path, capsys, prefect_server, monkeypatch):
    disk = tmp_path / "disk"
    mounted = mount_tiny_disk(disk, "40k")  # room for the cached table, not for the model and report
    if not mounted:  # no tmpfs here: the report's write fails as a full disk would
        real = Path.write_text

        def full(self, *args, **kwargs):
            if self.name.startswith(".report.md.tmp"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "write_text", full)
    try:
        fails(["run", recipe_spec(tmp_path, "tabular"), "--out", disk / "runs"], 3,
              r"No space left on the device .* while writing (.*disk/runs.*)", capsys, disk / "runs")
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)


def test_a_multimodal_table_with_an_integer_column_trains(tmp_path, capsys, prefect_server):
    rng = np.random.default_rng(0)
    n = 48
    a, b = rng.integers(0, 2, n), rng.integers(0, 2, n)
    x = rng.integers(0, 40, (n, 8, 8)).astype(np.uint8)
    x[a == 1, :4] += 150
    x[a == 0, 4:] += 150
    np.savez(tmp_path / "images.npz", x=x, y=2 * a + b)
    pd.DataFrame({"b": b, "count": rng.integers(0, 9, n), "noise": rng.normal(size=n)}).to_csv(
        tmp_path / "extra.csv", index=False)  # 'b' and 'count' are int64 columns
    spec = write_spec(tmp_path / "mm.yaml", {
        "name": "mm-int", "seed": 0, "validation": {"min_rows": 10}, "split": {"test_size": 0.25},
        "data": {"loader": "multimodal", "inputs": {
            "image": {"loader": "npz", "path": str(tmp_path / "images.npz"), "model": {"width": 4, "dense": 8}},
            "extra": {"loader": "csv", "path": str(tmp_path / "extra.csv")}}},
        "model": {"name": "late_fusion"}, "train": {"epochs": 2, "batch_size": 16, "num_threads": 1}})
    rc, err = run_cli("run", spec, "--out", tmp_path / "runs", capsys=capsys)
    assert rc == 0, err
    run, = complete_runs(tmp_path / "runs", "mm-int")
    assert pd.read_parquet(run / "extra" / "blank.parquet")[["b", "count"]].isna().all().all()

    # the same run folder with a damaged model.json: named, exit 3
    config_file = run / "model.json"
    config = json.loads(config_file.read_text())
    for broken in ({**config, "inputs": []}, {**config, "classes": "abc"},
                   {**config, "inputs": {"image": {**config["inputs"]["image"], "modality": "video"}}}):
        config_file.write_text(json.dumps(broken))
        (tmp_path / "new.yaml").write_text(f"image: {tmp_path / 'images.npz'}\nextra: {tmp_path / 'extra.csv'}\n")
        fails(["predict", run, tmp_path / "new.yaml", "--out", tmp_path / "p.csv"], 3,
              r"saved file '.*model\.json' is damaged", capsys, tmp_path / "none")
        assert not (tmp_path / "p.csv").exists()
