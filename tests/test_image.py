"""The image modality: loaders, the CNN, augmentation, bad input through the CLI, and the flow."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
Image = pytest.importorskip("PIL.Image")

from tests.helpers import assert_fails_clearly, complete_runs, run_cli, write_spec  # noqa: E402
from trainflow.errors import DataError  # noqa: E402
from trainflow.tasks.image import modality as I  # noqa: E402
from trainflow.tasks.image import loaders as IL  # noqa: E402
from trainflow.tasks.image import networks as N  # noqa: E402


# ---------------------------------------------------------------- tiny files


def write_cifar(folder: Path, n: int = 4, skip: tuple[str, ...] = (), bad_shape: str | None = None) -> Path:
    """A CIFAR-10 python batches folder with n images per batch (pickled dicts, like the real files)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        if name in skip:
            continue
        width = 100 if name == bad_shape else 3072
        batch = {b"batch_label": name.encode(), b"labels": [(i + j) % 10 for j in range(n)],
                 b"data": rng.integers(0, 256, (n, width), dtype=np.uint8),
                 b"filenames": [f"{name}_{j}.png".encode() for j in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in IL.CIFAR10_LABELS], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def write_folder(root: Path, classes=("cat", "dog"), n: int = 6, mode: str = "L", size=(10, 12)) -> Path:
    """One sub-folder of small PNGs per class; class k is brighter than class k-1."""
    rng = np.random.default_rng(1)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for j in range(n):
            shape = (size[0], size[1]) if mode == "L" else (size[0], size[1], 3)
            arr = np.clip(rng.normal(60 + 120 * k, 20, shape), 0, 255).astype(np.uint8)
            Image.fromarray(arr, mode=mode).save(root / c / f"{j}.png")
    return root


# ---------------------------------------------------------------- loaders


def test_digits_loader():
    images = IL.load_digits(IL.NoOptions())
    assert images.x.shape == (1797, 8, 8, 1) and images.max_value == 16 and images.classes[0] == "0"
    assert images.x.max() == 16 and set(images.y.tolist()) == set(range(10))


def test_cifar_loader_reads_batches_and_keeps_the_test_batch_apart(tmp_path):
    images = IL.load_cifar10(IL.CifarConfig(path=str(write_cifar(tmp_path / "c"))))
    assert images.x.shape == (24, 32, 32, 3) and images.x.dtype == np.uint8
    assert images.is_test.sum() == 4 and images.classes == IL.CIFAR10_LABELS
    raw = pickle.loads((tmp_path / "c" / "data_batch_1").read_bytes(), encoding="bytes")
    # channel-major rows: the first 1024 values are the red plane
    assert np.array_equal(images.x[0, :, :, 0].ravel(), raw[b"data"][0, :1024])


def test_cifar_unpickler_refuses_anything_but_arrays(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    folder = write_cifar(tmp_path / "c")
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(DataError, match=r"refusing to load '(__builtin__|builtins).print'"):
        IL.load_cifar10(IL.CifarConfig(path=str(folder)))


def test_image_folder_resizes_converts_and_skips_unreadable(tmp_path):
    root = write_folder(tmp_path / "imgs", mode="L")
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    images = IL.load_image_folder(IL.FolderConfig(path=str(root), size=(8, 8), channels=3, skip_unreadable=True))
    assert images.x.shape == (12, 8, 8, 3) and images.classes == ["cat", "dog"]
    assert len(images.skipped) == 1 and "broken.png" in images.skipped[0]
    assert images.x[images.y == 1].mean() > images.x[images.y == 0].mean()


def test_an_image_beyond_pillows_pixel_limit_is_a_data_error_naming_it(tmp_path, monkeypatch):
    from PIL import Image

    root = write_folder(tmp_path / "imgs", mode="L")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # the 8x8 images are then "decompression bombs"
    with pytest.raises(DataError, match=r"could not be read:\n  - .*\.png: too large to decode safely"):
        IL.load_image_folder(IL.FolderConfig(path=str(root), skip_unreadable=False))


def test_npz_loader_accepts_channels_first(tmp_path):
    x = np.random.default_rng(0).random((10, 3, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.array(["a", "b"] * 5))
    images = IL.load_npz(IL.NpzConfig(path=str(tmp_path / "d.npz")))
    assert images.x.shape == (10, 6, 6, 3) and images.classes == ["a", "b"] and images.max_value == 1.0


# ---------------------------------------------------------------- network and augmentation


def test_default_cnn_is_the_seed_network():
    model = N.build_cnn(N.CnnConfig(), in_shape=(3, 32, 32), n_classes=10)
    convs = [m for m in model if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64] and convs[0].padding == (0, 0)
    assert sum(p.numel() for p in model.parameters()) == 167_562  # same count as the seed's Keras model
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    small = N.build_cnn(N.CnnConfig(activation="gelu", batch_norm=True, dropout=0.2, depth=3), (1, 8, 8), 4)
    assert small(torch.zeros(2, 1, 8, 8)).shape == (2, 4)


def test_augmentation_keeps_shape_and_moves_pixels():
    aug = I.augmenter(I.ImagePreprocess(flip=True, crop_padding=2))
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float).view(2, 3, 8, 8)
    torch.manual_seed(0)
    a = aug(x)
    torch.manual_seed(0)
    assert a.shape == x.shape and torch.equal(a, aug(x)) and not torch.equal(a, x)
    assert I.augmenter(I.ImagePreprocess()) is None


# ---------------------------------------------------------------- bad input through the CLI


def _spec(tmp_path: Path, data: dict, **extra) -> Path:
    raw = {"name": "badimg", "data": data, "validation": {"min_rows": 4}, "split": {"test_size": 0.5},
           "model": {"name": "cnn"}, "train": {"epochs": 1}, **extra}
    return write_spec(tmp_path / "spec.yaml", raw)


def _folder_with(tmp_path: Path, case: str) -> dict:
    root = tmp_path / "imgs"
    if case == "single class":
        write_folder(root, classes=("only",))
    elif case == "empty class":
        write_folder(root)
        (root / "empty").mkdir()
    elif case == "corrupt png":
        write_folder(root)
        (root / "cat" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    elif case == "gray as rgb":
        write_folder(root)
        return {"loader": "image_folder", "path": str(root), "channels": 3, "convert": False}
    return {"loader": "image_folder", "path": str(root)}


BAD = {
    "cifar without test_batch": (lambda t: {"loader": "cifar10", "path": str(write_cifar(t / "c", skip=("test_batch",)))},
                                 {}, 3, ["lacks 'test_batch'"]),
    "cifar batch of wrong shape": (lambda t: {"loader": "cifar10", "path": str(write_cifar(t / "c", bad_shape="data_batch_3"))},
                                   {}, 3, ["data_batch_3", "shape (4, 100)", "expected shape (n, 3072)"]),
    "single class": (lambda t: _folder_with(t, "single class"), {}, 3, ["at least two classes", "only 'only'"]),
    "empty class folder": (lambda t: _folder_with(t, "empty class"), {}, 3, ["empty", "holds no images"]),
    "corrupt png, strict": (lambda t: {**_folder_with(t, "corrupt png"), "skip_unreadable": False}, {}, 3,
                            ["1 image file(s) could not be read", "bad.png", "data.skip_unreadable: true"]),
    # the default leaves a corrupt file out, but 1 of 13 is beyond the tolerated 0.5%
    "corrupt png beyond the share": (lambda t: _folder_with(t, "corrupt png"), {}, 4,
                                     ["1 of 13 image files were left out", "cat/bad.png",
                                      "image_validation.max_unreadable_share allows 0.5%"]),
    "3 channels on gray, no conversion": (lambda t: _folder_with(t, "gray as rgb"), {}, 3,
                                          ["is gray (1 channel)", "data.channels is 3", "data.convert is false"]),
    "batch_size 0": (lambda t: {"loader": "digits"}, {"train": {"batch_size": 0}}, 2,
                     ["'train.batch_size'", "greater than or equal to 1", "Got 0"]),
    "unknown optimizer": (lambda t: {"loader": "digits"}, {"train": {"optimizer": "adma"}}, 2,
                          ["'train.optimizer' must be 'sgd', 'adam' or 'adamw'", "did you mean 'adam'"]),
}


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize("case", list(BAD))
def test_bad_image_input_fails_clearly(case, tmp_path, capsys):
    make, extra, code, phrases = BAD[case]
    spec = _spec(tmp_path, make(tmp_path), **extra)
    assert_fails_clearly(spec, tmp_path / "runs", "badimg", code, phrases, capsys)


@pytest.mark.usefixtures("prefect_server")
def test_a_few_unreadable_or_odd_sized_files_are_left_out_named_and_counted(tmp_path, capfd):
    root = write_folder(tmp_path / "imgs", n=20, size=(8, 8))
    (root / "cat" / "cut.png").write_bytes((root / "cat" / "0.png").read_bytes()[:40])  # a PNG cut short
    Image.fromarray(np.zeros((12, 9), np.uint8), mode="L").save(root / "dog" / "stray.png")  # another size
    spec = _spec(tmp_path, {"loader": "image_folder", "path": str(root)}, name="fewbad",
                 image_validation={"max_unreadable_share": 0.05})  # 2 of 42 files
    rc, err = run_cli("run", spec, "--out", tmp_path / "runs", capsys=capfd)  # the validation child's stderr too
    assert rc == 0, err
    assert "2 of 42 image file(s) left out of training and testing" in err and "cat/cut.png" in err
    (run,) = complete_runs(tmp_path / "runs", "fewbad")
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["rows"], metrics["rows_skipped"]) == (40, 2)  # the images used; the files left out apart
    cut, stray = metrics["validation"]["skipped_files"]
    assert cut.startswith("cat/cut.png: ") and stray.startswith("dog/stray.png: is 12x9 with 1 channel(s), most "
                                                                 "images are 8x8 with 1 channel(s)")
    assert "skipped unreadable image: dog/stray.png" in (run / "report.md").read_text()


# ---------------------------------------------------------------- the flow, end to end


@pytest.mark.usefixtures("prefect_server")
def test_digits_pipeline_end_to_end_and_predict(tmp_path, capsys):
    out = tmp_path / "runs"
    spec = Path(__file__).resolve().parents[1] / "flows" / "specs" / "digits.yaml"
    rc, err = run_cli("run", spec, "--out", out, "--set", "train.epochs=3", capsys=capsys)
    assert rc == 0, err
    [run] = complete_runs(out, "digits")
    summary = json.loads((run / "metrics.json").read_text())
    assert summary["metrics"]["accuracy"] > 0.9 and "top_5_accuracy" in summary["metrics"]
    assert set(summary["per_class"]) == {str(d) for d in range(10)}
    for name in ("model.safetensors", "model.json", "report.md", "plots/learning_curves.png",
                 "plots/confusion_matrix.png"):
        assert (run / name).is_file(), name
    report = (run / "report.md").read_text()
    assert "Learning curves" in report and "Confusion matrix" in report
    assert len(json.loads((run / "model.json").read_text())["history"]) == 3
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["digits-training"])))
    assert arts and arts[0].type == "progress" and float(arts[0].data) == 100.0

    from sklearn.datasets import load_digits

    d = load_digits()
    np.savez(tmp_path / "new.npz", x=d.images[:20].astype(np.uint8))
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(5):  # the same digits as PNGs, with the training pixel values (0..16)
        Image.fromarray(d.images[i].astype(np.uint8), mode="L").save(folder / f"{i}.png")
    rc, err = run_cli("predict", run, tmp_path / "new.npz", "--out", tmp_path / "pred.csv", capsys=capsys)
    assert rc == 0, err
    import pandas as pd

    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 20 and (pred["prediction"] == d.target[:20]).mean() >= 0.8
    assert np.allclose(pred.filter(like="proba_").sum(axis=1), 1, atol=1e-4)
    rc, err = run_cli("predict", run, folder, "--out", tmp_path / "pred2.csv", capsys=capsys)
    assert rc == 0, err
    pred2 = pd.read_csv(tmp_path / "pred2.csv")
    assert list(pred2["item"]) == [f"{i}.png" for i in range(5)]
    assert (pred2["prediction"] == d.target[:5]).all()

    import shutil

    config = json.loads((run / "model.json").read_text())
    for edit in ({"classes": 5}, {"classes": ["0"]}, {"model": "nope"}, {"task": "zzz"}, {"mean": "abc"},
                 {"task": "multilabel"}):  # a config of another shape, or of another model, beside the weights
        copy = tmp_path / "damaged"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(run, copy)
        (copy / "model.json").write_text(json.dumps({**config, **edit}))
        rc, err = run_cli("predict", copy, tmp_path / "new.npz", "--out", tmp_path / "pred3.csv", capsys=capsys)
        assert rc == 3 and "model.json" in err and "damaged" in err and "Traceback" not in err, (edit, err)
        assert not (tmp_path / "pred3.csv").exists()


