"""`recoup evaluate`: metrics of the champion (or a version) on matured claims submitted in a window,
next to the oracle's when the data has one; printed as a table and logged to MLflow."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import CAUSES, load_history
from features.errors import RecoupError
from features.pipeline import FeatureResult, build_feature_table
from features.settings import MODEL_NAME
from training.config import load_config
from training.labels import make_labels
from training.lag import LagDistribution, exposure_of, usable_claims
from training.metrics import evaluate_frame, oracle_metrics, oracle_ratios, oracle_scores, sliced
from training.registry import download_bundle, experiment_id, open_mlflow
from training.train import score_frame

log = logging.getLogger(__name__)


def check_window(meta: dict, submitted: pd.Series, since: str | None, until: str | None) -> None:
    """Refuse a window holding claims submitted within the model's train or validation slice (``split_dates`` in
    its meta): metrics there would report on claims the model learned from or was early-stopped and calibrated on."""
    dates = meta.get("split_dates") or {}
    if "train" not in dates or "valid" not in dates:
        return  # a bundle without split dates: nothing to check against
    first, last = pd.Timestamp(dates["train"][0]), pd.Timestamp(dates["valid"][1])
    inside = (submitted >= first) & (submitted <= last)
    if since:
        inside &= submitted >= pd.Timestamp(since)
    if until:
        inside &= submitted <= pd.Timestamp(until)
    if inside.any():
        raise RecoupError(
            f"the window [{since or 'start'}, {until or 'end'}] holds claims the model (trained as of "
            f"{meta.get('as_of')}) learned from: its train slice is {dates['train'][0]}..{dates['train'][1]} and its "
            f"validation slice {dates['valid'][0]}..{dates['valid'][1]}; evaluate from "
            f"--since {(last + pd.Timedelta(days=1)).date()} on"
        )


def evaluate_history(
    bundle,
    history,
    since: str | None = None,
    until: str | None = None,
    data_dir: Path | None = None,
    capacities: list[float] | None = None,
    feats: FeatureResult | None = None,
) -> dict:
    """Metrics of ``bundle`` on matured claims submitted in [since, until] (features as of submission).
    ``feats``: ``build_feature_table(history)``'s features when already built (a backtest builds them once)."""
    capacities = capacities or [0.01, 0.05, 0.10]
    check_window(bundle.meta, history.claims["submitted_date"], since, until)
    as_of = history.last_date
    if feats is None:
        log.info("building point-in-time features for %d claims", len(history.claims))
        feats, _ = build_feature_table(history)
    labels = make_labels(history, as_of, int(bundle.meta.get("horizon_days", 365))).loc[feats.X.index]
    sd = labels["submitted_date"]
    label_cfg = bundle.meta.get("labels") or {}
    lag = LagDistribution.from_dict(label_cfg["lag"]) if (label_cfg.get("lag") or {}).get("cdf") else None
    # a model that learned from partially followed claims is measured on them the same way (training.lag)
    win = usable_claims(labels, label_cfg if lag is not None else {}).to_numpy().copy()
    exposure = exposure_of(labels, lag)
    if since:
        win &= (sd >= pd.Timestamp(since)).to_numpy()
    if until:
        win &= (sd <= pd.Timestamp(until)).to_numpy()
    if win.sum() == 0 or labels.loc[win, "label"].sum() == 0:
        need = f"paid_date + {label_cfg['min_followup_days']} days" if lag is not None else "paid_date + horizon"
        raise RecoupError(
            "no claims with outcomes submitted in the window "
            f"[{since or 'start'}, {until or 'end'}] (labels need {need} <= {as_of.date()})"
        )
    X = feats.X[win]
    claims = history.claims.set_index(history.claims["claim_id"].astype(str)).loc[X.index]
    partial = win & (exposure < 1)
    if partial.any():
        log.info(
            "%d of the window's %d claims are not matured: compared with probability x F(follow-up)",
            partial.sum(),
            win.sum(),
        )
    scored = score_frame(
        bundle, bundle.spec.transform(X), claims, labels[win], X, exposure=exposure[win] if partial.any() else None
    )
    metrics = evaluate_frame(scored, capacities)
    out = {
        "metrics": metrics,
        "scored": scored,
        "slices": {by: sliced(scored, by) for by in ("payer_id", "plan_type", "specialty")},
        "window": [str(sd[win].min().date()), str(sd[win].max().date())],
    }
    oracle = oracle_scores(data_dir, scored.index)
    if oracle is not None and oracle["true_probability"].notna().all():
        om = oracle_metrics(scored, oracle, capacities)
        out["oracle"] = om
        out["ratio"] = oracle_ratios(metrics, om)
    return out


