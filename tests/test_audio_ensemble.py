"""``model.members`` of ``audio_cnn``: a deep ensemble trained side by side by the shared loop, each
member as if alone, predicting the average of its members' probabilities; the option's checks (no server)."""

from __future__ import annotations

import numpy as np
import pytest

from trainflow.errors import SpecError

torch = pytest.importorskip("torch")

SHAPE = {"bins": 6, "frames": 12, "n_classes": 3}
OPTIONS = {"width": 4, "dense": 8, "depth": 2, "padding": "same", "batch_norm": True}


def build(members: int):
    from trainflow.registry import REGISTRY

    comp = REGISTRY.get("model", "audio_cnn")
    torch.manual_seed(0)
    return comp.build(comp.config.model_validate({**OPTIONS, "members": members}), **SHAPE)


def test_each_member_trains_as_if_alone_and_the_ensemble_predicts_their_average():
    from trainflow.tasks.common.training import TrainConfig, train_model

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 48)
    x = (rng.normal(size=(48, 6, 12)) + y[:, None, None]).astype(np.float32)
    data = (torch.from_numpy(x), torch.ones(48, 12), torch.from_numpy(y))
    config = TrainConfig(epochs=3, batch_size=16, lr=0.01, val_fraction=0.0, patience=0, checkpoint=False)
    alone, pair = build(1), build(2)
    assert len(pair.members) == 2 and not torch.equal(pair.members[0].head.weight, pair.members[1].head.weight)
    torch.testing.assert_close(pair.members[0].state_dict(), alone.state_dict())  # the first member: the lone net
    train_model(alone, data, None, config, seed=0, log=lambda _: None)
    result = train_model(pair, data, None, config, seed=0, log=lambda _: None)
    # the same batches and no dropout: the first member ends where the lone network does
    torch.testing.assert_close(pair.members[0].state_dict(), alone.state_dict())
    assert 0 <= result.history[-1]["train_accuracy"] <= 1
    pair.eval()
    with torch.no_grad():
        probs = torch.stack([m(data[0]).softmax(1) for m in pair.members]).mean(0)
        torch.testing.assert_close(pair(data[0]).softmax(1), probs)
        assert pair.encode(data[0]).shape == (48, 16)  # the members' embeddings side by side


@pytest.mark.parametrize("members", [0, 9, "two"])
def test_members_outside_one_to_eight_is_a_spec_error_naming_it(members):
    from trainflow.spec import spec_from_dict

    with pytest.raises(SpecError, match="members"):
        spec_from_dict({"name": "n", "data": {"loader": "audio_folder", "path": "clips"},
                        "model": {"name": "audio_cnn", "members": members}})


def test_members_is_for_classification():
    from trainflow.spec import spec_from_dict

    with pytest.raises(SpecError, match="model.members averages class probabilities, for task 'classification'"):
        spec_from_dict({"name": "n", "task": "multilabel", "data": {"loader": "audio_manifest", "path": "m.csv",
                                                                     "labels_column": "tags"},
                        "model": {"name": "audio_cnn", "members": 2}})


def test_select_ranks_recipes_with_one_network_a_fold():
    from trainflow.spec import spec_from_dict
    from trainflow.tasks.audio import select
    from trainflow.tasks.audio.networks import Ensemble, SpectrogramCNN

    spec = spec_from_dict({"name": "n", "data": {"loader": "audio_folder", "path": "clips"},
                           "preprocess": {"audio": {"select": {"candidates": [{}, {"mix_clips": 0.3}], "group": "speaker",
                                                               "epochs": 1}}},
                           "model": {"name": "audio_cnn", **OPTIONS, "members": 3}, "train": {"batch_size": 8}})
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 6, 12)).astype(np.float32), rng.integers(0, 3, 16)
    net, _ = select._fold_network(x, np.full(16, 12), y, np.arange(12), spec.preprocess.audio, spec, 3)
    assert isinstance(net, SpectrogramCNN) and not isinstance(net, Ensemble)  # the final fit trains the three
    assert isinstance(build(3), Ensemble)
