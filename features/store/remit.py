"""The 835 side of a store's contract view, applied when the store is read: remittances (CLP), their service lines
(SVC), adjustments (CAS) and provider-level offsets (PLB) joined to the claims the store knows.

STUB written by the lead so that the store can be built in parallel: the X12 helper owns this module and replaces
the body (paid_date / paid_amount / line_paid from payments, recoupments from reversals and WO offsets)."""

from __future__ import annotations

import pandas as pd

#: Columns of the raw 835 tables as stored (defined by the X12 side; every table also gets ``_ingest``, ``_unit``).
REMITTANCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "remittances": (),
    "remittance_lines": (),
    "adjustments": (),
    "offsets": (),
}


def apply_remittances(tables: dict[str, pd.DataFrame | None]) -> tuple[dict[str, pd.DataFrame | None], dict[str, int]]:
    """Contract tables with the 835 data joined in, and counts (e.g. ``remittances_waiting`` for remittances whose
    claim the store has not seen yet).

    ``tables`` holds the version-resolved contract tables (``claims``, ``claim_lines``, ``recoupments``, ...) and the
    raw remittance tables; the result holds the five contract tables only."""
    out = {k: tables.get(k) for k in ("claims", "claim_lines", "coverage", "providers", "recoupments")}
    return out, {}
