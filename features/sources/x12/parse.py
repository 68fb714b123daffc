"""X12 importer: 837P/837I claims and 835 remittances into a claims history (see docs/x12.md).

Three layers, each usable on its own:

1. a tokenizer that takes the delimiters from each ISA header (or guesses them for a bare
   ``ST..SE`` file) and numbers every segment of the file;
2. an envelope reader that cuts interchanges into transactions (``ST..SE``) and checks the
   envelope, so that a bad transaction is rejected without stopping the others;
3. loop-aware mappers (a small state machine per transaction type) that turn an 837 into
   claim and line rows and an 835 into remittance, service-line, adjustment and offset rows.

:func:`parse_x12` runs these on one text; :func:`import_x12` reads files, joins 835 payments,
reversals and ``WO`` offsets to the claims and validates the result against the data contract;
:func:`import_x12_cli` prints the summary and writes the directory.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import functools
import logging
import os
import re
import stat
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from features.contract.bounds import (
    DATE_YEARS,
    MAX_AMOUNT,
    MAX_CHARS,
    MAX_DIAGNOSIS_CODES,
    MAX_DIAGNOSIS_POINTERS,
    MAX_LINE_NUMBER,
    MAX_UNITS,
)
from features.errors import RecoupError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------
# Placeholders and code maps (documented in docs/x12.md)
# --------------------------------------------------------------------------------------

#: ICD-10-CM R69 "Illness, unspecified": a real, valid code, used when no ICD-10 diagnosis is known.
UNKNOWN_DIAGNOSIS = "R69"
#: 10 digits (as the contract asks) but never a real NPI (NPIs start with 1 or 2, Luhn check fails).
UNKNOWN_NPI = "0000000000"
#: CMS place of service 99 "Other place of service not identified above".
UNKNOWN_POS = "99"
#: Default place of service of an institutional claim: 22, on-campus outpatient hospital.
DEFAULT_INSTITUTIONAL_POS = "22"
UNKNOWN_PAYER = "UNKNOWN"

#: 837I facility type code (first two digits of the type of bill) -> CMS place of service.
FACILITY_TO_POS: dict[str, str] = {
    "11": "21",
    "12": "21",
    "18": "21",  # hospital inpatient (Part A, Part B only), swing bed
    "13": "22",
    "14": "22",
    "85": "22",  # hospital outpatient, other, critical access hospital
    "21": "31",
    "22": "31",
    "23": "31",
    "28": "31",  # skilled nursing facility
    "32": "12",
    "33": "12",
    "34": "12",  # home health -> home
    "65": "54",
    "66": "54",  # intermediate care facility
    "71": "72",
    "72": "65",
    "73": "50",
    "75": "62",
    "76": "53",  # RHC, ESRD, FQHC, CORF, CMHC
    "81": "34",
    "82": "34",  # hospice
    "83": "24",  # ambulatory surgical center
}

MEDICARE_CODES = {"MA", "MB"}
MEDICARE_ADVANTAGE_CODES = {"16"}
MEDICAID_CODES = {"MC"}
MANAGED_CARE_CODES = {"HM", "12", "13", "14", "15", "17"}

PROFESSIONAL_VERSIONS = ("X222", "X098")
INSTITUTIONAL_VERSIONS = ("X223", "X096")
DENTAL_VERSIONS = ("X224", "X097")

PAID_STATUSES = {"1", "2", "3", "19", "20", "21"}
REVERSAL_STATUS = "22"
DENIED_STATUS = "4"
OFFSET_REASON = "WO"

_ICD10_QUALS = ("ABK", "ABF")
_ICD9_QUALS = ("BK", "BF")
_ICD9_RE = re.compile(r"^(?:\d{3,5}|V\d{2,4}|E\d{3,4})$")
_ICD10_RE = re.compile(r"^[A-Z][0-9][0-9A-Z](?:[0-9A-Z]{1,4})?$")
_PROCEDURE_RE = re.compile(r"^(?:\d{4}[0-9A-Z]|[A-Z]\d{4})$")
_MODIFIER_RE = re.compile(r"^[0-9A-Z]{2}$")
_NPI_RE = re.compile(r"^\d{10}$")
_SEGMENT_ID_RE = re.compile(r"^[A-Z][A-Z0-9]{1,2}$")
_PROCEDURE_QUALS = {"HC", "AD", "HP"}  # HCPCS/CPT, ADA dental (HCPCS D-codes), HIPPS-free HCPCS


# --------------------------------------------------------------------------------------
# Errors and rejections
# --------------------------------------------------------------------------------------


class X12Error(RecoupError, ValueError):
    """Malformed X12: names the file, the segment number (1-based in the file) and what was expected."""

    def __init__(self, source: str, segment: int | None, expected: str, segment_id: str = ""):
        self.source, self.segment, self.expected, self.segment_id = source, segment, expected, segment_id
        where = f"segment {segment}" + (f" ({segment_id})" if segment_id else "") if segment else "start of file"
        super().__init__(f"{source}: {where}: expected {expected}")


@dataclass(frozen=True)
class Rejection:
    """Something not imported (or imported with a caveat): where, what kind, why. Never holds patient data."""

    source: str
    segment: int | None
    kind: str  # file | transaction | claim | line | remittance | recoupment | warning
    reason: str

    def __str__(self) -> str:
        where = f"segment {self.segment}" if self.segment else "file"
        what = "warning" if self.kind == "warning" else f"{self.kind} not imported"
        return f"{self.source}: {where}: {what}: {self.reason}"


# --------------------------------------------------------------------------------------
# Small value parsers
# --------------------------------------------------------------------------------------

_DATE_CACHE: dict[str, str | None] = {}


def x12_date(value: str) -> str | None:
    """``CCYYMMDD`` (or the start of ``RD8``/``DT`` values) -> ISO date; ``None`` when not a date (ASCII
    digits only, a year in the contract's range :data:`~features.contract.bounds.DATE_YEARS`)."""
    key = value[:8]
    if key in _DATE_CACHE:
        return _DATE_CACHE[key]
    out: str | None = None
    if len(key) == 8 and key.isascii() and key.isdigit() and DATE_YEARS[0] <= int(key[:4]) <= DATE_YEARS[1]:
        try:
            out = dt.date(int(key[:4]), int(key[4:6]), int(key[6:8])).isoformat()
        except ValueError:
            out = None
    if len(_DATE_CACHE) < 100_000:
        _DATE_CACHE[key] = out
    return out


def isa_date(value: str) -> str | None:
    """ISA09 ``YYMMDD`` -> ISO date (years 00-69 are 20xx, 70-99 are 19xx)."""
    value = value.strip()
    if len(value) != 6 or not (value.isascii() and value.isdigit()):
        return None
    century = "20" if int(value[:2]) < 70 else "19"
    return x12_date(century + value)


def el(seg: list[str], i: int) -> str:
    """Element ``i`` of a segment (``seg[0]`` is the segment id), stripped; '' when absent."""
    return seg[i].strip() if i < len(seg) else ""


def bounded(value: str, element: str, column: str) -> str:
    """``value`` (an element's text) if it fits the contract column's length (``features.contract.bounds.MAX_CHARS``);
    else ``ValueError`` naming the element (the mappers reject its claim or transaction, naming the segment)."""
    n = MAX_CHARS[column]
    if len(value) > n:
        raise ValueError(f"{element} of at most {n} characters")
    return value


def bounded_el(seg: list[str], i: int, column: str) -> str:
    """:func:`el` within the length of a contract column (:func:`bounded`)."""
    return bounded(el(seg, i), f"{seg[0]}{i:02d}", column)


#: an X12 decimal (data type R): ASCII digits, an optional leading minus (or plus) and decimal point,
#: an optional exponent; not ``inf``, ``nan``, ``1_000`` or other digits that Python's float() reads
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
#: what each bounded kind of number is (the messages) and its bounds: (maximum, signed)
_NUMBER_KINDS: dict[str, tuple[str, float, bool]] = {
    "amount": ("an amount >= 0 and at most {maximum:,}", MAX_AMOUNT, False),
    "signed_amount": ("an amount of at most {maximum:,} either way", MAX_AMOUNT, True),
    "units": ("units > 0 and at most {maximum:,}", MAX_UNITS, False),
    "signed_units": ("a quantity of at most {maximum:,} either way", MAX_UNITS, True),
}


def expected_number(kind: str, element: str) -> str:
    """What element ``element`` of kind ``kind`` must hold, e.g. ``an amount >= 0 ... in CLM02``."""
    text, maximum, _ = _NUMBER_KINDS[kind]
    return f"{text.format(maximum=maximum)} in {element}"


def number(text: str, element: str, kind: str = "signed_amount") -> float | None:
    """An X12 decimal of element ``element`` (e.g. ``CLM02``) within the contract's bounds of ``kind``
    (``amount``, ``signed_amount``, ``units``, ``signed_units``: :data:`_NUMBER_KINDS`, bounds from
    :mod:`features.contract.bounds`); ``None`` when empty. Raises ``ValueError`` naming the element and what it
    expects (never the value: it may be patient data) when it is not a plain finite decimal in range.
    ``units`` accepts 0 (a placeholder is used for missing or zero units)."""
    text = text.strip()
    if not text:
        return None
    _, maximum, signed = _NUMBER_KINDS[kind]
    x = float(text) if _DECIMAL_RE.fullmatch(text) else float("nan")
    if not (abs(x) <= maximum and (signed or x >= 0)):  # NaN, inf, too large, or negative
        raise ValueError(expected_number(kind, element))
    return x


# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delimiters:
    """The separators of one interchange."""

    element: str = "*"
    component: str = ":"
    segment: str = "~"
    repetition: str | None = None


Segment = tuple[int, list[str]]  # (segment number in the file, [id, element 1, ...])


def read_isa(text: str, start: int, source: str, segment_no: int) -> tuple[Delimiters, list[str]]:
    """Delimiters from the ISA header at ``start``: element separator at position 4, ISA16, terminator."""
    elem = text[start + 3 : start + 4]
    if not elem or elem.isalnum() or elem.isspace():
        raise X12Error(source, segment_no, "an ISA header with its element separator at position 4", "ISA")
    pos = start
    for _ in range(16):
        pos = text.find(elem, pos + 1)
        if pos < 0:
            raise X12Error(source, segment_no, "an ISA header with 16 elements", "ISA")
    component = text[pos + 1 : pos + 2]
    segment = text[pos + 2 : pos + 3]
    if not component or not segment or component.isalnum() or segment.isalnum() or component == elem:
        raise X12Error(source, segment_no, "ISA16 (component separator) followed by the segment terminator", "ISA")
    fields = text[start : pos + 2].split(elem)
    if len(fields) != 17:
        raise X12Error(source, segment_no, "an ISA header with 16 elements", "ISA")
    rep = fields[11]
    repetition = rep if fields[12].strip() >= "00501" and rep and not rep.isalnum() else None
    return Delimiters(elem, component, segment, repetition), fields


def _bare_delimiters(text: str, start: int) -> Delimiters:
    """Delimiters of a file that starts directly with GS or ST (no ISA): guessed from the text."""
    elem = text[start + 2 : start + 3]
    seg = "~" if "~" in text else "\n"
    return Delimiters(elem or "*", ":", seg, None)


def tokenize(text: str, source: str) -> Iterator[tuple[Delimiters, list[Segment]]]:
    """Yield (delimiters, numbered segments) per interchange; a bare ``GS``/``ST`` file is one chunk."""
    n = 0
    pos = 0
    length = len(text)
    first = True
    while pos < length:
        while pos < length and text[pos] in " \t\r\n\ufeff\x00":
            pos += 1
        if pos >= length:
            return
        if text.startswith("ISA", pos):
            delims, _ = read_isa(text, pos, source, n + 1)
            end = _interchange_end(text, pos, delims)
        elif first and text[pos : pos + 2] in ("GS", "ST") and not text[pos + 2 : pos + 3].isalnum():
            delims, end = _bare_delimiters(text, pos), length
        else:
            head = text[pos : pos + 3]
            raise X12Error(
                source,
                n + 1,
                "an ISA interchange header" + (" or ST" if first else ""),
                head if _SEGMENT_ID_RE.match(head) else "",
            )
        first = False
        segments: list[Segment] = []
        for raw in text[pos:end].split(delims.segment):
            raw = raw.strip()
            if raw:
                n += 1
                segments.append((n, raw.split(delims.element)))
        yield delims, segments
        pos = end


@functools.lru_cache(maxsize=64)
def _iea_pattern(segment: str, element: str) -> re.Pattern:
    return re.compile(
        re.escape(segment) + r"\s*IEA" + re.escape(element) + "[^" + re.escape(segment) + "]*" + re.escape(segment)
    )


def _interchange_end(text: str, start: int, d: Delimiters) -> int:
    """Index just after the IEA segment of the interchange starting at ``start`` (or end of text)."""
    m = _iea_pattern(d.segment, d.element).search(text, start)
    return m.end() if m else len(text)


# --------------------------------------------------------------------------------------
# Envelope: interchanges, groups, transactions
# --------------------------------------------------------------------------------------


@dataclass
class Transaction:
    """One ``ST..SE`` transaction set with its envelope context."""

    source: str
    code: str  # ST01: 837 or 835
    control: str
    version: str  # GS08 / ST03, e.g. 005010X222A1
    date: str | None  # GS04, else ISA09 (ISO)
    delims: Delimiters
    segments: list[Segment]  # ST .. SE inclusive

    @property
    def start(self) -> int:
        return self.segments[0][0]


def split_transactions(text: str, source: str) -> tuple[list[Transaction], list[Rejection]]:
    """Cut a file into transactions; envelope problems become rejections (bad ISA raises)."""
    txs: list[Transaction] = []
    rejected: list[Rejection] = []
    try:
        for delims, segments in tokenize(text, source):
            _split_interchange(source, delims, segments, txs, rejected)
    except X12Error as exc:
        if not txs and not rejected:
            raise
        rejected.append(Rejection(source, exc.segment, "file", f"rest of file: expected {exc.expected}"))
    return txs, rejected


def _split_interchange(
    source: str, delims: Delimiters, segments: list[Segment], txs: list[Transaction], rejected: list[Rejection]
) -> None:
    isa_day: str | None = None
    gs_day: str | None = None
    version = ""
    current: list[Segment] | None = None
    for no, seg in segments:
        sid = seg[0]
        if sid not in _SEEN_IDS and not _segment_id_ok(seg):
            if current is not None:
                rejected.append(Rejection(source, no, "transaction", f"expected a segment identifier, got {sid[:3]!r}"))
                current = None
            else:
                rejected.append(Rejection(source, no, "file", f"expected a segment identifier, got {sid[:3]!r}"))
            continue
        if sid == "ST":
            if current is not None:
                rejected.append(
                    Rejection(source, current[0][0], "transaction", f"expected SE before the next ST (segment {no})")
                )
            current = [(no, seg)]
        elif sid == "SE":
            if current is None:
                rejected.append(Rejection(source, no, "file", "expected ST before SE"))
                continue
            current.append((no, seg))
            txs.append(_make_transaction(source, delims, current, version, gs_day or isa_day, rejected))
            current = None
        elif current is not None:
            if sid in ("GS", "GE", "IEA", "ISA"):
                rejected.append(
                    Rejection(source, current[0][0], "transaction", f"expected SE before {sid} (segment {no})")
                )
                current = None
            else:
                current.append((no, seg))
        elif sid == "ISA":
            isa_day = isa_date(el(seg, 9))
        elif sid == "GS":
            gs_day = x12_date(el(seg, 4)) or isa_day
            version = el(seg, 8)
        elif sid in ("GE", "IEA"):
            continue
        else:
            rejected.append(Rejection(source, no, "file", f"expected ST, GE or IEA, got {sid}"))
    if current is not None:
        rejected.append(
            Rejection(source, current[0][0], "transaction", "expected SE, reached the end of the file (truncated?)")
        )


_SEEN_IDS: set[str] = set()


def _segment_id_ok(seg: list[str]) -> bool:
    """Whether ``seg[0]`` is a segment identifier (normalised in place; good ids are remembered)."""
    sid = seg[0] = seg[0].strip()
    if _SEGMENT_ID_RE.match(sid):
        if len(_SEEN_IDS) < 1000:
            _SEEN_IDS.add(sid)
        return True
    return False


def _make_transaction(
    source: str, delims: Delimiters, segs: list[Segment], version: str, day: str | None, rejected: list[Rejection]
) -> Transaction:
    st, se = segs[0][1], segs[-1][1]
    count = el(se, 1)
    if count != str(len(segs)):
        rejected.append(
            Rejection(
                source, segs[-1][0], "warning", f"SE01 says {count or '?'} segments, the transaction has {len(segs)}"
            )
        )
    return Transaction(source, el(st, 1), el(st, 2), el(st, 3) or version, day, delims, segs)


# --------------------------------------------------------------------------------------
# Shared helpers for the mappers
# --------------------------------------------------------------------------------------


def plan_type(filing_code: str, payer_name: str = "") -> str:
    """Contract plan type from the claim filing indicator (SBR09 / CLP06) and the payer's name."""
    code = filing_code.strip().upper()
    name = payer_name.upper()
    if code in MEDICARE_CODES:
        return "medicare"
    if code in MEDICARE_ADVANTAGE_CODES:
        return "medicare_advantage"
    if code in MEDICAID_CODES:
        return "medicaid"
    if code in MANAGED_CARE_CODES and "MEDICARE" in name:
        return "medicare_advantage"
    if code in MANAGED_CARE_CODES and "MEDICAID" in name:
        return "medicaid"
    return "commercial"


def institutional_pos(facility_code: str) -> str:
    """Place of service of an institutional claim from its facility type code (type of bill)."""
    return FACILITY_TO_POS.get(facility_code.strip()[:2], DEFAULT_INSTITUTIONAL_POS)


def frequency(code: str) -> str:
    """Claim frequency: 7 replacement and 8 void kept; anything else is an original (1)."""
    code = code.strip()
    return code if code in ("7", "8") else "1"


def components(value: str, component: str) -> list[str]:
    """Split a composite; when ISA16 does not occur in it, tolerate the other common separator (':' / '>')."""
    if component not in value:
        for alt in (":", ">"):
            if alt != component and alt in value:
                return value.split(alt)
    return value.split(component)


def procedure(composite: str, component: str) -> tuple[str, str, list[str]]:
    """(qualifier, code, modifiers) of an SV1-1 / SV2-2 / SVC-1 composite."""
    parts = components(composite, component)
    qual = parts[0].strip().upper()
    code = parts[1].strip().upper() if len(parts) > 1 else ""
    mods = [p.strip().upper() for p in parts[2:6] if p.strip()]
    return qual, code, mods


def valid_procedure(qual: str, code: str) -> bool:
    return qual in _PROCEDURE_QUALS and bool(_PROCEDURE_RE.match(code))


def npi_or_none(qualifier: str, ident: str) -> str | None:
    ident = ident.strip()
    return ident if qualifier.strip() == "XX" and _NPI_RE.match(ident) else None


@dataclass
class Parsed:
    """Rows parsed from one text (one or more files when merged), before joining."""

    claims: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    providers: list[dict] = field(default_factory=list)
    remittances: list[dict] = field(default_factory=list)
    remittance_lines: list[dict] = field(default_factory=list)
    adjustments: list[dict] = field(default_factory=list)
    offsets: list[dict] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    transactions: dict[str, int] = field(default_factory=dict)
    clm_segments: int = 0

    def extend(self, other: "Parsed") -> None:
        self.clm_segments += other.clm_segments
        for name in (
            "claims",
            "lines",
            "providers",
            "remittances",
            "remittance_lines",
            "adjustments",
            "offsets",
            "rejected",
        ):
            getattr(self, name).extend(getattr(other, name))
        for code, n in other.transactions.items():
            self.transactions[code] = self.transactions.get(code, 0) + n


# --------------------------------------------------------------------------------------
# 837 mapper
# --------------------------------------------------------------------------------------


class Claims837:
    """Loop-aware state machine over one 837 transaction (2000A/2000B/2000C/2300/2320/2400)."""

    def __init__(self, tx: Transaction, out: Parsed):
        self.tx, self.out, self.comp = tx, out, tx.delims.component
        self.version_type = _claim_type_of_version(tx.version)
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

    def fail(self, no: int, sid: str, expected: str) -> None:
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
            self.version_type = _claim_type_of_version(el(seg, 2))
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
            if qual in _ICD10_QUALS and _ICD10_RE.match(code):
                self.claim["dx10"][_ICD10_QUALS.index(qual)].append(code)
            elif qual in _ICD9_QUALS:
                if _ICD9_RE.match(code) or not _ICD10_RE.match(code):
                    self.claim["dx9"] += 1
                else:  # an ICD-10 code under an ICD-9 qualifier
                    self.claim["dx10"][_ICD9_QUALS.index(qual)].append(code)
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
        line = self.line
        line["kind"] = sid
        self.claim["line_kind"] = self.claim["line_kind"] or sid  # type: ignore[index]
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
        elif re.fullmatch(r"\d{2}", c["facility"]):
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
            mods = [m for m in ln["modifiers"] if _MODIFIER_RE.match(m)][:4]
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


def _handlers(cls: type) -> dict[str, Any]:
    """Segment id -> handler function of a mapper class (its ``on_XXX`` methods)."""
    return {name[3:]: fn for name, fn in vars(cls).items() if name.startswith("on_")}


_HANDLERS_837 = _handlers(Claims837)


def _claim_type_of_version(version: str) -> str:
    v = version.upper()
    if any(x in v for x in PROFESSIONAL_VERSIONS):
        return "professional"
    if any(x in v for x in INSTITUTIONAL_VERSIONS):
        return "institutional"
    if any(x in v for x in DENTAL_VERSIONS):
        return "dental"
    return ""


# --------------------------------------------------------------------------------------
# 835 mapper
# --------------------------------------------------------------------------------------


class Remit835:
    """State machine over one 835: header (BPR/TRN/DTM/N1), claims (CLP, 2100), lines (SVC, 2110), PLB."""

    def __init__(self, tx: Transaction, out: Parsed, seq_start: int):
        self.tx, self.out, self.comp = tx, out, tx.delims.component
        self.seq = seq_start
        self.bpr_date: str | None = None
        self.production_date: str | None = None
        self.payer = {"id": "", "ref_2u": "", "trn": "", "name": ""}
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
        for r in self.rows:
            r.update(remittance_date=day, payer_id=payer_id, payer_name=self.payer["name"], payee_npi=self.payee_npi)
            self.out.remittances.append(r)
            for ln in r["_lines"]:
                ln["remittance_date"] = day
        for o in self.offsets:
            o.update(remittance_date=day, payer_id=payer_id)
        self.out.offsets.extend(self.offsets)

    def fail(self, no: int, sid: str, expected: str) -> None:
        raise X12Error(self.tx.source, no, expected, sid)

    # -- header -----------------------------------------------------------------------
    def on_BPR(self, no: int, seg: list[str]) -> None:
        self.bpr_date = x12_date(el(seg, 16))

    def on_TRN(self, no: int, seg: list[str]) -> None:
        self.payer["trn"] = bounded_el(seg, 3, "payer_id")

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


_HANDLERS_835 = _handlers(Remit835)


# --------------------------------------------------------------------------------------
# Parsing a text
# --------------------------------------------------------------------------------------


def parse_x12(text: str, source: str) -> Parsed:
    """Parse one X12 text (any number of interchanges/transactions) into rows and rejections.

    Raises :class:`X12Error` when the text cannot be read at all (no ISA/ST start, bad ISA header).
    A bad transaction is recorded in ``.rejected`` and the others are still parsed.
    """
    out = Parsed()
    with _gc_paused():
        return _parse_into(out, text, source)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: parsing allocates millions of small acyclic objects."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _parse_into(out: Parsed, text: str, source: str) -> Parsed:
    txs, rejected = split_transactions(text, source)
    out.rejected.extend(rejected)
    seq = 0
    for tx in txs:
        sub = Parsed()
        try:
            if tx.code == "837":
                if _claim_type_of_version(tx.version) == "dental":
                    raise X12Error(source, tx.start, "837P or 837I (dental 837D is not supported)", "ST")
                Claims837(tx, sub).run()
            elif tx.code == "835":
                mapper = Remit835(tx, sub, seq)
                mapper.run()
                seq = mapper.seq
            else:
                raise X12Error(source, tx.start, f"an 837 or 835 transaction, got {tx.code or '?'}", "ST")
        except X12Error as exc:
            out.rejected.append(Rejection(source, exc.segment, "transaction", _reason(exc)))
            continue
        out.extend(sub)
        out.transactions[tx.code] = out.transactions.get(tx.code, 0) + 1
    return out


def _reason(exc: X12Error) -> str:
    return (f"{exc.segment_id}: " if exc.segment_id else "") + f"expected {exc.expected}"


# --------------------------------------------------------------------------------------
# Joining 837 claims and 835 remittances
# --------------------------------------------------------------------------------------


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


@dataclass
class ImportResult:
    """What :func:`import_x12` returns: frames, the validated history, a summary and the rejections."""

    tables: dict[str, Any]  # raw contract frames + remittances/remittance_lines/adjustments/offsets
    history: Any  # features.contract.History
    summary: ImportSummary
    rejected: list[Rejection]


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
            rec = _offset_recoupment(o, claims, by_payer_number, reversed_amounts, rejected)
            recoupments.extend([rec] if rec else [])

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
        ln = by_control.get(svc["control_number"]) if svc["control_number"] else None
        if ln is None or id(ln) in used:
            ln = next((x for x in by_code.get(svc["submitted_code"], []) if id(x) not in used), None)
        if ln is not None:
            used.add(id(ln))
            pairs.append((ln, svc))
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
    elif re.fullmatch(r"\d{2}", base["facility_code"]):
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
                "modifiers": [m for m in s["submitted_modifiers"] if _MODIFIER_RE.match(m)][:4],
                "units": units,
                "line_charge": round(abs(s["charge"] or 0.0), 2),
                "diagnosis_pointers": [],
                "_control_number": s["control_number"],
            }
        )
    return claim, lines


