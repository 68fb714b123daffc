"""Fit the two LightGBM models: likelihood of recoupment (binary) and cause given recouped (multiclass).

Why two models rather than one multiclass with a "none" class: the cause model sees only recouped
claims, so its classes are balanced among themselves and it is not dominated by the ~95% "none"
class; the likelihood model gets all claims and is calibrated on its own. P(cause) for a claim is
P(recouped) x P(cause | recouped).
"""

from __future__ import annotations

import logging

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.contract import CAUSES

log = logging.getLogger(__name__)


def _params(cfg: dict, seed: int, threads: int, **extra) -> dict:
    p = {k: v for k, v in cfg.items() if k not in ("n_estimators", "early_stopping_rounds")}
    p.update(seed=seed, num_threads=threads, verbosity=-1, deterministic=True, force_col_wise=True, **extra)
    return p


def _progress(every: int, name: str):
    def cb(env: lgb.callback.CallbackEnv) -> None:
        if (env.iteration + 1) % every == 0 and env.evaluation_result_list:
            _, metric, value, _ = env.evaluation_result_list[-1][:4]
            log.info("%s: %d trees, valid %s %.4f", name, env.iteration + 1, metric, value)

    return cb


def fit_likelihood(
    M_train: pd.DataFrame,
    y_train: np.ndarray,
    M_valid: pd.DataFrame,
    y_valid: np.ndarray,
    cfg: dict,
    seed: int,
    threads: int,
) -> lgb.Booster:
    """Binary LightGBM with early stopping on the later (validation) slice."""
    params = _params(cfg, seed, threads, objective="binary", metric=["binary_logloss", "average_precision"])
    dtrain = lgb.Dataset(M_train, label=y_train, free_raw_data=True)
    dvalid = lgb.Dataset(M_valid, label=y_valid, reference=dtrain)
    return lgb.train(
        params,
        dtrain,
        num_boost_round=int(cfg["n_estimators"]),
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[
            lgb.early_stopping(int(cfg["early_stopping_rounds"]), first_metric_only=True, verbose=False),
            _progress(100, "likelihood"),
        ],
    )


def fit_cause(
    M_train: pd.DataFrame,
    c_train: np.ndarray,
    M_valid: pd.DataFrame,
    c_valid: np.ndarray,
    cfg: dict,
    seed: int,
    threads: int,
) -> lgb.Booster | None:
    """Multiclass LightGBM over CAUSES on recouped claims; None when there are too few of them."""
    if len(c_train) < 20:
        log.warning("only %d recouped claims in training: no cause model", len(c_train))
        return None
    params = _params(cfg, seed, threads, objective="multiclass", num_class=len(CAUSES), metric="multi_logloss")
    dtrain = lgb.Dataset(M_train, label=c_train)
    valid_sets, cbs = [], [_progress(100, "cause")]
    if len(c_valid) >= 10:
        valid_sets = [lgb.Dataset(M_valid, label=c_valid, reference=dtrain)]
        cbs.append(lgb.early_stopping(int(cfg["early_stopping_rounds"]), verbose=False))
    return lgb.train(params, dtrain, num_boost_round=int(cfg["n_estimators"]), valid_sets=valid_sets, callbacks=cbs)
