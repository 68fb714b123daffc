"""Does the audit loop help the model? (issue #17): reviews of the top of a worklist, simulated on generated data,
fed back as the store reads them, compared forward in time.

Usage::

    .venv/bin/python bench/bench_reviews.py --claims 120000 --seeds 11 12 --origins 2

The generator knows which claims its payers recoup within the horizon (``facts["recoupments"]``: every drawn
recoupment, also those after the data's end). Every month, an audit team reviews the top ``--share`` of the claims
paid that month, ranked by a noisy stand-in for a deployed model (the oracle's expected dollars x a log-normal error
of sigma ``--noise``), 14 to 45 days after payment: long before the payer's horizon ends. A claim the payer will
recoup is found (``refunded``, the recoupment's amount and cause) with probability 1 - ``--miss``; already recouped
on file, it is ``error_found`` without an amount; otherwise the reviewer records ``no_issue`` (a missed error too).

Three arms, each trained as of every origin (``train_model`` truncates everything to what was known then) and
measured on the claims submitted in the following ``--window-days`` with labels from the full history (matured
claims only; ``training.backtest.backtest_origin``, the code path of ``recoup backtest``):

- ``none``: the history without reviews;
- ``refunds``: the history as a store reads it with the reviews (refunds are recoupments dated at the review:
  ``features.contract.reviews.apply_reviews``), ``labels.reviews: false``;
- ``evidence``: the same history, ``labels.reviews: true`` (a claim whose review confirms its label is mature
  from the review on: ``training.reviews``).

Reports ROC-AUC, PR-AUC and dollars captured in a 5% review for each arm and origin; writes
``bench/results/reviews_<claims>k.{json,md}``. Progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = ("none", "refunds", "evidence")
KEYS = ("roc_auc", "pr_auc", "dollars_at_5pct")


def simulate_reviews(
    history, oracle: pd.DataFrame, truth: pd.DataFrame, share: float, noise: float, miss: float, seed: int
) -> pd.DataFrame:
    """Review outcomes in the contract's ``reviews`` columns (raw values), as described in the module's docstring."""
    rng = np.random.default_rng(seed)
    c = history.claims[history.claims["paid_date"].notna()]
    ids = c["claim_id"].astype(str).to_numpy()
    o = oracle.reindex(ids)
    score = o["true_probability"].to_numpy() * o["expected_amount"].to_numpy() * rng.lognormal(0, noise, len(ids))
    frame = pd.DataFrame({"claim_id": ids, "paid": c["paid_date"].to_numpy(), "score": score})
    frame["month"] = frame["paid"].dt.to_period("M")
    rank = frame.groupby("month")["score"].rank(ascending=False, method="first")
    size = frame.groupby("month")["score"].transform("size")
    top = frame[rank <= np.ceil(share * size)].copy()
    top["reviewed_at"] = top["paid"] + pd.to_timedelta(rng.integers(14, 46, len(top)), unit="D")
    top = top[top["reviewed_at"] <= history.last_date]
    t = truth.reindex(top["claim_id"])
    positive = t["amount"].notna().to_numpy()
    found = positive & (rng.random(len(top)) >= miss)
    r = history.recoupments
    first = r.groupby(r["claim_id"].astype(str))["recouped_date"].min().reindex(top["claim_id"]).to_numpy()
    on_file = ~pd.isna(first) & (first <= top["reviewed_at"].to_numpy())
    refund = found & ~on_file
    outcome = np.where(refund, "refunded", np.where(found & on_file, "error_found", "no_issue"))
    return pd.DataFrame(
        {
            "claim_id": top["claim_id"].to_numpy(),
            "reviewed_at": top["reviewed_at"].dt.strftime("%Y-%m-%d").to_numpy(),
            "outcome": outcome,
            "refund_amount": np.where(refund, np.round(t["amount"].to_numpy(), 2), np.nan),
            "cause": np.where(found, t["cause"].to_numpy(), None),
            "carc": None,
            "reviewer": [f"r{i % 5}" for i in range(len(top))],
        }
    )


def with_reviews(history, raw: pd.DataFrame):
    """The history as a store holding these reviews reads it (typed reviews; refunds among the recoupments)."""
    from dataclasses import replace

    from features.contract import validate_table
    from features.contract.reviews import apply_reviews

    typed, problems, _ = validate_table(raw, "reviews", "reviews")
    assert not problems, [p.describe() for p in problems]
    out, counts = apply_reviews(replace(history, reviews=typed))
    return out, counts


def run_seed(args, seed: int) -> dict:
    from features.pipeline import build_feature_table
    from features.sources.synthetic.generate import GeneratorConfig, generate_with_facts
    from training.backtest import backtest_origin
    from training.config import load_config, with_n_estimators

    gc = GeneratorConfig(n_claims=args.claims, seed=seed)
    logging.info("seed %d: generating %d claims", seed, args.claims)
    history, oracle, facts = generate_with_facts(gc, progress=lambda msg: logging.info("generate: %s", msg))
    oracle = oracle.set_index(oracle["claim_id"].astype(str))
    rec = facts["recoupments"]
    truth = rec[rec["within_horizon"]].drop_duplicates("claim_id").set_index("claim_id")[["amount", "cause"]]
    raw = simulate_reviews(history, oracle, truth, args.share, args.noise, args.miss, seed)
    reviewed, counts = with_reviews(history, raw)
    outcomes = raw["outcome"].value_counts().to_dict()
    logging.info("seed %d: %d reviews %s; store view: %s", seed, len(raw), outcomes, counts)
    histories = {"none": history, "refunds": reviewed, "evidence": reviewed}
    feats = {"none": build_feature_table(history)[0]}
    feats["refunds"] = feats["evidence"] = build_feature_table(reviewed)[0]
    end = history.last_date
    window = pd.Timedelta(days=args.window_days)
    origins = sorted(
        end - pd.Timedelta(days=args.as_of_days_before_end + i * args.step_days) for i in range(args.origins)
    )
    rows = []
    for origin in origins:
        row: dict = {"seed": seed, "as_of": str(origin.date())}
        for arm in ARMS:
            cfg = with_n_estimators(load_config(), args.n_estimators)
            cfg["labels"]["reviews"] = arm == "evidence"
            t0 = time.perf_counter()
            r = backtest_origin(histories[arm], oracle, origin, window, cfg, feats=feats[arm])
            row[arm] = {k: r["model"][k] for k in KEYS}
            row[arm]["seconds"] = round(time.perf_counter() - t0, 1)
            row["oracle"] = {k: r["oracle"][k] for k in KEYS} if "oracle" in r else None
            row["window_claims"], row["window_positives"] = r["window_claims"], r["window_positives"]
            logging.info("seed %d origin %s %s: %s", seed, row["as_of"], arm, row[arm])
        row["reviews_by_as_of"] = int((pd.to_datetime(raw["reviewed_at"]) <= origin).sum())
        rows.append(row)
    return {"seed": seed, "reviews": len(raw), "outcomes": outcomes, "store_view": counts, "origins": rows}


def table(rows: list[dict], markdown: bool) -> str:
    head = ["seed", "as_of", "reviews by then", "window n/pos"]
    for k in KEYS:
        head += [f"{k} {arm}" for arm in ARMS]
    body = []
    for r in rows:
        line = [
            str(r["seed"]),
            r["as_of"],
            f"{r['reviews_by_as_of']:,}",
            f"{r['window_claims']:,}/{r['window_positives']:,}",
        ]
        for k in KEYS:
            fmt = "{:,.0f}" if k.startswith("dollars") else "{:.4f}"
            line += [fmt.format(r[arm][k]) for arm in ARMS]
        body.append(line)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(out + ["| " + " | ".join(b) + " |" for b in body])
    w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    return "\n".join("  ".join(c.rjust(w[i]) for i, c in enumerate(line)) for line in [head, *body])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", type=int, default=120_000, help="claims per generated history (at most 200,000)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[11])
    ap.add_argument("--origins", type=int, default=2, help="as-of dates per seed, stepping back by --step-days")
    ap.add_argument("--as-of-days-before-end", type=int, default=581, help="the latest origin")
    ap.add_argument("--step-days", type=int, default=91)
    ap.add_argument("--window-days", type=int, default=182)
    ap.add_argument("--share", type=float, default=0.03, help="share of each month's paid claims reviewed")
    ap.add_argument("--noise", type=float, default=0.7, help="sigma of the worklist ranking's log-normal error")
    ap.add_argument("--miss", type=float, default=0.2, help="chance a reviewer misses a claim's error")
    ap.add_argument("--n-estimators", type=int, default=400, help="tree cap of the likelihood model")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    if not 1_000 <= args.claims <= 200_000:
        ap.error("--claims must be in [1000, 200000] (the box is shared)")
    if not (0 < args.share <= 0.5 and 0 <= args.miss < 1 and 0 <= args.noise <= 5):
        ap.error("--share in (0, 0.5], --miss in [0, 1), --noise in [0, 5]")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    for name in ("training", "features", "lightgbm"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from features.outputs import write_text

    load0 = os.getloadavg()
    t0 = time.perf_counter()
    seeds = [run_seed(args, s) for s in args.seeds]
    rows = [r for s in seeds for r in s["origins"]]
    diffs = {
        f"{k} {a}-{b}": [round(r[a][k] - r[b][k], 4) for r in rows]
        for k in KEYS
        for a, b in (("refunds", "none"), ("evidence", "refunds"), ("evidence", "none"))
    }
    result = {
        "command": " ".join(["bench/bench_reviews.py", *sys.argv[1:]]),
        "date": pd.Timestamp.now().isoformat(timespec="seconds"),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "load_avg_before_after": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
        "total_s": round(time.perf_counter() - t0, 1),
        "seeds": seeds,
        "differences": {k: {"values": v, "min": min(v), "max": max(v)} for k, v in diffs.items()},
    }
    name = f"reviews_{args.claims // 1000}k"
    write_text(args.out / f"{name}.json", json.dumps(result, indent=2, default=str))
    md = (
        f"# Review outcomes fed back: {args.claims:,} claims, seeds {args.seeds}\n\n"
        f"`{result['command']}` on {result['date']} ({result['cpus']} CPUs, load "
        f"{result['load_avg_before_after'][0]} -> {result['load_avg_before_after'][1]}, {result['total_s']} s)\n\n"
        + table(rows, markdown=True)
        + "\n\nDifferences (min .. max over seeds and origins):\n\n"
        + "\n".join(f"- {k}: {d['min']:+.4f} .. {d['max']:+.4f}" for k, d in result["differences"].items())
        + "\n"
    )
    write_text(args.out / f"{name}.md", md)
    print(table(rows, markdown=False))
    for k, d in result["differences"].items():
        print(f"{k}: {d['min']:+.4f} .. {d['max']:+.4f}")
    print(f"wrote {args.out / name}.json and .md ({result['total_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
