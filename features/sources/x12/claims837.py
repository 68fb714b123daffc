"""837P/837I claims: :class:`Claims837`, a loop-aware state machine over one 837 transaction (loops
2000A billing provider, 2000B subscriber, 2000C patient, 2300 claim, 2320 other payer, 2400 service line) that
turns it into claim, line and provider rows with the contract's columns. A bad value rejects its claim (or line),
naming the segment and element; a structural problem rejects the whole transaction (:class:`X12Error`)."""

from __future__ import annotations

from typing import Any, NoReturn

from features.contract.bounds import MAX_CHARS, MAX_DIAGNOSIS_CODES, MAX_DIAGNOSIS_POINTERS, MAX_LINE_NUMBER
from features.contract.schema import ICD10_PATTERN, MODIFIER_PATTERN
from features.sources.x12.codes import (
    ICD9_PATTERN,
    ICD9_QUALIFIERS,
    ICD10_QUALIFIERS,
    PLACE_OF_SERVICE_PATTERN,
    UNKNOWN_DIAGNOSIS,
    UNKNOWN_NPI,
    UNKNOWN_PAYER,
    UNKNOWN_POS,
    claim_type_of_version,
    frequency,
    institutional_pos,
    npi_or_none,
    plan_type,
    valid_procedure,
)
from features.sources.x12.elements import (
    bounded,
    bounded_el,
    components,
    el,
    expected_number,
    number,
    procedure,
    x12_date,
)
from features.sources.x12.envelope import Transaction
from features.sources.x12.errors import Rejection, X12Error
from features.sources.x12.parsed import Parsed, segment_handlers


