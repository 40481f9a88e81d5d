"""The monitor's drift history: appended a line a batch, its newest rows read from the file's end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainflow.tasks.common import batches


@pytest.mark.parametrize("block", [5, 64, 1 << 16])
def test_the_last_lines_read_from_the_end_match_a_whole_read(tmp_path, block):
    path = tmp_path / "h.jsonl"
    lines = [json.dumps({"i": i, "note": "é" * (i % 7)}, ensure_ascii=False) for i in range(300)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for n in (1, 3, 200, 299, 300, 500):
        assert batches._last_lines(path, n, block) == lines[-n:], n


def test_the_history_shows_its_newest_rows_and_skips_damaged_lines(tmp_path):
    folder = tmp_path / "p" / batches.MONITOR_FOLDER
    folder.mkdir(parents=True)
    old = [json.dumps({"batch": f"b{i}"}) for i in range(5000)]
    (folder / batches.HISTORY_FILE).write_text("\n".join(old[:-3] + ["{not json", "[1, 2]"] + old[-3:]) + "\n")
    shown = batches.append_history(tmp_path, "p", {"batch": "new"})
    names = [r["batch"] for r in shown]
    assert names[-1] == "new" and names[-4:-1] == ["b4997", "b4998", "b4999"]
    assert len(shown) == batches.HISTORY_SHOWN - 2  # the two damaged lines among the newest are skipped
    assert names[0] == f"b{5000 - (batches.HISTORY_SHOWN - 3)}"  # 200 lines: the new, 2 damaged, 197 old


def test_a_history_that_is_a_fifo_is_named_not_blocked_on(tmp_path):
    import os

    from trainflow.errors import DataError

    folder = tmp_path / "p" / batches.MONITOR_FOLDER
    folder.mkdir(parents=True)
    os.mkfifo(folder / batches.HISTORY_FILE)
    with pytest.raises(DataError, match="history .*history.jsonl is a FIFO"):
        batches.append_history(tmp_path, "p", {"batch": "new"})


def test_pruning_keeps_the_newest_batch_folders_and_nothing_else_is_touched(tmp_path):
    import os

    made = [batches.batch_folder(tmp_path, "p", tmp_path / f"b{i}.csv") for i in range(5)]
    root = tmp_path / "p" / batches.MONITOR_FOLDER
    (root / batches.HISTORY_FILE).write_text("{}\n")
    (root / "notes").mkdir()  # a user's folder beside the batches
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, root / "20200101-000000-000000-link")  # named like a batch, but a link
    (root / "20200101-000000-000001-file").write_text("x")  # named like a batch, but a file
    assert sorted(made) == made  # the time stamp orders the names
    removed = batches.prune_batch_folders(tmp_path, "p", 2)
    assert removed == made[:3]
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [m.name for m in made[3:]] + [batches.HISTORY_FILE, "notes", "20200101-000000-000000-link",
                                      "20200101-000000-000001-file"])
    assert elsewhere.is_dir() and batches.prune_batch_folders(tmp_path, "p", 2) == []
    assert batches.prune_batch_folders(tmp_path, "absent", 1) == []



def test_a_batch_folder_that_cannot_be_removed_is_warned_about_and_left(tmp_path, monkeypatch):
    """A folder the monitor may not delete (a permission, a busy mount) or one already gone: the scored batch
    is not failed for it."""
    import shutil

    made = [batches.batch_folder(tmp_path, "p", tmp_path / f"b{i}.csv") for i in range(4)]
    real = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if Path(path) == made[0]:
            raise PermissionError(13, "Permission denied", str(path))
        if Path(path) == made[1]:
            real(path)  # removed by another monitor first
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(batches.shutil, "rmtree", rmtree)
    with pytest.warns(UserWarning, match=r"b0.csv could not be removed \(Permission denied\); it is left"):
        assert batches.prune_batch_folders(tmp_path, "p", 1) == [made[2]]
    assert made[0].is_dir() and not made[1].exists() and not made[2].exists() and made[3].is_dir()
