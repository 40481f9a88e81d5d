"""Sequence and time-series loaders on small files written here, in every format, good and bad."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import DATA
from trainflow.errors import DataError
from trainflow.tasks.forecast.config import ForecastConfig, check_length
from trainflow.tasks.forecast.loaders import read_timeseries
from trainflow.tasks.forecast.transform import SeriesTransform
from trainflow.tasks.sequence.loaders import (LongCsvConfig, NpzConfig, TsConfig, WideCsvConfig, load_long_csv,
                                     load_npz_series, load_ts, load_wide_csv, read_any, read_ts)
from trainflow.tasks.sequence.modality import SeriesPreprocessor

TS_HEADER = "# a comment\n@problemName toy\n@timeStamps false\n@missing true\n@univariate {uni}\n{dims}" \
            "@equalLength {equal}\n@classLabel true a b\n@data\n"


def write_ts(path, rows, uni=True, dims=None, equal=False, header=None):
    head = header if header is not None else TS_HEADER.format(
        uni=str(uni).lower(), dims=f"@dimensions {dims}\n" if dims else "", equal=str(equal).lower())
    path.write_text(head + "".join(r + "\n" for r in rows))
    return path


def test_ts_univariate_unequal_length_with_missing(tmp_path):
    path = write_ts(tmp_path / "u.ts", ["1,2,3,4:a", "5,?,7:b", "1,1,2,3,5,8:a"])
    data = read_ts(path)
    assert [s.shape for s in data.series] == [(4, 1), (3, 1), (6, 1)]
    assert np.isnan(data.series[1][1, 0])
    assert data.y == ["a", "b", "a"] and data.class_labels == ["a", "b"]
    assert data.ids[0] == "u.ts:9"  # named by file and line


def test_ts_multivariate_and_regression_targets(tmp_path):
    header = "@problemName reg\n@univariate false\n@dimensions 2\n@equalLength true\n@targetLabel true\n@data\n"
    path = write_ts(tmp_path / "m.ts", ["1,2,3:4,5,6:0.5", "3,2,1:6,5,4:-1.25"], header=header)
    data = read_ts(path)
    assert data.channels == 2 and data.series[0][:, 1].tolist() == [4, 5, 6]
    assert data.y == ["0.5", "-1.25"] and data.class_labels is None


def test_ts_train_test_pair_keeps_the_fixed_split(tmp_path):
    tr = write_ts(tmp_path / "T_TRAIN.ts", ["1,2,3:a", "3,2,1:b"])
    te = write_ts(tmp_path / "T_TEST.ts", ["1,2,2:a"])
    data = load_ts(TsConfig(train=str(tr), test=str(te)))
    assert data.fold == ["train", "train", "test"]


def test_gunpoint_reads_as_published():
    data = load_ts(TsConfig(train=str(DATA / "GunPoint_TRAIN.ts"), test=str(DATA / "GunPoint_TEST.ts")))
    assert len(data.series) == 200 and data.fold.count("train") == 50
    assert {len(s) for s in data.series} == {150} and set(data.y) == {"1", "2"}


@pytest.mark.parametrize("rows,header,phrases", [
    (["1,2:a"], "@problemName x\n@classLabel true a b\n", ["line 3: missing '@data' line", "x.ts"]),
    (["1,2:3,4:a", "1,2:a"], None, ["line 10", "1 channel(s), expected 2", "first series (line 9)"]),
    (["1,2:a", "1,2:c"], None, ["line 10", "class label 'c'", "@classLabel", "'a', 'b'"]),
    (["1,zz,3:a"], None, ["line 9", "'zz'", "not a number"]),
    (["1,2:3:a"], "@problemName x\n@dimensions 1\n@classLabel true a\n@data\n", ["line 5", "2 channel(s), expected 1",
                                                                                 "@dimensions"]),
])
def test_ts_bad_files_name_line_and_reason(tmp_path, rows, header, phrases):
    path = write_ts(tmp_path / "x.ts", rows, uni=False, header=header)
    with pytest.raises(DataError) as err:
        read_ts(path)
    for phrase in phrases:
        assert phrase in str(err.value), str(err.value)


def test_ts_equal_length_contradiction(tmp_path):
    path = write_ts(tmp_path / "e.ts", ["1,2,3:a", "1,2:b"], equal=True)
    with pytest.raises(DataError, match=r"line 10: a series of length 2.*@equalLength true"):
        read_ts(path)


def test_wide_csv(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("id,t0,t1,t2,t3,label\ns1,1,2,3,4,x\ns2,4,,2,,y\n")
    data = load_wide_csv(WideCsvConfig(path=str(path), id="id"))
    assert data.ids == ["s1", "s2"] and data.y == ["x", "y"]
    assert len(data.series[1]) == 3 and np.isnan(data.series[1][1, 0])  # inner gap missing, trailing cut


def test_long_csv_multichannel_sorted_by_time(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("series_id,time,a,b,label\n1,2,20,200,x\n1,1,10,100,x\n2,1,5,50,y\n2,2,6,60,y\n2,3,7,70,y\n")
    data = load_long_csv(LongCsvConfig(path=str(path)))
    assert data.ids == ["1", "2"] and data.y == ["x", "y"]
    assert data.series[0].tolist() == [[10, 100], [20, 200]] and data.series[1].shape == (3, 2)


def test_long_csv_duplicate_series_time_pairs_are_an_error(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("series_id,time,value,label\n1,1,10,x\n1,2,11,x\n1,2,12,x\n")
    with pytest.raises(DataError, match=r"series '1' has more than one row for time '2' \(lines 3, 4\)"):
        load_long_csv(LongCsvConfig(path=str(path)))


def test_long_csv_label_must_be_constant_per_series(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("series_id,time,value,label\n1,1,10,x\n1,2,11,y\n")
    with pytest.raises(DataError, match="2 different labels"):
        load_long_csv(LongCsvConfig(path=str(path)))


def test_npz_with_lengths(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, x=np.arange(24, dtype=float).reshape(2, 4, 3), y=np.array([0, 1]), lengths=np.array([4, 2]))
    data = load_npz_series(NpzConfig(path=str(path)))
    assert data.channels == 3 and [len(s) for s in data.series] == [4, 2] and data.y == ["0", "1"]


def test_npz_missing_array_named(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, X=np.zeros((2, 3)))
    with pytest.raises(DataError, match=r"no array 'x' \(data.x\); it holds: X"):
        load_npz_series(NpzConfig(path=str(path)))


def test_read_any_picks_the_format_by_extension_and_columns(tmp_path):
    wide = tmp_path / "w.csv"
    wide.write_text("t0,t1,t2\n1,2,3\n")
    long = tmp_path / "l.csv"
    long.write_text("series_id,time,value\na,1,1\na,2,2\n")
    assert read_any(wide, "ts", {}).series[0].shape == (3, 1)
    assert read_any(long, "ts", {}).ids == ["a"]


def test_timeseries_csv_unsorted_and_duplicate_dates(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("date,v\n2020-01,1\n2020-03,2\n2020-02,3\n")
    with pytest.raises(DataError, match=r"line 4: the time '2020-02' comes before '2020-03' on line 3; sort"):
        read_timeseries(path, None, None)
    path.write_text("date,v\n2020-01,1\n2020-02,2\n2020-02,3\n")
    with pytest.raises(DataError, match=r"line 4: the time '2020-02' repeats line 3"):
        read_timeseries(path, None, None)


def test_airline_reads():
    df = read_timeseries(DATA / "Airline.csv", "Date", ["Passengers"])
    assert len(df) == 144 and df["Passengers"].iloc[-1] == 432


def test_horizon_longer_than_series_is_an_error():
    with pytest.raises(DataError, match="forecast.horizon is 200 but the series in 'x.csv' has only 144 steps"):
        check_length(144, ForecastConfig(horizon=200), "x.csv")


def test_preprocessor_interpolates_and_masks():
    s = np.array([[1.0], [np.nan], [3.0], [np.nan]])
    lin = SeriesPreprocessor("none", "linear").fit([s]).transform_one(s)
    assert lin[:, 0].tolist() == [1, 2, 3, 3]
    ff = SeriesPreprocessor("none", "ffill").fit([s]).transform_one(s)
    assert ff[:, 0].tolist() == [1, 1, 3, 3]
    masked = SeriesPreprocessor("none", "mask").fit([s]).transform_one(s)
    assert masked.tolist() == [[1, 1], [0, 0], [3, 1], [0, 0]]
    x, mask = SeriesPreprocessor("per_series", "linear").fit([s]).transform([s, s[:2]])
    assert x.shape == (2, 4, 1) and mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def test_forecast_transform_round_trip():
    t = np.arange(60, dtype=float)
    v = (100 + 2 * t + 10 * np.sin(2 * np.pi * t / 12))[:, None]
    fc = ForecastConfig(horizon=12, lookback=12, season=12, transform="log", detrend="seasonal_difference")
    tf = SeriesTransform(fc).fit(v[:48])
    z = tf.forward(v)
    # undoing the transforms on the true future differences gives back the true future values
    assert np.allclose(tf.inverse(z[-12:], v[:48]), v[48:])
