"""Rule hits: one row per finding with the columns of :data:`HIT_COLUMNS`. Families collect them as
"parts" (dicts of column arrays with a ``ci`` claim position); :func:`hits_frame` makes one frame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HIT_COLUMNS = ["claim_id", "rule", "line_number", "code", "other_code", "value", "limit", "ref"]


def empty_hits() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in HIT_COLUMNS})


def _col(part: dict, c: str, size: int) -> np.ndarray:
    v = part.get(c)
    if v is None:
        return np.full(size, np.nan)
    if np.ndim(v) == 0:
        return np.full(size, v, dtype=object)
    v = np.asarray(v)
    return v.astype(object) if v.dtype.kind in "USO" else v


def _concat_group(parts: list[dict], claim_ids: np.ndarray) -> dict[str, np.ndarray] | None:
    """Columns of ``pd.concat`` of the parts' frames (missing column
    in some parts -> NaN there; in all parts -> None)."""
    parts = [p for p in parts if len(p["ci"])]
    if not parts:
        return None
    sizes = [len(p["ci"]) for p in parts]
    out: dict[str, np.ndarray] = {}
    total = sum(sizes)
    for c in ["ci"] + HIT_COLUMNS[1:]:
        if not any(c in p for p in parts):
            out[c] = np.full(total, None, dtype=object)
        else:
            out[c] = np.concatenate([_col(p, c, s) for p, s in zip(parts, sizes)])
    out["claim_id"] = claim_ids[out["ci"]]
    return out


def hits_frame(groups: list[list[dict]], claim_ids: np.ndarray) -> pd.DataFrame:
    """The :data:`HIT_COLUMNS` frame of several groups of hit parts, sorted by claim position and rule
    (stable), as the pandas concat/sort of the parts' frames would give it."""
    cols = [g for g in (_concat_group(p, claim_ids) for p in groups) if g is not None]
    if not cols:
        return empty_hits()
    merged = {c: np.concatenate([g[c] for g in cols]) if len(cols) > 1 else cols[0][c] for c in cols[0]}
    rules, rcode = np.unique(merged["rule"].astype(str), return_inverse=True)
    order = np.lexsort((rcode.ravel(), merged["ci"]))
    return pd.DataFrame({c: merged[c][order] for c in HIT_COLUMNS})
