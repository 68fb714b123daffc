"""STAND-IN (DASK-TRAIN) for ENGINE-A's distributed feature table, with the agreed interface; the lead takes
ENGINE-A's file in the merge. This stand-in builds the table in THIS process (``build_feature_table``) and hands
it to the cluster in time partitions: it is for developing and testing the training path only, not for scale.

Interface (issue #15 brief): ``feature_table(client, data, rulebook=None, since=None, until=None) -> ClusterTable``
with ``X`` (dask DataFrame, index claim_id, the columns and dtypes of ``build_feature_table``'s X), ``hits``,
``claims`` (the claim rows in the same partitions) and ``state()`` (the history state at the end). Extensions the
training path uses when present (else it reads what it needs itself): ``recoupments`` (the contract's recoupment
rows, dask DataFrame) and ``n_lines`` (the number of claim lines read)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.engine.state import HistoryState, submission_order
from features.rulebook import Rulebook

#: claims per partition of the stand-in (a month of a 10M-claim history is ~300k claims)
PARTITION_ROWS = 50_000


@dataclass
class ClusterTable:
    """Features, hits and claims of a history on a cluster, in time partitions (submission order)."""

    X: Any  # dask.dataframe.DataFrame
    hits: Any
    claims: Any
    _state: HistoryState
    recoupments: Any = None
    n_lines: int | None = None

    def state(self) -> HistoryState:
        return self._state


def feature_table(
    client: Any,
    data: str | Path,
    rulebook: Rulebook | None = None,
    since: str | None = None,
    until: str | None = None,
) -> ClusterTable:
    """The point-in-time feature table of the claims of ``data`` (a store or contract folder) submitted in
    [since, until]; with ``until`` the history is cut as known on that date (claims, payments, recoupments)."""
    import dask.dataframe as dd

    from features.contract import load_history
    from features.model.outcomes import truncate_history
    from features.pipeline import build_feature_table

    history = load_history(data, require_recoupments=True)
    if until is not None:
        history = truncate_history(history, pd.Timestamp(until))
    feats, state = build_feature_table(history, rulebook)
    claims = history.claims.reset_index(drop=True)
    order = submission_order(claims)
    claims = claims.iloc[order].reset_index(drop=True)
    if since is not None:
        claims = claims[claims["submitted_date"] >= pd.Timestamp(since)].reset_index(drop=True)
    ids = pd.Index(claims["claim_id"].astype(str), name="claim_id")
    X = feats.X.loc[ids]
    n = max(1, -(-len(X) // PARTITION_ROWS))
    hits = feats.hits
    rec = history.recoupments if history.recoupments is not None else pd.DataFrame()
    return ClusterTable(
        X=dd.from_pandas(X, npartitions=n, sort=False),
        hits=dd.from_pandas(hits, npartitions=max(1, n), sort=False),
        claims=dd.from_pandas(claims.set_index(ids), npartitions=n, sort=False),
        _state=state,
        recoupments=dd.from_pandas(rec, npartitions=max(1, min(n, len(rec) // 10_000 + 1)), sort=False),
        n_lines=int(len(history.claim_lines)),
    )
