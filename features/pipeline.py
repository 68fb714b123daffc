"""The one entry point for features: training tables, batch scoring and the online service all call
:func:`compute_features`.

- Training / batch scoring: ``build_feature_table(history)`` builds the history state from the whole
  history and computes every claim's features at its own submission time and order (point in time).
- Online: ``compute_features(claims, lines, state)`` with the saved state; the new claims come after
  everything in it. ``record=True`` then adds them to the state (duplicates of them are caught later).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import History
from features.engine.arrays import SMALL, as_str, column, range_indexed, small_values
from features.engine.coverage import CoverageArrays
from features.engine.events import release_memory
from features.engine.hits import hits_frame
from features.engine.lines import prepare_line_arrays, prepare_lines
from features.engine.state import HistoryState, submission_order
from features.families import CATEGORICAL, registry, table_columns
from features.families.base import ROUND, Context
from features.rulebook import Rulebook, load_rulebook

log = logging.getLogger(__name__)

__all__ = ["CATEGORICAL", "FeatureArrays", "FeatureResult", "build_feature_table", "compute_features"]


@dataclass
class FeatureArrays:
    """The parts of a :class:`FeatureResult` before any frame is built (small inputs: the service).

    ``cats``: categorical columns (object arrays), ``names`` / ``mat``: the numeric columns as one float
    matrix, ``hit_groups``: hit parts (see :func:`features.engine.hits.hits_frame`), ``la``: line arrays.
    """

    ids: np.ndarray
    cats: dict[str, np.ndarray]
    names: list[str]
    mat: np.ndarray
    hit_groups: list[list[dict]]
    la: dict[str, np.ndarray]

    def n_hits(self) -> int:
        return sum(len(p["ci"]) for g in self.hit_groups for p in g)

    def plain_categoricals(self) -> bool:
        """Whether every categorical value is a str (then the frame holds exactly these values)."""
        return all(type(v) is str for a in self.cats.values() for v in a.tolist())


class FeatureResult:
    """Model inputs (one row per claim, indexed by claim_id), rule hits, and the line helper frame.

    ``X``, ``hits`` and ``lines`` are DataFrames; for small inputs :func:`compute_features` builds them
    only when they are read (``arrays`` holds the same values, which the scorer uses directly).
    """

    def __init__(
        self,
        X: pd.DataFrame | None = None,
        hits: pd.DataFrame | None = None,
        lines: pd.DataFrame | None = None,
        *,
        arrays: FeatureArrays | None = None,
    ):
        self._X, self._hits, self._lines = X, hits, lines
        self.arrays = arrays

    @property
    def X(self) -> pd.DataFrame:
        if self._X is None:
            a = self.arrays
            assert a is not None  # built without X: from arrays
            self._X = _frame(a.cats, dict(zip(a.names, a.mat.T)), pd.Index(a.ids, name="claim_id"))
        return self._X

    @X.setter
    def X(self, value: pd.DataFrame) -> None:
        self._X = value

    @property
    def hits(self) -> pd.DataFrame:
        if self._hits is None:
            a = self.arrays
            assert a is not None  # built without hits: from arrays
            self._hits = hits_frame(a.hit_groups, a.ids)
        return self._hits

    @hits.setter
    def hits(self, value: pd.DataFrame) -> None:
        self._hits = value

    @property
    def lines(self) -> pd.DataFrame:
        if self._lines is None:
            a = self.arrays
            assert a is not None  # built without lines: from arrays
            self._lines = pd.DataFrame(a.la)
        return self._lines

    @lines.setter
    def lines(self, value: pd.DataFrame) -> None:
        self._lines = value

    def __repr__(self) -> str:
        return f"FeatureResult(X={self.X!r}, hits={self.hits!r}, lines={self.lines!r})"


_CLAIM_STR_COLUMNS = (
    "claim_id",
    "claim_type",
    "frequency_code",
    "patient_id",
    "payer_id",
    "billing_npi",
    "place_of_service",
)


def _read_small(claims: pd.DataFrame, cache: dict) -> None:
    """A few claims: their string columns read once into plain object arrays (``as_str`` values); columns
    without missing values are noted in ``cache["_clean"]`` (there ``string_objects`` gives the same)."""
    clean = cache.setdefault("_clean", set())
    for c in (*_CLAIM_STR_COLUMNS, "plan_type"):
        if c in cache:
            continue
        s = column(claims, c)
        vals = small_values(s)
        if vals is not None:
            cache[c] = np.array([v if type(v) is str else str(v) for v in vals], dtype=object)  # = as_str(s)
            clean.add(c)
        else:
            cache[c] = as_str(s)


def _coverage_small(state: HistoryState, patient_ids: np.ndarray) -> CoverageArrays | None:
    """The coverage spans of a few patients as arrays, from a per-state index built once (the state's
    coverage does not change online)."""
    cov = state.coverage
    if cov is None:
        return None
    got = state.__dict__.get("_coverage_arrays")
    if got is None or got[0] is not cov:
        got = (cov, CoverageArrays(cov))
        state.__dict__["_coverage_arrays"] = got
    return got[1].of_patients(patient_ids.tolist())


def warm_up(state: HistoryState) -> None:
    """Build the state's lookups that scoring a first claim would otherwise build (hash tables of keys, the
    coverage spans by patient): a service does this before it takes requests."""
    state.warm_up()
    _coverage_small(state, np.zeros(0, dtype=object))


#: these lines' keys are dropped from the per-call cache after a batch (recomputed if the claims are recorded)
_LINE_KEYS = (
    "samekey",
    "dupkey",
    "code_id",
    "lp",
    "proc_dx",
    "proc_pos",
    "proc_plan",
    "proc_dx1",
    "spec_proc",
    "spec_proc_dx1",
    "_keys_added",
)


@dataclass(frozen=True)
class _Plan:
    """What running a list of families needs besides the families (built once per family list)."""

    #: per family: the tables no later family reads (a batch drops them after it)
    done: list[tuple[str, ...]]
    #: the numeric columns in table order
    numeric: tuple[str, ...]
    #: the columns rounded to ``ROUND`` digits, and their positions in ``numeric``
    rounded: tuple[str, ...]
    rounded_at: np.ndarray


@functools.lru_cache(maxsize=8)
def _plan(families: tuple) -> _Plan:
    last_reader = {t: i for i, fam in enumerate(families) for t in fam.TABLES}
    done = [tuple(t for t in fam.TABLES if last_reader[t] == i) for i, fam in enumerate(families)]
    numeric = tuple(table_columns(list(families)))
    rounded = tuple(c for fam in families for c in fam.ROUNDED)
    at = {c: j for j, c in enumerate(numeric)}
    return _Plan(done, numeric, rounded, np.array([at[c] for c in rounded], dtype=np.intp))


def _run_families(ctx: Context, families: list) -> tuple[dict[str, np.ndarray], list[str], np.ndarray | dict]:
    """(categorical columns in :data:`CATEGORICAL` order, the numeric column names in table order, their
    values) of every family; history columns rounded to ``ROUND`` digits. The values: for small inputs one
    float matrix (a claim per row, a column per name), else a dict of columns."""
    plan = _plan(tuple(families))
    out: dict[str, np.ndarray] = {}
    for fam, release in zip(families, plan.done):
        out.update(fam.compute(ctx))
        if ctx.big:
            for t in release:
                ctx.release(t)
    ctx.clear()
    cats = {c: out[c] for c in CATEGORICAL if c in out}
    names = list(plan.numeric)
    if ctx.small:  # straight into the model matrix, one rounding pass (same numbers, fewer numpy calls)
        mat = np.empty((ctx.n, len(names)))
        for j, k in enumerate(names):
            mat[:, j] = out[k]
        at = plan.rounded_at
        mat[:, at] = np.round(mat[:, at], ROUND)
        return cats, names, mat
    for k in plan.rounded:
        out[k] = np.round(np.asarray(out[k], dtype=np.float64), ROUND)
    if ctx.big:
        for k in _LINE_KEYS:
            ctx.cache.pop(k, None)
        release_memory()
    return cats, names, {c: out.pop(c) for c in names}


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
    families: list | None = None,
) -> FeatureResult:
    """Features of ``claims`` (typed contract frames) against ``state``.

    ``order`` gives each claim's place in submission order (default: after everything in the state,
    in row order). With ``record`` the claims are added to the state afterwards. ``cache`` (optional)
    holds per-call arrays (string keys of claims and lines) shared with the state building.
    ``families``: the feature families to compute (default: :func:`features.families.registry`).
    """
    rulebook = rulebook or load_rulebook()
    claims = range_indexed(claims)
    lines = range_indexed(lines)
    cache = {} if cache is None else cache
    small = len(claims) <= SMALL
    if order is None:
        order = state.next_order + np.arange(len(claims), dtype=np.int64)
    if small:
        _read_small(claims, cache)
    for c in _CLAIM_STR_COLUMNS:
        if c not in cache:
            cache[c] = as_str(column(claims, c))
    la_in = la
    la = prepare_line_arrays(claims, lines, rulebook, cache["claim_type"]) if la is None else la
    specialty = state.specialty_for(claims, cache if small else None)
    coverage = _coverage_small(state, cache["patient_id"]) if small else state.coverage_for(claims["patient_id"])
    ctx = Context(claims, lines, la, rulebook, coverage, state.tables, specialty, order, cache)
    cats, names, f = _run_families(ctx, registry() if families is None else families)
    hit_groups = [ctx.claim_hits, ctx.history_hits]
    if isinstance(f, np.ndarray):
        if la_in is None:
            # frames are built only if read (FeatureResult): the scorer works from the arrays
            arrays = FeatureArrays(ids=cache["claim_id"], cats=cats, names=names, mat=f, hit_groups=hit_groups, la=la)
            if record:
                state.add_claims(claims, lines, la, order, cache)
            return FeatureResult(arrays=arrays)
        f = dict(zip(names, f.T))
    X = _frame(cats, f, pd.Index(cache["claim_id"], name="claim_id"))
    hits = hits_frame(hit_groups, cache["claim_id"])
    if la_in is None:
        la = pd.DataFrame(la)
    if record:
        state.add_claims(claims, lines, la, order, cache)
    return FeatureResult(X=X, hits=hits, lines=la)


def build_feature_table(
    history: History, rulebook: Rulebook | None = None, state: HistoryState | None = None
) -> tuple[FeatureResult, HistoryState]:
    """Features of every claim of ``history`` as known on its submission date, and the full state."""
    rulebook = rulebook or load_rulebook()
    claims = history.claims.reset_index(drop=True)
    lines = history.claim_lines.reset_index(drop=True)
    order = submission_order(claims)
    la = prepare_lines(claims, lines, rulebook)
    cache: dict = {}
    if state is None:
        h = History(
            claims=claims,
            claim_lines=lines,
            coverage=history.coverage,
            providers=history.providers,
            recoupments=history.recoupments,
        )
        state = HistoryState.from_history(h, rulebook, order=order, la=la, cache=cache)
    result = compute_features(claims, lines, state, rulebook, order=order, la=la, cache=cache)
    return result, state


def select_claims(history: History, claim_ids: pd.Index | np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The claims and lines of ``history`` with these ids (in the given order)."""
    ids = pd.Index(np.asarray(claim_ids).astype(str))
    c = history.claims.set_index(history.claims["claim_id"].astype(str)).loc[ids].reset_index(drop=True)
    lines = history.claim_lines[history.claim_lines["claim_id"].astype(str).isin(ids)]
    return c, lines.reset_index(drop=True)
