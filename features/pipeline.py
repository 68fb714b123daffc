"""The one entry point for features: training tables, batch scoring and the online service all call
:func:`compute_features`.

- Training / batch scoring: ``build_feature_table(history)`` builds the history state from the whole
  history and computes every claim's features at its own submission time and order (point in time).
- Online: ``compute_features(claims, lines, state)`` with the saved state; the new claims come after
  everything in it. ``record=True`` then adds them to the state (duplicates of them are caught later).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.claim import HIT_COLUMNS, claim_attributes, finalize_hits, prepare_lines
from features.contract import History
from features.history import history_features
from features.rulebook import Rulebook, load_rulebook
from features.state import HistoryState, submission_order

log = logging.getLogger(__name__)

#: categorical model inputs (levels are learned at fit time by :class:`features.spec.FeatureSpec`)
CATEGORICAL = ["plan_type", "claim_type", "place_of_service", "frequency_code", "payer_id", "specialty",
               "main_procedure"]


@dataclass
class FeatureResult:
    """Model inputs (one row per claim, indexed by claim_id), rule hits, and the line helper frame."""

    X: pd.DataFrame
    hits: pd.DataFrame
    lines: pd.DataFrame


def _categoricals(claims: pd.DataFrame, la: pd.DataFrame, specialty: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame(index=claims.index)
    for c in ("plan_type", "claim_type", "place_of_service", "frequency_code", "payer_id"):
        out[c] = claims[c].astype("string").to_numpy(dtype=object)
    out["specialty"] = specialty
    # the procedure of the highest-charge line (first line on ties)
    top = la.assign(neg=-la["charge"].to_numpy()).sort_values(["ci", "neg", "line_number"]).drop_duplicates("ci")
    main = np.full(len(claims), None, dtype=object)
    main[top["ci"].to_numpy()] = top["code"].to_numpy()
    out["main_procedure"] = main
    return out


def compute_features(
    claims: pd.DataFrame,
    lines: pd.DataFrame,
    state: HistoryState,
    rulebook: Rulebook | None = None,
    order: np.ndarray | None = None,
    la: pd.DataFrame | None = None,
    record: bool = False,
) -> FeatureResult:
    """Features of ``claims`` (typed contract frames) against ``state``.

    ``order`` gives each claim's place in submission order (default: after everything in the state,
    in row order). With ``record`` the claims are added to the state afterwards.
    """
    rulebook = rulebook or load_rulebook()
    claims = claims.reset_index(drop=True)
    lines = lines.reset_index(drop=True)
    if order is None:
        order = state.next_order + np.arange(len(claims), dtype=np.int64)
    la = prepare_lines(claims, lines, rulebook) if la is None else la
    specialty = state.specialty_for(claims)
    f_claim, hits_claim = claim_attributes(claims, la, rulebook, state.coverage_for(claims["patient_id"]))
    f_hist, hits_hist = history_features(claims, lines, la, state.tables, specialty, order, rulebook)
    cats = _categoricals(claims, la, specialty)
    X = pd.concat([cats, f_claim.astype("float64"), f_hist], axis=1)
    X.index = pd.Index(claims["claim_id"].astype(str), name="claim_id")
    hist_hits = finalize_hits(hits_hist, claims)
    hits = pd.concat([h for h in (hits_claim, hist_hits) if len(h)], ignore_index=True) if (
        len(hits_claim) or len(hist_hits)) else hits_claim
    hits = hits.sort_values(["ci", "rule"], kind="stable").drop(columns="ci").reset_index(drop=True)
    if record:
        state.add_claims(claims, lines, la, order)
    return FeatureResult(X=X, hits=hits[HIT_COLUMNS], lines=la)


def build_feature_table(history: History, rulebook: Rulebook | None = None,
                        state: HistoryState | None = None) -> tuple[FeatureResult, HistoryState]:
    """Features of every claim of ``history`` as known on its submission date, and the full state."""
    rulebook = rulebook or load_rulebook()
    claims = history.claims.reset_index(drop=True)
    lines = history.claim_lines.reset_index(drop=True)
    order = submission_order(claims)
    la = prepare_lines(claims, lines, rulebook)
    if state is None:
        h = History(claims=claims, claim_lines=lines, coverage=history.coverage,
                    providers=history.providers, recoupments=history.recoupments)
        state = HistoryState.from_history(h, rulebook, order=order, la=la)
    result = compute_features(claims, lines, state, rulebook, order=order, la=la)
    return result, state


def select_claims(history: History, claim_ids: pd.Index | np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claims and lines of ``history`` with these ids (in the given order)."""
    ids = pd.Index(np.asarray(claim_ids).astype(str))
    c = history.claims.set_index(history.claims["claim_id"].astype(str)).loc[ids].reset_index(drop=True)
    lines = history.claim_lines[history.claim_lines["claim_id"].astype(str).isin(ids)]
    return c, lines.reset_index(drop=True)
