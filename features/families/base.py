"""What a feature family is (:class:`Family`) and what it computes from (:class:`Context`).

A family module declares ``NAME``, the feature ``COLUMNS`` it owns, the ``RULES`` (rule-hit names) it
emits, the history ``TABLES`` it queries, the ``ROUNDED`` columns (point-in-time values, rounded to
:data:`ROUND` digits so batch and online sums agree), and two functions:

- ``compute(ctx) -> dict[str, np.ndarray]``: its columns (one value per claim), appending rule-hit parts
  to ``ctx.claim_hits`` (findings on the claim alone) or ``ctx.history_hits`` (findings against the
  history);
- ``reason(x, claim, hits, ref) -> str | None``: the sentence of its reason for one claim (``x`` the
  feature row as a dict, ``claim`` the claim's fields, ``hits`` the claim's hits as :func:`hit_dicts`
  gives them, ``ref`` the typical value of each feature: :data:`Reference`), or None when the family
  states no fact that raises the risk (a sentence is checked against its features: :func:`above`);

and, when it emits rules, ``hit_text(hit, plan) -> str``: the sentence of one hit (``plan``: the
claim's plan type).

Intermediates several families read (line code ids, entity sums, the same-day lookup, ...) are
methods of :class:`Context`, computed once per call.
"""

from __future__ import annotations

from typing import Callable, Mapping, Protocol

import numpy as np
import pandas as pd

from features.engine.arrays import (
    SMALL,
    as_str,
    column,
    group_max,
    group_min,
    group_sum,
    rate,
    small_cached,
    string_objects,
)
from features.engine.lines import line_arrays, separate_procedures
from features.engine.tables import (
    BATCH_CLAIMS,
    claim_days,
    claim_entity_keys,
    Tables,
    claim_times,
    line_keys,
)
from features.rulebook import Rulebook
from features.rulebook.index import RuleIndex, rule_index

#: history features are rounded to this many digits (point-in-time sums: the same in batch and online)
ROUND = 9
#: the typical value of each numeric feature: its median on the model's train slice (bundle meta
#: ``feature_reference``); empty for a bundle without it, and then no sentence that needs a comparison is said
Reference = Mapping[str, float]
#: a count, rate or share raises the risk when it is at least this multiple of its typical value
RAISES = 1.3
#: a pairing (a diagnosis with a procedure, a procedure at a place of service) on fewer than this share of
#: peers' claims is rare
RARE_SHARE = 0.05
#: support shares (peers' claims for a procedure with ...) need this many peer claims of the procedure
MIN_SUPPORT_COUNT = 20


class Family(Protocol):
    """A feature family module (see the module docstring)."""

    NAME: str
    COLUMNS: tuple[str, ...]
    RULES: tuple[str, ...]
    TABLES: tuple[str, ...]
    ROUNDED: tuple[str, ...]

    def compute(self, ctx: "Context") -> dict[str, np.ndarray]: ...

    def reason(self, x: dict, claim: dict, hits: dict[str, list[dict]], ref: "Reference") -> str | None: ...


