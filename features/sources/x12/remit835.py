"""835 remittances: :class:`Remit835`, a state machine over one 835 transaction (header BPR/TRN/DTM/N1, claim
payments CLP in loop 2100, service lines SVC in loop 2110, adjustments CAS, provider-level offsets PLB) that turns it
into remittance rows (with their service lines and adjustments) and offset rows, dated by BPR16 or DTM*405. Any bad
value rejects the whole transaction: a remittance is a money statement, read whole or not at all."""

from __future__ import annotations

from typing import NoReturn

from features.sources.x12.codes import UNKNOWN_PAYER, npi_or_none
from features.sources.x12.elements import bounded, bounded_el, components, el, number, procedure, x12_date
from features.sources.x12.envelope import Transaction
from features.sources.x12.errors import X12Error
from features.sources.x12.parsed import Parsed, segment_handlers


#: the longest TRN02 (trace number) read: the 835 guide's maximum length of the element
MAX_TRACE_CHARS = 50


class Remit835:
    """State machine over one 835: header (BPR/TRN/DTM/N1), claims (CLP, 2100), lines (SVC, 2110), PLB."""

    def __init__(self, tx: Transaction, out: Parsed, seq_start: int):
        self.tx, self.out, self.comp = tx, out, tx.delims.component
        self.seq = seq_start
        self.bpr_date: str | None = None
        self.production_date: str | None = None
        self.payer = {"id": "", "ref_2u": "", "trn": "", "name": ""}
        self.trace = ""  # TRN02, the payer's trace number of the payment (check or EFT number)
        self.total = ""  # BPR02, the payment's total, as 0.00
        self.payee_npi: str | None = None
        self.loop = "header"
        self.clp: dict | None = None
        self.svc: dict | None = None
        self.rows: list[dict] = []
        self.offsets: list[dict] = []

    def run(self) -> None:
        for no, seg in self.tx.segments[1:-1]:
            handler = _HANDLERS_835.get(seg[0])
            if handler is not None:
                try:
                    handler(self, no, seg)
                except X12Error:
                    raise
                except ValueError as exc:
                    raise X12Error(self.tx.source, no, f"a valid value ({exc})", seg[0]) from None
        self._finish_clp()
        day = self.bpr_date or self.production_date or self.tx.date
        if day is None:
            raise X12Error(self.tx.source, self.tx.start, "a payment date (BPR16 or DTM*405)", "ST")
        payer_id = self.payer["id"] or self.payer["ref_2u"] or self.payer["trn"] or self.payer["name"] or UNKNOWN_PAYER
        self.payer_id = payer_id
        for r in self.rows:
            r.update(remittance_date=day, payer_id=payer_id, payer_name=self.payer["name"], payee_npi=self.payee_npi)
            r["trace_number"] = self.trace
            self.out.remittances.append(r)
            for ln in r["_lines"]:
                ln["remittance_date"] = day
        for o in self.offsets:
            o.update(remittance_date=day, payer_id=payer_id, trace_number=self.trace)
        self.out.offsets.extend(self.offsets)

    def fail(self, no: int, sid: str, expected: str) -> NoReturn:
        raise X12Error(self.tx.source, no, expected, sid)

    # -- header -----------------------------------------------------------------------
    def on_BPR(self, no: int, seg: list[str]) -> None:
        self.bpr_date = x12_date(el(seg, 16))
        total = number(el(seg, 2), "BPR02")
        self.total = "" if total is None else f"{total:.2f}"

    def on_TRN(self, no: int, seg: list[str]) -> None:
        self.payer["trn"] = bounded_el(seg, 3, "payer_id")
        if not self.trace:
            self.trace = el(seg, 2)
            if len(self.trace) > MAX_TRACE_CHARS:
                raise ValueError(f"TRN02 of at most {MAX_TRACE_CHARS} characters")

    def on_N1(self, no: int, seg: list[str]) -> None:
        entity = el(seg, 1)
        if entity == "PR":
            self.loop = "1000A"
            self.payer["name"], self.payer["id"] = bounded_el(seg, 2, "payer_id"), bounded_el(seg, 4, "payer_id")
        elif entity == "PE":
            self.loop = "1000B"
            self.payee_npi = npi_or_none(el(seg, 3), el(seg, 4))

    def on_REF(self, no: int, seg: list[str]) -> None:
        qual = el(seg, 1)
        if self.loop == "1000A" and qual == "2U":
            self.payer["ref_2u"] = bounded_el(seg, 2, "payer_id")
        elif self.loop == "2110" and self.svc is not None and qual == "6R":
            self.svc["control_number"] = el(seg, 2)
        elif self.loop in ("2100", "2110") and self.clp is not None and qual == "G1":
            self.clp["prior_auth_number"] = self.clp["prior_auth_number"] or bounded_el(seg, 2, "prior_auth_number")

    def on_DTM(self, no: int, seg: list[str]) -> None:
        qual, day = el(seg, 1), x12_date(el(seg, 2))
        if day is None:
            return
        if self.loop in ("header", "1000A", "1000B") and qual == "405":
            self.production_date = day
        elif self.loop == "2100" and self.clp is not None and qual in ("050", "232", "233"):
            self.clp["dates"].setdefault(qual, day)
        elif self.loop == "2110" and self.svc is not None:
            if qual in ("472", "150"):
                self.svc["start_date"] = self.svc["start_date"] or day
            if qual in ("472", "151"):
                self.svc["end_date"] = self.svc["end_date"] or day

    # -- claims -----------------------------------------------------------------------
    def on_LX(self, no: int, seg: list[str]) -> None:
        self._finish_clp()
        self.loop = "2000"

    def on_CLP(self, no: int, seg: list[str]) -> None:
        self._finish_clp()
        if not el(seg, 1):
            self.fail(no, "CLP", "a claim id in CLP01")
        bounded_el(seg, 1, "claim_id")
        self.loop = "2100"
        self.seq += 1
        self.clp = {
            "source": self.tx.source,
            "segment": no,
            "seq": self.seq,
            "claim_id": el(seg, 1),
            "status": el(seg, 2),
            "charge": number(el(seg, 3), "CLP03") or 0.0,
            "paid": number(el(seg, 4), "CLP04") or 0.0,
            "patient_responsibility": number(el(seg, 5), "CLP05"),
            "filing_code": el(seg, 6),
            "payer_claim_number": el(seg, 7),
            "facility_code": el(seg, 8),
            "frequency_raw": el(seg, 9),
            "patient_id": "",
            "insured_id": "",
            "rendering_npi": None,
            "inpatient": False,
            "prior_auth_number": "",
            "dates": {},
            "_lines": [],
            "_adjustments": [],
        }
        self.svc = None

    def on_NM1(self, no: int, seg: list[str]) -> None:
        if self.loop != "2100" or self.clp is None:
            return
        entity = el(seg, 1)
        if entity == "QC":
            self.clp["patient_id"] = bounded_el(seg, 9, "patient_id")
        elif entity == "IL":
            self.clp["insured_id"] = bounded_el(seg, 9, "patient_id")
        elif entity == "82":
            self.clp["rendering_npi"] = npi_or_none(el(seg, 8), el(seg, 9))

    def on_MIA(self, no: int, seg: list[str]) -> None:
        if self.clp is not None:
            self.clp["inpatient"] = True

    def on_CAS(self, no: int, seg: list[str]) -> None:
        if self.clp is None:
            self.fail(no, "CAS", "CLP or SVC before an adjustment (CAS)")
        group = el(seg, 1)
        for i in range(2, min(len(seg), 20), 3):
            reason, amount = el(seg, i), number(el(seg, i + 1), f"CAS{i + 1:02d}")
            if not reason:
                continue
            bounded(f"{group}-{reason}", f"CAS01-CAS{i:02d} (as GROUP-REASON)", "carc")
            adj = {
                "group": group,
                "reason": reason,
                "amount": amount or 0.0,
                "quantity": number(el(seg, i + 2), f"CAS{i + 2:02d}", "signed_units"),
                "level": "line" if self.svc is not None else "claim",
            }
            (self.svc["_adjustments"] if self.svc is not None else self.clp["_adjustments"]).append(adj)

    def on_SVC(self, no: int, seg: list[str]) -> None:
        if self.clp is None:
            self.fail(no, "SVC", "CLP before a service line (SVC)")
        self.loop = "2110"
        qual, code, mods = procedure(el(seg, 1), self.comp)
        oq, ocode, omods = procedure(el(seg, 6), self.comp) if el(seg, 6) else ("", "", [])
        self.svc = {
            "segment": no,
            "claim_id": self.clp["claim_id"],
            "remittance_seq": self.clp["seq"],
            "status": self.clp["status"],
            "line_seq": len(self.clp["_lines"]) + 1,
            "qualifier": qual,
            "procedure_code": code,
            "modifiers": mods,
            "submitted_qualifier": oq or qual,
            "submitted_code": ocode or code,
            "submitted_modifiers": omods if ocode else mods,
            "charge": number(el(seg, 2), "SVC02"),
            "paid": number(el(seg, 3), "SVC03"),
            "revenue_code": el(seg, 4),
            "units_paid": number(el(seg, 5), "SVC05", "signed_units"),
            "units_billed": number(el(seg, 7), "SVC07", "signed_units"),
            "allowed": None,
            "start_date": None,
            "end_date": None,
            "control_number": "",
            "remark_codes": [],
            "_adjustments": [],
        }
        self.clp["_lines"].append(self.svc)

    def on_AMT(self, no: int, seg: list[str]) -> None:
        if self.loop == "2110" and self.svc is not None and el(seg, 1) == "B6":
            self.svc["allowed"] = number(el(seg, 2), "AMT02")

    def on_LQ(self, no: int, seg: list[str]) -> None:
        if self.loop == "2110" and self.svc is not None and el(seg, 1) == "HE":
            self.svc["remark_codes"].append(el(seg, 2))

    def on_PLB(self, no: int, seg: list[str]) -> None:
        self._finish_clp()
        self.loop = "footer"
        for i in range(3, len(seg) - 1, 2):
            parts = components(seg[i], self.comp)
            amount = number(el(seg, i + 1), f"PLB{i + 1:02d}")
            if not parts[0].strip() or amount is None:
                continue
            self.offsets.append(
                {
                    "source": self.tx.source,
                    "segment": no,
                    "provider": el(seg, 1),
                    "reason": parts[0].strip().upper(),
                    "reference": parts[1].strip() if len(parts) > 1 else "",
                    "amount": amount,
                }
            )

    def _finish_clp(self) -> None:
        if self.clp is not None:
            self.rows.append(self.clp)
        self.clp, self.svc = None, None


_HANDLERS_835 = segment_handlers(Remit835)
