"""Coverage spans as plain arrays, indexed by patient once per state (the service asks for a few patients)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.engine.arrays import as_str, days


class CoverageArrays:
    """Coverage spans as plain arrays (what :func:`coverage_arrays` reads from a coverage frame):
    patient and payer ids as str, start and end as days since 1970 (float; open end 1e9)."""

    def __init__(self, coverage: pd.DataFrame):
        self.patient_id = as_str(coverage["patient_id"])
        self.start = days(coverage["coverage_start"].to_numpy(dtype="datetime64[D]")).astype(float)
        e_raw = coverage["coverage_end"].to_numpy(dtype="datetime64[D]")
        self.end = np.where(np.isnat(e_raw), 1e9, e_raw.astype("int64").astype(float))
        self.payer_id = as_str(coverage["payer_id"])
        rows: dict[str, list[int]] = {}
        for i, p in enumerate(self.patient_id.tolist()):
            rows.setdefault(p, []).append(i)
        self._rows = {p: np.array(r, dtype=np.int64) for p, r in rows.items()}

    def __len__(self) -> int:
        return len(self.patient_id)

    def of_patients(self, patient_ids: list[str]) -> "CoverageArrays":
        """The spans of these patients (each patient's rows in table order, patients in the given order:
        the rows ``HistoryState.coverage_for`` selects)."""
        got = [self._rows.get(p) for p in patient_ids]
        found = [r for r in got if r is not None]
        idx = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
        out = object.__new__(CoverageArrays)
        out.patient_id, out.start, out.end, out.payer_id = (
            self.patient_id[idx],
            self.start[idx],
            self.end[idx],
            self.payer_id[idx],
        )
        out._rows = {}
        return out
