"""A neural text model's training killed outright (SIGKILL) resumes from its last epoch checkpoint and
reaches the same weights as a training that was never interrupted (the stages, without Prefect)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.test_text_neural import corpus, raw_spec
from trainflow.tasks.common.training import CHECKPOINT, load_checkpoint

#: Trains the spec's model in the cache; with kill_at, the process SIGKILLs itself once that epoch's
#: checkpoint is written (where a watcher polling the checkpoint would kill it, without sleeping for it).
DRIVER = """
import os, signal, sys, yaml
from trainflow import modalities
from trainflow.spec import spec_from_dict
from trainflow.tasks.common import load, training

def fit(spec_file, cache, kill_at=0):
    spec = spec_from_dict(yaml.safe_load(open(spec_file)))
    mod = modalities.get(spec.modality)
    real = training._save_checkpoint
    def save(path, state):
        real(path, state)
        if state["epoch"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    training._save_checkpoint = save
    try:
        data = load.load(spec.data, cache, spec.modality)
        split = mod.split(data, spec.training_view(), cache)
        return mod.fit(split, spec.training_view(), cache)
    finally:
        training._save_checkpoint = real

if __name__ == "__main__":
    fit(sys.argv[1], sys.argv[2], int(sys.argv[3]))
"""


@pytest.mark.parametrize("model", ["text_gru"])
def test_killed_neural_text_training_resumes_to_the_same_weights(tmp_path, model):
    corpus().to_csv(tmp_path / "msgs.csv", index=False)
    raw = raw_spec(tmp_path / "msgs.csv", model={"name": model, "embedding_dim": 8, "hidden": 8},
                   train={"epochs": 4, "batch_size": 32, "lr": 0.01, "num_threads": 1, "val_fraction": 0.2})
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    (tmp_path / "text_resume_driver.py").write_text(DRIVER)
    sys.path.insert(0, str(tmp_path))
    try:
        import text_resume_driver as driver
    finally:
        sys.path.remove(str(tmp_path))

    killed_cache = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(tmp_path / "text_resume_driver.py"), str(spec_file),
                             str(killed_cache), "2"], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, output
    [ckpt] = killed_cache.glob(f"checkpoints/*/{CHECKPOINT}")
    epoch = load_checkpoint(ckpt)["epoch"]
    assert 2 <= epoch < 4 and not list(killed_cache.glob("models/*/model.safetensors"))

    resumed = driver.fit(spec_file, str(killed_cache))
    assert f"resumed from the checkpoint of epoch {epoch}" in resumed.meta["notes"]
    whole = driver.fit(spec_file, str(tmp_path / "whole"))
    assert "resumed" not in " ".join(whole.meta["notes"])
    a, b = (load_file(Path(r.path) / "model.safetensors") for r in (resumed, whole))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
