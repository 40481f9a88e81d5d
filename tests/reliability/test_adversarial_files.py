"""Adversarial files (issue 23 items 1-5): poisoned cache records, model folders whose files run
patterns, read outside or declare huge sizes, and special files where data should be.

Every file is made at test time and small. The CLI cases run ``trainflow`` in a subprocess under
``RLIMIT_AS`` (2 GiB: importing torch alone reserves ~0.65 GiB of address space) and 30 s of CPU
(``RLIMIT_CPU``; a 120 s wall timeout catches a reader blocked on a FIFO), and assert: the exit code (never 1), the input named, no traceback, no predictions or
finished run left, no marker file made by a payload, and a peak RSS under 1 GiB.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import complete_runs, run_cli, write_spec
from tests.reliability.conftest import recipe_spec
from trainflow import trust
from trainflow.errors import DataError

ADDRESS_SPACE = 2 << 30
RSS_BOUND = 1 << 30
CPU_S = 30  # the time bound, in CPU seconds: wall time on a shared, loaded machine says little
WALL_S = 120  # what catches a reader blocked on a FIFO (which burns no CPU)
CLI = "import sys; from trainflow.flows.cli import main; sys.exit(main(sys.argv[1:]))"
# The command's parent: a small interpreter that forks it and writes its wait status, CPU time and peak
# memory (wait4) to a file. A child forked by the test process itself starts its peak from the test
# process's size (Linux keeps the high-water mark of the image an exec replaces): 1.1 GiB for a pytest
# worker that ran other files first.
RUNNER = f"""import os, sys
report, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-c", {CLI!r}, *argv])
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as fh:
    fh.write(f"{{status}} {{usage.ru_utime + usage.ru_stime}} {{usage.ru_maxrss}}")
