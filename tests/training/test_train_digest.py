"""training.train.history_digest: the training dataset's digest in MLflow changes with any value of the
history, list cells included, and is the same on every read of it."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pyarrow as pa

from features.contract import load_history
from training.train import history_digest


def test_digest_is_the_same_on_every_read(small_history_dir):
    a, b = load_history(small_history_dir), load_history(small_history_dir)
    assert history_digest(a) == history_digest(b) and len(history_digest(a)) == 64


def test_digest_changes_with_a_value_a_row_or_a_list_item(small_history_dir):
    h = load_history(small_history_dir)
    base = history_digest(h)
    claims = h.claims.copy()
    claims.loc[claims.index[3], "total_charge"] += 0.01
    assert history_digest(dataclasses.replace(h, claims=claims)) != base
    assert history_digest(dataclasses.replace(h, claims=h.claims.iloc[1:])) != base
    lines = h.claim_lines.copy()
    col = next(c for c in lines.columns if isinstance(lines[c].dtype, pd.ArrowDtype) and "list" in str(lines[c].dtype))
    i = lines[col].map(lambda v: v is not None and len(v) > 0).idxmax()
    lines.loc[i, col] = None
    assert history_digest(dataclasses.replace(h, claim_lines=lines)) != base


def test_list_cells_are_split_where_they_are():
    """[[1, 2], [3]] and [[1], [2, 3]] have the same items: the lengths tell them apart."""
    t = pd.ArrowDtype(pa.list_(pa.int16()))
    one = pd.DataFrame({"x": pd.Series([[1, 2], [3]], dtype=t)})
    two = pd.DataFrame({"x": pd.Series([[1], [2, 3]], dtype=t)})

    @dataclasses.dataclass
    class Tables:
        frame: pd.DataFrame

        def tables(self) -> dict:
            return {"t": self.frame}

    assert history_digest(Tables(one)) != history_digest(Tables(two))  # type: ignore[arg-type]
