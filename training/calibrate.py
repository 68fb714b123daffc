"""Fit the probability calibrator on the later (validation) slice."""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from features.model.bundle import Calibrator


def fit_calibrator(raw: np.ndarray, y: np.ndarray, kind: str = "isotonic") -> Calibrator:
    """Isotonic (piecewise linear, stored as knots) or Platt scaling on the logit of the raw score."""
    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if kind == "none" or len(np.unique(y)) < 2:
        return Calibrator(kind="none")
    if kind == "platt":
        logit = np.log(np.clip(raw, 1e-9, 1 - 1e-9) / np.clip(1 - raw, 1e-9, 1)).reshape(-1, 1)
        lr = LogisticRegression(C=1e6).fit(logit, y)
        return Calibrator(kind="platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
    x = np.asarray(iso.X_thresholds_, dtype=float)
    v = np.asarray(iso.y_thresholds_, dtype=float)
    return Calibrator(kind="isotonic", x=x.tolist(), y=v.tolist())
