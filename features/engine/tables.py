"""The history tables: event rows of claims and recoupments (:func:`claim_events`,
:func:`recoupment_events`) keyed by entity (provider, patient, payer, specialty, procedure, all) or by
integer line keys (:class:`KeyCoder`, :func:`line_keys`), assembled into
:class:`~features.engine.events.EventTable` s (:func:`build_tables`). Families query them at each
claim's own time (point in time).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import CAUSES
from features.engine.arrays import as_str, column, small_cached
from features.engine.events import (
    PHASE_CLAIM,
    PHASE_RECOUPMENT,
    EventTable,
    Vocab,
    day_number,
    encode_time,
    pack,
    release_memory,
)
from features.engine.lines import line_arrays, line_dx_families, main_procedures, principal_families

CLAIM_COLS = ["n_claims", "charge", "n_lines", "em_lines", "em_high", "mod59_lines", "em_level_sum"]
RECOUP_COLS = ["n_recouped", "recouped_amount"] + [f"rc_{c}" for c in CAUSES]
ENTITY_COLS = CLAIM_COLS + RECOUP_COLS
ENTITIES = ("provider", "patient", "payer", "specialty", "procedure", "all")
#: entities of a claim kept in the state's claim keys (recoupments are attributed to them)
KEYED_ENTITIES = ("provider", "patient", "payer", "specialty", "procedure")


def claim_entity_keys(
    claims: pd.DataFrame, specialty: np.ndarray, cache: dict | None = None, la=None
) -> dict[str, np.ndarray]:
    """The entity keys of each claim (the main procedure needs the line frame ``la`` or the cache)."""
    n = len(claims)
    cache = cache if cache is not None else {}
    for c in ("billing_npi", "patient_id", "payer_id"):
        if c not in cache:
            cache[c] = as_str(column(claims, c))
    if "main_procedure" not in cache:
        if la is None:
            raise ValueError("claim_entity_keys needs the claims' lines for the main procedure")
        cache["main_procedure"] = main_procedures(la, n)
    return {
        "provider": cache["billing_npi"],
        "patient": cache["patient_id"],
        "payer": cache["payer_id"],
        "specialty": np.asarray(specialty, dtype=object),
        "procedure": cache["main_procedure"],
        "all": np.full(n, "all", dtype=object),
    }


def claim_days(claims: pd.DataFrame, cache: dict | None = None) -> np.ndarray:
    """Submission day numbers (read once per call for small inputs; callers must not modify them)."""
    return small_cached(cache, "_day", len(claims), lambda: day_number(column(claims, "submitted_date")))


def claim_times(claims: pd.DataFrame, order: np.ndarray, cache: dict | None = None) -> np.ndarray:
    return encode_time(claim_days(claims, cache), PHASE_CLAIM, order)


def claim_floats(claims: pd.DataFrame, cache: dict | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(total charge, has attachment, has prior auth) as floats (read once per call for small inputs)."""
    n = len(claims)
    return (
        small_cached(cache, "_total_charge", n, lambda: np.asarray(column(claims, "total_charge"), dtype=np.float64)),
        small_cached(cache, "_has_att", n, lambda: np.asarray(column(claims, "has_attachment"), dtype=float)),
        small_cached(cache, "_has_pa", n, lambda: (~pd.isna(column(claims, "prior_auth_number"))).astype(float)),
    )


#: from this many claims on, a call is a batch: search indexes are dropped after use and memory trimmed
BATCH_CLAIMS = 50_000

#: vocabularies of the components of the line tables' composite keys (and of intermediate pairs)
LINE_VOCABS = (
    "patient",
    "npi",
    "day",
    "code",
    "family",
    "pos",
    "plan",
    "specialty",
    "patient_npi",
    "sameday",
    "specialty_code",
)


class KeyCoder:
    """Integer keys of the line-level event tables, from one :class:`~features.engine.events.Vocab` per key
    component: e.g. the same-day key (patient, provider, day) is ``pack(id(patient, provider), id(day))``
    and the duplicate key ``pack(id(same-day key), id(code))``. Equal components give equal keys, so the
    keys identify the same events the former ``"patient|npi|day|code"`` strings did."""

    def __init__(self, vocabs: dict[str, Vocab] | None = None) -> None:
        self.vocabs = vocabs if vocabs is not None else {name: Vocab() for name in LINE_VOCABS}

    def ids(self, name: str, values, add: bool) -> np.ndarray:
        return self.vocabs[name].ids(values, add)

    def sub(self, name: str, packed: np.ndarray, add: bool) -> np.ndarray:
        """Ids of packed keys (-1 stays -1: an unseen component)."""
        ok = packed >= 0
        if ok.all():
            return self.vocabs[name].ids(packed, add)
        out = np.full(len(packed), -1, dtype=np.int64)
        out[ok] = self.vocabs[name].ids(packed[ok], add)
        return out


