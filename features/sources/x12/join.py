"""Joining 837 claims and 835 remittances into the contract's tables: each claim's payments (paid date and amount,
line payments matched by REF*6R or code and order), its reversals (CLP02 = 22) and the ``WO`` offsets of PLB
segments as recoupments, and claims known only from an 835 with documented placeholders. :func:`join` returns the
rows, the :class:`ImportSummary` counts and every rejection."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from features.contract.schema import MODIFIER_PATTERN
from features.sources.x12.codes import (
    DENIED_STATUS,
    OFFSET_REASON,
    PLACE_OF_SERVICE_PATTERN,
    REVERSAL_STATUS,
    UNKNOWN_DIAGNOSIS,
    UNKNOWN_NPI,
    UNKNOWN_POS,
    frequency,
    institutional_pos,
    plan_type,
    valid_procedure,
)
from features.sources.x12.errors import Rejection
from features.sources.x12.parsed import Parsed


@dataclass
class ImportSummary:
    """Counts of one import (printed by the CLI)."""

    files: int = 0
    transactions: dict[str, int] = field(default_factory=dict)
    claims_read: int = 0
    claims: int = 0
    claims_from_835_only: int = 0
    lines: int = 0
    remittances: int = 0
    remittance_lines: int = 0
    paid_claims: int = 0
    reversals: int = 0
    offsets: int = 0
    denials: int = 0
    recoupments: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    placeholders: dict[str, int] = field(default_factory=dict)
    warnings: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        tx = ", ".join(f"{n} x {k}" for k, n in sorted(self.transactions.items())) or "none"
        out = [
            f"X12 import: {self.files} file(s), transactions: {tx}",
            f"  claims: {self.claims} imported ({self.claims_read} CLM read in 837s, "
            f"{self.claims_from_835_only} known only from 835s), {self.lines} lines",
            f"  remittances: {self.remittances} claim payments (CLP), {self.remittance_lines} service lines, "
            f"{self.paid_claims} claims paid, {self.denials} denials",
            f"  recoupments: {self.recoupments} ({self.reversals} reversals CLP02=22, {self.offsets} PLB WO offsets)",
        ]
        if self.placeholders:
            out.append("  placeholders: " + "; ".join(f"{k}: {v}" for k, v in sorted(self.placeholders.items())))
        n_rej = sum(self.rejected.values())
        out.append(f"  rejected: {n_rej}" + (" (" + str(self.warnings) + " warnings)" if self.warnings else ""))
        for reason, n in sorted(self.rejected.items(), key=lambda kv: -kv[1])[:12]:
            out.append(f"    {n} x {reason}")
        out.append(f"  took {self.seconds:.2f} s")
        return "\n".join(out)


def _order_key(r: dict) -> tuple:
    return (r["remittance_date"], r["_file_index"], r["seq"])


def join(parsed: Parsed) -> tuple[dict[str, list[dict]], ImportSummary, list[Rejection]]:
    """Join 837 claims, 835 payments, reversals and WO offsets into contract rows."""
    rejected = list(parsed.rejected)
    summary = ImportSummary(
        claims_read=parsed.clm_segments,
        remittances=len(parsed.remittances),
        remittance_lines=len(parsed.remittance_lines),
        transactions=dict(parsed.transactions),
    )
    ph: Counter = Counter()
    claims, lines = _first_claims(parsed, rejected, ph)
    remits: dict[str, list[dict]] = defaultdict(list)
    for r in parsed.remittances:
        remits[r["claim_id"]].append(r)
    for cid, rs in remits.items():
        rs.sort(key=_order_key)
        if cid not in claims:
            summary.claims_from_835_only += _add_835_claim(cid, rs, claims, lines, rejected, ph)

    recoupments: list[dict] = []
    for cid, rs in remits.items():
        if cid in claims:
            _apply_payments(claims[cid], lines[cid], rs, ph)
            recoupments.extend(_reversals(cid, rs, summary, rejected))
    reversed_amounts: dict[str, list[float]] = defaultdict(list)
    for rec in recoupments:
        reversed_amounts[rec["claim_id"]].append(rec["recouped_amount"])
    by_payer_number = {r["payer_claim_number"]: r["claim_id"] for r in parsed.remittances if r["payer_claim_number"]}
    for o in parsed.offsets:
        if o["reason"] == OFFSET_REASON:
            summary.offsets += 1
            offset = _offset_recoupment(o, claims, by_payer_number, reversed_amounts, rejected)
            recoupments.extend([offset] if offset else [])

    claim_rows = list(claims.values())
    line_rows = [ln for cid in claims for ln in lines[cid]]
    summary.claims, summary.lines, summary.recoupments = len(claim_rows), len(line_rows), len(recoupments)
    summary.paid_claims = sum(1 for c in claim_rows if c.get("paid_date"))
    summary.placeholders = dict(ph)
    summary.warnings = sum(1 for r in rejected if r.kind == "warning")
    summary.rejected = dict(Counter(f"{r.kind}: {r.reason}" for r in rejected if r.kind != "warning"))
    rows = {
        "claims": claim_rows,
        "claim_lines": line_rows,
        "recoupments": recoupments,
        "providers": _first_per_npi(parsed.providers),
    }
    return rows, summary, rejected


def _first_per_npi(providers: list[dict]) -> list[dict]:
    """One provider row per NPI: the first seen."""
    out: dict[str, dict] = {}
    for p in providers:
        out.setdefault(p["npi"], p)
    return list(out.values())


def _first_claims(parsed: Parsed, rejected: list[Rejection], ph: Counter) -> tuple[dict, dict]:
    """837 claims by id (first occurrence kept) and their lines."""
    lines_by_key: dict[tuple, list[dict]] = defaultdict(list)
    for ln in parsed.lines:
        lines_by_key[ln["_key"]].append(ln)
    claims: dict[str, dict] = {}
    lines: dict[str, list[dict]] = {}
    for c in parsed.claims:
        cid = c["claim_id"]
        if cid in claims:
            rejected.append(
                Rejection(
                    c["_source"], c["_segment"], "claim", "CLM: duplicate claim id (the first occurrence is kept)"
                )
            )
            continue
        claims[cid], lines[cid] = c, lines_by_key[c["_key"]]
        ph.update(c["_ph"])
    return claims, lines


def _add_835_claim(cid: str, rs: list[dict], claims: dict, lines: dict, rejected: list[Rejection], ph: Counter) -> bool:
    """Add a claim known only from 835s; reject it when no service line has a procedure code."""
    built = _claim_from_835(cid, rs, ph)
    if built is None:
        rejected.append(
            Rejection(
                rs[0]["source"],
                rs[0]["segment"],
                "remittance",
                "CLP: claim not in any 837 and its 835 has no service line with a "
                "CPT/HCPCS code (payment facts kept in the remittances table only)",
            )
        )
        return False
    claims[cid], lines[cid] = built
    return True


def _reversals(cid: str, rs: list[dict], summary: ImportSummary, rejected: list[Rejection]) -> list[dict]:
    """Recoupments from the reversals (CLP02 = 22) of one claim; counts reversals and denials."""
    out = []
    for r in rs:
        summary.denials += r["status"] == DENIED_STATUS
        if r["status"] != REVERSAL_STATUS:
            continue
        summary.reversals += 1
        amount = round(abs(r["paid"]), 2)
        if amount <= 0:
            rejected.append(
                Rejection(r["source"], r["segment"], "recoupment", "CLP: reversal (CLP02=22) of a zero payment")
            )
            continue
        out.append(
            {
                "claim_id": cid,
                "recouped_date": r["remittance_date"],
                "recouped_amount": amount,
                "carc": reversal_carc(r),
                "cause": None,
            }
        )
    return out


def reversal_carc(r: dict) -> str | None:
    """``GROUP-REASON`` of a reversal: its largest adjustment, preferring payer groups over PR."""
    adjs = list(r["_adjustments"]) + [a for ln in r["_lines"] for a in ln["_adjustments"]]
    if not adjs:
        return None
    best = max(adjs, key=lambda a: (a["group"] != "PR", abs(a["amount"])))
    return f"{best['group']}-{best['reason']}"


def _offset_recoupment(
    o: dict,
    claims: dict[str, dict],
    by_payer_number: dict[str, str],
    reversal_amounts: dict[str, list[float]],
    rejected: list[Rejection],
) -> dict | None:
    ref = o["reference"]
    cid = ref if ref in claims else by_payer_number.get(ref)
    if cid not in claims:
        rejected.append(
            Rejection(
                o["source"],
                o["segment"],
                "recoupment",
                "PLB: WO offset whose reference is not a known claim (CLP01/CLM01 or CLP07)",
            )
        )
        return None
    amount = round(o["amount"], 2)
    if amount <= 0:
        rejected.append(
            Rejection(
                o["source"],
                o["segment"],
                "recoupment",
                "PLB: WO offset with a negative amount (money returned, not taken back)",
            )
        )
        return None
    if any(abs(a - amount) < 0.005 for a in reversal_amounts.get(cid, [])):
        rejected.append(
            Rejection(
                o["source"],
                o["segment"],
                "warning",
                "PLB: WO offset settles a reversal of the same claim and amount (not counted twice)",
            )
        )
        return None
    return {
        "claim_id": cid,
        "recouped_date": o["remittance_date"],
        "recouped_amount": amount,
        "carc": None,
        "cause": None,
    }


def _apply_payments(claim: dict, lines: list[dict], rs: list[dict], ph: Counter) -> None:
    """Set paid_date/paid_amount on the claim and line_paid on its lines from its remittances.

    The paid amount is the original payment, i.e. the payments before the first reversal; when a
    reversal comes without any earlier payment in the files, the reversed amount stands in for it and
    the paid date is the submission date (the payment happened between submission and reversal).
    """
    paid, first_date, contributing, reversed_, inferred = 0.0, None, [], False, False
    for r in rs:
        if r["status"] == REVERSAL_STATUS:
            if not reversed_ and paid == 0 and abs(r["paid"]) > 0:
                paid, inferred = abs(r["paid"]), True
                contributing.append((r, -1.0))
            reversed_ = True
        elif not reversed_ and r["paid"] > 0:
            paid += r["paid"]
            first_date = first_date or r["remittance_date"]
            contributing.append((r, 1.0))
        elif r["paid"] < 0:
            ph["negative CLP04 of a remittance that is not a reversal (not a payment)"] += 1
    claim["paid_amount"] = round(paid, 2)
    if inferred and first_date is None:
        first_date = claim["submitted_date"]
        ph["paid_date = submitted_date (original payment not in the files, reversal only)"] += 1
    if first_date is not None and first_date < claim["submitted_date"]:
        first_date = claim["submitted_date"]
        ph["paid_date raised to submitted_date (835 dated before the 837)"] += 1
    claim["paid_date"] = first_date if paid > 0 else None
    if rs:
        for ln in lines:
            ln["line_paid"] = 0.0
    for r, sign in contributing:
        for ln, svc in match_lines(lines, r["_lines"]):
            if svc["paid"] is not None:
                if ln["line_paid"] + sign * svc["paid"] < 0:
                    ph["line_paid 0 (negative SVC03 in a payment)"] += 1
                ln["line_paid"] = round(max(0.0, ln["line_paid"] + sign * svc["paid"]), 2)


def match_lines(lines: list[dict], svcs: list[dict]) -> list[tuple[dict, dict]]:
    """Pair 835 service lines with claim lines: by line control number (REF*6R), else code + order."""
    pairs: list[tuple[dict, dict]] = []
    by_control = {ln.get("_control_number"): ln for ln in lines if ln.get("_control_number")}
    by_code: dict[str, list[dict]] = defaultdict(list)
    for ln in lines:
        by_code[ln["procedure_code"]].append(ln)
    used: set[int] = set()
    for svc in svcs:
        match = by_control.get(svc["control_number"]) if svc["control_number"] else None
        if match is None or id(match) in used:
            match = next((x for x in by_code.get(svc["submitted_code"], []) if id(x) not in used), None)
        if match is not None:
            used.add(id(match))
            pairs.append((match, svc))
    return pairs


def _claim_from_835(cid: str, rs: list[dict], ph: Counter) -> tuple[dict, list[dict]] | None:
    """A claim known only from 835s: what the 835 says, plus documented placeholders."""
    usable = [r for r in rs if any(valid_procedure(s["submitted_qualifier"], s["submitted_code"]) for s in r["_lines"])]
    if not usable:
        return None
    base = next((r for r in usable if r["status"] != REVERSAL_STATUS), usable[0])
    institutional = base["inpatient"] or any(
        s["qualifier"] == "NU" or s["revenue_code"] for r in rs for s in r["_lines"]
    )
    dates = [s["start_date"] for s in base["_lines"] if s["start_date"]]
    service = min(dates) if dates else base["dates"].get("232")
    submitted = base["dates"].get("050") or service or base["remittance_date"]
    submitted = min(submitted, rs[0]["remittance_date"])
    if institutional:
        pos = institutional_pos(base["facility_code"])
    elif PLACE_OF_SERVICE_PATTERN.fullmatch(base["facility_code"]):
        pos = base["facility_code"]
    else:
        pos = UNKNOWN_POS
        ph["place_of_service 99 (no CLP08)"] += 1
    npi = base["payee_npi"] or base["rendering_npi"]
    if npi is None:
        npi = UNKNOWN_NPI
        ph["billing_npi 0000000000 (no NPI in N1*PE)"] += 1
    patient = base["insured_id"] or base["patient_id"]
    if not patient:
        patient = f"unknown-patient-{cid}"
        ph["patient_id unknown-patient-<claim> (no member id)"] += 1
    ph["diagnosis R69 (claim known only from an 835)"] += 1
    claim = {
        "claim_id": cid,
        "patient_id": patient,
        "billing_npi": npi,
        "rendering_npi": base["rendering_npi"],
        "payer_id": base["payer_id"],
        "plan_type": plan_type(base["filing_code"], base["payer_name"]),
        "claim_type": "institutional" if institutional else "professional",
        "place_of_service": pos,
        "frequency_code": frequency(base["frequency_raw"]),
        "submitted_date": submitted,
        "total_charge": round(abs(base["charge"]), 2),
        "diagnosis_codes": [UNKNOWN_DIAGNOSIS],
        "prior_auth_number": base["prior_auth_number"] or None,
        "has_attachment": False,
        "_source": base["source"],
        "_segment": base["segment"],
    }
    lines: list[dict] = []
    for s in base["_lines"]:
        if not valid_procedure(s["submitted_qualifier"], s["submitted_code"]):
            continue
        units = abs(s["units_billed"] or s["units_paid"] or 0.0)
        if units <= 0:
            units = 1.0
            ph["units 1 (missing or zero units)"] += 1
        lines.append(
            {
                "claim_id": cid,
                "line_number": len(lines) + 1,
                "service_date": s["start_date"] or service or submitted,
                "procedure_code": s["submitted_code"],
                "modifiers": [m for m in s["submitted_modifiers"] if MODIFIER_PATTERN.fullmatch(m)][:4],
                "units": units,
                "line_charge": round(abs(s["charge"] or 0.0), 2),
                "diagnosis_pointers": [],
                "_control_number": s["control_number"],
            }
        )
    return claim, lines