class Claims837:
    """Loop-aware state machine over one 837 transaction (2000A/2000B/2000C/2300/2320/2400)."""

    def __init__(self, tx: Transaction, out: Parsed):
        self.tx, self.out, self.comp = tx, out, tx.delims.component
        self.version_type = claim_type_of_version(tx.version)
        self.submitted: str | None = tx.date
        self.loop = "header"
        self.billing: dict[str, Any] = {}
        self.subscriber: dict[str, Any] = {}
        self.patient_id = ""
        self.claim: dict[str, Any] | None = None
        self.line: dict[str, Any] | None = None
        self.skipping = False

    # -- driving --------------------------------------------------------------------
    def run(self) -> None:
        for no, seg in self.tx.segments[1:-1]:
            sid = seg[0]
            if sid in ("HL", "CLM"):
                self.finish_claim()
                self.skipping = False
            if self.skipping:
                continue
            handler = _HANDLERS_837.get(sid)
            if handler is None:
                continue
            try:
                handler(self, no, seg)
            except X12Error:
                raise
            except ValueError as exc:
                self.reject_claim(no, sid, f"a valid value ({exc})")
        self.finish_claim()

    def fail(self, no: int, sid: str, expected: str) -> NoReturn:
        """A structural problem: the whole transaction is rejected."""
        raise X12Error(self.tx.source, no, expected, sid)

    def reject_claim(self, no: int, sid: str, expected: str) -> None:
        if self.claim is None:
            self.fail(no, sid, expected)
        self.out.rejected.append(Rejection(self.tx.source, no, "claim", f"{sid}: expected {expected}"))
        self.claim, self.line, self.skipping = None, None, True

    # -- header and hierarchy ---------------------------------------------------------
    def on_BHT(self, no: int, seg: list[str]) -> None:
        self.submitted = x12_date(el(seg, 4)) or self.submitted

    def on_REF(self, no: int, seg: list[str]) -> None:
        qual = el(seg, 1)
        if self.loop == "header" and qual == "87" and not self.version_type:
            self.version_type = claim_type_of_version(el(seg, 2))
        elif self.loop == "2300" and qual == "G1" and self.claim is not None:
            self.claim["prior_auth_number"] = self.claim["prior_auth_number"] or bounded_el(seg, 2, "prior_auth_number")
        elif self.loop == "2400" and qual == "6R" and self.line is not None:
            self.line["control_number"] = el(seg, 2)

    def on_HL(self, no: int, seg: list[str]) -> None:
        level = el(seg, 3)
        if level == "20":
            self.loop, self.billing, self.subscriber, self.patient_id = "2000A", {}, {}, ""
        elif level == "22":
            self.loop, self.subscriber, self.patient_id = "2000B", {}, ""
        elif level == "23":
            self.loop, self.patient_id = "2000C", ""
        else:
            self.loop = "other"

    def on_PRV(self, no: int, seg: list[str]) -> None:
        if self.loop == "2000A" and el(seg, 1) == "BI":
            self.billing["taxonomy"] = bounded_el(seg, 3, "taxonomy_code")

    def on_N4(self, no: int, seg: list[str]) -> None:
        if self.loop == "2000A" and self.billing.get("in_85"):
            self.billing["state"] = bounded_el(seg, 2, "state")
            self.billing["in_85"] = False

    def on_NM1(self, no: int, seg: list[str]) -> None:
        entity, qual, ident = el(seg, 1), el(seg, 8), el(seg, 9)
        if self.loop == "2000A":
            self.billing["in_85"] = entity == "85"
            if entity == "85":
                self.billing["npi"] = npi_or_none(qual, ident)
                last, first = el(seg, 3).strip(), el(seg, 4).strip()  # NM102 1: a person, 2: an organisation
                name = f"{last}, {first}" if first and el(seg, 2) == "1" else last
                self.billing["name"] = bounded(name, "NM103", "name")
        elif self.loop == "2000B" and entity == "IL":
            self.subscriber["member_id"] = bounded_el(seg, 9, "patient_id")
        elif self.loop == "2000B" and entity == "PR":
            self.subscriber["payer_id"] = bounded_el(seg, 9, "payer_id")
            self.subscriber["payer_name"] = bounded_el(seg, 3, "payer_id")  # the payer id when NM109 is empty
        elif self.loop == "2000C" and entity == "QC":
            self.patient_id = bounded_el(seg, 9, "patient_id")
        elif self.loop == "2300" and entity == "82" and self.claim is not None:
            self.claim["rendering_npi"] = npi_or_none(qual, ident)

    def on_SBR(self, no: int, seg: list[str]) -> None:
        if self.loop == "2000B":
            self.subscriber["filing_code"] = el(seg, 9)
        elif self.loop in ("2300", "2400", "2320"):
            self.loop = "2320"  # other subscriber: its NM1*IL/PR/REF belong to another payer

    # -- claim ------------------------------------------------------------------------
    def on_CLM(self, no: int, seg: list[str]) -> None:
        if self.loop not in ("2000B", "2000C", "2300", "2320", "2400"):
            self.fail(no, "CLM", "a subscriber loop (HL with level 22) before CLM")
        self.loop = "2300"
        self.out.clm_segments += 1
        c5 = components(el(seg, 5), self.comp)
        self.claim = {
            "segment": no,
            "claim_id": el(seg, 1),
            "total_charge_raw": el(seg, 2),
            "facility": c5[0].strip() if c5 else "",
            "frequency_raw": c5[2].strip() if len(c5) > 2 else "",
            "prior_auth_number": "",
            "rendering_npi": None,
            "has_attachment": False,
            "dx10": [[], []],
            "dx9": 0,
            "dates": {},
            "lines": [],
            "line_kind": "",
        }
        self.line = None
        if not self.claim["claim_id"]:
            self.reject_claim(no, "CLM", "a claim id in CLM01")
            return
        if len(self.claim["claim_id"]) > MAX_CHARS["claim_id"]:
            self.reject_claim(no, "CLM", f"a claim id of at most {MAX_CHARS['claim_id']} characters in CLM01")
            return
        try:
            self.claim["total_charge"] = number(self.claim["total_charge_raw"], "CLM02", "amount")
        except ValueError:
            self.claim["total_charge"] = None
        if self.claim["total_charge"] is None:
            self.reject_claim(no, "CLM", "a total charge: " + expected_number("amount", "CLM02"))

    def on_DTP(self, no: int, seg: list[str]) -> None:
        qual, value = el(seg, 1), x12_date(el(seg, 3))
        if value is None:
            if qual in ("472", "434", "435") and el(seg, 3).strip():  # not a date: counted where it is replaced
                target = self.line if self.loop == "2400" else self.claim
                if target is not None:
                    target["bad_date"] = True
            return
        if self.loop == "2300" and self.claim is not None:
            self.claim["dates"].setdefault(qual, value)
        elif self.loop == "2400" and self.line is not None and qual == "472":
            self.line["service_date"] = value

    def on_PWK(self, no: int, seg: list[str]) -> None:
        if self.claim is not None and self.loop in ("2300", "2400"):
            self.claim["has_attachment"] = True

    def on_HI(self, no: int, seg: list[str]) -> None:
        if self.loop != "2300" or self.claim is None:
            return
        for item in seg[1:]:
            parts = components(item, self.comp)
            if len(parts) < 2:
                continue
            qual, code = parts[0].strip().upper(), parts[1].strip().upper().replace(".", "")
            if qual in ICD10_QUALIFIERS and ICD10_PATTERN.fullmatch(code):
                self.claim["dx10"][ICD10_QUALIFIERS.index(qual)].append(code)
            elif qual in ICD9_QUALIFIERS:
                if ICD9_PATTERN.match(code) or not ICD10_PATTERN.fullmatch(code):
                    self.claim["dx9"] += 1
                else:  # an ICD-10 code under an ICD-9 qualifier
                    self.claim["dx10"][ICD9_QUALIFIERS.index(qual)].append(code)
        if sum(map(len, self.claim["dx10"])) > MAX_DIAGNOSIS_CODES:
            self.reject_claim(
                no, "HI", f"at most {MAX_DIAGNOSIS_CODES} ICD-10 diagnosis codes in the claim's HI segments"
            )

    # -- lines ------------------------------------------------------------------------
    def on_LX(self, no: int, seg: list[str]) -> None:
        if self.claim is None:
            self.fail(no, "LX", "CLM before a service line (LX)")
        self.loop = "2400"
        lx = el(seg, 1)
        ok = lx.isascii() and lx.isdigit() and 1 <= int(lx) <= MAX_LINE_NUMBER
        self.line = {"segment": no, "lx": int(lx) if ok else None, "service_date": None, "control_number": ""}
        self.claim["lines"].append(self.line)

    def on_SV1(self, no: int, seg: list[str]) -> None:
        self._service(no, seg, "SV1", comp_i=1, charge_i=2, units_i=4, pointer_i=7)

    def on_SV2(self, no: int, seg: list[str]) -> None:
        self._service(no, seg, "SV2", comp_i=2, charge_i=3, units_i=5, pointer_i=None)

    def on_SV3(self, no: int, seg: list[str]) -> None:
        self.fail(no, "SV3", "837P (SV1) or 837I (SV2) service lines: dental claims (837D) are not supported")

    def _service(
        self, no: int, seg: list[str], sid: str, comp_i: int, charge_i: int, units_i: int, pointer_i: int | None
    ) -> None:
        if self.line is None or self.loop != "2400":
            self.fail(no, sid, "LX before a service line")
        line, claim = self.line, self.claim
        assert claim is not None  # a line (LX) is only ever open inside a claim
        line["kind"] = sid
        claim["line_kind"] = claim["line_kind"] or sid
        line["qual"], line["code"], line["modifiers"] = procedure(el(seg, comp_i), self.comp)
        # a bad charge or units rejects the line (in _line_rows, with the element named)
        line["sv_segment"], line["charge_el"], line["units_el"] = no, f"{sid}{charge_i:02d}", f"{sid}{units_i:02d}"
        line["charge"], line["units"] = (
            _number_or_bad(el(seg, charge_i), line["charge_el"], "amount"),
            _number_or_bad(el(seg, units_i), line["units_el"], "units"),
        )
        pointers: list[int] = []
        if pointer_i is not None:
            given = [p for p in components(el(seg, pointer_i), self.comp) if p.strip()]
            if len(given) > MAX_DIAGNOSIS_POINTERS:
                self.reject_claim(
                    no, sid, f"at most {MAX_DIAGNOSIS_POINTERS} diagnosis pointers in {sid}{pointer_i:02d}"
                )
                return
            for p in given:
                p = p.strip()
                if p.isascii() and p.isdigit() and 1 <= int(p) <= 12:
                    pointers.append(int(p))
        line["pointers"] = pointers

    # -- finishing --------------------------------------------------------------------
    def finish_claim(self) -> None:
        claim, self.claim, self.line = self.claim, None, None
        if claim is None:
            return
        if self.loop in ("2300", "2320", "2400"):
            self.loop = "2000B" if not self.patient_id else "2000C"
        row = self._claim_row(claim)
        if row is None:
            return
        lines = self._line_rows(claim, row)
        if not lines:
            return
        row["_key"] = (self.tx.source, claim["segment"])
        for ln in lines:
            ln["_key"] = row["_key"]
        self.out.claims.append(row)
        self.out.lines.extend(lines)
        npi = row["billing_npi"]
        if npi != UNKNOWN_NPI:
            self.out.providers.append(
                {
                    "npi": npi,
                    "taxonomy_code": self.billing.get("taxonomy") or None,
                    "state": self.billing.get("state") or None,
                    "name": self.billing.get("name") or None,
                }
            )

    def _claim_row(self, c: dict) -> dict | None:
        src, ph = self.tx.source, []
        ctype = self.version_type or {"SV1": "professional", "SV2": "institutional"}.get(c["line_kind"], "")
        if not ctype:
            self.out.rejected.append(
                Rejection(src, c["segment"], "claim", "CLM: expected a professional or institutional 837 (GS08/ST03)")
            )
            return None
        submitted = self.submitted
        if submitted is None:
            self.out.rejected.append(
                Rejection(src, c["segment"], "claim", "CLM: expected a submission date (BHT04, GS04 or ISA09)")
            )
            return None
        dx = c["dx10"][0] + c["dx10"][1]
        if not dx:
            dx = [UNKNOWN_DIAGNOSIS]
            ph.append("diagnosis R69 (no ICD-10 code" + ("; ICD-9 codes not carried)" if c["dx9"] else ")"))
        npi = self.billing.get("npi")
        if npi is None:
            npi = UNKNOWN_NPI
            ph.append("billing_npi 0000000000 (no NPI in NM1*85)")
        patient = self.subscriber.get("member_id") or self.patient_id
        if not patient:
            patient = f"unknown-patient-{c['claim_id']}"
            ph.append("patient_id unknown-patient-<claim> (no member id)")
        payer_id = self.subscriber.get("payer_id") or self.subscriber.get("payer_name") or UNKNOWN_PAYER
        if ctype == "institutional":
            pos = institutional_pos(c["facility"])
        elif PLACE_OF_SERVICE_PATTERN.fullmatch(c["facility"]):
            pos = c["facility"]
        else:
            pos = UNKNOWN_POS
            ph.append("place_of_service 99 (no CLM05-1)")
        return {
            "claim_id": c["claim_id"],
            "patient_id": patient,
            "billing_npi": npi,
            "rendering_npi": c["rendering_npi"],
            "payer_id": payer_id,
            "plan_type": plan_type(self.subscriber.get("filing_code", ""), self.subscriber.get("payer_name", "")),
            "claim_type": ctype,
            "place_of_service": pos,
            "frequency_code": frequency(c["frequency_raw"]),
            "submitted_date": submitted,
            "total_charge": round(c["total_charge"], 2),
            "diagnosis_codes": dx,
            "prior_auth_number": c["prior_auth_number"] or None,
            "has_attachment": c["has_attachment"],
            "_source": src,
            "_segment": c["segment"],
            "_ph": ph,
            "_service_date": c["dates"].get("472") or c["dates"].get("434") or c["dates"].get("435"),
        }

    def _line_rows(self, c: dict, row: dict) -> list[dict]:
        src = self.tx.source
        out: list[dict] = []
        used: set[int] = set()
        fallback_date = row["_service_date"] or row["submitted_date"]
        for i, ln in enumerate(c["lines"], start=1):
            if "kind" not in ln:
                self.out.rejected.append(Rejection(src, ln["segment"], "line", "LX: expected SV1 or SV2 after LX"))
                continue
            if not valid_procedure(ln["qual"], ln["code"]):
                what = "no HCPCS code (revenue code only)" if not ln["code"] else "not a CPT/HCPCS code"
                self.out.rejected.append(Rejection(src, ln["segment"], "line", f"{ln['kind']}: procedure {what}"))
                continue
            if ln["charge"] is None or ln["charge"] is _BAD:
                self.out.rejected.append(
                    Rejection(
                        src,
                        ln["sv_segment"],
                        "line",
                        f"{ln['kind']}: expected a charge: " + expected_number("amount", ln["charge_el"]),
                    )
                )
                continue
            units = ln["units"]
            if units is _BAD:
                self.out.rejected.append(
                    Rejection(
                        src,
                        ln["sv_segment"],
                        "line",
                        f"{ln['kind']}: expected " + expected_number("units", ln["units_el"]),
                    )
                )
                continue
            if units is None or units == 0:
                units = 1.0
                row["_ph"].append("units 1 (missing or zero units)")
            if ln["service_date"] is None and (ln.get("bad_date") or c.get("bad_date")):
                row["_ph"].append("service_date from the claim or submission date (DTP date not valid)")
            number_ = ln["lx"] if ln["lx"] and ln["lx"] not in used else max(used | {i - 1, 0}) + 1
            used.add(number_)
            mods = [m for m in ln["modifiers"] if MODIFIER_PATTERN.fullmatch(m)][:4]
            out.append(
                {
                    "claim_id": row["claim_id"],
                    "line_number": number_,
                    "service_date": ln["service_date"] or fallback_date,
                    "procedure_code": ln["code"],
                    "modifiers": mods,
                    "units": units,
                    "line_charge": round(ln["charge"], 2),
                    "diagnosis_pointers": ln["pointers"],
                    "_control_number": ln["control_number"],
                }
            )
        if not out:
            self.out.rejected.append(
                Rejection(src, c["segment"], "claim", "CLM: expected at least one service line with a CPT/HCPCS code")
            )
        return out


#: a number that failed :func:`number` (the line is rejected when it is finished)
_BAD = object()


def _number_or_bad(text: str, element: str, kind: str) -> float | None | object:
    try:
        return number(text, element, kind)
    except ValueError:
        return _BAD


_HANDLERS_837 = segment_handlers(Claims837)
