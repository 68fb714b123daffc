"""Metrics for recoupment scores: discrimination, calibration, review capacity, dollars, causes, slices;
the same metrics for the generator's oracle; the promotion gate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from features.contract import CAUSES
from features.model.outcomes import read_oracle

if TYPE_CHECKING:
    from features.model.bundle import ModelBundle
    from training.train import TrainResult


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-count bins: sum of |mean(p) - mean(y)| weighted by bin size."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    ece = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            ece += len(chunk) / len(y) * abs(p[chunk].mean() - y[chunk].mean())
    return float(ece)


def capacity_metrics(
    y: np.ndarray, p: np.ndarray, dollars: np.ndarray, rank_by: np.ndarray, capacities: list[float]
) -> dict[str, float]:
    """Precision, recall and dollars recovered when reviewing the top share of claims by ``rank_by``."""
    out: dict[str, float] = {}
    n = len(y)
    order = np.argsort(-np.asarray(rank_by, dtype=float), kind="stable")
    total_pos = max(float(np.sum(y)), 1.0)
    total_dollars = max(float(np.sum(dollars)), 1e-9)
    for cap in capacities:
        k = max(int(round(n * cap)), 1)
        top = order[:k]
        tag = f"{int(round(cap * 100))}pct"
        out[f"precision_at_{tag}"] = float(np.mean(y[top]))
        out[f"recall_at_{tag}"] = float(np.sum(y[top]) / total_pos)
        out[f"dollars_at_{tag}"] = float(np.sum(dollars[top]))
        out[f"dollars_share_at_{tag}"] = float(np.sum(dollars[top]) / total_dollars)
    return out


def binary_metrics(
    y: np.ndarray, p: np.ndarray, dollars: np.ndarray, expected_dollars: np.ndarray, capacities: list[float]
) -> dict[str, float]:
    y = np.asarray(y, dtype=int)
    out = {"n": float(len(y)), "positives": float(y.sum()), "positive_rate": float(y.mean()) if len(y) else np.nan}
    if len(np.unique(y)) == 2:
        out["roc_auc"] = float(roc_auc_score(y, p))
        out["pr_auc"] = float(average_precision_score(y, p))
    else:
        out["roc_auc"] = out["pr_auc"] = float("nan")
    out["brier"] = float(brier_score_loss(y, p)) if len(y) else float("nan")
    out["ece"] = expected_calibration_error(y, p)
    out["mean_predicted"] = float(np.mean(p)) if len(p) else float("nan")
    out.update(capacity_metrics(y, p, dollars, expected_dollars, capacities))
    return out


def cause_metrics(true_cause: np.ndarray, cause_proba: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy and per-cause precision/recall on recouped claims (true_cause as strings)."""
    mask = pd.notna(true_cause)
    t = np.asarray(true_cause, dtype=object)[mask]
    if len(t) == 0:
        return {"cause_top1_accuracy": float("nan")}
    pred = np.asarray(CAUSES, dtype=object)[np.argmax(cause_proba[mask], axis=1)]
    out = {"cause_top1_accuracy": float(np.mean(pred == t)), "cause_n": float(len(t))}
    for c in CAUSES:
        tp = float(np.sum((pred == c) & (t == c)))
        out[f"cause_precision_{c}"] = tp / max(float(np.sum(pred == c)), 1.0)
        out[f"cause_recall_{c}"] = tp / max(float(np.sum(t == c)), 1.0)
    return out


def confusion(true_cause: np.ndarray, cause_proba: np.ndarray) -> pd.DataFrame:
    mask = pd.notna(true_cause)
    t = pd.Categorical(np.asarray(true_cause, dtype=object)[mask], categories=CAUSES)
    pred = pd.Categorical(np.asarray(CAUSES, dtype=object)[np.argmax(cause_proba[mask], axis=1)], categories=CAUSES)
    return pd.crosstab(pd.Series(t, name="true"), pd.Series(pred, name="predicted"), dropna=False)


def observable_share(scored: pd.DataFrame) -> np.ndarray | float:
    """Per claim, the share of its within-horizon risk observable by now (``exposure`` = F(follow-up), when the
    frame holds partially followed claims; else 1): the metrics compare probability x share with the label."""
    return scored["exposure"].to_numpy() if "exposure" in scored.columns else 1.0


