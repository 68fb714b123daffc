"""Batch scoring and the audit's scores on a Dask cluster (``recoup score|audit --cluster``, docs/scale.md).

The feature table comes from :func:`features.cluster.table.feature_table` (partitions of claims with their
features and rule hits). Each partition is scored by :func:`serving.batch.score_rows` and its rule hits are
written by :func:`serving.batch.fast_rule_hits` (the single process's own functions, so the numbers are the same);
the scorer is loaded once per worker process (:func:`worker_scorer`, keyed by the bundle's path and digest). The
rows to explain (``--explain top:N``) are picked by a distributed reduction: the N largest expected dollars of each
partition, then of those; TreeSHAP reasons are computed, in their partitions, only for the rows picked.

Order: partitions are in the table's claim order, so concatenating them gives the single process's row order;
``top:N`` is a stable sort (ties by position) within each partition and then over the concatenation, which is the
single process's stable sort over the whole window. This module imports dask only inside functions that get a client.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from functools import lru_cache
from pathlib import Path
import numpy as np
import pandas as pd

from features.contract import History
from features.errors import RecoupError
from features.pipeline import FeatureResult
from serving.batch import (
    SCORE_COLUMNS,
    BatchScores,
    fast_rule_hits,
    load_champion_dir,
    load_scorer,
    parse_explain,
    score_rows,
    window_mask,
)
from serving.scorer import Scorer

log = logging.getLogger(__name__)

#: columns of a scored partition: the model table, the rule hits' JSON, and "" or the reason a row failed
PART_COLUMNS = SCORE_COLUMNS + ["rule_hits", "reject_reason"]


# ---------------------------------------------------------------------------------------------- the bundle
def bundle_digest(bundle_dir: str | Path) -> str:
    """SHA-256 over the bundle folder's file names and contents (a worker's cached scorer is keyed by it)."""
    root = Path(bundle_dir)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(root)).encode())
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=4)
def worker_scorer(path: str, digest: str) -> Scorer:
    """The batch scorer of a bundle, loaded once per process (a worker keeps it for every partition it scores)."""
    del digest  # part of the cache key only: a changed bundle at the same path is loaded again
    return load_scorer(path)


def resolve_bundle(bundle_dir: str | Path | None) -> tuple[str, str]:
    """(path, digest) of the bundle to score with: ``bundle_dir`` or the champion (as the single process finds it)."""
    path = str(bundle_dir if bundle_dir is not None else load_champion_dir())
    return path, bundle_digest(path)


# ---------------------------------------------------------------------------------------------- partition tasks
def _window(X: pd.DataFrame, claims: pd.DataFrame, since, until) -> tuple[np.ndarray, pd.DataFrame]:
    """(rows of ``X``, claim rows) of the partition's claims submitted in the window, in the claims' order; rows
    are matched by claim id (a partition's claims may hold more months than its X)."""
    cl = claims.iloc[np.flatnonzero(window_mask(claims, since, until))]
    pos = pd.Index(X.index.astype(str)).get_indexer(cl["claim_id"].astype(str))
    if (pos < 0).any():
        raise RecoupError("the cluster feature table has claims of the window without features")
    return pos, cl.reset_index(drop=True)


def score_part(
    X: pd.DataFrame, claims: pd.DataFrame, hits: pd.DataFrame, path: str, digest: str, since, until
) -> pd.DataFrame:
    """One partition: :data:`PART_COLUMNS` per claim of the window (index claim_id), scored rows first in claim
    order, then the rows whose scoring failed (NaN scores, a ``reject_reason``)."""
    scorer = worker_scorer(path, digest)
    pos, cl = _window(X, claims, since, until)
    table, failed = score_rows(scorer, X, pos, cl, progress=False)
    keep = pd.Index(cl["claim_id"].astype(str)).isin(table.index)
    if keep.any():
        unseen = scorer.bundle.spec.unseen_levels(X.iloc[pos[keep]])
        rule_hits = fast_rule_hits(hits, cl[keep].reset_index(drop=True), unseen)
    else:
        rule_hits = pd.Series([], dtype=object)
    out = table.copy()
    out["risk_band"] = out["risk_band"].astype(str).to_numpy(dtype=object)
    out["rule_hits"] = rule_hits.reindex(out.index).fillna("[]").to_numpy(dtype=object)
    out["reject_reason"] = ""
    if failed:
        bad = pd.DataFrame(
            {c: np.nan for c in PART_COLUMNS}, index=pd.Index([f[0] for f in failed], name=out.index.name)
        )
        bad["risk_band"] = ""
        bad["rule_hits"] = ""
        bad["reject_reason"] = [f[1] for f in failed]
        out = pd.concat([out, bad])
    out.index = out.index.astype(object)
    out.index.name = "claim_id"
    return out[PART_COLUMNS]


def top_part(part: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` scored rows with the largest expected dollars of a partition, stable (ties: first row first)."""
    s = part[part["reject_reason"] == ""]
    order = np.argsort(-s["expected_recoupment_amount"].to_numpy(dtype=np.float64), kind="stable")[:n]
    return s.iloc[order][["expected_recoupment_amount"]]


def reasons_part(
    X: pd.DataFrame,
    claims: pd.DataFrame,
    hits: pd.DataFrame,
    path: str,
    digest: str,
    ids: frozenset | None,
    since=None,
    until=None,
) -> pd.DataFrame:
    """TreeSHAP reasons (JSON-ready lists) of the partition's claims in ``ids`` (None: every claim of the window), with
    :meth:`Scorer.score_features` itself, as :func:`serving.batch.add_reasons` calls it."""
    claims = claims[claims["claim_id"].astype(str).isin(X.index.astype(str))]  # the claims with features
    claims = claims.iloc[pd.Index(claims["claim_id"].astype(str)).get_indexer(X.index.astype(str))]  # X's order
    cid = claims["claim_id"].astype(str)
    sel = np.flatnonzero(cid.isin(ids).to_numpy() if ids is not None else window_mask(claims, since, until))
    if not len(sel):
        return pd.DataFrame({"reasons": pd.Series([], dtype=object)}, index=pd.Index([], dtype=object, name="claim_id"))
    scorer = worker_scorer(path, digest)
    out: dict[str, list[dict]] = {}
    step = 20_000
    for s in range(0, len(sel), step):
        sub = sel[s : s + step]
        Xs = X.iloc[sub]
        h = hits[hits["claim_id"].isin(Xs.index)]
        frame = scorer.score_features(
            FeatureResult(X=Xs, hits=h, lines=pd.DataFrame()), claims.iloc[sub].reset_index(drop=True), explain=True
        )
        out.update(frame.reasons)
    keys = [k for k in cid.iloc[sel] if k in out]
    return pd.DataFrame(
        {"reasons": pd.Series([out[k] for k in keys], dtype=object, index=pd.Index(keys, dtype=object))}
    ).rename_axis("claim_id")


# ---------------------------------------------------------------------------------------------- the driver
def _plain_objects(method: Callable) -> Callable:
    """Build and run the method's graphs with dask's object-to-Arrow-string conversion off: partitions keep the
    dtypes the single process has (e.g. the hits' mixed number/text columns stay objects)."""

    @functools.wraps(method)
    def run(*args, **kwargs):
        import dask

        with dask.config.set({"dataframe.convert-string": False}):
            return method(*args, **kwargs)

    return run


class ClusterScores:
    """The window scored on the cluster: partitions persisted on the workers until :meth:`release`."""

    @_plain_objects
    def __init__(self, client, data, bundle: tuple[str, str], since, until):
        t0 = time.perf_counter()
        self.client = client
        self.path, self.digest = bundle
        self.scorer = worker_scorer(self.path, self.digest)
        self.since, self.until = since, until
        # the chain's states go to a scratch folder that lives until release() (a lost partition reads them again)
        self._scratch = ExitStack()
        try:
            self._start(client, data, since, until)
        except BaseException:
            self._scratch.close()
            raise
        self.timings = {"features_and_model_s": time.perf_counter() - t0}

    def _start(self, client, data, since, until) -> None:
        """The window's feature table and scores, persisted on the workers."""
        import dask.dataframe as dd

        from features.cluster.parts import scratch
        from features.cluster.table import feature_table

        ct = feature_table(
            client,
            data,
            since=None if since is None else str(pd.Timestamp(since).date()),
            until=None if until is None else str(pd.Timestamp(until).date()),
            folder=self._scratch.enter_context(scratch(client, "score")),
        )
        if not ct.X.npartitions == ct.claims.npartitions == ct.hits.npartitions:
            raise RecoupError("the cluster feature table's X, claims and hits have different partitions")
        self.X, self.claims, self.hits = client.persist([ct.X, ct.claims, ct.hits])
        meta = pd.DataFrame(
            {
                c: pd.Series(dtype=object if c in ("risk_band", "rule_hits", "reject_reason") else np.float64)
                for c in PART_COLUMNS
            }
        )
        meta.index = pd.Index([], dtype=object, name="claim_id")
        self.parts = client.persist(
            dd.map_partitions(
                score_part,
                self.X,
                self.claims,
                self.hits,
                self.path,
                self.digest,
                since,
                until,
                meta=meta,
                align_dataframes=False,
            )
        )

    # the reductions
    @_plain_objects
    def top_ids(self, n: int) -> list[str]:
        """The ``n`` claims with the largest expected dollars, as the single process's stable sort picks them."""
        meta = pd.DataFrame({"expected_recoupment_amount": pd.Series(dtype=np.float64)})
        meta.index = pd.Index([], dtype=object, name="claim_id")
        tops = self.parts.map_partitions(top_part, n, meta=meta).compute()
        order = np.argsort(-tops["expected_recoupment_amount"].to_numpy(dtype=np.float64), kind="stable")[:n]
        return [str(i) for i in tops.index[order]]

    def explain_ids(self, explain: str) -> list[str] | None:
        """The claims ``--explain`` selects (None: all)."""
        kind, n = parse_explain(explain)
        if kind == "none":
            return []
        if kind == "all":
            return None
        return self.top_ids(n)

    @_plain_objects
    def reasons(self, ids: list[str] | None) -> dict[str, list[dict]]:
        """Reasons of these claims (None: every claim), computed in their partitions."""
        import dask.dataframe as dd

        if ids is not None and not ids:
            return {}
        t = time.perf_counter()
        meta = pd.DataFrame({"reasons": pd.Series(dtype=object)})
        meta.index = pd.Index([], dtype=object, name="claim_id")
        sel = None if ids is None else frozenset(ids)
        got = dd.map_partitions(
            reasons_part,
            self.X,
            self.claims,
            self.hits,
            self.path,
            self.digest,
            sel,
            self.since,
            self.until,
            meta=meta,
            align_dataframes=False,
        ).compute()
        self.timings["reasons_s"] = self.timings.get("reasons_s", 0.0) + time.perf_counter() - t
        return dict(zip(got.index.astype(str), got["reasons"]))

    @_plain_objects
    def collect(self) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
        """(model table of the scored rows, rule hits' JSON by claim, failed rows (claim_id, reject_reason)), in
        the single process's order."""
        t = time.perf_counter()
        allp = self.parts.compute()
        ok = (allp["reject_reason"] == "").to_numpy()
        table = allp.loc[ok, SCORE_COLUMNS].copy()
        for c in SCORE_COLUMNS:
            if c != "risk_band":
                table[c] = table[c].astype(np.float64)
        table.index.name = None
        failed = pd.DataFrame(
            {"claim_id": allp.index[~ok].astype(str), "reject_reason": allp.loc[~ok, "reject_reason"].to_numpy()}
        )
        self.timings["collect_s"] = time.perf_counter() - t
        return table, allp.loc[ok, "rule_hits"], failed

    @_plain_objects
    def hits_for_amounts(self) -> pd.DataFrame:
        """The NCCI PTP and MUE hits (the audit's amounts at risk use these), collected."""
        h = self.hits
        return h[h["rule"].isin(["ncci_ptp", "mue"])].compute().reset_index(drop=True)

    def release(self) -> None:
        """Release the partitions on the workers and remove the scratch folder."""
        for obj in (self.parts, self.X, self.claims, self.hits):
            try:
                self.client.cancel(obj)
            except Exception:  # noqa: BLE001 - best effort: the client closes anyway
                pass
        self._scratch.close()


def batch_scores(cs: ClusterScores, history: History, until, data_end) -> BatchScores:
    """A :class:`BatchScores` for :func:`serving.audit.build_worklist` from the cluster's scores: the model table
    and rule hits collected, the scored claims' rows from ``history`` (truncated after ``until`` like
    :func:`serving.batch.score_window`), the NCCI/MUE hits, and reasons computed on the cluster."""
    from serving.batch import truncate_after

    table, rule_hits, failed = cs.collect()
    hist = truncate_after(history, until)
    hc = hist.claims
    at = pd.Index(hc["claim_id"].astype(str)).get_indexer(table.index.astype(str))
    if (at < 0).any():
        raise RecoupError("the cluster scored claims that the history does not have")
    order = np.argsort(at, kind="stable")  # the history's row order, as the single process ranks ties
    table, at = table.iloc[order], at[order]
    claims = hc.iloc[at].reset_index(drop=True)
    feats = FeatureResult(X=pd.DataFrame(), hits=cs.hits_for_amounts(), lines=pd.DataFrame())
    return BatchScores(
        data_end=data_end,
        table=table,
        claims=claims,
        feats=feats,
        history=hist,
        positions=at,
        rule_hits=rule_hits,
        rejected=failed,
        model_version=cs.scorer.model_version,
        n_read=len(table) + len(failed),
        timings=dict(cs.timings),
        explainer=cs.reasons,
    )