"""


def _caps() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_S, CPU_S))


def capped(*argv: object) -> tuple[int, str]:
    """``trainflow argv`` in a subprocess under the memory and time caps: (exit code, stderr). Its CPU
    time and peak memory are its own (``wait4`` in :data:`RUNNER`)."""
    import signal

    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1", "TRAINFLOW_DEBUG": ""}
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    with tempfile.TemporaryFile("w+") as stderr, tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "usage"
        proc = subprocess.Popen([sys.executable, "-c", RUNNER, report, *map(str, argv)], stdout=subprocess.DEVNULL,
                                stderr=stderr, text=True, preexec_fn=_caps, env=env, start_new_session=True)
        fired = threading.Event()  # a reader blocked on a FIFO burns no CPU: the wall clock catches it
        late = threading.Timer(WALL_S, lambda: fired.set() or os.killpg(proc.pid, signal.SIGKILL))
        late.start()
        try:
            proc.wait()
        finally:
            late.cancel()
        stderr.seek(0)
        err = stderr.read()
        assert not fired.is_set(), f"the command ran over {WALL_S} s"
        assert report.is_file(), f"the command's parent exited {proc.returncode} without a report: {err[-2000:]}"
        status, cpu, peak = report.read_text().split()
    cpu, peak = float(cpu), int(peak) * 1024
    assert cpu < CPU_S, f"the command took {cpu:.1f} s of CPU"
    assert peak < RSS_BOUND, f"the command used {peak / 2**20:.0f} MiB"
    return os.waitstatus_to_exitcode(int(status)), err


def refused(code: int, err: str, expected: int, *named: str) -> None:
    assert code == expected, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    for text in named:
        assert text in err, (text, err[-2000:])


# ---------------------------------------------------------------- item 1: cache records


def test_poisoned_cache_records_are_misses_with_a_warning(tmp_path, prefect_server, capfd, caplog, monkeypatch):
    spec = recipe_spec(tmp_path, "tabular")
    out = tmp_path / "runs"
    assert run_cli("run", spec, "--out", out)[0] == 0
    records = sorted((out / ".cache" / "results").iterdir())
    assert len(records) == 2

    marker = tmp_path / "PWNED"
    evil = tmp_path / "site"
    evil.mkdir()
    # importing this module (what a JSON __class__ makes Prefect do) leaves the marker
    (evil / "evil_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Thing: pass\n")
    monkeypatch.syspath_prepend(str(evil))

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    def poison(record: Path, how: str) -> None:
        doc = json.loads(record.read_text())
        if how == "pickle":
            doc["metadata"]["serializer"] = {"type": "pickle", "picklelib": "pickle"}
            doc["result"] = base64.b64encode(pickle.dumps(Payload())).decode()
        elif how == "class":
            doc["result"] = json.dumps({"__class__": "evil_mod.Thing", "data": {}})
        else:  # valid JSON of the wrong shape
            doc = {"result": [1, 2, 3], "metadata": "nope"}
        record.write_text(json.dumps(doc))

    for hows in (("pickle", "class"), ("shape", "shape")):
        for record, how in zip(sorted((out / ".cache" / "results").iterdir()), hows):
            poison(record, how)
        capfd.readouterr()
        caplog.clear()
        assert run_cli("run", spec, "--out", out)[0] == 0, hows
        # Prefect's console handler writes to the stream it found when logging was first configured: this
        # test's stderr when it runs alone (caplog's handler is then reset), an earlier test's in a full
        # session (caplog sees the records then); each warning names its record, counted once
        logged = capfd.readouterr().err + caplog.text
        missed = set(re.findall(r"cached result record '([^']+)'[^\n]*treating it as a cache miss", logged))
        assert len(missed) == 2, logged
        assert not marker.exists(), "a cache record ran code"
    assert "evil_mod" not in sys.modules
    assert len(complete_runs(out, "good-tabular")) == 3
    # the rewritten records are trainflow's again: the next run is served from the cache
    capfd.readouterr()
    caplog.clear()
    assert run_cli("run", spec, "--out", out)[0] == 0
    assert "cache miss" not in capfd.readouterr().err + caplog.text


def test_record_checks_refuse_other_serializers_and_classes():
    from trainflow.cache_records import record_problem

    good = {"metadata": {"serializer": {"type": "json", "jsonlib": "json",
                                        "object_encoder": "prefect.serializers.prefect_json_object_encoder",
                                        "object_decoder": "prefect.serializers.prefect_json_object_decoder",
                                        "dumps_kwargs": {}, "loads_kwargs": {}}},
            "result": json.dumps({"__class__": "trainflow.refs.DataRef",
                                  "data": {"path": "p", "digest": "d", "modality": "tabular"}})}
    assert record_problem(json.dumps(good).encode()) is None
    decoder = json.loads(json.dumps(good))
    decoder["metadata"]["serializer"]["object_decoder"] = "os.system"
    nested = json.loads(json.dumps(good))
    nested["result"] = json.dumps({"__class__": "trainflow.refs.DataRef",
                                   "data": {"path": {"__class__": "os.system", "data": 1}, "digest": "d",
                                            "modality": "t"}})
    exc = json.loads(json.dumps(good))
    exc["result"] = json.dumps({"__exc_type__": "builtins.SystemExit", "message": "x"})
    for bad in (decoder, nested, exc, [1], {"metadata": {}, "result": "{}"}):
        assert record_problem(json.dumps(bad).encode()), bad
    assert record_problem(b"[" * 100_000) is not None  # nested too deeply: a miss, not a crash


# ---------------------------------------------------------------- item 2: model parameters


def _retrained_text(trained_dir: Path, tmp: Path, **params) -> Path:
    """A copy of the trained text run whose TF-IDF step has ``params`` set."""
    import skops.io as sio

    copy = tmp / "received" / trained_dir.name
    shutil.copytree(trained_dir, copy)
    model = copy / "model.skops"
    pipe = sio.load(model, trusted=sorted(trust.skops_types(model)))
    pipe.steps[0][1].set_params(**params)
    sio.dump(pipe, model)
    return copy


def _texts(tmp: Path) -> Path:
    """A tiny input for a text model's predict."""
    (tmp / "new.csv").write_text("text\nhello there\n")
    return tmp / "new.csv"


