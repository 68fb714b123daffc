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

from features.claim import (  # noqa: F401
    HIT_COLUMNS,
    _str,
    claim_attribute_arrays,
    hits_frame,
    line_arrays,
    prepare_line_arrays,
    prepare_lines,
    string_objects,
)
from features.contract import History
from features.history import history_features, main_procedures
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


def _categoricals(claims: pd.DataFrame, la: pd.DataFrame, specialty: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    L = line_arrays(la)
    for c in ("plan_type", "claim_type", "place_of_service", "frequency_code", "payer_id"):
        out[c] = string_objects(claims[c])
    out["specialty"] = specialty
    out["main_procedure"] = main_procedures(L, len(claims))
    return out


def _frame(cats: dict[str, np.ndarray], num: dict[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    """One frame: the categorical (object -> str) columns first, then the numeric ones as one float
    block. ``num`` is emptied on the way (each column is freed once copied: batch memory)."""
    names = list(num)
    mat = np.empty((len(index), len(names)))
    for j, k in enumerate(names):
        mat[:, j] = num.pop(k)
    X = pd.DataFrame(mat, index=index, columns=names, copy=False)
    for i, (k, v) in enumerate(cats.items()):
        X.insert(i, k, v)
    return X


def compute_features(
    claims: pd.DataFrame,
    lines: pd.DataFrame,
    state: HistoryState,
    rulebook: Rulebook | None = None,
    order: np.ndarray | None = None,
    la: pd.DataFrame | None = None,
    record: bool = False,
    cache: dict | None = None,
) -> FeatureResult:
    """Features of ``claims`` (typed contract frames) against ``state``.

    ``order`` gives each claim's place in submission order (default: after everything in the state,
    in row order). With ``record`` the claims are added to the state afterwards. ``cache`` (optional)
    holds per-call arrays (string keys of claims and lines) shared with the state building.
    """
    rulebook = rulebook or load_rulebook()
    claims = claims.reset_index(drop=True)
    lines = lines.reset_index(drop=True)
    cache = {} if cache is None else cache
    if order is None:
        order = state.next_order + np.arange(len(claims), dtype=np.int64)
    for c in ("claim_id", "claim_type", "frequency_code", "patient_id", "payer_id", "billing_npi",
              "place_of_service"):
        if c not in cache:
            cache[c] = _str(claims[c])
    la_in = la
    la = prepare_line_arrays(claims, lines, rulebook, cache["claim_type"]) if la is None else la
    specialty = state.specialty_for(claims)
    f_claim, hits_claim = claim_attribute_arrays(claims, la, rulebook, state.coverage_for(claims["patient_id"]),
                                                 cache)
    f_hist, hits_hist = history_features(claims, lines, la, state.tables, specialty, order, rulebook, cache,
                                         as_arrays=True)
    cats = _categoricals(claims, la, specialty)
    f_claim.update(f_hist)
    del f_hist
    X = _frame(cats, f_claim, pd.Index(cache["claim_id"], name="claim_id"))
    hits = hits_frame([hits_claim, hits_hist], cache["claim_id"])
    if la_in is None:
        la = pd.DataFrame(la)
    if record:
        state.add_claims(claims, lines, la, order, cache)
    return FeatureResult(X=X, hits=hits, lines=la)


def build_feature_table(history: History, rulebook: Rulebook | None = None,
                        state: HistoryState | None = None) -> tuple[FeatureResult, HistoryState]:
    """Features of every claim of ``history`` as known on its submission date, and the full state."""
    rulebook = rulebook or load_rulebook()
    claims = history.claims.reset_index(drop=True)
    lines = history.claim_lines.reset_index(drop=True)
    order = submission_order(claims)
    la = prepare_lines(claims, lines, rulebook)
    cache: dict = {}
    if state is None:
        h = History(claims=claims, claim_lines=lines, coverage=history.coverage,
                    providers=history.providers, recoupments=history.recoupments)
        state = HistoryState.from_history(h, rulebook, order=order, la=la, cache=cache)
    result = compute_features(claims, lines, state, rulebook, order=order, la=la, cache=cache)
    return result, state


def select_claims(history: History, claim_ids: pd.Index | np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claims and lines of ``history`` with these ids (in the given order)."""
    ids = pd.Index(np.asarray(claim_ids).astype(str))
    c = history.claims.set_index(history.claims["claim_id"].astype(str)).loc[ids].reset_index(drop=True)
    lines = history.claim_lines[history.claim_lines["claim_id"].astype(str).isin(ids)]
    return c, lines.reset_index(drop=True)
