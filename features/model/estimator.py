"""The model as an estimator in scikit-learn's sense: parameters set in ``__init__`` (nothing computed there),
``fit(X, y)`` returns ``self``, learned attributes end in ``_``, ``predict_proba``; plus ``contributions``
(per-feature contributions to the raw score, for explanations) and ``save``/``load`` of its own state.

:class:`features.model.bundle.ModelBundle` holds estimators and persists them without knowing what is
inside: a new model type is a new class with the same methods, named in :data:`ESTIMATORS`.

Training and serving both use this module; it needs numpy, pandas, lightgbm and scikit-learn's base classes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError

from features.progress import boosting_progress

log = logging.getLogger(__name__)

#: predictions use threads from this many rows (measured, 100 rows of real features on 2 cores: cause model
#: 2.0 -> 1.1 ms, likelihood 0.48 -> 0.22 ms; for a few rows starting OpenMP threads costs more)
PREDICT_MIN_ROWS = 64
#: TreeSHAP costs ~0.2 ms per row: threads pay off from ~8 rows (measured, 2 cores: 100 rows 22 -> 12 ms)
CONTRIB_MIN_ROWS = 16


def _fitted(est) -> None:
    """Raise :class:`sklearn.exceptions.NotFittedError` unless ``est`` was fitted or loaded (cheaper than
    ``check_is_fitted``, which costs more than predicting one row)."""
    if not hasattr(est, "booster_"):
        raise NotFittedError(f"this {type(est).__name__} is not fitted yet: call fit() or load() first")


class LightGBMClassifier(ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees (LightGBM) over the model matrix of :class:`features.model.spec.FeatureSpec`:
    a frame with pandas categoricals, or the same as float numpy with categorical level codes.

    ``n_classes`` 2 is a binary model (``objective="binary"``), more a multiclass one over the labels
    ``0..n_classes-1`` (all of them, whether ``y`` holds each or not). ``params`` are LightGBM's booster
    parameters (``learning_rate``, ``num_leaves``, ...) as given; ``seed`` and ``num_threads`` (0 = all
    cores; also for predictions of ``PREDICT_MIN_ROWS`` rows or more, a single thread below) are added,
    with deterministic, column-wise training. With an ``eval_set`` and ``early_stopping_rounds``, training
    stops when the first ``metric`` on it has not improved for that many rounds.
    """

    def __init__(
        self,
        n_classes: int = 2,
        n_estimators: int = 100,
        early_stopping_rounds: int | None = None,
        metric: str | list[str] | None = None,
        params: dict | None = None,
        seed: int = 0,
        num_threads: int = 0,
        name: str = "model",
    ):
        self.n_classes = n_classes
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.metric = metric
        self.params = params
        self.seed = seed
        self.num_threads = num_threads
        self.name = name

    # ------------------------------------------------------------------ training
    def _booster_params(self) -> dict:
        p = dict(self.params or {})
        p.update(seed=self.seed, num_threads=self.num_threads, verbosity=-1, deterministic=True, force_col_wise=True)
        if self.n_classes == 2:
            p.update(objective="binary")
        else:
            p.update(objective="multiclass", num_class=self.n_classes)
        if self.metric is not None:
            p.update(metric=self.metric)
        return p

    def fit(
        self,
        X: pd.DataFrame | np.ndarray,
        y: np.ndarray,
        eval_set: tuple | None = None,
        sample_weight: np.ndarray | None = None,
        init_score: np.ndarray | None = None,
        eval_init_score: np.ndarray | None = None,
    ) -> "LightGBMClassifier":
        """Train on (X, y); ``eval_set`` = (X_valid, y_valid) for early stopping. ``init_score`` (and
        ``eval_init_score`` for the eval set) is a per-row offset on the raw score (log-odds) that the trees
        learn around and that prediction leaves out; ``sample_weight`` weighs rows. Returns self."""
        dtrain = lgb.Dataset(X, label=y, weight=sample_weight, init_score=init_score, free_raw_data=True)
        stops = eval_set is not None and self.early_stopping_rounds is not None
        valid_sets, callbacks = [], [boosting_progress(self.name, int(self.n_estimators), early_stopping=stops)]
        evals: dict[str, dict[str, list[float]]] = {}
        if eval_set is not None:
            callbacks.append(lgb.record_evaluation(evals))
            valid_sets = [lgb.Dataset(eval_set[0], label=eval_set[1], init_score=eval_init_score, reference=dtrain)]
            if self.early_stopping_rounds is not None:
                callbacks.append(
                    lgb.early_stopping(int(self.early_stopping_rounds), first_metric_only=True, verbose=False)
                )
        booster = lgb.train(
            self._booster_params(),
            dtrain,
            num_boost_round=int(self.n_estimators),
            valid_sets=valid_sets,
            valid_names=["valid"] * len(valid_sets),
            callbacks=callbacks,
        )
        self._learn(booster)
        #: the eval set's metrics after each boosting iteration, {"valid": {metric: [value, ...]}} (empty without
        #: an eval set; not saved: a loaded estimator has none)
        self.evals_result_ = evals
        return self

    def _learn(self, booster: lgb.Booster) -> None:
        """The learned attributes, all read off the booster (so :meth:`load` restores them)."""
        k = booster.num_model_per_iteration()
        self.booster_ = booster
        self.classes_ = np.arange(2 if k == 1 else k)
        self.feature_names_in_ = np.asarray(booster.feature_name(), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        #: levels of each categorical column as seen in training (a frame with pandas categoricals), in order
        self.categories_ = [list(map(str, c)) for c in (getattr(booster, "pandas_categorical", None) or [])]
        self.n_iter_ = booster.current_iteration()

    # ------------------------------------------------------------------ prediction
    def _threads(self, X, min_rows: int) -> int:
        """One thread below ``min_rows`` rows (starting OpenMP threads costs more than the trees)."""
        return 1 if len(X) < min_rows else (self.num_threads or 0)

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes)."""
        _fitted(self)
        p = np.asarray(self.booster_.predict(X, num_threads=self._threads(X, PREDICT_MIN_ROWS)))
        if len(self.classes_) == 2:
            out = np.empty((len(p), 2))
            out[:, 0] = 1.0 - p
            out[:, 1] = p
            return out
        return p.reshape(len(X), len(self.classes_))

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The most probable class."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def contributions(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """TreeSHAP contributions to the raw score (log-odds): per row, one column per feature then the bias
        (multiclass: that block per class); each row sums to the raw score."""
        _fitted(self)
        return np.asarray(self.booster_.predict(X, pred_contrib=True, num_threads=self._threads(X, CONTRIB_MIN_ROWS)))

    @property
    def feature_importances_(self) -> np.ndarray:
        """Total gain of the splits on each feature."""
        _fitted(self)
        return self.booster_.feature_importance("gain")

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, name: str) -> None:
        """``<name>.txt`` (the LightGBM model) and ``<name>.json`` (this class and its parameters)."""
        _fitted(self)
        d = Path(directory)
        self.booster_.save_model(str(d / f"{name}.txt"))
        (d / f"{name}.json").write_text(
            json.dumps({"estimator": type(self).__name__, "params": self.get_params()}, indent=2)
        )

    @classmethod
    def load(cls, directory: str | Path, name: str, **defaults: Any) -> "LightGBMClassifier":
        """What :meth:`save` wrote; without ``<name>.json`` (older bundles) the parameters are ``defaults``."""
        d = Path(directory)
        meta = d / f"{name}.json"
        params = json.loads(meta.read_text())["params"] if meta.exists() else defaults
        est = cls(**params)
        est._learn(lgb.Booster(model_file=str(d / f"{name}.txt")))
        return est


#: estimator classes by the name their ``save`` records (``<name>.json``, key ``estimator``)
ESTIMATORS: dict[str, type[LightGBMClassifier]] = {"LightGBMClassifier": LightGBMClassifier}


def load_estimator(directory: str | Path, name: str, **defaults: Any) -> LightGBMClassifier | None:
    """The estimator saved as ``name`` in ``directory`` (its class named in ``<name>.json``; LightGBM when
    there is none: bundles saved before estimators), or None when there is no such model."""
    d = Path(directory)
    meta = d / f"{name}.json"
    if meta.exists():
        kind = json.loads(meta.read_text())["estimator"]
        if kind not in ESTIMATORS:
            raise ValueError(f"{meta}: unknown estimator {kind!r} (known: {sorted(ESTIMATORS)})")
        return ESTIMATORS[kind].load(d, name)
    if (d / f"{name}.txt").exists():
        return LightGBMClassifier.load(d, name, **defaults)
    return None