def _first(node, test):
    """The first dict node of a skops schema for which ``test`` holds."""
    if isinstance(node, dict):
        if test(node):
            return node
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            found = _first(item, test)
            if found is not None:
                return found
    return None


def _write_schema(model: Path, schema: dict) -> None:
    """Replace the ``schema.json`` of the skops file ``model`` (its arrays stay as they are)."""
    with zipfile.ZipFile(model) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(model, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_model_parameters_that_read_files_or_hang_are_refused(trained, tmp_path):
    from sklearn.feature_selection import f_classif

    run = trained("text")
    texts = tmp_path / "new.csv"
    texts.write_text("text\n/etc/hostname\n" + "a" * 34 + "\n")
    cases = {"input": {"input": "filename"}, "pattern": {"token_pattern": "(?:a+)+c"},
             # a function the trusted set holds (a reducer's score function), as the vectorizer's preprocessor
             "function": {"preprocessor": f_classif}}
    for name, params in cases.items():
        folder = _retrained_text(run, tmp_path / name, **params)
        code, err = capped("predict", folder, texts, "--out", tmp_path / f"{name}.csv")
        refused(code, err, 3, str(folder / "model.skops"), "never saves")
        assert not (tmp_path / f"{name}.csv").exists()


def test_plain_types_called_with_sizes_are_refused(trained, tmp_path):
    run = trained("text")
    folder = tmp_path / "bytes" / run.name
    shutil.copytree(run, folder)
    model = folder / "model.skops"
    # a node that builds builtins.bytes(10**12) through a reduce, hidden in place of a plain string
    with zipfile.ZipFile(model) as z:
        schema = json.loads(z.read("schema.json"))
    old = _first(schema, lambda n: n.get("__class__") == "str" and n.get("__loader__") == "JsonNode")
    bomb = {"__class__": "bytes", "__module__": "builtins", "__loader__": "ReduceNode",
            "__reduce__": {"args": {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode",
                                    "content": [{"__class__": "int", "__module__": "builtins",
                                                 "__loader__": "JsonNode", "content": "1000000000000",
                                                 "is_json": True}]}},
            "content": {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {}}}
    old.clear()
    old.update(bomb)
    _write_schema(model, schema)
    code, err = capped("predict", folder, _texts(tmp_path), "--out", tmp_path / "p.csv")
    refused(code, err, 3, str(model), "builtins.bytes")


# ---------------------------------------------------------------- item 3: a model folder names only its own files


def _multimodal_folder(tmp: Path, inputs: dict) -> Path:
    run = tmp / "runs" / "mm" / "20260101-000000-000000"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"modality": "multimodal", "metrics": {}}))
    inputs = {n: {"modality": "tabular", "options": {}, "blank": "blank.npz", **info} for n, info in inputs.items()}
    (run / "model.json").write_text(json.dumps({"fusion": "late", "inputs": inputs, "classes": ["a", "b"],
                                                "missing": "drop", "join": "inner"}))
    (tmp / "new.yaml").write_text("x: new.npz\n")
    return run


def test_multimodal_names_outside_the_folder_are_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cases = {
        "dots": ({"../../../../outside": {}}, "'../../../../outside'"),
        "absolute": ({"x": {"blank": "/etc/passwd"}}, "'/etc/passwd'"),
        "fifo": ({"x": {}}, "FIFO"),
        "link": ({"x": {}}, "symbolic link"),
    }
    for name, (inputs, named) in cases.items():
        t = tmp_path / name
        run = _multimodal_folder(t, inputs)
        if name != "dots":
            (run / "x").mkdir()
        if name in ("fifo", "link"):
            os.mkfifo(run / "x" / "blank.npz") if name == "fifo" else os.symlink(fifo, run / "x" / "blank.npz")
        code, err = capped("predict", run, t / "new.yaml", "--out", t / "pred.csv")
        refused(code, err, 3, named, "may only name files inside it")
        assert not (t / "pred.csv").exists()


