"""Cache keys without a server: a model trained with the run's thread count (``train.num_threads: 0``:
``resources.threads``, by default every usable core) is keyed by that count, so another machine does
not reuse it (torch's CPU sums are split by thread, so the weights differ); an explicit count is keyed
as written."""

from __future__ import annotations

from trainflow.cache_keys import code_fingerprint, model_key
from trainflow.spec import spec_from_dict
from trainflow.refs import DataRef, SplitRef

SPLIT = SplitRef(train=DataRef(path="train", digest="t" * 64, modality="image"),
                 test=DataRef(path="test", digest="s" * 64, modality="image"))


def image_spec(**train):
    return spec_from_dict({"name": "digits", "task": "classification",
                           "data": {"loader": "image_folder", "path": "images"}, "model": {"name": "cnn"},
                           "train": train}).training_view()


def test_the_default_thread_count_is_keyed_by_what_decides_it(monkeypatch):
    spec = image_spec()  # num_threads: 0, the run's threads
    before = model_key(SPLIT, spec)
    assert model_key(SPLIT, spec) == before
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert model_key(SPLIT, spec) == before, "torch's count is set from resources.threads, whatever OMP says"
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, raising=False)
    assert model_key(SPLIT, spec) != before, "a process that may use more CPUs gets more threads by default"


def test_an_explicit_thread_count_is_keyed_as_written_and_not_by_the_machine(monkeypatch):
    one, two = image_spec(num_threads=1), image_spec(num_threads=2)
    assert model_key(SPLIT, one) != model_key(SPLIT, two)
    before = model_key(SPLIT, one)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(14)), raising=False)
    assert model_key(SPLIT, one) == before


def test_a_default_count_in_a_multimodal_input_counts_and_a_table_has_none(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    table = spec_from_dict({"name": "p", "task": "classification", "data": {"loader": "csv", "path": "p.csv",
                                                                             "target": "species"}})
    fused = spec_from_dict({"name": "m", "task": "classification", "model": {"name": "late_fusion"},
                            "train": {"num_threads": 1},
                            "data": {"loader": "multimodal", "join": "stem", "inputs": {
                                "speech": {"loader": "av_digits_audio", "path": "fsdd",
                                           "train": {"num_threads": 0}},
                                "image": {"loader": "av_digits_images", "path": "fsdd",
                                          "train": {"num_threads": 1}}}}})
    before = code_fingerprint(table), code_fingerprint(fused)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(14)), raising=False)
    assert code_fingerprint(table) == before[0], "a table trains no torch network: its key ignores threads"
    assert code_fingerprint(fused) != before[1], "the speech branch trains with the run's count"


def test_device_auto_is_keyed_by_the_device_it_picks_here(monkeypatch):
    from trainflow import cache_keys

    auto, cpu = image_spec(), image_spec(device="cpu")  # device: auto is the default
    monkeypatch.setattr(cache_keys, "auto_device", lambda: "cpu")
    before, explicit = model_key(SPLIT, auto), model_key(SPLIT, cpu)
    monkeypatch.setattr(cache_keys, "auto_device", lambda: "cuda")
    assert model_key(SPLIT, auto) != before, "a model fitted on the CPU is not reused where auto picks CUDA"
    assert model_key(SPLIT, cpu) == explicit, "an explicit device is keyed as written, not by the machine"


def test_the_auto_device_is_what_training_resolves_and_a_cpu_torch_is_not_imported_for_it():
    import subprocess
    import sys

    import torch

    from trainflow.cache_keys import auto_device
    from trainflow.tasks.common.training import resolve_device

    assert auto_device() == resolve_device("auto").type
    if torch.version.cuda is None and torch.version.hip is None:  # a CPU build: answered from its version file
        code = ("import sys; from trainflow.cache_keys import auto_device; "
                "print(auto_device(), 'torch' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert out.split() == ["cpu", "False"]
