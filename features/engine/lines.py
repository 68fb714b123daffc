"""The line helper arrays every family reads: each line's claim position ``ci``, code, E/M level,
modifier flags, MUE limit and MAI, units, charge and service day (:func:`prepare_line_arrays`), and
per-line derived keys (main procedure, diagnosis families).
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd

from features.engine.arrays import SMALL, as_str, claim_list_flat, column, days, list_flat
from features.rulebook import PTP_BYPASS_MODIFIERS, Rulebook
from features.rulebook.index import rule_index

EM_LEVEL = {
    **{f"9920{i}": i for i in range(2, 6)},
    **{f"9921{i}": i for i in range(1, 6)},
    **{f"9928{i}": i for i in range(1, 6)},
}
EM_NEW = {f"9920{i}" for i in range(2, 6)}
X_MODIFIERS = {"XE", "XS", "XP", "XU"}
_MINOR_RANGES = ((80047, 89398), (36415, 36416), (90460, 90749))


_EM_HCPCS = frozenset({"G2211", "G0438", "G0439", "G0402"})


def em_services(codes: np.ndarray) -> np.ndarray:
    """E/M services of any kind: CPT 99202-99499 (office, hospital, ED, critical care, preventive,
    prolonged) and the HCPCS E/M codes G0402, G0438, G0439 (wellness visits) and G2211 (complexity)."""
    out = np.zeros(len(codes), dtype=bool)
    for i, c in enumerate(np.asarray(codes, dtype=object).tolist()):
        out[i] = (len(c) == 5 and c.isdigit() and 99202 <= int(c) <= 99499) or c in _EM_HCPCS
    return out


def minor_services(codes: np.ndarray) -> np.ndarray:
    """Lab and pathology (80047-89398), venipuncture (36415-36416), immunizations (90460-90749):
    services that do not make an E/M with modifier 25 a separately identifiable visit."""
    out = np.zeros(len(codes), dtype=bool)
    for i, c in enumerate(np.asarray(codes, dtype=object).tolist()):
        if len(c) == 5 and c.isdigit():
            v = int(c)
            out[i] = any(lo <= v <= hi for lo, hi in _MINOR_RANGES)
    return out


def separate_procedures(codes: np.ndarray, rulebook: Rulebook) -> np.ndarray:
    """Lines that are procedures in their own right: not E/M, not a minor service, not an add-on code."""
    codes = np.asarray(codes, dtype=object)
    ids = None
    if len(codes) > SMALL:
        ids, codes = pd.factorize(codes)
        codes = np.asarray(codes, dtype=object)
    addon = rulebook.addon_primaries
    out = ~em_services(codes) & ~minor_services(codes) & ~np.array([c in addon for c in codes.tolist()], dtype=bool)
    return out if ids is None else out[ids]


def claim_index(claims: pd.DataFrame, lines: pd.DataFrame) -> np.ndarray:
    """Position in ``claims`` of each line's claim."""
    cid = np.asarray(column(claims, "claim_id"), dtype=object)
    lid = np.asarray(column(lines, "claim_id"), dtype=object)
    if len(cid) <= SMALL and len(lid) <= 4 * SMALL:
        pos = {c: i for i, c in enumerate(cid.tolist())}
        idx = np.fromiter((pos.get(c, -1) for c in lid.tolist()), dtype=np.int64, count=len(lid))
    else:
        idx = pd.Index(cid, dtype=object).get_indexer(lid)
    if (idx < 0).any():
        raise ValueError("claim_lines has lines whose claim_id is not among the claims")
    return idx


def line_attribute_arrays(lines: pd.DataFrame, claim_type: np.ndarray, rulebook: Rulebook) -> dict:
    code = as_str(column(lines, "procedure_code"))
    mods, parent = list_flat(column(lines, "modifiers"))
    n = len(lines)
    mods = np.asarray(mods, dtype=object)

    def flag(values: set[str]) -> np.ndarray:
        f = np.zeros(n, dtype=bool)
        if len(mods):
            f[parent[np.isin(mods, list(values))]] = True
        return f

    ri = rule_index(rulebook)
    ids = ri.code_ids(code)
    mue, mai = ri.mue(ids, claim_type)
    em = np.fromiter((EM_LEVEL.get(c, 0) for c in code.tolist()), dtype=np.int8, count=n)
    return {
        "code": code,
        "em_level": em,
        "em_new": np.isin(code, list(EM_NEW)),
        "mod_59": flag({"59"}),
        "mod_x": flag(X_MODIFIERS),
        "mod_25": flag({"25"}),
        "mod_76_77": flag({"76", "77"}),
        "mod_bypass": flag(set(PTP_BYPASS_MODIFIERS)),
        "n_modifiers": np.bincount(parent, minlength=n) if len(mods) else np.zeros(n, dtype=np.int64),
        "mue": mue,
        "mai": mai,
        "_code_id": ids,
    }


def prepare_lines(claims: pd.DataFrame, lines: pd.DataFrame, rulebook: Rulebook) -> pd.DataFrame:
    """Line helper frame: claim position ``ci``, code, E/M level, modifier flags, MUE, units, day."""
    return pd.DataFrame(prepare_line_arrays(claims, lines, rulebook))


