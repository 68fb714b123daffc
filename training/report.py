"""Plots for a trained model: ROC, PR, calibration, lift and dollars captured, importance, SHAP, causes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve, roc_curve

from features.contract import CAUSES
from features.figures import figure, save_png
from training.metrics import confusion

if TYPE_CHECKING:
    from training.train import TrainResult


def _save(fig, path: Path) -> Path:
    return save_png(fig, path, dpi=110)


def plot_roc_pr(scored: pd.DataFrame, out: Path, oracle: pd.Series | None = None) -> list[Path]:
    y, p = scored["label"].to_numpy(), scored["probability"].to_numpy()
    paths = []
    fig, ax = figure(figsize=(5, 4.5))
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label="model")
    if oracle is not None:
        f2, t2, _ = roc_curve(y, oracle.to_numpy())
        ax.plot(f2, t2, "--", label="oracle")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (latest window)")
    ax.legend()
    paths.append(_save(fig, out / "roc_curve.png"))
    fig, ax = figure(figsize=(5, 4.5))
    pr, rc, _ = precision_recall_curve(y, p)
    ax.plot(rc, pr, label="model")
    if oracle is not None:
        p2, r2, _ = precision_recall_curve(y, oracle.to_numpy())
        ax.plot(r2, p2, "--", label="oracle")
    ax.axhline(y.mean(), ls=":", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    ax.legend()
    paths.append(_save(fig, out / "pr_curve.png"))
    return paths


def plot_calibration(scored: pd.DataFrame, out: Path, bins: int = 10) -> Path:
    y, p = scored["label"].to_numpy(), scored["probability"].to_numpy()
    order = np.argsort(p)
    chunks = [c for c in np.array_split(order, bins) if len(c)]
    mp = [p[c].mean() for c in chunks]
    my = [y[c].mean() for c in chunks]
    fig, ax = figure(figsize=(5, 4.5))
    hi = max(max(mp), max(my)) * 1.05 + 1e-6
    ax.plot([0, hi], [0, hi], ":", color="grey", label="perfect")
    ax.plot(mp, my, "o-", label="model")
    ax.set(
        xlabel="mean predicted probability", ylabel="observed recoupment rate", title="Calibration (equal-count bins)"
    )
    ax.legend()
    return _save(fig, out / "calibration.png")


def plot_lift_dollars(scored: pd.DataFrame, out: Path) -> Path:
    """Cumulative share of recouped claims and recouped dollars captured vs share of claims reviewed."""
    order = np.argsort(-scored["expected_amount"].to_numpy(), kind="stable")
    y = scored["label"].to_numpy()[order]
    d = scored["recouped_amount"].to_numpy()[order]
    x = np.arange(1, len(y) + 1) / len(y)
    fig, axes = figure(1, 2, figsize=(10, 4.2))
    axes[0].plot(x, np.cumsum(y) / max(y.sum(), 1), label="claims captured")
    axes[0].plot(x, np.cumsum(d) / max(d.sum(), 1e-9), label="dollars captured")
    axes[0].plot([0, 1], [0, 1], ":", color="grey", label="random review")
    axes[0].set(
        xlabel="share of claims reviewed (ranked by expected dollars)",
        ylabel="share captured",
        title="Dollars captured",
    )
    axes[0].legend()
    k = np.maximum((x * len(y)).astype(int), 1)
    lift = (np.cumsum(y) / k) / max(y.mean(), 1e-9)
    axes[1].plot(x[: max(len(x) // 5, 1)], lift[: max(len(x) // 5, 1)])
    axes[1].set(xlabel="share of claims reviewed", ylabel="lift over random", title="Lift (top 20%)")
    return _save(fig, out / "lift_dollars.png")


def plot_importance(
    importance: pd.Series, out: Path, name: str = "feature_importance.png", title: str = "Feature importance (gain)"
) -> Path:
    top = importance.sort_values(ascending=True).tail(25)
    fig, ax = figure(figsize=(7, 7))
    ax.barh(top.index, top.to_numpy())
    ax.set(title=title)
    return _save(fig, out / name)


def plot_cause_confusion(scored: pd.DataFrame, out: Path) -> Path:
    cp = scored[[f"p_{c}" for c in CAUSES]].to_numpy()
    cm = confusion(scored["true_cause"].where(scored["label"] == 1).to_numpy(), cp)
    fig, ax = figure(figsize=(7, 6))
    ax.imshow(cm.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(CAUSES)), CAUSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CAUSES)), CAUSES)
    for i in range(len(CAUSES)):
        for j in range(len(CAUSES)):
            ax.text(j, i, str(int(cm.iloc[i, j])), ha="center", va="center", fontsize=8)
    ax.set(xlabel="predicted cause", ylabel="true cause", title="Cause confusion (recouped claims)")
    return _save(fig, out / "cause_confusion.png")


def plot_dollars_by_cause(scored: pd.DataFrame, out: Path) -> Path:
    cp = scored[[f"p_{c}" for c in CAUSES]].to_numpy()
    by = pd.Series(
        (scored["expected_amount"].to_numpy()[:, None] * cp / np.maximum(cp.sum(1, keepdims=True), 1e-12)).sum(0),
        index=CAUSES,
    ).sort_values()
    fig, ax = figure(figsize=(6, 4))
    ax.barh(by.index, by.to_numpy())
    ax.set(xlabel="expected recoupment dollars", title="Dollars at risk by cause")
    return _save(fig, out / "dollars_by_cause.png")


def write_plots(result: TrainResult, out: Path, oracle: pd.DataFrame | None) -> None:
    """Every plot of a training run into ``out`` (PNG), plus feature_importance.csv (gain)."""
    scored = result.scored
    plot_roc_pr(scored, out, None if oracle is None else oracle["true_probability"])
    plot_calibration(scored, out)
    plot_lift_dollars(scored, out)
    plot_cause_confusion(scored, out)
    plot_dollars_by_cause(scored, out)
    lik = result.bundle.likelihood
    gain = pd.Series(lik.feature_importances_, index=lik.feature_names_in_)
    plot_importance(gain, out)
    gain.sort_values(ascending=False).to_csv(out / "feature_importance.csv", header=["gain"])
    # SHAP summary: mean |TreeSHAP| per feature on (a sample of) the test slice
    M = result.bundle.spec.transform(result.test_X.iloc[:5000])
    if len(M):
        contrib = result.bundle.contributions(M)[:, :-1]
        shap = pd.Series(np.abs(contrib).mean(0), index=result.bundle.spec.feature_names_)
        plot_importance(shap, out, "shap_summary.png", "Mean |SHAP| (log-odds), latest window")
