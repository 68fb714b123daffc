"""Request and response models of the scoring service, and CLAIM(s) -> typed contract frames.

Two layers of checks, one for shape and one for meaning:

- pydantic checks the *shape* of a CLAIM (fields present, JSON types, and a bound on every list and
  string: :data:`LIMITS`, :data:`MAX_CHARS`), so that no request costs more than its bounds allow;
- every *meaning* rule (dates, NPIs, enums, codes, units > 0, charges >= 0, unique line numbers) is
  the data contract's own: :func:`claims_to_frames` turns the claims into raw ``claims`` /
  ``claim_lines`` tables and runs :func:`features.contract.validate_frames` on them, exactly as a
  claims history directory is checked. Each contract :class:`~features.contract.Problem` is mapped
  back to the claim and the JSON field it came from (``claims[3].lines[0].units``).

The field names are the contract's columns (``features.contract.TABLES``): ``claims`` without
``paid_*`` plus ``lines``; a line has the ``claim_lines`` columns without ``claim_id``/``line_paid``.

The same models document the HTTP API: :func:`route_docs` gives the route decorators of
``serving.service`` their OpenAPI request and response bodies with examples, and :func:`openapi_with_bodies`
adds the request models to the document's components.
"""

from __future__ import annotations

import datetime as _dt
import math
import reprlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, StringConstraints, ValidationError
from pydantic_core import PydanticCustomError

from features.contract.bounds import MAX_CHARS, MAX_DIAGNOSIS_CODES, MAX_DIAGNOSIS_POINTERS, MAX_MODIFIERS, MAX_POINTER
from features.contract import CLAIM_TYPES, FREQUENCY_CODES, PLAN_TYPES, TABLES, ContractError, validate_frames
from features.settings import MODEL_NAME, NUMERIC_SETTINGS

# --------------------------------------------------------------------------------------
# bounds of a request: each defined once, read by the models below, GET /model and docs/service.md. The
# counts and lengths of a claim's fields are the data contract's (features/contract/bounds.py, re-exported here):
# the service, the CSV/Parquet loader and the X12 importer refuse the same values.
# --------------------------------------------------------------------------------------

MAX_LINES_PER_CLAIM = 50
MAX_CLAIMS_PER_BATCH = 1000
#: the default body limit (RECOUP_MAX_BODY_BYTES): 1,000 claims of 50 lines fit; see serving.service
MAX_BODY_BYTES = int(NUMERIC_SETTINGS["RECOUP_MAX_BODY_BYTES"][1])

#: every count bound of a request (GET /model shows them)
LIMITS = {
    "claims_per_batch": MAX_CLAIMS_PER_BATCH,
    "lines_per_claim": MAX_LINES_PER_CLAIM,
    "diagnosis_codes_per_claim": MAX_DIAGNOSIS_CODES,
    "modifiers_per_line": MAX_MODIFIERS,
    "diagnosis_pointers_per_line": MAX_DIAGNOSIS_POINTERS,
    "body_bytes": MAX_BODY_BYTES,
}

#: columns of the contract that a CLAIM does not carry (outcomes, and the line's link to its claim)
EXCLUDED_CLAIM_COLUMNS = ("paid_date", "paid_amount")
EXCLUDED_LINE_COLUMNS = ("claim_id", "line_paid")


def list_text_chars(max_items: int, item_chars: int) -> int:
    """Longest ``'a;b'`` text of a list field: ``max_items`` items and a separator (and a space) each."""
    return max_items * (item_chars + 2)


# --------------------------------------------------------------------------------------
# field types
# --------------------------------------------------------------------------------------


#: a code or id may also be sent as a JSON integer, of at most this many digits (exact in every JSON parser)
MAX_INTEGER_DIGITS = 15


def _int_max(chars: int) -> int:
    """The largest JSON integer accepted for a code of at most ``chars`` characters."""
    return 10 ** min(chars, MAX_INTEGER_DIGITS) - 1