def prepare_line_arrays(
    claims: pd.DataFrame, lines: pd.DataFrame, rulebook: Rulebook, claim_type: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The columns of :func:`prepare_lines` as a dict of arrays (no DataFrame built)."""
    ci = claim_index(claims, lines)
    ctype = as_str(column(claims, "claim_type")) if claim_type is None else claim_type
    la = line_attribute_arrays(lines, ctype[ci], rulebook)
    la.pop("_code_id")
    la["ci"] = ci
    la["line_number"] = np.asarray(column(lines, "line_number"))
    la["units"] = np.asarray(column(lines, "units"), dtype=np.float64)
    la["charge"] = np.asarray(column(lines, "line_charge"), dtype=np.float64)
    la["day"] = days(np.asarray(column(lines, "service_date"), dtype="datetime64[D]"))  # days since 1970
    return la


_LA_CACHE: dict[int, tuple] = {}


def line_arrays(la) -> dict[str, np.ndarray]:
    """The line helper columns as numpy arrays (``la`` a frame from :func:`prepare_lines` or already a
    dict); a frame's arrays are remembered while it lives, so each column is converted once."""
    if isinstance(la, dict):
        return la
    got = _LA_CACHE.get(id(la))
    if got is not None and got[0]() is la and got[1]["ci"].shape[0] == len(la):
        arrays = got[1]
        for c in la.columns:
            if c not in arrays:
                arrays[c] = la[c].to_numpy()
        return arrays
    arrays = {c: la[c].to_numpy(dtype=object) if c == "code" else la[c].to_numpy() for c in la.columns}
    if len(_LA_CACHE) > 8:
        _LA_CACHE.clear()
    _LA_CACHE[id(la)] = (weakref.ref(la), arrays)
    return arrays


def main_procedures(la, n: int) -> np.ndarray:
    """The procedure of each claim's highest-charge line (first line on ties)."""
    L = line_arrays(la)
    ci = L["ci"]
    main = np.full(n, None, dtype=object)
    if len(ci):
        o = np.lexsort((L["line_number"], -L["charge"], ci))
        first = o[np.r_[True, ci[o][1:] != ci[o][:-1]]]
        main[ci[first]] = L["code"][first]
    return main


def dx3(dx: np.ndarray) -> np.ndarray:
    return np.array([d[:3] for d in dx.tolist()], dtype=object) if len(dx) else np.zeros(0, dtype=object)


def line_dx_families(
    claims: pd.DataFrame, lines: pd.DataFrame, ci: np.ndarray, cache: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(line position, diagnosis family) pairs: the line's pointed diagnoses, else all claim diagnoses."""
    dx, dx_parent = claim_list_flat(claims, "diagnosis_codes", cache)
    dx = dx.astype(str)
    dx_start = np.searchsorted(dx_parent, np.arange(len(claims)))
    dx_count = np.bincount(dx_parent, minlength=len(claims))
    ptr, ptr_parent = claim_list_flat(lines, "diagnosis_pointers", cache if len(claims) <= SMALL else None)
    ptr = ptr.astype(np.int64)
    line_pos, fam = [], []
    if len(ptr):
        c = ci[ptr_parent]
        ok = (ptr >= 1) & (ptr <= dx_count[c])
        line_pos.append(ptr_parent[ok])
        fam.append(dx3(dx[dx_start[c[ok]] + ptr[ok] - 1]))
    has_ptr = np.zeros(len(lines), dtype=bool)
    if len(ptr):
        has_ptr[ptr_parent] = True
    rest = np.flatnonzero(~has_ptr)
    if len(rest):
        reps = dx_count[ci[rest]]
        lp = np.repeat(rest, reps)
        starts = np.repeat(dx_start[ci[rest]], reps)
        within = np.arange(len(lp)) - np.repeat(np.cumsum(reps) - reps, reps)
        line_pos.append(lp)
        fam.append(dx3(dx[starts + within]))
    if not line_pos:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object)
    lp = np.concatenate(line_pos)
    fm = np.concatenate(fam)
    # drop duplicate (line, family) pairs, keeping the first occurrence in order
    if len(lp) <= SMALL:
        seen: set = set()
        keep = np.zeros(len(lp), dtype=bool)
        for i, kf in enumerate(zip(lp.tolist(), fm.tolist())):
            if kf not in seen:
                seen.add(kf)
                keep[i] = True
    else:
        keep = ~pd.DataFrame({"l": lp, "f": fm}).duplicated().to_numpy()
    return lp[keep], fm[keep].astype(object)


def principal_families(claims: pd.DataFrame, cache: dict | None = None) -> np.ndarray:
    """The 3-character family of each claim's principal (first) diagnosis."""
    dx, parent = claim_list_flat(claims, "diagnosis_codes", cache)
    n = len(claims)
    out = np.full(n, "", dtype=object)
    if len(dx):
        first = np.searchsorted(parent, np.arange(n))
        ok = (first < len(parent)) & (parent[np.minimum(first, len(parent) - 1)] == np.arange(n))
        out[ok] = dx3(np.asarray(dx, dtype=object)[first[ok]].astype(str))
    return out