# --------------------------------------------------------------------------------------
# Frames and the public entry points
# --------------------------------------------------------------------------------------


#: Columns of the non-contract frames in ``ImportResult.tables`` (835 facts as read).
EXTRA_COLUMNS: dict[str, list[str]] = {
    "remittances": [
        "source",
        "segment",
        "seq",
        "claim_id",
        "status",
        "charge",
        "paid",
        "patient_responsibility",
        "filing_code",
        "payer_claim_number",
        "facility_code",
        "frequency_raw",
        "patient_id",
        "insured_id",
        "rendering_npi",
        "inpatient",
        "prior_auth_number",
        "remittance_date",
        "payer_id",
        "payer_name",
        "payee_npi",
    ],
    "remittance_lines": [
        "source",
        "segment",
        "claim_id",
        "remittance_seq",
        "status",
        "line_seq",
        "qualifier",
        "procedure_code",
        "modifiers",
        "submitted_qualifier",
        "submitted_code",
        "submitted_modifiers",
        "charge",
        "paid",
        "revenue_code",
        "units_paid",
        "units_billed",
        "allowed",
        "start_date",
        "end_date",
        "control_number",
        "remark_codes",
        "remittance_date",
        "adjustments",
    ],
    "adjustments": [
        "source",
        "remittance_seq",
        "claim_id",
        "line_seq",
        "level",
        "group",
        "reason",
        "amount",
        "quantity",
        "remittance_date",
    ],
    "offsets": ["source", "segment", "provider", "reason", "reference", "amount", "remittance_date", "payer_id"],
}