def _whole(v: Any) -> int | None:
    """``v`` as an int if it is a JSON integer (or an integral float such as ``11.0``), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _code_number(n: int, chars: int, what: str = "") -> str:
    if not 0 <= n <= _int_max(chars):
        raise PydanticCustomError(
            "code_number", "{what}expected text, or a whole number 0..{max}", {"what": what, "max": _int_max(chars)}
        )
    return str(n)


def code(chars: int, description: str | None = None) -> Any:
    """A code or identifier of at most ``chars`` characters; a JSON integer (``11``, ``1234567890``) is taken
    as its text."""

    def as_text(v: Any) -> Any:
        n = _whole(v)
        return v if n is None else _code_number(n, chars)

    text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=chars)]
    number = Annotated[int, Field(ge=0, le=_int_max(chars))]
    return Annotated[
        text, BeforeValidator(as_text, json_schema_input_type=text | number), Field(description=description)
    ]


def _number(v: Any) -> Any:
    """Numbers are JSON numbers: ``true`` is not 1, ``"2"`` is not 2."""
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return v
    kind = {bool: "a boolean", str: "a string"}.get(type(v), type(v).__name__)
    raise PydanticCustomError("number_type", "expected a JSON number, not {kind}", {"kind": kind})


def _date(v: Any) -> Any:
    if isinstance(v, (_dt.date, pd.Timestamp)):
        return v.strftime("%Y-%m-%d")
    return v


def _too_long(what: str, n: int) -> PydanticCustomError:
    return PydanticCustomError("too_long", "at most {n} {what}", {"n": n, "what": what})


def list_field(max_items: int, item_chars: int, *, integers: bool = False, optional: bool = False) -> Any:
    """A list field: a JSON array of at most ``max_items`` items, or its ``'a;b'`` text form with as many
    items (empty items dropped, as the contract does) of at most ``item_chars`` characters each.

    Items are codes (text; JSON integers taken as their text) or, with ``integers``, whole numbers. The value
    is kept as sent (the text form stays text): the contract splits and checks it.
    """
    text_chars = list_text_chars(max_items, item_chars)

    def check(v: Any) -> Any:
        if isinstance(v, (tuple, np.ndarray)):
            v = list(v)
        if v is None and optional:
            return None
        if isinstance(v, str):
            if len(v) > text_chars:
                raise _too_long("characters in the ';'-separated text", text_chars)
            items = [x for x in (x.strip() for x in v.split(";")) if x]
            if len(items) > max_items:
                raise _too_long("items", max_items)
            if any(len(x) > item_chars for x in items):
                raise _too_long("characters per item", item_chars)
            return v
        if not isinstance(v, list):
            raise PydanticCustomError("list_type", "expected an array or a ';'-separated text")
        if len(v) > max_items:
            raise _too_long("items", max_items)
        return [_list_item(x, i, item_chars, integers) for i, x in enumerate(v)]

    number = Annotated[int, Field(ge=0, le=_int_max(item_chars))]
    item = number if integers else Annotated[str, Field(max_length=item_chars)] | number
    # a type built at run time, for pydantic's JSON schema only (a static checker cannot follow it)
    shape = Annotated[list[item], Field(max_length=max_items)] | Annotated[str, Field(max_length=text_chars)]  # type: ignore[valid-type]
    return Annotated[Any, PlainValidator(check, json_schema_input_type=shape | None if optional else shape)]


def _list_item(x: Any, i: int, chars: int, integers: bool) -> Any:
    n = _whole(x)
    if n is not None:
        text = _code_number(n, chars, f"item {i}: ")
        return n if integers else text
    if integers or not isinstance(x, str):
        raise PydanticCustomError(
            "item_type",
            "item {i}: expected {what}",
            {"i": i, "what": "a whole number" if integers else "a code (text)"},
        )
    x = x.strip()
    if len(x) > chars:
        raise PydanticCustomError("too_long", "item {i}: at most {n} characters", {"i": i, "n": chars})
    return x


Number = Annotated[float, BeforeValidator(_number, json_schema_input_type=float)]
WholeNumber = Annotated[int, BeforeValidator(_number, json_schema_input_type=int)]
Flag = Annotated[bool, Field(strict=True)]
DateText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_CHARS["date"]),
    BeforeValidator(_date, json_schema_input_type=Annotated[str, Field(max_length=MAX_CHARS["date"])]),
    Field(description="YYYY-MM-DD"),
]
EnumText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_CHARS["enum"])]
if TYPE_CHECKING:  # the validated values, for the type checker (pydantic reads the annotated types below)
    ClaimId = str
    PatientId = str
    PayerId = str
    Npi = str
    PriorAuth = str
    PlaceOfService = str
    FrequencyCode = str
    ProcedureCode = str
    DiagnosisCodes = list[str] | str  # an array, or its 'a;b' text as sent
    Modifiers = list[str] | str | None
    DiagnosisPointers = list[int] | str | None
else:
    ClaimId = code(MAX_CHARS["claim_id"], "CLM01 patient control number")
    PatientId = code(MAX_CHARS["patient_id"], "pseudonymous member id")
    PayerId = code(MAX_CHARS["payer_id"])
    Npi = code(MAX_CHARS["npi"], "10-digit NPI")
    PriorAuth = code(MAX_CHARS["prior_auth_number"])
    PlaceOfService = code(MAX_CHARS["place_of_service"], "CMS place-of-service code")
    FrequencyCode = code(MAX_CHARS["frequency_code"], f"{', '.join(FREQUENCY_CODES)} (original, replacement, void)")
    ProcedureCode = code(MAX_CHARS["procedure_code"], "CPT or HCPCS Level II code")
    DiagnosisCodes = list_field(MAX_DIAGNOSIS_CODES, MAX_CHARS["diagnosis_code"])
    Modifiers = list_field(MAX_MODIFIERS, MAX_CHARS["modifier"], optional=True)
    DiagnosisPointers = list_field(MAX_DIAGNOSIS_POINTERS, MAX_CHARS["diagnosis_pointer"], integers=True, optional=True)

_CONFIG = ConfigDict(
    extra="ignore", allow_inf_nan=False, str_strip_whitespace=True, str_max_length=200, ser_json_inf_nan="null"
)


def _levels(levels: tuple[str, ...]) -> str:
    return ", ".join(levels)


class Line(BaseModel):
    """One service line: the ``claim_lines`` columns without ``claim_id`` and ``line_paid``."""

    model_config = _CONFIG

    line_number: WholeNumber = Field(description="LX01, >= 1, unique within the claim")
    service_date: DateText
    procedure_code: ProcedureCode
    modifiers: Modifiers = Field(None, description=f"up to {MAX_MODIFIERS} two-character modifiers; array or 'a;b'")
    units: Number = Field(description="> 0")
    line_charge: Number = Field(description=">= 0")
    diagnosis_pointers: DiagnosisPointers = Field(
        None,
        description=f"up to {MAX_DIAGNOSIS_POINTERS} pointers 1..{MAX_POINTER} into diagnosis_codes; array or '1;2'",
    )


class Claim(BaseModel):
    """A CLAIM: the ``claims`` columns without ``paid_*``, plus its ``lines``."""

    model_config = _CONFIG

    claim_id: ClaimId
    patient_id: PatientId
    billing_npi: Npi
    rendering_npi: Npi | None = None
    payer_id: PayerId
    plan_type: EnumText = Field(description=_levels(PLAN_TYPES))
    claim_type: EnumText = Field(description=_levels(CLAIM_TYPES))
    place_of_service: PlaceOfService
    frequency_code: FrequencyCode
    submitted_date: DateText
    total_charge: Number = Field(description=">= 0")
    diagnosis_codes: DiagnosisCodes = Field(
        description=f"1 to {MAX_DIAGNOSIS_CODES} ICD-10-CM codes without dots, principal first; array or 'a;b'"
    )
    prior_auth_number: PriorAuth | None = Field(None, description="REF*G1")
    has_attachment: Flag | None = None
    lines: list[Line] = Field(min_length=1, max_length=MAX_LINES_PER_CLAIM)


class Options(BaseModel):
    """Additive request options (also accepted as query parameters ``?explain=false&record=false``)."""

    explain: Flag = Field(True, description="add plain-language reasons (false: faster)")
    record: Flag = Field(True, description="add the claim to the service's history (false: what-if scoring)")


class ScoreRequest(Options):
    """The body of ``POST /score``."""

    model_config = ConfigDict(extra="ignore")
    claim: Claim


def _unchecked(v: Any) -> Any:
    return v


class BatchRequest(Options):
    """The body of ``POST /score_batch``; each claim is checked on its own (``Claim.model_validate``) so that
    one bad claim does not fail the rest: here only the array and its length are."""

    model_config = ConfigDict(extra="ignore")
    claims: list[Annotated[Any, PlainValidator(_unchecked, json_schema_input_type=Claim)]] = Field(
        max_length=MAX_CLAIMS_PER_BATCH
    )


class CauseProbability(BaseModel):
    cause: str
    probability: float


class Reason(BaseModel):
    code: str
    text: str
    contribution: float


class RuleHit(BaseModel):
    """A deterministic finding: ``rule`` and ``text``, plus details (``line_number``, ``code``, ``ref``, ...)."""

    model_config = ConfigDict(extra="allow")
    rule: str
    text: str


class Score(BaseModel):
    """SCORE, as in the contract."""

    model_config = ConfigDict(extra="allow")
    claim_id: str
    recoupment_probability: float
    risk_band: Literal["low", "medium", "high"]
    expected_recoupment_amount: float
    causes: list[CauseProbability]
    reasons: list[Reason]
    rule_hits: list[RuleHit]
    model_version: str
    recorded: Literal["new", "already_recorded", "replaced", "not_recorded"] | None = Field(
        None,
        description="online only: new (recorded), already_recorded (a retry: same claim_id and content, "
        "scored as the first time, not recorded again), replaced (same claim_id, other "
        "content: supersedes the previous version), not_recorded (record false)",
    )


class FieldError(BaseModel):
    field: str = Field(description="path in the request body, e.g. claims[3].lines[0].units")
    message: str
    value: Any = Field(None, description="the value sent, shortened (absent for a missing field)")


class ErrorDetail(BaseModel):
    type: str = Field(
        description="invalid_json, body_too_large, invalid_request, invalid_claim, not_found, "
        "method_not_allowed, internal, ..."
    )
    message: str
    fields: list[FieldError] = []


class ErrorBody(BaseModel):
    """An error: the HTTP 4xx/5xx body of every endpoint, and the entry of a claim that failed in ``/score_batch``."""

    claim_id: str | None = None
    error: ErrorDetail


ErrorEntry = ClaimError = ErrorBody  # the same object in a batch


class Limits(BaseModel):
    model_config = ConfigDict(extra="allow")
    lines_per_claim: int
    claims_per_batch: int
    body_bytes: int


class StateInfo(BaseModel):
    """The history state's staleness (``GET /model`` ``state``; serving/refresh.py)."""

    model_config = ConfigDict(extra="allow")
    as_of: str | None = Field(description="date of the latest claim or recoupment the state holds")
    model_as_of: str | None = Field(description="the model's as-of date (the refresh adds events after it)")
    refresh_source: str | None = Field(description="where refreshes read from (recoup serve --refresh-from)")
    refresh_every_seconds: int | None = Field(description="the scheduled refresh interval")
    last_refresh: dict[str, Any] | None = Field(
        description="the last refresh: at, outcome, added counts, skipped claims and their reason kinds, error"
    )
    last_successful_refresh: dict[str, Any] | None = None
    seconds_since_refresh: float | None = Field(description="since the last successful refresh")
    overdue: bool = Field(description="no successful refresh within twice the interval")


