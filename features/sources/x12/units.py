"""X12 files as store units: :func:`units_from_x12` yields one :class:`~features.store.unit.Unit` per ``ST..SE``
transaction, keyed by the real-world transaction (so that the same transaction read again, from the same file, a
copy or another file carrying it, has the same key), with its rows in the store's tables: an 837's claims, lines and
providers (contract columns, without the paid fields the 835s give when the store is read), an 835's raw
remittances, service lines, adjustments and offsets (:data:`features.store.remit.REMITTANCE_COLUMNS`). See
docs/x12.md "Store units"."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from features.contract.schema import TABLES
from features.errors import RecoupError
from features.sources.x12.claims837 import Claims837
from features.sources.x12.codes import UNKNOWN_NPI, claim_type_of_version
from features.sources.x12.envelope import Transaction, split_transactions
from features.sources.x12.errors import Rejection, X12Error
from features.sources.x12.files import read_text
from features.sources.x12.join import reversal_carc
from features.sources.x12.parsed import Parsed
from features.sources.x12.remit835 import Remit835
from features.store.remit import REMITTANCE_TYPES
from features.store.unit import Unit

log = logging.getLogger(__name__)

#: contract columns an 837 does not give: the 835 join fills them when the store is read
PAID_COLUMNS = {"claims": ("paid_date", "paid_amount"), "claim_lines": ("line_paid",)}
#: 837 rejections that are left out on purpose (the contract has no place for them), counted in ``Unit.skipped``
SKIPPED_REASONS = {
    "SV1: procedure not a CPT/HCPCS code": "line without a CPT/HCPCS code (SV1)",
    "SV2: procedure not a CPT/HCPCS code": "line without a CPT/HCPCS code (SV2)",
    "SV2: procedure no HCPCS code (revenue code only)": "line with a revenue code only (SV2)",
    "CLM: expected at least one service line with a CPT/HCPCS code": "claim without a CPT/HCPCS line",
}
DUPLICATE_CLAIM = "claim id repeated in the transaction (the first kept)"
#: contract list columns, ';'-joined in the unit tables as in the contract's CSV files
LIST_COLUMNS = ("diagnosis_codes", "modifiers", "diagnosis_pointers")
#: the columns of the contract tables an 837 gives (contract order, without the paid fields)
CONTRACT_COLUMNS = {
    table: [c.name for c in TABLES[table] if c.name not in PAID_COLUMNS.get(table, ())]
    for table in ("claims", "claim_lines", "providers")
}
#: every table a unit can hold, in order
TABLE_KINDS = tuple(CONTRACT_COLUMNS) + tuple(REMITTANCE_TYPES)


@dataclass
class X12File:
    """An X12 file read for a store: its units and, for each store table, ONE frame of the rows of all its units with
    a ``_unit`` column (the unit key). With ``slices``, each unit's ``tables`` are its slices of these frames."""

    units: list[Unit]
    tables: dict[str, pd.DataFrame]
    #: for each unit, the rows it holds in :attr:`tables`: ``{table: (start, stop)}`` (several units of a file may
    #: share a key, e.g. a transaction repeated: positions tell their rows apart, ``_unit`` does not)
    spans: list[dict[str, tuple[int, int]]] = field(default_factory=list)


def units_from_x12(path: str | Path) -> Iterator[Unit]:
    """One unit per transaction of the X12 file ``path``; a file that cannot be read (or envelope segments outside
    any transaction) gives one unit keyed ``file:<sha256>`` with its problems. Each unit's ``tables`` are slices of
    the file's frames (:func:`read_x12`; their index is the row's position in the file's table)."""
    yield from read_x12(path).units