class Context:
    """Everything a family computes from, for one call of :func:`features.pipeline.compute_features`.

    ``claims``/``lines``: the typed contract frames (index 0..n-1); ``la``: the line helper frame or
    dict (:func:`features.engine.lines.prepare_line_arrays`), ``L`` its arrays, ``ci`` each line's claim
    position; ``coverage``: spans of the claims' patients (frame or
    :class:`~features.engine.coverage.CoverageArrays`, or None); ``tables``: the state's event tables;
    ``specialty``: each claim's provider specialty; ``order``: each claim's place in submission order;
    ``cache``: per-call arrays (string columns of the claims, line keys) shared with the state.
    """

    def __init__(
        self,
        claims: pd.DataFrame,
        lines: pd.DataFrame,
        la,
        rulebook: Rulebook,
        coverage,
        tables: Tables,
        specialty: np.ndarray,
        order: np.ndarray,
        cache: dict,
    ) -> None:
        self.claims, self.lines, self.la = claims, lines, la
        self.L = line_arrays(la)
        self.ci = self.L["ci"]
        self.n = len(claims)
        self.small = self.n <= SMALL
        #: a batch: search indexes are dropped once no family needs them (memory)
        self.big = self.n >= BATCH_CLAIMS
        self.rulebook, self.coverage, self.tables = rulebook, coverage, tables
        self.specialty, self.order, self.cache = specialty, order, cache
        self.claim_hits: list[dict] = []
        self.history_hits: list[dict] = []
        self._memo: dict = {}
        self._entities: dict[str, dict[str, np.ndarray]] = {}  # entity table -> its sums (column -> array)
        self._rates: dict[str, np.ndarray] = {}  # entity "all" column -> overall rate, NaN -> 0
        self._lines: dict[tuple[str, str], np.ndarray] = {}  # (line table, line keys) -> sums

    def shared(self, key: str, make: Callable):
        """``make()`` computed once per call (an intermediate several families read)."""
        got = self._memo.get(key)
        if got is None:
            got = self._memo[key] = make()
        return got

    # ------------------------------------------------------------------ the claims
    def text(self, col: str) -> np.ndarray:
        """A claim string column as str objects (read once per call)."""
        got = self.cache.get(col)
        return got if got is not None else as_str(column(self.claims, col))

    def categorical(self, col: str) -> np.ndarray:
        """A categorical model input as the claims hold it (missing -> pd.NA)."""
        if col in self.cache.get("_clean", ()):
            return self.cache[col]
        return string_objects(column(self.claims, col))

    def charge(self) -> np.ndarray:
        return small_cached(
            self.cache,
            "_total_charge",
            self.n,
            lambda: np.asarray(column(self.claims, "total_charge"), dtype=np.float64),
        )

    def paperwork(self) -> tuple[np.ndarray, np.ndarray]:
        """(has attachment, has prior authorization) as floats."""
        n, c = self.n, self.claims
        return (
            small_cached(self.cache, "_has_att", n, lambda: np.asarray(column(c, "has_attachment"), dtype=float)),
            small_cached(self.cache, "_has_pa", n, lambda: (~pd.isna(column(c, "prior_auth_number"))).astype(float)),
        )

    @property
    def ri(self) -> RuleIndex:
        return rule_index(self.rulebook)

    def code_ids(self) -> np.ndarray:
        """The rulebook vocabulary id of each line's code (-1 unknown)."""
        return self.shared("code_ids", lambda: self.ri.code_ids(self.L["code"]))

    def service_days(self) -> tuple[np.ndarray, np.ndarray]:
        """(first, last) service day of each claim."""
        return self.shared(
            "service_days",
            lambda: (group_min(self.ci, self.L["day"], self.n), group_max(self.ci, self.L["day"], self.n, empty=0.0)),
        )

    def total_units(self) -> np.ndarray:
        return self.shared("total_units", lambda: group_sum(self.ci, self.L["units"], self.n))

    def procedure_lines(self) -> np.ndarray:
        """Lines per claim that are procedures in their own right (not E/M, minor services or add-ons)."""
        return self.shared(
            "procedure_lines",
            lambda: group_sum(self.ci, separate_procedures(self.L["code"], self.rulebook).astype(float), self.n),
        )

    # ------------------------------------------------------------------ the history
    def times(self) -> np.ndarray:
        """Each claim's event time (its submission day and order)."""
        got = self._memo.get("times")  # hot accessors check the memo before building a closure
        if got is None:
            got = self._memo["times"] = claim_times(self.claims, self.order, self.cache)
        return got

    def day(self) -> np.ndarray:
        return claim_days(self.claims, self.cache)

    def keys(self) -> dict[str, np.ndarray]:
        """The claims' entity keys (provider, patient, payer, specialty, procedure, all)."""
        got = self._memo.get("keys")
        if got is None:
            got = self._memo["keys"] = claim_entity_keys(self.claims, self.specialty, self.cache, self.la)
        return got

    def entity(self, e: str) -> dict[str, np.ndarray]:
        """The sums of entity table ``e`` before each claim (column name -> array)."""
        got = self._entities.get(e)
        if got is None:
            cols = self.tables[e].columns
            sums = self.tables[e].query(self.keys()[e], self.times())[0]
            got = self._entities[e] = {c: sums[:, j] for j, c in enumerate(cols)}
        return got

    def overall_rate(self, col: str = "n_recouped") -> np.ndarray:
        """Share of all earlier claims recouped (``col``: overall or ``rc_<cause>``), NaN -> 0."""
        got = self._rates.get(col)
        if got is None:
            g = self.entity("all")
            got = self._rates[col] = np.nan_to_num(rate(g[col], g["n_claims"]))
        return got

    def specialty_rate(self) -> np.ndarray:
        """The specialty's recoupment rate, smoothed toward the overall rate (10 pseudo-claims)."""

        def make():
            sp = self.entity("specialty")
            return rate(sp["n_recouped"] + 10 * self.overall_rate(), sp["n_claims"] + 10)

        return self.shared("specialty_rate", make)

    def line_keys(self) -> dict:
        """Integer keys of each line in the state's line tables (see :func:`features.engine.tables.line_keys`)."""
        got = self._memo.get("line_keys")
        if got is None:
            coder = getattr(self.tables, "coder", None)
            got = self._memo["line_keys"] = line_keys(
                self.claims, self.lines, self.la, self.cache, self.specialty, coder
            )
        return got

    def claim_ids(self) -> np.ndarray:
        lk = self.line_keys()
        return lk["claim_id"] if "claim_id" in lk else as_str(column(self.claims, "claim_id"))

    def line_query(self, table: str, keys: str) -> np.ndarray:
        """Sums of line table ``table`` before each line's claim, by the line keys ``keys`` (once per call)."""
        got = self._lines.get((table, keys))
        if got is None:
            lk = self.line_keys()
            times = self.times()[self.ci]
            if keys == "proc_dx":  # keyed per (line, diagnosis family): at the lines ``lp``
                times = times[lk["lp"]]
            got = self._lines[table, keys] = self.tables[table].query(lk[keys], times)[0]
        return got

    def sameday(self) -> tuple:
        """Earlier same-day lines (same patient, provider and service date) of each line:
        (prior line counts per line, (line positions, their claim ids, values [n, code, bypass]) of the
        earlier lines of other claims, or None, and the counts of the claim's own previous version's
        lines per claim, or None)."""
        return self.shared("sameday", self._sameday)

    def _sameday(self) -> tuple:
        ci, n = self.ci, self.n
        lk = self.line_keys()
        tab = self.tables["sameday"]
        tl = self.times()[ci]
        cnt, latest = tab.query(lk["samekey"], tl, columns=[0])
        has = cnt[:, 0] > 0
        if len(ci) == 0 or not has.any():
            return cnt[:, 0], None, None
        hq = np.flatnonzero(has)
        # every earlier same-day line (delta of online additions included): claim id, code id, bypass
        qi, o_claim, ev = tab.payloads_before(lk["samekey"][hq], tl[hq], latest[hq], values=True)
        qi = hq[qi]
        if len(qi) == 0:
            return cnt[:, 0], None, None
        o_claim = np.asarray(o_claim, dtype=object)
        mine = o_claim == self.claim_ids()[ci[qi]]
        own = None
        if mine.any():  # the claim's own previous version (a replacement) is not an earlier same-day claim
            own = np.bincount(ci[qi[mine]], weights=ev[mine, 0], minlength=n)
            qi, o_claim, ev = qi[~mine], o_claim[~mine], ev[~mine]
            if len(qi) == 0:
                return cnt[:, 0], None, own
        return cnt[:, 0], (qi, o_claim, ev), own

    def release(self, table: str) -> None:
        """A batch no longer needs ``table``: drop its search index and what was read from it."""
        if table in self.tables:
            self.tables[table].release_index()
        self._memo.pop(table, None)
        self._entities.pop(table, None)
        for k in [k for k in self._lines if k[0] == table]:
            del self._lines[k]

    def clear(self) -> None:
        """Drop every shared intermediate (the families are done)."""
        for m in (self._memo, self._entities, self._rates, self._lines):
            m.clear()