def evaluate_frame(scored: pd.DataFrame, capacities: list[float]) -> dict:
    """Every metric of a scored frame (label, probability, recouped_amount, expected_amount, true_cause, p_*;
    ``exposure`` when labels are partial: see :func:`observable_share`)."""
    y = scored["label"].to_numpy()
    e = observable_share(scored)
    m = binary_metrics(
        y,
        scored["probability"].to_numpy() * e,
        scored["recouped_amount"].to_numpy(),
        scored["expected_amount"].to_numpy() * e,
        capacities,
    )
    cp = scored[[f"p_{c}" for c in CAUSES]].to_numpy()
    m.update(cause_metrics(scored["true_cause"].where(scored["label"] == 1).to_numpy(), cp))
    return m


def sliced(frame: pd.DataFrame, by: str, min_n: int = 50) -> pd.DataFrame:
    """ROC-AUC, PR-AUC, positive rate and mean prediction per value of ``by``."""
    rows = []
    for key, g in frame.groupby(by, observed=True):
        if len(g) < min_n:
            continue
        y, p = g["label"].to_numpy(), g["probability"].to_numpy() * observable_share(g)
        two = len(np.unique(y)) == 2
        rows.append(
            {
                by: key,
                "n": len(g),
                "positive_rate": y.mean(),
                "mean_predicted": p.mean(),
                "roc_auc": roc_auc_score(y, p) if two else np.nan,
                "pr_auc": average_precision_score(y, p) if two else np.nan,
            }
        )
    return pd.DataFrame(rows)


def oracle_scores(data_dir: Path | None, index: pd.Index) -> pd.DataFrame | None:
    """The generator's oracle for these claims, when DIR/oracle.csv exists."""
    o = read_oracle(data_dir)
    return None if o is None else o.reindex(index)


def oracle_metrics(scored: pd.DataFrame, oracle: pd.DataFrame, capacities: list[float]) -> dict:
    """The same metrics for the oracle's probabilities and causes, and the model/oracle ratios."""
    op = oracle["true_probability"].to_numpy(dtype=float) * observable_share(scored)
    base = scored["expected_amount"].to_numpy() / np.maximum(scored["probability"].to_numpy(), 1e-12)
    om = binary_metrics(scored["label"].to_numpy(), op, scored["recouped_amount"].to_numpy(), op * base, capacities)
    pcols = [f"p_{c}" for c in CAUSES]
    if all(c in oracle.columns for c in pcols):
        ocp = oracle[pcols].to_numpy(dtype=float)
    else:
        ocp = np.zeros((len(oracle), len(CAUSES)))
        ocp[
            np.arange(len(oracle)),
            pd.Series(oracle["true_cause"])
            .map({c: i for i, c in enumerate(CAUSES)})
            .fillna(len(CAUSES) - 1)
            .astype(int),
        ] = 1
    om.update(cause_metrics(scored["true_cause"].where(scored["label"] == 1).to_numpy(), ocp))
    return om


#: the metrics compared with the oracle as model / oracle ratios (logged, kept in the bundle meta, printed)
ORACLE_RATIO_KEYS = ("roc_auc", "pr_auc", "cause_top1_accuracy")


def oracle_ratios(metrics: dict, oracle: dict) -> dict[str, float]:
    """Model / oracle for :data:`ORACLE_RATIO_KEYS`, where the oracle's figure is finite and positive."""
    return {
        k: metrics[k] / oracle[k]
        for k in ORACLE_RATIO_KEYS
        if k in metrics and oracle.get(k) and np.isfinite(oracle[k]) and oracle[k] > 0
    }


def promotion_decision(
    challenger: dict[str, float],
    scored: pd.DataFrame,
    champion_probability: np.ndarray,
    capacities: list[float],
    promotion: dict,
) -> dict:
    """Does the challenger (its ``metrics`` on the latest window, ``scored``) beat the champion (its
    probabilities on the same claims)? It must gain more than ``promotion["min_pr_auc_gain"]`` PR-AUC
    and lose at most ``promotion["max_ece_increase"]`` ECE. Returns ``pass`` and both figures."""
    p = champion_probability
    cm = binary_metrics(scored["label"].to_numpy(), p, scored["recouped_amount"].to_numpy(), p, capacities)
    gain = challenger["pr_auc"] - cm["pr_auc"]
    ece_up = challenger["ece"] - cm["ece"]
    ok = gain > promotion["min_pr_auc_gain"] and ece_up <= promotion["max_ece_increase"]
    return {
        "pass": bool(ok),
        "champion_pr_auc": cm["pr_auc"],
        "challenger_pr_auc": challenger["pr_auc"],
        "champion_ece": cm["ece"],
        "challenger_ece": challenger["ece"],
    }