def read_x12(path: str | Path, slices: bool = True) -> X12File:
    """The units of ``path`` and the file's frames. ``slices=False`` leaves the units' ``tables`` empty: a caller
    that ingests thousands of small transactions selects the rows of the units it keeps by ``_unit`` in
    :attr:`X12File.tables` instead (a frame per transaction costs more than reading the transaction)."""
    path = Path(path)
    source = str(path)
    try:
        text = read_text(path)
    except RecoupError as exc:
        return X12File([_file_unit(path, source, [str(exc)])], {}, [{}])
    sha = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    with gc_paused():
        try:
            txs, rejected = split_transactions(text, source)
        except X12Error as exc:
            return X12File([_file_unit(path, source, [str(exc)], sha)], {}, [{}])
        warnings_at = {r.segment: r for r in rejected if r.kind == "warning"}
        envelope_problems = [_problem(r) for r in rejected if r.kind != "warning"]
        units, spans = [], []
        rows: dict[str, list[dict]] = {name: [] for name in TABLE_KINDS}
        for tx in txs:
            end = tx.segments[-1][0]
            unit, unit_rows = _transaction_rows(tx, [warnings_at[end]] if end in warnings_at else [])
            span = {}
            for name, records in unit_rows.items():
                span[name] = (len(rows[name]), len(rows[name]) + len(records))
                rows[name].extend(records)
                for r in records:
                    r["_unit"] = unit.key
            units.append(unit)
            spans.append(span)
        frames = {name: _frame(name, records, ["_unit"]) for name, records in rows.items()}
    if slices:
        bases = {name: frame.drop(columns="_unit") for name, frame in frames.items()}
        for unit, span in zip(units, spans):
            unit.tables = {name: bases[name].iloc[a:b] for name, (a, b) in span.items()}
    if envelope_problems or not txs:
        problems = envelope_problems or [f"{source}: expected an 837 or 835 transaction (ST)"]
        units.append(_file_unit(path, source, problems, sha))
        spans.append({})
    return X12File(units, frames, spans)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: parsing allocates millions of small acyclic objects."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _file_unit(path: Path, source: str, problems: list[str], sha: str | None = None) -> Unit:
    if sha is None:
        try:
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            sha = hashlib.sha256(source.encode()).hexdigest()
    return Unit(key=f"file:{sha}", kind="x12", source=source, problems=problems)


def _problem(r: Rejection) -> str:
    where = f"segment {r.segment}" if r.segment else "start of file"
    return f"{r.source}: {where}: {r.reason}"


def transaction_digest(tx: Transaction) -> str:
    """SHA-256 of the transaction's segments (ST..SE) written with ``*``, ``:`` and ``~``: the same whatever the
    delimiters, line breaks or encoding of the file."""
    comp = tx.delims.component
    text = "~".join("*".join(seg).replace(comp, ":") if comp != ":" else "*".join(seg) for _, seg in tx.segments)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def transaction_key(tx: Transaction, digest: str, payment: tuple[str, str, str, str] | None = None) -> str:
    """The identity of a transaction. An 835 with a trace number: ``x12:835:<payer>:<TRN02>:<date>:<BPR02>`` (the
    payment: the same in a 4010 and a 5010 copy; the date and total tell apart the payments that published samples
    give the same trace number). Else ``x12:<ST01>:<ISA06>:<ISA13>:<GS06>:<ST02>:<digest>``: the control numbers and
    the first 16 hex digits of :func:`transaction_digest` (senders and samples reuse control numbers for different
    transactions; a copy of the file has the same digest)."""
    if tx.code == "835" and payment and payment[1]:
        return "x12:835:" + ":".join(payment)
    controls = (tx.sender, tx.interchange_control, tx.group_control, tx.control)
    return f"x12:{tx.code}:" + ":".join(controls) + f":{digest[:16]}"


def transaction_unit(tx: Transaction, warnings: list[Rejection] | None = None) -> Unit:
    """The unit of one transaction: rows, problems (the mapper's rejections) and what was skipped."""
    unit, rows = _transaction_rows(tx, warnings)
    with gc_paused():
        unit.tables = {name: _frame(name, records) for name, records in rows.items()}
    return unit