class RefreshAnswer(BaseModel):
    """The body of ``POST /refresh``."""

    refresh: dict[str, Any] = Field(
        description="at, source, upto, outcome, added_claims, added_recoupments, skipped_claims, skipped_reasons,"
        " seconds; error when failed"
    )
    state: StateInfo


class ModelInfo(BaseModel):
    """The body of ``GET /model``."""

    model_config = ConfigDict(extra="allow")
    name: str
    version: str
    as_of: str | None = Field(description="trained as-of date")
    horizon_days: int | None
    rulebook_version: str | None
    metrics: dict[str, Any] = Field(description="test metrics of training")
    risk_bands: dict[str, float]
    source: str = Field(description="where the model was loaded from")
    limits: Limits
    workers: int
    state: StateInfo | None = None


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


_REPR = reprlib.Repr()  # short reprs of whatever was sent
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 2, 4, 6, 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60


def _shown(v: Any) -> Any:
    """The value sent, for an error: numbers as they are, anything else as at most 60 characters of text
    (a list of a million codes costs its first few items, not its whole text)."""
    if v is None or isinstance(v, (bool, int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v if not isinstance(v, int) or abs(v) < 10**18 else _REPR.repr(v)
    text = v if isinstance(v, str) and len(v) <= 60 else _REPR.repr(v) if not isinstance(v, str) else v[:60]
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
    return {
        "claim_id": None if claim_id is None else str(claim_id),
        "error": {"type": kind, "message": f"{len(fields)} invalid field(s): {names}", "fields": fields},
    }


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


def _map_problems(
    err: ContractError, claims: list[Claim], idx: list[int], owner: np.ndarray, pos: np.ndarray, prefixes: list[str]
) -> dict[int, list[dict]]:
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
                    add(
                        k,
                        field_path(prefixes[k], ["lines", j, p.column]),
                        msg,
                        getattr(claims[k].lines[j], p.column, None),
                    )
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
                found = {k: [{"field": prefixes[cur[k]], "message": str(exc).splitlines()[0]}] for k in range(len(sub))}
            for k, fields in found.items():
                errors[positions[cur[k]]] = fields
            cur = [c for k, c in enumerate(cur) if k not in found]
            continue
        return Converted(h.claims, h.claim_lines, [positions[k] for k in cur], errors)
    return Converted(None, None, [], errors)


def claims_to_frames(
    claims: list[Claim], prefixes: list[str] | None = None, positions: list[int] | None = None
) -> Converted:
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


# --------------------------------------------------------------------------------------
# OpenAPI: request and response bodies of the routes, with examples
# --------------------------------------------------------------------------------------

#: where the OpenAPI document keeps the model schemas
REF_TEMPLATE = "#/components/schemas/{model}"

#: a claim that every model of the project scores (tests/serving/test_openapi.py sends it to the real service)
EXAMPLE_CLAIM = {
    "claim_id": "CLM-2026-0001",
    "patient_id": "PAT000260",
    "billing_npi": "1875591145",
    "payer_id": "MA-LAKEVIEW",
    "plan_type": "medicare_advantage",
    "claim_type": "professional",
    "place_of_service": "11",
    "frequency_code": "1",
    "submitted_date": "2026-01-29",
    "total_charge": 250.0,
    "diagnosis_codes": ["E119", "I10"],
    "has_attachment": False,
    "lines": [
        {
            "line_number": 1,
            "service_date": "2026-01-21",
            "procedure_code": "99214",
            "modifiers": ["25"],
            "units": 1,
            "line_charge": 200.0,
            "diagnosis_pointers": [1, 2],
        },
        {
            "line_number": 2,
            "service_date": "2026-01-21",
            "procedure_code": "36415",
            "units": 1,
            "line_charge": 50.0,
            "diagnosis_pointers": [1],
        },
    ],
}
EXAMPLE_SCORE_REQUEST = {"claim": EXAMPLE_CLAIM, "record": False}
EXAMPLE_BATCH_REQUEST = {
    "claims": [EXAMPLE_CLAIM, {**EXAMPLE_CLAIM, "claim_id": "CLM-2026-0002", "submitted_date": "2026-02-30"}],
    "record": False,
}
EXAMPLE_SCORE = {
    "claim_id": "CLM-2026-0001",
    "recoupment_probability": 0.058442,
    "risk_band": "medium",
    "expected_recoupment_amount": 15.35,
    "causes": [
        {"cause": "documentation", "probability": 0.46967},
        {"cause": "medical_necessity", "probability": 0.2},
        {"cause": "units", "probability": 0.1},
    ],
    "reasons": [{"code": "charges", "text": "charge $250 is 2.1x the provider's average claim", "contribution": 0.31}],
    "rule_hits": [
        {
            "rule": "duplicate",
            "text": "possible duplicate of claim CLM-2026-0000 (same patient, provider, date and code 99214)",
            "line_number": 1,
            "code": "99214",
            "value": 0.0,
            "ref": "CLM-2026-0000",
        }
    ],
    "model_version": "1",
    "recorded": "not_recorded",
}
EXAMPLE_CLAIM_ERROR = {
    "claim_id": "CLM-2026-0002",
    "error": {
        "type": "invalid_claim",
        "message": "1 invalid field(s): claims[1].submitted_date",
        "fields": [
            {"field": "claims[1].submitted_date", "message": "expected a date YYYY-MM-DD", "value": "2026-02-30"}
        ],
    },
}
EXAMPLE_ERROR = {
    "claim_id": "CLM-2026-0001",
    "error": {
        "type": "invalid_claim",
        "message": "2 invalid field(s): claim.diagnosis_codes, claim.lines[0].units",
        "fields": [
            {
                "field": "claim.diagnosis_codes",
                "message": f"at most {MAX_DIAGNOSIS_CODES} items",
                "value": "['E119', 'I10', 'E785', 'Z0000', 'R51', 'M545', ...]",
            },
            {"field": "claim.lines[0].units", "message": "expected a JSON number, not a boolean", "value": True},
        ],
    },
}
EXAMPLE_REFRESH = {
    "at": "2026-03-02T10:15:00+00:00",
    "source": "history folder /data/claims",
    "upto": "2026-03-02",
    "outcome": "ok",
    "added_claims": 412,
    "added_recoupments": 37,
    "skipped_claims": 1,
    "skipped_reasons": {"lines: too_long": 1},
    "seconds": 1.8,
}
EXAMPLE_MODEL_INFO = {
    "name": MODEL_NAME,
    "version": "1",
    "as_of": "2026-01-31",
    "horizon_days": 365,
    "rulebook_version": "2024Q3",
    "metrics": {"roc_auc": 0.81, "average_precision": 0.34},
    "risk_bands": {"medium": 0.05, "high": 0.2},
    "source": f"bentoml:{MODEL_NAME}:63qrfmxj52oj2ax4",
    "limits": {
        "lines_per_claim": MAX_LINES_PER_CLAIM,
        "claims_per_batch": MAX_CLAIMS_PER_BATCH,
        "body_bytes": MAX_BODY_BYTES,
    },
    "workers": 1,
    "state": {
        "as_of": "2026-03-02",
        "model_as_of": "2026-01-31",
        "refresh_source": "history folder /data/claims",
        "refresh_every_seconds": 900,
        "last_refresh": EXAMPLE_REFRESH,
        "last_successful_refresh": EXAMPLE_REFRESH,
        "seconds_since_refresh": 312.5,
        "overdue": False,
    },
}

_FLAG_TEXTS = ["true", "false", "1", "0", "yes", "no", "on", "off"]  # serving.service._flag, any case
_QUERY_FLAGS = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": _FLAG_TEXTS},
        "description": f"overrides the body's {name!r}: {Options.model_fields[name].description}",
    }
    for name in ("explain", "record")
]
_ERRORS = {
    400: "the body is not JSON (or not UTF-8)",
    413: f"body over {MAX_BODY_BYTES} bytes (RECOUP_MAX_BODY_BYTES)",
    422: "wrong body shape or a claim that breaks a bound or the contract; each bad field named",
    500: "the service's own failure (never a client's mistake)",
}