def format_table(result: dict) -> str:
    """The metrics as a plain-text table: model, oracle, model/oracle."""
    m, o = result["metrics"], result.get("oracle")
    keys = [
        "n",
        "positive_rate",
        "roc_auc",
        "pr_auc",
        "brier",
        "ece",
        "mean_predicted",
        "precision_at_1pct",
        "recall_at_1pct",
        "dollars_at_1pct",
        "precision_at_5pct",
        "recall_at_5pct",
        "dollars_at_5pct",
        "precision_at_10pct",
        "recall_at_10pct",
        "dollars_at_10pct",
        "cause_top1_accuracy",
    ]
    keys += [f"cause_{w}_{c}" for c in CAUSES for w in ("precision", "recall")]
    rows = []
    for k in keys:
        if k not in m:
            continue
        mv = m[k]
        ov = o.get(k) if o else None
        ratio = (mv / ov) if (ov not in (None, 0) and ov == ov and mv == mv) else None
        fmt = "{:,.0f}" if k.startswith("dollars") or k == "n" else "{:.4f}"
        rows.append((k, fmt.format(mv), fmt.format(ov) if ov is not None else "", f"{ratio:.3f}" if ratio else ""))
    w = max(len(r[0]) for r in rows)
    lines = [f"{'metric':<{w}}  {'model':>12}  {'oracle':>12}  {'model/oracle':>12}"]
    lines += [f"{a:<{w}}  {b:>12}  {c:>12}  {d:>12}" for a, b, c, d in rows]
    for by, df in result["slices"].items():
        if len(df):
            lines.append("")
            lines.append(f"by {by}:")
            lines.append(df.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return "\n".join(lines)


def evaluate_cli(
    data: Path, since: str | None, until: str | None, version: str | None = None, cluster: str | None = None
) -> None:
    """Entry point of `recoup evaluate`; ``cluster``: the --cluster option (features/cluster/client.py)."""
    from features.cluster.client import cluster_spec, parse_spec

    spec = cluster_spec(cluster)
    if spec:
        parse_spec(spec)  # a bad --cluster fails before anything is loaded
    cfg = load_config()
    name = MODEL_NAME
    history = None if spec else load_history(data, require_recoupments=True)
    mlflow = open_mlflow()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            bundle = download_bundle(name, version or "champion", Path(tmp))
        except Exception as exc:  # no registered model / alias
            raise RecoupError(
                f"no model '{name}' {'version ' + version if version else 'champion'} in the "
                f"MLflow registry ({type(exc).__name__}); run `recoup train --promote` first"
            ) from None
        if since is None and until is None:
            since = bundle.meta.get("split_dates", {}).get("test", [None])[0]
            log.info("no window given: evaluating from the model's latest window on (%s)", since)
        if spec:
            from features.cluster.client import connect
            from training.cluster import evaluate_cluster

            with connect(spec) as client:
                result = evaluate_cluster(client, bundle, data, since, until, capacities=cfg["capacities"])
        else:
            result = evaluate_history(bundle, history, since, until, data_dir=data, capacities=cfg["capacities"])
        print(
            f"model {name} version {bundle.meta.get('model_version', version or 'champion')} "
            f"(trained as of {bundle.meta['as_of']}); window {result['window'][0]}..{result['window'][1]}"
        )
        print(format_table(result))
        with mlflow.start_run(experiment_id=experiment_id(mlflow), run_name="evaluate") as run:
            mlflow.set_tags(
                {
                    "kind": "evaluation",
                    "model_run_id": bundle.meta.get("run_id", ""),
                    "window": "..".join(result["window"]),
                }
            )
            mlflow.log_metrics({f"eval_{k}": float(v) for k, v in result["metrics"].items() if np.isfinite(v)})
            for k, v in result.get("oracle", {}).items():
                if np.isfinite(v):
                    mlflow.log_metric(f"oracle_{k}", float(v))
            for k, v in result.get("ratio", {}).items():
                mlflow.log_metric(f"ratio_{k}", float(v))
            p = Path(tmp) / "evaluation.txt"
            p.write_text(format_table(result))
            mlflow.log_artifact(str(p))
        print(f"logged to MLflow run {run.info.run_id}")
