"""features/store/x12_standin.py (until the X12 side's per-transaction units land): the repo's X12 samples go into a
store, bad transactions are quarantined with --skip-invalid, and a second ingest of the same files adds nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from features.errors import RecoupError
from features.store.ingest import ingest
from features.store.read import read_parts, read_store
from tests.helpers.x12 import DATA


def test_the_samples_ingest_once(tmp_path):
    store = tmp_path / "store"
    with pytest.raises(RecoupError, match="nothing was written"):  # sample files reuse claim ids across files
        ingest([DATA], store)
    first = ingest([DATA], store, skip_invalid=True)
    assert first.units == first.units_ingested + first.units_already + first.units_rejected
    assert first.units_ingested > 40 and first.claims_added > 0
    assert (store / "quarantine" / "1" / "reasons.txt").is_file()
    before = {k: v.to_pandas() for k, v in read_parts(store).tables.items() if v is not None}
    again = ingest([DATA], store, skip_invalid=True)
    assert again.units_ingested == 0 and again.claims_added == 0 and again.rows == {}
    after = {k: v.to_pandas() for k, v in read_parts(store).tables.items() if v is not None}
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name], obj=name)
    assert len(read_store(store).claims) == first.claims_added
