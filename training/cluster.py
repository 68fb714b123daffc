"""`recoup train --cluster` and `recoup evaluate --cluster`: the same training on a Dask cluster (docs/scale.md).

The feature table comes from :func:`features.cluster.table.feature_table` (time partitions, never one process);
labels are made per partition with :func:`features.model.outcomes.make_labels` after a distributed join of the
recoupments with the claims' payment dates; the split dates, the categorical levels, the slices' counts and the
payer ratios are distributed reductions; the two models are trained with ``lightgbm.dask`` and come back as local
boosters into the SAME bundle (:class:`features.model.bundle.ModelBundle`), which the service serves unchanged.

What is collected into this process (small, or bounded by the latest window): the recoupments within their
horizon (one row per recoupment), the recouped claims' labels (lags, cause weights, cause shares), the validation
slice's raw scores (one column: the calibrator), and the latest window's predictions and features (metrics,
promotion gate, plots), as in the single process.

Early stopping: ``lightgbm.dask`` does not support it (LightGBM issues #3712, #4189, #6351: each worker would
stop on its own share of the eval set and the others hang), so each model is trained to its full ``n_estimators``
and cut afterwards at the iteration LightGBM's ``early_stopping`` callback would have chosen: the validation
slice's first metric (log loss) after every iteration is summed over the partitions on the cluster and the same
rule (best so far, stop after ``early_stopping_rounds`` without a strict improvement) picks the trees to keep.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.cluster.client import dask_directory
from features.cluster.parts import PartReader, frame_of, part_bytes, read_part, scratch, write_part
from features.contract import CAUSES, History
from features.errors import RecoupError
from features.model.bundle import Calibrator, ModelBundle
from features.model.estimator import LightGBMClassifier
from features.model.outcomes import make_labels
from features.model.spec import FeatureSpec
from features.progress import duration
from features.rulebook import load_rulebook
from training.calibrate import MIN_POSITIVES_ISOTONIC, fit_calibrator
from training.lag import LagDistribution, cause_weights, exposure_of, fit_lag, label_delay_days, lag_frame
from training.metrics import evaluate_frame
from training.model import make_estimator

log = logging.getLogger(__name__)

#: label columns of make_labels kept next to the features (prefixed: X has payer_id, total_charge ...)
LABEL_COLUMNS = (
    "mature",
    "label",
    "cause",
    "recouped_amount",
    "paid_amount",
    "total_charge",
    "submitted_date",
    "payer_id",
    "followup_days",
    "first_recouped_days",
    "cause_idx",
)
Y, C = "_y_", "_c_"  # prefixes: labels, claim columns (scoring needs the claim's own paid amount and payer)
PART = "_part"  # 0 train, 1 valid, 2 test, 3 not usable (time_split's "immature")
SLICES = ("train", "valid", "test")
#: the model matrix's dtype for lightgbm.dask (half of float64's memory on the workers, and LightGBM bins float32
#: without a copy); validation, calibration, scoring and the service predict from float64 (see _train_dask)
TRAIN_DTYPE = np.float32
LIGHTGBM_NETWORK_TIMEOUT_MIN = 20


# ---------------------------------------------------------------------------------------------- per partition
def _claim_ids(claims: pd.DataFrame) -> pd.Index:
    """A claims partition's claim ids as text (from its claim_id column, else its index)."""
    ids = claims["claim_id"] if "claim_id" in claims.columns else claims.index.to_series()
    return pd.Index(ids.astype(str).to_numpy(), name="claim_id")


