"""Request and response models of the scoring service, and CLAIM(s) -> typed contract frames.

Two layers of checks, one for shape and one for meaning:

- pydantic checks the *shape* of a CLAIM (fields present, JSON types, list lengths, size limits);
- every *meaning* rule (dates, NPIs, enums, codes, units > 0, charges >= 0, unique line numbers) is
  the data contract's own: :func:`claims_to_frames` turns the claims into raw ``claims`` /
  ``claim_lines`` tables and runs :func:`features.contract.validate_frames` on them, exactly as a
  claims history directory is checked. Each contract :class:`~features.contract.Problem` is mapped
  back to the claim and the JSON field it came from (``claims[3].lines[0].units``).

The field names are the contract's columns (``features.contract.TABLES``): ``claims`` without
``paid_*`` plus ``lines``; a line has the ``claim_lines`` columns without ``claim_id``/``line_paid``.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from features.contract import TABLES, ContractError, validate_frames

#: limits of one request (a claim with more lines, or a batch with more claims, is refused with 422)
MAX_LINES_PER_CLAIM = 50
MAX_CLAIMS_PER_BATCH = 1000
MAX_DIAGNOSIS_CODES = 25  # 12 on an 837P, 25 on an 837I
MAX_BODY_BYTES = 16 * 1024 * 1024  # 1,000 claims of 50 lines fit; see serving.service

#: columns of the contract that a CLAIM does not carry (outcomes, and the line's link to its claim)
EXCLUDED_CLAIM_COLUMNS = ("paid_date", "paid_amount")
EXCLUDED_LINE_COLUMNS = ("claim_id", "line_paid")


def _code(v: Any) -> Any:
    """Codes and identifiers: accept JSON numbers (``11``, ``1234567890``) as their text."""
    if isinstance(v, bool):
        return v  # leave it to pydantic to refuse
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return v


def _date(v: Any) -> Any:
    if isinstance(v, (_dt.date, pd.Timestamp)):
        return v.strftime("%Y-%m-%d")
    return v


def _list(v: Any) -> Any:
    if isinstance(v, (tuple, np.ndarray)):
        return list(v)
    return v


Code = Annotated[str, BeforeValidator(_code)]
DateText = Annotated[str, BeforeValidator(_date), Field(description="YYYY-MM-DD")]
CodeList = Annotated[list[Code] | str, BeforeValidator(_list)]
IntList = Annotated[list[int] | str, BeforeValidator(_list)]

_CONFIG = ConfigDict(extra="ignore", allow_inf_nan=False, str_strip_whitespace=True, str_max_length=200,
                     ser_json_inf_nan="null")


class Line(BaseModel):
    """One service line: the ``claim_lines`` columns without ``claim_id`` and ``line_paid``."""

    model_config = _CONFIG

    line_number: int = Field(description="LX01, >= 1, unique within the claim")
    service_date: DateText
    procedure_code: Code = Field(description="CPT or HCPCS Level II code")
    modifiers: CodeList | None = Field(None, description="up to 4 two-character modifiers; array or 'a;b'")
    units: float = Field(description="> 0")
    line_charge: float = Field(description=">= 0")
    diagnosis_pointers: IntList | None = Field(None, description="1..12; array or '1;2'")


class Claim(BaseModel):
    """A CLAIM: the ``claims`` columns without ``paid_*``, plus its ``lines``."""

    model_config = _CONFIG

    claim_id: Code
    patient_id: Code = Field(description="pseudonymous member id")
    billing_npi: Code
    rendering_npi: Code | None = None
    payer_id: Code
    plan_type: str = Field(description="medicare, medicare_advantage, medicaid or commercial")
    claim_type: str = Field(description="professional or institutional")
    place_of_service: Code
    frequency_code: Code = Field(description="1 original, 7 replacement, 8 void")
    submitted_date: DateText
    total_charge: float = Field(description=">= 0")
    diagnosis_codes: CodeList = Field(description="ICD-10-CM without dots, principal first; array or 'a;b'")
    prior_auth_number: Code | None = None
    has_attachment: bool | None = None
    lines: list[Line] = Field(min_length=1, max_length=MAX_LINES_PER_CLAIM)


class Options(BaseModel):
    """Additive request options (also accepted as query parameters ``?explain=false&record=false``)."""

    explain: bool = Field(True, description="add plain-language reasons (false: faster)")
    record: bool = Field(True, description="add the claim to the service's history (false: what-if scoring)")


class ScoreRequest(Options):
    model_config = ConfigDict(extra="ignore")
    claim: Claim


class BatchRequest(Options):
    """The batch body; each claim is checked on its own so that one bad claim does not fail the rest."""

    model_config = ConfigDict(extra="ignore")
    claims: list[Any] = Field(max_length=MAX_CLAIMS_PER_BATCH)


class CauseProbability(BaseModel):
    cause: str
    probability: float


class Reason(BaseModel):
    code: str
    text: str
    contribution: float


class Score(BaseModel):
    """SCORE, as in the contract."""

    claim_id: str
    recoupment_probability: float
    risk_band: str
    expected_recoupment_amount: float
    causes: list[CauseProbability]
    reasons: list[Reason]
    rule_hits: list[dict[str, Any]]
    model_version: str


class FieldError(BaseModel):
    field: str
    message: str
    value: Any = None


class ErrorDetail(BaseModel):
    type: str
    message: str
    fields: list[FieldError] = []


class ErrorEntry(BaseModel):
    """A claim that failed validation (the HTTP 4xx body of ``/score``, an entry of ``/score_batch``)."""

    claim_id: str | None = None
    error: ErrorDetail


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------


def field_path(prefix: str, loc: tuple | list) -> str:
    """``("lines", 0, "units")`` under ``claim`` -> ``claim.lines[0].units``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _shown(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float)):
        return None if isinstance(v, float) and not math.isfinite(v) else v
    text = str(v) if not isinstance(v, (dict, list)) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def pydantic_fields(err: ValidationError, prefix: str) -> list[dict]:
    """Field errors of a pydantic ValidationError, with paths in the request body."""
    out = []
    for e in err.errors(include_url=False):
        loc = [p for p in e.get("loc", ()) if not (isinstance(p, str) and "[" in p)]  # drop union tags
        f = {"field": field_path(prefix, loc), "message": e.get("msg", "invalid")}
        if e.get("type") != "missing" and "input" in e:
            f["value"] = _shown(e["input"])
        if f not in out:
            out.append(f)
    return out


