"""The scorer: model bundle + history state -> SCORE records. Used by the service and batch scoring alike.

No BentoML here. Two entry points share :meth:`Scorer.score_features`:

- :meth:`Scorer.score_claims` scores new claims against the scorer's own (online) history state;
- :func:`serving.batch.score_history` builds features for a whole history (each claim as of its
  submission date) and calls :meth:`Scorer.score_features` on them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.bundle import ModelBundle, expected_amount
from features.contract import CAUSES
from features.pipeline import FeatureResult, compute_features
from features.rulebook import Rulebook, load_rulebook
from features.state import HistoryState
from serving.reasons import rule_hit_records, top_reasons

log = logging.getLogger(__name__)
SCORE_FIELDS = ["claim_id", "recoupment_probability", "risk_band", "expected_recoupment_amount", "causes",
                "reasons", "rule_hits", "model_version"]


@dataclass
class ScoreFrame:
    """Scores of many claims in columns (cheap), with reasons only where they were asked for."""

    table: pd.DataFrame  # index claim_id: probability, band, expected amount, p_<cause>
    reasons: dict[str, list[dict]]
    rule_hits: dict[str, list[dict]]

    def records(self, model_version: str) -> list[dict]:
        out = []
        t = self.table
        pc = t[[f"p_{c}" for c in CAUSES]].to_numpy()
        prob = t["recoupment_probability"].to_numpy()
        band = t["risk_band"].tolist()
        amount = t["expected_recoupment_amount"].to_numpy()
        for i, cid in enumerate(t.index):
            order = np.argsort(-pc[i], kind="stable")
            out.append({
                "claim_id": cid,
                "recoupment_probability": round(float(prob[i]), 6),
                "risk_band": band[i],
                "expected_recoupment_amount": round(float(amount[i]), 2),
                "causes": [{"cause": CAUSES[j], "probability": round(float(pc[i, j]), 6)} for j in order],
                "reasons": self.reasons.get(cid, []),
                "rule_hits": self.rule_hits.get(cid, []),
                "model_version": model_version,
            })
        return out


class Scorer:
    """A loaded model version with its history state."""

    def __init__(self, bundle: ModelBundle, state: HistoryState, rulebook: Rulebook | None = None):
        self.bundle = bundle
        self.state = state
        self.rulebook = rulebook or load_rulebook()
        self.lock = threading.Lock()  # the online state is updated in place

    @classmethod
    def from_dir(cls, bundle_dir: str | Path) -> "Scorer":
        bundle = ModelBundle.load(bundle_dir)
        state = HistoryState.load(Path(bundle_dir) / "state")
        return cls(bundle, state)

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
        M = self.bundle.fast_matrix(feats.X)  # numpy of level codes when possible (cheap for one claim)
        p = self.bundle.probability(M)
        cp = self.bundle.cause_probabilities(M)
        amount = expected_amount(self.bundle, p, cp, claims.reset_index(drop=True))
        cols = {"recoupment_probability": p, "risk_band": self.risk_band(p), "expected_recoupment_amount": amount}
        for j, c in enumerate(CAUSES):
            cols[f"p_{c}"] = cp[:, j]
        table = pd.DataFrame(cols, index=feats.X.index)
        hits = rule_hit_records(feats.hits, claims, self.bundle.spec.unseen_dict(feats.X), self.rulebook)
        if isinstance(explain, (bool, np.bool_)):
            explain = np.full(len(M), bool(explain))
        reasons: dict[str, list[dict]] = {}
        idx = np.flatnonzero(explain)
        if len(idx):
            contrib = self.bundle.contributions(M[idx] if isinstance(M, np.ndarray) else M.iloc[idx])
            reasons = top_reasons(contrib, self.bundle.spec.feature_names_, feats.X.iloc[idx], feats.hits,
                                  claims.iloc[idx] if len(claims) == len(M) else claims)
        return ScoreFrame(table=table, reasons=reasons, rule_hits=hits)

    # ------------------------------------------------------------------ online
    def score_claims(self, claims: pd.DataFrame, lines: pd.DataFrame, explain: bool = True,
                     record: bool = True) -> list[dict]:
        """Score new claims against the online state; with ``record`` they join the state afterwards."""
        with self.lock:
            feats = compute_features(claims, lines, self.state, self.rulebook, record=record)
        frame = self.score_features(feats, claims.reset_index(drop=True), explain)
        return frame.records(self.model_version)