def _transaction_rows(tx: Transaction, warnings: list[Rejection] | None) -> tuple[Unit, dict[str, list[dict]]]:
    """A transaction's unit (without tables) and its rows by table."""
    control = {"sender": tx.sender, "isa13": tx.interchange_control, "gs06": tx.group_control, "st02": tx.control}
    control["version"] = tx.version
    if warnings:
        control["warnings"] = "; ".join(w.reason for w in warnings)
    kind = {"professional": "837P", "institutional": "837I"}.get(claim_type_of_version(tx.version), tx.code)
    digest = transaction_digest(tx)
    control["digest"] = digest
    unit = Unit(key=transaction_key(tx, digest), kind=kind, source=tx.source, segment=tx.start, control=control)
    parsed = Parsed()
    try:
        if tx.code == "837":
            if claim_type_of_version(tx.version) == "dental":
                raise X12Error(tx.source, tx.start, "837P or 837I (dental 837D is not supported)", "ST")
            Claims837(tx, parsed).run()
            rows = _claims_rows(unit, parsed)
        elif tx.code == "835":
            mapper = Remit835(tx, parsed, 0)
            mapper.run()
            unit.kind = "835"
            trace, payer = mapper.trace, mapper.payer["trn"] or mapper.payer_id
            day = mapper.bpr_date or mapper.production_date or tx.date or ""
            unit.key = transaction_key(tx, digest, (payer, trace, day, mapper.total))
            control.update(trn02=trace, payer=mapper.payer_id, trn03=mapper.payer["trn"], date=day, total=mapper.total)
            rows = remittance_rows(parsed, unit.key)
        else:
            raise X12Error(tx.source, tx.start, f"an 837 or 835 transaction, got {tx.code or '?'}", "ST")
    except X12Error as exc:
        where = f"segment {exc.segment}" + (f" ({exc.segment_id})" if exc.segment_id else "")
        unit.problems.append(f"{tx.source}: {where}: expected {exc.expected}")
        return unit, {}
    for r in parsed.rejected:
        if r.kind == "warning":
            continue
        skipped = SKIPPED_REASONS.get(r.reason)
        if skipped:
            unit.skipped[skipped] = unit.skipped.get(skipped, 0) + 1
        else:
            unit.problems.append(_problem(r))
    return unit, rows


def _joined(value: object) -> str:
    return ";".join(map(str, value)) if isinstance(value, list) else ""


def _claims_rows(unit: Unit, parsed: Parsed) -> dict[str, list[dict]]:
    claims, lines, seen = [], [], set()
    lines_by_key: dict[tuple, list[dict]] = {}
    for ln in parsed.lines:
        lines_by_key.setdefault(ln["_key"], []).append(ln)
    for c in parsed.claims:
        if c["claim_id"] in seen:
            unit.skipped[DUPLICATE_CLAIM] = unit.skipped.get(DUPLICATE_CLAIM, 0) + 1
            continue
        seen.add(c["claim_id"])
        claims.append({k: _joined(v) if k == "diagnosis_codes" else v for k, v in c.items() if k[0] != "_"})
        for ln in lines_by_key.get(c["_key"], []):
            lines.append({k: _joined(v) if k in LIST_COLUMNS else v for k, v in ln.items() if k[0] != "_"})
    providers = list({p["npi"]: p for p in reversed(parsed.providers) if p["npi"] != UNKNOWN_NPI}.values())[::-1]
    return {"claims": claims, "claim_lines": lines, "providers": providers}


def _frame(table: str, rows: list[dict], extra: list[str] | None = None) -> pd.DataFrame:
    """Rows of one store table as a frame: contract tables in their columns (without the paid fields), raw 835
    tables in their columns and types; then the ``extra`` columns."""
    if table in REMITTANCE_TYPES:
        return remittance_frame(table, rows, extra)
    cols = CONTRACT_COLUMNS[table] + (extra or [])
    with pd.option_context("future.infer_string", False):  # numpy object columns: cheap to slice per unit
        return pd.DataFrame.from_records(rows, columns=cols) if rows else pd.DataFrame(columns=cols)


