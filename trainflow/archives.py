"""Zip archives (``.skops``, ``.npz``) checked from their directory before a byte is decompressed.

A zip member declares its uncompressed size and a ``.npy`` member declares its array's shape; a
3 MB file can declare gigabytes of either, and NumPy allocates the declared shape before reading.
So the declared sizes are summed against a cap, and every array's shape x item size must fit in
the bytes its member declares, before anything is loaded.
"""

from __future__ import annotations

import math
import os
import zipfile

from trainflow.errors import DataError

#: a saved model (skops, model.npz) decompresses to at most this many bytes
MODEL_ZIP_BYTES = 1 << 30

#: a dataset archive (.npz) decompresses to at most this many bytes
DATA_ZIP_BYTES = 16 << 30


def check_zip(path: str | os.PathLike, limit: int, what: str = "file") -> None:
    """DataError naming ``path`` when its members declare more than ``limit`` bytes in all, or a
    ``.npy`` member declares an array larger than the member. ``zipfile.BadZipFile`` when it is not
    a zip archive (the caller reports it as damaged)."""
    import numpy as np

    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        total = sum(m.file_size for m in members)
        if total > limit:
            raise DataError(f"The {what} '{path}' declares {total:,} bytes once decompressed, more than the "
                            f"{limit:,} trainflow reads; it cannot be what it should be (a zip bomb?).")
        for m in members:
            if not m.filename.endswith(".npy"):
                continue
            with archive.open(m) as fh:
                try:
                    version = np.lib.format.read_magic(fh)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(fh)
                except Exception as exc:  # noqa: BLE001 - any malformed header is damage
                    raise DataError(f"The {what} '{path}' is damaged (member '{m.filename[:80]}': "
                                    f"{type(exc).__name__}).") from None
            size = math.prod(shape) * dtype.itemsize if dtype.itemsize else 0
            if size > m.file_size:
                raise DataError(f"The {what} '{path}' is damaged: member '{m.filename[:80]}' declares an array of "
                                f"{size:,} bytes in {m.file_size:,} bytes.")