def test_cifar10_spec_is_the_seed_recipe(tmp_path):
    from trainflow.spec import load_spec

    folder = write_cifar(tmp_path / "c")
    spec = load_spec(Path(__file__).resolve().parents[1] / "flows" / "specs" / "cifar10.yaml",
                     [f"data.path={folder}"])
    t = spec.train
    assert (spec.model.name, t.optimizer, t.lr, t.batch_size, t.epochs) == ("cnn", "adam", 0.001, 128, 10)
    assert spec.preprocess.image.normalize == "scale" and spec.data.options()["path"] == str(folder)


def test_cifar_split_hands_the_loaded_rows_on_without_copying_them(tmp_path):
    """CIFAR's own test batch is the last rows: each part is a view of the loaded images (no 150 MB
    copy at CIFAR's size) holding, and writing, exactly the rows that indexing gives; a part that is
    not one run of rows is still a copy (``holdout.take_rows``)."""
    from trainflow.refs import load_npz, mapped_npz
    from trainflow.spec import load_spec
    from trainflow.tasks.common import holdout
    from trainflow.tasks.common import load as loading

    spec = load_spec(Path(__file__).resolve().parents[1] / "flows" / "specs" / "cifar10.yaml",
                     [f"data.path={write_cifar(tmp_path / 'c', n=6)}", "validation.min_rows=10"])
    ref = loading.load(spec.data, str(tmp_path / "cache"), "image")
    loaded = load_npz(ref.path)  # remembered for split, as in a run
    x, is_test = loaded["x"], loaded["is_test"].astype(bool)
    split = I.split(ref, spec, str(tmp_path / "cache"))
    for part, rows in ((split.train, ~is_test), (split.test, is_test)):
        handed = load_npz(part.path)  # what fit and evaluate get in this process
        assert np.shares_memory(handed["x"], x) and np.array_equal(handed["x"], x[rows])
        assert np.array_equal(mapped_npz(part.path)["x"], x[rows])  # the file, read back
    idx = np.array([0, 2, 3])
    assert not np.shares_memory(holdout.take_rows(x, idx), x) and np.array_equal(holdout.take_rows(x, idx), x[idx])
    assert np.shares_memory(holdout.take_rows(x, np.arange(3, 7)), x)


