"""Image loaders: ``digits``, ``cifar10``, ``image_folder``, ``image_manifest`` (a CSV naming each
image file, its label or labels and optionally its split) and ``npz``.

Every loader returns :class:`Images`: pixels as an ``[n, height, width, channels]`` array, labels,
class names, and facts the later stages need (the pixel maximum, a predefined test split,
files that could not be read). Bad input raises :class:`~trainflow.errors.DataError` naming the
file and what was expected. Pillow and pickle are used only inside the functions.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainflow.errors import DataError
from trainflow.archives import DATA_ZIP_BYTES, check_zip
from trainflow.files import open_regular, path_problem
from trainflow.registry import NoOptions, component
from trainflow.tasks.common.load import label_names
from trainflow.tasks.common.manifest import ManifestColumns, manifest_files, read_manifest

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass
class Images:
    """Loaded images: ``x`` is ``[n, h, w, c]`` (uint8 or float32), ``y`` indexes ``classes``, or
    (multi-label) is an ``[n, labels]`` matrix of 0/1 whose columns ``classes`` names."""

    x: np.ndarray
    y: np.ndarray
    classes: list[str]
    max_value: float  # the nominal pixel maximum (255 for 8-bit images, 16 for digits)
    source: str
    is_test: np.ndarray | None = None  # a predefined test split (CIFAR's test_batch), else None
    keys: np.ndarray | None = None  # the values of the spec's split column or group (image_manifest)
    files: list[str] | None = None
    skipped: list[str] = field(default_factory=list)  # "file: reason" for unreadable files that were skipped


class ImageOptions(BaseModel):
    """Shape options shared by the file-based image loaders."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="Folder or file to read")
    size: tuple[int, int] | None = Field(None, description="[height, width] to resize to; default: keep (all must match)")
    channels: Literal[1, 3] | None = Field(None, description="1 (gray) or 3 (RGB); default: as stored")
    convert: bool = Field(True, description="Convert gray <-> RGB to reach 'channels'; false makes a mismatch an error")

    @field_validator("size")
    @classmethod
    def _positive(cls, v):
        if v is not None and min(v) < 1:
            raise ValueError("size must be two positive integers [height, width]")
        return v


# ---------------------------------------------------------------- digits


