"""Shared material of the store's tests: a small generated history written as contract files, and comparing two
histories table by table (row order aside: a store reads partitions, not the original order)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from features.contract import History, write_history

#: the columns that identify a row of each contract table (coverage: the whole row)
ROW_KEYS = {
    "claims": ["claim_id"],
    "claim_lines": ["claim_id", "line_number"],
    "providers": ["npi"],
    "recoupments": ["claim_id", "recouped_date", "recouped_amount", "carc"],
}


def sorted_table(df: pd.DataFrame, table: str) -> pd.DataFrame:
    keys = ROW_KEYS.get(table, list(df.columns))
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def assert_same_history(a: History, b: History) -> None:
    """Every contract table equal (values and dtypes), whatever the row order."""
    for table, x in a.tables().items():
        y = b.tables()[table]
        assert (x is None) == (y is None), table
        if x is not None:
            pd.testing.assert_frame_equal(sorted_table(x, table), sorted_table(y, table), obj=table)


@pytest.fixture(scope="session")
def history_small():
    from tests.helpers.data import small_history

    history, _ = small_history(600, seed=5)
    return history


@pytest.fixture
def history_dir(tmp_path, history_small) -> Path:
    """The small history as contract CSV files in a fresh folder."""
    d = tmp_path / "history"
    write_history(history_small, d)
    return d


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
