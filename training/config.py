"""Training configuration: YAML defaults (configs/train.yaml, packaged copy below) plus CLI overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from features.errors import RecoupError
from features.settings import MODEL_NAME

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "train.yaml"
_BUILTIN: dict[str, Any] = {
    "model_name": MODEL_NAME,  # fixed: serving finds the model by this name
    "horizon_days": 365,
    "split": {"valid_fraction": 0.15, "test_fraction": 0.15},
    "likelihood": {
        "n_estimators": 1000,
        "learning_rate": 0.03,
        "num_leaves": 15,
        "min_child_samples": 200,
        "max_bin": 63,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "max_cat_to_onehot": 8,
        "cat_smooth": 20,
        "early_stopping_rounds": 50,
    },
    "cause": {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "feature_fraction": 0.8,
        "early_stopping_rounds": 30,
    },
    "calibration": "auto",
    # learn from claims whose horizon has not ended (training.lag): every claim paid at least min_followup_days
    # before the as-of date, its follow-up entering as an offset log F(follow-up); lag_by: payer | none; reviews: a
    # claim whose audit review confirms its label is mature from the review on (training.reviews)
    "labels": {"immature": True, "min_followup_days": 28, "lag_by": "payer", "reviews": True},
    "seed": 7,
    "num_threads": 2,
    "promotion": {"min_pr_auc_gain": 0.0, "max_ece_increase": 0.005, "min_window_positives": 10},
    "monitor": {
        "bins": 10,
        "max_levels": 20,
        "top_features": 10,
        "payer_top_features": 5,
        "psi_feature_retrain": 0.25,
        "psi_score_watch": 0.1,
        "psi_score_retrain": 0.25,
        "min_payer_claims": 100,
        "max_payer_ece": 0.03,
        "min_payer_labels": 200,
        "min_payer_positives": 10,
        "max_model_age_days": 180,
        "min_window_claims": 200,
    },
    "capacities": [0.01, 0.05, 0.10],
}


#: the ``labels`` section: allowed values of each field (one rule, checked by :func:`check_labels`)
LAG_BY = ("payer", "none")
MAX_MIN_FOLLOWUP_DAYS = 3650


def check_labels(cfg: dict, source: object = "the config") -> dict:
    """The ``labels`` section, each field checked, with a one-line error naming it."""
    lc = cfg.get("labels")
    if not isinstance(lc, dict):
        raise RecoupError(f"labels in {source} must be a section with immature, min_followup_days and lag_by")
    if not isinstance(lc.get("immature"), bool):
        raise RecoupError(f"labels.immature in {source} must be true or false (got {lc.get('immature')!r})")
    m = lc.get("min_followup_days")
    if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= MAX_MIN_FOLLOWUP_DAYS:
        raise RecoupError(
            f"labels.min_followup_days in {source} must be a whole number of days in [1, {MAX_MIN_FOLLOWUP_DAYS}] "
            f"(got {m!r})"
        )
    if lc.get("lag_by") not in LAG_BY:
        raise RecoupError(f"labels.lag_by in {source} must be one of {', '.join(LAG_BY)} (got {lc.get('lag_by')!r})")
    if not isinstance(lc.get("reviews", True), bool):
        raise RecoupError(f"labels.reviews in {source} must be true or false (got {lc.get('reviews')!r})")
    return lc


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> dict:
    """Built-in defaults, then the YAML file (given, or configs/train.yaml when present), then overrides."""
    cfg = copy.deepcopy(_BUILTIN)
    p = Path(path) if path else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    if p is not None:
        cfg = _merge(cfg, yaml.safe_load(p.read_text()) or {})
    cfg = _merge(cfg, {k: v for k, v in (overrides or {}).items() if v is not None})
    if cfg["model_name"] != MODEL_NAME:
        raise RecoupError(
            f"model_name is fixed to {MODEL_NAME!r} (the service looks the model up by it); "
            f"remove model_name: {cfg['model_name']!r} from {p or 'the config'}"
        )
    check_labels(cfg, p or "the config")
    return cfg


def with_n_estimators(cfg: dict, n_estimators: int | None) -> dict:
    """``cfg`` with the trees of both models capped by ``--n-estimators`` (the cause model gets half, at least 10)."""
    if n_estimators:
        cfg["likelihood"]["n_estimators"] = int(n_estimators)
        cfg["cause"]["n_estimators"] = max(int(n_estimators) // 2, 10)
    return cfg
