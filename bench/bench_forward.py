"""Forward evaluation (issue #13): train as of a date with only what was known then, score the claims
submitted in the following window, compare with what happened, next to the generator's oracle.

Usage::

    .venv/bin/python bench/bench_forward.py --claims 200000 --seed 11 --as-of-days-before-end 581 --window-days 182
    .venv/bin/python bench/bench_forward.py --claims 200000 --seed 11 --years 5 --origins 3

For each origin (as-of date = history end - ``--as-of-days-before-end`` - i x ``--step-days``):
``train_model(history, as_of)`` (it truncates the history itself: claims submitted by then, payments and
recoupments dated by then, labels matured by then); then ``evaluate_history`` scores the claims submitted in
(as_of, as_of + window] with point-in-time features and labels them from the FULL history (matured claims
only); the oracle's ``true_probability`` is measured on the same claims with ``oracle_metrics``. One origin is
``training.backtest.backtest_origin``, the code path of ``recoup backtest`` (features built once). Reported:
ROC-AUC, PR-AUC (average precision), dollars captured in a 5% review (ranked by expected dollars), ECE (10
equal-count bins), for the model and the oracle, and the ratios model/oracle. Writes
``bench/results/forward_<case>.{json,md}``; progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEYS = ("roc_auc", "pr_auc", "dollars_at_5pct", "ece")  # model, oracle; ratios for the first three
RATIOS = ("roc_auc", "pr_auc", "dollars_at_5pct")


def metric_cells(r: dict) -> list[str]:
    """Model, oracle and (for :data:`RATIOS`) ratio of each of :data:`KEYS` for one result row."""
    cells = []
    for k in KEYS:
        fmt = "{:,.0f}" if k.startswith("dollars") else "{:.4f}"
        cells += [fmt.format(r["model"][k]), fmt.format(r["oracle"][k])]
        cells += [f"{r['ratio'][k]:.3f}"] if k in RATIOS else []
    return cells


def table(rows: list[dict], markdown: bool) -> str:
    """One line per origin: window, training data, model / oracle / ratio per metric."""
    head = ["as_of", "window", "train matured n/pos", "window n/pos", "matured"]
    for k in KEYS:
        head += [f"{k} model", f"{k} oracle"] + ([f"{k} ratio"] if k in RATIOS else [])
    body = []
    for r in rows:
        line = [
            r["as_of"],
            "..".join(r["window"]),
            f"{r['train_matured_claims']:,}/{r['train_matured_positives']:,}",
            f"{r['window_claims']:,}/{r['window_positives']:,}",
            f"{r['window_paid_matured_share']:.1%}",
            *metric_cells(r),
        ]
        body.append(line)
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(out + ["| " + " | ".join(b) + " |" for b in body])
    w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    return "\n".join("  ".join(c.rjust(w[i]) for i, c in enumerate(line)) for line in [head, *body])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--years", type=float, help="history length (start = end - years); default: the generator's")
    ap.add_argument("--end-date", default=None, help="history end (default: the generator's)")
    ap.add_argument("--as-of-days-before-end", type=int, default=581, help="latest origin")
    ap.add_argument("--window-days", type=int, default=182)
    ap.add_argument("--origins", type=int, default=1, help="number of as-of dates, stepping back")
    ap.add_argument("--step-days", type=int, help="days between origins (default: --window-days)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--name", help="result file stem (default: forward_<claims>k_s<seed>_<years>y)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    from features.outputs import write_text
    from features.sources.synthetic.generate import GeneratorConfig, generate_history
    from training.backtest import run_backtest
    from training.config import load_config

    gc = GeneratorConfig(n_claims=args.claims, seed=args.seed)
    if args.end_date:
        gc.end_date = args.end_date
    if args.years:
        start = pd.Timestamp(gc.end_date) - pd.DateOffset(days=round(args.years * 365.25) - 1)
        gc.start_date = str(start.date())
    step = args.step_days or args.window_days
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    logging.info("generating %d claims (seed %d, %s..%s)", gc.n_claims, gc.seed, gc.start_date, gc.end_date)
    history, oracle = generate_history(gc, progress=lambda msg: logging.info("generate: %s", msg))
    oracle = oracle.set_index(oracle["claim_id"].astype(str))
    cfg = load_config()
    end = history.last_date
    origins = sorted(end - pd.Timedelta(days=args.as_of_days_before_end + i * step) for i in range(args.origins))
    window = pd.Timedelta(days=args.window_days)

    def ratios(i: int, row: dict) -> None:
        logging.info("origin %s: %s", row["as_of"], {k: round(row["ratio"][k], 3) for k in RATIOS})

    rows = run_backtest(history, oracle, origins, window, cfg, on_origin=ratios)
    years = round((pd.Timestamp(gc.end_date) - pd.Timestamp(gc.start_date)).days / 365.25)
    name = args.name or f"forward_{args.claims // 1000}k_s{args.seed}_{years}y"
    result = {
        "command": " ".join(["bench/bench_forward.py", *sys.argv[1:]]),
        "date": pd.Timestamp.now().isoformat(timespec="seconds"),
        "claims": args.claims,
        "seed": args.seed,
        "history": [gc.start_date, gc.end_date],
        "last_date": str(end.date()),
        "window_days": args.window_days,
        "load_avg_before_after": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
        "total_s": round(time.perf_counter() - t0, 1),
        "origins": rows,
    }
    write_text(args.out / f"{name}.json", json.dumps(result, indent=2))
    md = (
        f"# Forward evaluation: {args.claims:,} claims, seed {args.seed}, history {gc.start_date}..{gc.end_date}\n\n"
        f"`{result['command']}` on {result['date']} ({result['cpus']} CPUs, load "
        f"{result['load_avg_before_after'][0]} -> {result['load_avg_before_after'][1]}, {result['total_s']} s)\n\n"
        "train matured n/pos = claims with a known label at the as-of date / positives among them (train + valid + "
        "test slices); window n/pos = matured claims submitted in the window / recouped within the horizon; "
        "matured = share of the window's paid claims whose horizon ended by the history's end (only they are "
        "scored); dollars at 5% = recouped dollars in the top 5% by expected dollars.\n\n"
        + table(rows, markdown=True)
        + "\n"
    )
    write_text(args.out / f"{name}.md", md)
    print(table(rows, markdown=False))
    print(f"wrote {args.out / name}.json and .md ({result['total_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