def test_predict_warns_with_the_count_when_it_resizes_or_converts(tmp_path, capsys):
    from PIL import Image

    from trainflow.tasks.image.modality import read_new_images

    for i, (size, mode) in enumerate([((8, 8), "L"), ((16, 12), "L"), ((16, 12), "RGB")]):
        Image.new(mode, size).save(tmp_path / f"{i}.png")
    x, names = read_new_images(tmp_path, {"size": [8, 8], "channels": 1, "convert": True})
    assert x.shape == (3, 8, 8, 1) and names == ["0.png", "1.png", "2.png"]
    err = capsys.readouterr().err
    assert "trainflow: warning: predict: resized 2 of 3 image(s) to 8x8" in err
    assert "converted 1 of 3 image(s) to 1 channel(s)" in err


@pytest.mark.parametrize("dtype,channels", [(np.uint8, 3), (np.uint8, 1), (np.float32, 1), (np.float64, 3)])
def test_to_tensor_normalizes_in_place_on_its_own_copy(dtype, channels):
    """The in-place normalization gives the plain formula's values and layout (strides decide how
    the convolutions compute), and never changes the caller's pixels."""
    full = (np.random.default_rng(0).random((10, 4, 3, channels)) * 200).astype(dtype)
    read_only = full[:5].copy()
    read_only.flags.writeable = False  # as a mapped cache file's arrays are
    for x in (full[:5], full[::2], read_only, full[::-2]):  # contiguous, strided, read-only, reversed rows
        before = x.copy()
        mean, std = [0.2, 0.3, 0.4][:channels], [0.5, 0.6, 0.7][:channels]
        plain = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float() / 255.0
        plain = (plain - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
        t = I.to_tensor(x, 255.0, mean, std)
        assert torch.equal(t, plain) and t.stride() == plain.stride() and t.dtype == torch.float32
        assert np.array_equal(x, before)


@pytest.mark.parametrize("channels", [3, 1])
def test_cpu_prediction_from_channels_last_pixels_gives_the_same_outputs(channels):
    """``probabilities`` on a CPU lays the pixels out channels-last once (no NCHW copy that each batch
    copied back): the tensor holds the same values, and the network's outputs are the same bits."""
    from trainflow.tasks.common.training import predict

    x = np.random.default_rng(1).integers(0, 256, (700, 12, 12, channels), dtype=np.uint8)
    mean, std = [0.2, 0.3, 0.4][:channels], [0.5, 0.6, 0.7][:channels]
    t = I.to_tensor(x, 255.0, mean, std, channels_last=True)
    assert torch.equal(t, I.to_tensor(x, 255.0, mean, std))
    assert t.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)
    model = N.cnn(N.CnnConfig(width=4, dense=8), (channels, 12, 12), 3)
    config = {"divisor": 255.0, "mean": mean, "std": std, "classes": ["a", "b", "c"]}
    before = predict(model, I.to_tensor(x, 255.0, mean, std), batch_size=512, device="cpu")
    proba = I.probabilities(model, config, x, "cpu")
    assert np.array_equal(proba, I.neural.probabilities(before, config))


