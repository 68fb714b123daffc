"""Per-claim attributes and deterministic rule checks (NCCI PTP, MUE, add-on codes, ICD-10-CM, coverage).

Everything here is a function of the claims being scored, their lines, the rulebook and the patients'
coverage spans; nothing depends on other claims (that is :mod:`features.history`). Functions are
vectorized over DataFrames so one call handles one claim (the service) or millions (training).

Rule hits come back as a long frame (one row per finding) with the columns of :data:`HIT_COLUMNS`;
:mod:`serving.reasons` turns them into sentences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.rulebook import PTP_BYPASS_MODIFIERS, Rulebook

HIT_COLUMNS = ["claim_id", "rule", "line_number", "code", "other_code", "value", "limit", "ref"]
EM_LEVEL = {
    **{f"9920{i}": i for i in range(2, 6)},
    **{f"9921{i}": i for i in range(1, 6)},
    **{f"9928{i}": i for i in range(1, 6)},
}
EM_NEW = {f"9920{i}" for i in range(2, 6)}
X_MODIFIERS = {"XE", "XS", "XP", "XU"}


def _list_flat(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(values, parent row positions) of an Arrow list column."""
    arr = pa.chunked_array(s.array._pa_array).combine_chunks()  # type: ignore[attr-defined]
    if len(arr) == 0:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
    vals = pc.list_flatten(arr).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(arr).to_numpy()
    return vals, parents.astype(np.int64)


def _str(s: pd.Series) -> np.ndarray:
    return s.astype(str).to_numpy(dtype=object)


def claim_index(claims: pd.DataFrame, lines: pd.DataFrame) -> np.ndarray:
    """Position in ``claims`` of each line's claim."""
    idx = pd.Index(claims["claim_id"]).get_indexer(lines["claim_id"])
    if (idx < 0).any():
        raise ValueError("claim_lines has lines whose claim_id is not among the claims")
    return idx


def line_attributes(lines: pd.DataFrame, claim_type: np.ndarray, rulebook: Rulebook) -> pd.DataFrame:
    """Line-level helpers: E/M level, modifier flags, MUE limit and MAI."""
    code = _str(lines["procedure_code"])
    mods, parent = _list_flat(lines["modifiers"])
    n = len(lines)

    def flag(values: set[str]) -> np.ndarray:
        f = np.zeros(n, dtype=bool)
        if len(mods):
            f[parent[np.isin(mods, list(values))]] = True
        return f

    mue, mai = rulebook.mue_lookup(code, claim_type)
    em = pd.Series(code).map(EM_LEVEL).fillna(0).to_numpy(dtype=np.int8)
    return pd.DataFrame(
        {
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
        }
    )


