"""`recoup monitor`: drift watch. Compares the claims a model scores now (submitted after its as-of date) with
its training slice: population drift per feature (PSI), per payer, score drift, calibration by payer as labels
mature, and whether a retrain is due (thresholds: ``monitor`` in the training config, docs/training.md).

Pure functions first (:func:`psi` ... :func:`retrain_decision`, :func:`monitor_history`); the wiring
(:func:`monitor_cli`: registry, output folder, MLflow) last. The HTML report is :mod:`training.monitor_report`.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from features.errors import RecoupError
from features.model.bundle import ModelBundle
from training.lag import LagDistribution, exposure_of

log = logging.getLogger(__name__)

EXPERIMENT = "recoup-monitor"
#: shares are clipped to at least this before the PSI's log ratio: an empty bin adds a bounded term, never inf
PSI_EPS = 1e-4
MISSING, OTHER = "(missing)", "(other)"
VERDICT_REASONS = 3  # reasons in the printed verdict line (all of them in the report and summary.json)
#: the monitor settings' bounds (name: (low, high, integer)): one rule, checked by :func:`monitor_settings`
SETTINGS_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "bins": (2, 100, True),
    "max_levels": (1, 1000, True),
    "top_features": (1, 1000, True),
    "payer_top_features": (0, 100, True),
    "psi_feature_retrain": (0.0, 10.0, False),
    "psi_score_watch": (0.0, 10.0, False),
    "psi_score_retrain": (0.0, 10.0, False),
    "min_payer_claims": (1, 10**7, True),
    "max_payer_ece": (0.0, 1.0, False),
    "min_payer_labels": (1, 10**7, True),
    "min_payer_positives": (0, 10**7, True),
    "max_model_age_days": (1, 36500, True),
    "min_window_claims": (1, 10**7, True),
}


def monitor_settings(cfg: dict) -> dict:
    """The ``monitor`` section of a training config, each value checked against :data:`SETTINGS_BOUNDS`."""
    m = dict(cfg.get("monitor") or {})
    for k, (lo, hi, integer) in SETTINGS_BOUNDS.items():
        v = m.get(k)
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        x = float(v) if isinstance(v, (int, float)) and number else float("nan")
        if not (lo <= x <= hi) or (integer and x != int(x)):
            kind = "an integer" if integer else "a number"
            raise RecoupError(f"monitor.{k} in the training config must be {kind} in [{lo}, {hi}] (got {v!r})")
        m[k] = int(x) if integer else x
    if m["psi_score_watch"] > m["psi_score_retrain"]:
        raise RecoupError("monitor.psi_score_watch in the training config must not exceed monitor.psi_score_retrain")
    return m


# ------------------------------------------------------------------------------------------ PSI
def psi_from_counts(expected: np.ndarray, actual: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index sum((a - e) * ln(a / e)) over bin shares, each share clipped to ``eps``.
    NaN when either side is empty."""
    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    if e.sum() <= 0 or a.sum() <= 0:
        return float("nan")
    e, a = np.maximum(e / e.sum(), eps), np.maximum(a / a.sum(), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (missing values left out; repeated edges merged)."""
    x = np.asarray(reference, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return np.array([])
    return np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))


def numeric_counts(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (``len(edges) + 1`` bins, a value on an edge goes right) plus a last bin for missing."""
    v = np.asarray(x, dtype=float)
    ok = np.isfinite(v)
    counts = np.bincount(np.searchsorted(edges, v[ok], side="right"), minlength=len(edges) + 1)
    return np.append(counts, (~ok).sum())


def category_levels(reference: pd.Series, max_levels: int) -> list[str]:
    """The reference's most frequent levels (at most ``max_levels``); the rest count as :data:`OTHER`."""
    s = reference.dropna().astype(str)
    return s.value_counts().index[:max_levels].tolist()


def category_counts(x: pd.Series, levels: list[str]) -> np.ndarray:
    """Counts per level of ``levels``, then :data:`OTHER` (any other level, unseen ones too), then missing."""
    missing = x.isna().to_numpy()
    s = x.astype(object).where(~missing, None).astype(str)
    known = s.where(s.isin(levels), OTHER).where(~missing, MISSING)
    vc = known.value_counts()
    return np.array([int(vc.get(k, 0)) for k in (*levels, OTHER, MISSING)])


def psi(reference, current, categorical: bool = False, bins: int = 10, max_levels: int = 20) -> float:
    """PSI of ``current`` against ``reference``: bins at the reference's quantiles (numeric) or by level with an
    'other' level (categorical); missing values are a bin of their own."""
    if categorical:
        ref, cur = pd.Series(reference, dtype=object), pd.Series(current, dtype=object)
        levels = category_levels(ref, max_levels)
        return psi_from_counts(category_counts(ref, levels), category_counts(cur, levels))
    edges = numeric_edges(reference, bins)
    return psi_from_counts(numeric_counts(reference, edges), numeric_counts(current, edges))


class Binner:
    """Bins fitted on a reference frame's columns, to compare any subset of rows (a payer's) with the same bins."""

    def __init__(self, reference: pd.DataFrame, categorical: list[str], bins: int, max_levels: int):
        self.categorical = set(categorical)
        self.edges = {
            c: numeric_edges(reference[c].to_numpy(dtype=float), bins)
            for c in reference.columns
            if c not in self.categorical
        }
        self.levels = {c: category_levels(reference[c], max_levels) for c in reference.columns if c in self.categorical}

    def counts(self, col: str, x: pd.Series) -> np.ndarray:
        if col in self.categorical:
            return category_counts(x, self.levels[col])
        return numeric_counts(x.to_numpy(dtype=float), self.edges[col])

    def psi(self, col: str, reference: pd.Series, current: pd.Series) -> float:
        return psi_from_counts(self.counts(col, reference), self.counts(col, current))


# ------------------------------------------------------------------------------------------ drift tables
def _median(x: pd.Series) -> float:
    v = x.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else float("nan")


def feature_drift(
    ref: pd.DataFrame, now: pd.DataFrame, importance: pd.Series, binner: Binner, top_features: int
) -> pd.DataFrame:
    """One row per feature: PSI, its gain share and rank in the model, whether it is a top feature, missing shares
    and (numeric) medians; sorted by PSI, largest first."""
    share = (importance / max(float(importance.sum()), 1e-12)).reindex(ref.columns).fillna(0.0)
    rank = share.rank(ascending=False, method="first").astype(int)
    rows = []
    for c in ref.columns:
        cat = c in binner.categorical
        r, n = ref[c], now[c]
        rows.append(
            {
                "feature": c,
                "kind": "categorical" if cat else "numeric",
                "psi": binner.psi(c, r, n),
                "gain_share": float(share[c]),
                "rank": int(rank[c]),
                "top": bool(rank[c] <= top_features and share[c] > 0),
                "missing_ref": float(r.isna().mean()) if len(r) else float("nan"),
                "missing_now": float(n.isna().mean()) if len(n) else float("nan"),
                "median_ref": float("nan") if cat else _median(r),
                "median_now": float("nan") if cat else _median(n),
            }
        )
    return (
        pd.DataFrame(rows)
        .sort_values(["psi", "rank"], ascending=[False, True], na_position="last")
        .reset_index(drop=True)
    )


def score_drift(p_ref: np.ndarray, p_now: np.ndarray, bins: int) -> dict:
    """The calibrated probability, train slice vs now: PSI (bins at the train slice's quantiles), means, quantiles."""
    qs = (0.5, 0.9, 0.99)
    out = {"psi": psi(p_ref, p_now, bins=bins), "mean_ref": float(np.mean(p_ref)), "mean_now": float(np.mean(p_now))}
    for q in qs:
        out[f"q{int(q * 100)}_ref"] = float(np.quantile(p_ref, q))
        out[f"q{int(q * 100)}_now"] = float(np.quantile(p_now, q))
    return out


def payer_drift(
    ref: pd.DataFrame,
    now: pd.DataFrame,
    p_ref: np.ndarray,
    p_now: np.ndarray,
    binner: Binner,
    top: list[str],
    score_bins: int,
    min_claims: int,
) -> pd.DataFrame:
    """One row per payer: claims and volume share in the train slice and now, PSI of the score and the largest PSI
    among ``top`` features (with the overall train slice's bins) where both sides have ``min_claims`` claims."""
    pr, pn = ref["payer_id"].astype(str).to_numpy(), now["payer_id"].astype(str).to_numpy()
    score_edges = numeric_edges(p_ref, score_bins)
    feats = [c for c in top if c != "payer_id"]
    rows = []
    for payer in sorted(set(pr) | set(pn)):
        a, b = pr == payer, pn == payer
        row: dict = {
            "payer_id": payer,
            "n_ref": int(a.sum()),
            "n_now": int(b.sum()),
            "share_ref": float(a.mean()) if len(a) else 0.0,
            "share_now": float(b.mean()) if len(b) else 0.0,
            "psi_score": float("nan"),
            "psi_top_feature": float("nan"),
            "top_feature": "",
        }
        if a.sum() >= min_claims and b.sum() >= min_claims:
            row["psi_score"] = psi_from_counts(
                numeric_counts(p_ref[a], score_edges), numeric_counts(p_now[b], score_edges)
            )
            if feats:
                ps = {c: binner.psi(c, ref.loc[a, c], now.loc[b, c]) for c in feats}
                worst = max(ps, key=lambda c: -np.inf if np.isnan(ps[c]) else ps[c])
                row["psi_top_feature"], row["top_feature"] = ps[worst], worst
        rows.append(row)
    return pd.DataFrame(rows).sort_values("n_now", ascending=False).reset_index(drop=True)


def ece_noise(p: np.ndarray, bins: int) -> float:
    """The ECE a perfectly calibrated model would show on these predictions by chance alone (equal-count bins,
    E|mean(y) - mean(p)| ~ sqrt(2/pi) x its binomial standard error per bin, weighted by bin size)."""
    p = np.sort(np.asarray(p, dtype=float))
    if len(p) == 0:
        return float("nan")
    out = 0.0
    for chunk in np.array_split(p, bins):
        if len(chunk):
            out += len(chunk) / len(p) * np.sqrt(2 / np.pi) * np.sqrt(np.sum(chunk * (1 - chunk))) / len(chunk)
    return float(out)


def calibration_by_payer(frame: pd.DataFrame, bins: int = 5) -> pd.DataFrame:
    """Predicted vs observed per payer. ``frame``: payer_id, probability, label, mature (horizon ended), paid.

    Matured claims: ECE (``bins`` equal-count bins), its chance level (:func:`ece_noise`), mean predicted and
    observed rate. Paid claims still followed (horizon not ended): with ``exposure`` in the frame (F(follow-up) of
    the model's lag distribution, training.lag) the rate recouped so far is compared with probability x F, the
    share expected by now, both ways; without it the rate so far is only a lower bound of the final rate, read one
    way. ``partial_excess_z`` > 0 means more recouped already than predicted (z in binomial standard errors)."""
    from training.metrics import expected_calibration_error

    rows = []
    for payer, g in frame.groupby(frame["payer_id"].astype(str)):
        m = g[g["mature"]]
        part = g[~g["mature"] & g["paid"]]
        y, p = m["label"].to_numpy(dtype=float), m["probability"].to_numpy(dtype=float)
        pp, yp = part["probability"].to_numpy(dtype=float), part["label"].to_numpy(dtype=float)
        if "exposure" in part.columns:
            pp = pp * part["exposure"].to_numpy(dtype=float)
        se = np.sqrt(np.sum(pp * (1 - pp))) / len(pp) if len(pp) else float("nan")
        rows.append(
            {
                "payer_id": payer,
                "n_labelled": int(len(m)),
                "positives": int(y.sum()),
                "mean_predicted": float(p.mean()) if len(p) else float("nan"),
                "observed": float(y.mean()) if len(y) else float("nan"),
                "ece": expected_calibration_error(y, p, bins) if len(y) else float("nan"),
                "ece_noise": ece_noise(p, bins),
                "partial_n": int(len(part)),
                "partial_predicted": float(pp.mean()) if len(pp) else float("nan"),
                "partial_observed_so_far": float(yp.mean()) if len(yp) else float("nan"),
                "partial_excess_z": float((yp.mean() - pp.mean()) / se) if len(pp) and se > 0 else float("nan"),
                "exposure_used": "exposure" in frame.columns,
            }
        )
    cols = ["payer_id", "n_labelled", "positives", "mean_predicted", "observed", "ece", "ece_noise", "partial_n"]
    cols += ["partial_predicted", "partial_observed_so_far", "partial_excess_z", "exposure_used"]
    return pd.DataFrame(rows, columns=cols).sort_values("n_labelled", ascending=False).reset_index(drop=True)


# ------------------------------------------------------------------------------------------ decision
def retrain_decision(
    features: pd.DataFrame, score: dict, calibration: pd.DataFrame, age_days: int, n_now: int, s: dict
) -> dict:
    """Whether a retrain is due, and why. ``retrain`` reasons: a top feature's PSI >= psi_feature_retrain, score
    PSI >= psi_score_retrain, a payer with min_payer_labels matured claims (min_payer_positives recouped) whose ECE
    exceeds both max_payer_ece and twice its chance level, a payer already recouped (on claims still followed) more
    than 3 standard errors above its prediction, or a model older than max_model_age_days. ``watch`` notes: score
    PSI >= psi_score_watch, other features with PSI >= psi_feature_retrain (one note), fewer than
    min_window_claims claims."""
    due: list[str] = []
    watch: list[str] = []
    lim = s["psi_feature_retrain"]
    drifting = features[features["psi"] >= lim]
    for r in drifting[drifting["top"]].itertuples():
        due.append(f"feature {r.feature} PSI {r.psi:.3f} >= {lim:g} (gain rank {r.rank})")
    others = drifting[~drifting["top"]]
    if len(others):
        worst = others.iloc[int(np.argmax(others["psi"].to_numpy()))]
        watch.append(
            f"{len(others)} feature(s) outside the model's top features with PSI >= {lim:g}, the largest "
            f"{worst['feature']} {worst['psi']:.3f} (gain rank {worst['rank']})"
        )
    ps = score["psi"]
    if ps >= s["psi_score_retrain"]:
        due.append(f"score PSI {ps:.3f} >= {s['psi_score_retrain']:g}")
    elif ps >= s["psi_score_watch"]:
        watch.append(f"score PSI {ps:.3f} >= {s['psi_score_watch']:g}")
    enough = (calibration["n_labelled"] >= s["min_payer_labels"]) & (
        calibration["positives"] >= s["min_payer_positives"]
    )
    for r in calibration[enough].itertuples():
        if r.ece > s["max_payer_ece"] and r.ece > 2 * r.ece_noise:
            due.append(
                f"payer {r.payer_id}: ECE {r.ece:.3f} > {s['max_payer_ece']:g} on {r.n_labelled} matured claims "
                f"(observed {r.observed:.3f} vs predicted {r.mean_predicted:.3f}; chance level {r.ece_noise:.3f})"
            )
    two_way = "exposure_used" in calibration.columns and bool(calibration["exposure_used"].any())
    c = calibration
    # as for matured claims: enough claims still followed, and enough recouped seen or expected by now
    followed = (c["partial_n"] >= s["min_payer_labels"]) & (
        c[["partial_observed_so_far", "partial_predicted"]].max(axis=1) * c["partial_n"] >= s["min_payer_positives"]
    )
    for r in c[followed & (c["partial_excess_z"].abs() > 3)].itertuples():
        if r.partial_excess_z < 0 and not two_way:
            continue  # without the lag distribution a low rate so far says nothing
        side = "above" if r.partial_excess_z > 0 else "below"
        by = "by now" if two_way else "for the whole horizon"
        due.append(
            f"payer {r.payer_id}: {r.partial_observed_so_far:.3f} of {r.partial_n} claims still followed are "
            f"already recouped, {side} the {r.partial_predicted:.3f} predicted {by} (z {r.partial_excess_z:.1f})"
        )
    if age_days > s["max_model_age_days"]:
        due.append(f"model as of {age_days} days before the data's last date (> {s['max_model_age_days']})")
    if n_now < s["min_window_claims"]:
        watch.append(f"only {n_now} claims in the window (< {s['min_window_claims']}): PSI figures are noisy")
    return {
        "retrain_due": bool(due),
        "status": "retrain" if due else ("watch" if watch else "ok"),
        "reasons": due,
        "watch": watch,
    }


# ------------------------------------------------------------------------------------------ one run
def parse_day(value: str | None, option: str) -> pd.Timestamp | None:
    """A date option YYYY-MM-DD (None when not given)."""
    if value is None or not str(value).strip():
        return None
    try:
        return pd.Timestamp(pd.to_datetime(str(value), format="%Y-%m-%d"))
    except (ValueError, TypeError):
        raise RecoupError(f"--{option} must be a date YYYY-MM-DD (got {value!r})") from None


def window_bounds(
    meta: dict, last_date: pd.Timestamp, since: str | None, until: str | None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[since, until] of the claims scored now: by default from the day after the model's as-of date to the data's
    last date (dates YYYY-MM-DD)."""
    s = parse_day(since, "since") or pd.Timestamp(meta["as_of"]) + pd.Timedelta(days=1)
    u = parse_day(until, "until") or last_date
    if s > u:
        raise RecoupError(f"--since {s.date()} is after --until {u.date()}")
    return s, u


#: the slices of the model (``split_dates`` in its meta) the window can be compared with
REFERENCES = ("train", "test")


def monitor_history(
    bundle: ModelBundle,
    history,
    settings: dict,
    since: str | None = None,
    until: str | None = None,
    reference: str = "train",
) -> dict:
    """Drift of the claims submitted in [since, until] (default: after the model's as-of date) against the model's
    ``reference`` slice (train: what it learned from; test: its latest window, closer in time): feature,
    payer, score drift, calibration by payer, retrain decision, and the frames for plots."""
    from features.pipeline import build_feature_table
    from training.evaluate import check_window
    from training.labels import make_labels

    meta = bundle.meta
    if reference not in REFERENCES:
        raise RecoupError(f"--reference must be one of {', '.join(REFERENCES)} (got {reference!r})")
    if reference not in (meta.get("split_dates") or {}):
        raise RecoupError("the model's meta.json has no split_dates: retrain it with this version of recoup")
    claims = history.claims
    s, u = window_bounds(meta, history.last_date, since, until)
    check_window(meta, claims["submitted_date"], str(s.date()), str(u.date()))
    sub = claims["submitted_date"]
    t0, t1 = (pd.Timestamp(d) for d in meta["split_dates"][reference][:2])
    in_ref, in_now = ((sub >= t0) & (sub <= t1)).to_numpy(), ((sub >= s) & (sub <= u)).to_numpy()
    if not in_now.any():
        raise RecoupError(
            f"no claims submitted in the window {s.date()}..{u.date()} (the model is as of {meta['as_of']})"
        )
    if not in_ref.any():
        raise RecoupError(f"the history holds no claims of the model's {reference} slice {t0.date()}..{t1.date()}")
    log.info("building point-in-time features for %d claims", len(claims))
    X = build_feature_table(history)[0].X
    ids = claims["claim_id"].astype(str)
    Xr, Xn = X.loc[ids[in_ref]], X.loc[ids[in_now]]
    log.info("scoring %d %s-slice and %d window claims", len(Xr), reference, len(Xn))
    spec = bundle.spec
    p_ref, p_now = bundle.probability(spec.transform(Xr)), bundle.probability(spec.transform(Xn))
    cols = list(spec.feature_names_)
    binner = Binner(Xr[cols], list(spec.categorical_), settings["bins"], settings["max_levels"])
    lik = bundle.likelihood
    importance = pd.Series(lik.feature_importances_, index=list(lik.feature_names_in_), dtype=float)
    feats = feature_drift(Xr[cols], Xn[cols], importance, binner, settings["top_features"])
    top = feats.sort_values("rank")["feature"].head(settings["payer_top_features"]).tolist()
    score = score_drift(p_ref, p_now, settings["bins"])
    payers = payer_drift(Xr, Xn, p_ref, p_now, binner, top, settings["bins"], settings["min_payer_claims"])
    labels = make_labels(history, history.last_date, int(meta.get("horizon_days", 365))).loc[Xn.index]
    lag = (meta.get("labels") or {}).get("lag")
    cal_frame = pd.DataFrame(
        {
            "payer_id": Xn["payer_id"].astype(str).to_numpy(),
            "probability": p_now,
            "label": labels["label"].to_numpy(),
            "mature": labels["mature"].to_numpy(dtype=bool),
            "paid": claims.loc[in_now, "paid_date"].notna().to_numpy(),
        },
        index=Xn.index,
    )
    if lag and lag.get("cdf"):  # the model's lag distribution: partially followed claims compared both ways
        cal_frame["exposure"] = exposure_of(labels, LagDistribution.from_dict(lag))
    calibration = calibration_by_payer(cal_frame)
    age = int((history.last_date - pd.Timestamp(meta["as_of"])).days)
    decision = retrain_decision(feats, score, calibration, age, len(Xn), settings)
    summary = {
        "model": {k: meta.get(k) for k in ("model_name", "model_version", "as_of", "horizon_days", "run_id")},
        "reference": reference,
        "reference_slice": [str(t0.date()), str(t1.date())],
        "window": [str(s.date()), str(u.date())],
        "data_last_date": str(history.last_date.date()),
        "model_age_days": age,
        "n_ref": int(len(Xr)),
        "n_now": int(len(Xn)),
        "n_labelled_now": int(cal_frame["mature"].sum()),
        "psi_max": float(feats["psi"].max()),
        "psi_max_top": float(feats.loc[feats["top"], "psi"].max()) if feats["top"].any() else float("nan"),
        "score": score,
        **decision,
        "settings": settings,
    }
    return {
        "summary": summary,
        "features": feats,
        "payers": payers,
        "calibration": calibration,
        "p_ref": p_ref,
        "p_now": p_now,
        "cal_frame": cal_frame,
    }


# ------------------------------------------------------------------------------------------ wiring
def _clean(v):
    """JSON-safe: NaN/inf as null, numpy scalars as Python numbers."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def metric_key(name: str) -> str:
    """An MLflow metric name from a payer id (letters, digits and ``_ - . /`` kept, the rest ``_``)."""
    return re.sub(r"[^A-Za-z0-9_\-./]", "_", name)[:200]


def mlflow_metrics(result: dict) -> dict[str, float]:
    """psi_max, psi_max_top, psi_score, n_train, n_now, n_labelled_now, model_age_days, retrain_due, and per payer
    with matured claims ece.<payer> and n_labelled.<payer>."""
    sm = result["summary"]
    out = {k: sm[k] for k in ("psi_max", "psi_max_top", "n_ref", "n_now", "n_labelled_now", "model_age_days")}
    out["psi_score"] = sm["score"]["psi"]
    out["retrain_due"] = float(sm["retrain_due"])
    for r in result["calibration"].itertuples():
        if r.n_labelled:
            out[f"ece.{metric_key(r.payer_id)}"] = r.ece
            out[f"n_labelled.{metric_key(r.payer_id)}"] = r.n_labelled
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def verdict_line(summary: dict) -> str:
    """The one line `recoup monitor` prints."""
    head = (
        f"model as of {summary['model']['as_of']}, window {summary['window'][0]}..{summary['window'][1]} "
        f"({summary['n_now']} claims): "
    )
    if summary["retrain_due"]:
        shown, more = summary["reasons"][:VERDICT_REASONS], len(summary["reasons"]) - VERDICT_REASONS
        return head + "RETRAIN DUE: " + "; ".join(shown) + (f"; and {more} more (see the report)" if more > 0 else "")
    figures = f"max top-feature PSI {summary['psi_max_top']:.3f}, score PSI {summary['score']['psi']:.3f}"
    if summary["watch"]:
        return head + f"no retrain due, watch: {'; '.join(summary['watch'])} ({figures})"
    return head + f"no retrain due ({figures})"


def write_outputs(result: dict, out: Path, overwrite: bool) -> Path:
    """report.html, summary.json and the three tables as CSV into ``out``, swapped in whole (atomic)."""
    from features.outputs import write_csv, write_dir, write_text
    from training.monitor_report import render_html

    page = render_html(result)

    def build(tmp: Path) -> None:
        write_text(tmp / "report.html", page)
        write_text(tmp / "summary.json", json.dumps(_clean(result["summary"]), indent=2) + "\n")
        write_csv(tmp / "feature_drift.csv", result["features"])
        write_csv(tmp / "payer_drift.csv", result["payers"])
        write_csv(tmp / "payer_calibration.csv", result["calibration"])

    return write_dir(out, "monitor", build, overwrite=overwrite)


def log_to_mlflow(result: dict, out: Path) -> str:
    """A run in the ``recoup-monitor`` experiment: the metrics of :func:`mlflow_metrics`, tags (model version, window,
    status, reasons), report.html and summary.json as artifacts. Returns the run id."""
    from features.settings import artifact_root
    from training.registry import open_mlflow

    mlflow = open_mlflow()
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    exp_id = (
        exp.experiment_id
        if exp
        else mlflow.create_experiment(EXPERIMENT, artifact_location=Path(artifact_root()).as_uri())
    )
    sm = result["summary"]
    with mlflow.start_run(experiment_id=exp_id, run_name=f"monitor-{sm['window'][1]}") as run:
        mlflow.set_tags(
            {
                "model_version": str(sm["model"].get("model_version") or ""),
                "model_run_id": str(sm["model"].get("run_id") or ""),
                "model_as_of": str(sm["model"]["as_of"]),
                "window": "..".join(sm["window"]),
                "status": sm["status"],
                "reasons": " | ".join(sm["reasons"])[:5000],
            }
        )
        mlflow.log_metrics(mlflow_metrics(result))
        for name in ("report.html", "summary.json"):
            mlflow.log_artifact(str(out / name))
    return run.info.run_id


def monitor_cli(
    data: Path,
    version: str | None = None,
    since: str | None = None,
    until: str | None = None,
    out: Path | None = None,
    config: Path | None = None,
    overwrite: bool = False,
    reference: str = "train",
) -> dict:
    """Entry point of `recoup monitor`."""
    from features.contract import load_history
    from features.outputs import check_dir_output
    from features.settings import MODEL_NAME, recoup_home
    from training.config import load_config
    from training.registry import download_bundle

    settings = monitor_settings(load_config(config))
    if reference not in REFERENCES:
        raise RecoupError(f"--reference must be one of {', '.join(REFERENCES)} (got {reference!r})")
    s, u = parse_day(since, "since"), parse_day(until, "until")  # before the work
    if s is not None and u is not None and s > u:
        raise RecoupError(f"--since {s.date()} is after --until {u.date()}")
    target = Path(out) if out else None
    if target is not None:
        check_dir_output(target, "monitor", overwrite)
    history = load_history(data, require_recoupments=True)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            bundle = download_bundle(MODEL_NAME, version or "champion", Path(tmp))
        except Exception as exc:  # no registered model / alias / version
            raise RecoupError(
                f"no model '{MODEL_NAME}' {'version ' + version if version else 'champion'} in the MLflow registry "
                f"({type(exc).__name__}); run `recoup train --promote` first"
            ) from None
        bundle.meta.setdefault("model_version", version or "champion")
        result = monitor_history(bundle, history, settings, since, until, reference)
    sm = result["summary"]
    if target is None:
        target = recoup_home() / "monitor" / f"{sm['model']['as_of']}_{sm['window'][1]}"
    path = write_outputs(result, target, overwrite or out is None)
    sm["run_id"] = log_to_mlflow(result, path)
    print(verdict_line(sm))
    print(f"  report {path / 'report.html'}; MLflow run {sm['run_id']} (experiment {EXPERIMENT})")
    return result