def test_weights_linked_out_of_the_folder_are_refused(tmp_path):
    import torch

    target = tmp_path / "elsewhere.safetensors"
    target.write_bytes(b"{}")
    folder = tmp_path / "model"
    folder.mkdir()
    os.symlink(target, folder / "model.safetensors")
    with pytest.raises(DataError, match="symbolic link"):
        trust.load_weights(torch.nn.Linear(1, 1), folder / "model.safetensors")


# ---------------------------------------------------------------- item 4: sizes declared before allocation


def _declare_size(archive: Path, member: str, size: int) -> None:
    """Patch the central-directory entry of ``member`` to declare ``size`` uncompressed bytes."""
    raw = bytearray(archive.read_bytes())
    name = member.encode()
    at = raw.find(b"PK\x01\x02")  # the first central-directory header
    while at != -1:
        name_len = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46: at + 46 + name_len] == name:
            struct.pack_into("<I", raw, at + 24, size)
            archive.write_bytes(bytes(raw))
            return
        at = raw.find(b"PK\x01\x02", at + 4)
    raise AssertionError(member)


def test_zip_members_declaring_huge_sizes_are_refused_before_reading(trained, tmp_path):
    run = trained("text")
    folder = tmp_path / "bomb" / run.name
    shutil.copytree(run, folder)
    _declare_size(folder / "model.skops", "schema.json", 0xFFFF_FFF0)
    code, err = capped("predict", folder, _texts(tmp_path), "--out", tmp_path / "p.csv")
    refused(code, err, 3, str(folder / "model.skops"), "once decompressed, more than the 1,073,741,824")

    # an .npy member whose header declares 16 GB in a few bytes (NumPy would allocate it first)
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2000000000,), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\x00" * 16
    npz = tmp_path / "model.npz"
    with zipfile.ZipFile(npz, "w") as z:
        z.writestr("x.npy", npy)
    from trainflow.refs import load_npz

    with pytest.raises(DataError, match="declares an array of 16,000,000,000 bytes"):
        load_npz(npz, limit=1 << 30)


def _png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (the pixel data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_alias_bombs_special_files_and_pixel_bombs_fail_fast(trained, tmp_path):
    # a 2 KB YAML alias bomb: refused at the first alias, naming the file
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("name: bomb\n" + "\n".join(lines) + "\n")
    assert bomb.stat().st_size < 2048
    code, err = capped("validate", bomb)
    refused(code, err, 2, str(bomb), "alias")

    # data.path under /proc: a "regular" file that blocks (kmsg) or never ends
    spec = recipe_spec(tmp_path / "proc", "tabular", "/proc/kmsg")
    code, err = capped("validate", spec)
    refused(code, err, 3, "/proc/kmsg")

    # a text_folder whose *.txt member is a FIFO, or a link to /dev/zero
    for kind in ("fifo", "zero"):
        root = tmp_path / f"docs-{kind}"
        for label in ("ham", "spam"):
            (root / label).mkdir(parents=True)
            for i in range(4):
                (root / label / f"{i}.txt").write_text(f"{label} words {i}")
        bad = root / "spam" / "bad.txt"
        os.mkfifo(bad) if kind == "fifo" else os.symlink("/dev/zero", bad)
        spec = write_spec(tmp_path / f"{kind}.yaml", {"name": "docs", "data": {"loader": "text_folder",
                                                                               "path": str(root)}})
        code, err = capped("validate", spec)
        refused(code, err, 3, str(bad))

    # an image whose header declares 40000 x 40000 pixels, at predict
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "huge.png").write_bytes(_png(40_000, 40_000))
    code, err = capped("predict", trained("image"), images, "--out", tmp_path / "pred.csv")
    refused(code, err, 3, "huge.png")
    assert not (tmp_path / "pred.csv").exists()


