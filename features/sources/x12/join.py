"""Joining what an import read: 837 claims (the first claim of each claim id kept) and the counts of
:class:`ImportSummary`. The 835 side (paid fields, reversals, ``WO`` offsets) is the store's read-time join,
:func:`features.store.remit.apply_remittances`, so that ``recoup import-x12`` and a store follow the same rules
(docs/x12.md "Store semantics"). :func:`reversal_carc` gives a reversal's CARC."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from features.sources.x12.errors import Rejection
from features.sources.x12.parsed import Parsed


@dataclass
class ImportSummary:
    """Counts of one import (printed by the CLI); each total is the sum of its parts."""

    files: int = 0
    transactions: dict[str, int] = field(default_factory=dict)
    claims_read: int = 0  # CLM segments of the imported 837 transactions
    claims: int = 0  # = claims_read - duplicate_claims - rejected_claims
    duplicate_claims: int = 0
    rejected_claims: int = 0
    lines: int = 0
    remittances: int = 0  # CLP read = remittances_matched + remittances_waiting + remittances_duplicate
    remittances_matched: int = 0
    remittances_waiting: int = 0
    remittances_duplicate: int = 0
    remittance_lines: int = 0
    paid_claims: int = 0
    denials: int = 0
    reversals: int = 0
    corrections: int = 0
    offsets: int = 0
    offsets_waiting: int = 0
    offsets_settling_reversal: int = 0
    recoupments: int = 0  # = recoupments_from_reversals + offsets
    recoupments_from_reversals: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    placeholders: dict[str, int] = field(default_factory=dict)
    warnings: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        tx = ", ".join(f"{n} x {k}" for k, n in sorted(self.transactions.items())) or "none"
        out = [
            f"X12 import: {self.files} file(s), transactions: {tx}",
            f"  claims: {self.claims} imported = {self.claims_read} CLM read in 837s - {self.duplicate_claims} "
            f"duplicate claim ids - {self.rejected_claims} rejected; {self.lines} lines",
            f"  remittances: {self.remittances} claim payments (CLP) read = {self.remittances_matched} matched to a "
            f"claim + {self.remittances_waiting} whose claim is in no 837 given (kept as remittances, no claim made "
            f"up) + {self.remittances_duplicate} duplicates; {self.remittance_lines} service lines, "
            f"{self.paid_claims} claims paid, {self.denials} denials",
            f"  recoupments: {self.recoupments} = {self.recoupments_from_reversals} from {self.reversals} reversals "
            f"CLP02=22 ({self.corrections} corrected) + {self.offsets} PLB WO offsets "
            f"({self.offsets_waiting} naming no imported claim, {self.offsets_settling_reversal} settling a reversal)",
        ]
        if self.placeholders:
            out.append("  placeholders: " + "; ".join(f"{k}: {v}" for k, v in sorted(self.placeholders.items())))
        n_rej = sum(self.rejected.values())
        out.append(f"  rejected: {n_rej}" + (" (" + str(self.warnings) + " warnings)" if self.warnings else ""))
        for reason, n in sorted(self.rejected.items(), key=lambda kv: -kv[1])[:12]:
            out.append(f"    {n} x {reason}")
        out.append(f"  took {self.seconds:.2f} s")
        return "\n".join(out)


#: what a duplicate claim id is rejected with
DUPLICATE_CLAIM_REASON = "CLM: duplicate claim id (the first occurrence is kept)"


def join(parsed: Parsed) -> tuple[dict[str, list[dict]], ImportSummary, list[Rejection]]:
    """The 837 rows (first claim per id, its lines, one provider per NPI), the summary's 837 counts, rejections."""
    rejected = list(parsed.rejected)
    ph: Counter = Counter()
    claims, lines = _first_claims(parsed, rejected, ph)
    claim_rows = list(claims.values())
    line_rows = [ln for cid in claims for ln in lines[cid]]
    summary = ImportSummary(
        claims_read=parsed.clm_segments,
        claims=len(claim_rows),
        lines=len(line_rows),
        transactions=dict(parsed.transactions),
        remittance_lines=len(parsed.remittance_lines),
        denials=sum(1 for r in parsed.remittances if r["status"] == "4"),
    )
    summary.duplicate_claims = sum(1 for r in rejected if r.reason == DUPLICATE_CLAIM_REASON)
    summary.rejected_claims = summary.claims_read - summary.claims - summary.duplicate_claims
    summary.placeholders = dict(ph)
    summary.warnings = sum(1 for r in rejected if r.kind == "warning")
    summary.rejected = dict(Counter(f"{r.kind}: {r.reason}" for r in rejected if r.kind != "warning"))
    rows = {"claims": claim_rows, "claim_lines": line_rows, "providers": _first_per_npi(parsed.providers)}
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
            rejected.append(Rejection(c["_source"], c["_segment"], "claim", DUPLICATE_CLAIM_REASON))
            continue
        claims[cid], lines[cid] = c, lines_by_key[c["_key"]]
        ph.update(c["_ph"])
    return claims, lines


def reversal_carc(r: dict) -> str | None:
    """``GROUP-REASON`` of a reversal: its largest adjustment, preferring payer groups over PR."""
    adjs = list(r["_adjustments"]) + [a for ln in r["_lines"] for a in ln["_adjustments"]]
    if not adjs:
        return None
    best = max(adjs, key=lambda a: (a["group"] != "PR", abs(a["amount"])))
    return f"{best['group']}-{best['reason']}"