def _as_known(claims: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    """Claims as known on ``cut`` (truncate_history's rule): a payment after it is not known yet."""
    c = claims.copy()
    late = c["paid_date"] > cut
    c.loc[late, "paid_date"] = pd.NaT
    c.loc[late, "paid_amount"] = np.nan
    return c


def _assemble(
    X: pd.DataFrame, claims: pd.DataFrame, recoupments: pd.DataFrame, cut: pd.Timestamp, horizon: int, label_cfg: dict
) -> pd.DataFrame:
    """One partition: its features, its labels as of ``cut`` (``make_labels``, the single process's code, on its
    claims and their recoupments), ``usable``, and the claim columns scoring needs; index claim_id as X's."""
    c = claims.copy()
    c.index = _claim_ids(claims)
    c = c.reindex(pd.Index(X.index.astype(str), name="claim_id"))
    c["claim_id"] = c.index.to_numpy()
    c = _as_known(c.reset_index(drop=True), cut)
    r = recoupments[recoupments["claim_id"].astype(str).isin(c["claim_id"])]
    labels = make_labels(History(claims=c, claim_lines=c.iloc[:0], recoupments=r), cut, horizon)
    out = X.copy()
    for col in LABEL_COLUMNS:
        out[Y + col] = labels[col].to_numpy()
    out[Y + "cause"] = out[Y + "cause"].astype(object)
    delay = label_delay_days(label_cfg, 0) if label_cfg.get("immature") else None
    usable = labels["mature"] if delay is None else labels["mature"] | (labels["followup_days"] >= delay)
    out[Y + "usable"] = usable.to_numpy(dtype=bool)
    out[C + "paid_amount"] = c["paid_amount"].to_numpy(dtype=np.float64)
    out[C + "total_charge"] = c["total_charge"].to_numpy(dtype=np.float64)
    out[C + "payer_id"] = c["payer_id"].astype(str).to_numpy(dtype=object)
    return out


def _with_part(frame: pd.DataFrame, d_valid: pd.Timestamp, d_test: pd.Timestamp) -> pd.DataFrame:
    """time_split's slices from its two cut dates (same comparisons)."""
    sd = frame[Y + "submitted_date"]
    part = np.where(sd < d_valid, 0, np.where(sd < d_test, 1, 2))
    out = frame.copy()
    out[PART] = np.where(frame[Y + "usable"].to_numpy(dtype=bool), part, 3).astype(np.int8)
    return out


def labels_of(frame: pd.DataFrame) -> pd.DataFrame:
    """The make_labels frame held in a partition's prefixed columns."""
    return pd.DataFrame({col: frame[Y + col].to_numpy() for col in LABEL_COLUMNS}, index=frame.index)


def _rows(frame: pd.DataFrame, part: int, recouped: bool = False) -> pd.DataFrame:
    """A partition's rows of one slice (``PART``), only the recouped ones with ``recouped`` (the cause model's)."""
    keep = frame[PART].to_numpy() == part
    if recouped:
        keep &= frame[Y + "label"].to_numpy() == 1
    return frame[keep]


def _matrix(frame: pd.DataFrame, spec: FeatureSpec, dtype: Any = np.float64) -> np.ndarray:
    """The model matrix of a partition's rows as numpy, in one allocation of ``dtype``: numeric columns as they
    are, categorical ones as the code of their spec level (``FeatureSpec.level_codes``), NaN when missing or unseen:
    what :meth:`FeatureSpec.transform_arrays` gives (the service's matrix) and what LightGBM makes of
    :meth:`FeatureSpec.transform`'s categoricals."""
    cats = set(spec.categorical_)
    out = np.empty((len(frame), len(spec.feature_names_)), dtype=dtype)
    for j, c in enumerate(spec.feature_names_):
        if c in cats:
            out[:, j] = spec.level_codes(c, frame[c].to_numpy(dtype=object))
        else:
            out[:, j] = frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _offset(rows: pd.DataFrame, lag: LagDistribution | None, log_odds_base: float | None) -> np.ndarray:
    """Each row's offset on the likelihood's raw score: log F(follow-up) plus the base log-odds (0 without a lag)."""
    if log_odds_base is None:
        return np.zeros(len(rows))
    return np.log(exposure_of(labels_of(rows), lag)) + log_odds_base


def _cause_idx(rows: pd.DataFrame) -> np.ndarray:
    return rows[Y + "cause_idx"].fillna(-1).to_numpy(dtype=np.int64)


def _train_arrays(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    lag: LagDistribution | None,
    log_odds_base: float | None,
    weights: pd.Series,
    recouped: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A partition's training rows for lightgbm.dask: the model matrix (``TRAIN_DTYPE``), the target and the
    likelihood's offset (``recouped``: the cause model's target and inverse-lag weight) of its train slice."""
    rows = _rows(frame, 0, recouped)
    X = _matrix(rows, spec, TRAIN_DTYPE)
    if recouped:
        extra = weights.reindex(rows.index.astype(str)).fillna(1.0).to_numpy(dtype=np.float64)
        return X, _cause_idx(rows), extra
    return X, rows[Y + "label"].to_numpy(dtype=np.int64), _offset(rows, lag, log_odds_base)


def _train_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """A partition's train-slice rows and, of them, recouped ones (one row)."""
    train = frame[PART].to_numpy() == 0
    pos = train & (frame[Y + "label"].to_numpy() == 1)
    return pd.DataFrame({"n": [int(train.sum())], "pos": [int(pos.sum())]})


def _valid_test(frame: pd.DataFrame) -> pd.DataFrame:
    """A partition's validation and test rows (what is needed of the table once the models' rows are built)."""
    part = frame[PART].to_numpy()
    return frame[(part == 1) | (part == 2)]


def _loss_curve(
    frame: pd.DataFrame,
    booster_text: str,
    spec: FeatureSpec,
    lag: LagDistribution | None,
    log_odds_base: float | None,
    recouped: bool,
    n_classes: int,
) -> np.ndarray:
    """Sum over a partition's validation rows (``recouped``: its recouped ones) of the log loss after each
    boosting iteration (binary: with the row's offset, as ``eval_init_score``)."""
    import lightgbm as lgb

    booster = lgb.Booster(model_str=booster_text)
    n_iter = booster.current_iteration()
    rows = _rows(frame, 1, recouped)
    if len(rows) == 0:
        return np.zeros(n_iter)
    mat = _matrix(rows, spec)
    out = np.empty(n_iter)
    if n_classes == 2:
        y = rows[Y + "label"].to_numpy(dtype=np.int64)
        raw = _offset(rows, lag, log_odds_base).astype(np.float64)
        for i in range(n_iter):
            raw += np.asarray(booster.predict(mat, start_iteration=i, num_iteration=1, raw_score=True))
            out[i] = np.where(y == 1, np.logaddexp(0, -raw), np.logaddexp(0, raw)).sum()
    else:
        y = _cause_idx(rows)
        raw2 = np.zeros((len(rows), n_classes))
        idx = np.arange(len(rows))
        for i in range(n_iter):
            step = np.asarray(booster.predict(mat, start_iteration=i, num_iteration=1, raw_score=True))
            raw2 += step.reshape(len(rows), -1)
            lse = np.logaddexp.reduce(raw2, axis=1)
            out[i] = (lse - raw2[idx, y]).sum()
    return out


def _raw_scores(frame: pd.DataFrame, booster_text: str, spec: FeatureSpec, lag: LagDistribution | None) -> pd.DataFrame:
    """The (uncalibrated) likelihood of a partition's validation rows, next to label and exposure: what calibration
    fits on."""
    import lightgbm as lgb

    booster = lgb.Booster(model_str=booster_text)
    rows = _rows(frame, 1)
    p = booster.predict(_matrix(rows, spec)) if len(rows) else np.zeros(0)
    return pd.DataFrame(
        {
            "raw": np.asarray(p, dtype=np.float64),
            "label": rows[Y + "label"].to_numpy(dtype=np.int64),
            "exposure": exposure_of(labels_of(rows), lag),
        },
        index=rows.index,
    )


def _score_part(
    frame: pd.DataFrame, bundle: ModelBundle, lag: LagDistribution | None, with_exposure: bool
) -> pd.DataFrame:
    """score_frame on one partition's rows (the single process's function)."""
    from training.train import score_frame

    if len(frame) == 0:
        return _scored_empty(frame.index, with_exposure)
    claims = pd.DataFrame(
        {
            "payer_id": frame[C + "payer_id"].to_numpy(),
            "total_charge": frame[C + "total_charge"].to_numpy(),
            "paid_amount": frame[C + "paid_amount"].to_numpy(),
        },
        index=frame.index,
    )
    features = [c for c in frame.columns if not c.startswith((Y, C, "_"))]
    labels = labels_of(frame)
    return score_frame(
        bundle,
        bundle.spec.transform(frame),
        claims,
        labels,
        frame[features],
        exposure=exposure_of(labels, lag) if with_exposure else None,
    )


def _scored_empty(index: pd.Index, with_exposure: bool) -> pd.DataFrame:
    """score_frame's columns and dtypes without rows (a partition with no claim of the window)."""
    out = pd.DataFrame(
        {
            "label": np.zeros(0, dtype=np.int64),
            "true_cause": np.zeros(0, dtype=object),
            "recouped_amount": np.zeros(0),
            "probability": np.zeros(0),
            "expected_amount": np.zeros(0),
            "payer_id": np.zeros(0, dtype=object),
            "plan_type": np.zeros(0, dtype=object),
            "specialty": np.zeros(0, dtype=object),
            "total_charge": np.zeros(0),
        },
        index=index[:0],
    )
    for c in CAUSES:
        out[f"p_{c}"] = np.zeros(0)
    if with_exposure:
        out["exposure"] = np.zeros(0)
    return out


# ---------------------------------------------------------------------------------------------- driver helpers
@dataclass(frozen=True)
class LabelSink:
    """The feature table's sink (:func:`features.cluster.table.feature_table`): each partition's features with
    their labels as of ``cut`` (None: the history's last date) written to ``folder`` as soon as they are computed;
    a worker then holds no table between the steps of training."""

    folder: str
    cut: pd.Timestamp | None
    horizon: int
    label_cfg: dict

    def __call__(
        self, index: int, feats: tuple, claims: pd.DataFrame, recs: pd.DataFrame | None, last: pd.Timestamp
    ) -> dict:
        t0 = time.perf_counter()
        cut = self.cut if self.cut is not None else last
        r = recs if recs is not None else pd.DataFrame({"claim_id": pd.Series([], dtype=object)})
        frame = _assemble(feats[0], claims, r, cut, self.horizon, self.label_cfg)
        t1 = time.perf_counter()
        path = write_part(frame, self.folder, index)
        return {
            "path": path,
            "rows": len(frame),
            "meta": frame.iloc[:0],
            "columns": list(feats[0].columns),
            "label_s": t1 - t0,
            "write_s": time.perf_counter() - t1,
            "bytes": part_bytes(path),
        }


@dataclass(frozen=True)
class Labelled(PartReader):
    """A labelled partition read back; with ``cuts`` (time_split's two dates) also its slice (``PART``), computed
    from the submission date and ``usable`` as :func:`_with_part` does."""

    cuts: tuple[pd.Timestamp, pd.Timestamp] | None = None

    def __call__(self, path: str, columns: list[str] | None = None) -> pd.DataFrame:
        cols = list(self.meta.columns) if columns is None else list(columns)
        if PART not in cols or self.cuts is None:
            return read_part(path, self.meta, cols)
        need = [c for c in cols if c != PART]
        read = need + [c for c in (Y + "submitted_date", Y + "usable") if c not in need]
        df = _with_part(read_part(path, self.meta, read), *self.cuts)
        return df[cols]


@dataclass
class LabelledTable:
    """The labelled feature table written by :class:`LabelSink` (one file per partition) and what is known of it."""

    paths: list[str]
    meta: pd.DataFrame
    columns: list[str]  # the feature columns
    n_claims: int
    n_lines: int
    cut: pd.Timestamp
    state: Any = None

    def frame(self, cuts: tuple[pd.Timestamp, pd.Timestamp] | None = None) -> Any:
        """The table as a Dask DataFrame read from its files (with ``cuts``: and its ``PART`` column)."""
        meta = self.meta if cuts is None else _with_part(self.meta, *cuts)
        return frame_of(self.paths, Labelled(meta, cuts), meta)


def labelled_table(
    client: Any,
    data: Path,
    folder: str,
    cut: pd.Timestamp | None,
    horizon: int,
    label_cfg: dict,
    *,
    until: str | None = None,
    since: str | None = None,
    with_state: bool = False,
) -> LabelledTable:
    """The feature table of ``data`` computed on the cluster, each partition labelled (``make_labels`` as of
    ``cut``, None: the history's last date, with the recoupments of its own claims) and written to ``folder`` as it
    is done; with ``with_state`` the bundle's history state, written to this machine's disk as it is built
    (a :class:`~features.engine.state.SavedState`). Nothing of the table stays on the
    workers."""
    from features.cluster.table import feature_table

    t = time.perf_counter()
    ct = feature_table(
        client,
        data,
        load_rulebook(),
        since=since,
        until=until,
        folder=folder,
        with_state=with_state,
        sink=LabelSink(folder, cut, horizon, label_cfg),
    )
    got = ct.collect()  # the sink's results here (most were gathered as each partition's were done)
    last = ct.last_date.result()
    state = None
    if with_state:
        t_state = time.perf_counter()
        # compacted and written to this machine's disk as it is built: the command does not hold it through training
        state = ct.save_bundle_state(dask_directory() / "states" / f"bundle-{uuid.uuid4().hex[:12]}")
        _release()
        log.info("the bundle's history state built and compacted in %s", duration(time.perf_counter() - t_state))
    n_lines = int(ct.n_lines)
    del ct
    _release()
    if not got:
        raise RecoupError("no claims submitted in the months asked")
    out = LabelledTable(
        paths=[g["path"] for g in got],
        meta=got[0]["meta"],
        columns=list(got[0]["columns"]),
        n_claims=int(sum(g["rows"] for g in got)),
        n_lines=n_lines,
        cut=pd.Timestamp(cut if cut is not None else last),
        state=state,
    )
    log.info(
        "features and labels of %d claims in %d partitions written to the scratch folder in %s (labels %.1f s, "
        "writes %.1f s summed over the partitions; %.0f MB on disk)",
        out.n_claims,
        len(got),
        duration(time.perf_counter() - t),
        sum(g["label_s"] for g in got),
        sum(g["write_s"] for g in got),
        sum(g["bytes"] for g in got) / 1e6,
    )
    return out


def _kth(counts: pd.Series, k: int) -> pd.Timestamp:
    """The k-th (0-based) smallest date of a multiset given as date -> count (sorted by date)."""
    cum = counts.to_numpy().cumsum()
    return pd.Timestamp(counts.index[int(np.searchsorted(cum, k, side="right"))])


def split_dates(day_counts: pd.Series, valid_fraction: float, test_fraction: float) -> tuple[pd.Timestamp, ...]:
    """time_split's two cut dates from the usable claims' submission dates counted per date."""
    counts = day_counts.sort_index()
    n = int(counts.sum())
    return (
        _kth(counts, min(int(n * (1 - valid_fraction - test_fraction)), n - 1)),
        _kth(counts, min(int(n * (1 - test_fraction)), n - 1)),
    )


def _spec_of(columns: list[str]) -> FeatureSpec:
    """A FeatureSpec with the feature names and categorical columns of ``columns``; its levels still to learn."""
    from features.pipeline import CATEGORICAL

    spec = FeatureSpec()
    spec.feature_names_ = [c for c in columns if c not in spec.exclude]
    spec.categorical_ = [c for c in CATEGORICAL if c in spec.feature_names_]
    return spec


def _level_counts(train: Any, spec: FeatureSpec) -> list[Any]:
    """The train slice's count of each level of each categorical column (lazy: computed with the others)."""
    return [train[c].astype("string").value_counts(split_out=1) for c in spec.categorical_]


def _with_levels(spec: FeatureSpec, counts: list[pd.Series]) -> FeatureSpec:
    """FeatureSpec.fit's levels from the level counts summed over the partitions."""
    spec.categories_ = {
        c: sorted(n[n >= spec.min_level_count].index.astype(str).tolist()) for c, n in zip(spec.categorical_, counts)
    }
    return spec


def _numeric(meta: pd.DataFrame, columns: list[str]) -> list[str]:
    return [
        c
        for c in columns
        if pd.api.types.is_numeric_dtype(meta[c].dtype) and not pd.api.types.is_bool_dtype(meta[c].dtype)
    ]


def _reference(medians: pd.Series) -> dict[str, float]:
    """feature_reference's medians over the train slice, from Dask's approximate quantiles (docs/scale.md)."""
    return {str(c): round(float(v), 6) for c, v in medians.items() if pd.notna(v) and np.isfinite(v)}


def _train_inputs(
    client: Any,
    frame: Any,
    counts: pd.DataFrame,
    spec: FeatureSpec,
    lag: LagDistribution | None,
    log_odds_base: float | None,
    weights: pd.Series,
    recouped: bool,
) -> tuple[Any, Any, Any]:
    """The train slice's rows for lightgbm.dask as Dask arrays persisted on the cluster (matrix, target, offset or
    weight; see :func:`_train_arrays`), one chunk per partition that holds some: the workers hold these (float32)
    instead of a second frame of the table. ``counts``: :func:`_train_counts` of every partition."""
    import dask
    import dask.array as da

    n = counts["pos" if recouped else "n"].to_numpy()
    width = len(spec.feature_names_)
    shared = dask.delayed(spec), dask.delayed(lag), dask.delayed(weights)  # one key each, not a copy per task
    xs, ys, es = [], [], []
    for part, k in zip(frame.to_delayed(), n.tolist()):
        if k == 0:
            continue
        x, y, e = dask.delayed(_train_arrays, nout=3)(part, shared[0], shared[1], log_odds_base, shared[2], recouped)
        xs.append(da.from_delayed(x, shape=(k, width), dtype=TRAIN_DTYPE))
        ys.append(da.from_delayed(y, shape=(k,), dtype=np.int64))
        es.append(da.from_delayed(e, shape=(k,), dtype=np.float64))
    if not xs:
        raise RecoupError("no rows to train on in the train slice")
    out = client.persist([da.concatenate(xs), da.concatenate(ys), da.concatenate(es)])
    return out[0], out[1], out[2]


def _categoricals(spec: FeatureSpec) -> tuple[list[int], list[list[str]]]:
    """The positions of the spec's categorical columns in the model matrix and their levels in that order: what
    LightGBM takes as ``categorical_feature`` and records as ``pandas_categorical`` from a frame of
    :meth:`FeatureSpec.transform` (so a booster trained on :func:`_matrix` is the one trained on that frame)."""
    cats = set(spec.categorical_)
    positions = [j for j, c in enumerate(spec.feature_names_) if c in cats]
    return positions, [list(spec.categories_[spec.feature_names_[j]]) for j in positions]


def _early_stop(curve: np.ndarray, rounds: int | None) -> int:
    """Trees kept: LightGBM's early_stopping rule on a per-iteration loss curve (strict improvement, stop after
    ``rounds`` iterations without one); all of them without ``rounds``."""
    if rounds is None or len(curve) == 0:
        return len(curve)
    best, best_i = np.inf, 0
    for i, v in enumerate(curve):
        if v < best:
            best, best_i = v, i
        elif i - best_i >= rounds:
            break
    return best_i + 1


def _train_dask(
    client: Any,
    train: tuple[Any, Any, Any],
    valid: Any,
    n_valid: int,
    spec: FeatureSpec,
    lag: LagDistribution | None,
    log_odds_base: float | None,
    est: LightGBMClassifier,
    extra: str | None,
) -> LightGBMClassifier:
    """Train ``est``'s model with lightgbm.dask on ``train`` (:func:`_train_inputs`: matrix, target and the
    third array passed as ``extra``, ``init_score`` or ``sample_weight``, or not at all), cut it at the
    early-stopping iteration on the validation rows of ``valid`` (a frame of the table's partitions, ``n_valid``
    such rows; None: no early stopping) and return it as the local estimator of the bundle.

    The matrix is ``TRAIN_DTYPE`` (float32): LightGBM bins those values, so each split's threshold lies between two
    float32 values seen in training and the training rows' float64 values fall on the same side of it as their
    float32 ones; validation, calibration, scoring and the service predict from the float64 matrix. The booster
    gets the spec's feature names, categorical columns (by position) and levels (``pandas_categorical``): the
    model string of a frame with the spec's categoricals (the same bundle, ``ModelBundle.numpy_ok``)."""
    import dask
    import lightgbm as lgb
    from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

    recouped = est.n_classes != 2
    params = est._booster_params()
    params.pop("num_threads", None)  # lightgbm.dask sets each worker's from its Dask threads
    params.pop("metric", None)  # no eval set on the workers: validation is computed below
    # minutes LightGBM's workers wait for each other (its default, 120, would hold a job that long when one dies)
    params["time_out"] = LIGHTGBM_NETWORK_TIMEOUT_MIN
    X, y, third = train
    workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    if X.numblocks[0] < workers:  # every worker trains on a share (lightgbm.dask uses the workers holding data)
        rows = -(-int(X.shape[0]) // workers)
        X, y, third = client.persist([X.rechunk((rows, X.shape[1])), y.rechunk((rows,)), third.rechunk((rows,))])
    kw: dict[str, Any] = {}
    if extra is not None:
        kw[extra] = third
    features = list(spec.feature_names_)
    categorical, levels = _categoricals(spec)
    if est.n_classes == 2:
        # binary: the classifier's label encoding is 0 -> 0, 1 -> 1 on every worker as long as each has a negative
        lows = dask.compute(*[dask.delayed(np.min)(b) for b in y.to_delayed().ravel().tolist()])
        if (np.asarray(lows) > 0).any():
            raise RecoupError("a partition of the train slice holds only recouped claims: repartition the data")
        model: Any = DaskLGBMClassifier(client=client, n_estimators=int(est.n_estimators), **params)
    else:
        # multiclass over all CAUSES whether a worker sees each or not: the classifier would re-encode the causes
        # present on each worker (lightgbm.sklearn's label encoder), so the same booster (objective multiclass,
        # num_class) is trained through the regressor's interface, which passes the labels as they are
        model = DaskLGBMRegressor(client=client, n_estimators=int(est.n_estimators), **params)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()) as said:
        warnings.simplefilter("ignore", UserWarning)  # "Parameter n_jobs will be ignored": Dask sets the threads
        model.fit(X, y, feature_name=features, categorical_feature=categorical, **kw)
    for line in said.getvalue().splitlines():  # lightgbm.dask prints ("Finding random open ports for workers")
        log.debug("lightgbm.dask: %s", line)
    log.info("%s: trained on %d partitions across %d workers", est.name, X.numblocks[0], workers)
    del X, y, third, kw, train
    booster = model.to_local().booster_
    del model
    booster.pandas_categorical = levels
    text = booster.model_to_string()
    metric = "binary_logloss" if est.n_classes == 2 else "multi_logloss"
    keep = booster.current_iteration()
    evals: dict = {}
    if valid is not None and est.early_stopping_rounds is not None:
        shared = dask.delayed(text)  # a key of the graph (recomputed if a worker is lost), not scattered data
        args = (dask.delayed(spec), dask.delayed(lag), log_odds_base, recouped, est.n_classes)
        parts = valid.to_delayed()
        sums = dask.compute(*[dask.delayed(_loss_curve)(p, shared, *args) for p in parts])
        curve = np.sum(sums, axis=0) / max(n_valid, 1)
        keep = _early_stop(curve, int(est.early_stopping_rounds))
        stop = min(len(curve), keep + int(est.early_stopping_rounds))
        evals = {"valid": {metric: [float(v) for v in curve[:stop]]}}
        log.info("%s: %d of %d trees kept (validation %s, early stopping)", est.name, keep, len(curve), metric)
    local = lgb.Booster(model_str=booster.model_to_string(num_iteration=keep))
    est._learn(local)
    est.evals_result_ = evals
    return est


def _payer_sums(frame: Any) -> Any:
    """The train and validation slices' paid amounts and charges summed per payer (lazy)."""
    f = frame[(frame[PART] <= 1) & ~frame[C + "paid_amount"].isnull() & (frame[C + "total_charge"] > 0)]
    return f.groupby(C + "payer_id")[[C + "paid_amount", C + "total_charge"]].sum(split_out=1)


def _payer_paid_ratio(sums: pd.DataFrame) -> tuple[dict, float]:
    """training.train._payer_paid_ratio from the sums per payer."""
    if sums.empty:
        return {}, 0.6
    ratio = (sums[C + "paid_amount"] / sums[C + "total_charge"]).clip(0, 1)
    total = float(sums[C + "paid_amount"].sum() / sums[C + "total_charge"].sum())
    return {str(k): float(v) for k, v in ratio.items()}, total


# ---------------------------------------------------------------------------------------------- training
def train_model_cluster(
    client: Any,
    data: Path,
    as_of: str | pd.Timestamp | None = None,
    horizon_days: int | None = None,
    config: dict | None = None,
) -> tuple[Any, pd.Series]:
    """training.train.train_model on a Dask cluster: (TrainResult, submission dates of the latest window's
    claims by claim id, for the promotion gate).

    What the workers hold (docs/scale.md, "Training"): the feature table's partitions while they are computed, each
    written with its labels to a scratch folder (:func:`features.cluster.parts.scratch`, removed at the end) as
    soon as it is done; every later pass reads the columns it needs from those files; for the models, the train
    slice's float32 model matrices."""
    with scratch(client, "train") as folder:
        return _train_model_cluster(client, data, folder, as_of, horizon_days, config)


def _train_model_cluster(
    client: Any,
    data: Path,
    folder: str,
    as_of: str | pd.Timestamp | None,
    horizon_days: int | None,
    config: dict | None,
) -> tuple[Any, pd.Series]:
    from training.config import load_config
    from training.train import TrainResult, bundle_meta, cause_amount_share, headline_metrics, slice_warnings

    cfg = config or load_config()
    horizon = int(horizon_days or cfg["horizon_days"])
    timings: dict[str, float] = {}
    rulebook = load_rulebook()
    t0 = time.perf_counter()
    log.info("building the point-in-time feature table on the cluster")
    until = None if as_of is None else str(pd.Timestamp(as_of).date())
    table = labelled_table(
        client,
        data,
        folder,
        None if as_of is None else pd.Timestamp(as_of),
        horizon,
        cfg["labels"],
        until=until,
        with_state=True,
    )
    cut, state, n_claims, n_lines = table.cut, table.state, table.n_claims, table.n_lines
    if n_claims == 0:
        raise RecoupError(f"no claims submitted on or before --as-of {cut.date()}")
    feature_columns = table.columns
    timings["features_s"] = time.perf_counter() - t0

    base = table.frame()
    sd_col = Y + "submitted_date"
    # the claims per submission day, all and usable: the split dates, the slices' sizes and dates, the warnings
    all_days, usable_days = _compute(
        client, base[sd_col].value_counts(split_out=1), base[base[Y + "usable"]][sd_col].value_counts(split_out=1)
    )
    if usable_days.empty:
        raise RecoupError(
            f"not enough claims with outcomes for a 'train' slice (as-of {cut.date()}, horizon {horizon} days)"
        )
    d_valid, d_test = split_dates(usable_days, cfg["split"]["valid_fraction"], cfg["split"]["test_fraction"])
    del base
    usable_days = usable_days.sort_index()
    day_part = np.where(usable_days.index < d_valid, 0, np.where(usable_days.index < d_test, 1, 2))
    slice_days = [usable_days[day_part == i] for i in range(3)]
    names = {0: "train", 1: "valid", 2: "test", 3: "immature"}
    split_counts = {names[i]: int(d.sum()) for i, d in enumerate(slice_days) if d.sum()}
    if int(all_days.sum()) > int(usable_days.sum()):
        split_counts["immature"] = int(all_days.sum()) - int(usable_days.sum())
    frame = table.frame((d_valid, d_test))  # read from the files by every pass (only the columns it asks)
    # the recouped claims' labels (one row per recouped claim) in this process: lags, weights, cause shares
    pos_frame, matured, pos_matured, usable_n, usable_immature = _compute(
        client,
        frame[frame[Y + "label"] == 1][[Y + c for c in LABEL_COLUMNS] + [PART]],
        frame[Y + "mature"].sum(),
        frame[frame[Y + "mature"]][Y + "label"].sum(),
        frame[Y + "usable"].sum(),
        (frame[Y + "usable"] & ~frame[Y + "mature"]).sum(),
    )
    pos = labels_of(pos_frame)
    pos_part = pos_frame[PART].to_numpy()
    log.info("split: %s", split_counts)
    for i, p in enumerate(SLICES):
        if split_counts.get(p, 0) == 0 or not (pos_part == i).any():
            raise RecoupError(
                f"not enough claims with outcomes for a '{p}' slice (as-of {cut.date()}, "
                f"horizon {horizon} days): need claims paid more than {label_delay_days(cfg['labels'], horizon)} "
                "days before --as-of, with some recoupments"
            )
    first_submitted, last_submitted = pd.Timestamp(all_days.index.min()), pd.Timestamp(all_days.index.max())
    warm = first_submitted + pd.Timedelta(days=365)
    train_days = slice_days[0]
    cautions = slice_warnings(
        first_submitted,
        positives=int((pos_part == 0).sum()),
        n=split_counts["train"],
        start=pd.Timestamp(train_days.index.min()),
        cold=int(train_days[train_days.index < warm].sum()),
    )
    split_dates_meta = {
        p: [str(pd.Timestamp(d.index.min()).date()), str(pd.Timestamp(d.index.max()).date())]
        for p, d in zip(SLICES, slice_days)
    }
    lag = None
    if cfg["labels"]["immature"]:
        keep = (pos_part < 3) & ((pos_part != 2) | pos["mature"].to_numpy(dtype=bool))
        lag = fit_lag(
            lag_frame(pos[keep], horizon), horizon, by="payer_id" if cfg["labels"]["lag_by"] == "payer" else None
        )
        log.info(
            "recoupment lag from %d recouped claims: median %d days, 90%% by %d days (%d payers with their own)",
            lag.n,
            lag.quantile(0.5),
            lag.quantile(0.9),
            len(lag.by),
        )
        if lag.identified_days < horizon:
            cautions.append(
                f"the longest follow-up in the data is {lag.identified_days} days, shorter than the {horizon}-day "
                "horizon: recoupments later than that are assumed not to happen (probabilities may be low)"
            )
    for w in cautions:
        log.warning("%s", w)
    # what needs every row of the table, before the models, in one pass: the levels, the reference medians, the
    # lag's exposure, the payers' ratios, the digest, the train slice's rows per partition
    train_rows = frame[frame[PART] == 0]
    spec = _spec_of(feature_columns)
    counted = frame[[PART, Y + "label"]]
    lazy: dict[str, Any] = {
        "levels": _level_counts(train_rows, spec),
        "medians": train_rows[_numeric(frame._meta, feature_columns)].quantile(0.5),
        "payers": _payer_sums(frame),
        "digest": table_digest(frame, feature_columns),
        "parts": counted.map_partitions(_train_counts, meta=_train_counts(counted._meta)),
    }
    if lag is not None:
        fitted = lag
        lazy["exposure"] = (
            train_rows[[Y + c for c in LABEL_COLUMNS]]
            .map_partitions(
                lambda f: pd.Series([exposure_of(labels_of(f), fitted).sum()]), meta=pd.Series(dtype=np.float64)
            )
            .sum()
        )
    (got,) = _compute(client, lazy)
    del lazy, train_rows, counted
    spec = _with_levels(spec, got["levels"])
    reference = _reference(got["medians"])
    payer_ratio, default_ratio = _payer_paid_ratio(got["payers"])
    digest = _digest(got["digest"])
    part_counts = got["parts"]
    log_odds = None
    base_rate = None
    if lag is not None:
        base_rate = float(np.clip((pos_part == 0).sum() / max(float(got["exposure"]), 1e-9), 1e-6, 1 - 1e-6))
        log_odds = float(np.log(base_rate / (1 - base_rate)))
    ptr = (pos_part == 0) & pos["label"].to_numpy(dtype=bool)
    pva = (pos_part == 1) & pos["label"].to_numpy(dtype=bool)
    weights = pd.Series(dtype=np.float64)
    if lag is not None:
        lf = lag_frame(pos[ptr], horizon)
        weights = pd.Series(cause_weights(lf, horizon), index=lf.index.astype(str))
    t1 = time.perf_counter()
    lik_inputs = _train_inputs(client, frame, part_counts, spec, lag, log_odds, weights, recouped=False)
    cause_inputs = None
    if ptr.sum() >= 20:
        cause_inputs = _train_inputs(client, frame, part_counts, spec, lag, log_odds, weights, recouped=True)
    # the validation and test rows: read from the files by each pass that needs them (not held on the workers)
    vt = frame.map_partitions(_valid_test, meta=frame._meta)
    from distributed import wait

    wait([*lik_inputs, *(cause_inputs or ())])
    del frame
    _release()
    seed, threads = int(cfg["seed"]), int(cfg["num_threads"])
    log.info("training the likelihood model on the cluster: %d claims (%d positives)", split_counts["train"], ptr.sum())
    lik_est = make_estimator(cfg["likelihood"], seed, threads, 2, ["binary_logloss", "average_precision"], "likelihood")
    lik = _train_dask(
        client,
        lik_inputs,
        vt,
        split_counts["valid"],
        spec,
        lag,
        log_odds,
        lik_est,
        "init_score" if lag is not None else None,
    )
    del lik_inputs  # the likelihood's matrices are released
    _release()
    log.info("likelihood model: %d trees in %s", lik.n_iter_, duration(time.perf_counter() - t1))
    lik_text = lik.booster_.model_to_string()
    import dask

    shared = dask.delayed(lik_text)  # a key of the graph (recomputed if a worker is lost), not scattered data
    raw_meta = _raw_scores(vt._meta, lik_text, spec, lag)
    va = vt.map_partitions(_raw_scores, shared, spec, lag, meta=raw_meta).compute()
    raw_va, y_va = va["raw"].to_numpy(), va["label"].to_numpy()
    calibrator = fit_calibrator(
        raw_va, y_va, cfg["calibration"], exposure=None if lag is None else va["exposure"].to_numpy()
    )
    if log_odds is not None and calibrator.kind == "none":
        calibrator = Calibrator(kind="platt", a=1.0, b=log_odds)
    calibration = {
        "kind": calibrator.kind,
        "requested": cfg["calibration"],
        "valid_positives": int(y_va.sum()),
        "min_positives_isotonic": MIN_POSITIVES_ISOTONIC,
    }
    log.info("calibration: %s on %d validation claims (one column collected)", calibrator.kind, len(raw_va))
    t2 = time.perf_counter()
    cause = None
    if cause_inputs is None:
        log.warning("only %d recouped claims in training: no cause model", ptr.sum())
    else:
        log.info("training the cause model on the cluster: %d recouped claims", ptr.sum())
        cause_est = make_estimator(cfg["cause"], seed, threads, len(CAUSES), "multi_logloss", "cause")
        cause = _train_dask(
            client,
            cause_inputs,
            vt if pva.sum() >= 10 else None,
            int(pva.sum()),
            spec,
            lag,
            log_odds,
            cause_est,
            "sample_weight" if lag is not None else None,
        )
        del cause_inputs
        _release()
        log.info("cause model: %d trees in %s", cause.n_iter_, duration(time.perf_counter() - t2))
    timings["models_s"] = time.perf_counter() - t1
    meta = bundle_meta(
        cut=cut,
        horizon=horizon,
        rulebook_version=rulebook.version,
        lik=lik,
        cause=cause,
        paid_ratios=(payer_ratio, default_ratio),
        cause_share=cause_amount_share(pos[pos_part <= 1]),
        threads=threads,
        split_dates=split_dates_meta,
        calibration=calibration,
        labels=cfg["labels"],
        lag=lag,
        reference=reference,
        warnings=cautions,
        p_valid=calibrator(raw_va),
    )
    meta["trained_on"] = f"dask cluster ({len(client.scheduler_info(n_workers=-1).get('workers', {}))} workers)"
    bundle = ModelBundle(likelihood=lik, cause=cause, calibrator=calibrator, spec=spec, meta=meta)
    log.info("scoring the latest window (%d claims) on the cluster and computing metrics", split_counts["test"])
    test_frame = vt.map_partitions(_rows, 2, meta=vt._meta)
    scored_meta = _score_part(vt._meta, bundle, lag, lag is not None)
    scored = _gather_frame(
        client, test_frame.map_partitions(_score_part, bundle, lag, lag is not None, meta=scored_meta)
    )
    test_X = _gather_frame(client, test_frame[[*feature_columns, Y + "submitted_date"]])
    submitted = test_X.pop(Y + "submitted_date")
    del test_frame, vt
    metrics = evaluate_frame(scored, cfg["capacities"])
    bundle.meta["metrics"] = headline_metrics(metrics)
    timings["total_s"] = time.perf_counter() - t0
    summary = {
        "claims": n_claims,
        "lines": n_lines,
        "first_submitted": str(first_submitted.date()),
        "last_submitted": str(last_submitted.date()),
        "as_of": str(cut.date()),
        "horizon_days": horizon,
        "matured": int(matured),
        "positive_rate_matured": float(pos_matured / matured) if matured else float("nan"),
        "usable": int(usable_n),
        "usable_not_matured": int(usable_immature),
        "rulebook_version": rulebook.version,
        "digest": digest,
        **{f"n_{k}": int(v) for k, v in split_counts.items()},
        "train_positives": int(ptr.sum()),
        "valid_positives": calibration["valid_positives"],
        "calibration": calibrator.kind,
        "warnings": cautions,
        "cluster_workers": len(client.scheduler_info(n_workers=-1).get("workers", {})),
    }
    result = TrainResult(
        bundle=bundle,
        state=state,
        metrics=metrics,
        scored=scored,
        data_summary=summary,
        timings=timings,
        test_X=test_X,
    )
    return result, pd.Series(submitted.to_numpy(), index=submitted.index.astype(str))


def _release() -> None:
    """Drop the futures of collections deleted by the caller now: Dask collections hold their futures in
    reference cycles, which only the cyclic garbage collector frees (measured at 1M claims: without it, the
    deleted table's partitions stayed on the workers through training)."""
    gc.collect()


def _gather_frame(client: Any, frame: Any) -> pd.DataFrame:
    """A Dask DataFrame's partitions gathered into this process and concatenated here (``compute`` concatenates
    them on one worker first: at 10M claims the latest window, 1.4M rows of ~110 features, took that worker past
    its memory limit)."""
    futures = client.compute(frame.to_delayed())
    parts = client.gather(futures)
    del futures
    return pd.concat(parts) if parts else frame._meta


def _compute(client: Any, *things: Any) -> tuple:
    """Several dask results in one pass over the persisted data."""
    import dask

    del client  # the default client of the connection computes
    return dask.compute(*things)


def table_digest(frame: Any, columns: list[str]) -> Any:
    """The partitions' hashes (lazy) behind a content digest (:func:`_digest`: SHA-256, hex) of the training table
    as known on the as-of date: each partition's claim ids, features and labels hashed on its worker (the cluster
    path's dataset digest; the single process hashes the history's tables instead)."""
    import hashlib

    def part_hash(f: pd.DataFrame) -> pd.Series:
        h = hashlib.sha256()
        h.update(pd.util.hash_pandas_object(f.index.to_series(), index=False).to_numpy().tobytes())
        for c in [*columns, Y + "label", Y + "submitted_date"]:
            col = f[c]
            try:
                hashed = pd.util.hash_pandas_object(col, index=False)
            except TypeError:
                hashed = pd.util.hash_pandas_object(col.map(str), index=False)
            h.update(hashed.to_numpy().tobytes())
        return pd.Series([h.hexdigest()])

    cols = [*columns, Y + "label", Y + "submitted_date"]
    return frame[cols].map_partitions(part_hash, meta=pd.Series(dtype=object))


def _digest(hashes: pd.Series) -> str:
    """The digest of the partitions' hashes (:func:`table_digest`), in order."""
    import hashlib

    return hashlib.sha256("".join(hashes.tolist()).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- evaluation
def evaluate_cluster(
    client: Any,
    bundle: ModelBundle,
    data: Path,
    since: str | None = None,
    until: str | None = None,
    capacities: list[float] | None = None,
) -> dict:
    """training.evaluate.evaluate_history on a cluster: features and labels of the window's claims on the cluster
    (written to a scratch folder as computed), the bundle applied per partition (map_partitions), the window's
    predictions collected for the metrics."""
    with scratch(client, "evaluate") as folder:
        return _evaluate_cluster(client, bundle, data, folder, since, until, capacities)


def _evaluate_cluster(
    client: Any,
    bundle: ModelBundle,
    data: Path,
    folder: str,
    since: str | None,
    until: str | None,
    capacities: list[float] | None,
) -> dict:
    from training.evaluate import check_window
    from training.metrics import oracle_metrics, oracle_ratios, oracle_scores, sliced

    capacities = capacities or [0.01, 0.05, 0.10]
    horizon = int(bundle.meta.get("horizon_days", 365))
    label_cfg = bundle.meta.get("labels") or {}
    lag = LagDistribution.from_dict(label_cfg["lag"]) if (label_cfg.get("lag") or {}).get("cdf") else None
    table = labelled_table(client, data, folder, None, horizon, label_cfg if lag is not None else {}, since=since)
    base = table.frame()
    days = base[Y + "submitted_date"].value_counts(split_out=1).compute()
    check_window(bundle.meta, pd.Series(days.index), since, until)
    as_of = table.cut
    win = base[Y + "usable"]
    if since:
        win = win & (base[Y + "submitted_date"] >= pd.Timestamp(since))
    if until:
        win = win & (base[Y + "submitted_date"] <= pd.Timestamp(until))
    frame = base[win]
    frame = frame.assign(**{PART: np.int8(2)})  # every row of the window is scored (a column: reads stay projected)
    not_matured = frame[[Y + c for c in LABEL_COLUMNS]].map_partitions(
        lambda f: pd.Series([int((exposure_of(labels_of(f), lag) < 1).sum())]), meta=pd.Series(dtype=np.int64)
    )
    n, positives, partial = _compute(client, frame[Y + "label"].count(), frame[Y + "label"].sum(), not_matured.sum())
    if n == 0 or positives == 0:
        need = f"paid_date + {label_cfg['min_followup_days']} days" if lag is not None else "paid_date + horizon"
        raise RecoupError(
            "no claims with outcomes submitted in the window "
            f"[{since or 'start'}, {until or 'end'}] (labels need {need} <= {as_of.date()})"
        )
    if partial:
        log.info("%d of the window's %d claims are not matured: compared with probability x F(follow-up)", partial, n)
    log.info("scoring %d claims of the window on the cluster", n)
    scored = frame.map_partitions(
        _score_part, bundle, lag, bool(partial), meta=_score_part(frame._meta, bundle, lag, bool(partial))
    ).compute()
    sd = frame[Y + "submitted_date"]
    first, last = _compute(client, sd.min(), sd.max())
    metrics = evaluate_frame(scored, capacities)
    out = {
        "metrics": metrics,
        "scored": scored,
        "slices": {by: sliced(scored, by) for by in ("payer_id", "plan_type", "specialty")},
        "window": [str(pd.Timestamp(first).date()), str(pd.Timestamp(last).date())],
    }
    oracle = oracle_scores(data, scored.index)
    if oracle is not None and oracle["true_probability"].notna().all():
        om = oracle_metrics(scored, oracle, capacities)
        out["oracle"] = om
        out["ratio"] = oracle_ratios(metrics, om)
    return out