def remittance_tables(parsed: Parsed, prefix: str) -> dict[str, pd.DataFrame]:
    """The raw 835 tables of parsed remittances; ``remittance_id`` = ``<prefix>#<CLP number>``."""
    return {name: remittance_frame(name, rows) for name, rows in remittance_rows(parsed, prefix).items()}


def remittance_rows(parsed: Parsed, prefix: str) -> dict[str, list[dict]]:
    """Rows of the raw 835 tables (:data:`~features.store.remit.REMITTANCE_TYPES`) of parsed remittances."""
    remits, lines, adjustments = [], [], []
    for r in parsed.remittances:
        rid = f"{prefix}#{r['seq']}"
        base = {"remittance_id": rid, "remittance_date": r["remittance_date"], "payer_id": r["payer_id"]}
        base["claim_id"] = r["claim_id"]
        remits.append(
            {
                **base,
                "trace_number": r["trace_number"],
                "status": r["status"],
                "charge": r["charge"],
                "paid": r["paid"],
                "patient_responsibility": r["patient_responsibility"],
                "payer_claim_number": r["payer_claim_number"],
                "filing_code": r["filing_code"],
                "facility_code": r["facility_code"],
                "frequency_code": r["frequency_raw"],
                "payee_npi": r["payee_npi"],
                "carc": reversal_carc(r),
                "segment": r["segment"],
            }
        )
        for a in r["_adjustments"]:
            adjustments.append({**base, "line_seq": None, **_adjustment(a)})
        for s in r["_lines"]:
            lines.append(
                {
                    **base,
                    "line_seq": s["line_seq"],
                    "procedure_code": s["procedure_code"],
                    "modifiers": ";".join(s["modifiers"]),
                    "submitted_code": s["submitted_code"],
                    "charge": s["charge"],
                    "paid": s["paid"],
                    "units_paid": s["units_paid"],
                    "units_billed": s["units_billed"],
                    "allowed": s["allowed"],
                    "service_date": s["start_date"],
                    "control_number": s["control_number"],
                    "remark_codes": ";".join(s["remark_codes"]),
                }
            )
            for a in s["_adjustments"]:
                adjustments.append({**base, "line_seq": s["line_seq"], **_adjustment(a)})
    offsets = [
        {
            "remittance_date": o["remittance_date"],
            "payer_id": o["payer_id"],
            "trace_number": o["trace_number"],
            "provider": o["provider"],
            "reason": o["reason"],
            "reference": o["reference"],
            "amount": o["amount"],
            "segment": o["segment"],
        }
        for o in parsed.offsets
    ]
    return {"remittances": remits, "remittance_lines": lines, "adjustments": adjustments, "offsets": offsets}


def _adjustment(a: dict) -> dict:
    return {"group": a["group"], "reason": a["reason"], "amount": a["amount"], "quantity": a["quantity"]}


def remittance_frame(table: str, rows: list[dict], extra: list[str] | None = None) -> pd.DataFrame:
    """Rows of a raw 835 table in its columns and types (:data:`~features.store.remit.REMITTANCE_TYPES`), then the
    ``extra`` columns (text)."""
    data: dict[str, object] = {}
    kinds = {**REMITTANCE_TYPES[table], **dict.fromkeys(extra or [], "str")}
    for col, kind in kinds.items():
        values = [r.get(col) for r in rows]
        if kind == "float":
            data[col] = np.array([np.nan if v is None else v for v in values], dtype="float64")
        elif kind == "int":
            data[col] = pd.array(values, dtype="Int64")
        else:
            data[col] = np.array(values, dtype=object)
    with pd.option_context("future.infer_string", False):  # numpy object columns: cheap to slice per unit
        return pd.DataFrame(data, columns=list(kinds))
