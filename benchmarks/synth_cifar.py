"""Write a synthetic CIFAR-10 folder (python batches format) for benchmarks: no download needed.

    python benchmarks/synth_cifar.py OUT_DIR [--train 50000] [--test 10000] [--seed 0]

The files are laid out like 'cifar-10-batches-py' (data_batch_1..5, test_batch, batches.meta, each a
pickled dict as in the real archive) so the ``cifar10`` loader reads them unchanged. Each class has its
own mean colour and a bright square at its own place, plus noise: learnable, so accuracy means something.

The pickles are written as the real archive's were (by Python 2, protocol 2): byte strings, the pixels
included, are stored as they are (``BINSTRING``; data_batch_1 is 31,035,704 bytes in the real archive,
31.0 MB here). Python 3's pickler at protocol 2 would store them as text to re-encode
(``_codecs.encode``, 46.8 MB a batch), which takes three times as long to read as the real files.
"""

from __future__ import annotations

import argparse
import io
import pickle
import struct
from pathlib import Path

import numpy as np

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """``n`` 32x32 RGB images as CIFAR rows (n, 3072: the red plane, then green, then blue) and labels."""
    labels = rng.integers(0, 10, n)
    colours = np.linspace(40, 215, 10)
    x = rng.normal(0, 40, (n, 3, 32, 32))
    x += np.stack([colours[labels], colours[::-1][labels], colours[(labels * 3) % 10]], 1)[:, :, None, None]
    for k in range(10):  # a square whose place tells the class
        r, c = 4 + 6 * (k // 4), 4 + 6 * (k % 4)
        x[labels == k, :, r:r + 6, c:c + 6] += 60
    return np.clip(x, 0, 255).astype(np.uint8).reshape(n, 3072), labels.tolist()


class Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it: ``bytes`` as (SHORT_)BINSTRING, read back as bytes with
    ``encoding="bytes"``, as the real archive's pixels are."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def dumps(obj: object) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write(folder: Path, n_train: int = 50000, n_test: int = 10000, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = [len(p) for p in np.array_split(np.arange(n_train), 5)] + [n_test]
    for name, n in zip([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"], sizes):
        data, labels = images(n, rng)
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"{name}_{j}.png".encode() for j in range(n)]}
        (folder / name).write_bytes(dumps(batch))
    meta = {b"label_names": [c.encode() for c in LABELS], b"num_vis": 3072, b"num_cases_per_batch": sizes[0]}
    (folder / "batches.meta").write_bytes(dumps(meta))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--train", type=int, default=50000)
    parser.add_argument("--test", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(write(Path(args.out), args.train, args.test, args.seed))


if __name__ == "__main__":
    main()
