"""`recoup train`: features as of each claim, labels as of --as-of, time split, two LightGBM models,
calibration, metrics, MLflow run and registered version (challenger; champion when promoted)."""

from __future__ import annotations

import hashlib
import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.model.bundle import Calibrator, ModelBundle, expected_amount, feature_reference
from features.contract import CAUSES, History, load_history
from features.errors import RecoupError
from features.pipeline import build_feature_table
from features.progress import duration
from features.rulebook import load_rulebook
from features.settings import MODEL_NAME, mlflow_prints_to_debug_log, tracking_uri
from features.model.spec import FeatureSpec
from features.engine.state import HistoryState, SavedState
from training.calibrate import MIN_POSITIVES_ISOTONIC, fit_calibrator
from training.config import load_config, with_n_estimators
from training.labels import make_labels, truncate_history
from training.lag import cause_weights, exposure_of, fit_lag, label_delay_days, lag_frame, usable_claims
from training.metrics import evaluate_frame
from training.reviews import review_evidence
from training.model import fit_cause, fit_likelihood
from training.split import time_split

log = logging.getLogger(__name__)

# Training warns (log, data summary, bundle meta) below these: fewer train positives than this leave the rarer
# causes and payers with too few examples to learn from (issue 13: 688 positives cost most of the forward PR-AUC) ...
MIN_TRAIN_POSITIVES = 2_000
# ... and claims submitted in a history's first year have cold provider/patient history features (no visible
# recoupment history yet, while in scoring they are warm): a train slice starting earlier learns from them.
MIN_HISTORY_DAYS = 365


@dataclass
class TrainResult:
    """A trained bundle (not yet saved), its state, metrics and the frames behind them."""

    bundle: ModelBundle
    #: the history state after the last claim (saved with the model for the service; the cluster's: already
    #: compact and written to disk)
    state: HistoryState | SavedState
    metrics: dict
    scored: pd.DataFrame  # test-slice predictions: label, probability, causes, dollars, slices
    data_summary: dict
    timings: dict
    test_X: pd.DataFrame  # raw features of the latest window (for the promotion gate and SHAP summary)


def _payer_paid_ratio(claims: pd.DataFrame) -> tuple[dict, float]:
    paid = claims[claims["paid_amount"].notna() & (claims["total_charge"] > 0)]
    if paid.empty:
        return {}, 0.6
    g = paid.groupby(paid["payer_id"].astype(str))
    ratio = (g["paid_amount"].sum() / g["total_charge"].sum()).clip(0, 1)
    return {k: float(v) for k, v in ratio.items()}, float(paid["paid_amount"].sum() / paid["total_charge"].sum())


def cause_amount_share(labels: pd.DataFrame) -> dict:
    """Per cause, the mean share of the payment recouped (recouped claims with a payment; 1 with fewer than 5)."""
    pos = labels[(labels["label"] == 1) & (labels["paid_amount"] > 0)]
    out = {}
    for c in CAUSES:
        g = pos[pos["cause"] == c]
        out[c] = float(np.clip((g["recouped_amount"] / g["paid_amount"]).mean(), 0, 1)) if len(g) >= 5 else 1.0
    return out


def history_digest(history: History) -> str:
    """A content digest (SHA-256, hex) of a history's tables: their names, columns and every value, whatever the
    files they were read from (the training dataset's digest in MLflow)."""
    h = hashlib.sha256()
    for name, frame in history.tables().items():
        if frame is None:
            continue
        h.update(f"{name}:{','.join(map(str, frame.columns))}:{len(frame)};".encode())
        for column in frame.columns:
            for part in _hash_parts(frame[column]):
                h.update(part)
    return h.hexdigest()


def _hash_parts(values: pd.Series) -> list[bytes]:
    """Per-value hashes of a column as bytes; a list column (codes of a claim, Arrow lists) as its list lengths
    (-1: missing) and the hashes of its flattened items."""
    dtype = values.dtype
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_list(dtype.pyarrow_dtype):
        arr = pa.chunked_array([pa.array(values)]).combine_chunks()
        lengths = pc.fill_null(pc.list_value_length(arr), -1).to_numpy()
        items = pd.Series(pc.list_flatten(arr).to_pandas(types_mapper=pd.ArrowDtype))
        return [lengths.astype(np.int64).tobytes(), *_hash_parts(items)]
    try:
        hashed = pd.util.hash_pandas_object(values, index=False)
    except TypeError:  # other list-like cells: by their text
        hashed = pd.util.hash_pandas_object(values.map(str), index=False)
    return [hashed.to_numpy().tobytes()]


