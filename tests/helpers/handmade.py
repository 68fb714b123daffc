"""Hand-built claims for behavioural tests: codes picked from the packaged rulebook, a tiny history, one
claim at a time through the public path (contract ``validate_frames`` -> ``HistoryState`` ->
``features.pipeline.compute_features``)."""

from __future__ import annotations

import pandas as pd

from features.contract import History, validate_frames
from features.pipeline import compute_features
from features.rulebook import Rulebook
from features.engine.state import HistoryState

NPI = "1000000001"
OTHER_NPI = "1000000002"
PAYER = "MCR1"
SERVICE = "2024-08-01"  # the packaged rulebook is 2024Q3: its edits are in force on this date
SUBMITTED = "2024-08-10"


def _five_digit(codes: pd.Series) -> pd.Series:
    return codes.astype(str).str.fullmatch(r"\d{5}")


_PICKED: dict[str, dict] = {}


def pick_codes(rb: Rulebook) -> dict:
    """Codes picked from the packaged tables: a code with MUE 6, PTP pairs of each modifier indicator in
    force on SERVICE (one direction only), an add-on code and one of its primaries, ICD-10-CM codes.
    Remembered per rulebook: callers must not change the dict."""
    key = str(rb.data_dir)
    if key not in _PICKED:
        _PICKED[key] = _pick(rb)
    return _PICKED[key]


def _pick(rb: Rulebook) -> dict:
    addons = rb.addon_primaries
    mue = rb.table("mue_professional")
    mue = mue[_five_digit(mue["code"]) & ~mue["code"].astype(str).isin(addons)]
    limit = dict(zip(mue["code"].astype(str), mue["mue_units"]))
    mue6 = sorted(c for c, u in limit.items() if u == 6)[0]
    ptp = rb.table("ptp_professional")
    ptp = ptp[(ptp["deletion_date"] == 99991231) & ptp["column_1"].isin(limit) & ptp["column_2"].isin(limit)]
    ptp = ptp[(ptp["column_1"].map(limit) >= 2) & (ptp["column_2"].map(limit) >= 2)]
    both = set(zip(ptp["column_1"], ptp["column_2"]))
    pairs = {}
    for ind in (0, 1):
        rows = ptp[ptp["modifier_indicator"] == ind].sort_values(["column_1", "column_2"])
        pairs[ind] = next((a, b) for a, b in zip(rows["column_1"], rows["column_2"]) if (b, a) not in both)
    addon = sorted(
        c
        for c, p in addons.items()
        if p and len(c) == 5 and c.isdigit() and all(len(x) == 5 and x.isdigit() for x in p)
    )[0]
    icd = rb.table("icd10cm")
    billable = icd.loc[icd["billable"], "code"].astype(str)
    category = icd.loc[~icd["billable"], "code"].astype(str)
    invalid = "Z999ZZZ"
    assert int(rb.icd_status([invalid])[0]) == 2, "the made-up diagnosis is not in ICD-10-CM"
    return {
        "mue6": mue6,
        "ptp_modifier": pairs[1],
        "ptp_never": pairs[0],
        "addon": addon,
        "primary": sorted(addons[addon])[0],
        "dx": billable.iloc[0],
        "dx_truncated": category.iloc[0],
        "dx_invalid": invalid,
        "plain": mue6,
    }


def claim_rows(
    cid: str,
    lines: list[tuple],
    patient: str = "P1",
    npi: str = NPI,
    dx: list[str] | None = None,
    service: str = SERVICE,
    submitted: str = SUBMITTED,
    codes: dict | None = None,
) -> tuple[dict, list]:
    """One claim and its lines as raw contract rows; ``lines``: (procedure code, units, modifiers)."""
    dx = dx or [codes["dx"]]
    rows = [
        {
            "claim_id": cid,
            "line_number": i + 1,
            "service_date": service,
            "procedure_code": code,
            "modifiers": ";".join(mods),
            "units": float(units),
            "line_charge": 100.0,
            "diagnosis_pointers": "1",
        }
        for i, (code, units, mods) in enumerate(lines)
    ]
    claim = {
        "claim_id": cid,
        "patient_id": patient,
        "billing_npi": npi,
        "payer_id": PAYER,
        "plan_type": "medicare",
        "claim_type": "professional",
        "place_of_service": "11",
        "frequency_code": "1",
        "submitted_date": submitted,
        "total_charge": 100.0 * len(lines),
        "diagnosis_codes": ";".join(dx),
        "paid_date": "",
        "paid_amount": "",
    }
    return claim, rows


def typed(claims: list[dict], lines: list[dict], **tables) -> History:
    return validate_frames({"claims": pd.DataFrame(claims), "claim_lines": pd.DataFrame(lines), **tables})


def tiny_history(
    codes: dict, rename: dict | None = None, recouped: list[str] = (), extra: list[tuple[dict, list[dict]]] = ()
) -> History:
    """Ten earlier claims of the provider (patients P1..P5) and five of a peer, covered all of 2024;
    ``recouped``: ids of claims recouped before SUBMITTED; ``rename``: patient id -> new id; ``extra``:
    more claims (raw rows, as :func:`claim_rows` makes them)."""
    rename = rename or {}
    claims, lines = [], []
    for i in range(15):
        npi = NPI if i < 10 else OTHER_NPI
        day = str((pd.Timestamp("2024-02-01") + pd.Timedelta(days=7 * i)).date())
        c, ls = claim_rows(
            f"H{i}",
            [(codes["plain"], 1, [])],
            patient=rename.get(f"P{i % 5 + 1}", f"P{i % 5 + 1}"),
            npi=npi,
            service=day,
            submitted=day,
            codes=codes,
        )
        claims.append({**c, "paid_date": day, "paid_amount": 60.0})
        lines += ls
    for c, ls in extra:
        claims.append(c)
        lines += ls
    patients = [rename.get(f"P{i}", f"P{i}") for i in range(1, 6)]
    coverage = pd.DataFrame(
        {
            "patient_id": patients,
            "payer_id": PAYER,
            "plan_type": "medicare",
            "coverage_start": "2024-01-01",
            "coverage_end": "2024-12-31",
        }
    )
    providers = pd.DataFrame({"npi": [NPI, OTHER_NPI], "taxonomy_code": "207Q00000X"})
    rec = pd.DataFrame(
        {"claim_id": list(recouped), "recouped_date": "2024-07-01", "recouped_amount": 60.0, "carc": "CO-151"}
    )
    return typed(claims, lines, coverage=coverage, providers=providers, recoupments=rec if len(rec) else None)


def features_of(state: HistoryState, rb: Rulebook, claim: dict, lines: list[dict], record: bool = False):
    """(feature row as a Series, rule hits frame) of one claim scored against ``state``."""
    h = typed([claim], lines)
    res = compute_features(h.claims, h.claim_lines, state, rb, record=record)
    return res.X.iloc[0], res.hits


def score(state: HistoryState, rb: Rulebook, codes: dict, lines: list[tuple], **kw):
    """:func:`features_of` a claim made by :func:`claim_rows` (``cid`` default ``NEW``)."""
    claim, rows = claim_rows(kw.pop("cid", "NEW"), lines, codes=codes, **kw)
    return features_of(state, rb, claim, rows)