# ---------------------------------------------------------------------- hits, for the sentences
def hit_dicts(hits: pd.DataFrame) -> dict[str, list[dict]]:
    """Hit rows as dicts grouped by claim_id (cheap for a few rows; no per-row Series)."""
    cols = list(hits.columns)
    data = [hits[c].tolist() for c in cols]
    out: dict[str, list[dict]] = {}
    ci = cols.index("claim_id")
    for row in zip(*data):
        out.setdefault(str(row[ci]), []).append(dict(zip(cols, row)))
    return out


def num(x: Mapping, col: str) -> float:
    """A feature value as a float (NaN when missing or not a number)."""
    v = x.get(col)
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
    return f


def above(x: Mapping, ref: Mapping, col: str, factor: float = RAISES) -> tuple[float, float] | None:
    """(value, typical value) when feature ``col`` is at least ``factor`` times its typical value (and above
    zero); None otherwise, and when either is unknown."""
    v, r = num(x, col), num(ref, col)
    if np.isnan(v) or np.isnan(r) or v <= 0 or v < factor * r:
        return None
    return v, r


def hits_of(hits, claim_id: str, rule: str) -> list[dict]:
    """The hits of one claim and rule (``hits`` a frame or the output of :func:`hit_dicts`)."""
    if isinstance(hits, pd.DataFrame):
        hits = hit_dicts(hits[hits["claim_id"] == claim_id])
    return [h for h in hits.get(claim_id, ()) if h["rule"] == rule]