@pytest.mark.parametrize("options", [{}, {"activation": "tanh", "batch_norm": True}, {"activation": "sigmoid", "depth": 3,
                                                                                       "padding": "same"}])
def test_prediction_pools_before_the_activation_with_the_same_output_bits(options):
    """``pooled_first`` moves each monotone activation after the max-pool that follows it (a quarter of
    the values to activate): the outputs are the same bits, and the saved network is left as it was."""
    from trainflow.tasks.common.networks import pooled_first
    from trainflow.tasks.common.training import predict

    torch.manual_seed(0)
    model = N.cnn(N.CnnConfig(width=4, dense=8, **options), (3, 16, 16), 3)
    for p in model.parameters():  # trained-like weights: some units negative, some positive after each layer
        p.data.normal_(0, 0.5)
    model.eval()
    order = [type(m) for m in model]
    x = torch.rand(300, 3, 16, 16)
    fast = pooled_first(model)
    assert fast is not model and [type(m) for m in model] == order
    assert [type(m).__name__ for m in fast].index("MaxPool2d") < [type(m).__name__ for m in fast].index(
        "ReLU" if not options else ("Tanh" if options["activation"] == "tanh" else "Sigmoid"))
    assert torch.equal(predict(fast, x, batch_size=128, device="cpu"), predict(model, x, batch_size=128, device="cpu"))
    gelu = N.cnn(N.CnnConfig(width=4, dense=8, activation="gelu"), (3, 16, 16), 3)
    assert pooled_first(gelu) is gelu  # not monotone: kept as it is


