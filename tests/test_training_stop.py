"""The training loop's per-epoch hook: ``on_epoch(row)`` returning true stops training there (how
``trainflow tune`` prunes a trial), and a resume from that checkpoint trains no further."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from trainflow.tasks.common.training import CHECKPOINT, TrainConfig, load_checkpoint, train_model  # noqa: E402

CONFIG = TrainConfig(epochs=6, batch_size=16, lr=0.05, val_fraction=0.25, device="cpu", num_threads=1)


def _data_and_model():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    torch.manual_seed(1)
    return (x, (x[:, 0] > 0).long()), torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_on_epoch_returning_true_stops_training_and_the_checkpoint_keeps_the_stop(tmp_path):
    seen = []

    def prune(row: dict) -> bool:
        seen.append((row["epoch"], "val_loss" in row))
        return row["epoch"] == 2

    data, model = _data_and_model()
    result = train_model(model, data, None, CONFIG, checkpoint_dir=tmp_path, on_epoch=prune, log=lambda s: None)
    assert seen == [(1, True), (2, True)] and result.epochs_run == 2 and result.stopped_early
    assert any("stopped after epoch 2 by the caller" in n for n in result.notes), result.notes
    assert load_checkpoint(tmp_path / CHECKPOINT)["stopped"] is True

    data, again = _data_and_model()
    resumed = train_model(again, data, None, CONFIG, checkpoint_dir=tmp_path, log=lambda s: None)
    assert resumed.resumed_from == 2 and resumed.epochs_run == 2  # a pruned trial is not trained on
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_a_hook_returning_nothing_changes_nothing():
    data, a = _data_and_model()
    plain = train_model(a, data, None, CONFIG, log=lambda s: None)
    data, b = _data_and_model()
    hooked = train_model(b, data, None, CONFIG, on_epoch=lambda row: None, log=lambda s: None)
    assert plain.epochs_run == hooked.epochs_run == 6 and not hooked.stopped_early
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
