"""``recoup store info STORE``: what a store holds (claims by month and payer), what was ingested last, what is
quarantined, and label maturity under the default horizon (docs/store.md, "Store info")."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.contract.schema import DEFAULT_HORIZON_DAYS
from features.store import manifest as mf
from features.store.read import contract_tables, read_parts, resolve

#: the 835 join's counts of recoupments shown (recoupments_added = from reversals + offsets)
RECOUPMENT_COUNTS = (
    "recoupments_added",
    "recoupments_from_reversals",
    "offsets",
    "offsets_duplicate",
    "offsets_waiting",
)
#: months shown in the claims-by-month table (the latest ones; the total counts them all)
MAX_MONTHS_SHOWN = 36
#: payers shown as columns (the largest; the others summed as "other")
MAX_PAYERS_SHOWN = 6


@dataclass
class StoreInfo:
    store: str
    today: _dt.date
    horizon_days: int
    claims: int = 0
    by_month_payer: pd.DataFrame = field(default_factory=pd.DataFrame)
    ingests: int = 0
    last_ingest: dict | None = None
    units: dict[str, int] = field(default_factory=dict)
    files: int = 0
    quarantined: int = 0
    parts: int = 0
    matured: int = 0
    paid: int = 0
    next_maturity: tuple[str, int, _dt.date] | None = None  # (paid month, claims, date it matures)
    waiting: dict[str, int] = field(default_factory=dict)  # the 835 join's remittance counts (remittances_*)
    recoupments: dict[str, int] = field(default_factory=dict)  # contract + 835 recoupments, with their parts

    def __str__(self) -> str:
        out = [
            f"store {self.store}: {self.claims} claims, {self.parts} parts, {self.files} files, {self.ingests} ingests"
        ]
        units = ", ".join(f"{n} {k}" for k, n in sorted(self.units.items())) or "none"
        out.append(f"  units: {units}; quarantined: {self.quarantined}")
        if self.last_ingest:
            li, s = self.last_ingest, self.last_ingest["summary"]
            out.append(
                f"  last ingest: #{li['id']} finished {li['finished']}: {s.get('units_ingested', 0)} unit(s) "
                f"ingested, {s.get('claims_added', 0)} claims added"
            )
        out.append(
            f"  label maturity (horizon {self.horizon_days} days, as of {self.today}): {self.matured} of {self.paid} "
            f"paid claims have matured labels"
        )
        if self.next_maturity:
            month, n, day = self.next_maturity
            out.append(f"  next to mature: {n} claims paid in {month}, from {day}")
        w, r = self.waiting, self.recoupments
        if w.get("remittances"):
            out.append(
                f"  remittances: {w['remittances']} claim payments (CLP) = {w.get('remittances_matched', 0)} joined to "
                f"their claim + {w.get('remittances_waiting', 0)} waiting for their claim (no 837 yet) + "
                f"{w.get('remittances_duplicate', 0)} duplicates skipped"
            )
        if r:
            out.append(
                f"  recoupments: {r['recoupments']} = {r['contract']} from recoupments files + "
                f"{r['recoupments_added']} from 835s ({r['recoupments_from_reversals']} reversals, "
                f"{r['offsets']} PLB WO offsets; "
                f"{r['offsets_duplicate']} duplicate offsets skipped, {r['offsets_waiting']} offsets waiting for "
                "their claim)"
            )
        if len(self.by_month_payer):
            out.append("  claims by submission month and payer:")
            out.extend("    " + line for line in self.by_month_payer.to_string().splitlines())
        return "\n".join(out)


def store_info(store: str | Path, today: _dt.date | None = None, horizon_days: int = DEFAULT_HORIZON_DAYS) -> StoreInfo:
    store = Path(store)
    today = today or _dt.date.today()
    conn = mf.connect(store, readonly=True)
    try:
        info = StoreInfo(str(store), today, horizon_days)
        info.ingests = conn.execute("SELECT count(*) FROM ingests").fetchone()[0]
        row = conn.execute("SELECT id, finished, summary FROM ingests ORDER BY id DESC LIMIT 1").fetchone()
        if row:
            info.last_ingest = {"id": row[0], "finished": row[1], "summary": json.loads(row[2])}
        info.units = dict(conn.execute("SELECT status, count(*) FROM units GROUP BY status").fetchall())
        info.quarantined = info.units.get("quarantined", 0)
        info.files = conn.execute("SELECT count(DISTINCT sha256) FROM files").fetchone()[0]
        info.parts = conn.execute("SELECT count(*) FROM parts").fetchone()[0]
    finally:
        conn.close()
    tables, counts = contract_tables(resolve(read_parts(store)))
    info.waiting = {k: v for k, v in counts.items() if k.startswith("remittances")}
    rec = tables.get("recoupments")
    total = 0 if rec is None else len(rec)
    added = counts.get("recoupments_added", 0)
    info.recoupments = {
        "recoupments": total,
        "contract": total - added,
        **{k: counts.get(k, 0) for k in RECOUPMENT_COUNTS},
    }
    claims = tables.get("claims")
    if claims is None or not len(claims):
        return info
    info.claims = len(claims)
    info.by_month_payer = _by_month_payer(claims)
    paid = pd.to_datetime(claims["paid_date"], errors="coerce") if "paid_date" in claims.columns else None
    if paid is not None:
        paid = paid.dropna()
        info.paid = len(paid)
        due = paid + pd.Timedelta(days=horizon_days)
        ripe = due <= pd.Timestamp(today)
        info.matured = int(ripe.sum())
        pending = paid[~ripe]
        if len(pending):
            month = pending.dt.strftime("%Y-%m")
            first = month.min()
            n = int((month == first).sum())
            info.next_maturity = (first, n, (pending[month == first].min() + pd.Timedelta(days=horizon_days)).date())
    return info


def _by_month_payer(claims: pd.DataFrame) -> pd.DataFrame:
    month = pd.to_datetime(claims["submitted_date"]).dt.strftime("%Y-%m")
    payer = claims["payer_id"].astype(str)
    top = payer.value_counts().index[:MAX_PAYERS_SHOWN]
    payer = payer.where(payer.isin(top), "other")
    table = pd.crosstab(month, payer)
    table["total"] = table.sum(axis=1)
    table.index.name = "month"
    table.columns.name = None
    return table.tail(MAX_MONTHS_SHOWN)


def store_info_cli(store: Path) -> StoreInfo:
    """``recoup store info``: print what the store holds (a damaged manifest is one line)."""
    from features.store.manifest import store_errors

    with store_errors(store):
        info = store_info(store)
    print(info)
    return info