def _frames(rows: dict[str, list[dict]], parsed: Parsed) -> dict[str, Any]:
    import pandas as pd

    from features.contract import TABLES

    def frame(table: str, data: list[dict]) -> pd.DataFrame:
        cols = [c.name for c in TABLES[table]]
        df = pd.DataFrame.from_records(data, columns=cols) if data else pd.DataFrame(columns=cols)
        for c in ("diagnosis_codes", "modifiers", "diagnosis_pointers"):
            if c in df.columns:
                df[c] = df[c].map(lambda v: ";".join(map(str, v)) if isinstance(v, list) else "")
        return df

    tables: dict[str, Any] = {
        "claims": frame("claims", rows["claims"]),
        "claim_lines": frame("claim_lines", rows["claim_lines"]),
        "recoupments": frame("recoupments", rows["recoupments"]),
        "providers": frame("providers", rows["providers"]),
    }
    remits = [{k: v for k, v in r.items() if not k.startswith("_") and k != "dates"} for r in parsed.remittances]
    for name, data in (
        ("remittances", remits),
        ("remittance_lines", parsed.remittance_lines),
        ("adjustments", parsed.adjustments),
        ("offsets", parsed.offsets),
    ):
        tables[name] = pd.DataFrame.from_records(data, columns=EXTRA_COLUMNS[name])
    return tables


