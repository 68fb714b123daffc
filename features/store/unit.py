"""What a source hands to the store: :class:`Unit`, one ingestible piece of input (an X12 ``ST..SE`` transaction or
one contract table file), with its identity for idempotency, its rows and its problems."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

#: Tables a store keeps. The contract's five, plus the raw 835 rows that are joined to their claims when the store is
#: read (so that the order of ingestion does not matter: an 835 before its 837 waits as a remittance).
CONTRACT_TABLES = ("claims", "claim_lines", "coverage", "providers", "recoupments", "reviews")
REMITTANCE_TABLES = ("remittances", "remittance_lines", "adjustments", "offsets")
STORE_TABLES = CONTRACT_TABLES + REMITTANCE_TABLES


@dataclass
class Unit:
    """One ingestible piece of input.

    ``key`` identifies the real-world transaction, so the same transaction read again (same file, another copy,
    another file carrying it) has the same key and is "already ingested": for an 837, ``x12:837:<ISA06 sender>:
    <ISA13>:<GS06>:<ST02>``; for an 835, ``x12:835:<payer id>:<TRN02>`` (TRN02 is the payer's trace number of the
    payment, the same in a 4010 and a 5010 copy); for a contract table file, ``table:<name>:<sha256 of the file>``.
    ``control`` carries the envelope values kept in the manifest (ISA13, GS06, ST02, TRN02, sender, payer, version).
    ``tables`` maps store table names (:data:`STORE_TABLES`) to the unit's rows; ``problems`` are one-line messages
    naming file, segment (or row) and what was expected — a unit with problems is bad and is not ingested (or is
    quarantined with ``--skip-invalid``). ``skipped`` counts what was left out on purpose, by reason (never silent).
    """

    key: str
    kind: str  # "837P", "837I", "835", or a contract table name
    source: str  # the file as given (display only)
    segment: int | None = None  # ST segment number in the file; None for table files
    control: dict[str, str] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems
