"""features.model.spec.FeatureSpec: fixed columns and levels, unseen levels as missing (and reported), the
array core equal to the frame, a JSON round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.model.spec import FeatureSpec


def table(payers: list, charges: list | None = None) -> pd.DataFrame:
    n = len(payers)
    return pd.DataFrame(
        {
            "payer_id": payers,
            "plan_type": ["medicare"] * n,
            "total_charge": charges or [float(i) for i in range(n)],
            "n_lines": [1] * n,
            "dropped": [9] * n,
        },
        index=pd.Index([f"C{i}" for i in range(n)], name="claim_id"),
    )


@pytest.fixture()
def spec() -> FeatureSpec:
    # A: 6 claims, B: 5 (kept), C: 2 (below min_level_count: not a level)
    return FeatureSpec(exclude=("dropped",), min_level_count=5).fit(table(["A"] * 6 + ["B"] * 5 + ["C"] * 2))


def test_fit_learns_columns_and_frequent_levels(spec):
    assert spec.feature_names_ == ["payer_id", "plan_type", "total_charge", "n_lines"]
    assert sorted(spec.categorical_) == ["payer_id", "plan_type"]
    assert spec.categories_ == {"payer_id": ["A", "B"], "plan_type": ["medicare"]}


def test_transform_fixes_levels_and_types(spec):
    M = spec.transform(table(["B", "C", "Z", None]))
    assert list(M.columns) == spec.feature_names_
    assert list(M["payer_id"].cat.categories) == ["A", "B"]
    assert M["payer_id"].tolist()[0] == "B" and M["payer_id"].isna().tolist() == [False, True, True, True]
    assert M["total_charge"].dtype == np.float64 and M["n_lines"].dtype == np.float64
    with pytest.raises(ValueError, match="lacks columns.*n_lines"):
        spec.transform(table(["A"]).drop(columns="n_lines"))


def test_unseen_levels_are_reported_per_claim(spec):
    X = table(["A", "C", "Z", None])
    u = spec.unseen_levels(X)
    assert u["payer_id"].isna().tolist() == [True, False, False, True]
    assert u.loc["C1", "payer_id"] == "C" and u.loc["C2", "payer_id"] == "Z"
    assert spec.unseen_dict(X) == {"C1": [("payer_id", "C")], "C2": [("payer_id", "Z")]}


def test_array_core_equals_the_frame(spec):
    X = table(["B", "A", "Z", None, "C"], [10.0, 20.0, 30.0, 40.0, 50.0])
    M = spec.transform(X)
    expected = np.column_stack(
        [
            M["payer_id"].cat.codes.replace(-1, np.nan).to_numpy(dtype=float),
            M["plan_type"].cat.codes.to_numpy(dtype=float),
            M["total_charge"].to_numpy(),
            M["n_lines"].to_numpy(),
        ]
    )
    np.testing.assert_array_equal(spec.transform_arrays(*spec.frame_arrays(X)), expected)
    cats = {c: X[c].to_numpy(dtype=object) for c in spec.categorical_}
    names = ["n_lines", "total_charge"]  # any order of the numeric columns
    np.testing.assert_array_equal(spec.transform_arrays(cats, names, X[names].to_numpy(dtype=float)), expected)


def test_json_round_trip_gives_the_same_matrix(spec):
    again = FeatureSpec.from_json(spec.to_json())
    X = table(["A", "B", "Z"])
    pd.testing.assert_frame_equal(again.transform(X), spec.transform(X))
    assert again.exclude == ("dropped",) and again.min_level_count == 5


def test_levels_are_matched_as_text_whatever_the_value_type(spec):
    """Non-text values are looked up by their text; None, NaN and pd.NA are missing (frame and arrays)."""
    fitted = FeatureSpec(min_level_count=1).fit(table(["7", "8"]))
    X = table([7, "8", None, float("nan"), pd.NA])
    M = fitted.transform(X)
    missing = [False, False, True, True, True]
    assert M["payer_id"].tolist()[:2] == ["7", "8"] and M["payer_id"].isna().tolist() == missing
    codes = fitted.transform_arrays(*fitted.frame_arrays(X))[:, 0]
    np.testing.assert_array_equal(codes, [0, 1, np.nan, np.nan, np.nan])