def error_entry(claim_id: Any, fields: list[dict], kind: str = "invalid_claim") -> dict:
    names = ", ".join(dict.fromkeys(f["field"] for f in fields))
    return {"claim_id": None if claim_id is None else str(claim_id),
            "error": {"type": kind, "message": f"{len(fields)} invalid field(s): {names}", "fields": fields}}


def raw_claim_id(obj: Any) -> str | None:
    if isinstance(obj, dict) and obj.get("claim_id") not in (None, ""):
        v = obj["claim_id"]
        return str(v) if isinstance(v, (str, int)) else None
    return None


# --------------------------------------------------------------------------------------
# CLAIM(s) -> typed contract frames
# --------------------------------------------------------------------------------------

CLAIM_COLUMNS = [c.name for c in TABLES["claims"] if c.name not in EXCLUDED_CLAIM_COLUMNS]
LINE_COLUMNS = [c.name for c in TABLES["claim_lines"] if c.name not in EXCLUDED_LINE_COLUMNS]


_RAW_CLAIM_COLUMNS = [*CLAIM_COLUMNS, *EXCLUDED_CLAIM_COLUMNS]  # paid_* stay missing
_RAW_LINE_COLUMNS = ["claim_id", *LINE_COLUMNS, "line_paid"]


def raw_frames(claims: list[Claim]) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """Raw (untyped) ``claims`` and ``claim_lines`` tables of the claims, and each line row's (claim, line) index.

    All-object frames, as a CSV reader would hand them over (lists stay Python lists, as strings), each
    built from one 2-D object array (one block: no per-column Series).
    """
    n = len(claims)
    nl = sum(len(c.lines) for c in claims)
    cm = np.full((n, len(_RAW_CLAIM_COLUMNS)), None, dtype=object)
    lm = np.full((nl, len(_RAW_LINE_COLUMNS)), None, dtype=object)
    owner = np.empty(nl, dtype=np.int64)
    pos = np.empty(nl, dtype=np.int64)
    r = 0
    for i, c in enumerate(claims):
        d = c.__dict__
        row = cm[i]
        for j, col in enumerate(CLAIM_COLUMNS):
            v = d[col]
            row[j] = [str(x) for x in v] if type(v) is list else v
        cid = c.claim_id
        for j, ln in enumerate(c.lines):
            ld = ln.__dict__
            lrow = lm[r]
            lrow[0] = cid
            for k, col in enumerate(LINE_COLUMNS, 1):
                v = ld[col]
                lrow[k] = [str(x) for x in v] if type(v) is list else v
            owner[r] = i
            pos[r] = j
            r += 1
    rc = pd.DataFrame(cm, columns=_RAW_CLAIM_COLUMNS, dtype=object, copy=False)  # no str inference
    rl = pd.DataFrame(lm, columns=_RAW_LINE_COLUMNS, dtype=object, copy=False)
    return rc, rl, owner, pos


@dataclass
class Converted:
    """Typed frames of the claims that passed (``ok`` = their positions), field errors of the rest."""

    claims: pd.DataFrame | None
    lines: pd.DataFrame | None
    ok: list[int]
    errors: dict[int, list[dict]] = field(default_factory=dict)


