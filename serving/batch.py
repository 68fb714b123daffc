"""Batch scoring (``recoup score``): every claim submitted in a window, each with the history known on its
submission date, with the champion model.

How it works
------------
1. The history directory is loaded and validated (:func:`features.contract.load_history`). A contract
   problem stops the run with the contract's listing, unless ``skip_invalid`` is on: then the rows that
   break the contract are set aside and listed in the output as ``rejected`` with the contract's reason
   (``load_history(..., skip_invalid=True)``).
2. Features come from :func:`features.pipeline.build_feature_table` (every claim as of its own
   submission date). Claims submitted after ``until`` cannot influence the features of the window (the
   features are point in time), so they are left out before building features; that saves time.
3. Probabilities, causes and dollars use the same :class:`~features.model.bundle.ModelBundle` calls as
   :meth:`serving.scorer.Scorer.score_features` (the parity test checks the numbers are identical).
   ``score_features`` itself is called only for the rows that get reasons: on every row it would also
   walk the rule hits and unseen levels row by row (about 50 us per row), which is 1 minute per
   million claims.
4. Rule hits are the scorer's own records (:func:`serving.reasons.rule_hit_records`), computed once per
   *distinct* finding (rule, codes, units, limit, line, plan family) instead of once per row, then
   joined per claim. Unseen categorical levels are handled for the (few) rows that have them.
5. Reasons (TreeSHAP, ~0.5-0.8 ms per row) only for the rows ``--explain`` selects: ``none``, ``all``
   or ``top:N`` by expected recoupment dollars.

What can be rejected once the contract passed: a claim whose model outputs are not finite numbers
(e.g. an absurd ``total_charge`` overflowing the dollars), and rows of a chunk whose scoring raised
(the chunk is retried row by row, so one bad claim never takes down the others). Claims outside the
window are not input rows and are not in the output.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.model.bundle import ModelBundle, expected_amount
from features.contract import CAUSES, REJECTED_COLUMNS, History, load_history
from features.errors import RecoupError
from features.outputs import check_file_output, csv_header, parquet_columns, unescape_formulas, write_csv, write_parquet
from features.pipeline import FeatureResult, build_feature_table
from serving.reasons import rule_hit_records
from serving.scorer import Scorer

log = logging.getLogger(__name__)

OUTPUT_COLUMNS = [
    "claim_id",
    "recoupment_probability",
    "risk_band",
    "expected_recoupment_amount",
    "top_cause",
    "top_cause_probability",
    "causes",
    "reasons",
    "rule_hits",
    "model_version",
    "status",
    "reject_reason",
]
CHUNK = 100_000


# ---------------------------------------------------------------------------------------------- model
def load_champion_dir() -> Path:
    """The champion's bundle folder, found like the service finds it (``serving.model_store``):
    ``RECOUP_BUNDLE_DIR``, else the BentoML store, else MLflow's champion (copied into the store)."""
    from serving.model_store import resolve_model

    return resolve_model().path


def load_scorer(bundle_dir: str | Path | None = None) -> Scorer:
    """A scorer for batch work: the bundle without its online history state (batch builds its own)."""
    d = Path(bundle_dir) if bundle_dir is not None else load_champion_dir()
    return Scorer(ModelBundle.load(d), state=None)


# ---------------------------------------------------------------------------------------------- options
def parse_date(value: str | None, name: str) -> pd.Timestamp | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        return pd.Timestamp(pd.to_datetime(str(value), format="%Y-%m-%d"))
    except (ValueError, TypeError):
        raise RecoupError(f"--{name} must be a date YYYY-MM-DD (got {value!r})") from None


def parse_explain(spec: str | None) -> tuple[str, int]:
    """``none`` | ``all`` | ``top:N`` -> (kind, N)."""
    s = (spec or "none").strip().lower()
    if s in ("none", "all"):
        return s, 0
    if s.startswith("top:"):
        try:
            n = int(s[4:])
        except ValueError:
            n = -1
        if n >= 0:
            return "top", n
    raise RecoupError(f"--explain must be none, all or top:N (got {spec!r})")