class Tables(dict):
    """Event tables by name, with the :class:`KeyCoder` of their integer keys (``coder``)."""

    def __init__(self, *args, coder: KeyCoder | None = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.coder = coder if coder is not None else KeyCoder()


def line_keys(
    claims: pd.DataFrame,
    lines: pd.DataFrame,
    la: pd.DataFrame,
    cache: dict | None = None,
    specialty: np.ndarray | None = None,
    coder: KeyCoder | None = None,
    add: bool = False,
) -> dict:
    """Integer keys of each line (computed once per call and shared by events and features).

    ``add`` gives unseen components new ids (recording events); otherwise their keys are -1 (found
    nowhere). Keys computed without ``add`` are recomputed when events are recorded.
    """
    L = line_arrays(la)
    if cache is not None and "samekey" in cache and (cache.get("_keys_added") or not add):
        return cache
    if coder is None:
        raise ValueError("line_keys needs the state's key coder")
    if specialty is None:
        raise ValueError("line_keys needs the claims' specialties")
    out = cache if cache is not None else {}
    ci = L["ci"]

    def claim_ids(vocab: str, col: str) -> np.ndarray:
        return coder.ids(vocab, out[col] if col in out else as_str(column(claims, col)), add)

    pn = coder.sub("patient_npi", pack(claim_ids("patient", "patient_id"), claim_ids("npi", "billing_npi")), add)
    samekey = pack(pn[ci], coder.ids("day", L["day"], add))
    del pn
    code = coder.ids("code", L["code"], add)
    out["samekey"] = samekey
    out["dupkey"] = pack(coder.sub("sameday", samekey, add), code)
    out["code_id"] = code
    lp, fam = line_dx_families(claims, lines, ci, cache)
    out["lp"], out["proc_dx"] = lp, pack(code[lp], coder.ids("family", fam, add))
    del fam
    out["proc_pos"] = pack(code, claim_ids("pos", "place_of_service")[ci])
    out["proc_plan"] = pack(code, claim_ids("plan", "plan_type")[ci])
    dx1 = coder.ids("family", principal_families(claims, cache), add)[ci]
    out["proc_dx1"] = pack(code, dx1)
    spec = coder.ids("specialty", np.asarray(specialty, dtype=object), add)[ci]
    out["spec_proc"] = pack(spec, code)
    out["spec_proc_dx1"] = pack(coder.sub("specialty_code", out["spec_proc"], add), dx1)
    out["_keys_added"] = add
    return out


def claim_events(
    claims: pd.DataFrame,
    lines: pd.DataFrame,
    la: pd.DataFrame,
    specialty: np.ndarray,
    order: np.ndarray,
    cache: dict | None = None,
    coder: KeyCoder | None = None,
) -> dict[str, tuple]:
    """Event rows contributed by claims: name -> (keys, times, values, payload). Unseen key components
    get ids in ``coder`` (the state's)."""
    L = line_arrays(la)
    ci = L["ci"]
    n = len(claims)
    t = claim_times(claims, order, cache)
    charge, has_att, has_pa = claim_floats(claims, cache)
    em = L["em_level"]
    vals = np.zeros((n, len(ENTITY_COLS)))
    vals[:, 0] = 1.0
    vals[:, 1] = charge
    vals[:, 2] = np.bincount(ci, minlength=n)
    vals[:, 3] = np.bincount(ci, weights=(em > 0).astype(float), minlength=n)
    vals[:, 4] = np.bincount(ci, weights=(em >= 4).astype(float), minlength=n)
    vals[:, 5] = np.bincount(ci, weights=(L["mod_59"] | L["mod_x"]).astype(float), minlength=n)
    vals[:, 6] = np.bincount(ci, weights=em.astype(float), minlength=n)
    out: dict[str, tuple] = {}
    for name, keys in claim_entity_keys(claims, specialty, cache, la).items():
        out[name] = (keys, t, vals, None)
    # line-level keys
    lk = line_keys(claims, lines, la, cache, specialty, coder, add=True)
    tl = t[ci]
    ones = np.ones((len(L["ci"]), 1))
    if "claim_id" not in lk:
        lk["claim_id"] = as_str(claims["claim_id"])  # kept in the cache: one set of id strings per call
    cid = lk["claim_id"]
    out["dup"] = (lk["dupkey"], tl, ones, cid[ci])
    # same-day lines: the code (id) and modifier bypass ride along as values, the claim id as payload
    out["sameday"] = (
        lk["samekey"],
        tl,
        np.column_stack([ones[:, 0], lk["code_id"], L["mod_bypass"].astype(np.float64)]),
        cid[ci],
    )
    lp = lk["lp"]
    out["proc_dx"] = (lk["proc_dx"], tl[lp], np.ones((len(lp), 1)), None)
    has_att = has_att[ci]
    has_pa = has_pa[ci]
    out["proc"] = (lk["code_id"], tl, np.column_stack([np.ones(len(ci)), has_att]), None)
    out["proc_pos"] = (lk["proc_pos"], tl, ones, None)
    out["proc_plan"] = (lk["proc_plan"], tl, np.column_stack([np.ones(len(ci)), has_pa]), None)
    out["proc_dx1"] = (lk["proc_dx1"], tl, ones, None)
    out["spec_proc"] = (lk["spec_proc"], tl, ones, None)
    out["spec_proc_dx1"] = (lk["spec_proc_dx1"], tl, ones, None)
    return out


def recoupment_events(rec: pd.DataFrame, claim_keys: pd.DataFrame) -> dict[str, tuple]:
    """Event rows contributed by recoupments, keyed by the recouped claim's entities.

    ``claim_keys`` is indexed by claim_id with columns provider, patient, payer, specialty.
    """
    rec = rec[rec["claim_id"].astype(str).isin(claim_keys.index)]
    n = len(rec)
    keys = claim_keys.loc[rec["claim_id"].astype(str).to_numpy()]
    t = encode_time(day_number(rec["recouped_date"]), PHASE_RECOUPMENT, 0)
    vals = np.zeros((n, len(ENTITY_COLS)))
    k = len(CLAIM_COLS)
    vals[:, k] = 1.0
    vals[:, k + 1] = rec["recouped_amount"].to_numpy(dtype=np.float64)
    cause = rec["cause"].astype(str).to_numpy()
    for j, c in enumerate(CAUSES):
        vals[:, k + 2 + j] = cause == c
    out = {}
    for name in KEYED_ENTITIES:
        if name in keys.columns:
            out[name] = (keys[name].to_numpy(dtype=object), t, vals, None)
    out["all"] = (np.full(n, "all", dtype=object), t, vals, None)
    return out


_RC = [f"rc_{c}" for c in CAUSES]
#: the columns each entity table keeps (those its features read; events carry all ENTITY_COLS)
ENTITY_TABLE_COLS = {
    "all": ["n_claims", "n_recouped", *_RC],
    "payer": ["n_claims", "n_recouped", *_RC],
    "patient": ["n_claims", "n_recouped", "rc_eligibility"],
    "procedure": ["n_claims", "n_recouped", *_RC],
    "provider": [c for c in ENTITY_COLS if c != "recouped_amount"],
    "specialty": [c for c in ENTITY_COLS if c != "recouped_amount"],
}
_ENTITY_COL_POS = {e: [ENTITY_COLS.index(c) for c in cols] for e, cols in ENTITY_TABLE_COLS.items()}


def table_values(name: str, vals: np.ndarray) -> np.ndarray:
    """The columns of event values (ENTITY_COLS wide for entity tables) that table ``name`` keeps."""
    pos = _ENTITY_COL_POS.get(name)
    if pos is None or vals.shape[1] == len(pos):
        return vals
    return vals[:, pos]


TABLE_COLUMNS = {
    **ENTITY_TABLE_COLS,
    "dup": ["n"],
    "sameday": ["n", "code", "bypass"],
    "proc_dx": ["n"],
    "proc": ["n", "att"],
    "proc_pos": ["n"],
    "proc_plan": ["n", "pa"],
    "proc_dx1": ["n"],
    "spec_proc": ["n"],
    "spec_proc_dx1": ["n"],
}


def build_tables(parts: list[dict[str, tuple]], coder: KeyCoder | None = None) -> Tables:
    """Assemble event tables from several event-row dicts (claims, recoupments), one table at a time;
    each table's rows are dropped from ``parts`` once it is built (memory)."""
    tables = Tables(coder=coder)
    for name, cols in TABLE_COLUMNS.items():
        got = [p.pop(name) for p in parts if name in p]
        keys = np.concatenate([g[0] for g in got]) if got else np.zeros(0, dtype=object)
        times = np.concatenate([g[1] for g in got]) if got else np.zeros(0, dtype=np.int64)
        vals = np.vstack([table_values(name, g[2]) for g in got]) if got else np.zeros((0, len(cols)))
        pays = [g[3] for g in got if g[3] is not None]
        payload = np.concatenate(pays) if pays and len(pays) == len(got) else None
        del got, pays
        tables[name] = EventTable.build(cols, keys, times, vals, payload)
        del keys, times, vals, payload
    release_memory()
    return tables
