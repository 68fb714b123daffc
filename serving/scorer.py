"""The scorer: model bundle + history state -> SCORE records. Used by the service and batch scoring alike.

No BentoML here. Two entry points share :meth:`Scorer.score_features`:

- :meth:`Scorer.score_claims` scores new claims against the scorer's own (online) history state;
- :func:`serving.batch.score_history` builds features for a whole history (each claim as of its
  submission date) and calls :meth:`Scorer.score_features` on them.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from features.bundle import ModelBundle, expected_amount
from features.contract import CAUSES
from features.claim import HIT_COLUMNS
from features.pipeline import FeatureResult, compute_features
from features.rulebook import Rulebook, load_rulebook
from features.state import HistoryState
from serving.reasons import rule_hit_records, top_reasons

log = logging.getLogger(__name__)
SCORE_FIELDS = ["claim_id", "recoupment_probability", "risk_band", "expected_recoupment_amount", "causes",
                "reasons", "rule_hits", "model_version"]


def _range_indexed(df: pd.DataFrame) -> pd.DataFrame:
    """``df.reset_index(drop=True)`` unless it already has the index 0..n-1 (no copy then)."""
    idx = df.index
    if type(idx) is pd.RangeIndex and idx.start == 0 and idx.step == 1:
        return df
    return df.reset_index(drop=True)


#: the hits of claims without any finding (read only)
_NO_HITS = pd.DataFrame({c: pd.Series([], dtype=object) for c in HIT_COLUMNS})


class ScoreFrame:
    """Scores of many claims in columns (cheap), with reasons only where they were asked for.

    ``table`` (index claim_id: probability, band, expected amount, p_<cause>) is built on first use:
    :meth:`records` works from the arrays, so one claim does not pay for a DataFrame.
    """

    def __init__(self, table: pd.DataFrame | None = None, reasons: dict[str, list[dict]] | None = None,
                 rule_hits: dict[str, list[dict]] | None = None, *, ids: pd.Index | None = None,
                 probability: np.ndarray | None = None, risk_band: np.ndarray | None = None,
                 amount: np.ndarray | None = None, cause_probabilities: np.ndarray | None = None):
        if table is None and ids is None:
            raise ValueError("ScoreFrame needs a table or the score arrays")
        self._table = table
        self.reasons = reasons if reasons is not None else {}
        self.rule_hits = rule_hits if rule_hits is not None else {}
        if table is not None:
            ids = table.index
            probability = table["recoupment_probability"].to_numpy()
            risk_band = table["risk_band"].to_numpy()
            amount = table["expected_recoupment_amount"].to_numpy()
            cause_probabilities = table[[f"p_{c}" for c in CAUSES]].to_numpy()
        self.ids, self.probability, self.risk_band = ids, probability, risk_band
        self.amount, self.cause_probabilities = amount, cause_probabilities

    @property
    def table(self) -> pd.DataFrame:
        if self._table is None:
            cols = {"recoupment_probability": self.probability, "risk_band": self.risk_band,
                    "expected_recoupment_amount": self.amount}
            for j, c in enumerate(CAUSES):
                cols[f"p_{c}"] = self.cause_probabilities[:, j]
            self._table = pd.DataFrame(cols, index=self.ids)
        return self._table

    def records(self, model_version: str) -> list[dict]:
        out = []
        pc = np.asarray(self.cause_probabilities, dtype=np.float64)
        order = np.argsort(-pc, axis=1, kind="stable")
        # sorted and rounded in numpy, then one tolist() each (np.round scales, rounds and scales back: in
        # rare near-halfway cases its last kept digit differs from round()'s; no difference in 2M random
        # values)
        causes = np.asarray(CAUSES, dtype=object)[order].tolist()
        pcl = np.round(np.take_along_axis(pc, order, axis=1), 6).tolist()
        prob = np.round(np.asarray(self.probability, dtype=np.float64), 6).tolist()
        band = np.asarray(self.risk_band).tolist()
        amount = np.round(np.asarray(self.amount, dtype=np.float64), 2).tolist()
        reasons, hits = self.reasons, self.rule_hits
        for i, cid in enumerate(self.ids.tolist()):
            out.append({
                "claim_id": cid,
                "recoupment_probability": prob[i],
                "risk_band": band[i],
                "expected_recoupment_amount": amount[i],
                "causes": [{"cause": c, "probability": p} for c, p in zip(causes[i], pcl[i])],
                "reasons": reasons.get(cid, []),
                "rule_hits": hits.get(cid, []),
                "model_version": model_version,
            })
        return out


def _explain_rows(explain: np.ndarray | bool, n: int) -> np.ndarray:
    """Positions of the rows that get reasons: all, none, or where the mask is true."""
    if isinstance(explain, (bool, np.bool_)):
        return np.arange(n) if explain else np.arange(0)
    return np.flatnonzero(explain)


class Scorer:
    """A loaded model version with its history state."""

    def __init__(self, bundle: ModelBundle, state: HistoryState, rulebook: Rulebook | None = None):
        self.bundle = bundle
        self.state = state
        self.rulebook = rulebook or load_rulebook()
        self.lock = threading.Lock()  # the online state is updated in place
        self.journal = None  # a serving.journal.RecordJournal when several workers share what they record

    @classmethod
    def from_dir(cls, bundle_dir: str | Path) -> "Scorer":
        bundle = ModelBundle.load(bundle_dir)
        state = HistoryState.load(Path(bundle_dir) / "state")
        return cls(bundle, state)

    def warm_up(self) -> None:
        """Build the lazy lookups the first claim would otherwise wait for (the rulebook's code index,
        ~0.3 s; the ICD-10-CM map)."""
        from features.claim import rule_index

        rule_index(self.rulebook).icd_status(np.array(["E119"], dtype=object))

    @property
    def model_version(self) -> str:
        return str(self.bundle.meta.get("model_version", "unregistered"))

    # ------------------------------------------------------------------ model part
    def risk_band(self, p: np.ndarray) -> np.ndarray:
        bands = self.bundle.meta.get("risk_bands", {"medium": 0.05, "high": 0.2})
        return np.where(p >= bands["high"], "high", np.where(p >= bands["medium"], "medium", "low"))

    def score_features(self, feats: FeatureResult, claims: pd.DataFrame,
                       explain: np.ndarray | bool = True) -> ScoreFrame:
        """Probabilities, causes, dollars for every claim; reasons where ``explain`` is true."""
        b = self.bundle
        arrays = getattr(feats, "arrays", None)
        if arrays is not None and b.numpy_ok() and arrays.plain_categoricals():
            return self._score_arrays(feats, arrays, claims, explain)
        X = feats.X
        M = b.fast_matrix(X)  # numpy of level codes when possible (cheap for one claim)
        p = b.probability(M)
        cp = b.cause_probabilities(M)
        claims = _range_indexed(claims)
        amount = expected_amount(b, p, cp, claims)
        hits = rule_hit_records(feats.hits, claims, b.spec.unseen_dict(X), self.rulebook)
        idx = _explain_rows(explain, len(M))
        reasons: dict[str, list[dict]] = {}
        if len(idx):
            every = len(idx) == len(M)
            contrib = b.contributions(M if every else (M[idx] if isinstance(M, np.ndarray) else M.iloc[idx]))
            reasons = top_reasons(contrib, b.spec.feature_names_, X if every else X.iloc[idx], feats.hits,
                                  claims if every or len(claims) != len(M) else claims.iloc[idx])
        return ScoreFrame(reasons=reasons, rule_hits=hits, ids=X.index, probability=p,
                          risk_band=self.risk_band(p), amount=amount, cause_probabilities=cp)

    def _score_arrays(self, feats: FeatureResult, a, claims: pd.DataFrame,
                      explain: np.ndarray | bool) -> ScoreFrame:
        """:meth:`score_features` from the feature arrays of a few claims (no feature or hit frame is built
        unless there are hits); same results as the frame path."""
        b = self.bundle
        M = b.spec.transform_arrays(a.cats, a.names, a.mat)
        p = b.probability(M)
        cp = b.cause_probabilities(M)
        claims = _range_indexed(claims)
        amount = expected_amount(b, p, cp, claims)
        hits = feats.hits if a.n_hits() else _NO_HITS
        hit_recs = rule_hit_records(hits, claims, b.spec.unseen_arrays(a.ids, a.cats), self.rulebook)
        idx = _explain_rows(explain, len(M))
        reasons: dict[str, list[dict]] = {}
        if len(idx):
            every = len(idx) == len(M)
            contrib = b.contributions(M if every else M[idx])
            # the feature frame's columns: categoricals first, then the numeric ones
            cols = [*a.cats, *a.names]
            cat_vals = list(zip(*[v.tolist() for v in a.cats.values()]))
            num_vals = a.mat.tolist()
            rows = [dict(zip(cols, (*cat_vals[i], *num_vals[i]))) for i in idx.tolist()]
            ids = a.ids[idx] if not every else a.ids
            reasons = top_reasons(contrib, b.spec.feature_names_, (ids, rows), hits,
                                  claims if every or len(claims) != len(M) else claims.iloc[idx])
        return ScoreFrame(reasons=reasons, rule_hits=hit_recs, ids=pd.Index(a.ids, name="claim_id"),
                          probability=p, risk_band=self.risk_band(p), amount=amount, cause_probabilities=cp)

    # ------------------------------------------------------------------ online
    def score_claims(self, claims: pd.DataFrame, lines: pd.DataFrame, explain: bool = True,
                     record: bool = True, as_sent: list[dict] | None = None) -> list[dict]:
        """Score new claims against the online state; with ``record`` they join the state afterwards.

        With a :attr:`journal` (several service workers), the claims other workers recorded are applied
        first, and recorded claims are appended for them (serving/journal.py); ``as_sent`` (optional)
        are the same claims as CLAIM objects, written to the journal as they are.
        """
        with self.lock:
            j = self.journal
            if j is None:
                feats = compute_features(claims, lines, self.state, self.rulebook, record=record)
            elif record:
                with j.exclusive():
                    j.catch_up(self.state, self.rulebook)
                    feats = compute_features(claims, lines, self.state, self.rulebook, record=True)
                    j.append(claims, lines, as_sent)
            else:
                j.catch_up(self.state, self.rulebook)
                feats = compute_features(claims, lines, self.state, self.rulebook, record=False)
        frame = self.score_features(feats, claims, explain)
        return frame.records(self.model_version)
