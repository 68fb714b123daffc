"""The model bundle: everything scoring needs, saved as one folder (and logged/registered as such).

Layout::

    likelihood.txt    LightGBM booster: recouped within the horizon (binary)
    cause.txt         LightGBM booster: cause given recouped (multiclass over CAUSES)
    calibrator.json   maps raw likelihood scores to calibrated probabilities (isotonic or Platt)
    spec.json         feature list and categorical levels (features.model.spec.FeatureSpec)
    meta.json         model name/version, horizon, as-of date, rulebook version, metrics, causes
    state/            the history state (features.engine.state.HistoryState) as of training: it holds claims,
                      so the folder is 0700 and its files 0600 (features.engine.state.make_private)

Both training (writes) and serving (reads) use this module; it needs only numpy, pandas, lightgbm.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.engine.arrays import SMALL
from features.contract import CAUSES
from features.model.spec import FeatureSpec


#: predictions use threads from this many rows (measured, 100 rows of real features on 2 cores: cause model
#: 2.0 -> 1.1 ms, likelihood 0.48 -> 0.22 ms; for a few rows starting OpenMP threads costs more)
PREDICT_MIN_ROWS = 64


@dataclass
class Calibrator:
    """Piecewise-linear (isotonic) or logistic (Platt) map from raw score to probability."""

    kind: str = "none"
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    a: float = 1.0
    b: float = 0.0

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if self.kind == "isotonic" and self.x:
            return np.interp(raw, self.x, self.y)
        if self.kind == "platt":
            logit = np.log(np.clip(raw, 1e-9, 1 - 1e-9) / np.clip(1 - raw, 1e-9, 1))
            return 1.0 / (1.0 + np.exp(-(self.a * logit + self.b)))
        return raw

    def to_dict(self) -> dict:
        return {"kind": self.kind, "x": self.x, "y": self.y, "a": self.a, "b": self.b}


@dataclass
class ModelBundle:
    """Boosters, calibrator, feature spec and metadata of one registered model version."""

    likelihood: lgb.Booster
    cause: lgb.Booster | None
    calibrator: Calibrator
    spec: FeatureSpec
    meta: dict
    path: Path | None = None

    # ------------------------------------------------------------------ prediction
    def matrix(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.spec.transform(X)

    def numpy_ok(self) -> bool:
        """Whether the boosters' categorical levels are the spec's (so a numpy matrix of level codes
        gives the same predictions as the DataFrame)."""
        ok = getattr(self, "_numpy_ok", None)
        if ok is None:
            want = [list(self.spec.categories_[c]) for c in self.spec.categorical_]
            ok = True
            for b in (self.likelihood, self.cause):
                if b is None:
                    continue
                got = getattr(b, "pandas_categorical", None) or []
                names = b.feature_name()
                if [list(map(str, g)) for g in got] != want or names != list(self.spec.feature_names_):
                    ok = False
            self._numpy_ok = ok
        return ok

    def fast_matrix(self, X: pd.DataFrame) -> np.ndarray | pd.DataFrame:
        """The model matrix as numpy when the boosters allow it (fast for a few claims), else a frame."""
        return self.spec.transform_numpy(X) if self.numpy_ok() else self.spec.transform(X)

    def _threads(self, M, min_rows: int) -> int:
        """LightGBM threads for ``M``: one below ``min_rows`` rows (starting OpenMP threads costs more than
        the trees), else the bundle's ``num_threads`` (0 = all cores)."""
        return 1 if len(M) < min_rows else (self.meta.get("num_threads", 0) or 0)

    def raw_score(self, M: pd.DataFrame) -> np.ndarray:
        return self.likelihood.predict(M, num_threads=self._threads(M, PREDICT_MIN_ROWS))

    def probability(self, M: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of a recoupment within the horizon."""
        return np.clip(self.calibrator(self.raw_score(M)), 0.0, 1.0)

    def cause_probabilities(self, M: pd.DataFrame) -> np.ndarray:
        """P(cause | recouped) per claim, shape (n, len(CAUSES))."""
        if self.cause is None:
            return np.full((len(M), len(CAUSES)), 1.0 / len(CAUSES))
        p = self.cause.predict(M, num_threads=self._threads(M, PREDICT_MIN_ROWS))
        return np.asarray(p).reshape(len(M), len(CAUSES))

    def contributions(self, M: pd.DataFrame) -> np.ndarray:
        """TreeSHAP contributions of the likelihood model (log-odds), last column the bias."""
        # TreeSHAP costs ~0.2 ms per row: threads pay off from ~8 rows (measured, 2 cores: 100 rows 22 -> 12 ms)
        return np.asarray(self.likelihood.predict(M, pred_contrib=True, num_threads=self._threads(M, 16)))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, state_dir: str | Path | None = None) -> Path:
        from features.engine.state import make_private

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.likelihood.save_model(str(d / "likelihood.txt"))
        if self.cause is not None:
            self.cause.save_model(str(d / "cause.txt"))
        (d / "calibrator.json").write_text(json.dumps(self.calibrator.to_dict()))
        (d / "spec.json").write_text(self.spec.to_json())
        (d / "meta.json").write_text(json.dumps(self.meta, indent=2, default=str))
        if state_dir is not None and Path(state_dir).resolve() != (d / "state").resolve():
            tmp = d / f".state.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(state_dir, tmp)
            make_private(tmp)  # the state holds claims: readable by its user only
            if (d / "state").exists():
                shutil.rmtree(d / "state")
            os.rename(tmp, d / "state")
        if (d / "state").exists():
            make_private(d / "state")
        self.path = d
        return d

    @classmethod
    def load(cls, directory: str | Path) -> "ModelBundle":
        d = Path(directory)
        if not (d / "likelihood.txt").exists():
            from features.errors import RecoupError

            raise RecoupError(f"{d} is not a recoup model bundle (no likelihood.txt)")
        cause = lgb.Booster(model_file=str(d / "cause.txt")) if (d / "cause.txt").exists() else None
        cal = Calibrator(**json.loads((d / "calibrator.json").read_text()))
        return cls(
            likelihood=lgb.Booster(model_file=str(d / "likelihood.txt")),
            cause=cause,
            calibrator=cal,
            spec=FeatureSpec.from_json((d / "spec.json").read_text()),
            meta=json.loads((d / "meta.json").read_text()),
            path=d,
        )

    @property
    def state_dir(self) -> Path | None:
        return None if self.path is None else self.path / "state"


def expected_amount(
    bundle: ModelBundle,
    probability: np.ndarray,
    cause_proba: np.ndarray,
    claims: pd.DataFrame,
) -> np.ndarray:
    """Dollars at risk: P(recouped) x sum over causes of P(cause | recouped) x the share of the payment
    recouped for that cause (learned in training) x the payment (paid amount when known, else the charge
    times the payer's usual paid-to-charge ratio)."""
    meta = bundle.meta
    ratio = meta.get("payer_paid_ratio", {})
    default_ratio = float(meta.get("paid_ratio_default", 0.6))
    charge = claims["total_charge"].to_numpy(dtype=np.float64)
    payer = claims["payer_id"]
    if len(payer) <= SMALL:  # a dict lookup per claim (pandas map has a large fixed cost)
        vals = [ratio.get(k if type(k) is str else str(k)) for k in payer.tolist()]
        payer_ratio = np.array([default_ratio if v is None or pd.isna(v) else v for v in vals], dtype=np.float64)
    else:
        payer_ratio = payer.astype(str).map(ratio).fillna(default_ratio).to_numpy(dtype=np.float64)
    base = charge * payer_ratio
    if "paid_amount" in claims.columns:
        paid = claims["paid_amount"].to_numpy(dtype=np.float64)
        base = np.where(np.isfinite(paid) & (paid > 0), paid, base)
    share = np.array([float(meta.get("cause_amount_share", {}).get(c, 1.0)) for c in CAUSES])
    return np.asarray(probability) * (np.asarray(cause_proba) @ share) * base
