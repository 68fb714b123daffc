"""FeatureSpec: the model's view of the feature table — which columns, and the categorical levels.

A scikit-learn-style transformer: ``fit`` learns ``feature_names_`` and ``categories_`` from the
training table; ``transform`` returns the model matrix with every categorical column encoded against
those fixed levels. Unseen levels become missing on purpose (LightGBM sends them down the "missing"
branch) and are counted in ``unseen_``-style output so callers can flag them (see
:meth:`unseen_levels`). The spec is saved with the model as JSON.
"""

from __future__ import annotations

import json

import pandas as pd

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
        return json.dumps({"feature_names": self.feature_names_, "categorical": self.categorical_,
                           "categories": self.categories_, "exclude": list(self.exclude),
                           "min_level_count": self.min_level_count})

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        d = json.loads(text)
        spec = cls(exclude=tuple(d["exclude"]), min_level_count=d["min_level_count"])
        spec.feature_names_ = d["feature_names"]
        spec.categorical_ = d["categorical"]
        spec.categories_ = d["categories"]
        return spec
