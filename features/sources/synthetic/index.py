"""Integer-indexed arrays of the synthetic catalog, joined with the real CMS rulebook.

Everything the vectorized generator needs is an array indexed by a small integer id: procedure
codes (fee, kind, MUE, PTP matrix), visit templates (slots, alternatives, code combos), diagnosis
families and payers. Built once per process (:func:`catalog_arrays`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from features.rulebook import PTP_BYPASS_MODIFIERS, load_rulebook
from features.sources.synthetic.catalog import (
    BYPASS_MODIFIERS,
    CAUSE_EMPHASIS,
    COMORBIDITIES,
    DX_FAMILIES,
    DX_TRUNCATED,
    FEES,
    KIND_RISK,
    MODIFIERS,
    NEEDS_ATTACHMENT,
    NEEDS_PRIOR_AUTH,
    PAYERS,
    PLAN_MIX,
    PROCEDURE_KINDS,
    ROUTINE_MODIFIER,
    SPECIALTIES,
    STATES,
    Slot,
    Visit,
)
from features.contract import CAUSES, PLAN_TYPES

#: PTP rows deleted before this date never apply to generated service dates
DATA_FROM = 20200101
#: edits the generator injects must stay in force through this date
DATA_UNTIL = 20301231


@dataclass
class CatalogArrays:
    """Arrays over codes (``V``), specialties (``S``), visits, slots, alternatives, diagnoses, payers."""

    codes: np.ndarray  # (V,) str
    fee: np.ndarray
    kind_risk: np.ndarray
    is_procedure: np.ndarray
    is_level_code: np.ndarray
    is_em: np.ndarray  # evaluation & management codes (99xxx): bypassed with modifier 25
    units_lo: np.ndarray
    units_hi: np.ndarray
    routine_mod: np.ndarray  # (V,) modifier id (0 = none)
    needs_attachment: np.ndarray  # (V,) bool
    needs_pa: np.ndarray  # (V, 4 plan types) bool
    mue: np.ndarray  # (2, V) float, NaN = no edit (MUE 0 in the practitioner file is treated as none)
    mai: np.ndarray  # (2, V) int8
    ptp_any: np.ndarray  # (2, V, V) bool: some edit row for (column_1, column_2) may apply
    ptp_keys: np.ndarray  # sorted int64 ((ct * V + column_1) * V + column_2) * 1e8 + deletion YYYYMMDD
    ptp_key_mi: np.ndarray  # int8 modifier indicator per key
    ptp_mi: np.ndarray  # (2, V, V) int8: -1 none, else indicator of the edit in force throughout
    addon_ids: np.ndarray  # (A,) code ids of add-on codes with listed primaries
    addon_primary: np.ndarray  # (A, V) bool
    # specialties / visits / slots / alternatives
    spec_keys: tuple[str, ...]
    spec_taxonomy: np.ndarray
    spec_share: np.ndarray
    spec_inst_share: np.ndarray
    spec_visit_start: np.ndarray
    spec_visit_count: np.ndarray
    spec_pos: np.ndarray  # professional POS id
    spec_inst_pos: np.ndarray
    visit_weight: np.ndarray
    visit_pos: np.ndarray  # POS id or -1
    visit_fams: np.ndarray  # (NV, F) family ids, -1 padded
    visit_nfam: np.ndarray
    visit_other_fams: np.ndarray  # (NV, NF) unsupported family ids, -1 padded
    visit_nother: np.ndarray
    visit_slot_start: np.ndarray
    visit_slot_count: np.ndarray
    slot_p: np.ndarray
    slot_level: np.ndarray
    slot_alt_start: np.ndarray
    slot_alt_count: np.ndarray
    alt_weight: np.ndarray
    alt_combo_start: np.ndarray
    alt_combo_len: np.ndarray
    combo_codes: np.ndarray
    # per (claim type, specialty, code): NCCI column-2 partners an unbundler may add
    partner_start: np.ndarray  # (2, S, V)
    partner_count: np.ndarray
    partners: np.ndarray
    spec_addons: list[np.ndarray]
    # diagnoses
    dx_codes: np.ndarray  # (D,) str
    fam_names: tuple[str, ...]
    fam_codes: np.ndarray  # (NF, K) dx ids, -1 padded
    fam_ncodes: np.ndarray
    fam_trunc: np.ndarray  # (NF,) dx id of a truncated category code, -1 none
    comorbid: np.ndarray  # (prime,) dx ids
    # places of service and modifiers
    pos_codes: tuple[str, ...]
    mod_codes: tuple[str, ...]
    bypass_mod_ids: np.ndarray
    ptp_bypass_mask: np.ndarray  # (n_mod,) bool: modifier bypasses a PTP edit with indicator 1
    mod25: int
    mod95: int
    mod26: int
    # payers
    payer_ids: tuple[str, ...]
    payer_plan: np.ndarray  # plan type index into PLAN_TYPES
    payer_state: np.ndarray  # state index, -1 national
    payer_ratio: np.ndarray
    payer_audit: np.ndarray  # (P, 8) audit intensity by cause
    #: effective date (YYYYMMDD) per PTP key, for edits a world adds mid-history; None: every key in force
    ptp_key_from: np.ndarray | None = None

    @property
    def n_codes(self) -> int:
        return len(self.codes)


DATE_SHIFT = np.int64(100_000_000)


def ymd(days_since_epoch: np.ndarray) -> np.ndarray:
    """``datetime64[D]`` (or days since 1970-01-01) as int64 ``YYYYMMDD``."""
    d = np.asarray(days_since_epoch).astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    return year * 10000 + (months.astype(np.int64) % 12 + 1) * 100 + (d - months).astype(np.int64) + 1


def ptp_indicator(
    cat: "CatalogArrays", ct: np.ndarray, c1: np.ndarray, c2: np.ndarray, dates: np.ndarray
) -> np.ndarray:
    """Modifier indicator of the PTP edit in force on each service date (-1 none), like
    ``Rulebook.ptp_lookup`` (the row with the earliest deletion date on or after the date)."""
    V = cat.n_codes
    pair = (ct.astype(np.int64) * V + c1) * V + c2
    pos = np.searchsorted(cat.ptp_keys, pair * DATE_SHIFT + ymd(dates), side="left")
    pos = np.minimum(pos, len(cat.ptp_keys) - 1)
    hit = (cat.ptp_keys[pos] // DATE_SHIFT == pair) & (cat.ptp_keys[pos] % DATE_SHIFT >= ymd(dates))
    if cat.ptp_key_from is not None:
        hit &= cat.ptp_key_from[pos] <= ymd(dates)
    return np.where(hit, cat.ptp_key_mi[pos], -1).astype(np.int8)


@functools.lru_cache(maxsize=2)
def catalog_arrays(rulebook_dir: str | None = None) -> CatalogArrays:
    """The catalog as arrays, with MUE / PTP / add-on facts from the packaged rulebook."""
    rb = load_rulebook(rulebook_dir)
    codes = np.array(sorted(FEES), dtype=object)
    cid = {c: i for i, c in enumerate(codes)}
    V = len(codes)
    fee = np.array([FEES[c].fee for c in codes])
    kinds = [FEES[c].kind for c in codes]
    mod_codes = MODIFIERS
    mid = {m: i for i, m in enumerate(mod_codes)}

    # ---- rulebook: MUE, PTP, add-ons
    mue = np.full((2, V), np.nan)
    mai = np.zeros((2, V), dtype=np.int8)
    for ct, name in enumerate(("professional", "institutional")):
        u, a = rb.mue_lookup(codes, name)
        u = np.where(u > 0, u, np.nan)
        mue[ct], mai[ct] = u, np.where(np.isnan(u), 0, a)
    # any PTP row of the pair still in force at some point of the data period (the exact, service-date
    # aware modifier indicator comes from ``Rulebook.ptp_lookup`` on these candidates)
    ptp_any = np.zeros((2, V, V), dtype=bool)
    keys, key_mi = [], []
    ptp_mi = np.full((2, V, V), -1, dtype=np.int8)  # edit in force throughout (deletion >= DATA_UNTIL)
    for ct, name in enumerate(("professional", "institutional")):
        t = rb.table(f"ptp_{name}")
        t = t[t["column_1"].isin(cid) & t["column_2"].isin(cid) & (t["deletion_date"] >= DATA_FROM)]
        i1, i2 = t["column_1"].map(cid).to_numpy(np.int64), t["column_2"].map(cid).to_numpy(np.int64)
        ptp_any[ct, i1, i2] = True
        keys.append(((ct * V + i1) * V + i2) * DATE_SHIFT + t["deletion_date"].to_numpy().astype(np.int64))
        key_mi.append(t["modifier_indicator"].to_numpy().astype(np.int8))
        df = rb.ptp_pairs_among(set(codes), name, active_on="2024-07-01")
        df = df[df["deletion_date"] >= DATA_UNTIL]
        ptp_mi[ct, df["column_1"].map(cid).to_numpy(np.int64), df["column_2"].map(cid).to_numpy(np.int64)] = df[
            "modifier_indicator"
        ].to_numpy()
    keys_all = np.concatenate(keys)
    korder = np.argsort(keys_all, kind="stable")
    prim = rb.addon_primaries
    addon_list = [c for c in codes if prim.get(c)]
    addon_ids = np.array([cid[c] for c in addon_list], dtype=np.int64)
    addon_primary = np.zeros((len(addon_list), V), dtype=bool)
    for k, c in enumerate(addon_list):
        for p in prim[c]:
            if p in cid:
                addon_primary[k, cid[p]] = True

    # ---- places of service
    pos_set = {"11", "12", "22", "23", "24", "81", "10"}
    for s in SPECIALTIES:
        pos_set |= {s.pos, s.inst_pos} | {v.pos for v in s.visits if v.pos}
    pos_codes = tuple(sorted(pos_set))
    pid = {p: i for i, p in enumerate(pos_codes)}

    # ---- diagnoses
    fam_names = tuple(DX_FAMILIES)
    dx_all = sorted(
        {c for f in DX_FAMILIES.values() for c in f}
        | {c for t in DX_TRUNCATED.values() for c in t}
        | set(COMORBIDITIES)
    )
    dxid = {c: i for i, c in enumerate(dx_all)}
    kmax = max(len(v) for v in DX_FAMILIES.values())
    fam_codes = np.full((len(fam_names), kmax), -1, dtype=np.int64)
    for f, name in enumerate(fam_names):
        fam_codes[f, : len(DX_FAMILIES[name])] = [dxid[c] for c in DX_FAMILIES[name]]
    fam_ncodes = (fam_codes >= 0).sum(1)
    fam_trunc = np.array([dxid[DX_TRUNCATED[n][0]] if n in DX_TRUNCATED else -1 for n in fam_names])
    fid = {n: i for i, n in enumerate(fam_names)}

    # ---- templates
    level_codes: set[str] = set()
    v_rows: list[tuple[Visit, int]] = []  # (visit, its first slot row)
    s_rows: list[tuple[Slot, int]] = []  # (slot, its first alternative row)
    a_rows: list[tuple[float, int, int]] = []  # (weight, its first combo index, its code count)
    combo: list[int] = []
    spec_visit_start, spec_visit_count = [], []
    for s in SPECIALTIES:
        spec_visit_start.append(len(v_rows))
        spec_visit_count.append(len(s.visits))
        for v in s.visits:
            v_rows.append((v, len(s_rows)))
            for sl in v.slots:
                s_rows.append((sl, len(a_rows)))
                for codes_, w in sl.alts:
                    a_rows.append((w, len(combo), len(codes_)))
                    combo.extend(cid[c] for c in codes_)
                    if sl.level:
                        level_codes.update(codes_)
    nfam_max = max(len(v.families) for v, _ in v_rows)
    visit_fams = np.full((len(v_rows), nfam_max), -1, dtype=np.int64)
    visit_other = np.full((len(v_rows), len(fam_names)), -1, dtype=np.int64)
    for i, (v, _) in enumerate(v_rows):
        visit_fams[i, : len(v.families)] = [fid[f] for f in v.families]
        other = [fid[f] for f in fam_names if f not in v.families and f != "wellness"]
        visit_other[i, : len(other)] = other
    is_level = np.array([c in level_codes for c in codes])

    # ---- unbundling partners per (claim type, specialty, column-1 code)
    S = len(SPECIALTIES)
    partner_start = np.zeros((2, S, V), dtype=np.int64)
    partner_count = np.zeros((2, S, V), dtype=np.int64)
    partners: list[int] = []
    spec_addons = []
    for si, s in enumerate(SPECIALTIES):
        menu = (
            {c for v in s.visits for sl in v.slots for cs, _ in sl.alts for c in cs} | set(s.addons) | set(s.components)
        )
        m_ids = np.array(sorted(cid[c] for c in menu))
        spec_addons.append(np.array([cid[c] for c in s.addons if prim.get(c)], dtype=np.int64))
        for ct in (0, 1):
            sub = ptp_mi[ct][np.ix_(m_ids, m_ids)]
            for a_i, a in enumerate(m_ids):
                ok = (sub[a_i] >= 0) & ~(is_level[a] & is_level[m_ids])
                part = m_ids[ok]
                partner_start[ct, si, a] = len(partners)
                partner_count[ct, si, a] = len(part)
                partners.extend(part.tolist())

    # ---- payers
    plan_index = {p: i for i, p in enumerate(PLAN_TYPES)}
    payer_audit = np.array([[p.audit * CAUSE_EMPHASIS[p.plan_type].get(c, 1.0) for c in CAUSES] for p in PAYERS])
    needs_pa = np.zeros((V, len(PLAN_TYPES)), dtype=bool)
    for c, plans in NEEDS_PRIOR_AUTH.items():
        for p in plans:
            needs_pa[cid[c], plan_index[p]] = True
    assert set(PLAN_MIX) == set(PLAN_TYPES)
    return CatalogArrays(
        codes=codes,
        fee=fee,
        kind_risk=np.array([KIND_RISK[k] for k in kinds]),
        is_procedure=np.array([k in PROCEDURE_KINDS for k in kinds]),
        is_level_code=is_level,
        is_em=np.array([c.startswith("99") for c in codes]),
        units_lo=np.array([FEES[c].units_lo for c in codes]),
        units_hi=np.array([FEES[c].units_hi for c in codes]),
        routine_mod=np.array([mid[ROUTINE_MODIFIER[c]] if c in ROUTINE_MODIFIER else 0 for c in codes], dtype=np.int8),
        needs_attachment=np.array([c in NEEDS_ATTACHMENT for c in codes]),
        needs_pa=needs_pa,
        mue=mue,
        mai=mai,
        ptp_any=ptp_any,
        ptp_keys=keys_all[korder],
        ptp_key_mi=np.concatenate(key_mi)[korder],
        ptp_mi=ptp_mi,
        addon_ids=addon_ids,
        addon_primary=addon_primary,
        spec_keys=tuple(s.key for s in SPECIALTIES),
        spec_taxonomy=np.array([s.taxonomy for s in SPECIALTIES], dtype=object),
        spec_share=np.array([s.share for s in SPECIALTIES]) / sum(s.share for s in SPECIALTIES),
        spec_inst_share=np.array([s.inst_share for s in SPECIALTIES]),
        spec_visit_start=np.array(spec_visit_start),
        spec_visit_count=np.array(spec_visit_count),
        spec_pos=np.array([pid[s.pos] for s in SPECIALTIES]),
        spec_inst_pos=np.array([pid[s.inst_pos] for s in SPECIALTIES]),
        visit_weight=np.array([v.weight for v, _ in v_rows]),
        visit_pos=np.array([pid[v.pos] if v.pos else -1 for v, _ in v_rows]),
        visit_fams=visit_fams,
        visit_nfam=(visit_fams >= 0).sum(1),
        visit_other_fams=visit_other,
        visit_nother=(visit_other >= 0).sum(1),
        visit_slot_start=np.array([st for _, st in v_rows]),
        visit_slot_count=np.array([len(v.slots) for v, _ in v_rows]),
        slot_p=np.array([sl.p for sl, _ in s_rows]),
        slot_level=np.array([sl.level for sl, _ in s_rows]),
        slot_alt_start=np.array([st for _, st in s_rows]),
        slot_alt_count=np.array([len(sl.alts) for sl, _ in s_rows]),
        alt_weight=np.array([w for w, _, _ in a_rows]),
        alt_combo_start=np.array([st for _, st, _ in a_rows]),
        alt_combo_len=np.array([n for _, _, n in a_rows]),
        combo_codes=np.array(combo, dtype=np.int64),
        partner_start=partner_start,
        partner_count=partner_count,
        partners=np.array(partners, dtype=np.int64),
        spec_addons=spec_addons,
        dx_codes=np.array(dx_all, dtype=object),
        fam_names=fam_names,
        fam_codes=fam_codes,
        fam_ncodes=fam_ncodes,
        fam_trunc=fam_trunc,
        comorbid=np.array([dxid[c] for c in COMORBIDITIES]),
        pos_codes=pos_codes,
        mod_codes=mod_codes,
        bypass_mod_ids=np.array([mid[m] for m in BYPASS_MODIFIERS]),
        ptp_bypass_mask=np.array([m in PTP_BYPASS_MODIFIERS for m in mod_codes]),
        mod25=mid["25"],
        mod95=mid["95"],
        mod26=mid["26"],
        payer_ids=tuple(p.payer_id for p in PAYERS),
        payer_plan=np.array([plan_index[p.plan_type] for p in PAYERS]),
        payer_state=np.array([STATES.index(p.state) if p.state else -1 for p in PAYERS]),
        payer_ratio=np.array([p.ratio for p in PAYERS]),
        payer_audit=payer_audit,
    )
