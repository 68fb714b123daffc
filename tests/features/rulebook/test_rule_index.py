"""features.rulebook.index: the rulebook's code index agrees with the rulebook's own lookups."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.engine.arrays import ymd_of_days
from features.rulebook.index import RuleIndex
from features.rulebook import load_rulebook


def test_rule_index_agrees_with_the_rulebook():
    rb = load_rulebook()
    ri = RuleIndex(rb)
    assert ri.vocab.is_unique and ri.vocab.is_monotonic_increasing
    rng = np.random.default_rng(11)
    for ctype in ("professional", "institutional"):
        ptp = rb.table(f"ptp_{ctype}")
        rows = ptp.iloc[rng.choice(len(ptp), 3000, replace=False)]
        c1 = rows["column_1"].astype(str).to_numpy(dtype=object)
        c2 = rows["column_2"].astype(str).to_numpy(dtype=object)
        c2[:200] = "ZZZZZ"  # unknown codes: no edit
        days = rng.integers(
            pd.Timestamp("2015-01-01").value // 86_400_000_000_000,
            pd.Timestamp("2026-12-31").value // 86_400_000_000_000,
            len(rows),
        )
        dates = pd.to_datetime(days, unit="D")
        want = rb.ptp_lookup(c1, c2, dates, ctype)
        got = ri.ptp(ri.code_ids(c1), ri.code_ids(c2), ymd_of_days(days), np.full(len(rows), ctype, dtype=object))
        assert np.array_equal(got, want) and (want >= 0).any() and (want < 0).any()
        mue = rb.table(f"mue_{ctype}")
        codes = np.concatenate([mue["code"].astype(str).to_numpy(dtype=object)[:500], c1[:100]])
        units, mai = ri.mue(
            np.where(ri.code_ids(codes) >= 0, ri.code_ids(codes), len(ri.vocab)),
            np.full(len(codes), ctype, dtype=object),
        )
        w_units, w_mai = rb.mue_lookup(codes, ctype)
        assert np.array_equal(units, w_units, equal_nan=True) and np.array_equal(mai, w_mai)
