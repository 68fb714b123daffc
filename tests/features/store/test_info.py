"""features/store/info.py: `recoup store info` (claims by month and payer, last ingest, label maturity)."""

from __future__ import annotations

import datetime as dt

from features.store.info import store_info
from features.store.ingest import ingest
from tests.helpers.contract_tables import good_tables, write_dir


def test_store_info_counts_and_maturity(tmp_path):
    store = tmp_path / "store"
    t = good_tables()
    t["claims"]["paid_date"] = ["2024-01-20", "2024-02-10", "2024-03-15"]
    t["claims"]["paid_amount"] = ["100", "80", "300"]
    ingest([write_dir(tmp_path / "h", t)], store)
    info = store_info(store, today=dt.date(2025, 2, 20))
    assert info.claims == 3 and info.ingests == 1 and info.units == {"ingested": 5} and info.quarantined == 0
    assert (info.paid, info.matured) == (3, 2)  # paid 2024-01-20 and 2024-02-10 + 365 days <= 2025-02-20
    assert info.next_maturity == ("2024-03", 1, dt.date(2025, 3, 15))
    assert info.by_month_payer.loc["2024-02", "AETNA"] == 1 and info.by_month_payer["total"].sum() == 3
    text = str(info)
    assert "2 of 3 paid claims have matured labels" in text and "next to mature: 1 claims paid in 2024-03" in text
    assert "last ingest: #1" in text and "C1" not in text
