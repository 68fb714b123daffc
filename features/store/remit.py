"""The 835 side of a store's contract view, applied when the store is read: remittances (CLP), their service lines
(SVC), adjustments (CAS) and provider-level offsets (PLB), stored raw, joined to the claims the store knows.

:func:`apply_remittances` gives ``paid_date`` / ``paid_amount`` / ``line_paid`` from the payments and the
recoupments of reversals (CLP02 = 22) and ``WO`` offsets, unioned with the contract's recoupments. It depends only
on the set of rows, never on their order (rows are sorted canonically first), so the order of ingestion cannot
matter. The rules, one by one, are in docs/x12.md "Store semantics"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Columns of the raw 835 tables as stored, with their kinds (``str``, ``float``, ``int``; ``date`` = ISO
#: ``YYYY-MM-DD`` text). Every table is partitioned by month of :data:`DATE_COLUMN`; the store adds ``_ingest`` and
#: ``_unit``. ``remittance_id`` (``<unit key>#<CLP number in the transaction>``) ties service lines and adjustments
#: to their CLP.
REMITTANCE_TYPES: dict[str, dict[str, str]] = {
    "remittances": {
        "remittance_id": "str",
        "remittance_date": "date",  # BPR16, else DTM*405, else GS04/ISA09
        "payer_id": "str",  # N1*PR N104, else REF*2U, else TRN03, else the payer name
        "claim_id": "str",  # CLP01 (= CLM01)
        "trace_number": "str",  # TRN02
        "status": "str",  # CLP02 (1/2/3/19/20/21 paid, 4 denied, 22 reversal)
        "charge": "float",  # CLP03
        "paid": "float",  # CLP04 (negative in a reversal)
        "patient_responsibility": "float",  # CLP05
        "payer_claim_number": "str",  # CLP07
        "filing_code": "str",  # CLP06
        "facility_code": "str",  # CLP08
        "frequency_code": "str",  # CLP09 as sent
        "payee_npi": "str",  # N1*PE N104 when N103 = XX
        "carc": "str",  # GROUP-REASON of the CLP's largest adjustment (payer groups before PR)
        "segment": "int",  # CLP segment number in its file
    },
    "remittance_lines": {
        "remittance_id": "str",
        "remittance_date": "date",
        "payer_id": "str",
        "claim_id": "str",
        "line_seq": "int",  # SVC order in the CLP, from 1
        "procedure_code": "str",  # SVC01-2 (paid code)
        "modifiers": "str",  # SVC01-3..6, ';'-joined
        "submitted_code": "str",  # SVC06-2 when given, else SVC01-2: matched to the claim line's procedure
        "charge": "float",  # SVC02
        "paid": "float",  # SVC03
        "units_paid": "float",  # SVC05
        "units_billed": "float",  # SVC07
        "allowed": "float",  # AMT*B6
        "service_date": "date",  # DTM*472/150
        "control_number": "str",  # REF*6R
        "remark_codes": "str",  # LQ*HE, ';'-joined
    },
    "adjustments": {
        "remittance_id": "str",
        "remittance_date": "date",
        "payer_id": "str",
        "claim_id": "str",
        "line_seq": "int",  # empty for a claim-level CAS
        "group": "str",  # CAS01
        "reason": "str",  # CARC
        "amount": "float",
        "quantity": "float",
    },
    "offsets": {
        "remittance_date": "date",  # the 835's date (PLB02 is a fiscal period end, not the offset date)
        "payer_id": "str",
        "trace_number": "str",
        "provider": "str",  # PLB01
        "reason": "str",  # PLB03-1 (WO = overpayment recovery)
        "reference": "str",  # PLB03-2: the claim (CLP01/CLM01) or the payer's claim number (CLP07)
        "amount": "float",  # positive = money taken back
        "segment": "int",
    },
}
#: Columns of the raw 835 tables as stored (every table also gets ``_ingest``, ``_unit``).
REMITTANCE_COLUMNS: dict[str, tuple[str, ...]] = {t: tuple(cols) for t, cols in REMITTANCE_TYPES.items()}
#: the date column of every raw 835 table (its month partitions the table)
DATE_COLUMN = "remittance_date"

REVERSAL = "22"
WRITE_OFF = "WO"
CONTRACT = ("claims", "claim_lines", "coverage", "providers", "recoupments")
RECOUPMENT_COLUMNS = ["claim_id", "recouped_date", "recouped_amount", "carc", "cause"]
#: what makes two CLPs the same remittance sent twice
DUPLICATE_KEY = ["payer_id", "claim_id", "payer_claim_number", "status", "charge", "paid", "date"]
#: what identifies the payment a reversal takes back (the guide repeats the original CLP07 and negates its amounts)
REVERSAL_KEY = ["payer_id", "claim_id", "payer_claim_number", "amount"]
OFFSET_KEY = ["payer_id", "provider", "reason", "reference", "amount", "date"]
COUNTS = (
    "remittances",  # CLP rows given = remittances_matched + remittances_waiting + remittances_duplicate
    "remittances_matched",  # joined to a claim of the store
    "remittances_waiting",  # their claim is not in the store (yet): kept as remittances, no claim made up
    "remittances_duplicate",  # the same CLP sent again, or a reversal of an already reversed payment
    "offsets_duplicate",  # the same PLB offset sent again
    "duplicates_skipped",  # remittances_duplicate + offsets_duplicate
    "claims_paid",
    "reversals",  # reversals (CLP02 = 22) of the store's claims, each reversed payment once
    "corrections",  # claims paid again after a reversal
    "reversals_without_payment",  # the reversed payment is not in the store: its amount stands in for it
    "recoupments_from_reversals",
    "offsets",  # WO offsets that are recoupments
    "offsets_waiting",  # WO offsets naming no claim of the store
    "offsets_settling_reversal",  # WO offsets of the same claim and amount as a reversal (not counted twice)
    "recoupments_added",  # recoupments_from_reversals + offsets
    "negative_payments",  # CLP04 < 0 outside a reversal: not a payment
    "negative_line_paid",  # matched SVC03 summing below 0: line_paid 0
    "paid_date_raised",  # payment dated before the claim's submission: paid_date = submitted_date
)


def apply_remittances(tables: dict[str, pd.DataFrame | None]) -> tuple[dict[str, pd.DataFrame | None], dict[str, int]]:
    """Contract tables with the 835 data joined in, and counts (:data:`COUNTS`, e.g. ``remittances_waiting`` for
    remittances whose claim the store has not seen yet).

    ``tables`` holds the version-resolved contract tables (``claims``, ``claim_lines``, ``recoupments``, ...) and the
    raw remittance tables (:data:`REMITTANCE_COLUMNS`; absent or empty = none); the result holds the five contract
    tables only. Claims with remittances get ``paid_date``/``paid_amount`` and their lines ``line_paid`` from them;
    other claims keep the paid values they came with (empty for 837 claims)."""
    with pd.option_context("future.infer_string", False):  # numpy object text: fast hashing (see _text)
        return _apply(tables)


def _empty(frame: pd.DataFrame | None) -> bool:
    return frame is None or not len(frame)


def _apply(tables: dict[str, pd.DataFrame | None]) -> tuple[dict[str, pd.DataFrame | None], dict[str, int]]:
    out: dict[str, pd.DataFrame | None] = {k: tables.get(k) for k in CONTRACT}
    counts = dict.fromkeys(COUNTS, 0)
    claims = out["claims"]
    remits = tables.get("remittances")
    offsets = tables.get("offsets")
    if _empty(remits) and _empty(offsets):  # nothing to join (a store of contract tables): the tables as they are
        return out, counts
    if claims is None:  # no claim yet: every remittance waits for its claim
        if remits is not None and len(remits):
            counts["remittances_waiting"] = len(_classify(_remittances(remits, counts), counts))
            counts["duplicates_skipped"] = counts["remittances_duplicate"]
        return out, counts
    known = pd.Index(_text(claims["claim_id"]).unique(), dtype=object)
    r = _classify(_remittances(remits, counts), counts)
    r["known"] = r["claim_id"].isin(known)
    counts["remittances_waiting"] = int((~r["known"]).sum())
    counts["remittances_matched"] = int(r["known"].sum())
    r = r[r["known"]].reset_index(drop=True)
    counts["negative_payments"] = int(((r["status"] != REVERSAL) & (r["paid"] < 0)).sum())
    r["cid"] = pd.factorize(r["claim_id"])[0]  # integer claim codes: cheap groupbys
    r["pos"] = r.groupby("cid", sort=False).cumcount()
    counts["reversals"] = int(r["reversal"].sum())
    per_claim = _per_claim(r)
    counts["corrections"] = int(per_claim["corrected"].sum())
    counts["reversals_without_payment"] = int(per_claim["inferred"].sum())
    claims = _paid_claims(claims, per_claim, counts)
    out["claims"] = claims
    if out["claim_lines"] is not None:
        out["claim_lines"] = _paid_lines(out["claim_lines"], r, tables.get("remittance_lines"), per_claim, counts)
    new = _reversal_recoupments(r, per_claim, counts)
    counts["recoupments_from_reversals"] = len(new)
    new = pd.concat([new, _offset_recoupments(offsets, remits, known, new, counts)], ignore_index=True)
    counts["recoupments_added"] = len(new)
    counts["duplicates_skipped"] = counts["remittances_duplicate"] + counts["offsets_duplicate"]
    out["recoupments"] = _union_recoupments(out["recoupments"], new, claims)
    return out, counts


def _dates(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce").astype("datetime64[ns]")


def _cents(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").fillna(0.0).astype("float64").round(2)


def _text(s: pd.Series) -> pd.Series:
    """Text as numpy objects ('' for missing): hashing, sorting and ``isin`` on them are fast (pyarrow-backed
    strings' ``isin`` goes through Python objects one by one)."""
    values = s.to_numpy(dtype=object, na_value="")
    if len(values) and not all(isinstance(v, str) for v in values[:1000]):
        values = np.array([v if isinstance(v, str) else str(v) for v in values], dtype=object)
    return pd.Series(values, index=s.index, dtype=object)


def _remittances(remits: pd.DataFrame | None, counts: dict[str, int]) -> pd.DataFrame:
    """CLPs in canonical order (a total order on their content), duplicates removed."""
    cols = list(REMITTANCE_COLUMNS["remittances"])
    r = pd.DataFrame(columns=cols) if remits is None else remits.reindex(columns=cols)
    counts["remittances"] = len(r)
    r = pd.DataFrame(
        {
            "remittance_id": _text(r["remittance_id"]),
            "claim_id": _text(r["claim_id"]),
            "payer_id": _text(r["payer_id"]),
            "payer_claim_number": _text(r["payer_claim_number"]),
            "status": _text(r["status"]),
            "charge": _cents(r["charge"]),
            "paid": _cents(r["paid"]),
            "carc": _text(r["carc"]).replace("", None),
            "date": _dates(r["remittance_date"]),
        }
    )
    # same date: a reversal before a payment (an 835 reverses, then corrects; it never pays, then reverses)
    r["rank"] = np.where(r["status"] == REVERSAL, 0, 1)
    order = ["claim_id", "date", "rank", "payer_id", "payer_claim_number", "status", "paid", "charge", "remittance_id"]
    r = r.take(_order(r, order)).reset_index(drop=True)
    dup = r.duplicated(DUPLICATE_KEY)
    counts["remittances_duplicate"] += int(dup.sum())
    return r[~dup].reset_index(drop=True)


def _classify(r: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    """Payments and reversals (a payment is reversed once: later reversals of it are duplicates)."""
    r["amount"] = r["paid"].abs()
    reversals = r[(r["status"] == REVERSAL) & (r["amount"] > 0)]
    repeated = reversals.index[reversals.duplicated(REVERSAL_KEY)]  # the earliest reversal of a payment is kept
    counts["remittances_duplicate"] += len(repeated)
    r = r.drop(index=repeated).reset_index(drop=True)
    r["reversal"] = (r["status"] == REVERSAL) & (r["amount"] > 0)
    r["payment"] = (r["status"] != REVERSAL) & (r["paid"] > 0)
    return r


def _per_claim(r: pd.DataFrame) -> pd.DataFrame:
    """Per claim with remittances: original payment, net paid, whether a correction followed a reversal."""
    cid = r["cid"]
    first_rev = r["pos"].where(r["reversal"]).groupby(cid).min()
    first_rev_full = cid.map(first_rev).astype("float64")
    before = r["payment"] & (first_rev_full.isna() | (r["pos"] < first_rev_full))
    after = r["payment"] & (r["pos"] > first_rev_full)
    per = pd.DataFrame(index=pd.RangeIndex(int(cid.max()) + 1 if len(r) else 0))
    per["paid_before"] = r["paid"].where(before, 0.0).groupby(cid).sum()
    per["paid_total"] = r["paid"].where(r["payment"], 0.0).groupby(cid).sum()
    per["reversed"] = r["amount"].where(r["reversal"], 0.0).groupby(cid).sum()
    first_rev_rows = r[r["reversal"]].drop_duplicates("cid").set_index("cid")
    per["first_reversal_amount"] = first_rev_rows["amount"].reindex(per.index).fillna(0.0)
    per["first_reversal_date"] = first_rev_rows["date"].reindex(per.index)
    per["first_reversal_carc"] = first_rev_rows["carc"].reindex(per.index)
    per["corrected"] = after.groupby(cid).any().reindex(per.index, fill_value=False).astype(bool)
    per["inferred"] = (per["paid_before"] <= 0) & (per["first_reversal_amount"] > 0)
    per["original"] = per["paid_before"].where(~per["inferred"], per["first_reversal_amount"])
    inferred_extra = per["first_reversal_amount"].where(per["inferred"], 0.0)
    per["net"] = (per["paid_total"] + inferred_extra - per["reversed"]).clip(lower=0.0).round(2)
    per["paid_amount"] = per["net"].where(per["corrected"], per["original"]).round(2)
    per["first_payment_date"] = r["date"].where(r["payment"]).groupby(cid).min().reindex(per.index)
    per.index = pd.Index(r.drop_duplicates("cid").sort_values("cid")["claim_id"].to_numpy(), dtype=object)
    return per


def _order(df: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Row positions of ``df`` sorted by ``keys`` (missing last), by Arrow: sorting Python strings is slow."""
    table = pa.table({k: pa.array(df[k], from_pandas=True) for k in keys})
    return pc.sort_indices(table, sort_keys=[(k, "ascending") for k in keys], null_placement="at_end").to_numpy()


def _like(dates: pd.Series, reference: pd.Series) -> pd.Series:
    """``dates`` (datetime64) in the representation of ``reference``: datetimes, or ISO text as in the CSV files."""
    if pd.api.types.is_datetime64_any_dtype(reference):
        return dates
    return dates.dt.strftime("%Y-%m-%d").astype("object").where(dates.notna(), None)


def _paid_claims(claims: pd.DataFrame, per: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    claims = claims.copy()
    for col in ("paid_date", "paid_amount"):
        if col not in claims.columns:
            claims[col] = None
    ids = _text(claims["claim_id"])
    has = ids.isin(per.index)
    p = per.reindex(ids.to_numpy())
    p.index = claims.index
    submitted = _dates(claims["submitted_date"])
    paid_date = p["first_payment_date"].where(~p["inferred"].fillna(False).astype(bool), submitted)
    early = paid_date.notna() & (paid_date < submitted) & (p["paid_amount"] > 0)
    counts["paid_date_raised"] = int(early.sum())
    paid_date = paid_date.where(~early, submitted)
    paid_date = paid_date.where(p["paid_amount"] > 0)
    amount = pd.to_numeric(claims["paid_amount"], errors="coerce").astype("float64")
    claims["paid_amount"] = amount.where(~has, p["paid_amount"])
    old = _dates(claims["paid_date"])
    claims["paid_date"] = _like(old.where(~has, paid_date), claims["submitted_date"])
    counts["claims_paid"] = int((has & (p["paid_amount"] > 0)).sum())
    return claims


def _paid_lines(
    lines: pd.DataFrame, r: pd.DataFrame, svc: pd.DataFrame | None, per: pd.DataFrame, counts: dict[str, int]
) -> pd.DataFrame:
    """``line_paid``: SVC03 of the CLPs that make the paid amount, matched to the claim lines by submitted procedure
    code and order (the k-th SVC of code X in a CLP pays the k-th line of code X of the claim)."""
    lines = lines.copy()
    if "line_paid" not in lines.columns:
        lines["line_paid"] = np.nan
    has = _text(lines["claim_id"]).isin(per.index)
    if not has.any():
        return lines
    weights = _weights(r, per)
    total = pd.Series(0.0, index=lines.index)
    if svc is not None and len(svc) and len(weights):
        s = svc.reindex(columns=list(REMITTANCE_COLUMNS["remittance_lines"]))
        s = pd.DataFrame(
            {
                "remittance_id": _text(s["remittance_id"]),
                "code": _text(s["submitted_code"]),
                "line_seq": pd.to_numeric(s["line_seq"], errors="coerce"),
                "paid": _cents(s["paid"]),
            }
        )
        s = s.merge(weights, on="remittance_id")
        s = s[s["weight"] != 0]
        s = s.take(_order(s, ["remittance_id", "line_seq"]))
        s["k"] = s.groupby(["remittance_id", "code"], sort=False).cumcount()
        ln = pd.DataFrame(
            {
                "row": lines.index,
                "claim_id": _text(lines["claim_id"]).to_numpy(),
                "code": _text(lines["procedure_code"]).to_numpy(),
                "line_number": pd.to_numeric(lines["line_number"], errors="coerce").to_numpy(),
            }
        )
        ln = ln.take(_order(ln, ["claim_id", "line_number"]))
        ln["k"] = ln.groupby(["claim_id", "code"], sort=False).cumcount()
        m = s.merge(ln, on=["claim_id", "code", "k"])
        total = (m["paid"] * m["weight"]).groupby(m["row"]).sum().reindex(lines.index, fill_value=0.0)
    counts["negative_line_paid"] = int((has & (total < -0.004)).sum())
    current = pd.to_numeric(lines["line_paid"], errors="coerce").astype("float64")
    lines["line_paid"] = current.where(~has, total.clip(lower=0.0).round(2))
    return lines


def _weights(r: pd.DataFrame, per: pd.DataFrame) -> pd.DataFrame:
    """How each CLP's service lines count in ``line_paid`` (same rule as the paid amount): payments +1; when a
    correction followed a reversal, reversals +1 too (their SVC03 are negative: net = corrected); a reversal whose
    original payment is not in the store stands in for it (-1 x its negative SVC03)."""
    corrected = pd.Series(per["corrected"].to_numpy()[r["cid"].to_numpy()], index=r.index)
    inferred = pd.Series(per["inferred"].to_numpy()[r["cid"].to_numpy()], index=r.index)
    first_rev = r.index.isin(r[r["reversal"]].drop_duplicates("claim_id").index)
    weight = np.where(r["payment"], 1.0, 0.0)
    weight = np.where(r["reversal"] & corrected & ~inferred, 1.0, weight)
    weight = np.where(first_rev & ~corrected & inferred, -1.0, weight)
    return pd.DataFrame({"remittance_id": r["remittance_id"], "claim_id": r["claim_id"], "weight": weight})


def _reversal_recoupments(r: pd.DataFrame, per: pd.DataFrame, counts: dict[str, int]) -> pd.DataFrame:
    """One recoupment per reversed payment; after a correction, one for what was finally taken back."""
    plain = r[r["reversal"] & ~pd.Series(per["corrected"].to_numpy()[r["cid"].to_numpy()], index=r.index)]
    rows = pd.DataFrame(
        {
            "claim_id": plain["claim_id"],
            "recouped_date": plain["date"],
            "recouped_amount": plain["amount"],
            "carc": plain["carc"],
        }
    )
    c = per[per["corrected"]]
    net_taken = (c["original"] - c["net"]).round(2)
    c = c[net_taken > 0]
    corrected = pd.DataFrame(
        {
            "claim_id": c.index.to_numpy(),
            "recouped_date": c["first_reversal_date"].to_numpy(),
            "recouped_amount": net_taken[net_taken > 0].to_numpy(),
            "carc": c["first_reversal_carc"].to_numpy(),
        }
    )
    out = pd.concat([rows, corrected], ignore_index=True)
    out["cause"] = None
    return out[RECOUPMENT_COLUMNS]


def _offset_recoupments(
    offsets: pd.DataFrame | None,
    remits: pd.DataFrame | None,
    known: pd.Index,
    reversals: pd.DataFrame,
    counts: dict[str, int],
) -> pd.DataFrame:
    """Recoupments of ``WO`` offsets naming a known claim (by CLP01/CLM01, else by the payer's CLP07), once each,
    except those settling a reversal of the same claim and amount."""
    empty = pd.DataFrame(columns=RECOUPMENT_COLUMNS)
    if offsets is None or not len(offsets):
        return empty
    o = offsets.reindex(columns=list(REMITTANCE_COLUMNS["offsets"]))
    o = pd.DataFrame(
        {
            "payer_id": _text(o["payer_id"]),
            "provider": _text(o["provider"]),
            "reason": _text(o["reason"]).str.upper(),
            "reference": _text(o["reference"]),
            "amount": _cents(o["amount"]),
            "date": _dates(o["remittance_date"]),
        }
    )
    o = o[o["reason"] == WRITE_OFF].sort_values(OFFSET_KEY, kind="mergesort")
    dup = o.duplicated(OFFSET_KEY)
    counts["offsets_duplicate"] = int(dup.sum())
    o = o[~dup & (o["amount"] > 0)]
    by_number: dict[str, str] = {}
    if remits is not None and len(remits):
        pairs = pd.DataFrame({"n": _text(remits["payer_claim_number"]), "c": _text(remits["claim_id"])})
        pairs = pairs[(pairs["n"] != "") & pairs["c"].isin(known)].sort_values(["n", "c"]).drop_duplicates("n")
        by_number = dict(zip(pairs["n"], pairs["c"]))
    claim = o["reference"].where(o["reference"].isin(known), o["reference"].map(by_number))
    o = o.assign(claim_id=claim)
    counts["offsets_waiting"] = int(o["claim_id"].isna().sum())
    o = o[o["claim_id"].notna()]
    settled = pd.Series(list(zip(o["claim_id"], o["amount"])), index=o.index, dtype="object").isin(
        set(zip(reversals["claim_id"], reversals["recouped_amount"].round(2)))
    )
    counts["offsets_settling_reversal"] = int(settled.sum())
    o = o[~settled]
    counts["offsets"] = len(o)
    return pd.DataFrame(
        {"claim_id": o["claim_id"], "recouped_date": o["date"], "recouped_amount": o["amount"], "carc": None}
    ).assign(cause=None)[RECOUPMENT_COLUMNS]


def _union_recoupments(given: pd.DataFrame | None, new: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame | None:
    if not len(new):
        return given
    reference = given["recouped_date"] if given is not None else claims["submitted_date"]
    new = new.sort_values(["claim_id", "recouped_date", "recouped_amount"], kind="mergesort").reset_index(drop=True)
    new["recouped_date"] = _like(pd.to_datetime(new["recouped_date"]).astype("datetime64[ns]"), reference)
    new["recouped_amount"] = new["recouped_amount"].astype("float64")
    if given is None:
        return new
    return pd.concat([given, new.astype({"carc": "object", "cause": "object"})], ignore_index=True)
