"""STAND-IN (DASK-SCORE) until ENGINE-A's table.py is merged: the agreed interface, built the simple way (load
the history in this process, :func:`features.pipeline.build_feature_table`, ``dd.from_pandas``). ENGINE-A's
version builds the same table by time partitions without collecting the history; the lead keeps that one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class ClusterTable:
    X: Any  # dask.dataframe.DataFrame, index claim_id
    hits: Any  # dask.dataframe.DataFrame (the hits of each partition's claims, same partitions as X)
    claims: Any  # dask.dataframe.DataFrame (the claim rows, same partitions and order as X)
    _state: Any = None
    recoupments: Any = None  # dask.dataframe.DataFrame (DASK-TRAIN's training reads it when present)
    n_lines: int | None = None

    def state(self):
        return self._state


def _by_rows(df: pd.DataFrame, bounds: np.ndarray) -> list[pd.DataFrame]:
    return [df.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def feature_table(
    client, data: str | Path, rulebook=None, since=None, until=None, npartitions: int = 4
) -> ClusterTable:
    import dask
    import dask.dataframe as dd

    from features.contract import load_history
    from features.pipeline import build_feature_table

    history = load_history(data)
    feats, state = build_feature_table(history, rulebook)
    claims = history.claims
    keep = np.ones(len(claims), dtype=bool)
    d = claims["submitted_date"]
    if since is not None:
        keep &= (d >= pd.Timestamp(str(since)[:7] + "-01")).to_numpy()
    if until is not None:
        keep &= (d < pd.Timestamp(str(until)[:7] + "-01") + pd.offsets.MonthBegin(1)).to_numpy()
    pos = np.flatnonzero(keep)
    X = feats.X.iloc[pos]
    cl = claims.iloc[pos].reset_index(drop=True)
    ids = cl["claim_id"].astype(str)
    n = max(1, min(npartitions, len(pos)))
    bounds = np.linspace(0, len(pos), n + 1).astype(np.int64)
    hits = feats.hits
    at = pd.Index(ids).get_indexer(hits["claim_id"].astype(str))
    hit_part = np.searchsorted(bounds[1:], at, side="right")
    inside = at >= 0
    hparts = [hits[inside & (hit_part == k)] for k in range(n)]
    with dask.config.set({"dataframe.convert-string": False}):
        table = _table(dd, X, hits, cl, bounds, hparts, state)
        rec = history.recoupments if history.recoupments is not None else pd.DataFrame()
        table.recoupments = dd.from_pandas(rec, npartitions=1, sort=False)
        table.n_lines = int(len(history.claim_lines))
        return table


def _table(dd, X, hits, cl, bounds, hparts, state) -> ClusterTable:
    return ClusterTable(
        X=dd.from_delayed([_delayed(p) for p in _by_rows(X, bounds)], meta=X.iloc[:0], verify_meta=False),
        hits=dd.from_delayed([_delayed(p) for p in hparts], meta=hits.iloc[:0], verify_meta=False),
        claims=dd.from_delayed([_delayed(p) for p in _by_rows(cl, bounds)], meta=cl.iloc[:0], verify_meta=False),
        _state=state,
    )


def _delayed(df: pd.DataFrame):
    import dask

    return dask.delayed(df)
