"""Small typed records that tasks pass to each other instead of the data itself.

A reference is a path plus a content digest; the digest makes cache keys cheap and exact, and the
data stays on disk in a format made for it (Parquet, ``.npz``, skops, safetensors).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from trainflow import memo
from trainflow.files import open_regular


class Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataRef(Ref):
    """A dataset on disk: ``path`` (file or folder), its ``digest``, and a few facts about it."""

    path: str
    digest: str
    modality: str
    meta: dict[str, Any] = {}


class SplitRef(Ref):
    """Train and test parts of a dataset, and the validation part when the spec gives one."""

    train: DataRef
    test: DataRef
    validation: DataRef | None = None
    meta: dict[str, Any] = {}


class ModelRef(Ref):
    """A fitted model: a folder holding the model file(s), and the digest of their content."""

    path: str
    digest: str
    modality: str
    meta: dict[str, Any] = {}

    @classmethod
    def of_folder(cls, folder: str | os.PathLike, main_file: str, modality: str, meta: dict[str, Any]) -> ModelRef:
        """The reference to a saved model folder: ``digest`` is that of ``main_file``;
        ``meta["files"]`` holds the digest of every file in it, so damage is noticed (:func:`damage`)."""
        folder = Path(folder)
        files = {p.name: file_digest(p) for p in sorted(folder.iterdir()) if p.is_file()}
        return cls(path=str(folder), digest=files[main_file], modality=modality, meta={**meta, "files": files})


class Evaluation(Ref):
    """Scores on the held-out split, plus what the report shows."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, int | float]] = {}  # int keeps "support" a count
    confusion: dict[str, Any] = {}
    plots: dict[str, str] = {}  # title -> PNG path
    tables: dict[str, list[dict[str, Any]]] = {}  # title -> rows
    notes: list[str] = []
    intervals: dict[str, list[float]] = {}  # metric -> bootstrap 95% interval [low, high]


def file_digest(path: str | os.PathLike, h: Any = None) -> str:
    """SHA-256 of a file's bytes (or of every file under a folder, with their relative names)."""
    path = Path(path)
    h = h or hashlib.sha256()
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(child.relative_to(path)).encode())
            _update_file(h, child)
    else:
        _update_file(h, path)
    return h.hexdigest()