def gate_reasons(gate: dict, promotion: dict) -> list[str]:
    """The gate's decision in words: one sentence per criterion of :func:`promotion_decision`."""
    gain, ece_up = gate["challenger_pr_auc"] - gate["champion_pr_auc"], gate["challenger_ece"] - gate["champion_ece"]
    g_ok, e_ok = gain > promotion["min_pr_auc_gain"], ece_up <= promotion["max_ece_increase"]
    return [
        f"PR-AUC {gate['challenger_pr_auc']:.4f} vs champion {gate['champion_pr_auc']:.4f}: gain {gain:+.4f} "
        f"{'>' if g_ok else '<='} {promotion['min_pr_auc_gain']:g} required",
        f"ECE {gate['challenger_ece']:.4f} vs champion {gate['champion_ece']:.4f}: change {ece_up:+.4f} "
        f"{'<=' if e_ok else '>'} {promotion['max_ece_increase']:g} allowed",
    ]


def forward_mask(champion_meta: dict, submitted: pd.Series | None, index: pd.Index) -> np.ndarray:
    """Which claims of the challenger's latest window (``index``) lie after the champion's validation slice
    (``split_dates`` in its meta), i.e. are forward for the champion too. All of them when the dates are unknown."""
    last = (champion_meta.get("split_dates") or {}).get("valid", [None, None])[1]
    if submitted is None or last is None:
        return np.ones(len(index), dtype=bool)
    return (pd.to_datetime(submitted.reindex(index)) > pd.Timestamp(last)).to_numpy()


def promotion_gate(
    result: TrainResult,
    cfg: dict,
    champion: ModelBundle | None,
    champion_version: str | None = None,
    submitted: pd.Series | None = None,
) -> dict:
    """Does the challenger ``result`` beat the ``champion`` bundle on PR-AUC on the same latest window,
    without worse calibration (:func:`promotion_decision`, on the champion's probabilities for those
    claims)? Always passes when there is no champion yet.

    With ``submitted`` (submission dates by claim id) the window is cut to the claims submitted after the
    champion's validation slice, so that neither model has learned from, early-stopped or calibrated on any claim
    compared (a forward window for both); the gate fails when that window has fewer than
    ``promotion["min_window_positives"]`` recouped claims. ``reasons`` says why, in words."""
    if champion is None:
        return {"pass": True, "reason": "no champion yet"}
    rules = cfg["promotion"]
    keep = forward_mask(champion.meta, submitted, result.scored.index)
    scored, X = result.scored[keep], result.test_X[keep]
    positives = int(scored["label"].sum())
    window = {"n": int(keep.sum()), "positives": positives, "n_dropped": int((~keep).sum())}
    need = int(rules.get("min_window_positives", 1))
    if positives < max(need, 1) or scored["label"].nunique() < 2:
        reason = (
            f"the forward window (claims of the latest window submitted after the champion's validation "
            f"slice) has {window['n']} claims and {positives} recouped, fewer than the {need} required: no fair "
            "comparison; keep the champion, or promote by hand with --promote"
        )
        return {"pass": False, "champion_version": champion_version, "window": window, "reasons": [reason]}
    e = observable_share(scored)  # partially followed claims: probability x F(follow-up) against the label
    p = champion.probability(champion.spec.transform(X)) * e
    metrics = result.metrics
    if not keep.all():
        y = scored["label"].to_numpy()
        pr = scored["probability"].to_numpy() * e
        metrics = binary_metrics(y, pr, scored["recouped_amount"].to_numpy(), pr, cfg["capacities"])
    gate = promotion_decision(metrics, scored, p, cfg["capacities"], rules)
    reasons = gate_reasons(gate, rules)
    if window["n_dropped"]:
        reasons.append(
            f"{window['n_dropped']} claims of the window left out: inside the champion's train/validation slices"
        )
    return {
        "pass": gate.pop("pass"),
        "champion_version": champion_version,
        **gate,
        "window": window,
        "reasons": reasons,
    }
