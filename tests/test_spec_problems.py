"""Cross-field problems are spec problems: found when the spec is validated, before any data is read,
reported together with the other problems, exit 2. The data paths below do not exist: a check that
read the data would fail with exit 3 instead."""

from __future__ import annotations

import pytest

from tests.helpers import run_cli, write_spec
from trainflow.errors import SpecError
from trainflow.spec import spec_from_dict


def problems(raw: dict) -> list[str]:
    with pytest.raises(SpecError) as err:
        spec_from_dict({"name": "p", **raw})
    return err.value.problems


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def test_cnn_that_shrinks_the_images_to_nothing_is_refused_with_the_other_problems(tmp_path, capsys):
    raw = {"name": "p", "data": {"loader": "image_folder", "path": str(tmp_path / "no-such-folder"), "size": [8, 8]},
           "model": {"name": "cnn", "depth": 4, "padding": "valid"}, "train": {"epochs": 0}}
    code, err = run_cli("run", write_spec(tmp_path / "spec.yaml", raw), "--out", tmp_path / "runs", capsys=capsys)
    assert code == 2, err
    assert "'model.depth' 4 with valid padding shrinks 8x8 images to nothing" in err
    assert "'train.epochs'" in err and "(2 problems)" in err
    assert not (tmp_path / "runs").exists()


def test_image_size_known_from_the_loader():
    found = problems({"data": {"loader": "digits"}, "model": {"name": "cnn", "depth": 3, "padding": "valid"}})
    assert any("shrinks 8x8 images" in p for p in found), found
    spec_from_dict({"name": "p", "data": {"loader": "digits"}, "model": {"name": "cnn", "depth": 3}})  # auto: same


def test_cnn1d_needs_one_kernel_per_block():
    found = problems({"data": {"loader": "npz_series", "path": "missing.npz"},
                      "model": {"name": "cnn1d", "filters": [8, 8], "kernels": [3]}})
    assert found == ["'model': 'kernels' must have one kernel size per entry of 'filters' (2); got 1."], found


def test_forecasting_cannot_mask_missing_values():
    found = problems({"task": "forecasting", "data": {"loader": "timeseries_csv", "path": "missing.csv"},
                      "preprocess": {"sequence": {"missing": "mask"}}})
    assert any("'preprocess.sequence.missing' is 'mask', which forecasting does not support" in p for p in found)


def test_task_the_modality_does_not_serve_names_loaders_that_would():
    [found] = problems({"task": "regression", "data": {"loader": "digits"}})
    assert "set 'task: classification'" in found and "npz_series" in found and "digits" in found


@pytest.mark.skipif(cuda_available(), reason="a CUDA device is present")
def test_cuda_without_a_cuda_device_is_a_spec_problem(tmp_path, capsys):
    raw = {"name": "p", "data": {"loader": "npz", "path": str(tmp_path / "missing.npz")}, "train": {"device": "cuda"}}
    code, err = run_cli("run", write_spec(tmp_path / "spec.yaml", raw), "--out", tmp_path / "runs", capsys=capsys)
    assert code == 2 and "'train.device' is 'cuda' but no CUDA device is available" in err, err


def test_a_modality_cannot_replace_a_core_section(monkeypatch):
    from trainflow import modalities
    from trainflow.errors import ComponentError
    from trainflow import spec as spec_module
    from trainflow.spec import SplitSpec

    image = type(modalities.get("image"))
    monkeypatch.setattr(image, "sections", {**image.sections, "split": SplitSpec})
    with pytest.raises(ComponentError, match="a core section cannot be replaced"):
        spec_module.spec_model()
