"""The fault catalogue: bad inputs across tabular, image, sequence, forecast, text and predict.

Every case goes through the CLI (in-process) and must exit with its code, print a message matching
its pattern with no traceback, and leave nothing that looks complete: no finished or half-written
run folder, no metrics.json, no predictions file. Most cases fail while the spec is read or the
run folder is made, before any flow starts; the ``server`` cases fail in the load/split tasks of a
flow on the session's Prefect server; the predict cases use tiny run folders trained once.
Bad inputs already covered by tests/test_*_bad_input.py and tests/test_image.py are not repeated.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import assert_nothing_complete, run_cli
from tests.reliability.conftest import SERIES, TABLE, WIDE, recipe_spec, tiny_images

Builder = Callable[[Path, Path | None], list]


@dataclass(frozen=True)
class Fault:
    build: Builder  # (tmp folder, trained run folder or None) -> CLI arguments
    code: int
    message: str  # a regex the error message must match
    needs: str | None = None  # None: fails before any flow; "server": in a flow; else the trained modality


# ---------------------------------------------------------------- how bad inputs are made


def special(kind: str) -> Callable[[Path], Path]:
    """A path that is not a regular file: a FIFO, a device, a link loop, a broken link or a folder."""

    def make(t: Path) -> Path:
        p = t / f"special-{kind}"
        if kind == "fifo":
            os.mkfifo(p)
        elif kind == "device":
            return Path("/dev/zero")
        elif kind == "loop":
            os.symlink(t / "loop-b", p)
            os.symlink(p, t / "loop-b")
        elif kind == "broken":
            os.symlink(t / "gone", p)
        elif kind == "folder":
            p.mkdir()
        return p

    return make


def text(name: str, content: str | bytes) -> Callable[[Path], Path]:
    def make(t: Path) -> Path:
        p = t / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        return p

    return make


def truncated_parquet(name: str = "rows.parquet", csv: str = TABLE) -> Callable[[Path], Path]:
    def make(t: Path) -> Path:
        import pandas as pd

        p = t / name
        buf = io.BytesIO()
        pd.read_csv(io.StringIO(csv)).to_parquet(buf, index=False)
        p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
        return p

    return make


def npz(name: str, **arrays) -> Callable[[Path], Path]:
    def make(t: Path) -> Path:
        np.savez(t / name, **arrays)
        return t / name

    return make


def run(modality: str = "tabular", file: Callable[[Path], Path] | None = None, sets: tuple[str, ...] = (),
        **patch) -> Builder:
    """``trainflow run`` of the modality's tiny recipe, its data file replaced by what ``file`` makes
    and its spec sections ``patch``ed."""

    def build(t: Path, _model: Path | None) -> list:
        path = file(t) if file else None
        spec = recipe_spec(t, modality, path, **patch)
        return ["run", spec, "--out", t / "runs", *[a for s in sets for a in ("--set", s)]]

    return build


def spec_file(content: str | bytes | Callable[[Path], Path], *sets: str) -> Builder:
    """``trainflow run`` of a spec file with this content (or made by ``content``)."""

    def build(t: Path, _model: Path | None) -> list:
        path = content(t) if callable(content) else text("spec.yaml", content)(t)
        return ["run", path, "--out", t / "runs", *[a for s in sets for a in ("--set", s)]]

    return build


def predict(data: Callable[[Path], Path], out: str = "pred.csv", model: Callable[[Path], Path | str] | None = None,
            ) -> Builder:
    """``trainflow predict`` with a trained run folder (or what ``model`` gives) on the input ``data`` makes."""

    def build(t: Path, trained: Path | None) -> list:
        return ["predict", model(t) if model else trained, data(t), "--out", t / out, "--runs", t / "runs"]

    return build


def with_rows(csv: str, line: int, new: str) -> str:
    lines = csv.splitlines()
    lines[line] = new
    return "\n".join(lines) + "\n"


def repeat_classes(n: int) -> str:
    return "a,b,label\n" + "".join(f"{i},{i % 5},class{i}\n" for i in range(n))


LONG_NAME = "n" * 300
SEQ = "sequence"
FC = "forecast"
IMG = "image"
TXT = "text"
RIGHT = "1,2,x\n" * 3
WIDE_HEADER = WIDE.splitlines()[0]
TABLE_HEADER = TABLE.splitlines()[0]

# ---------------------------------------------------------------- the catalogue

CASES: dict[str, Fault] = {
    # the spec file itself (exit 2, before any flow)
    "spec file missing": Fault(spec_file(lambda t: t / "nope.yaml"), 2, r"spec file '.*nope\.yaml' does not exist"),
    "spec file is a folder": Fault(spec_file(special("folder")), 2, r"is a folder; expected a file"),
    "spec file is /dev/zero": Fault(spec_file(special("device")), 2, r"'/dev/zero' is a character device"),
    "spec file is a FIFO": Fault(spec_file(special("fifo")), 2, r"special-fifo' is a FIFO \(named pipe\)"),
    "spec file is a link loop": Fault(spec_file(special("loop")), 2, r"special-loop' is a symbolic link loop"),
    "spec file is a broken link": Fault(spec_file(special("broken")), 2, r"is a broken symbolic link \(to '.*gone'\)"),
    "spec is a YAML list": Fault(spec_file("- name: x\n- data: {}\n"), 2, r"spec\.yaml: the top level must be a "
                                 r"mapping of sections .* Got a list"),
    "spec is a YAML scalar": Fault(spec_file("just a sentence\n"), 2, r"top level must be a mapping.*Got a string"),
    "spec is not UTF-8": Fault(spec_file("name: caf\xe9\n".encode("latin-1")), 2,
                               r"spec\.yaml' is not UTF-8 text \(invalid continuation byte at byte 9\)"),
    "spec is not YAML": Fault(spec_file("name: [unclosed\n"), 2, r"spec\.yaml' is not valid YAML: .*line"),
    "spec is empty": Fault(spec_file(""), 2, r"'name': Field required"),
    # spec fields (exit 2, before any flow)
    "name too long": Fault(run(name=LONG_NAME), 2, r"'name': String should have at most 200 characters\. "
                                                  r"Got 'nnn.*' \(300 characters\)"),
    "name with slashes, shown as written": Fault(run(name="../../escape"), 2,
                                                  r"'name': String should match pattern .* Got '\.\./\.\./escape'"),
    "unknown section, did you mean": Fault(run(modle={"name": "svm"}), 2,
                                           r"'modle' is not a known option \(did you mean 'model'\?\)"),
    "unknown train key, did you mean": Fault(run(train={"epoch": 3}), 2,
                                             r"'train\.epoch' is not a known option \(did you mean 'epochs'\?\)"),
    "--set unknown model and key, both reported": Fault(
        run(sets=("model.name=transformer", "train.epoch=5")), 2,
        r"2 problems(?=.*'train\.epoch' is not a known option \(did you mean 'epochs'\?\))"
        r"(?=.*'model\.name' must be one of .*Got 'transformer')"),
    "--set without =": Fault(run(sets=("model.name",)), 2, r"--set expects KEY=VALUE.*Got 'model\.name'"),
    "--set into a scalar": Fault(run(sets=("name.first=x",)), 2, r"--set name\.first: 'name' is not a section"),
    "unknown loader": Fault(run(data={"loader": "cvs"}), 2, r"'data\.loader' must be one of .*did you mean 'csv'"),
    "unknown task": Fault(run(task="classifcation"), 2, r"'task' must be .*did you mean 'classification'"),
    "test_size above 1": Fault(run(split={"test_size": 1.5}), 2, r"'split\.test_size': .*less than 1.*Got 1\.5"),
    "unknown imputer": Fault(run(preprocess={"impute": {"method": "meen"}}), 2,
                             r"'preprocess\.impute\.method' must be one of .*did you mean 'mean'"),
    "unknown model option, did you mean": Fault(run(model={"name": "logistic_regression", "CC": 1}), 2,
                                                r"'model\.CC' is not a known option \(did you mean 'C'\?\)"),
    "column rule typo, did you mean": Fault(run(validation={"columns": {"a": {"typ": "number"}}}), 2,
                                            r"'validation\.columns\.a\.typ' is not a known option \(did you mean 'type'"),
    "unknown metric": Fault(run(evaluate={"metrics": ["acuracy"]}), 2,
                            r"'evaluate\.metrics\[0\]' must be one of .*did you mean 'accuracy'"),
    "image model on a table": Fault(run(model={"name": "cnn"}), 2, r"'model\.name' 'cnn' is a image model but"),
    "forecast loader, classification task": Fault(run(FC, task="classification"), 2, r"set 'task: forecasting'"),
    "forecast horizon 0": Fault(run(FC, forecast={"horizon": 0}), 2, r"'forecast\.horizon': .*Got 0"),
    "negative hidden size": Fault(run(SEQ, model={"name": "gru", "hidden": -1}), 2, r"'model\.hidden'.*Got -1"),
    "every problem at once": Fault(run(name="", train={"epoch": 1}, model={"name": "svn"}), 2,
                                   r"\(3 problems\)(?=.*'name')(?=.*'train\.epoch')(?=.*did you mean 'svm')"),
    # the run folder cannot be made (exit 3, before any flow)
    "--out is a file": Fault(lambda t, m: ["run", recipe_spec(t, "tabular"), "--out", text("out", "x")(t)], 3,
                             r"Cannot create the run folder '.*out/good-tabular' \(--out .*\): Not a directory"),
    # tabular data (in the load / split tasks)
    "data.path is /dev/zero": Fault(run(file=special("device")), 3, r"data path '/dev/zero' is a character device.*"
                                    r"\(data\.path\)", "server"),
    "data.path is a FIFO": Fault(run(file=special("fifo")), 3, r"special-fifo' is a FIFO", "server"),
    "data.path is a link loop": Fault(run(file=special("loop")), 3, r"special-loop' is a symbolic link loop", "server"),
    "data.path is a broken link": Fault(run(file=special("broken")), 3, r"is a broken symbolic link", "server"),
    "data.path is a folder": Fault(run(file=special("folder")), 3, r"special-folder' is a folder; expected a file",
                                   "server"),
    "inf in a numeric column": Fault(run(file=text("t.csv", with_rows(TABLE, 4, "inf,2,x,p"))), 3,
                                     r"column 'a' of the data file '.*t\.csv' holds 1 infinite value\(s\) "
                                     r"\(first: inf in row 4\)", "server"),
    "-inf in a regression target": Fault(run(file=text("t.csv", "a,y\n" + "".join(f"{i},{i}\n" for i in range(9))
                                                        + "9,-inf\n"), task="regression", data={"target": "y"}), 3,
                                         r"column 'y' .* infinite value.*-inf in row 10", "server"),
    "repeated column names": Fault(run(file=text("t.csv", TABLE.replace("a,b,c", "a,b,a", 1))), 3,
                                   r"t\.csv' repeats column names \('a' is columns 1, 3\)", "server"),
    "repeated names after trimming spaces": Fault(run(file=text("t.csv", TABLE.replace("a,b,c", "a ,b,a", 1))), 3,
                                                  r"repeats column names \('a' is columns 1, 3\)", "server"),
    "table not UTF-8": Fault(run(file=text("t.csv", TABLE.replace("x", "\xe9").encode("latin-1"))), 3,
                             r"t\.csv' is not valid utf-8 text .*set data\.encoding", "server"),
    "one row per class": Fault(run(file=text("t.csv", repeat_classes(60)), validation={"min_rows": 4}), 3,
                               r"No test row of '.*t\.csv' \(column 'label'\) has a class seen in training: its 60 "
                               r"classes have 1 row\(s\) at most", "server"),
    "ragged row": Fault(run(file=text("t.csv", TABLE + "1,2,x,p,9,9\n")), 3,
                        r"t\.csv' could not be parsed as CSV with delimiter ','", "server"),
    "truncated parquet": Fault(run(file=truncated_parquet(), sets=("data.loader=parquet",)), 3,
                               r"rows\.parquet' is not a readable Parquet file", "server"),
    "CSV named as parquet": Fault(run(file=text("rows.parquet", TABLE), sets=("data.loader=parquet",)), 3,
                                  r"rows\.parquet' is not a readable Parquet file", "server"),
    "feature column missing": Fault(run(data={"features": ["a", "bb"]}), 3,
                                    r"column 'bb' \(data\.features\) is not in '.*table\.csv' \(did you mean 'b'\?\)", "server"),
    "drop column missing": Fault(run(data={"drop": ["zz"]}), 3, r"column 'zz' \(data\.drop\) is not in .*Its columns are: a, b",
                                 "server"),
    "text regression target": Fault(run(task="regression"), 4, r"regression target must be numeric|label", "server"),
    "label outside validation.labels": Fault(run(validation={"labels": ["p"]}), 4,
                                             r"expect_column_values_to_be_in_set.*label", "server"),
    "fewer rows than min_rows": Fault(run(validation={"min_rows": 1000}), 4, r"validation\.min_rows is 1000",
                                      "server"),
    # images
    "image folder is a file": Fault(run(IMG, file=text("imgs", "x"), sets=("data.loader=image_folder",)), 3,
                                    r"image folder '.*imgs' is a file; expected a folder", "server"),
    "image folder is a link loop": Fault(run(IMG, file=special("loop"), sets=("data.loader=image_folder",)), 3,
                                         r"special-loop' is a symbolic link loop", "server"),
    "npz without labels": Fault(run(IMG, file=npz("i.npz", x=np.zeros((8, 8, 8), np.uint8))), 3,
                                r"i\.npz' must hold arrays 'x' \(images\) and 'y' \(labels\)", "server"),
    "npz of objects": Fault(run(IMG, file=npz("i.npz", x=np.array([{"a": 1}] * 8, dtype=object), y=np.zeros(8))), 3,
                            r"i\.npz' is not a readable \.npz file of plain arrays", "server"),
    "npz labels and images differ": Fault(run(IMG, file=npz("i.npz", x=np.zeros((8, 8, 8), np.uint8),
                                                            y=np.zeros(5))), 3, r"has 8 images but 5 labels", "server"),
    "one image per class": Fault(run(IMG, file=lambda t: tiny_images(t / "i.npz", n=10, classes=10)), 4,
                                 r"'class_count'.*10 of 10 values unexpected.*each class needs at least two images",
                                 "server"),
    "cifar folder missing": Fault(run(IMG, sets=("data.loader=cifar10",), file=lambda t: t / "cifar"), 3,
                                  r"CIFAR-10 folder '.*cifar' does not exist \(data\.path\); download", "server"),
    # sequences
    "sequence file is a FIFO": Fault(run(SEQ, file=special("fifo")), 3, r"special-fifo' is a FIFO", "server"),
    "sequence CSV with inf": Fault(run(SEQ, file=text("w.csv", with_rows(WIDE, 3, "a,1,2,inf,4,5,6"))), 3,
                                   r"column 't2' .* infinite value.*row 3", "server"),
    "sequence CSV with repeated time columns": Fault(run(SEQ, file=text("w.csv", WIDE.replace("t3", "t2", 1))), 3,
                                                     r"w\.csv' repeats column names \('t2' is columns 4, 5\)", "server"),
    "sequence CSV header only": Fault(run(SEQ, file=text("w.csv", WIDE_HEADER + "\n")), 3,
                                      r"w\.csv' has a header but no data rows", "server"),
    "one series per class": Fault(run(SEQ, file=text("w.csv", WIDE_HEADER + "\n" + "".join(
        f"c{i},1,2,3,4,5,6\n" for i in range(12)))), 3, r"No test row of '.*w\.csv' has a class seen", "server"),
    # forecasting
    "series with inf": Fault(run(FC, file=text("s.csv", SERIES.replace(",110\n", ",inf\n", 1))), 3,
                             r"column 'value' .* infinite value", "server"),
    "series with repeated columns": Fault(run(FC, file=text("s.csv", SERIES.replace("month,value", "month,month"))),
                                          3, r"s\.csv' repeats column names \('month' is columns 1, 2\)", "server"),
    "series header only": Fault(run(FC, file=text("s.csv", "month,value\n")), 3, r"has a header but no data rows",
                                "server"),
    "series value column missing": Fault(run(FC, data={"values": ["valeu"]}), 3,
                                         r"column 'valeu' \(data\.values\) is not in .*did you mean 'value'", "server"),
    # predict
    "predict: header-only CSV": Fault(predict(text("new.csv", TABLE_HEADER + "\n")), 3,
                                      r"input file '.*new\.csv' has a header but no data rows", "tabular"),
    "predict: truncated Parquet": Fault(predict(truncated_parquet("new.parquet")), 3,
                                        r"input file '.*new\.parquet' is not a readable Parquet file", "tabular"),
    "predict: empty file": Fault(predict(text("new.csv", "")), 3, r"input file '.*new\.csv' is empty", "tabular"),
    "predict: input missing": Fault(predict(lambda t: t / "nope.csv"), 3, r"input '.*nope\.csv' does not exist",
                                    "tabular"),
    "predict: input is /dev/zero": Fault(predict(special("device")), 3, r"'/dev/zero' is a character device",
                                         "tabular"),
    "predict: input is a FIFO": Fault(predict(special("fifo")), 3, r"special-fifo' is a FIFO", "tabular"),
    "predict: input is a link loop": Fault(predict(special("loop")), 3, r"special-loop' is a symbolic link loop",
                                           "tabular"),
    "predict: inf in the input": Fault(predict(text("new.csv", TABLE_HEADER + "\n1,inf,x,p\n")), 3,
                                       r"column 'b' of the input file .* infinite value", "tabular"),
    "predict: repeated columns": Fault(predict(text("new.csv", "a,b,b,c\n" + RIGHT)), 3,
                                       r"input file '.*new\.csv' repeats column names \('b' is columns 2, 3\)",
                                       "tabular"),
    "predict: a training column missing": Fault(predict(text("new.csv", "a,c\n1,x\n")), 3,
                                                r"lacks (the feature|training) column\(s\) 'b'", "tabular"),
    "predict: text in a numeric column": Fault(predict(text("new.csv", "a,b,c\n1,two,x\n")), 3,
                                               r"column 'b' must be numeric; found text such as 'two' \(row 1\)",
                                               "tabular"),
    "predict: --out is a folder": Fault(predict(text("new.csv", "a,b,c\n" + "1,2,x\n"), out="."), 3,
                                        r"predictions file '.*' \(--out\) names a folder; give a file name", "tabular"),
    "predict: --out under a file": Fault(predict(text("new.csv", "a,b,c\n1,2,x\n"), out="new.csv/pred.csv"), 3,
                                         r"Cannot write the predictions file '.*new\.csv/pred\.csv' \(--out\)",
                                         "tabular"),
    "predict: not a run folder": Fault(predict(text("new.csv", "a\n1\n"), model=special("folder")), 3,
                                       r"special-folder'.*(no champion|not a finished run folder)"),
    "predict: pipeline with no runs": Fault(predict(text("new.csv", "a\n1\n"), model=lambda t: "nosuchpipeline"), 3,
                                            r"'nosuchpipeline' is neither a finished run folder .* nor a pipeline with a champion"),
    "predict image: wrong size": Fault(predict(lambda t: tiny_images(t / "new.npz", size=5)), 3,
                                       r"new\.npz' holds 5x5 images; the model expects 8x8", IMG),
    "predict image: not an image": Fault(predict(text("new.txt", "hello")), 3,
                                         r"new\.txt' is neither a folder of images", IMG),
    "predict sequence: text in a series": Fault(predict(text("new.csv", WIDE_HEADER + "\na,1,two,3,4,5,6\n")), 3,
                                                r"new\.csv.*'two'", SEQ),
    "predict sequence: header only": Fault(predict(text("new.csv", WIDE_HEADER + "\n")), 3,
                                           r"new\.csv' has a header but no data rows", SEQ),
    "predict forecast: value column missing": Fault(predict(text("new.csv", "month,valu\n2001-01,3\n")), 3,
                                                    r"column 'value' .* is not in '.*new\.csv'", FC),
    "text: label column misspelt": Fault(run(TXT, sets=("data.target=lable",)), 3,
                                         r"msgs\.csv' has no column 'lable' \(data\.target\).*did you mean 'label'", "server"),
    "text: kept column missing": Fault(run(TXT, data={"keep": ["id"]}), 3,
                                       r"msgs\.csv' has no column 'id' \(data\.keep\)", "server"),
    "predict text: no text column": Fault(predict(text("new.csv", "body\nhello\n")), 3,
                                          r"new\.csv' has no column 'text' \(the training spec's data\.text\)", TXT),
    "predict text: invalid UTF-8": Fault(predict(text("new.csv", "text\ncaf\xe9\n".encode("latin-1"))), 3,
                                         r"new\.csv' is not valid utf-8 text", TXT),
    "predict text: empty file": Fault(predict(text("new.csv", "")), 3, r"new\.csv' is empty", TXT),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fault(case: str, tmp_path: Path, capsys, request):
    fault = CASES[case]
    if fault.needs == "server":
        request.getfixturevalue("prefect_server")
    model = request.getfixturevalue("trained")(fault.needs) if fault.needs not in (None, "server") else None
    code, err = run_cli(*fault.build(tmp_path, model), capsys=capsys)
    assert code == fault.code, err
    assert re.search(fault.message, err, re.DOTALL), err
    assert "Traceback" not in err
    assert_nothing_complete(tmp_path / "runs")
    assert not list(tmp_path.rglob("*pred.csv*")), "a predictions file was left behind"


def test_the_catalogue_is_large_and_covers_every_modality():
    assert len(CASES) >= 60
    kinds = {f.needs for f in CASES.values()}
    assert {None, "server", "tabular", IMG, SEQ, FC, TXT} <= kinds
