"""The two models, from the training config: likelihood of recoupment (binary) and cause given recouped
(multiclass), each a :class:`features.model.estimator.LightGBMClassifier`.

Why two models rather than one multiclass with a "none" class: the cause model sees only recouped
claims, so its classes are balanced among themselves and it is not dominated by the ~95% "none"
class; the likelihood model gets all claims and is calibrated on its own. P(cause) for a claim is
P(recouped) x P(cause | recouped).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from features.contract import CAUSES
from features.model.estimator import LightGBMClassifier

log = logging.getLogger(__name__)


def make_estimator(cfg: dict, seed: int, threads: int, n_classes: int, metric, name: str) -> LightGBMClassifier:
    """An unfitted estimator from one model's config section (``n_estimators``, ``early_stopping_rounds``,
    the rest LightGBM parameters)."""
    return LightGBMClassifier(
        n_classes=n_classes,
        n_estimators=int(cfg["n_estimators"]),
        early_stopping_rounds=int(cfg["early_stopping_rounds"]),
        metric=metric,
        params={k: v for k, v in cfg.items() if k not in ("n_estimators", "early_stopping_rounds")},
        seed=seed,
        num_threads=threads,
        name=name,
    )


def fit_likelihood(
    M_train: pd.DataFrame,
    y_train: np.ndarray,
    M_valid: pd.DataFrame,
    y_valid: np.ndarray,
    cfg: dict,
    seed: int,
    threads: int,
    init_score: np.ndarray | None = None,
    eval_init_score: np.ndarray | None = None,
) -> LightGBMClassifier:
    """Binary model with early stopping on the later (validation) slice (first metric: log loss); optional
    per-row log-odds offsets for both slices (training.lag)."""
    est = make_estimator(cfg, seed, threads, 2, ["binary_logloss", "average_precision"], "likelihood")
    return est.fit(
        M_train, y_train, eval_set=(M_valid, y_valid), init_score=init_score, eval_init_score=eval_init_score
    )


def fit_cause(
    M_train: pd.DataFrame,
    c_train: np.ndarray,
    M_valid: pd.DataFrame,
    c_valid: np.ndarray,
    cfg: dict,
    seed: int,
    threads: int,
    sample_weight: np.ndarray | None = None,
) -> LightGBMClassifier | None:
    """Multiclass model over CAUSES on recouped claims (early stopping when the validation slice has 10 or
    more); None when training has fewer than 20 of them."""
    if len(c_train) < 20:
        log.warning("only %d recouped claims in training: no cause model", len(c_train))
        return None
    est = make_estimator(cfg, seed, threads, len(CAUSES), "multi_logloss", "cause")
    return est.fit(
        M_train, c_train, eval_set=(M_valid, c_valid) if len(c_valid) >= 10 else None, sample_weight=sample_weight
    )
