"""Drift watch on a generated history (issue #13): train as of a date, then run the monitor's comparison
(``training.monitor.monitor_history``) on the claims submitted after it, against the train slice and against the
model's latest matured window, and once more with the billing lag of the window's claims shifted (service dates
``--shift-days`` earlier): what fires on a history whose world did not change, what fires when it did, and how long
the monitor takes.

Usage::

    .venv/bin/python bench/bench_monitor.py --claims 200000 --seed 11 --as-of-days-before-end 182

Writes ``bench/results/monitor_<claims>k_s<seed>.json``; progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(bundle, history, settings: dict, reference: str) -> dict:
    from training.monitor import monitor_history

    t0 = time.perf_counter()
    r = monitor_history(bundle, history, settings, reference=reference)
    sm = r["summary"]
    top = r["features"][r["features"]["top"]].sort_values("rank")
    return {
        "reference": reference,
        "monitor_s": round(time.perf_counter() - t0, 1),
        "n_ref": sm["n_ref"],
        "n_now": sm["n_now"],
        "n_labelled_now": sm["n_labelled_now"],
        "status": sm["status"],
        "reasons": sm["reasons"],
        "watch": sm["watch"],
        "psi_score": round(sm["score"]["psi"], 4),
        "psi_top_features": {f: round(p, 3) for f, p in zip(top["feature"], top["psi"])},
        "features_psi_over_0.25": int((r["features"]["psi"] >= 0.25).sum()),
        "features": int(len(r["features"])),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--as-of-days-before-end", type=int, default=182)
    ap.add_argument("--shift-days", type=int, default=60)
    args = ap.parse_args()
    os.environ.setdefault("RECOUP_HOME", str(ROOT / "work" / "bench_monitor"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    from features.sources.synthetic.generate import GeneratorConfig, generate_history
    from training.config import load_config
    from training.monitor import monitor_settings
    from training.train import train_model

    history, _ = generate_history(GeneratorConfig(n_claims=args.claims, seed=args.seed))
    as_of = history.last_date - pd.Timedelta(days=args.as_of_days_before_end)
    cfg = load_config()
    t0 = time.perf_counter()
    bundle = train_model(history, as_of=as_of, config=cfg).bundle
    train_s = time.perf_counter() - t0
    settings = monitor_settings(cfg)
    rows = [run(bundle, history, settings, ref) for ref in ("train", "test")]
    lines = history.claim_lines.copy()
    later = set(history.claims.loc[history.claims["submitted_date"] > as_of, "claim_id"].astype(str))
    moved = lines["claim_id"].astype(str).isin(later)
    lines.loc[moved, "service_date"] = lines.loc[moved, "service_date"] - pd.Timedelta(days=args.shift_days)
    shifted = dataclasses.replace(history, claim_lines=lines)
    rows += [{**run(bundle, shifted, settings, ref), "shifted_days": args.shift_days} for ref in ("train", "test")]
    out = {
        "claims": args.claims,
        "seed": args.seed,
        "as_of": str(as_of.date()),
        "history": [str(history.claims["submitted_date"].min().date()), str(history.last_date.date())],
        "train_s": round(train_s, 1),
        "runs": rows,
    }
    path = ROOT / "bench" / "results" / f"monitor_{args.claims // 1000}k_s{args.seed}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
