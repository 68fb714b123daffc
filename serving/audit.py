"""The audit worklist (``recoup audit``): paid claims ranked by expected recoupment dollars.

expected dollars = P(recouped) x sum over causes of P(cause | recouped) x amount at risk for that cause

Amount at risk per cause (the payment is ``paid_amount``; a line's payment is ``line_paid`` when known,
else its share of the claim's payment in proportion to ``line_charge``):

- duplicate, eligibility: the whole payment (payers take the whole claim back);
- bundling: the payment of the column-2 line(s) of the claim's NCCI procedure-to-procedure hits (the
  line that is bundled into the other); without a hit, the learned share of the payment;
- units: the excess share of the line(s) over the MUE limit, (units - limit) / units x the payment of
  the affected lines (for per-day limits, all lines of that code on that day); without a hit, the
  learned share;
- other causes: the learned share (``cause_amount_share`` in the bundle's meta) of the payment.

The worklist is the top of that ranking within ``capacity`` reviews or ``budget_hours`` x 60 /
``minutes_per_review`` reviews (the smaller when both are given). It is written as ``worklist.csv``,
``worklist.parquet`` and a self-contained ``report.html`` (:mod:`serving.audit_report`).

Backtest: when the data has recoupments and claims of the window whose horizon has passed (mature),
the report shows what reviewing the top of the ranking would actually have caught, against random
review, against the oracle (``DIR/oracle.csv``) and against hindsight. :func:`matured_window` says which
submission window has known outcomes (``--matured`` audits it).

Providers are shown with their name when the history's providers table has one and with their
specialty's NUCC label (the packaged taxonomy), never a bare taxonomy code.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import CAUSES, DEFAULT_HORIZON_DAYS, History
from features.contract.reviews import UNREVIEWED_OUTCOMES, latest_outcomes
from features.errors import RecoupError
from features.model.outcomes import make_labels, read_oracle
from features.rulebook import taxonomy_labels
from serving.batch import BatchScores, add_reasons, causes_json, cluster_option, parse_date, score_data

log = logging.getLogger(__name__)
WHOLE_CLAIM_CAUSES = ("duplicate", "eligibility")
MAX_EXPLAIN = 50_000
WORKLIST_COLUMNS = [
    "rank",
    "claim_id",
    "billing_npi",
    "provider_name",
    "specialty",
    "specialty_code",
    "payer_id",
    "plan_type",
    "submitted_date",
    "paid_date",
    "paid_amount",
    "recoupment_probability",
    "risk_band",
    "top_cause",
    "top_cause_probability",
    "second_cause",
    "second_cause_probability",
    "amount_at_risk",
    "expected_recoupment_dollars",
    "cumulative_expected_dollars",
    "reason_1",
    "reason_2",
    "reason_3",
    "rule_hit_1",
    "rule_hit_2",
    "rule_hit_3",
    "rule_hit_count",
    "causes",
    "reasons",
    "rule_hits",
    "model_version",
]
#: flat text columns: the first N reasons and rule hits (the CSV for people has these, not the JSON)
FLAT_ITEMS = 3
#: JSON columns: in worklist.parquet for programs, left out of worklist.csv (spreadsheets)
JSON_COLUMNS = ("causes", "reasons", "rule_hits")
#: a backtest window: this many days of submissions (unless the model's held-out slice gives one)
BACKTEST_WINDOW_DAYS = 182
#: claims counted as paid in time for the suggested window: this quantile of days from submission to payment
PAY_LAG_QUANTILE = 0.95
UNKNOWN_SPECIALTY = "specialty not given"
#: the capacity curve shows 0 .. this many times the capacity (where the decision is), not every paid claim
CURVE_ZOOM = 3
#: a NUCC health care provider taxonomy code (10 characters, ending in X)
TAXONOMY_CODE = re.compile(r"\b[0-9]{3}[0-9A-Z]{6}X\b")


# ---------------------------------------------------------------------------------------------- providers
def specialty_label(code, labels: dict[str, str]) -> str:
    """The label of a taxonomy code; an unknown code is shown as such, a missing one as not given."""
    if code is None or (isinstance(code, float) and np.isnan(code)) or not str(code).strip():
        return UNKNOWN_SPECIALTY
    code = str(code).strip()
    return labels.get(code, f"taxonomy {code} (not in the NUCC list)")


def label_taxonomy_codes(text: str, labels: dict[str, str]) -> str:
    """``text`` with each known taxonomy code replaced by its label (a reason names the specialty)."""
    if not text:
        return text

    def label(m: re.Match) -> str:
        got = labels.get(m.group(0))
        return m.group(0) if not got or got in text else got  # a sentence naming it already keeps the code

    return TAXONOMY_CODE.sub(label, text)


def provider_table(history: History, npis, labels: dict[str, str]) -> pd.DataFrame:
    """Index npi: ``provider_name`` (the providers table's optional ``name``; empty when absent),
    ``specialty_code``, ``specialty`` (its NUCC label)."""
    idx = pd.Index(pd.unique(np.asarray(npis, dtype=object)).astype(str), name="npi")
    out = pd.DataFrame({"provider_name": "", "specialty_code": ""}, index=idx)
    p = history.providers
    if p is not None and len(p):
        p = p.assign(npi=p["npi"].astype(str)).drop_duplicates("npi", keep="last").set_index("npi")
        got = p.reindex(idx)
        if "name" in got.columns:
            out["provider_name"] = got["name"].astype("string").fillna("").str.strip().to_numpy(dtype=object)
        if "taxonomy_code" in got.columns:
            out["specialty_code"] = got["taxonomy_code"].astype("string").fillna("").to_numpy(dtype=object)
    out["specialty"] = [specialty_label(c, labels) for c in out["specialty_code"]]
    return out


def provider_display(npi: str, providers: pd.DataFrame | None) -> str:
    """``Name (NPI)`` when the history names the provider, else ``NPI``."""
    if providers is None or npi not in providers.index:
        return str(npi)
    name = providers.at[npi, "provider_name"]
    return f"{name} ({npi})" if name else str(npi)


# ---------------------------------------------------------------------------------------------- flat columns
def _texts(items_json: str, labels: dict[str, str]) -> list[str]:
    try:
        items = json.loads(items_json) if items_json else []
    except (TypeError, ValueError):
        return []
    return [label_taxonomy_codes(str(i.get("text", "")), labels) for i in items if isinstance(i, dict)]


def flat_items(column: pd.Series, prefix: str, labels: dict[str, str]) -> pd.DataFrame:
    """``<prefix>_1..FLAT_ITEMS`` text columns from a JSON list column (``[{"text": ...}]``)."""
    texts = [_texts(v, labels) for v in column]
    return pd.DataFrame(
        {f"{prefix}_{j + 1}": [t[j] if len(t) > j else "" for t in texts] for j in range(FLAT_ITEMS)},
        index=column.index,
    )


def csv_frame(worklist: pd.DataFrame) -> pd.DataFrame:
    """The worklist for spreadsheets: flat columns only (no JSON in cells)."""
    return worklist.drop(columns=[c for c in JSON_COLUMNS if c in worklist.columns])


# ---------------------------------------------------------------------------------------------- matured window
def matured_window(
    history: History,
    horizon_days: int,
    split_dates: dict | None = None,
    days: int = BACKTEST_WINDOW_DAYS,
    as_of: pd.Timestamp | None = None,
) -> dict:
    """The submission window whose outcomes are known as of the data's last date (``as_of``).

    A claim's outcome is known ``horizon_days`` after its payment, so claims submitted by
    ``as_of - horizon - L`` are mature, L being the :data:`PAY_LAG_QUANTILE` of the days from submission
    to payment. The window starts at the model's held-out (test) slice when ``split_dates`` puts it before
    ``until`` (``held_out``: the model neither trained nor calibrated on these claims, nor on later ones),
    else ``days`` before ``until`` (then the model trained on them: a model trained with immature labels,
    as of the data's end, has its test slice after ``until``). ``since`` and ``until`` are None when the
    history is too short."""
    c = history.claims
    as_of = pd.Timestamp(as_of if as_of is not None else history.last_date)
    paid = c["paid_date"].notna()
    lag_days = (c.loc[paid, "paid_date"] - c.loc[paid, "submitted_date"]).dt.days
    lag = int(np.ceil(lag_days.quantile(PAY_LAG_QUANTILE))) if len(lag_days) else 0
    first = pd.Timestamp(c["submitted_date"].min())
    until = (as_of - pd.Timedelta(days=horizon_days + max(lag, 0))).normalize()
    res: dict[str, Any] = {
        "as_of": str(as_of.date()),
        "horizon_days": int(horizon_days),
        "pay_lag_days": lag,
        "paid_by": str((as_of - pd.Timedelta(days=horizon_days)).date()),
        "first_submitted": str(first.date()),
        "since": None,
        "until": None,
        "held_out": False,
    }
    if pd.isna(first) or until < first:
        return res
    test = (split_dates or {}).get("test") or [None, None]
    t0 = pd.Timestamp(test[0]) if test[0] else None
    if t0 is not None and first <= t0 <= until:
        since, res["held_out"] = t0, True
    else:
        since = max(first, until - pd.Timedelta(days=days))
    res.update({"since": str(since.date()), "until": str(until.date())})
    return res


def window_flags(mw: dict) -> str:
    """``--since A --until B`` of a matured window ("" when there is none)."""
    return f"--since {mw['since']} --until {mw['until']}" if mw.get("since") else ""


# ---------------------------------------------------------------------------------------------- amounts
def line_payments(history: History, claim_ids=None) -> pd.DataFrame:
    """claim_id, line_number, code, day, units, paid (line_paid, else the charge share of paid_amount)."""
    c = history.claims
    ln = history.claim_lines
    if claim_ids is not None:
        keep = pd.Index(pd.unique(np.asarray(claim_ids, dtype=object)))
        c = c[c["claim_id"].astype(str).isin(keep)]
        ln = ln[ln["claim_id"].astype(str).isin(keep)]
    paid_amt = pd.Series(c["paid_amount"].to_numpy(dtype=np.float64), index=c["claim_id"].astype(str).to_numpy())
    charge_tot = ln.groupby(ln["claim_id"].astype(str), sort=False)["line_charge"].sum()
    cid = ln["claim_id"].astype(str).to_numpy()
    share = ln["line_charge"].to_numpy(dtype=np.float64) / charge_tot.reindex(cid).to_numpy()
    share = np.where(np.isfinite(share), share, 0.0)
    est = share * paid_amt.reindex(cid).to_numpy()
    lp = ln["line_paid"].to_numpy(dtype=np.float64) if "line_paid" in ln.columns else np.full(len(ln), np.nan)
    paid = np.where(np.isfinite(lp), lp, est)
    return pd.DataFrame(
        {
            "claim_id": cid,
            "line_number": ln["line_number"].to_numpy(dtype=np.int64),
            "code": ln["procedure_code"].astype(str).to_numpy(),
            "day": ln["service_date"].to_numpy(dtype="datetime64[D]").astype(np.int64),
            "units": ln["units"].to_numpy(dtype=np.float64),
            "paid": np.nan_to_num(paid),
        }
    )


def amounts_at_risk(bs: BatchScores, idx: np.ndarray, share: dict[str, float]) -> pd.DataFrame:
    """Per claim (rows ``idx`` of ``bs.claims``) and cause: dollars the payer would take back."""
    claims = bs.claims.iloc[idx]
    ids = claims["claim_id"].astype(str).to_numpy()
    paid = np.nan_to_num(claims["paid_amount"].to_numpy(dtype=np.float64))
    out = pd.DataFrame(index=pd.Index(ids, name="claim_id"))
    for c in CAUSES:
        out[c] = paid if c in WHOLE_CLAIM_CAUSES else paid * float(share.get(c, 1.0))
    hits = bs.feats.hits
    hits = hits[hits["claim_id"].isin(ids) & hits["rule"].isin(["ncci_ptp", "mue"])] if len(hits) else hits
    if len(hits):
        lines = line_payments(bs.history, hits["claim_id"].astype(str).to_numpy())
        key = pd.MultiIndex.from_arrays([lines["claim_id"], lines["line_number"]])
        lp = pd.Series(lines["paid"].to_numpy(), index=key)
        # bundling: payment of each distinct column-2 line
        b = hits[hits["rule"] == "ncci_ptp"][["claim_id", "line_number"]].dropna().drop_duplicates()
        if len(b):
            k = pd.MultiIndex.from_arrays([b["claim_id"].astype(str), b["line_number"].astype(np.int64)])
            dollars = pd.Series(lp.reindex(k).fillna(0.0).to_numpy(), index=b["claim_id"].astype(str).to_numpy())
            amt = dollars.groupby(level=0).sum()
            out.loc[amt.index, "bundling"] = np.minimum(amt.to_numpy(), out.loc[amt.index, "duplicate"].to_numpy())
        # units: excess share of the lines of the code (that line for MAI 1; that day for MAI 2/3)
        m = hits[hits["rule"] == "mue"].dropna(subset=["line_number"])
        if len(m):
            m = m.assign(
                claim_id=m["claim_id"].astype(str),
                line_number=m["line_number"].astype(np.int64),
                value=m["value"].astype(float),
                limit=m["limit"].astype(float),
                mai=m["ref"].astype(str),
            )
            m = m.merge(lines[["claim_id", "line_number", "day"]], on=["claim_id", "line_number"], how="left")
            per_line = m[m["mai"] == "1"].merge(
                lines[["claim_id", "line_number", "paid"]], on=["claim_id", "line_number"], how="left"
            )
            per_day = m[m["mai"] != "1"].merge(
                lines[["claim_id", "code", "day", "paid"]], on=["claim_id", "code", "day"], how="left"
            )
            both = pd.concat([per_line, per_day], ignore_index=True)
            if len(both):
                excess = np.clip((both["value"] - both["limit"]) / both["value"].where(both["value"] > 0), 0, 1)
                both["risk"] = excess.fillna(0.0) * both["paid"].fillna(0.0)
                amt = both.groupby("claim_id")["risk"].sum()
                out.loc[amt.index, "units"] = np.minimum(amt.to_numpy(), out.loc[amt.index, "duplicate"].to_numpy())
    return out


# ---------------------------------------------------------------------------------------------- outcomes
def outcomes(history: History, as_of: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """Per claim (index claim_id): mature, label, cause, recouped_amount — the contract's labels, computed
    by the same code as training's (:func:`features.model.outcomes.make_labels`)."""
    return make_labels(history, as_of, horizon_days)[["mature", "label", "cause", "recouped_amount"]]


def _caught(order_ids: np.ndarray, k: int, truth: pd.DataFrame) -> tuple[int, float]:
    top = truth.loc[order_ids[:k]]
    return int(top["label"].sum()), float(top["recouped_amount"].sum())


def backtest(ranked: pd.DataFrame, truth: pd.DataFrame, capacity: int, oracle: pd.DataFrame | None) -> dict | None:
    """What reviewing ``capacity`` claims of the mature part of the ranking would have caught.

    ``ranked``: candidates in worklist order (claim_id, paid_amount, amount columns). Immature candidates
    (their outcome is not known yet) are left out; the ranking order of the rest is kept.
    """
    t = truth.reindex(ranked["claim_id"].to_numpy())
    mature = t["mature"].fillna(False).to_numpy(dtype=bool)
    n_mature = int(mature.sum())
    if n_mature == 0:
        return None
    ids = ranked["claim_id"].to_numpy()[mature]
    tm = t[mature]
    k = min(capacity, n_mature)
    pos_total, dol_total = int(tm["label"].sum()), float(tm["recouped_amount"].sum())
    model_c, model_d = _caught(ids, k, tm)
    res = {
        "n_candidates": int(len(ranked)),
        "n_mature": n_mature,
        "n_immature": int(len(ranked) - n_mature),
        "capacity": int(k),
        "positives": pos_total,
        "recouped_dollars": round(dol_total, 2),
        "model": {"claims": model_c, "dollars": round(model_d, 2)},
        "random": {"claims": round(k * pos_total / n_mature, 2), "dollars": round(k * dol_total / n_mature, 2)},
    }
    hind = np.argsort(-tm["recouped_amount"].to_numpy(), kind="stable")
    hc, hd = _caught(ids[hind], k, tm)
    res["hindsight"] = {"claims": hc, "dollars": round(hd, 2)}
    if oracle is not None:
        o = oracle.reindex(ids)
        if o["true_probability"].notna().any():
            paid = ranked["paid_amount"].to_numpy(dtype=np.float64)[mature]
            score = o["true_probability"].fillna(0).to_numpy() * np.nan_to_num(paid)
            oc, od = _caught(ids[np.argsort(-score, kind="stable")], k, tm)
            res["oracle"] = {"claims": oc, "dollars": round(od, 2)}
    # capacity curves (dollars caught at each k) for the chart
    coarse = np.linspace(0, n_mature, num=min(n_mature, 200) + 1).astype(int)
    grid = np.unique(np.concatenate([coarse, np.arange(0, min(n_mature, CURVE_ZOOM * max(capacity, 10)) + 1)]))
    cum_model = np.concatenate([[0], np.cumsum(tm["recouped_amount"].to_numpy())])
    res["curve"] = {
        "k": grid.tolist(),
        "model": cum_model[grid].round(2).tolist(),
        "random": (grid * dol_total / n_mature).round(2).tolist(),
    }
    return res


def _in_sample(ranked: pd.DataFrame, truth: pd.DataFrame, split_dates: dict) -> dict:
    """How many matured candidates were submitted before the model's held-out (test) slice: the model
    trained or calibrated on them, so the backtest flatters it there."""
    test = split_dates.get("test") or [None]
    if not test[0]:
        return {"held_out_since": None, "n_in_sample": 0}
    mature = truth["mature"].reindex(ranked["claim_id"].to_numpy()).fillna(False).to_numpy(dtype=bool)
    before = (pd.to_datetime(ranked["submitted_date"]) < pd.Timestamp(test[0])).to_numpy()
    return {"held_out_since": str(test[0]), "n_in_sample": int((mature & before).sum())}


# ---------------------------------------------------------------------------------------------- worklist
@dataclass
class Worklist:
    ranked: pd.DataFrame  # every paid claim of the window in rank order (numbers only)
    worklist: pd.DataFrame  # the top within capacity, with text columns (WORKLIST_COLUMNS)
    by_cause: pd.Series  # expected dollars by cause over all candidates
    capacity: int
    summary: dict
    backtest: dict | None = None
    timings: dict = field(default_factory=dict)
    providers: pd.DataFrame | None = None  # index npi: provider_name, specialty_code, specialty


def already_reviewed(history: History, claim_ids: pd.Series) -> np.ndarray:
    """Which of ``claim_ids`` have a review outcome in the data (the store's ``reviews`` table): the worklist leaves
    them out, whatever the outcome, unless the claim's latest review is ``withdrawn`` (its outcome was taken back: it
    is not reviewed; docs/audit.md)."""
    rev = history.reviews
    if rev is None or not len(rev):
        return np.zeros(len(claim_ids), dtype=bool)
    latest = latest_outcomes(rev)
    reviewed = set(latest.index[~latest.isin(UNREVIEWED_OUTCOMES).to_numpy()])
    return claim_ids.astype(str).isin(reviewed).to_numpy(dtype=bool)


def review_capacity(n: int, capacity: int | None, budget_hours: float | None, minutes_per_review: float) -> int:
    caps = [n]
    if capacity is not None:
        caps.append(int(capacity))
    if budget_hours is not None:
        caps.append(int(np.floor(budget_hours * 60.0 / minutes_per_review + 1e-9)))
    return max(0, min(caps))


def build_worklist(
    bs: BatchScores,
    scorer,
    capacity: int | None = None,
    budget_hours: float | None = None,
    minutes_per_review: float = 20.0,
    data_dir: Path | None = None,
    as_of: pd.Timestamp | None = None,
    horizon_days: int | None = None,
    window: dict | None = None,
) -> Worklist:
    """Rank the window's paid claims, keep the top within the capacity, explain them, backtest them.
    ``window``: the :func:`matured_window` of the whole history (else computed from ``bs.history``)."""
    t0 = time.perf_counter()
    c = bs.claims
    paid_mask = (c["paid_date"].notna() & (c["paid_amount"].fillna(0) > 0)).to_numpy()
    reviewed = already_reviewed(bs.history, c["claim_id"]) & paid_mask
    paid_mask = paid_mask & ~reviewed
    idx = np.flatnonzero(paid_mask)
    share = {k: float(v) for k, v in scorer.bundle.meta.get("cause_amount_share", {}).items()}
    risk = amounts_at_risk(bs, idx, share)
    ids = risk.index.to_numpy()
    tab = bs.table.loc[ids]
    p = tab["recoupment_probability"].to_numpy(dtype=np.float64)
    pc = tab[[f"p_{k}" for k in CAUSES]].to_numpy(dtype=np.float64)
    per_cause = p[:, None] * pc * risk[list(CAUSES)].to_numpy()
    expected = per_cause.sum(axis=1)
    # amount at risk of the claim: cause-weighted (what a recoupment would take back, on average)
    at_risk = (pc * risk[list(CAUSES)].to_numpy()).sum(axis=1)
    order = np.lexsort((np.arange(len(ids)), -expected))
    claims = c.iloc[idx]
    ranked = (
        pd.DataFrame(
            {
                "claim_id": ids,
                "billing_npi": claims["billing_npi"].astype(str).to_numpy(),
                "payer_id": claims["payer_id"].astype(str).to_numpy(),
                "plan_type": claims["plan_type"].astype(str).to_numpy(),
                "submitted_date": claims["submitted_date"].to_numpy(),
                "paid_date": claims["paid_date"].to_numpy(),
                "paid_amount": claims["paid_amount"].to_numpy(dtype=np.float64),
                "recoupment_probability": p,
                "risk_band": tab["risk_band"].astype(str).to_numpy(),
                "amount_at_risk": at_risk,
                "expected_recoupment_dollars": expected,
            }
        )
        .iloc[order]
        .reset_index(drop=True)
    )
    for j, k in enumerate(CAUSES):
        ranked[f"p_{k}"] = pc[order, j]
        ranked[f"dollars_{k}"] = per_cause[order, j]
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    ranked["cumulative_expected_dollars"] = np.cumsum(ranked["expected_recoupment_dollars"].to_numpy())
    cap = review_capacity(len(ranked), capacity, budget_hours, minutes_per_review)
    top = ranked.head(cap).copy()
    t1 = time.perf_counter()
    explain_ids = top["claim_id"].head(MAX_EXPLAIN).to_numpy()
    add_reasons(bs, scorer, explain_ids)
    t2 = time.perf_counter()
    ctext, tcause, tprob = causes_json(top[[f"p_{k}" for k in CAUSES]])
    top["top_cause"] = tcause
    top["top_cause_probability"] = tprob
    pcs = top[[f"p_{k}" for k in CAUSES]].to_numpy(dtype=np.float64)
    second = np.argsort(-pcs, axis=1, kind="stable")[:, 1] if len(top) else np.zeros(0, dtype=int)
    top["second_cause"] = np.asarray(CAUSES, dtype=object)[second]
    top["second_cause_probability"] = np.round(pcs[np.arange(len(top)), second], 6) if len(top) else []
    top["causes"] = ctext
    labels = taxonomy_labels()
    top["reasons"] = [
        json.dumps([{**r, "text": label_taxonomy_codes(str(r.get("text", "")), labels)} for r in bs.reasons[i]])
        if i in bs.reasons
        else ""
        for i in top["claim_id"]
    ]
    top["rule_hits"] = bs.rule_hits.reindex(top["claim_id"].to_numpy()).fillna("[]").to_numpy()
    providers = provider_table(bs.history, ranked["billing_npi"].to_numpy(), labels)
    for col in ("provider_name", "specialty", "specialty_code"):
        top[col] = providers[col].reindex(top["billing_npi"].to_numpy()).to_numpy(dtype=object)
    top = top.join(flat_items(top["reasons"], "reason", labels)).join(flat_items(top["rule_hits"], "rule_hit", labels))
    top["rule_hit_count"] = [len(_texts(v, labels)) for v in top["rule_hits"]]
    top["model_version"] = bs.model_version
    for col in ("amount_at_risk", "expected_recoupment_dollars", "cumulative_expected_dollars"):
        top[col] = top[col].round(2)
    top["recoupment_probability"] = top["recoupment_probability"].round(6)
    worklist = top[WORKLIST_COLUMNS + [f"dollars_{k}" for k in CAUSES]].copy()
    for col in [f"dollars_{k}" for k in CAUSES]:
        worklist[col] = worklist[col].round(2)

    total = float(ranked["expected_recoupment_dollars"].sum())
    mean = total / len(ranked) if len(ranked) else 0.0
    summary: dict[str, Any] = {
        "model_version": bs.model_version,
        "claims_in_window": int(len(c)),
        "paid_claims": int(len(ranked)),
        "reviews": int(cap),
        "minutes_per_review": minutes_per_review,
        "review_hours": round(cap * minutes_per_review / 60.0, 1),
        "dollars_paid": round(float(np.nansum(ranked["paid_amount"])), 2),
        "expected_dollars_all": round(total, 2),
        "expected_dollars_at_capacity": round(float(top["expected_recoupment_dollars"].sum()), 2),
        "expected_dollars_random": round(cap * mean, 2),
        "capacity": capacity,
        "budget_hours": budget_hours,
        "reviewed_left_out": int(reviewed.sum()),
    }
    summary["lift_vs_random"] = (
        round(summary["expected_dollars_at_capacity"] / summary["expected_dollars_random"], 2)
        if summary["expected_dollars_random"] > 0
        else None
    )
    by_cause = pd.Series(per_cause.sum(axis=0), index=list(CAUSES))
    bt = None
    rec = bs.history.recoupments
    horizon = horizon_days or int(scorer.bundle.meta.get("horizon_days", DEFAULT_HORIZON_DAYS))
    as_of = as_of if as_of is not None else (bs.data_end if bs.data_end is not None else bs.history.last_date)
    split_dates = scorer.bundle.meta.get("split_dates") or {}
    summary["has_recoupments"] = bool(rec is not None and len(rec))
    summary["matured_window"] = window or matured_window(bs.history, horizon, split_dates, as_of=as_of)
    if rec is not None and len(rec) and len(ranked):
        truth = outcomes(bs.history, as_of, horizon)
        oracle = read_oracle(data_dir) if data_dir is not None else None
        bt = backtest(ranked, truth, max(cap, 0), oracle)
        if bt is not None:
            bt.update({"as_of": str(pd.Timestamp(as_of).date()), "horizon_days": horizon})
            bt.update(_in_sample(ranked, truth, split_dates))
            t = truth.reindex(top["claim_id"].to_numpy())
            worklist["outcome_known"] = t["mature"].fillna(False).to_numpy(dtype=bool)
            worklist["recouped"] = np.where(worklist["outcome_known"], t["label"].fillna(0).to_numpy(), np.nan)
            worklist["recouped_amount"] = np.where(
                worklist["outcome_known"], t["recouped_amount"].fillna(0).to_numpy(), np.nan
            )
            worklist["actual_cause"] = np.where(
                worklist["outcome_known"] & t["cause"].notna().to_numpy(), t["cause"].astype(object).to_numpy(), ""
            )
    return Worklist(
        ranked=ranked,
        worklist=worklist.reset_index(drop=True),
        by_cause=by_cause,
        capacity=cap,
        summary=summary,
        backtest=bt,
        providers=providers,
        timings={"rank_s": t1 - t0, "reasons_s": t2 - t1, "finish_s": time.perf_counter() - t2},
    )


WORKLIST_FILES = ("worklist.csv", "worklist.parquet", "report.html")


def write_worklist(wl: Worklist, out: Path, overwrite: bool = False) -> dict[str, Path]:
    """Write worklist.csv (for spreadsheets: flat columns, no JSON, formula-like cells escaped),
    worklist.parquet (every column, the JSON ones too, for programs) and report.html as one folder,
    replaced whole (:func:`features.outputs.write_dir`)."""
    from features.outputs import write_csv, write_dir, write_parquet, write_text
    from serving.audit_report import render_report

    out = Path(out)
    df = wl.worklist.copy()
    for col in ("submitted_date", "paid_date"):
        df[col] = pd.to_datetime(df[col]).dt.strftime("%Y-%m-%d")
    html = render_report(wl)

    def build(d: Path) -> None:
        write_csv(d / "worklist.csv", csv_frame(df), for_people=True)
        write_parquet(d / "worklist.parquet", df)
        write_text(d / "report.html", html)

    write_dir(out, "audit", build, overwrite=overwrite, files=WORKLIST_FILES)
    return {"csv": out / "worklist.csv", "parquet": out / "worklist.parquet", "html": out / "report.html"}


def no_backtest_reason(summary: dict) -> str:
    """Why a window has no backtest, and which window would have one (one paragraph, plain text)."""
    mw = summary.get("matured_window") or {}
    if not summary.get("has_recoupments", True):
        return "the data holds no recoupments, so no claim's outcome is known."
    if not mw:
        return "no claim of the window has a known outcome yet."
    why = (
        f"a claim's outcome is known {mw['horizon_days']} days after its payment and the data ends "
        f"{mw['as_of']}, so only claims paid by {mw['paid_by']} have one; none of this window's paid claims were. "
    )
    if not mw.get("since"):
        return why + (
            f"This history (claims from {mw['first_submitted']}) is too short for any: it needs claims submitted "
            f"{mw['horizon_days'] + mw['pay_lag_days']} days before its last date."
        )
    held = (
        " (held out from the model's training)"
        if mw.get("held_out")
        else f" (the model trained on these claims; for an out-of-sample backtest, train as of {mw['since']} or "
        "earlier: `recoup train --as-of`)"
    )
    return why + (
        f"Claims submitted up to {mw['until']} have known outcomes ({PAY_LAG_QUANTILE:.0%} of claims are paid "
        f"within {mw['pay_lag_days']} days); for a backtest, audit {mw['since']} to {mw['until']}{held}: "
        f"`recoup audit ... {window_flags(mw)}` or `--matured`."
    )


def _score_matured(data: Path, skip_invalid: bool | None, bundle_dir: Path | None):
    """Load the champion and the history, pick :func:`matured_window`, score it."""
    from serving.batch import load_data, load_scorer, score_window

    scorer = load_scorer(bundle_dir)
    history, rejected, load_s = load_data(data, skip_invalid)
    meta = scorer.bundle.meta
    mw = matured_window(history, int(meta.get("horizon_days", DEFAULT_HORIZON_DAYS)), meta.get("split_dates"))
    if not mw["since"]:
        raise RecoupError(
            f"--matured: no claim of {data} has a known outcome yet (data from {mw['first_submitted']} to "
            f"{mw['as_of']}; outcomes are known {mw['horizon_days']} days after payment)"
        )
    log.info("matured window: claims submitted %s to %s", mw["since"], mw["until"])
    bs = score_window(history, scorer, pd.Timestamp(mw["since"]), pd.Timestamp(mw["until"]), rejected)
    bs.timings["load_s"] = load_s
    return scorer, bs, mw


def _audit_on_cluster(
    spec: str,
    data: Path,
    since: pd.Timestamp | None,
    until: pd.Timestamp | None,
    matured: bool,
    bundle_dir: Path | None,
    capacity: int | None,
    budget_hours: float | None,
    minutes_per_review: float,
) -> tuple[BatchScores, Worklist, pd.Timestamp | None, pd.Timestamp | None]:
    """The audit with features, scores, rule hits and the worklist's reasons computed on the cluster
    (:mod:`serving.cluster_scoring`); the ranking, amounts at risk and backtest run here on the collected scores
    with :func:`build_worklist` itself, on the history's claims, lines and recoupments read in this process."""
    from features.cluster.client import connect
    from serving.batch import load_data
    from serving.cluster_scoring import ClusterScores, batch_scores, resolve_bundle, worker_scorer

    bundle = resolve_bundle(bundle_dir)
    scorer = worker_scorer(*bundle)
    history, _, load_s = load_data(data, False)
    mw = None
    if matured:
        meta = scorer.bundle.meta
        mw = matured_window(history, int(meta.get("horizon_days", DEFAULT_HORIZON_DAYS)), meta.get("split_dates"))
        if not mw["since"]:
            raise RecoupError(f"--matured: no claim of {data} has a known outcome yet")
        since, until = pd.Timestamp(mw["since"]), pd.Timestamp(mw["until"])
    with connect(spec) as client:
        cs = ClusterScores(client, data, bundle, since, until)
        try:
            bs = batch_scores(cs, history, until, history.last_date)
            bs.timings["load_s"] = load_s
            wl = build_worklist(bs, scorer, capacity, budget_hours, minutes_per_review, data_dir=data, window=mw)
        finally:
            cs.release()
    return bs, wl, since, until


def _check_out(data: Path, out: Path, overwrite: bool) -> None:
    """Refuse an output folder that would replace the input (``--data`` inside ``--out``), then the
    usual output checks."""
    from features.outputs import check_dir_output

    d, o = Path(data).resolve(), Path(out).resolve()
    if d == o or o in d.parents:
        raise RecoupError(f"--out {out} holds the --data folder; replacing it would delete the input")
    check_dir_output(out, "audit", overwrite)


def audit_cli(
    data: Path,
    out: Path,
    since: str | None = None,
    until: str | None = None,
    capacity: int | None = None,
    budget_hours: float | None = None,
    minutes_per_review: float = 20.0,
    skip_invalid: bool | None = None,
    bundle_dir: Path | None = None,
    overwrite: bool = False,
    matured: bool = False,
    cluster: str | None = None,
) -> dict:
    """``recoup audit``: worklist.csv, worklist.parquet and report.html in ``out`` (a new or empty folder,
    an earlier audit output, or any folder with ``overwrite``; it is replaced whole).

    ``matured``: audit the window whose outcomes are known (:func:`matured_window`), so the report has a
    backtest; not with ``since``/``until``. ``cluster`` (or ``RECOUP_DASK_SCHEDULER``): features, scores and
    reasons on a Dask cluster (:func:`_audit_on_cluster`), the same worklist."""
    t0 = time.perf_counter()
    if matured and (since or until):
        raise RecoupError("--matured picks the window itself; leave out --since and --until")
    s, u = parse_date(since, "since"), parse_date(until, "until")
    if s is not None and u is not None and s > u:
        raise RecoupError("--since is after --until")
    if capacity is not None and capacity < 1:
        raise RecoupError("--capacity must be at least 1")
    if budget_hours is not None and budget_hours <= 0:
        raise RecoupError("--budget-hours must be positive")
    if minutes_per_review <= 0:
        raise RecoupError("--minutes-per-review must be positive")
    _check_out(Path(data), Path(out), overwrite)  # before the work, not only after it
    spec = cluster_option(cluster, skip_invalid)
    if spec:
        bs, wl, s, u = _audit_on_cluster(
            spec, Path(data), s, u, matured, bundle_dir, capacity, budget_hours, minutes_per_review
        )
    else:
        if matured:
            scorer, bs, mw = _score_matured(Path(data), skip_invalid, bundle_dir)
            s, u = pd.Timestamp(mw["since"]), pd.Timestamp(mw["until"])
        else:
            (scorer, bs), mw = score_data(data, s, u, skip_invalid, bundle_dir), None
        wl = build_worklist(bs, scorer, capacity, budget_hours, minutes_per_review, data_dir=Path(data), window=mw)
    wl.summary.update(
        {
            "window": [
                str(s.date()) if s is not None else str(bs.claims["submitted_date"].min())[:10],
                str(u.date()) if u is not None else str(bs.claims["submitted_date"].max())[:10],
            ],
            "rejected": int(len(bs.rejected)),
        }
    )
    t_w = time.perf_counter()
    paths = write_worklist(wl, Path(out), overwrite=overwrite)
    wl.timings["write_report_s"] = time.perf_counter() - t_w
    secs = round(time.perf_counter() - t0, 1)
    sm = wl.summary
    print(
        f"{sm['reviews']} review(s) of {sm['paid_claims']} paid claim(s) in the window: expected "
        f"${sm['expected_dollars_at_capacity']:,.0f} vs ${sm['expected_dollars_random']:,.0f} for random review"
        + (f"; {len(bs.rejected)} claim(s) rejected" if len(bs.rejected) else "")
    )
    if wl.backtest:
        b = wl.backtest
        print(
            f"backtest ({b['n_mature']} matured claims, top {b['capacity']}): caught {b['model']['claims']} "
            f"claims / ${b['model']['dollars']:,.0f} vs random {b['random']['claims']:.1f} / "
            f"${b['random']['dollars']:,.0f}"
        )
    else:
        print(f"no backtest: {no_backtest_reason(sm)}")
    if sm["reviewed_left_out"]:
        print(
            f"{sm['reviewed_left_out']} claim(s) already reviewed left out (their outcomes are in the data's reviews)"
        )
    print(f"wrote {paths['csv']}, {paths['parquet'].name}, {paths['html'].name} ({secs} s)")
    return {
        **sm,
        "paths": {k: str(v) for k, v in paths.items()},
        "backtest": wl.backtest,
        "timings": {**bs.timings, **wl.timings, "total_s": secs},
    }
