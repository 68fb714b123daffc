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

from features.pipeline import CATEGORICAL


class FeatureSpec:
    """Fixes the feature list and category levels at fit time."""

    def __init__(self, exclude: tuple[str, ...] = (), min_level_count: int = 5):
        self.exclude = exclude
        self.min_level_count = min_level_count

    def fit(self, X: pd.DataFrame, y=None) -> "FeatureSpec":
        for cache in ("_level_idx", "_array_plans", "_cat_pos"):
            self.__dict__.pop(cache, None)
        self.feature_names_ = [c for c in X.columns if c not in self.exclude]
        self.categorical_ = [c for c in CATEGORICAL if c in self.feature_names_]
        self.categories_ = {}
        for c in self.categorical_:
            counts = X[c].astype("string").value_counts()
            self.categories_[c] = sorted(counts[counts >= self.min_level_count].index.astype(str).tolist())
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model matrix as a frame (what training fits on): the feature columns in order, numeric ones
        as float64, categorical ones as pandas categoricals over the fitted levels, coded by :meth:`_codes`
        (unseen: missing)."""
        self._check_columns(X.columns)
        out = X[self.feature_names_].copy()
        for c in self.categorical_:
            codes = self.level_codes(c, X[c].to_numpy(dtype=object))
            codes = np.where(np.isnan(codes), -1, codes).astype(np.int64)
            out[c] = pd.Categorical.from_codes(codes, categories=self.categories_[c])
        num = [c for c in self.feature_names_ if c not in self.categorical_]
        out[num] = out[num].astype("float64")
        return out

    def frame_arrays(self, X: pd.DataFrame) -> tuple[dict[str, np.ndarray], list[str], np.ndarray]:
        """The arguments of :meth:`transform_arrays` for a feature frame: its categorical columns as object
        arrays, the names of the numeric feature columns and their float64 matrix."""
        self._check_columns(X.columns)
        cats = {c: X[c].to_numpy(dtype=object) for c in self.categorical_}
        names = [c for c in self.feature_names_ if c not in cats]
        return cats, names, X[names].to_numpy(dtype=np.float64)

    def _level_index(self) -> dict[str, dict[str, int]]:
        idx = getattr(self, "_level_idx", None)
        if idx is None:
            idx = {c: {v: i for i, v in enumerate(self.categories_[c])} for c in self.categorical_}
            self._level_idx = idx
        return idx

    def _cat_positions(self) -> dict[str, int]:
        """Position of each categorical column in the model matrix."""
        got = self.__dict__.get("_cat_pos")
        if got is None:
            pos = {c: j for j, c in enumerate(self.feature_names_)}
            got = self._cat_pos = {c: pos[c] for c in self.categorical_}
        return got

    def _check_columns(self, have) -> None:
        have = set(have)
        missing = [c for c in self.feature_names_ if c not in have]
        if missing:
            raise ValueError(f"feature table lacks columns {missing}")

    def _array_plan(self, names: tuple[str, ...], cats: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(spec positions, ``names`` positions) of the spec's numeric columns, cached per column lists (which
        are checked once)."""
        plans = self.__dict__.setdefault("_array_plans", {})
        got = plans.get((names, cats))
        if got is None:
            self._check_columns([*names, *cats])
            where = {c: j for j, c in enumerate(names)}
            num = [(j, where[c]) for j, c in enumerate(self.feature_names_) if c not in self.categorical_]
            got = (np.array([a for a, _ in num], dtype=np.int64), np.array([b for _, b in num], dtype=np.int64))
            plans[(names, cats)] = got
        return got

    def transform_arrays(self, cats: dict[str, np.ndarray], names: list[str], mat: np.ndarray) -> np.ndarray:
        """The model matrix as float64 numpy, from categorical columns ``cats`` (object arrays) and numeric
        columns ``names`` (the columns of ``mat``, any order): numeric columns as they are, categorical ones
        as the code of their level (:meth:`level_codes`), NaN when missing or unseen (what LightGBM makes of
        :meth:`transform`'s categoricals)."""
        spec_pos, mat_pos = self._array_plan(tuple(names), tuple(cats))
        out = np.empty((mat.shape[0], len(self.feature_names_)))
        if len(spec_pos):
            out[:, spec_pos] = mat[:, mat_pos]
        for c, j in self._cat_positions().items():
            out[:, j] = self.level_codes(c, cats[c])
        return out

    def level_codes(self, c: str, values: np.ndarray) -> np.ndarray:
        """The level code of each value of categorical column ``c`` (float64; NaN when missing or unseen),
        matched as text. One dict lookup per value: cheaper than pandas at every size (measured, one column
        of 300 levels: 1 row 0.8 us vs 1.4 ms for ``pd.Categorical``; 1M rows 0.33 s vs 0.59 s)."""
        get = self._level_index()[c].get
        return np.array(
            [
                np.nan if v is None or v is pd.NA or (isinstance(v, float) and v != v) else get(str(v), np.nan)
                for v in values.tolist()
            ],
            dtype=np.float64,
        )

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
