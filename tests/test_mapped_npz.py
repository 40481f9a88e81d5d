"""refs.mapped_npz: a cache part's arrays mapped, not read, equal to what np.load reads."""

import numpy as np
import pytest

from trainflow.refs import load_npz, mapped_npz, save_npz


def test_mapped_arrays_equal_np_load_and_are_read_only(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x": rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8), "y": np.arange(50),
              "f": np.asfortranarray(rng.normal(size=(7, 5))), "s": np.array(3.5), "names": np.array(["a", "bb"])}
    save_npz(tmp_path / "part.npz", **arrays)
    mapped = load_npz(tmp_path / "part.npz", mapped=True)
    assert sorted(mapped) == sorted(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(mapped[name], value)
        assert mapped[name].dtype == value.dtype and mapped[name].shape == value.shape
        assert not mapped[name].flags.writeable
    np.testing.assert_array_equal(mapped["x"][[3, 40, 7]], arrays["x"][[3, 40, 7]])


def test_a_compressed_member_is_read_and_objects_are_refused(tmp_path):
    np.savez_compressed(tmp_path / "c.npz", x=np.arange(10.0))
    np.testing.assert_array_equal(mapped_npz(tmp_path / "c.npz")["x"], np.arange(10.0))
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        mapped_npz(tmp_path / "o.npz")


def test_a_truncated_or_special_file_is_a_data_error_naming_it(tmp_path):
    import os
    import zipfile

    from trainflow.errors import DataError

    save_npz(tmp_path / "part.npz", x=np.arange(1000, dtype=np.int64))
    # a copy whose member claims more data than the file holds: rebuilt with a cut-short member
    with zipfile.ZipFile(tmp_path / "part.npz") as z:
        raw = z.read("x.npy")
    with zipfile.ZipFile(tmp_path / "cut.npz", "w") as z:
        z.writestr("x.npy", raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cut.npz.*cut short"):
        mapped_npz(tmp_path / "cut.npz")
    os.mkfifo(tmp_path / "fifo.npz")
    with pytest.raises(DataError, match="fifo.npz"):
        mapped_npz(tmp_path / "fifo.npz")
