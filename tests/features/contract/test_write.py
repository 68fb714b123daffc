"""Writing a claims history (features/contract/write.py): CSV and Parquet round trips."""

from __future__ import annotations

import pandas as pd
import pytest

from features.contract import load_history, write_history
from tests.helpers.contract_tables import good_tables, write_dir


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_history_round_trip(tmp_path, fmt):
    h = load_history(write_dir(tmp_path / "raw", good_tables()))
    write_history(h, tmp_path / "out", fmt=fmt)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{t}.{fmt}" for t in ("claims", "claim_lines", "coverage", "providers", "recoupments")
    )
    back = load_history(tmp_path / "out")
    for name, df in h.tables().items():
        if df is None:  # reviews: none in these tables
            assert getattr(back, name) is None, name
            continue
        pd.testing.assert_frame_equal(getattr(back, name), df, check_exact=True, obj=name)


def test_csv_and_parquet_round_trips_agree(tmp_path):
    h = load_history(write_dir(tmp_path / "raw", good_tables()))
    h.claim_lines.loc[0, "units"] = 0.333  # fractional units survive the CSV text form exactly
    a = load_history(write_history(h, tmp_path / "csv", fmt="csv"))
    b = load_history(write_history(h, tmp_path / "pq", fmt="parquet"))
    for name in ("claims", "claim_lines", "coverage", "providers", "recoupments"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), obj=name)
    assert a.claim_lines["units"].iloc[0] == 0.333