def test_whole_file_reads_are_capped(tmp_path, monkeypatch):
    from trainflow import files

    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 600 + "0]")
    monkeypatch.setattr(trust, "MAX_JSON_BYTES", 1000)
    with pytest.raises(DataError, match="more than the 1,000"):
        trust.read_json(big, limit=1000)
    with pytest.raises(DataError, match="not a regular file"):
        files.read_capped("/dev/zero")


def test_audio_frames_and_padding_are_checked_before_allocation(tmp_path):
    import soundfile as sf

    from trainflow.tasks.audio.loaders import read_clip
    from trainflow.tasks.sequence.loaders import pad

    # a FLAC whose STREAMINFO declares 2^36 - 1 samples (the file holds 1000)
    sf.write(tmp_path / "ok.flac", np.zeros(1000, dtype=np.float32), 8000)
    raw = bytearray((tmp_path / "ok.flac").read_bytes())
    fields = int.from_bytes(raw[18:26], "big")  # rate(20) channels(3) bits(5) samples(36)
    raw[18:26] = (fields | ((1 << 36) - 1)).to_bytes(8, "big")
    (tmp_path / "bomb.flac").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"bomb.flac' declares 68,719,476,735 frames"):
        read_clip(tmp_path / "bomb.flac", 8000)

    # one 2-million-step series among short ones: reported, not padded
    with pytest.raises(DataError, match=r"series #51 has 2,000,000 steps where the median is 10"):
        pad([np.zeros((10, 1))] * 50 + [np.zeros((2_000_000, 1))])
    x, mask = pad([np.zeros((10, 1)), np.ones((4, 1))])
    assert x.shape == (2, 10, 1) and mask.sum() == 14


def test_an_outlier_series_is_named_or_cut_when_the_spec_says(tmp_path, monkeypatch, capsys):
    from trainflow.tasks.sequence import loaders
    from trainflow.tasks.sequence.modality import store

    head = "@problemName toy\n@univariate true\n@equalLength false\n@classLabel true a b\n@data\n"
    rows = [",".join(["1"] * 10) + (":a" if i % 2 else ":b") for i in range(50)] + [",".join(["0"] * 20_000) + ":a"]
    (tmp_path / "x.ts").write_text(head + "\n".join(rows) + "\n")
    monkeypatch.setattr(loaders, "PAD_BUDGET", 1 << 20)  # 51 x 20,000 steps x 8 bytes = 8 MB: over a 1 MiB budget
    config = loaders.TsConfig(path=str(tmp_path / "x.ts"))
    with pytest.raises(DataError, match=r"series #51 has 20,000 steps where the median is 10\. Set data.max_length"):
        store(loaders.load_ts(config), str(tmp_path / "cache"), "d1", config)  # the store, before allocating

    config = loaders.TsConfig(path=str(tmp_path / "x.ts"), max_length=100)
    ref = store(loaders.load_ts(config), str(tmp_path / "cache"), "d2", config)
    assert ref.meta["max_length"] == 100 and ref.meta["rows"] == 51
    err = capsys.readouterr().err
    assert "1 of 51 series in" in err and "longest has 20,000): cut to their first 100." in err


def test_messages_quote_values_at_a_bounded_cost():
    from trainflow.errors import shown

    bomb: list = ["lol"] * 10
    for _ in range(30):  # 10^31 strings if written out; the same few objects in memory
        bomb = [bomb] * 10
    started = time.process_time()
    text = shown(bomb)
    assert time.process_time() - started < 1 and len(text) <= 80 and text.startswith("[[[")
    assert shown("x" * 10_000).endswith("(10000 characters)") and shown(np.array(["a"])[0]) == "'a'"


def test_json_nested_too_deeply_is_a_damaged_file(tmp_path):
    from trainflow.tasks.common import drift

    for name in ("model.json", "profile.json"):
        (tmp_path / name).write_text("[" * 100_000)
    with pytest.raises(DataError, match="model.json.*nested too deeply"):
        trust.read_json(tmp_path / "model.json")
    with pytest.raises(DataError, match="profile.json.*nested too deeply"):
        drift.read_profile(tmp_path)
