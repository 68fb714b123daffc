"""Plots for a trained model: ROC, PR, calibration, lift and dollars captured, importance, SHAP (bars and
beeswarm), causes."""

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


#: SHAP beeswarm: features shown (largest mean |SHAP| first), points per feature at most, half-height of a row
BEESWARM_FEATURES = 15
BEESWARM_POINTS = 2000
BEESWARM_HALF_HEIGHT = 0.4
#: text on a cell darker than this relative luminance (0 black .. 1 white) is white, else black
DARK_LUMINANCE = 0.45


def text_colour(rgba: tuple[float, ...]) -> str:
    """``"white"`` on a dark background colour (relative luminance, sRGB, below :data:`DARK_LUMINANCE`), else
    ``"black"``: numbers stay readable on every cell of a heat map."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgba[:3]]
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return "white" if lum < DARK_LUMINANCE else "black"


def plot_cause_confusion(scored: pd.DataFrame, out: Path) -> Path:
    cp = scored[[f"p_{c}" for c in CAUSES]].to_numpy()
    cm = confusion(scored["true_cause"].where(scored["label"] == 1).to_numpy(), cp)
    fig, ax = figure(figsize=(7, 6))
    im = ax.imshow(cm.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(CAUSES)), CAUSES, rotation=45, ha="right")
    ax.set_yticks(range(len(CAUSES)), CAUSES)
    for i in range(len(CAUSES)):
        for j in range(len(CAUSES)):
            n = int(cm.iloc[i, j])
            ax.text(j, i, str(n), ha="center", va="center", fontsize=8, color=text_colour(im.cmap(im.norm(n))))
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


def swarm_offsets(x: np.ndarray, half_height: float = BEESWARM_HALF_HEIGHT, bins: int = 60) -> np.ndarray:
    """Vertical offsets of a beeswarm row: points in the same x bin spread out alternately above and below the
    row (0, +1, -1, +2, ...), scaled so the most crowded bin spans ``half_height`` each side; so a row's height
    shows where the values are dense."""
    if len(x) == 0:
        return np.zeros(0)
    lo, hi = float(np.min(x)), float(np.max(x))
    b = np.minimum(((x - lo) / max(hi - lo, 1e-12) * bins).astype(int), bins - 1)
    order = np.argsort(b, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(b, minlength=bins))[:-1]])
    rank = np.empty(len(x), dtype=int)
    rank[order] = np.arange(len(x)) - starts[b[order]]
    step = np.where(rank % 2 == 1, (rank + 1) // 2, -(rank // 2))
    return step / max(int(np.abs(step).max()), 1) * half_height


def colour_values(column: pd.Series) -> np.ndarray:
    """A feature's values as colours 0..1 for the beeswarm: percentile rank among the shown rows (so skewed
    features still spread), NaN for missing values and for categories (they have no order)."""
    if not pd.api.types.is_numeric_dtype(column.dtype) or isinstance(column.dtype, pd.CategoricalDtype):
        return np.full(len(column), np.nan)
    return column.astype(float).rank(pct=True).to_numpy()


def plot_shap_beeswarm(
    contrib: np.ndarray, M: pd.DataFrame, out: Path, top: int = BEESWARM_FEATURES, name: str = "shap_beeswarm.png"
) -> Path:
    """SHAP beeswarm: per feature (the ``top`` largest mean |SHAP|, largest at the top) one point per claim at
    its contribution to the log-odds, coloured by the feature's value (low blue .. high red; grey: missing or a
    category). Direction, not only size: red points right of zero mean high values raise the risk."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable

    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(M), size=min(len(M), BEESWARM_POINTS), replace=False))
    contrib, M = contrib[rows], M.iloc[rows]
    names = list(M.columns)
    order = np.argsort(-np.abs(contrib).mean(0), kind="stable")[:top][::-1]
    cmap = colormaps["coolwarm"]
    fig, ax = figure(figsize=(8, 0.42 * len(order) + 1.6))
    for y, j in enumerate(order):
        x = contrib[:, j]
        c = colour_values(M[names[j]])
        known = ~np.isnan(c)
        yy = y + swarm_offsets(x)
        ax.scatter(x[~known], yy[~known], s=6, color="#9e9e9e", alpha=0.6, linewidths=0, rasterized=True)
        ax.scatter(x[known], yy[known], s=6, c=cmap(c[known]), alpha=0.8, linewidths=0, rasterized=True)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(order)), [names[j] for j in order])
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set(xlabel="SHAP value (contribution to the log-odds of recoupment)", title="SHAP beeswarm, latest window")
    bar = fig.colorbar(ScalarMappable(cmap=cmap), ax=ax, fraction=0.04, pad=0.02, ticks=[0, 1])
    bar.ax.set_yticklabels(["low", "high"])
    bar.set_label("feature value (grey: missing or a category)")
    return _save(fig, out / name)


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
        plot_shap_beeswarm(contrib, M, out)
