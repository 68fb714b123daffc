"""features.engine.events: lookups of the point-in-time event tables."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_index_positions_equal_get_indexer():
    """The engine shortcut gives what ``Index.get_indexer`` gives, for int64 and object (str) keys."""
    from features.engine.events import index_positions

    rng = np.random.default_rng(3)
    ints = pd.Index(rng.choice(10**9, 5000, replace=False).astype(np.int64))
    q = np.concatenate([rng.choice(ints.to_numpy(), 150), rng.integers(0, 10**9, 150)]).astype(np.int64)
    assert np.array_equal(index_positions(ints, q), ints.get_indexer(q))
    strs = pd.Index(np.array([f"K{i}" for i in range(3000)], dtype=object), dtype=object)
    qs = np.array([f"K{i}" for i in rng.integers(0, 4000, 300)], dtype=object)
    assert np.array_equal(index_positions(strs, qs), strs.get_indexer(qs))
    got = index_positions(strs, qs)
    assert (got == -1).any() and (got >= 0).any()
    # another dtype than the index's: the public path, same answer
    assert np.array_equal(index_positions(ints, q.astype(object)), ints.get_indexer(q.astype(object)))