def _json(schema: Any = None, example: Any = None, model: Any = None, description: str = "") -> dict:
    out: dict[str, Any] = {"description": description} if description else {}
    if model is not None:
        out["model"] = model
    media: dict[str, Any] = {}
    if schema is not None:
        media["schema"] = schema
    if example is not None:
        media["example"] = example
    out["content"] = {"application/json": media}
    return out


def route_docs(route: str) -> dict:
    """Keyword arguments of a route decorator (``@app.post(..., **route_docs("score"))``): the OpenAPI request
    body (the handlers read the raw request, so FastAPI cannot infer it), its query flags, and the response
    bodies, each with an example. The request models land in the document's components through
    :func:`openapi_with_bodies`."""
    errors = {
        code: _json(model=ErrorBody, description=text, example=EXAMPLE_ERROR if code == 422 else None)
        for code, text in _ERRORS.items()
    }
    if route == "model":
        return {"responses": {200: _json(model=ModelInfo, example=EXAMPLE_MODEL_INFO, description="the model")}}
    if route == "refresh":
        state: Any = EXAMPLE_MODEL_INFO["state"]
        example = {"refresh": state["last_refresh"], "state": state}
        return {
            "responses": {
                200: _json(model=RefreshAnswer, example=example, description="what the refresh added"),
                403: _json(model=ErrorBody, description="this API key may not refresh (RECOUP_REFRESH_KEYS)"),
                409: _json(
                    model=ErrorBody,
                    description="no refresh source (recoup serve --refresh-from DIR), or a refresh is already running",
                ),
                429: _json(
                    model=ErrorBody,
                    description="called again within RECOUP_REFRESH_MIN_GAP seconds (Retry-After: seconds to wait)",
                ),
                500: _json(model=ErrorBody, description="the refresh failed (why, in one line); state unchanged"),
            }
        }
    request, example = {
        "score": (ScoreRequest, EXAMPLE_SCORE_REQUEST),
        "score_batch": (BatchRequest, EXAMPLE_BATCH_REQUEST),
    }[route]
    body = {"required": True, **_json({"$ref": REF_TEMPLATE.format(model=request.__name__)}, example)}
    if route == "score":
        ok = _json(model=Score, example=EXAMPLE_SCORE, description="the SCORE")
    else:
        ok = _json(
            model=list[Score | ErrorBody],
            example=[EXAMPLE_SCORE, EXAMPLE_CLAIM_ERROR],
            description="one SCORE or error entry per claim, in order",
        )
    return {"openapi_extra": {"requestBody": body, "parameters": _QUERY_FLAGS}, "responses": {200: ok, **errors}}


def request_components() -> dict[str, dict]:
    """JSON schemas of the request models (and the models they use), named as components."""
    out: dict[str, dict] = {}
    for model in (ScoreRequest, BatchRequest):
        schema = model.model_json_schema(ref_template=REF_TEMPLATE, mode="validation")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return out


def openapi_with_bodies(app: Any) -> Callable[[], dict]:
    """``app.openapi`` that also holds the request models in ``components.schemas`` (FastAPI only adds the
    models it validates itself, and the handlers read the raw request)."""
    base = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = base()
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in request_components().items():
                schemas.setdefault(name, schema)
        return app.openapi_schema

    return openapi
