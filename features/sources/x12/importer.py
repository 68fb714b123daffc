"""The importer's entry points: :func:`parse_x12` (one text into rows, each transaction given to its mapper),
:func:`read_text` (an X12 file, refused when it is not a regular text file), :func:`import_x12` (files into a
validated claims history: parse, join, frames, contract checks) and :func:`import_x12_cli` (``recoup import-x12``:
prints the summary and writes the history directory). See docs/x12.md."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

__all__ = ["ImportResult", "import_parsed", "import_x12", "import_x12_cli", "parse_x12", "read_text"]

from features.errors import RecoupError
from features.sources.x12.claims837 import Claims837
from features.sources.x12.codes import claim_type_of_version
from features.sources.x12.envelope import split_transactions
from features.sources.x12.errors import Rejection, X12Error
from features.sources.x12.files import expand_paths, read_text
from features.sources.x12.join import ImportSummary, join
from features.sources.x12.parsed import Parsed
from features.sources.x12.remit835 import Remit835
from features.sources.x12.units import gc_paused, remittance_tables

log = logging.getLogger(__name__)


def parse_x12(text: str, source: str) -> Parsed:
    """Parse one X12 text (any number of interchanges/transactions) into rows and rejections.

    Raises :class:`X12Error` when the text cannot be read at all (no ISA/ST start, bad ISA header).
    A bad transaction is recorded in ``.rejected`` and the others are still parsed.
    """
    out = Parsed()
    with gc_paused():
        return _parse_into(out, text, source)


def _parse_into(out: Parsed, text: str, source: str) -> Parsed:
    txs, rejected = split_transactions(text, source)
    out.rejected.extend(rejected)
    seq = 0
    for tx in txs:
        sub = Parsed()
        try:
            if tx.code == "837":
                if claim_type_of_version(tx.version) == "dental":
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


@dataclass
class ImportResult:
    """What :func:`import_x12` returns: frames, the validated history, a summary and the rejections."""

    tables: dict[str, Any]  # raw contract frames + remittances/remittance_lines/adjustments/offsets
    history: Any  # features.contract.History
    summary: ImportSummary
    rejected: list[Rejection]


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
        "recoupments": frame("recoupments", []),
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


def import_x12(paths: Iterable[str | Path]) -> ImportResult:
    """Read 837 and 835 files (files, folders, globs: :func:`~features.sources.x12.files.expand_paths`) into a
    validated claims history (see docs/x12.md for the mapping)."""
    t0 = time.perf_counter()
    given = list(paths)
    if not given:
        raise RecoupError("no X12 files given")
    files, problems = expand_paths(given)
    if problems:
        raise RecoupError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    parts = []
    for path in files:
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


#: placeholder counts of the summary, from the counts of :func:`features.store.remit.apply_remittances`
PAID_PLACEHOLDERS = {
    "negative_payments": "negative CLP04 of a remittance that is not a reversal (not a payment)",
    "negative_line_paid": "line_paid 0 (negative SVC03 in a payment)",
    "reversals_without_payment": "paid_date = submitted_date (original payment not in the files, reversal only)",
    "paid_date_raised": "paid_date raised to submitted_date (835 dated before the 837)",
}


def import_parsed(parts: list[Parsed], started: float | None = None) -> ImportResult:
    """Join the parsed files (one :class:`Parsed` per file, in order) and validate the history. The 835 side is
    :func:`features.store.remit.apply_remittances`, the rules a store follows when it is read."""
    from features.contract import validate_frames
    from features.store.remit import apply_remittances

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
    with gc_paused():
        _flatten_remittances(parsed)
        rows, summary, rejected = join(parsed)
    summary.files = len(parts)
    tables = _frames(rows, parsed)
    if not parsed.transactions:
        first = next((str(r) for r in rejected if r.kind != "warning"), "no 837 or 835 transaction found")
        raise RecoupError(f"nothing importable in {len(parts)} file(s): {first}")
    raw = {"claims": tables["claims"], "claim_lines": tables["claim_lines"], "recoupments": None}
    applied, counts = apply_remittances({**raw, **remittance_tables(parsed, "import")})
    tables["claims"], tables["claim_lines"] = applied["claims"], applied["claim_lines"]
    if applied["recoupments"] is not None:
        tables["recoupments"] = applied["recoupments"]
    _count_remittances(summary, counts)
    contract_tables = {k: tables[k] for k in ("claims", "claim_lines", "recoupments", "providers")}
    history = validate_frames(contract_tables)
    summary.seconds = time.perf_counter() - t0
    return ImportResult(tables=tables, history=history, summary=summary, rejected=rejected)


def _count_remittances(summary: ImportSummary, counts: dict[str, int]) -> None:
    for name in (
        "remittances",
        "remittances_matched",
        "remittances_waiting",
        "remittances_duplicate",
        "reversals",
        "corrections",
        "offsets",
        "offsets_waiting",
        "offsets_settling_reversal",
        "recoupments_from_reversals",
    ):
        setattr(summary, name, counts[name])
    summary.recoupments = counts["recoupments_added"]
    summary.paid_claims = counts["claims_paid"]
    for name, text in PAID_PLACEHOLDERS.items():
        if counts[name]:
            summary.placeholders[text] = counts[name]


def import_x12_cli(files: list[Path], out: Path, overwrite: bool = False, skip_invalid: bool = False) -> object:
    """``recoup import-x12 PATH... --out DIR``: a thin alias of ``recoup ingest PATH... --into DIR`` (one way of
    reading X12: the store's, docs/store.md). ``DIR`` new, empty or a store: the files are ingested into it (a store
    is appended to, idempotently). Any other folder (e.g. the CSV folder an earlier version of this command wrote)
    is refused unless ``overwrite``, which replaces it whole by a new store holding these files."""
    from features.outputs import check_dir_output, write_dir
    from features.store.ingest import ingest, ingest_cli
    from features.store.layout import is_store

    out = check_dir_output(out, "import-x12", overwrite=True)  # links, files, the current folder: refused
    if is_store(out) or not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return ingest_cli(files, out, skip_invalid=skip_invalid)
    if not overwrite:
        raise RecoupError(
            f"{out}: not a claims store (import-x12 now ingests into a store, docs/store.md); give a new folder, "
            "a store, or --overwrite to replace this folder by a new store"
        )
    got: list[object] = []
    write_dir(out, "import-x12", lambda d: got.append(ingest(files, d, skip_invalid=skip_invalid)), overwrite=True)
    print(got[0])
    return got[0]
