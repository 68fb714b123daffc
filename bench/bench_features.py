"""Benchmark of the one feature code path: the training table (batch) and one claim online.

    python bench/bench_features.py [--claims 1000000] [--state-claims 200000] [--online 500] [--skip-batch]
                                   [--skip-scorer] [--data DIR]

Figures (printed, to copy into docs/features.md):

- batch: ``build_feature_table`` over a fabricated history of ``--claims`` claims (~2.5 lines each, with
  recoupments, no coverage/providers), wall time and peak RSS (``resource.getrusage``) of a child
  process that loads the history and builds the table;
- online: ``compute_features`` for one claim at a time (``--online`` claims) against a state built from
  the preceding ``--state-claims`` claims, p50/p99;
- scorer: ``Scorer.score_claims`` (one claim, reasons on, recorded) with a model trained on the state
  history (``training.train.train_model``, bundle and state saved to a temp dir and loaded back), p50/p99.

The history is fabricated with numpy (``bench/bench_rulebook.py``), so no generator is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _history(n: int, data: str | None, tmp: Path):
    from bench_rulebook import fabricate_history

    from features.contract import load_history, write_history

    pq = Path(data) / f"pq{n}" if data else tmp / f"pq{n}"
    if not (pq / "claims.parquet").exists():
        csv = tmp / f"csv{n}"
        fabricate_history(csv, n)
        write_history(load_history(csv), pq, fmt="parquet")
    return pq


def _batch_child(pq: str) -> None:
    from features.contract import load_history
    from features.pipeline import build_feature_table
    from features.rulebook import load_rulebook

    h = load_history(pq)
    rb = load_rulebook()
    t0 = time.perf_counter()
    res, _ = build_feature_table(h, rb)
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB (Linux)
    print(
        json.dumps(
            {
                "claims": len(h.claims),
                "lines": len(h.claim_lines),
                "seconds": dt,
                "peak_rss_gb": rss,
                "hits": len(res.hits),
                "columns": res.X.shape[1],
            }
        )
    )


def bench_batch(pq: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--batch-child", str(pq)], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"batch child failed ({out.returncode}): {out.stderr[-2000:]}")
        return {"failed": out.returncode}
    fig = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"batch build_feature_table: {fig['claims']:,} claims / {fig['lines']:,} lines in "
        f"{fig['seconds']:.1f} s, peak RSS {fig['peak_rss_gb']:.2f} GB",
        flush=True,
    )
    return fig


def _pct(ts: list[float]) -> dict:
    a = np.asarray(ts) * 1000
    return {"p50_ms": float(np.median(a)), "p99_ms": float(np.quantile(a, 0.99)), "mean_ms": float(a.mean())}


def bench_online(pq: Path, n_online: int, skip_scorer: bool) -> dict:
    from features.contract import History, load_history
    from features.pipeline import compute_features
    from features.rulebook import load_rulebook
    from features.engine.state import HistoryState, submission_order

    rb = load_rulebook()
    h = load_history(pq)
    order = submission_order(h.claims)
    n = len(h.claims)
    cut = n - n_online
    past = h.claims[order < cut]
    ids = set(past["claim_id"].astype(str))
    sub = h.claims["submitted_date"][order == cut].iloc[0]
    rec = h.recoupments[h.recoupments["claim_id"].astype(str).isin(ids) & (h.recoupments["recouped_date"] <= sub)]
    hp = History(
        claims=past.reset_index(drop=True),
        claim_lines=h.claim_lines[h.claim_lines["claim_id"].astype(str).isin(ids)].reset_index(drop=True),
        coverage=h.coverage,
        providers=h.providers,
        recoupments=rec.reset_index(drop=True),
    )
    t0 = time.perf_counter()
    state = HistoryState.from_history(hp, rb)
    print(f"state from {len(hp.claims):,} claims built in {time.perf_counter() - t0:.1f} s", flush=True)
    new_ids = h.claims["claim_id"][order >= cut].astype(str).tolist()
    lines_by = {k: v for k, v in h.claim_lines.groupby(h.claim_lines["claim_id"].astype(str), sort=False)}
    cl = h.claims.set_index(h.claims["claim_id"].astype(str))
    items = [(cl.loc[[i]].reset_index(drop=True), lines_by[i].reset_index(drop=True)) for i in new_ids]
    for c, l in items[:20]:
        compute_features(c, l, state, rb)
    ts = []
    for c, l in items:
        t = time.perf_counter()
        compute_features(c, l, state, rb)
        ts.append(time.perf_counter() - t)
    fig = {"state_claims": len(hp.claims), **_pct(ts)}
    print(
        f"online compute_features, 1 claim vs {len(hp.claims):,}-claim state: p50 {fig['p50_ms']:.2f} ms, "
        f"p99 {fig['p99_ms']:.2f} ms",
        flush=True,
    )
    if skip_scorer:
        return {"online": fig}
    return {"online": fig, "scorer": bench_scorer(hp, items)}


def bench_scorer(hp, items) -> dict:
    from serving.scorer import Scorer
    from training.config import load_config
    from training.train import train_model

    cfg = load_config(overrides={})
    # fabricated labels carry little signal: disable early stopping so the model has realistic size
    cfg["likelihood"]["n_estimators"] = 300
    cfg["likelihood"]["early_stopping_rounds"] = 10**6
    cfg["cause"]["n_estimators"] = 100
    cfg["cause"]["early_stopping_rounds"] = 10**6
    t0 = time.perf_counter()
    try:
        result = train_model(hp, config=cfg)
    except Exception as e:  # noqa: BLE001 - a fabricated history may not train; report and skip
        print(f"scorer skipped: training failed ({e})")
        return {"skipped": str(e)}
    print(f"trained a model in {time.perf_counter() - t0:.0f} s", flush=True)
    for est in (result.bundle.likelihood, result.bundle.cause):
        if est is not None:
            est.booster_.best_iteration = 0  # keep (and predict with) every tree, not the early-stopping best
    with tempfile.TemporaryDirectory() as d:
        result.bundle.save(d)
        result.state.save(Path(d) / "state")
        scorer = Scorer.from_dir(d)
        for c, l in items[:20]:
            scorer.score_claims(c, l, explain=True, record=False)
        ts = []
        for c, l in items:
            t = time.perf_counter()
            scorer.score_claims(c, l, explain=True, record=True)
            ts.append(time.perf_counter() - t)
        trees = (
            scorer.bundle.likelihood.booster_.num_trees(),
            scorer.bundle.cause.booster_.num_trees() if scorer.bundle.cause is not None else 0,
        )
    fig = {"trees_likelihood": trees[0], "trees_cause": trees[1], **_pct(ts)}
    print(
        f"Scorer.score_claims, 1 claim with reasons ({trees[0]} likelihood trees, {trees[1]} cause trees): "
        f"p50 {fig['p50_ms']:.2f} ms, p99 {fig['p99_ms']:.2f} ms",
        flush=True,
    )
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", type=int, default=1_000_000)
    ap.add_argument("--state-claims", type=int, default=200_000)
    ap.add_argument("--online", type=int, default=500)
    ap.add_argument("--skip-batch", action="store_true")
    ap.add_argument("--skip-scorer", action="store_true")
    ap.add_argument("--data", default=None, help="folder to keep/reuse the fabricated Parquet histories")
    ap.add_argument("--batch-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.batch_child:
        _batch_child(args.batch_child)
        return 0
    print(
        f"python {sys.version.split()[0]}, pandas {pd.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs",
        flush=True,
    )
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        figures.update(
            bench_online(_history(args.state_claims + args.online, args.data, tmp), args.online, args.skip_scorer)
        )
        if not args.skip_batch:
            figures["batch"] = bench_batch(_history(args.claims, args.data, tmp))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