def ptp_pairs(
    a_code: np.ndarray, a_bypass: np.ndarray, b_code: np.ndarray, b_bypass: np.ndarray,
    service_date: np.ndarray, claim_type: np.ndarray, rulebook: Rulebook,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For candidate line pairs on the same day, look up the PTP edit in both directions.

    Returns (modifier indicator or -1, column_1 is a (bool), bypassed (bool)). A pair is bypassed when
    the indicator is 1 and either line carries an NCCI-associated modifier.
    """
    ab = rulebook.ptp_lookup(a_code, b_code, service_date, claim_type)
    ba = rulebook.ptp_lookup(b_code, a_code, service_date, claim_type)
    ind = np.where(ab >= 0, ab, ba)
    a_first = ab >= 0
    bypassed = (ind == 1) & (a_bypass | b_bypass)
    return ind, a_first, bypassed


def prepare_lines(claims: pd.DataFrame, lines: pd.DataFrame, rulebook: Rulebook) -> pd.DataFrame:
    """Line helper frame: claim position ``ci``, code, E/M level, modifier flags, MUE, units, day."""
    ci = claim_index(claims, lines)
    ctype = _str(claims["claim_type"])
    la = line_attributes(lines, ctype[ci], rulebook)
    la["ci"] = ci
    la["line_number"] = lines["line_number"].to_numpy()
    la["units"] = lines["units"].to_numpy(dtype=np.float64)
    la["charge"] = lines["line_charge"].to_numpy(dtype=np.float64)
    la["day"] = lines["service_date"].to_numpy(dtype="datetime64[D]").astype(np.int64)  # days since 1970
    return la


def claim_attributes(
    claims: pd.DataFrame,
    la: pd.DataFrame,
    rulebook: Rulebook,
    coverage: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Claim-level features and rule hits (features indexed like ``claims``, hits long frame)."""
    n = len(claims)
    ci = la["ci"].to_numpy()
    ctype = _str(claims["claim_type"])
    hits: list[pd.DataFrame] = []

    def per_claim(values: np.ndarray, how: str = "sum") -> np.ndarray:
        s = pd.Series(values).groupby(ci)
        agg = getattr(s, how)()
        out = np.zeros(n) if how in ("sum", "max") else np.full(n, np.nan)
        out[agg.index.to_numpy()] = agg.to_numpy()
        return out

    f = pd.DataFrame(index=claims.index)
    charge = claims["total_charge"].to_numpy(dtype=np.float64)
    f["total_charge"] = charge
    f["n_lines"] = np.bincount(ci, minlength=n)
    f["total_units"] = per_claim(la["units"].to_numpy())
    f["max_line_units"] = per_claim(la["units"].to_numpy(), "max")
    f["max_line_charge"] = per_claim(la["charge"].to_numpy(), "max")
    f["charge_per_unit"] = charge / np.maximum(f["total_units"].to_numpy(), 1e-9)

    # E/M level and its support
    f["em_level"] = per_claim(la["em_level"].to_numpy(dtype=float), "max")
    f["em_new_patient"] = per_claim(la["em_new"].to_numpy(dtype=float), "max")
    non_em = (la["em_level"].to_numpy() == 0).astype(float)
    f["n_non_em_lines"] = per_claim(non_em)
    dx, dx_parent = _list_flat(claims["diagnosis_codes"])
    dx = dx.astype(str)
    f["n_dx"] = np.bincount(dx_parent, minlength=n)
    first = np.char.upper(np.array([d[:1] for d in dx], dtype="U1")) if len(dx) else np.zeros(0, dtype="U1")
    f["n_dx_z"] = np.bincount(dx_parent[first == "Z"], minlength=n)
    f["n_dx_r"] = np.bincount(dx_parent[first == "R"], minlength=n)
    status = rulebook.icd_status(dx) if len(dx) else np.zeros(0, dtype=np.int8)
    f["n_dx_invalid"] = np.bincount(dx_parent[status == 2], minlength=n)
    f["n_dx_truncated"] = np.bincount(dx_parent[status == 1], minlength=n)
    for rule, st in (("invalid_icd", 2), ("truncated_icd", 1)):
        m = status == st
        if m.any():
            hits.append(pd.DataFrame({"ci": dx_parent[m], "rule": rule, "code": dx[m]}))

    # Modifiers
    for col in ("mod_59", "mod_x", "mod_25", "mod_76_77"):
        f[f"has_{col}"] = per_claim(la[col].to_numpy(dtype=float), "max")
    f["n_modifiers"] = per_claim(la["n_modifiers"].to_numpy(dtype=float))
    f["mod25_without_procedure"] = ((f["has_mod_25"] > 0) & (f["n_non_em_lines"] == 0)).astype(float)

    # MUE: per line (MAI 1) or per date of service (MAI 2/3)
    units = la["units"].to_numpy()
    mue = la["mue"].to_numpy()
    day_units = la.groupby(["ci", "code", "day"], sort=False)["units"].transform("sum").to_numpy()
    applied = np.where(la["mai"].to_numpy() == 1, units, day_units)
    ratio = np.where(mue > 0, applied / np.where(mue > 0, mue, 1), np.nan)
    la["mue_ratio"] = ratio
    f["max_mue_ratio"] = per_claim(np.nan_to_num(ratio, nan=0.0), "max")
    over = np.nan_to_num(ratio, nan=0.0) > 1.0 + 1e-9
    first_over = over & ~la.assign(o=over).duplicated(["ci", "code", "day", "o"]).to_numpy()
    f["n_mue_exceeded"] = per_claim(first_over.astype(float))
    f["mue_excess_units"] = per_claim(np.where(first_over, applied - mue, 0.0))
    if first_over.any():
        m = first_over
        hits.append(pd.DataFrame({
            "ci": ci[m], "rule": "mue", "line_number": la["line_number"].to_numpy()[m],
            "code": la["code"].to_numpy()[m], "value": applied[m], "limit": mue[m],
            "ref": la["mai"].to_numpy()[m].astype(str),
        }))

    # NCCI PTP inside the claim (same service date)
    g = la[["ci", "day", "code", "mod_bypass", "line_number"]].reset_index(drop=True)
    g["li"] = np.arange(len(g))
    pairs = g.merge(g, on=["ci", "day"], suffixes=("_a", "_b"))
    pairs = pairs[pairs["li_a"] < pairs["li_b"]]
    pairs = pairs[pairs["code_a"] != pairs["code_b"]]
    for name in ("ptp_pairs", "ptp_unbypassable", "ptp_needs_modifier", "ptp_bypassed"):
        f[name] = 0.0
    if len(pairs):
        ind, a_first, bypassed = ptp_pairs(
            pairs["code_a"].to_numpy(), pairs["mod_bypass_a"].to_numpy(),
            pairs["code_b"].to_numpy(), pairs["mod_bypass_b"].to_numpy(),
            pairs["day"].to_numpy().astype("datetime64[D]"), ctype[pairs["ci"].to_numpy()], rulebook,
        )
        hit = ind >= 0
        pci = pairs["ci"].to_numpy()
        f["ptp_pairs"] = np.bincount(pci[hit], minlength=n).astype(float)
        f["ptp_unbypassable"] = np.bincount(pci[ind == 0], minlength=n).astype(float)
        f["ptp_needs_modifier"] = np.bincount(pci[(ind == 1) & ~bypassed], minlength=n).astype(float)
        f["ptp_bypassed"] = np.bincount(pci[bypassed], minlength=n).astype(float)
        m = hit & ~bypassed & (ind != 9)
        if m.any():
            col1 = np.where(a_first, pairs["code_a"].to_numpy(), pairs["code_b"].to_numpy())
            col2 = np.where(a_first, pairs["code_b"].to_numpy(), pairs["code_a"].to_numpy())
            ln2 = np.where(a_first, pairs["line_number_b"].to_numpy(), pairs["line_number_a"].to_numpy())
            hits.append(pd.DataFrame({
                "ci": pci[m], "rule": "ncci_ptp", "line_number": ln2[m], "code": col1[m],
                "other_code": col2[m], "value": ind[m].astype(float), "ref": "same claim",
            }))

    # Add-on codes without their primary on the claim
    f["n_addon_without_primary"] = 0.0
    prim = rulebook.addon_primaries
    codes = la["code"].to_numpy()
    is_addon = np.array([bool(prim.get(c)) for c in codes], dtype=bool) if len(codes) else np.zeros(0, bool)
    if is_addon.any():
        claim_codes = pd.Series(codes).groupby(ci).agg(set)
        missing = np.zeros(len(codes), dtype=bool)
        for i in np.flatnonzero(is_addon):
            missing[i] = not (prim[codes[i]] & claim_codes[ci[i]])
        f["n_addon_without_primary"] = per_claim(missing.astype(float))
        if missing.any():
            hits.append(pd.DataFrame({"ci": ci[missing], "rule": "addon_without_primary",
                                      "line_number": la["line_number"].to_numpy()[missing],
                                      "code": codes[missing]}))

    # Dates, paperwork, frequency
    first_day = per_claim(la["day"].to_numpy().astype(float), "min")
    last_day = per_claim(la["day"].to_numpy().astype(float), "max")
    sub_day = claims["submitted_date"].to_numpy(dtype="datetime64[D]").astype("int64")
    f["submission_lag_days"] = sub_day - last_day
    f["service_span_days"] = last_day - first_day
    f["has_prior_auth"] = claims["prior_auth_number"].notna().to_numpy(dtype=float)
    f["has_attachment"] = claims["has_attachment"].to_numpy(dtype=float)
    f["is_replacement"] = (claims["frequency_code"].astype(str) == "7").to_numpy(dtype=float)
    f["is_void"] = (claims["frequency_code"].astype(str) == "8").to_numpy(dtype=float)

    # Coverage on the service dates
    cov = coverage_attributes(claims, first_day, last_day, coverage)
    for c in cov.columns:
        f[c] = cov[c].to_numpy()
    out_m = cov["outside_coverage"].to_numpy() == 1
    if out_m.any():
        hits.append(pd.DataFrame({"ci": np.flatnonzero(out_m), "rule": "outside_coverage",
                                  "value": cov["days_outside_coverage"].to_numpy()[out_m],
                                  "ref": np.where(cov["covered_by_other_payer"].to_numpy()[out_m] == 1,
                                                  "other payer", "no coverage")}))

    hit_frame = finalize_hits(hits, claims)
    return f, hit_frame


def coverage_attributes(claims: pd.DataFrame, first_day: np.ndarray, last_day: np.ndarray,
                        coverage: pd.DataFrame | None) -> pd.DataFrame:
    """Whether the service dates fall in a coverage span of the billed payer (NaN without coverage data)."""
    n = len(claims)
    out = pd.DataFrame({
        "outside_coverage": np.full(n, np.nan),
        "covered_by_other_payer": np.full(n, np.nan),
        "days_outside_coverage": np.full(n, np.nan),
        "days_since_coverage_start": np.full(n, np.nan),
    })
    if coverage is None or len(coverage) == 0:
        return out
    q = pd.DataFrame({
        "ci": np.arange(n), "patient_id": claims["patient_id"].astype(str).to_numpy(),
        "payer_id": claims["payer_id"].astype(str).to_numpy(), "d0": first_day, "d1": last_day,
    })
    cv = pd.DataFrame({
        "patient_id": coverage["patient_id"].astype(str).to_numpy(),
        "cov_payer": coverage["payer_id"].astype(str).to_numpy(),
        "s": coverage["coverage_start"].to_numpy(dtype="datetime64[D]").astype("int64").astype(float),
        "e": coverage["coverage_end"].to_numpy(dtype="datetime64[D]"),
    })
    e = cv["e"].to_numpy()
    cv["e"] = np.where(np.isnat(e), 1e9, e.astype("int64").astype(float))
    m = q.merge(cv, on="patient_id", how="inner")
    if len(m) == 0:
        return out
    inside = (m["s"] <= m["d0"]) & (m["d1"] <= m["e"])
    same = m["cov_payer"] == m["payer_id"]
    # distance (days) of the service span from the span of the billed payer
    dist = np.maximum(m["s"] - m["d0"], 0) + np.maximum(m["d1"] - m["e"], 0)
    m = m.assign(inside_same=inside & same, inside_other=inside & ~same,
                 dist_same=np.where(same, dist, np.inf),
                 since=np.where(same & inside, m["d0"] - m["s"], np.nan))
    agg = m.groupby("ci").agg(inside_same=("inside_same", "max"), inside_other=("inside_other", "max"),
                              dist_same=("dist_same", "min"), since=("since", "max"))
    idx = agg.index.to_numpy()
    out.loc[idx, "outside_coverage"] = (~agg["inside_same"].to_numpy()).astype(float)
    out.loc[idx, "covered_by_other_payer"] = (
        agg["inside_other"].to_numpy() & ~agg["inside_same"].to_numpy()).astype(float)
    d = agg["dist_same"].to_numpy()
    out.loc[idx, "days_outside_coverage"] = np.where(np.isinf(d), 999.0, d)
    out.loc[idx, "days_since_coverage_start"] = agg["since"].to_numpy()
    return out


def finalize_hits(parts: list[pd.DataFrame], claims: pd.DataFrame) -> pd.DataFrame:
    """Concatenate hit parts (with a ``ci`` claim position) into the :data:`HIT_COLUMNS` frame."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in HIT_COLUMNS})
    h = pd.concat(parts, ignore_index=True)
    h["claim_id"] = claims["claim_id"].astype(str).to_numpy()[h["ci"].to_numpy()]
    for c in HIT_COLUMNS:
        if c not in h.columns:
            h[c] = None
    return h[HIT_COLUMNS + ["ci"]]