def _progress(iterable, total: int, desc: str):
    """tqdm on stderr when it is a terminal (or RECOUP_PROGRESS=1); plain iteration otherwise."""
    show = os.environ.get("RECOUP_PROGRESS", "") == "1" or (sys.stderr.isatty() and total > 1)
    if not show:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="chunk", file=sys.stderr, leave=False)


# ---------------------------------------------------------------------------------------------- scoring
@dataclass
class BatchScores:
    """Scores of the window's claims (model part), plus what audit and output need."""

    table: pd.DataFrame  # index claim_id: recoupment_probability, risk_band, expected_recoupment_amount, p_*
    claims: pd.DataFrame  # the scored claims (typed contract rows), aligned with ``table``
    feats: FeatureResult  # features of the (truncated) history; ``lines.ci`` refers to ``history.claims``
    history: History  # the history the features were built from
    positions: np.ndarray  # position of each scored claim in ``history.claims``
    rule_hits: pd.Series  # claim_id -> JSON text of the rule hit records ("[]" when none)
    rejected: pd.DataFrame  # claim_id, reject_reason (contract and scoring rejections)
    model_version: str
    n_read: int
    reasons: dict[str, list[dict]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    data_end: pd.Timestamp | None = None  # last date of the data as given (outcomes are known up to it)
    #: reasons computed elsewhere (the cluster: :mod:`serving.cluster_scoring`): claim ids -> {claim_id: reasons}
    explainer: Callable[[list[str]], dict[str, list[dict]]] | None = None


def window_mask(claims: pd.DataFrame, since: pd.Timestamp | None, until: pd.Timestamp | None) -> np.ndarray:
    d = claims["submitted_date"]
    m = np.ones(len(claims), dtype=bool)
    if since is not None:
        m &= (d >= since).fillna(False).to_numpy(dtype=bool)
    if until is not None:
        m &= (d <= until).fillna(False).to_numpy(dtype=bool)
    return m


def truncate_after(history: History, until: pd.Timestamp | None) -> History:
    """Drop claims submitted after ``until`` (they cannot affect point-in-time features of the window)."""
    if until is None:
        return history
    keep = (history.claims["submitted_date"] <= until).to_numpy()
    if keep.all():
        return history
    claims = history.claims[keep].reset_index(drop=True)
    ids = claims["claim_id"]
    lines = history.claim_lines[history.claim_lines["claim_id"].isin(ids)].reset_index(drop=True)
    rec = history.recoupments
    if rec is not None:
        rec = rec[rec["claim_id"].isin(ids)].reset_index(drop=True)
    rev = history.reviews
    if rev is not None:
        rev = rev[rev["claim_id"].isin(ids)].reset_index(drop=True)
    return History(
        claims=claims,
        claim_lines=lines,
        coverage=history.coverage,
        providers=history.providers,
        recoupments=rec,
        source=history.source,
        reviews=rev,
    )


def model_table(scorer: Scorer, X: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame:
    """The model part of :meth:`Scorer.score_features` (same bundle calls), without hits and reasons."""
    b = scorer.bundle
    M = b.matrix(X)
    p = b.probability(M)
    cp = b.cause_probabilities(M)
    amount = expected_amount(b, p, cp, claims.reset_index(drop=True))
    table = pd.DataFrame(
        {"recoupment_probability": p, "risk_band": scorer.risk_band(p), "expected_recoupment_amount": amount},
        index=X.index,
    )
    for j, c in enumerate(CAUSES):
        table[f"p_{c}"] = cp[:, j]
    return table


def fast_rule_hits(hits: pd.DataFrame, claims: pd.DataFrame, unseen: pd.DataFrame) -> pd.Series:
    """JSON text of :func:`serving.reasons.rule_hit_records` per claim of ``claims`` ("[]" when none).

    The records are produced by ``rule_hit_records`` itself, but once per distinct finding: a finding's
    text and fields depend only on (rule, line, codes, value, limit, ref) and, for MUE, on whether the
    plan is a Medicare one; duplicates of these are common (same code, same units, same limit).
    """
    from features.rulebook import load_rulebook

    ids = claims["claim_id"].astype(str).to_numpy()
    out = pd.Series("[]", index=pd.Index(ids, name="claim_id"), dtype=object)
    rb = load_rulebook()
    frags: list[tuple[np.ndarray, np.ndarray]] = []  # (claim position, fragment) in record order
    h = hits[hits["claim_id"].isin(ids)] if len(hits) else hits
    pos_of = pd.Series(np.arange(len(ids)), index=pd.Index(ids))
    if len(h):
        h = h.reset_index(drop=True)
        plan = pd.Series(claims["plan_type"].astype(str).to_numpy(), index=ids)
        med = plan.reindex(h["claim_id"].astype(str).to_numpy()).fillna("").str.startswith("medicare").to_numpy()
        keycols = ["rule", "line_number", "code", "other_code", "value", "limit", "ref"]
        k = h[keycols].copy()
        k["_med"] = med & (h["rule"].to_numpy() == "mue")
        for c in keycols:  # object columns with None/NaN mixed: group on a text form
            if not pd.api.types.is_numeric_dtype(k[c].dtype):
                k[c] = k[c].astype(str)
        gid = k.groupby(keycols + ["_med"], dropna=False, sort=False).ngroup().to_numpy()
        first = pd.Series(np.arange(len(h))).groupby(gid).first()
        uniq = h.iloc[first.to_numpy()].reset_index(drop=True)
        fake_ids = np.array([f"k{i}" for i in range(len(uniq))], dtype=object)
        uniq["claim_id"] = fake_ids
        fake_claims = pd.DataFrame(
            {
                "claim_id": fake_ids,
                "plan_type": np.where(k["_med"].to_numpy()[first.to_numpy()], "medicare", "commercial"),
            }
        )
        recs = rule_hit_records(uniq, fake_claims, pd.DataFrame(index=pd.Index([], dtype=object)), rb)
        frag_of = np.array([json.dumps(recs[f][0], default=str) for f in fake_ids], dtype=object)
        frags.append((pos_of.reindex(h["claim_id"].astype(str).to_numpy()).to_numpy(), frag_of[gid]))
    if len(unseen):
        anyu = unseen.notna().any(axis=1).to_numpy()
        if anyu.any():
            u = unseen[anyu]
            recs = rule_hit_records(hits.iloc[0:0], claims.iloc[0:0], u, rb)
            upos: list[int] = []
            ufr: list[str] = []
            for cid, lst in recs.items():
                for r in lst:
                    upos.append(pos_of[cid])
                    ufr.append(json.dumps(r, default=str))
            frags.append((np.asarray(upos, dtype=np.int64), np.asarray(ufr, dtype=object)))
    if frags:
        cpos = np.concatenate([f[0] for f in frags]).astype(np.int64)
        text = np.concatenate([f[1] for f in frags])
        order = np.argsort(cpos, kind="stable")  # hits keep their order, unseen come after, per claim
        cpos, text = cpos[order], text[order]
        bounds = np.flatnonzero(np.diff(cpos)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(cpos)]])
        joined = ["[" + ", ".join(text[s:e]) + "]" for s, e in zip(starts, ends)]
        vals = out.to_numpy(copy=True)
        vals[cpos[starts]] = joined
        out = pd.Series(vals, index=out.index, dtype=object)
    return out


