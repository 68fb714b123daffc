"""features.engine.arrays: the group reductions and pair generation the families build on, against plain
pandas / itertools answers; the dict path (a few values) and the pandas path (many) agree."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from features.engine.arrays import SMALL, factorize, group_max, group_min, pairs_within, range_indexed, ymd_of_days


def test_group_max_and_min_ignore_nan_like_pandas():
    ci = np.array([0, 0, 1, 1, 3])
    v = np.array([1.0, np.nan, np.nan, np.nan, 5.0])
    want = pd.Series(v).groupby(ci).max()
    got = group_max(ci, v, 4)
    assert got[0] == want[0] and np.isnan(got[1]) and got[2] == 0.0 and got[3] == 5.0
    got = group_min(ci, v, 4)
    assert got[0] == 1.0 and np.isnan(got[1]) and np.isnan(got[2]) and got[3] == 5.0


def test_pairs_within_are_every_same_group_pair_once():
    groups = np.array([2, 1, 2, 2, 1, 0])
    a, b = pairs_within(groups)
    want = [(i, j) for i, j in itertools.combinations(range(len(groups)), 2) if groups[i] == groups[j]]
    assert list(zip(a.tolist(), b.tolist())) == want


def test_factorize_dict_and_pandas_paths_agree():
    vals = np.array([f"c{i % 7}" for i in range(SMALL + 10)], dtype=object)
    big_codes, big_uniq = factorize(vals)
    small_codes, small_uniq = factorize(vals[:SMALL])
    assert (big_codes[:SMALL] == small_codes).all() and list(big_uniq) == list(small_uniq)
    assert (big_uniq[big_codes] == vals).all()


def test_ymd_of_days_and_range_indexed():
    days = np.array(["2024-02-29", "1970-01-01"], dtype="datetime64[D]").astype(np.int64)
    assert ymd_of_days(days).tolist() == [20240229, 19700101]
    df = pd.DataFrame({"a": [1, 2]})
    assert range_indexed(df) is df
    assert range_indexed(df.iloc[::-1]).index.tolist() == [0, 1]


def test_column_reads_what_the_series_holds():
    """``column`` (the fast read of the service's path) gives the Series' own values, for every dtype."""
    import pandas as pd

    from features.engine.arrays import column

    df = pd.DataFrame(
        {
            "s": pd.Series(["a", None], dtype="string"),
            "f": [1.5, float("nan")],
            "d": pd.to_datetime(["2024-01-01", None]),
            "c": pd.Categorical(["x", "y"]),
        }
    )
    for name in df.columns:
        got, want = column(df, name), df[name].array
        assert len(got) == 2 and str(pd.Series(got).dtype) == str(df[name].dtype)
        pd.testing.assert_series_equal(pd.Series(got, name=name), df[name])
        assert pd.Series(want).equals(pd.Series(got))
