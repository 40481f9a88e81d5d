"""The shared training loop: config errors, determinism, checkpoint/resume, and a killed process."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from trainflow.errors import SpecError  # noqa: E402
from trainflow.tasks.common.training import CHECKPOINT, TrainConfig, load_checkpoint, train_model  # noqa: E402

SCRIPT = Path(__file__).parent / "scripts" / "train_script.py"


def _problem(raw: dict) -> str:
    from trainflow.spec import spec_from_dict

    with pytest.raises(SpecError) as info:
        spec_from_dict({"name": "t", **raw})
    return str(info.value)


def test_batch_size_zero_is_a_clear_spec_error():
    msg = _problem({"train": {"batch_size": 0}})
    assert "'train.batch_size'" in msg and "greater than or equal to 1" in msg and "Got 0" in msg


def test_unknown_optimizer_suggests_the_closest_one():
    msg = _problem({"train": {"optimizer": "adamm"}})
    assert "'train.optimizer' must be 'sgd', 'adam' or 'adamw'" in msg and "did you mean 'adam'" in msg


def test_unknown_train_option_is_rejected():
    assert "'train.epoch' is not a known option" in _problem({"train": {"epoch": 3}})


def _setup(seed_model=1):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(seed_model)
    model = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.Tanh(), torch.nn.Dropout(0.3), torch.nn.Linear(12, 2))
    return (x, y), model


CONFIG = TrainConfig(epochs=5, batch_size=16, lr=0.03, optimizer="adamw", weight_decay=0.01, l1=1e-4, schedule="cosine",
                     val_fraction=0.2, device="cpu", num_threads=1)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_and_other_seed_differs(tmp_path):
    runs = []
    for seed in (0, 0, 1):
        data, model = _setup()
        result = train_model(model, data, None, CONFIG, seed=seed, checkpoint_dir=None, log=lambda s: None)
        runs.append(_weights(model))
        assert result.epochs_run == 5 and result.history[-1]["val_accuracy"] > 0.7
    assert _same(runs[0], runs[1])
    assert not _same(runs[0], runs[2])


def test_num_threads_hold_for_the_call_only():
    """train.num_threads is not left behind for whatever the process runs next (even when training fails)."""
    before = torch.get_num_threads()
    other = 2 if before != 2 else 3
    seen = []
    data, model = _setup()
    train_model(model, data, None, CONFIG.model_copy(update={"num_threads": other, "epochs": 1}), checkpoint_dir=None,
                on_epoch=lambda row: seen.append(torch.get_num_threads()), log=lambda s: None)
    assert seen == [other] and torch.get_num_threads() == before

    def crash(row):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        train_model(model, data, None, CONFIG.model_copy(update={"num_threads": other}), checkpoint_dir=None,
                    on_epoch=crash, log=lambda s: None)
    assert torch.get_num_threads() == before


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    data, model = _setup()
    train_model(model, data, None, CONFIG, seed=0, checkpoint_dir=tmp_path / "a", log=lambda s: None)
    expected = _weights(model)

    def crash(row):
        if row["epoch"] == 3:
            raise RuntimeError("simulated crash")

    data, model = _setup()
    with pytest.raises(RuntimeError):
        train_model(model, data, None, CONFIG, seed=0, checkpoint_dir=tmp_path / "b", on_epoch=crash, log=lambda s: None)
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT)["epoch"] == 3
    data, model = _setup(seed_model=99)  # different initial weights: the checkpoint must override them
    lines = []
    result = train_model(model, data, None, CONFIG, seed=0, checkpoint_dir=tmp_path / "b", log=lines.append)
    assert result.resumed_from == 3 and any("resuming" in s for s in lines)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4, 5]
    assert _same(_weights(model), expected)


def test_early_stopping_restores_the_best_epoch(tmp_path):
    data, model = _setup()
    config = CONFIG.model_copy(update={"epochs": 40, "lr": 0.2, "optimizer": "sgd", "patience": 2, "l1": 0.0,
                                       "schedule": "none"})
    result = train_model(model, data, None, config, seed=0, log=lambda s: None)
    assert result.stopped_early and result.epochs_run < 40
    best = min(h["val_loss"] for h in result.history)
    assert result.history[result.best_epoch - 1]["val_loss"] == best


def test_monitor_train_loss_keeps_the_lowest_training_loss_across_a_crash(tmp_path):
    """No validation split: the epoch of the lowest training loss is kept (InceptionTime's rule), and a
    run resumed after a crash ends with the same weights as an uninterrupted one."""
    config = CONFIG.model_copy(update={"val_fraction": 0.0, "monitor": "train_loss", "epochs": 12, "lr": 0.5,
                                       "optimizer": "sgd", "schedule": "none", "l1": 0.0})
    data, model = _setup()
    result = train_model(model, data, None, config, seed=0, checkpoint_dir=tmp_path / "a", log=lambda s: None)
    losses = [h["train_loss"] for h in result.history]
    assert result.epochs_run == 12 and result.best_epoch == losses.index(min(losses)) + 1 < 12
    assert f"weights of the best epoch ({result.best_epoch}, train_loss" in " ".join(result.notes)
    kept = _weights(model)
    data, model = _setup()  # the same training stopped at the best epoch: the same weights
    train_model(model, data, None, config.model_copy(update={"epochs": result.best_epoch}), seed=0, log=lambda s: None)
    assert _same(_weights(model), kept)

    def crash(row):
        if row["epoch"] == result.best_epoch + 1:
            raise RuntimeError("simulated crash")

    data, model = _setup()
    with pytest.raises(RuntimeError):
        train_model(model, data, None, config, seed=0, checkpoint_dir=tmp_path / "b", on_epoch=crash, log=lambda s: None)
    data, model = _setup(seed_model=99)
    resumed = train_model(model, data, None, config, seed=0, checkpoint_dir=tmp_path / "b", log=lambda s: None)
    assert resumed.resumed_from == result.best_epoch + 1 and resumed.best_epoch == result.best_epoch
    assert _same(_weights(model), kept)


def test_class_weights_and_sampler_weights_change_training():
    outs = []
    for kw in ({}, {"class_weights": [1.0, 5.0]}, {"sampler_weights": torch.linspace(0.1, 1, 120)}):
        data, model = _setup()
        train_model(model, data, None, CONFIG.model_copy(update={"epochs": 2}), seed=0, log=lambda s: None, **kw)
        outs.append(_weights(model))
    assert not _same(outs[0], outs[1]) and not _same(outs[0], outs[2])


def test_mse_loss_for_regression():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    model = torch.nn.Linear(3, 1)
    result = train_model(model, (x, y), None, TrainConfig(epochs=30, lr=0.05, batch_size=10, device="cpu"),
                         task="regression", log=lambda s: None)
    assert result.history[-1]["train_loss"] < 0.01 and "train_accuracy" not in result.history[-1]


def _run(ckpt: Path, out: Path, kill_at: int = 0) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(SCRIPT), str(ckpt), str(out), str(kill_at)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The weights of the script's run when nothing kills it."""
    return _script().train(str(tmp_path_factory.mktemp("uninterrupted") / "ck"), log=lambda s: None)


@pytest.mark.parametrize("kill_at", [1, 3, 5])
def test_killed_training_process_resumes_to_the_same_weights(kill_at, uninterrupted, tmp_path):
    killed = _run(tmp_path / "ck-kill", tmp_path / "never.safetensors", kill_at=kill_at)  # SIGKILLs itself then
    ckpt = tmp_path / "ck-kill" / CHECKPOINT
    output, _ = killed.communicate(timeout=120)
    assert killed.returncode == -signal.SIGKILL, output
    epoch_at_kill = load_checkpoint(ckpt)["epoch"]
    assert epoch_at_kill == kill_at, "the process must die after the chosen epoch, mid-run"
    assert not (tmp_path / "never.safetensors").exists()

    lines: list[str] = []
    resumed = _script().train(str(tmp_path / "ck-kill"), log=lines.append)
    assert any(f"resuming from the checkpoint of epoch {epoch_at_kill}" in line for line in lines), lines
    assert uninterrupted.keys() == resumed.keys()
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in resumed)


def test_label_smoothing_softens_the_targets_and_fits_classification_only():
    losses = {}
    for s in (0.0, 0.2):
        data, model = _setup()
        config = CONFIG.model_copy(update={"epochs": 5, "val_fraction": 0.0, "label_smoothing": s})
        losses[s] = train_model(model, data, None, config, seed=0, log=lambda _: None).history[-1]["train_loss"]
    # a smoothed target (0.9 / 0.1 over two classes) has a cross-entropy floor: its own entropy
    floor = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert losses[0.2] > floor > losses[0.0]
    base = {"name": "x", "data": {"loader": "npz", "path": "q.npz"}}
    for raw in ({"task": "multilabel"}, {"task": "regression"}, {"train": {"loss": "mse"}}):
        problem = _problem({**base, **raw, "train": {**raw.get("train", {}), "label_smoothing": 0.1}})
        assert "'train.label_smoothing' smooths the cross-entropy targets of task classification" in problem
    assert "train.label_smoothing" in _problem({**base, "train": {"label_smoothing": 1.0}})  # no true class left