def train_warnings(history_start: pd.Timestamp, train: pd.DataFrame) -> list[str]:
    """Why a train slice (its labels) may be too thin or too cold to learn from: one sentence per reason."""
    warm = history_start + pd.Timedelta(days=MIN_HISTORY_DAYS)
    return slice_warnings(
        history_start,
        positives=int(train["label"].sum()),
        n=len(train),
        start=train["submitted_date"].min(),
        cold=int((train["submitted_date"] < warm).sum()),
    )


def slice_warnings(history_start: pd.Timestamp, positives: int, n: int, start: pd.Timestamp, cold: int) -> list[str]:
    """:func:`train_warnings` from the train slice's counts: its positives, claims, first submission date and the
    claims submitted before a year of history existed (the cluster path computes them without collecting rows)."""
    out = []
    if positives < MIN_TRAIN_POSITIVES:
        out.append(
            f"the train slice has {positives:,} positives ({n:,} claims), fewer than {MIN_TRAIN_POSITIVES:,}: "
            "expect weaker ranking; train as of a later date or on a longer history"
        )
    warm = history_start + pd.Timedelta(days=MIN_HISTORY_DAYS)
    if start < warm:
        out.append(
            f"the train slice begins {start.date()}, {(start - history_start).days} days after the history's first "
            f"claim ({history_start.date()}): {cold:,} of its {n:,} claims were submitted before a year of "
            f"history existed ({warm.date()}), with cold provider and patient history features"
        )
    return out


def bundle_meta(
    *,
    cut: pd.Timestamp,
    horizon: int,
    rulebook_version: str,
    lik: Any,
    cause: Any,
    paid_ratios: tuple[dict, float],
    cause_share: dict,
    threads: int,
    split_dates: dict,
    calibration: dict,
    labels: dict,
    lag: Any,
    reference: dict,
    warnings: list[str],
    p_valid: np.ndarray,
) -> dict:
    """The bundle's meta of a trained model (one process or a cluster: the same keys); risk bands from the
    calibrated validation probabilities ``p_valid``."""
    return {
        "model_name": MODEL_NAME,
        "as_of": str(cut.date()),
        "horizon_days": horizon,
        "rulebook_version": rulebook_version,
        "causes": list(CAUSES),
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        "n_trees_likelihood": lik.n_iter_,
        "n_trees_cause": cause.n_iter_ if cause is not None else 0,
        "payer_paid_ratio": paid_ratios[0],
        "paid_ratio_default": paid_ratios[1],
        "cause_amount_share": cause_share,
        "num_threads": threads,
        "split_dates": split_dates,
        "calibration": calibration,
        "labels": {**labels, "lag": lag.to_dict() if lag is not None else None},
        "feature_reference": reference,
        "warnings": warnings,
        "risk_bands": {"medium": float(np.quantile(p_valid, 0.80)), "high": float(np.quantile(p_valid, 0.95))},
    }


def headline_metrics(metrics: dict) -> dict:
    """The metrics kept in the bundle's meta (per-cause precision and recall left out)."""
    return {k: v for k, v in metrics.items() if not k.startswith(("cause_precision", "cause_recall"))}


