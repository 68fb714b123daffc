"""Audit review outcomes into a store (docs/store.md, "Reviews"): :func:`record_reviews` is how the workbench (and
any script) records what reviewers found. One call = one unit of one ingest, through the store's own machinery
(writer lock, staged parts, the manifest committed last): all of a call's rows or none.

Idempotent by (claim_id, reviewed_at, outcome): the same row recorded again is "already recorded"; the same key with
other content (a corrected amount or cause the same day) is stored and replaces the earlier row when the store is
read. A review of a claim the store does not know is refused. When the store is read, the refunds of
``error_found`` / ``refunded`` reviews become recoupments (:mod:`features.contract.reviews`)."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract.schema import TABLES
from features.errors import RecoupError
from features.store import manifest as mf
from features.store.layout import DEFAULT_WAIT, MANIFEST
from features.store.sources import FileUnits, InputFile
from features.store.unit import Unit

#: the most rows one call records (a day of a large team's reviews is far below)
MAX_ROWS = 100_000
#: the name a call's rows go by in the manifest's ``files`` and in messages
SOURCE = "record_reviews"


def _canonical(typed: pd.DataFrame) -> bytes:
    """The rows as CSV text of their contract columns, in a fixed order: the same rows give the same bytes."""
    from features.contract.write import to_contract_frame

    cols = [c.name for c in TABLES["reviews"]]
    text = to_contract_frame(typed[cols]).astype("string").fillna("")
    text = text.sort_values(cols, kind="mergesort")
    return text.to_csv(index=False, lineterminator="\n").encode("utf-8")


def reviews_unit(reviews: pd.DataFrame) -> tuple[InputFile, FileUnits]:
    """The rows checked by the contract's rules for ``reviews`` as one in-memory unit; a problem raises one
    :class:`RecoupError` naming rows and columns (no value shown: ids are not echoed)."""
    from features.contract import validate_table

    if not isinstance(reviews, pd.DataFrame):
        raise RecoupError(f"{SOURCE}: expected a table (pandas DataFrame) of reviews, got {type(reviews).__name__}")
    if not len(reviews):
        raise RecoupError(f"{SOURCE}: no reviews given")
    if len(reviews) > MAX_ROWS:
        raise RecoupError(f"{SOURCE}: {len(reviews):,} reviews in one call; at most {MAX_ROWS:,}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # extra columns are ignored, as in a reviews.csv
        typed, problems, _ = validate_table(reviews.reset_index(drop=True), "reviews", SOURCE)
    if problems:
        lines = [replace(p, examples=[]).describe() for p in problems]
        raise RecoupError("\n".join([f"{len(problems)} problem(s) in the reviews; nothing was recorded:", *lines]))
    data = _canonical(typed)
    sha = hashlib.sha256(b"reviews\n" + data).hexdigest()
    typed = typed.reset_index(drop=True)
    typed["_n"] = np.zeros(len(typed), dtype=np.int64)
    unit = Unit(key=f"reviews:{sha}", kind="reviews", source=SOURCE)
    return InputFile(Path(SOURCE), "reviews", sha, len(data)), FileUnits([unit], {"reviews": typed})


def record_reviews(store: str | Path, reviews: pd.DataFrame, *, wait: float = DEFAULT_WAIT) -> dict:
    """Record review outcomes (rows of the contract's ``reviews`` table) into an existing ``store``; returns the
    ingest's summary as a dict (``reviews_added``, ``reviews_replaced``, ``reviews_already``, ``ingest``, ...).

    All or nothing: a row breaking the contract, or naming a claim the store does not know, refuses the whole call
    (:class:`RecoupError`, one line per problem, nothing written). Waits up to ``wait`` seconds for another writer."""
    from features.store.ingest import write_units

    store = Path(store)
    if not (store / MANIFEST).is_file():
        raise RecoupError(f"{store}: not a claims store (no {MANIFEST}); reviews are recorded into a store")
    f, units = reviews_unit(reviews)
    with mf.store_errors(store, writing=True):
        try:
            summary = write_units(store, [], wait=wait, given=[(f, units)])
        except RecoupError as exc:
            hint = " (--skip-invalid ingests the good units and quarantines the bad ones)"
            raise RecoupError(str(exc).replace(hint, "")) from None
    return asdict(summary)