def _update_file(h: Any, path: Path) -> None:
    with open_regular(path) as fh:  # a FIFO, a device or a /proc file would block or never end
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def json_digest(obj: Any) -> str:
    """SHA-256 of an object's canonical JSON form."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def store_parquet(df: Any, cache_dir: str | os.PathLike, digest: str, copy_of: str | os.PathLike | None = None) -> Path:
    """Write a DataFrame to ``<cache>/data/<digest>.parquet`` (atomically); return the path.

    ``copy_of``: a Parquet file that reads back as exactly ``df``; it is copied byte for byte
    instead of encoded again when :func:`copy_unchanged` can vouch that it did not change while this
    process ran (at a million rows the copy is ~0.1 s, the encoding ~0.8 s CPU).

    Written on every load, never reused just because it exists: the cache is disposable, and a
    file someone truncated there must not break the run (the loader has just read the data anyway).
    The frame is remembered (see :mod:`trainflow.memo`), so the next stage in this process does not
    read the file back.
    """
    path = Path(cache_dir) / "data" / f"{digest}.parquet"
    if copy_of is None or not copy_unchanged(copy_of, path):
        save_parquet(path, df)
    memo.remember(path, df)
    return path


#: when this module was imported, less a margin for file systems' coarse clocks
_SETTLED_BEFORE_NS = time.time_ns() - 2_000_000_000


def copy_unchanged(source: str | os.PathLike, target: str | os.PathLike) -> bool:
    """Copy ``source`` to ``target`` atomically and return True when the source has not changed
    since before this process started (so it holds the bytes a load in this process read and
    digested); else copy nothing and return False. A real copy: later edits of the source never
    show through the target.

    Writing to a file, or making its path name it (rename, link), sets its change time
    (``st_ctime``), which cannot be set back; so a source whose change time comes before this
    module's import, and is the same after the copy, was not changed (on a network file system
    this trusts the server's clock to within the 2 s margin)."""
    path = Path(target)
    with open(source, "rb") as src:
        before = os.fstat(src.fileno())
        if max(before.st_ctime_ns, before.st_mtime_ns) >= _SETTLED_BEFORE_NS:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _beside(path)
        try:
            with open(tmp, "wb") as dst:
                copied = 0
                while copied < before.st_size:  # in the kernel: the bytes never pass through Python
                    n = os.sendfile(dst.fileno(), src.fileno(), copied, before.st_size - copied)
                    if n == 0:
                        break
                    copied += n
            after = os.fstat(src.fileno())
            if copied != before.st_size or (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != \
                    (before.st_size, before.st_mtime_ns, before.st_ctime_ns):
                return False
            os.replace(tmp, path)
            return True
        finally:
            tmp.unlink(missing_ok=True)


def save_parquet(path: str | os.PathLike, df: Any) -> None:
    """Write a DataFrame (without its index) to Parquet atomically."""
    with atomic_target(path) as tmp:
        write_parquet(df, tmp)


def write_parquet(df: Any, path: str | os.PathLike) -> None:
    """``df.to_parquet`` without an index, dictionary-encoding only the columns that are not floats:
    measured floats rarely repeat, and trying a dictionary on each float column costs a third of
    the write time for nothing."""
    import pandas as pd

    dictionary = [str(c) for c in df.columns if not pd.api.types.is_float_dtype(df[c])]
    df.to_parquet(path, index=False, use_dictionary=dictionary or False)


def read_parquet(path: str | os.PathLike, keep: bool = True) -> Any:
    """The table in a Parquet file: the frame this process wrote or read there if it is unchanged,
    else read from disk. ``keep=False`` when the caller is the last stage that needs it. Callers
    must not modify the frame in place."""
    df = memo.recall(path, keep=keep)
    if df is None:
        import pandas as pd

        df = pd.read_parquet(path)
        if keep:
            memo.remember(path, df)
    return df


def store_split_tables(cache_dir: str | os.PathLike, key: str, train: Any, test: Any, modality: str,
                       meta: dict[str, Any], validation: Any = None) -> dict[str, DataRef]:
    """Write the train and test tables of a split to ``<cache>/splits/<key[:16]>/`` (atomically, since
    concurrent runs may share a split) and remember them for the next stage; their references by name."""
    folder = Path(cache_dir) / "splits" / key[:16]
    refs = {}
    parts = [("train", train), ("test", test)] + ([("validation", validation)] if validation is not None else [])
    for name, part in parts:
        path = folder / f"{name}.parquet"
        part = part.reset_index(drop=True)  # as it reads back from the file
        save_parquet(path, part)
        memo.remember(path, part)
        refs[name] = DataRef(path=str(path), digest=file_digest(path), modality=modality,
                             meta={**meta, "rows": len(part)})
    return refs


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """Write arrays to an ``.npz`` file atomically (readers see the old file or the new one)."""
    import numpy as np

    with atomic_target(path) as tmp:
        np.savez(tmp, **arrays)


def load_npz(path: str | os.PathLike, keep: bool = True, limit: int | None = None,
             mapped: bool = False) -> dict[str, Any]:
    """Every array of an ``.npz`` file (object arrays refused: they would need pickle): the arrays this
    process remembered for it (:func:`remember_npz`) while the file is unchanged, else read from disk.
    ``keep=False`` forgets them, for the last stage that needs them. Callers must not modify them.
    With ``limit`` (a file from outside, such as a model folder's) its declared sizes are checked
    first (:func:`trainflow.archives.check_zip`). ``mapped``: a file this run wrote (a cache part) is
    mapped, not read (:func:`mapped_npz`), for a caller that reads a few of its items."""
    import numpy as np

    if limit is not None:
        from trainflow.archives import check_zip

        check_zip(path, limit, "saved file")
    arrays = memo.recall(path, keep=keep)
    if arrays is not None:
        return dict(arrays)
    if mapped and limit is None:
        return mapped_npz(path)
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def mapped_npz(path: str | os.PathLike) -> dict[str, Any]:
    """The arrays of an uncompressed ``.npz`` (as :func:`save_npz` writes) as read-only views of the
    file mapped into memory: a drift profile that reads 10,000 of a part's 50,000 images reads those
    pages, where ``np.load`` reads the whole 150 MB and checks its CRC (0.7 s CPU). A compressed
    member is read as ``np.load`` reads it; object arrays are refused as there. Only a regular file is
    opened (a FIFO or /proc file is a DataError), and an array that would reach past the file's end
    (a truncated copy) is a DataError naming it, never a view of memory outside the map."""
    import mmap
    import struct
    import zipfile

    import numpy as np
    from numpy.lib import format as npformat

    from trainflow.errors import DataError

    out: dict[str, Any] = {}
    with open_regular(path, "stored array file") as fh, zipfile.ZipFile(fh) as archive:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    out[name] = npformat.read_array(member, allow_pickle=False)
                continue
            fh.seek(info.header_offset)
            local = fh.read(30)  # the member's local header: its name and extra field follow it
            fh.seek(info.header_offset + 30 + sum(struct.unpack("<HH", local[26:30])))
            major, _ = npformat.read_magic(fh)
            read_header = npformat.read_array_header_1_0 if major == 1 else npformat.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            if dtype.hasobject:
                raise ValueError(f"'{path}': array '{name}' holds Python objects, which would need pickle")
            count = int(np.prod(shape, dtype=np.int64))
            if count < 0 or fh.tell() + count * dtype.itemsize > len(mm):
                raise DataError(f"The stored array file '{path}' is cut short: array '{name}' of shape {shape} "
                                "reaches past its end. Delete the cache folder and run again.")
            flat = np.frombuffer(mm, dtype=dtype, count=count, offset=fh.tell())
            out[name] = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
    return out


def remember_npz(path: str | os.PathLike, arrays: dict[str, Any]) -> None:
    """Keep ``arrays``, just written to ``path`` by :func:`save_npz`, for the next stage of this process
    (:mod:`trainflow.memo`): a 50,000-image training split is ~150 MB not read back."""
    memo.remember(path, dict(arrays))


def _beside(path: Path) -> Path:
    """A temporary name beside ``path`` (same suffix), unique to this process and thread."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}-{threading.get_ident()}{path.suffix}")


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, unique to this process and thread) to write
    to; it replaces ``path`` when the block succeeds and is removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def damage(ref: Ref) -> str | None:
    """Why the files behind a split or model reference cannot be used (missing, or not matching
    their recorded digest), or None when they are whole. (A DataRef fresh from ``load`` carries the
    digest of its source, not of the stored file, so it is not checked this way.)"""
    if isinstance(ref, SplitRef):
        return damage(ref.train) or damage(ref.test) or (damage(ref.validation) if ref.validation else None)
    if isinstance(ref, ModelRef):
        expected = {name: Path(ref.path) / name for name in ref.meta.get("files", {})}
        digests = ref.meta.get("files", {})
    elif isinstance(ref, DataRef):
        expected, digests = {"": Path(ref.path)}, {"": ref.digest}
    else:
        return None
    for name, path in expected.items():
        if not path.is_file():
            return f"'{path}' is missing"
        if file_digest(path) != digests[name]:
            return f"'{path}' does not match its recorded digest (changed or damaged)"
    return None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file so that readers see the old content or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # never leave a half-written temporary file beside the real one
        if exc.filename is None:  # a write that found no room names no file: name it
            exc.filename = str(path)
        raise