def _map_problems(err: ContractError, claims: list[Claim], idx: list[int], owner: np.ndarray, pos: np.ndarray,
                  prefixes: list[str]) -> dict[int, list[dict]]:
    """Contract problems (file, column, 1-based rows) -> {claim position: [field errors]}."""
    out: dict[int, list[dict]] = {}

    def add(k: int, fld: str, msg: str, value: Any) -> None:
        i = idx[k]
        f = {"field": fld, "message": msg}
        if value is not None:
            f["value"] = _shown(value)
        lst = out.setdefault(i, [])
        if all(x["field"] != fld for x in lst):
            lst.append(f)

    for p in err.problems:
        msg = f"expected {p.expected}"
        if not p.rows:  # a whole-table problem: every claim of the request has it
            for k in range(len(idx)):
                add(k, field_path(prefixes[k], [p.column]), msg, None)
            continue
        for r in p.rows:
            if p.file == "claims":
                k = r - 1
                add(k, field_path(prefixes[k], [p.column]), msg, getattr(claims[k], p.column, None))
            else:  # claim_lines
                k, j = int(owner[r - 1]), int(pos[r - 1])
                if p.column == "claim_id":
                    add(k, field_path(prefixes[k], ["claim_id"]), msg, claims[k].claim_id)
                else:
                    add(k, field_path(prefixes[k], ["lines", j, p.column]), msg,
                        getattr(claims[k].lines[j], p.column, None))
    return out


def _convert(claims: list[Claim], prefixes: list[str], positions: list[int]) -> Converted:
    """:func:`claims_to_frames` of one group of claims: one ``validate_frames`` call while all pass."""
    errors: dict[int, list[dict]] = {}
    cur = list(range(len(claims)))
    while cur:
        sub = [claims[k] for k in cur]
        rc, rl, owner, pos = raw_frames(sub)
        try:
            h = validate_frames({"claims": rc, "claim_lines": rl})
        except ContractError as exc:
            found = _map_problems(exc, sub, list(range(len(sub))), owner, pos, [prefixes[k] for k in cur])
            if not found:  # cannot attribute: fail them all rather than loop
                found = {k: [{"field": prefixes[cur[k]], "message": str(exc).splitlines()[0]}]
                         for k in range(len(sub))}
            for k, fields in found.items():
                errors[positions[cur[k]]] = fields
            cur = [c for k, c in enumerate(cur) if k not in found]
            continue
        return Converted(h.claims, h.claim_lines, [positions[k] for k in cur], errors)
    return Converted(None, None, [], errors)


def claims_to_frames(claims: list[Claim], prefixes: list[str] | None = None,
                     positions: list[int] | None = None) -> Converted:
    """Check the claims against the data contract and type them, through ``validate_frames``.

    ``prefixes`` name each claim in the request body (``claim``, ``claims[3]``); ``positions`` are their
    places in the request. Claims with problems are left out (with their field errors) and the rest is
    validated again, so one bad claim never blocks the others.

    A request is one ``validate_frames`` call: its tables (up to 1,000 claims) take the contract's row-wise
    path (``features.contract.FAST_PATH_MAX_ROWS``): 100 claims in ~3 ms.
    """
    prefixes = prefixes or ["claim"] * len(claims)
    positions = list(range(len(claims))) if positions is None else list(positions)
    return _convert(claims, prefixes, positions)


# --------------------------------------------------------------------------------------
# typed frames -> CLAIM JSON (tests, the benchmark, examples)
# --------------------------------------------------------------------------------------


def _json_value(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (pd.Timestamp, _dt.date, np.datetime64)):
        return pd.Timestamp(v).strftime("%Y-%m-%d")
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_json_value(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def frames_to_claims(claims: pd.DataFrame, lines: pd.DataFrame) -> list[dict]:
    """Typed contract frames (e.g. from ``load_history``) -> CLAIM dicts, ready to POST."""
    by_claim: dict[str, list[dict]] = {}
    lcols = [c for c in LINE_COLUMNS if c in lines.columns]
    for rec in lines[["claim_id", *lcols]].to_dict("records"):
        ln = {c: _json_value(rec[c]) for c in lcols}
        by_claim.setdefault(str(rec["claim_id"]), []).append({k: v for k, v in ln.items() if v is not None})
    out = []
    ccols = [c for c in CLAIM_COLUMNS if c in claims.columns]
    for rec in claims[ccols].to_dict("records"):
        c = {k: _json_value(rec[k]) for k in ccols}
        c = {k: v for k, v in c.items() if v is not None}
        c["lines"] = sorted(by_claim.get(str(rec["claim_id"]), []), key=lambda d: d.get("line_number", 0))
        out.append(c)
    return out
