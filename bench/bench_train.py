"""Benchmark training: time and peak memory of features + both models at several sizes, and model
quality against the generator's oracle on the latest matured window.

Usage::

    .venv/bin/python bench/bench_train.py [--sizes 250000 500000 1000000] [--seed 7] [--out bench/results]

Each size runs in a fresh subprocess so peak memory (ru_maxrss) is that size's own. MLflow logging is
not included in the timed part (it is I/O of plots and the state); everything `recoup train` computes is.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def one(n: int, seed: int, labels: str = "immature") -> dict:
    from features.sources.synthetic.generate import GeneratorConfig, generate_history
    from training.config import load_config
    from training.metrics import oracle_metrics
    from training.train import train_model

    t0 = time.perf_counter()
    history, oracle = generate_history(GeneratorConfig(n_claims=n, seed=seed))
    t_gen = time.perf_counter() - t0
    cfg = load_config()
    cfg["labels"]["immature"] = labels == "immature"
    t1 = time.perf_counter()
    result = train_model(history, config=cfg)
    t_train = time.perf_counter() - t1
    o = oracle.set_index(oracle["claim_id"].astype(str)).reindex(result.scored.index)
    om = oracle_metrics(result.scored, o, cfg["capacities"])
    m = result.metrics
    return {
        "claims": n,
        "labels": labels,
        "train_claims": int(result.data_summary.get("n_train", 0)),
        "lines": int(len(history.claim_lines)),
        "generate_s": round(t_gen, 1),
        "features_s": round(result.timings["features_s"], 1),
        "models_s": round(result.timings["models_s"], 1),
        "train_total_s": round(t_train, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "test_claims": int(m["n"]),
        "test_positive_rate": round(m["positive_rate"], 4),
        "roc_auc": round(m["roc_auc"], 4),
        "oracle_roc_auc": round(om["roc_auc"], 4),
        "pr_auc": round(m["pr_auc"], 4),
        "oracle_pr_auc": round(om["pr_auc"], 4),
        "ece": round(m["ece"], 4),
        "cause_top1": round(m["cause_top1_accuracy"], 4),
        "oracle_cause_top1": round(om["cause_top1_accuracy"], 4),
        "ratio_roc_auc": round(m["roc_auc"] / om["roc_auc"], 3),
        "ratio_pr_auc": round(m["pr_auc"] / om["pr_auc"], 3),
        "ratio_cause_top1": round(m["cause_top1_accuracy"] / om["cause_top1_accuracy"], 3),
        "trees": result.bundle.meta["n_trees_likelihood"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--labels",
        nargs="+",
        default=["immature"],
        choices=["immature", "matured"],
        help="label policies to run back to back per size (matured = before issue #13)",
    )
    ap.add_argument("--name", default="train", help="result file stem in --out")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.seed, args.labels[0])))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        for labels in args.labels:
            print(f"== {n:,} claims, {labels} labels", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                env = {
                    **os.environ,
                    "RECOUP_HOME": tmp,
                    "MLFLOW_DISABLE_TELEMETRY": "true",
                    "BENTOML_DO_NOT_TRACK": "true",
                }
                cmd = [sys.executable, __file__, "--one", str(n), "--seed", str(args.seed), "--labels", labels]
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["load_avg"] = round(os.getloadavg()[0], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