@component("loader", "digits", NoOptions, modality="image", image_size=(8, 8))
def load_digits(config: NoOptions) -> Images:
    """scikit-learn's 8x8 handwritten digits (1797 images, shipped with scikit-learn; offline)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = d.images.astype(np.uint8)[..., None]  # values 0..16
    return Images(x=x, y=d.target.astype(np.int64), classes=[str(c) for c in d.target_names], max_value=16.0,
                  source="sklearn.datasets.load_digits")


# ---------------------------------------------------------------- cifar10


class CifarConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="The 'cifar-10-batches-py' folder (data_batch_1..5, test_batch, batches.meta)")
    limit: int | None = Field(None, ge=1, description="Read only the first N images of each batch (quick trials)")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR batch files hold: dicts, lists, bytes, str, numbers and NumPy
    arrays. Any other class (the way a malicious pickle runs code) is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}' (only NumPy arrays are allowed)")


def read_cifar_batch(path: Path) -> dict[str, Any]:
    """One CIFAR python batch file as a dict with str keys, via the restricted unpickler."""
    if not path.is_file():
        raise DataError(f"The CIFAR-10 folder '{path.parent}' has no '{path.name}'; expected data_batch_1..5 "
                        "and test_batch (the 'cifar-10-batches-py' folder of the python version).")
    try:
        with open(path, "rb") as fh:
            raw = _ArrayUnpickler(fh, encoding="bytes").load()
    except Exception as exc:
        raise DataError(f"'{path}' is not a CIFAR-10 batch file: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(f"'{path}' is not a CIFAR-10 batch file: expected a dict, got {type(raw).__name__}.")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}


@component("loader", "cifar10", CifarConfig, modality="image", image_size=(32, 32))
def load_cifar10(config: CifarConfig) -> Images:
    """CIFAR-10 python batches (32x32 RGB, 10 classes; 50000 train + 10000 test images)."""
    folder = Path(config.path).expanduser()
    if not folder.is_dir():
        problem = path_problem(folder, folder_ok=True) or "is a file; expected a folder"
        raise DataError(f"The CIFAR-10 folder '{folder}' {problem} (data.path); download and unpack "
                        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and point data.path at "
                        "its 'cifar-10-batches-py' folder.")
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"The CIFAR-10 folder '{folder}' lacks {', '.join(repr(m) for m in missing)}; expected "
                        "data_batch_1..5 and test_batch.")
    batches, ys, test = [], [], []
    for name in names:
        batch = read_cifar_batch(folder / name)
        data, labels = batch.get("data"), batch.get("labels")
        if not isinstance(data, np.ndarray) or labels is None:
            raise DataError(f"'{folder / name}' lacks the 'data' array or the 'labels' list of a CIFAR-10 batch.")
        if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise DataError(f"'{folder / name}' has 'data' of shape {tuple(data.shape)} and {len(labels)} labels; "
                            "expected shape (n, 3072) (32x32 RGB, channel-major) and n labels.")
        data, labels = data[: config.limit], np.asarray(labels[: config.limit], dtype=np.int64)
        if labels.min() < 0 or labels.max() > 9:
            raise DataError(f"'{folder / name}' has labels outside 0..9 (found {labels.min()}..{labels.max()}).")
        batches.append(data)
        ys.append(labels)
        test.append(np.full(len(labels), name == "test_batch"))
    # channel-last and C-contiguous, each batch transposed straight into its rows: astype or
    # np.concatenate would keep the transposed strides (every later reshape of the 60,000 images
    # would copy them in a cache-hostile order), and a list of parts would be copied once more
    x = np.empty((sum(len(b) for b in batches), 32, 32, 3), dtype=np.uint8)
    at = 0
    for data in batches:
        x[at:at + len(data)] = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        at += len(data)
    classes = CIFAR10_LABELS
    if (folder / "batches.meta").is_file():
        meta = read_cifar_batch(folder / "batches.meta")
        names_meta = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get("label_names", [])]
        if len(names_meta) == 10:
            classes = names_meta
    return Images(x=x, y=np.concatenate(ys), classes=classes, max_value=255.0,
                  source=str(folder), is_test=np.concatenate(test))


# ---------------------------------------------------------------- image folders


class FolderConfig(ImageOptions):
    # a real corpus has a few broken or stray files; validation bounds their share (text and audio alike)
    skip_unreadable: bool = Field(True, description="Leave out image files Pillow cannot read, or (without "
                                                    "'size') of another size than most (listed in the report; "
                                                    "image_validation.max_unreadable_share bounds their share); "
                                                    "false: any such file stops the run")


#: the pixel cap when Pillow's own (Image.MAX_IMAGE_PIXELS, ~89M) is switched off
MAX_PIXELS = 89_478_485


def read_image(path: Path, opts: ImageOptions) -> np.ndarray:
    """One image file as ``[h, w, c]`` uint8, converted and resized per ``opts``; DataError if unusable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open_regular(path, "image file") as fh, Image.open(fh) as im:
            if im.size[0] * im.size[1] > (Image.MAX_IMAGE_PIXELS or MAX_PIXELS):  # from the header
                raise _Unreadable(f"{path}: its header says {im.size[0]}x{im.size[1]} pixels, more than the "
                                  f"{Image.MAX_IMAGE_PIXELS or MAX_PIXELS:,} trainflow decodes")
            im.load()
            mode = im.mode
            gray = mode in ("1", "L", "LA", "I", "I;16", "F")
            want = opts.channels or (1 if gray else 3)
            if (want == 3 and gray or want == 1 and not gray) and not opts.convert:
                raise DataError(f"'{path}' is {'gray (1 channel)' if gray else f'{mode} (3 channels)'} but "
                                f"data.channels is {want} and data.convert is false; set data.convert: true "
                                "or data.channels to match the images.")
            if mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float gray: convert() clips at 255
                im = _to_eight_bits(im)
            im = im.convert("L" if want == 1 else "RGB")
            if opts.size is not None and im.size != (opts.size[1], opts.size[0]):
                im = im.resize((opts.size[1], opts.size[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (DataError, _Unreadable):
        raise
    except Image.DecompressionBombError as exc:  # not an OSError: Pillow's guard against huge pixel counts
        raise _Unreadable(f"{path}: too large to decode safely ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise _Unreadable(f"{path}: {exc}") from None
    return arr[..., None] if arr.ndim == 2 else arr


def _to_eight_bits(im: Any) -> Any:
    """A 16-bit, 32-bit or float gray image as 8 bits, scaled from its range (16-bit: 0..65535; a
    float image in 0..1: that; otherwise the smallest of 255, 65535 and its maximum that holds it):
    Pillow's convert('L') clips every value above 255 to white."""
    from PIL import Image

    a = np.asarray(im, dtype=np.float64)
    top = float(a.max(initial=0))
    if im.mode.startswith("I;16"):
        top = 65535.0
    else:
        top = next((r for r in ((1.0,) if im.mode == "F" else ()) + (255.0, 65535.0) if top <= r), top)
    return Image.fromarray(np.clip(np.rint(a / max(top, 1e-12) * 255), 0, 255).astype(np.uint8), mode="L")


class _Unreadable(Exception):
    """An image file Pillow cannot decode (truncated, corrupt or not an image)."""


def read_images(files: list[Path], opts: ImageOptions, skip: bool) -> tuple[list[np.ndarray], list[int], list[str]]:
    """Read ``files``; returns arrays, the indices read, and the unreadable ones ("file: reason")."""
    arrays, kept, bad = [], [], []
    for i, f in enumerate(files):
        try:
            arrays.append(read_image(f, opts))
            kept.append(i)
        except _Unreadable as exc:
            bad.append(str(exc))
    if bad and not skip:
        shown = "\n".join(f"  - {b}" for b in bad[:20]) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise DataError(f"{len(bad)} image file(s) could not be read:\n{shown}\n"
                        "Fix or remove them, or set data.skip_unreadable: true to leave them out "
                        "(up to image_validation.max_unreadable_share).")
    return arrays, kept, bad


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}x{shape[1]} with {shape[2]} channel(s)"


def commonest_shape(arrays: list[np.ndarray], names: list[str]) -> tuple[list[int], list[str]]:
    """The positions of the images of the commonest shape (ties: the first seen), and "name: why" for
    each other one (left out as odd, as an unreadable file is)."""
    from collections import Counter

    counts = Counter(a.shape for a in arrays)
    if len(counts) < 2:
        return list(range(len(arrays))), []
    common = counts.most_common(1)[0][0]
    keep = [i for i, a in enumerate(arrays) if a.shape == common]
    odd = [f"{n}: is {_shape_text(a.shape)}, most images are {_shape_text(common)} (set data.size and "
           "data.channels to resize and convert them all)" for n, a in zip(names, arrays) if a.shape != common]
    return keep, odd


def stack(arrays: list[np.ndarray], files: list[Path], where: str) -> np.ndarray:
    """Stack same-shaped images; name the odd one out otherwise."""
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape
        odd = next(f for a, f in zip(arrays, files) if a.shape != first)
        raise DataError(f"The images in '{where}' differ in size ('{files[0]}' is {first}, '{odd}' is "
                        f"{next(a.shape for a in arrays if a.shape != first)}); set data.size: [height, width].")
    return np.stack(arrays)


@component("loader", "image_folder", FolderConfig, modality="image")
def load_image_folder(config: FolderConfig) -> Images:
    """A folder with one sub-folder of images per class (PNG, JPEG, ... read with Pillow)."""
    root = Path(config.path).expanduser()
    if not root.is_dir():
        problem = path_problem(root, folder_ok=True) or "is a file; expected a folder with one sub-folder per class"
        raise DataError(f"The image folder '{root}' {problem} (data.path).")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        found = f"only '{class_dirs[0].name}'" if class_dirs else "none"
        raise DataError(f"The image folder '{root}' needs one sub-folder per class and at least two classes; "
                        f"found {found}.")
    files, labels = [], []
    for label, d in enumerate(class_dirs):
        images = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"The class folder '{d}' holds no images (expected files ending in "
                            f"{', '.join(IMAGE_SUFFIXES)}).")
        files += images
        labels += [label] * len(images)
    arrays, kept, bad = read_images(files, config, config.skip_unreadable)
    if config.skip_unreadable:
        same, odd = commonest_shape(arrays, [str(files[i].relative_to(root)) for i in kept])
        # named as the report names the files read: relative to the folder
        bad = [b.removeprefix(f"{root}{os.sep}") for b in bad] + odd
        arrays, kept = [arrays[i] for i in same], [kept[i] for i in same]
    kept_files = [files[i] for i in kept]
    if not arrays:
        raise DataError(f"No image in '{root}' could be read.")
    y = np.asarray([labels[i] for i in kept], dtype=np.int64)
    return Images(x=stack(arrays, kept_files, str(root)), y=y, classes=[d.name for d in class_dirs],
                  max_value=255.0, source=str(root), files=[str(f.relative_to(root)) for f in kept_files], skipped=bad)


# ---------------------------------------------------------------- image manifests


class ManifestConfig(ManifestColumns, FolderConfig):
    path: str = Field(..., description="CSV file with one row per image")


@component("loader", "image_manifest", ManifestConfig, modality="image", source_files=manifest_files,
           split_key=True)
def load_image_manifest(config: ManifestConfig, split: Any = None) -> Images:
    """A CSV listing each image's file, its label (multi-label: 0/1 columns or a delimited label) and
    optionally the spec's split column or group; the images are read as ``image_folder`` reads them."""
    m = read_manifest(config, "image file", strict=not config.skip_unreadable, split=split)
    if m.labels is None and m.label_matrix is None:
        raise DataError(f"The manifest '{m.path}' gives no labels: set data.label to its label column "
                        "(or, for task multilabel, data.targets or data.separator).")
    tried = [i for i, problem in enumerate(m.problems) if problem is None]
    arrays, kept, bad = read_images([m.files[i] for i in tried], config, skip=True)
    bad_rows = [tried[i] for i in sorted(set(range(len(tried))) - set(kept))]
    reasons = [b.removeprefix(f"{m.files[i]}: ") for i, b in zip(bad_rows, bad)]  # read_images says "file: why"
    if bad_rows and not config.skip_unreadable:
        row = bad_rows[0]
        more = f" ({len(bad_rows) - 1} more such row(s))" if len(bad_rows) > 1 else ""
        raise DataError(f"The manifest '{m.path}' names the image file '{m.names[row]}' "
                        f"{m.row_text(row, config.file)}, which Pillow cannot read as an image: {reasons[0]}{more}. "
                        "Fix or remove it, or set data.skip_unreadable: true.")
    rows = [tried[i] for i in kept]
    same, odd = (commonest_shape(arrays, [m.names[i] for i in rows]) if config.skip_unreadable
                 else (list(range(len(rows))), []))
    arrays, rows = [arrays[i] for i in same], [rows[i] for i in same]
    skipped = [f"{m.names[i]}: {p}" for i, p in enumerate(m.problems) if p] + \
              [f"{m.names[i]}: {why}" for i, why in zip(bad_rows, reasons)] + odd
    if not rows:
        raise DataError(f"No image the manifest '{m.path}' names could be read ({len(skipped)} skipped).")
    if m.label_matrix is not None:  # 0/1 values other than 0 and 1 are left for validation to report
        y, classes = m.label_matrix[rows].astype(np.float64), list(m.label_names)
    else:
        classes, codes = np.unique(np.asarray(m.labels, dtype=str)[rows], return_inverse=True)
        y, classes = codes.astype(np.int64), [str(c) for c in classes]
    return Images(x=stack(arrays, [m.names[i] for i in rows], str(m.path)), y=y, classes=classes, max_value=255.0,
                  source=str(m.path), is_test=None if m.is_test is None else m.is_test[rows],
                  keys=None if m.keys is None else m.keys[rows], files=[m.names[i] for i in rows], skipped=skipped)


# ---------------------------------------------------------------- npz


class NpzConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="A .npz file with arrays 'x' ([n,h,w], [n,h,w,c] or [n,c,h,w]) and 'y' "
                                        "([n] labels, or [n, labels] of 0/1 for task multilabel, with an optional "
                                        "array 'labels' naming its columns)")
    channels: Literal[1, 3] | None = Field(None, description="1 or 3; default: as stored")
    convert: bool = Field(True, description="Convert gray <-> RGB to reach 'channels'")


def to_nhwc(x: np.ndarray, where: str) -> np.ndarray:
    """``[n,h,w]``, ``[n,h,w,c]`` or ``[n,c,h,w]`` (c in 1, 3) as ``[n,h,w,c]``."""
    if x.ndim == 3:
        return x[..., None]
    if x.ndim == 4 and x.shape[-1] in (1, 3):
        return x
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x.transpose(0, 2, 3, 1)
    raise DataError(f"'{where}' holds images of shape {tuple(x.shape)}; expected [n, height, width], "
                    "[n, height, width, channels] or [n, channels, height, width] with 1 or 3 channels.")


def match_channels(x: np.ndarray, channels: int | None, convert: bool, where: str) -> np.ndarray:
    """Gray <-> RGB conversion of an ``[n,h,w,c]`` array, or DataError when conversion is off."""
    if channels is None or x.shape[-1] == channels:
        return x
    if not convert:
        raise DataError(f"'{where}' has {x.shape[-1]}-channel images but data.channels is {channels} and "
                        "data.convert is false; set data.convert: true or data.channels to match.")
    if channels == 3:
        return np.repeat(x, 3, axis=-1)
    return (x.astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32))[..., None].astype(x.dtype)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Arrays of an .npz file (no pickled objects allowed)."""
    if not path.is_file():
        raise DataError(f"The file '{path}' does not exist.")
    try:
        check_zip(path, DATA_ZIP_BYTES, ".npz file")  # declared sizes, before NumPy allocates them
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"'{path}' is not a readable .npz file of plain arrays: {exc}") from None


@component("loader", "npz", NpzConfig, modality="image")
def load_npz(config: NpzConfig) -> Images:
    """NumPy arrays in an .npz file: images 'x' and labels 'y' ([n], or [n, labels] of 0/1: multi-label)."""
    path = Path(config.path).expanduser()
    arrays = read_npz(path)
    if "x" not in arrays or "y" not in arrays:
        raise DataError(f"'{path}' must hold arrays 'x' (images) and 'y' (labels); it holds {sorted(arrays)}.")
    x = to_nhwc(arrays["x"], str(path))
    if arrays["y"].ndim == 2:  # multi-label: values other than 0/1 are left for validation to report
        if not np.issubdtype(arrays["y"].dtype, np.number):
            raise DataError(f"'{path}': a 2-D label array 'y' must hold numbers (0/1); got dtype {arrays['y'].dtype}.")
        y = arrays["y"].astype(np.float64)
        names = label_names(arrays.get("labels"), y.shape[1], path)
    else:
        y, names = arrays["y"].reshape(-1), None
    if len(x) != len(y):
        raise DataError(f"'{path}' has {len(x)} images but {len(y)} labels.")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"'{path}': 'x' must be numeric; got dtype {x.dtype}.")
    x = match_channels(x, config.channels, config.convert, str(path))
    if names is None:
        classes, codes = np.unique(y.astype(str) if y.dtype.kind in "OUS" else y, return_inverse=True)
        names, y = [str(c) for c in classes], codes.astype(np.int64)
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
    max_value = 255.0 if x.dtype == np.uint8 or float(x.max(initial=0)) > 1.0 else 1.0
    return Images(x=x, y=y, classes=names, max_value=max_value, source=str(path))