def train_model(
    history: History,
    as_of: str | pd.Timestamp | None = None,
    horizon_days: int | None = None,
    config: dict | None = None,
) -> TrainResult:
    """Train on what was known on ``as_of`` (default: the last date in the data)."""
    cfg = config or load_config()
    horizon = int(horizon_days or cfg["horizon_days"])
    cut: pd.Timestamp = pd.Timestamp(as_of) if as_of else history.last_date
    timings: dict[str, float] = {}
    rulebook = load_rulebook()
    t0 = time.perf_counter()
    h = truncate_history(history, cut)
    if len(h.claims) == 0:
        raise RecoupError(f"no claims submitted on or before --as-of {cut.date()}")
    log.info("building point-in-time features for %d claims (%d lines)", len(h.claims), len(h.claim_lines))
    feats, state = build_feature_table(h, rulebook)
    timings["features_s"] = time.perf_counter() - t0
    labels = make_labels(h, cut, horizon).loc[feats.X.index]
    reviewed = np.zeros(len(labels), dtype=bool)
    review_counts: dict[str, int] = {}
    if cfg["labels"].get("reviews", True) and h.reviews is not None:
        labels, reviewed, review_counts = review_evidence(labels, h.reviews, cut, horizon)
        log.info("review outcomes: %s", review_counts)
    usable = usable_claims(labels, cfg["labels"])
    part = time_split(labels, cfg["split"]["valid_fraction"], cfg["split"]["test_fraction"], usable)
    counts = part.value_counts().to_dict()
    log.info("split: %s", counts)
    for p in ("train", "valid", "test"):
        if counts.get(p, 0) == 0 or labels.loc[part == p, "label"].sum() == 0:
            raise RecoupError(
                f"not enough claims with outcomes for a '{p}' slice (as-of {cut.date()}, "
                f"horizon {horizon} days): need claims paid more than {label_delay_days(cfg['labels'], horizon)} "
                "days before --as-of, with some recoupments"
            )
    warnings = train_warnings(h.claims["submitted_date"].min(), labels.loc[part == "train"])
    lag = None
    if cfg["labels"]["immature"]:
        # F from the train and validation slices and matured claims: the test slice (the reported metrics) stays
        # held out; the validation slice's recent lags count, since lags drift and calibration is fitted there
        lags = lag_frame(labels[usable & ((part != "test") | labels["mature"]) & ~reviewed], horizon)
        lag = fit_lag(lags, horizon, by="payer_id" if cfg["labels"]["lag_by"] == "payer" else None)
        log.info(
            "recoupment lag from %d recouped claims: median %d days, 90%% by %d days (%d payers with their own)",
            lag.n,
            lag.quantile(0.5),
            lag.quantile(0.9),
            len(lag.by),
        )
        if lag.identified_days < horizon:
            warnings.append(
                f"the longest follow-up in the data is {lag.identified_days} days, shorter than the {horizon}-day "
                "horizon: recoupments later than that are assumed not to happen (probabilities may be low)"
            )
            log.warning("%s", warnings[-1])
    exposure = exposure_of(labels, lag)
    for w in warnings:
        log.warning("%s", w)
    spec = FeatureSpec().fit(feats.X[part == "train"])
    M = spec.transform(feats.X)
    y = labels["label"].to_numpy()
    tr, va, te = (part == "train").to_numpy(), (part == "valid").to_numpy(), (part == "test").to_numpy()
    seed, threads = int(cfg["seed"]), int(cfg["num_threads"])
    t1 = time.perf_counter()
    log.info(
        "training likelihood model on %d claims (%d positives, %d not matured)",
        tr.sum(),
        y[tr].sum(),
        (tr & ~labels["mature"].to_numpy()).sum(),
    )
    offset = None
    if lag is not None:
        # log F(follow-up) plus the log-odds of the full-horizon base rate (LightGBM does not boost from the
        # average when given an offset); the calibrator maps the raw score back to a probability
        base = float(np.clip(y[tr].sum() / max(exposure[tr].sum(), 1e-9), 1e-6, 1 - 1e-6))
        offset = np.log(exposure) + np.log(base / (1 - base))
    lik = fit_likelihood(
        M[tr],
        y[tr],
        M[va],
        y[va],
        cfg["likelihood"],
        seed,
        threads,
        init_score=None if offset is None else offset[tr],
        eval_init_score=None if offset is None else offset[va],
    )
    log.info("likelihood model: %d trees in %s", lik.n_iter_, duration(time.perf_counter() - t1))
    raw_va = lik.predict_proba(M[va])[:, 1]
    calibrator = fit_calibrator(raw_va, y[va], cfg["calibration"], exposure=None if lag is None else exposure[va])
    if offset is not None and calibrator.kind == "none":
        calibrator = Calibrator(kind="platt", a=1.0, b=float(np.log(base / (1 - base))))
    calibration = {
        "kind": calibrator.kind,
        "requested": cfg["calibration"],
        "valid_positives": int(y[va].sum()),
        "min_positives_isotonic": MIN_POSITIVES_ISOTONIC,
    }
    log.info(
        "calibration: %s (%s requested; %d validation positives, isotonic from %d)",
        calibrator.kind,
        cfg["calibration"],
        calibration["valid_positives"],
        MIN_POSITIVES_ISOTONIC,
    )
    cidx = labels["cause_idx"].to_numpy()
    ptr, pva = tr & (y == 1), va & (y == 1)
    log.info("training cause model on %d recouped claims", ptr.sum())
    t2 = time.perf_counter()
    weights = None if lag is None else cause_weights(lag_frame(labels[ptr], horizon), horizon)
    cause = fit_cause(
        M[ptr], cidx[ptr].astype(int), M[pva], cidx[pva].astype(int), cfg["cause"], seed, threads, weights
    )
    timings["models_s"] = time.perf_counter() - t1
    if cause is not None:
        log.info("cause model: %d trees in %s", cause.n_iter_, duration(time.perf_counter() - t2))
    log.info("scoring the latest window (%d claims) and computing metrics", te.sum())
    payer_ratio, default_ratio = _payer_paid_ratio(h.claims[tr | va])
    split_dates = {
        p: [
            str(labels.loc[part == p, "submitted_date"].min().date()),
            str(labels.loc[part == p, "submitted_date"].max().date()),
        ]
        for p in ("train", "valid", "test")
    }
    meta = bundle_meta(
        cut=cut,
        horizon=horizon,
        rulebook_version=rulebook.version,
        lik=lik,
        cause=cause,
        paid_ratios=(payer_ratio, default_ratio),
        cause_share=cause_amount_share(labels[tr | va]),
        threads=threads,
        split_dates=split_dates,
        calibration=calibration,
        labels=cfg["labels"],
        lag=lag,
        reference=feature_reference(feats.X[tr]),
        warnings=warnings,
        p_valid=calibrator(raw_va),
    )
    bundle = ModelBundle(likelihood=lik, cause=cause, calibrator=calibrator, spec=spec, meta=meta)
    scored = score_frame(
        bundle,
        M[te],
        h.claims.set_index(h.claims["claim_id"].astype(str)).loc[M.index[te]],
        labels[te],
        feats.X[te],
        exposure=exposure[te] if lag is not None else None,
    )
    metrics = evaluate_frame(scored, cfg["capacities"])
    bundle.meta["metrics"] = headline_metrics(metrics)
    timings["total_s"] = time.perf_counter() - t0
    summary = {
        "claims": int(len(h.claims)),
        "lines": int(len(h.claim_lines)),
        "first_submitted": str(h.claims["submitted_date"].min().date()),
        "last_submitted": str(h.claims["submitted_date"].max().date()),
        "as_of": str(cut.date()),
        "horizon_days": horizon,
        "matured": int(labels["mature"].sum()),
        "positive_rate_matured": float(labels.loc[labels["mature"], "label"].mean()),
        "usable": int(usable.sum()),
        "usable_not_matured": int((usable & ~labels["mature"]).sum()),
        **review_counts,
        "rulebook_version": rulebook.version,
        "digest": history_digest(h),
        **{f"n_{k}": int(v) for k, v in counts.items()},
        "train_positives": int(y[tr].sum()),
        "valid_positives": calibration["valid_positives"],
        "calibration": calibrator.kind,
        "warnings": warnings,
    }
    return TrainResult(
        bundle=bundle,
        state=state,
        metrics=metrics,
        scored=scored,
        data_summary=summary,
        timings=timings,
        test_X=feats.X[te],
    )