SCORE_COLUMNS = ["recoupment_probability", "risk_band", "expected_recoupment_amount"] + [f"p_{c}" for c in CAUSES]


def score_rows(
    scorer: Scorer, X: pd.DataFrame, positions: np.ndarray, claims: pd.DataFrame, progress: bool = True
) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """(model table, failed (claim_id, reason)) of the rows ``positions`` of ``X`` (``claims`` aligned with them),
    in chunks of :data:`CHUNK`; a chunk whose scoring raises is retried row by row, and rows with a non-finite
    output fail. Shared by the single process and the cluster (one call per partition)."""
    n_win = len(positions)
    parts: list[pd.DataFrame] = []
    failed: list[tuple[str, str]] = []
    n_chunks = max(1, -(-n_win // CHUNK))
    chunks = _progress(range(n_chunks), n_chunks, "scoring") if progress else range(n_chunks)
    for k in chunks:
        sl = slice(k * CHUNK, min(n_win, (k + 1) * CHUNK))
        if sl.start >= sl.stop:
            continue
        Xc = X.iloc[positions[sl]]
        cc = claims.iloc[sl]
        try:
            parts.append(model_table(scorer, Xc, cc))
        except Exception as exc:  # retry row by row: one bad claim must not take the others down
            log.warning("scoring a chunk failed (%s); retrying claim by claim", type(exc).__name__)
            for i in range(sl.start, sl.stop):
                try:
                    parts.append(model_table(scorer, X.iloc[positions[i : i + 1]], claims.iloc[i : i + 1]))
                except Exception as exc1:
                    failed.append((str(claims["claim_id"].iat[i]), f"scoring failed: {type(exc1).__name__}"))
        if progress:
            log.info("scored %d / %d", sl.stop, n_win)
    table = pd.concat(parts) if parts else pd.DataFrame(columns=SCORE_COLUMNS)
    # non-finite outputs -> rejected
    num = table[["recoupment_probability", "expected_recoupment_amount"] + [f"p_{c}" for c in CAUSES]]
    finite = np.isfinite(num.to_numpy(dtype=np.float64)).all(axis=1)
    for cid in table.index[~finite]:
        failed.append((str(cid), "the model produced a non-finite score (check total_charge and paid_amount)"))
    return table[finite], failed


def score_window(
    history: History,
    scorer: Scorer,
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
    rejected: pd.DataFrame | None = None,
    n_read: int | None = None,
) -> BatchScores:
    """Model scores and rule hits of every claim submitted in [since, until] (no reasons yet)."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    hist = truncate_after(history, until)
    inwin = window_mask(hist.claims, since, until)
    rej = rejected if rejected is not None else pd.DataFrame(columns=REJECTED_COLUMNS)
    if len(rej):  # contract rejections: only those in the window (or with an unreadable date) are input rows
        d = pd.to_datetime(rej["submitted_date"])
        m = d.isna()
        inside = pd.Series(True, index=rej.index)
        if since is not None:
            inside &= d >= since
        if until is not None:
            inside &= d <= until
        rej = rej[(m | inside).to_numpy()]
    rej = rej[["claim_id", "reject_reason"]].reset_index(drop=True)
    n_win = int(inwin.sum())
    log.info("building features for %d claim(s) (%d in the window)", len(hist.claims), n_win)
    if n_win:
        feats, _ = build_feature_table(hist)
    else:
        feats = FeatureResult(X=pd.DataFrame(), hits=pd.DataFrame(columns=["claim_id", "rule"]), lines=pd.DataFrame())
    timings["features_s"] = time.perf_counter() - t0
    log.info("features in %.1f s", timings["features_s"])
    positions = np.flatnonzero(inwin)
    claims = hist.claims.iloc[positions].reset_index(drop=True)
    t1 = time.perf_counter()
    table, failed = score_rows(scorer, feats.X, positions, claims)
    timings["model_s"] = time.perf_counter() - t1
    if failed:
        rej = pd.concat([rej, pd.DataFrame(failed, columns=["claim_id", "reject_reason"])], ignore_index=True)
    keep = pd.Index(claims["claim_id"].astype(str)).isin(table.index)
    claims = claims[keep].reset_index(drop=True)
    positions = positions[keep]
    t2 = time.perf_counter()
    if len(claims):
        unseen = scorer.bundle.spec.unseen_levels(feats.X.iloc[positions])
        hits = fast_rule_hits(feats.hits, claims, unseen)
    else:
        hits = pd.Series([], dtype=object)
    timings["rule_hits_s"] = time.perf_counter() - t2
    return BatchScores(
        data_end=history.last_date,
        table=table,
        claims=claims,
        feats=feats,
        history=hist,
        positions=positions,
        rule_hits=hits,
        rejected=rej,
        model_version=scorer.model_version,
        n_read=n_read if n_read is not None else n_win + len(rej) - len(failed),
        timings=timings,
    )


def add_reasons(bs: BatchScores, scorer: Scorer, claim_ids: list[str] | np.ndarray | pd.Index) -> None:
    """Reasons for these scored claims, with :meth:`Scorer.score_features` itself (TreeSHAP)."""
    ids = pd.Index(np.asarray(claim_ids, dtype=object).astype(str)).difference(pd.Index(list(bs.reasons)), sort=False)
    if not len(ids):
        return
    t = time.perf_counter()
    if bs.explainer is not None:
        bs.reasons.update(bs.explainer([str(i) for i in ids]))
        bs.timings["reasons_s"] = bs.timings.get("reasons_s", 0.0) + time.perf_counter() - t
        return
    idx = pd.Index(bs.claims["claim_id"].astype(str)).get_indexer(ids)
    idx = np.sort(idx[idx >= 0])
    step = 20_000
    for s in range(0, len(idx), step):
        sub = idx[s : s + step]
        pos = bs.positions[sub]
        X = bs.feats.X.iloc[pos]
        sub_ids = X.index
        h = bs.feats.hits[bs.feats.hits["claim_id"].isin(sub_ids)]
        frame = scorer.score_features(
            FeatureResult(X=X, hits=h, lines=bs.feats.lines), bs.claims.iloc[sub].reset_index(drop=True), explain=True
        )
        bs.reasons.update(frame.reasons)
    bs.timings["reasons_s"] = bs.timings.get("reasons_s", 0.0) + time.perf_counter() - t
    log.info("reasons for %d claim(s) in %.1f s", len(idx), time.perf_counter() - t)


def select_explain(table: pd.DataFrame, explain: str) -> pd.Index:
    kind, n = parse_explain(explain)
    if kind == "none" or not len(table):
        return pd.Index([])
    if kind == "all":
        return table.index
    amt = table["expected_recoupment_amount"].to_numpy()
    order = np.argsort(-amt, kind="stable")[:n]
    return table.index[order]


def causes_json(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(causes JSON text, top cause, top cause probability) per row, as ScoreFrame.records() orders them."""
    pc = table[[f"p_{c}" for c in CAUSES]].to_numpy(dtype=np.float64)
    n = len(pc)
    if n == 0:
        return np.zeros(0, dtype=object), np.zeros(0, dtype=object), np.zeros(0)
    order = np.argsort(-pc, axis=1, kind="stable")
    names = np.array(CAUSES, dtype=object)
    probs = np.round(np.take_along_axis(pc, order, axis=1), 6)
    text = pd.Series(["["] * n, dtype=object)
    for j in range(len(CAUSES)):
        sep = "" if j == 0 else ", "
        p_txt = (
            pd.Series([repr(float(v)) for v in probs[:, j]], dtype=object)
            if n < 1000
            else pd.Series(probs[:, j]).map(repr).astype(object)
        )
        text = (
            text
            + (sep + '{"cause": "')
            + pd.Series(names[order[:, j]], dtype=object)
            + '", "probability": '
            + p_txt
            + "}"
        )
    text = text + "]"
    return text.to_numpy(dtype=object), names[order[:, 0]], probs[:, 0]


def output_frame(bs: BatchScores) -> pd.DataFrame:
    """The SCORE fields flattened, one row per input claim (scored first in claim order, then rejected)."""
    return output_rows(bs.table, bs.reasons, bs.rule_hits, bs.rejected, bs.model_version)


def output_rows(
    t: pd.DataFrame, reasons_of: dict[str, list[dict]], rule_hits: pd.Series, rejected: pd.DataFrame, version: str
) -> pd.DataFrame:
    """:func:`output_frame` from its parts (the cluster path has no :class:`BatchScores`)."""
    causes, top, top_p = causes_json(t)
    reasons = np.array(
        [json.dumps(reasons_of[c], default=str) if c in reasons_of else "" for c in t.index]
        if len(reasons_of)
        else [""] * len(t),
        dtype=object,
    )
    scored = pd.DataFrame(
        {
            "claim_id": t.index.astype(str).to_numpy(dtype=object),
            "recoupment_probability": np.round(t["recoupment_probability"].to_numpy(dtype=np.float64), 6),
            "risk_band": t["risk_band"].astype(str).to_numpy(dtype=object),
            "expected_recoupment_amount": np.round(t["expected_recoupment_amount"].to_numpy(dtype=np.float64), 2),
            "top_cause": top,
            "top_cause_probability": top_p,
            "causes": causes,
            "reasons": reasons,
            "rule_hits": rule_hits.reindex(t.index).fillna("[]").to_numpy(dtype=object),
            "model_version": version,
            "status": "scored",
            "reject_reason": "",
        }
    )
    rej = pd.DataFrame({c: pd.Series([None] * len(rejected), dtype=object) for c in OUTPUT_COLUMNS})
    if len(rejected):
        rej["claim_id"] = rejected["claim_id"].astype(str).to_numpy()
        rej["reject_reason"] = rejected["reject_reason"].astype(str).to_numpy()
        rej["status"] = "rejected"
        rej["model_version"] = version
        for c in ("causes", "reasons", "rule_hits", "risk_band", "top_cause"):
            rej[c] = ""
        for c in ("recoupment_probability", "expected_recoupment_amount", "top_cause_probability"):
            rej[c] = np.nan
    out = pd.concat([scored, rej], ignore_index=True) if len(rej) else scored
    for c in ("recoupment_probability", "expected_recoupment_amount", "top_cause_probability"):
        out[c] = out[c].astype("float64")
    return out[OUTPUT_COLUMNS]


SCORE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith((".parquet", ".pq"))


def write_frame(df: pd.DataFrame, out: str | Path) -> Path:
    """CSV or Parquet by the file's extension, written atomically (:mod:`features.outputs`). The CSV is for
    people (it opens in a spreadsheet): text cells that would run as formulas are escaped."""
    out = Path(out)
    if _is_parquet(out):
        return write_parquet(out, df)
    if out.name.lower().endswith((".csv", ".csv.gz")):
        return write_csv(out, df, for_people=True)
    raise RecoupError(f"--out must end in .csv, .csv.gz or .parquet (got {str(out)!r})")


def is_score_output(path: Path) -> bool:
    """Whether ``path`` is an earlier ``recoup score`` output (its columns are exactly the output's)."""
    cols = parquet_columns(path) if _is_parquet(path) else csv_header(path)
    return cols == OUTPUT_COLUMNS


def read_frame(path: str | Path) -> pd.DataFrame:
    """Read a file written by :func:`write_frame` (claim ids and JSON columns as text; CSV escapes undone)."""
    path = Path(path)
    if _is_parquet(path):
        return pd.read_parquet(path)
    text = [
        "claim_id",
        "causes",
        "reasons",
        "rule_hits",
        "reject_reason",
        "model_version",
        "risk_band",
        "top_cause",
        "status",
        "billing_npi",
        "payer_id",
    ]
    df = pd.read_csv(
        path,
        dtype=dict.fromkeys(text, str),
        keep_default_na=False,
        na_values={"recoupment_probability": [""], "expected_recoupment_amount": [""], "top_cause_probability": [""]},
    )
    return unescape_formulas(df, text)


def _skip_invalid_default() -> bool:
    return os.environ.get("RECOUP_SKIP_INVALID", "").strip().lower() in ("1", "true", "yes")


def load_data(data: str | Path, skip_invalid: bool | None) -> tuple[History, pd.DataFrame, float]:
    """(history, rejected claims, seconds): strictly, or with the invalid claims set aside (``skip_invalid``; None:
    ``RECOUP_SKIP_INVALID``)."""
    skip = _skip_invalid_default() if skip_invalid is None else skip_invalid
    t = time.perf_counter()
    if skip:
        history, rejected = load_history(data, skip_invalid=True)
    else:
        history, rejected = load_history(data), pd.DataFrame(columns=REJECTED_COLUMNS)
    return history, rejected, time.perf_counter() - t


def score_data(
    data: str | Path,
    since: pd.Timestamp | None,
    until: pd.Timestamp | None,
    skip_invalid: bool | None,
    bundle_dir: Path | None,
) -> tuple[Scorer, BatchScores]:
    """Load the champion and a history directory, and score the window (shared by score and audit)."""
    scorer = load_scorer(bundle_dir)
    history, rejected, load_s = load_data(data, skip_invalid)
    bs = score_window(history, scorer, since, until, rejected)
    bs.timings["load_s"] = load_s
    return scorer, bs


def cluster_option(cluster: str | None, skip_invalid: bool | None) -> str | None:
    """The cluster spec of ``--cluster`` / ``RECOUP_DASK_SCHEDULER`` (None: this process, as before)."""
    from features.cluster.client import cluster_spec

    spec = cluster_spec(cluster)
    if spec and skip_invalid:
        raise RecoupError(
            "--skip-invalid is not available with --cluster: ingest the data into a store first "
            "(`recoup ingest`; a store holds only valid claims)"
        )
    return spec


def _score_on_cluster(
    spec: str, data, since, until, explain: str, bundle_dir: Path | None
) -> tuple[pd.DataFrame, str, dict[str, float]]:
    """(output rows, model version, timings) of ``recoup score --cluster``."""
    from features.cluster.client import connect
    from serving.cluster_scoring import ClusterScores, resolve_bundle

    bundle = resolve_bundle(bundle_dir)
    with connect(spec) as client:
        cs = ClusterScores(client, data, bundle, since, until)
        try:
            reasons = cs.reasons(cs.explain_ids(explain))
            table, rule_hits, failed = cs.collect()
        finally:
            cs.release()
    return output_rows(table, reasons, rule_hits, failed, cs.scorer.model_version), cs.scorer.model_version, cs.timings


def score_cli(
    data: Path,
    out: Path,
    since: str | None = None,
    until: str | None = None,
    explain: str = "top:1000",
    skip_invalid: bool | None = None,
    bundle_dir: Path | None = None,
    overwrite: bool = False,
    cluster: str | None = None,
) -> dict:
    """``recoup score``: write one output row per input claim; print counts read/scored/rejected.

    An existing ``out`` is replaced (atomically) only when it is an earlier score output or ``overwrite``.
    ``cluster`` (or ``RECOUP_DASK_SCHEDULER``): features, scores and reasons on a Dask cluster
    (:mod:`serving.cluster_scoring`), the same output."""
    t0 = time.perf_counter()
    s, u = parse_date(since, "since"), parse_date(until, "until")
    if s is not None and u is not None and s > u:
        raise RecoupError("--since is after --until")
    parse_explain(explain)
    out = Path(out)
    if not out.name.lower().endswith(SCORE_SUFFIXES):
        raise RecoupError(f"--out must end in .csv, .csv.gz or .parquet (got {str(out)!r})")
    check_file_output(out, overwrite, is_score_output)  # before the work, not only after it
    spec = cluster_option(cluster, skip_invalid)
    if spec:
        df, version, timings = _score_on_cluster(spec, data, s, u, explain, bundle_dir)
        t_out = time.perf_counter()
    else:
        scorer, bs = score_data(data, s, u, skip_invalid, bundle_dir)
        add_reasons(bs, scorer, select_explain(bs.table, explain))
        t_out = time.perf_counter()
        df, version, timings = output_frame(bs), bs.model_version, bs.timings
    write_frame(df, out)
    timings["output_s"] = time.perf_counter() - t_out
    n_sc = int((df["status"] == "scored").sum())
    summary = {
        "read": len(df),
        "scored": n_sc,
        "rejected": len(df) - n_sc,
        "out": str(out),
        "model_version": version,
        "seconds": round(time.perf_counter() - t0, 1),
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }
    print(
        f"read {summary['read']}, scored {summary['scored']}, rejected {summary['rejected']} -> {out} "
        f"(model version {version}, {summary['seconds']} s)"
    )
    return summary