def test_predict_leaves_out_an_unreadable_image_with_a_warning(tmp_path, capsys):
    from PIL import Image

    from trainflow.tasks.image.modality import read_new_images

    for i in range(2):
        Image.new("L", (8, 8)).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    x, names = read_new_images(tmp_path, {"size": [8, 8], "channels": 1, "convert": True})
    assert x.shape == (2, 8, 8, 1) and names == ["0.png", "1.png"]
    assert "predict: 1 of 3 image file(s)" in capsys.readouterr().err
    with pytest.raises(DataError, match="None of the 1 image file"):
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        read_new_images(tmp_path / "bad", {"size": [8, 8], "channels": 1, "convert": True})


def test_sixteen_bit_gray_images_are_scaled_not_clipped(tmp_path):
    """Pillow's convert('L') clips a 16-bit image's values above 255 to white: two classes of 16-bit
    images (dark and bright) would both read as all white."""
    from trainflow.tasks.image.loaders import ImageOptions, read_image

    Image.fromarray(np.array([[1000, 30000], [60000, 65535]], dtype=np.uint16)).save(tmp_path / "x.png")
    assert Image.open(tmp_path / "x.png").mode == "I;16"
    assert read_image(tmp_path / "x.png", ImageOptions(path=str(tmp_path)))[..., 0].tolist() == [[4, 117], [233, 255]]