def score_frame(
    bundle: ModelBundle,
    M: pd.DataFrame,
    claims: pd.DataFrame,
    labels: pd.DataFrame,
    X: pd.DataFrame,
    exposure: np.ndarray | None = None,
) -> pd.DataFrame:
    """Predictions next to outcomes for evaluation (one row per claim). ``exposure``: F(follow-up) of claims
    whose label is still partial (the metrics then compare probability x exposure with it)."""
    p = bundle.probability(M)
    cp = bundle.cause_probabilities(M)
    exp = expected_amount(bundle, p, cp, claims.reset_index(drop=True))
    out = pd.DataFrame(
        {
            "label": labels["label"].to_numpy(),
            "true_cause": labels["cause"].to_numpy(),
            "recouped_amount": labels["recouped_amount"].to_numpy(),
            "probability": p,
            "expected_amount": exp,
            "payer_id": X["payer_id"].to_numpy(),
            "plan_type": X["plan_type"].to_numpy(),
            "specialty": X["specialty"].to_numpy(),
            "total_charge": claims["total_charge"].to_numpy(),
        },
        index=M.index,
    )
    for j, c in enumerate(CAUSES):
        out[f"p_{c}"] = cp[:, j]
    if exposure is not None:
        out["exposure"] = exposure
    return out


