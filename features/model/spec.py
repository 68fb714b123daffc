"""FeatureSpec: the model's view of the feature table — which columns, and the categorical levels.

A scikit-learn-style transformer: ``fit`` learns ``feature_names_`` and ``categories_`` from the
training table; ``transform`` returns the model matrix with every categorical column encoded against
those fixed levels. Unseen levels become missing on purpose (LightGBM sends them down the "missing"
branch) and are counted in ``unseen_``-style output so callers can flag them (see
:meth:`unseen_levels`). The spec is saved with the model as JSON.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from features.engine.arrays import SMALL
from features.pipeline import CATEGORICAL


class FeatureSpec:
    """Fixes the feature list and category levels at fit time."""

    def __init__(self, exclude: tuple[str, ...] = (), min_level_count: int = 5):
        self.exclude = exclude
        self.min_level_count = min_level_count

    def fit(self, X: pd.DataFrame, y=None) -> "FeatureSpec":
        self.feature_names_ = [c for c in X.columns if c not in self.exclude]
        self.categorical_ = [c for c in CATEGORICAL if c in self.feature_names_]
        self.categories_ = {}
        for c in self.categorical_:
            counts = X[c].astype("string").value_counts()
            self.categories_[c] = sorted(counts[counts >= self.min_level_count].index.astype(str).tolist())
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ValueError(f"feature table lacks columns {missing}")
        out = X[self.feature_names_].copy()
        for c in self.categorical_:
            out[c] = pd.Categorical(X[c].astype("string").astype(object), categories=self.categories_[c])
        num = [c for c in self.feature_names_ if c not in self.categorical_]
        out[num] = out[num].astype("float64")
        return out

    def _level_index(self) -> dict[str, dict[str, int]]:
        idx = getattr(self, "_level_idx", None)
        if idx is None:
            idx = {c: {v: i for i, v in enumerate(self.categories_[c])} for c in self.categorical_}
            self._level_idx = idx
        return idx

    def transform_numpy(self, X: pd.DataFrame) -> np.ndarray:
        """The model matrix as float64 numpy: numeric columns as they are, categorical columns as the
        code of their level (NaN when missing or unseen) — what LightGBM makes of :meth:`transform`'s
        categoricals, without building a DataFrame (fast for one claim)."""
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ValueError(f"feature table lacks columns {missing}")
        n = len(X)
        out = np.empty((n, len(self.feature_names_)))
        cats = set(self.categorical_)
        levels = self._level_index()
        num = [c for c in self.feature_names_ if c not in cats]
        pos = {c: j for j, c in enumerate(self.feature_names_)}
        if num:
            out[:, [pos[c] for c in num]] = X[num].to_numpy(dtype=np.float64)
        for c in self.categorical_:
            col = X[c]
            if n <= SMALL:
                get = levels[c].get
                out[:, pos[c]] = [
                    np.nan if v is None or v is pd.NA or (isinstance(v, float) and v != v) else get(str(v), np.nan)
                    for v in col.tolist()
                ]
            else:
                codes = pd.Categorical(col.astype("string").astype(object), categories=self.categories_[c]).codes
                out[:, pos[c]] = np.where(codes >= 0, codes, np.nan)
        return out

    def _array_plan(self, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(spec positions, ``names`` positions) of the spec's numeric columns, cached per column list."""
        plans = self.__dict__.setdefault("_array_plans", {})
        got = plans.get(names)
        if got is None:
            where = {c: j for j, c in enumerate(names)}
            cats = set(self.categorical_)
            num = [(j, where[c]) for j, c in enumerate(self.feature_names_) if c not in cats]
            got = (np.array([a for a, _ in num], dtype=np.int64), np.array([b for _, b in num], dtype=np.int64))
            plans[names] = got
        return got

    def transform_arrays(self, cats: dict[str, np.ndarray], names: list[str], mat: np.ndarray) -> np.ndarray:
        """:meth:`transform_numpy` of the frame with categorical columns ``cats`` (object arrays) and
        numeric columns ``names`` (the columns of ``mat``), without building that frame."""
        have = set(names) | set(cats)
        missing = [c for c in self.feature_names_ if c not in have]
        if missing:
            raise ValueError(f"feature table lacks columns {missing}")
        n = mat.shape[0]
        out = np.empty((n, len(self.feature_names_)))
        spec_pos, mat_pos = self._array_plan(tuple(names))
        if len(spec_pos):
            out[:, spec_pos] = mat[:, mat_pos]
        levels = self._level_index()
        pos = {c: j for j, c in enumerate(self.feature_names_)}
        for c in self.categorical_:
            get = levels[c].get
            out[:, pos[c]] = [
                np.nan if v is None or v is pd.NA or (isinstance(v, float) and v != v) else get(str(v), np.nan)
                for v in cats[c].tolist()
            ]
        return out

    def unseen_arrays(self, ids: np.ndarray, cats: dict[str, np.ndarray]) -> dict[str, list[tuple[str, str]]]:
        """Unseen category levels per claim (claim_id -> [(column, value)], claims without any left out),
        from the categorical columns as object arrays."""
        out: dict[str, list[tuple[str, str]]] = {}
        levels = self._level_index()
        sid = [str(i) for i in ids.tolist()]
        for c in self.categorical_:
            lv = levels[c]
            for cid, v in zip(sid, cats[c].tolist()):
                if v is None or v is pd.NA or (isinstance(v, float) and v != v):
                    continue
                if str(v) not in lv:
                    out.setdefault(cid, []).append((c, str(v)))
        return {
            cid: sorted(out[cid], key=lambda cv: self.categorical_.index(cv[0]))
            for cid in dict.fromkeys(sid)
            if cid in out
        }

    def unseen_dict(self, X: pd.DataFrame) -> dict[str, list[tuple[str, str]]]:
        """Like :meth:`unseen_levels`, as claim_id -> [(column, value)] for the claims that have any (by
        claim, then column: the order of ``unseen_levels().iterrows()``)."""
        return self.unseen_arrays(X.index.to_numpy(), {c: X[c].to_numpy(dtype=object) for c in self.categorical_})

    def fit_transform(self, X: pd.DataFrame, y=None) -> pd.DataFrame:
        return self.fit(X, y).transform(X)

    def unseen_levels(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per claim and categorical column: the value when it is not a known level (else missing)."""
        out = pd.DataFrame(index=X.index)
        for c in self.categorical_:
            v = X[c].astype("string")
            out[c] = v.where(~v.isin(self.categories_[c]) & v.notna())
        return out

    def to_json(self) -> str:
        return json.dumps(
            {
                "feature_names": self.feature_names_,
                "categorical": self.categorical_,
                "categories": self.categories_,
                "exclude": list(self.exclude),
                "min_level_count": self.min_level_count,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        d = json.loads(text)
        spec = cls(exclude=tuple(d["exclude"]), min_level_count=d["min_level_count"])
        spec.feature_names_ = d["feature_names"]
        spec.categorical_ = d["categorical"]
        spec.categories_ = d["categories"]
        return spec