def _flatten_remittances(parsed: Parsed) -> None:
    """Move service lines and adjustments of the parsed CLPs into their own row lists."""
    for r in parsed.remittances:
        for a in r["_adjustments"]:
            parsed.adjustments.append(
                {
                    "remittance_seq": r["seq"],
                    "claim_id": r["claim_id"],
                    "line_seq": None,
                    "remittance_date": r["remittance_date"],
                    "source": r["source"],
                    **a,
                }
            )
        for s in r["_lines"]:
            row = {k: v for k, v in s.items() if not k.startswith("_")}
            row["source"] = r["source"]
            row["adjustments"] = ";".join(f"{a['group']}-{a['reason']}:{a['amount']:g}" for a in s["_adjustments"])
            parsed.remittance_lines.append(row)
            for a in s["_adjustments"]:
                parsed.adjustments.append(
                    {
                        "remittance_seq": r["seq"],
                        "claim_id": r["claim_id"],
                        "line_seq": s["line_seq"],
                        "remittance_date": r["remittance_date"],
                        "source": r["source"],
                        **a,
                    }
                )


#: the largest X12 file read (the whole file is held in memory; interchanges are far smaller in practice)
MAX_FILE_BYTES = 2 * 1024**3


def read_text(path: Path) -> str:
    """Read an X12 file as text (UTF-8, else Latin-1); ``RecoupError`` when it cannot be read."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # /dev/zero would fill memory, a FIFO would wait forever
            raise RecoupError(f"{path}: not a regular file, expected an X12 file")
        if st.st_size > MAX_FILE_BYTES:
            raise RecoupError(
                f"{path}: {st.st_size:,} bytes, over the {MAX_FILE_BYTES:,} bytes an X12 file may have here; split it"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise RecoupError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    if b"\x00" in data[:4096].replace(b"\x00\x00", b""):
        raise RecoupError(f"{path}: not a text file (binary data), expected X12")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def import_x12(paths: Iterable[str | Path]) -> ImportResult:
    """Read 837 and 835 files into a validated claims history (see docs/x12.md for the mapping)."""
    t0 = time.perf_counter()
    paths = [Path(p) for p in paths]
    if not paths:
        raise RecoupError("no X12 files given")
    parts = []
    for path in paths:
        one = parse_x12(read_text(path), str(path))
        log.info(
            "%s: %d claim(s), %d remittance(s), %d rejected",
            path.name,
            len(one.claims),
            len(one.remittances),
            sum(1 for r in one.rejected if r.kind != "warning"),
        )
        parts.append(one)
    return import_parsed(parts, started=t0)


def import_parsed(parts: list[Parsed], started: float | None = None) -> ImportResult:
    """Join the parsed files (one :class:`Parsed` per file, in order) and validate the history."""
    from features.contract import validate_frames

    t0 = started if started is not None else time.perf_counter()
    parsed = Parsed()
    seq = 0
    for i, one in enumerate(parts):
        for r in one.remittances:
            r["_file_index"] = i
            r["seq"] += seq
            for s in r["_lines"]:
                s["remittance_seq"] = r["seq"]
        seq += len(one.remittances)
        parsed.extend(one)
    with _gc_paused():
        _flatten_remittances(parsed)
        rows, summary, rejected = join(parsed)
    summary.files = len(parts)
    tables = _frames(rows, parsed)
    if not parsed.transactions:
        first = next((str(r) for r in rejected if r.kind != "warning"), "no 837 or 835 transaction found")
        raise RecoupError(f"nothing importable in {len(parts)} file(s): {first}")
    contract_tables = {k: tables[k] for k in ("claims", "claim_lines", "recoupments", "providers")}
    history = validate_frames(contract_tables)
    summary.seconds = time.perf_counter() - t0
    return ImportResult(tables=tables, history=history, summary=summary, rejected=rejected)


def import_x12_cli(files: list[Path], out: Path, overwrite: bool = False) -> ImportResult:
    """``recoup import-x12``: import, print the summary, write the claims history directory as CSV.

    The folder is replaced whole (:func:`features.outputs.write_dir`): it must be new, empty or an
    earlier ``recoup import-x12`` output, unless ``overwrite``."""
    from features.contract import write_history
    from features.outputs import check_dir_output, write_dir

    check_dir_output(out, "import-x12", overwrite)  # before the work, not only after it
    result = import_x12(files)
    write_dir(out, "import-x12", lambda d: write_history(result.history, d), overwrite=overwrite)
    print(result.summary)
    print(f"wrote {out}")
    return result
