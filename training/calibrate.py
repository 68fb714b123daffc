"""Fit the probability calibrator on the later (validation) slice."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from features.model.bundle import Calibrator, logit

KINDS = ("auto", "isotonic", "platt", "none")
# ``auto`` fits isotonic only when the validation slice has at least this many positives, else Platt. Isotonic
# regression spends one free step per block of pooled labels: with few positives its steps are short and flat,
# so it ties claims the model had ranked apart and loses average precision (151 positives: 0.266 -> 0.244 in
# issue 13); Platt's two parameters keep the ranking and need far fewer positives. Around a thousand positives
# the steps hold enough positives each for isotonic's extra flexibility to pay (Niculescu-Mizil & Caruana 2005
# find isotonic ahead of Platt from about a thousand calibration cases; on a rare event the positives are what
# count). Generated histories of 250,000 claims and more reach it (about 1,200 validation positives at 250,000).
MIN_POSITIVES_ISOTONIC = 1_000


def choose_kind(kind: str, positives: int) -> str:
    """The calibrator ``kind`` resolves to for a validation slice with ``positives`` recouped claims."""
    if kind not in KINDS:
        raise ValueError(f"calibration must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind != "auto":
        return kind
    return "isotonic" if positives >= MIN_POSITIVES_ISOTONIC else "platt"


def _platt_exposed(z: np.ndarray, y: np.ndarray, exposure: np.ndarray, a0: float, b0: float) -> tuple[float, float]:
    """Platt's (a, b) maximizing the likelihood of y ~ Bernoulli(sigmoid(a z + b) * exposure): a claim followed
    for part of the horizon is recouped by now with probability p * F(follow-up) (training.lag)."""

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        p = 1.0 / (1.0 + np.exp(-(ab[0] * z + ab[1])))
        q = np.clip(p * exposure, 1e-12, 1 - 1e-12)
        nll = -np.sum(y * np.log(q) + (1 - y) * np.log1p(-q))
        # d nll / d s, s = a z + b: p (1 - p) [ -y / p + (1 - y) F / (1 - q) ]
        g = p * (1 - p) * (-y / np.maximum(p, 1e-12) + (1 - y) * exposure / (1 - q))
        return float(nll), np.array([np.sum(g * z), np.sum(g)])

    res = minimize(loss, np.array([a0, b0]), jac=True, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


def fit_calibrator(
    raw: np.ndarray, y: np.ndarray, kind: str = "auto", exposure: np.ndarray | None = None
) -> Calibrator:
    """Isotonic (piecewise linear, stored as knots) or Platt scaling on the logit of the raw score;
    ``auto`` picks by the number of positives (``choose_kind``). One class only: no calibration.

    ``exposure`` (F of each claim's follow-up, 1 when its horizon has ended) fits the full-horizon probability
    from partially followed labels: Platt by the exposed likelihood, isotonic as a regression of y / F weighted
    by F (whose expectation is the full-horizon probability)."""
    raw = np.asarray(raw, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    kind = choose_kind(kind, int((y == 1).sum()))
    if kind == "none" or len(np.unique(y)) < 2:
        return Calibrator(kind="none")
    if kind == "platt":
        z = logit(raw).reshape(-1, 1)
        lr = LogisticRegression(C=1e6).fit(z, y)
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        if exposure is not None:
            a, b = _platt_exposed(z[:, 0], y, np.asarray(exposure, dtype=np.float64), a, b)
        return Calibrator(kind="platt", a=a, b=b)
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    if exposure is not None:
        f = np.asarray(exposure, dtype=np.float64)
        iso.fit(raw, y / f, sample_weight=f)
    else:
        iso.fit(raw, y)
    x = np.asarray(iso.X_thresholds_, dtype=float)
    v = np.asarray(iso.y_thresholds_, dtype=float)
    return Calibrator(kind="isotonic", x=x.tolist(), y=v.tolist())
