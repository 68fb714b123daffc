"""Learning from immature labels (issue #13), measured forward: the same origins trained three ways, back to back.

Variants: ``matured`` (labels only for claims whose horizon ended: the behaviour before), ``immature-global``
(every claim paid >= min_followup_days before the as-of date, offset log F(follow-up) with one lag
distribution), ``immature-payer`` (the same with per-payer lag distributions: the default). Each origin: train as
of it, score the next ``--window-days`` of submissions on matured labels, next to the oracle
(``training.backtest.backtest_origin``). Writes ``bench/results/immature_<case>.{json,md}``.

    .venv/bin/python bench/bench_immature.py --claims 200000 --seed 11 --as-of-days-before-end 581
    .venv/bin/python bench/bench_immature.py --claims 200000 --seed 11 --years 5 --origins 3
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS: dict[str, dict] = {
    "matured": {"labels": {"immature": False}},
    "immature-global": {"labels": {"immature": True, "lag_by": "none"}},
    "immature-payer": {"labels": {"immature": True, "lag_by": "payer"}},
    "immature-payer-split10-10": {"split": {"valid_fraction": 0.10, "test_fraction": 0.10}},
    "immature-payer-split10-05": {"split": {"valid_fraction": 0.10, "test_fraction": 0.05}},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--years", type=float, help="history length (default: the generator's)")
    ap.add_argument("--as-of-days-before-end", type=int, default=581)
    ap.add_argument("--window-days", type=int, default=182)
    ap.add_argument("--origins", type=int, default=1)
    ap.add_argument("--step-days", type=int)
    ap.add_argument(
        "--variants", default="matured,immature-global,immature-payer", help="comma-separated, of " + ",".join(VARIANTS)
    )
    ap.add_argument("--name", help="result file stem (default: immature_<claims>k_s<seed>_<years>y)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from features.pipeline import build_feature_table
    from features.sources.synthetic.generate import GeneratorConfig, generate_history
    from training.backtest import backtest_origin
    from training.config import load_config

    gc = GeneratorConfig(n_claims=args.claims, seed=args.seed)
    if args.years:
        gc.start_date = str((pd.Timestamp(gc.end_date) - pd.DateOffset(days=round(args.years * 365.25) - 1)).date())
    history, oracle = generate_history(gc, progress=lambda m: logging.info("generate: %s", m))
    oracle = oracle.set_index(oracle["claim_id"].astype(str))
    step = args.step_days or args.window_days
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    feats, _ = build_feature_table(history)  # point-in-time, the same for every origin and variant
    rows = []
    for i in range(args.origins):
        as_of = history.last_date - pd.Timedelta(days=args.as_of_days_before_end + i * step)
        for name in args.variants.split(","):
            cfg = load_config(overrides=copy.deepcopy(VARIANTS[name]))
            logging.info("origin %s, variant %s", as_of.date(), name)
            r = backtest_origin(history, oracle, as_of, pd.Timedelta(days=args.window_days), cfg, feats=feats)
            r["variant"] = name
            rows.append(r)
            logging.info("  %s: %s ece %.4f", name, {k: round(v, 3) for k, v in r["ratio"].items()}, r["model"]["ece"])
    years = round((pd.Timestamp(gc.end_date) - pd.Timestamp(gc.start_date)).days / 365.25)
    name = args.name or f"immature_{args.claims // 1000}k_s{args.seed}_{years}y"
    head = "| as_of | variant | train n (matured) | window n/pos | ROC ratio | PR ratio | $@5% ratio | ECE | train s |"
    lines = [head, "|" + "---|" * 9]
    for r in sorted(rows, key=lambda r: (r["as_of"], list(VARIANTS).index(r["variant"]))):
        lines.append(
            f"| {r['as_of']} | {r['variant']} | {sum(r['train_slices'].values()):,} ({r['train_matured_claims']:,}) | "
            f"{r['window_claims']:,}/{r['window_positives']:,} | {r['ratio']['roc_auc']:.3f} | "
            f"{r['ratio']['pr_auc']:.3f} | {r['ratio']['dollars_at_5pct']:.3f} | {r['model']['ece']:.4f} | "
            f"{r['train_s']} |"
        )
    cmd = " ".join(["bench/bench_immature.py", *sys.argv[1:]])
    total = round(time.perf_counter() - t0, 1)
    md = (
        f"# Immature labels, forward: {args.claims:,} claims, seed {args.seed}, {gc.start_date}..{gc.end_date}\n\n"
        f"`{cmd}` on {pd.Timestamp.now().isoformat(timespec='seconds')} ({os.cpu_count()} CPUs, load "
        f"{load0[0]:.2f} -> {os.getloadavg()[0]:.2f}, {total} s)\n\n"
        "train n = claims in the train+valid+test slices (matured among them); ratios = model / oracle on the "
        f"claims submitted in the {args.window_days} days after the as-of date (matured labels).\n\n"
        + "\n".join(lines)
        + "\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps({"command": cmd, "rows": rows}, indent=2))
    (args.out / f"{name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