def train_cli(
    data: Path,
    as_of: str | None,
    horizon_days: int,
    promote: bool,
    config: Path | None,
    n_estimators: int | None = None,
    promote_if_better: bool = False,
    cluster: str | None = None,
) -> None:
    """Entry point of `recoup train`: the data is loaded (and checked), then one MLflow run spans features,
    training, evaluation and registering."""
    from training.registry import BOTH_FLAGS, log_and_register, training_run

    if promote and promote_if_better:
        raise RecoupError(BOTH_FLAGS)
    from features.cluster.client import cluster_spec, parse_spec

    spec = cluster_spec(cluster)
    if spec:
        parse_spec(spec)  # a bad --cluster fails before anything is loaded
    overrides = {"horizon_days": horizon_days}
    cfg = with_n_estimators(load_config(config, overrides), n_estimators)
    with ExitStack() as stack:
        if spec:
            from features.cluster.client import connect
            from training.cluster import train_model_cluster

            client = stack.enter_context(connect(spec))
            log.info("opening the MLflow run in %s", tracking_uri())
            stack.enter_context(training_run(as_of))
            result, submitted = train_model_cluster(client, data, as_of=as_of, horizon_days=horizon_days, config=cfg)
        else:
            log.info("loading %s", data)
            history = load_history(data, require_recoupments=True)
            log.info("opening the MLflow run in %s", tracking_uri())
            stack.enter_context(training_run(as_of))
            result = train_model(history, as_of=as_of, horizon_days=horizon_days, config=cfg)
            submitted = pd.Series(
                history.claims["submitted_date"].to_numpy(), index=history.claims["claim_id"].astype(str)
            )
        log.info("logging the run to MLflow (metrics, plots, the packaged model) and registering the model")
        with mlflow_prints_to_debug_log(log):  # MLflow's prints ("Successfully registered model"): the summary says it
            info = log_and_register(
                result, cfg, data_dir=data, promote=promote, promote_if_better=promote_if_better, submitted=submitted
            )
    m = result.metrics
    print(f"model {info['name']} version {info['version']} ({'champion' if info['champion'] else 'challenger'})")
    print(
        f"  trained as of {result.bundle.meta['as_of']} on {result.data_summary['n_train']} claims; "
        "latest window {}..{}".format(*result.bundle.meta["split_dates"]["test"][:2])
    )
    print(
        f"  ROC-AUC {m['roc_auc']:.3f}  PR-AUC {m['pr_auc']:.3f}  Brier {m['brier']:.4f}  ECE {m['ece']:.4f}  "
        f"cause top-1 {m['cause_top1_accuracy']:.3f}"
    )
    gate = info.get("gate")
    if gate:
        print("  " + gate_verdict(gate, promote_if_better, info["champion"]))
        for reason in gate.get("reasons") or [gate.get("reason", "")]:
            print(f"    - {reason}")
    print(f"  MLflow run {info['run_id']} in {info['tracking_uri']}")


def gate_verdict(gate: dict, promote_if_better: bool, promoted: bool) -> str:
    """The promotion gate's decision line of `recoup train`."""
    versus = f"champion version {gate['champion_version']}" if gate.get("champion_version") else "no champion"
    head = f"promotion gate vs {versus}: {'PASS' if gate['pass'] else 'FAIL'}"
    if promoted:
        return head + " -> promoted to champion"
    if promote_if_better:
        return head + " -> not promoted; the champion stays"
    return head + " (advice only: not promoted without --promote-if-better or --promote)"
