"""Forward evaluation across generator worlds (issue #13): quality must hold across worlds, not on one.

Usage::

    .venv/bin/python bench/bench_worlds.py --claims 100000 --worlds baseline,drift,audit-program,ncci-churn,mixed
    .venv/bin/python bench/bench_worlds.py --claims 150000 --seeds 11,12 --worlds all

For each (world, seed): generate the world's history (``world_config``), train as of ``--as-of-days-before-end``
before its end with only what was known then and score the claims submitted in the next ``--window-days``
(``training.backtest.backtest_origin``: ROC-AUC, PR-AUC, dollars captured in a 5% review, ECE, for the model and the
generator's oracle of that world, and the ratios model/oracle). A world with less than 120 days of history before the
as-of date has too few labelled claims to train on: it is listed as skipped. Writes
``bench/results/worlds_<name>.{json,md}``: one row per run and the mean / min / max of each ratio over the runs.
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
sys.path.insert(0, str(ROOT / "bench"))

from bench_forward import KEYS, RATIOS, metric_cells  # noqa: E402

#: history before the as-of date a world needs to be trained on: the labels' delay plus three months of claims
MIN_DAYS_BEFORE_AS_OF = 120


def run(
    world: str, seed: int, claims: int, as_of_days: int, window_days: int, cfg: dict, years: float | None = None
) -> dict:
    """One (world, seed): generate, train as of the date, score the next window; a row of the table.
    ``years`` sets the history length (start = end - years) of every world but ``short``."""
    from features.sources.synthetic.generate import GeneratorConfig, generate_history, world_config

    kw = {}
    if years and world != "short":
        start = pd.Timestamp(GeneratorConfig.end_date) - pd.DateOffset(days=round(years * 365.25) - 1)
        kw["start_date"] = str(start.date())
    gc = world_config(world, n_claims=claims, seed=seed, **kw)
    t0 = time.perf_counter()
    history, oracle = generate_history(gc, progress=lambda msg: logging.info("%s s%d generate: %s", world, seed, msg))
    oracle = oracle.set_index(oracle["claim_id"].astype(str))
    end = history.last_date
    as_of = end - pd.Timedelta(days=as_of_days)
    row = {"world": world, "seed": seed, "history": [gc.start_date, gc.end_date], "as_of": str(as_of.date())}
    before = int((as_of - history.claims["submitted_date"].min()).days)
    if before < MIN_DAYS_BEFORE_AS_OF:
        row["skipped"] = f"{before} days of history before the as-of date (< {MIN_DAYS_BEFORE_AS_OF})"
        logging.info("%s s%d skipped: %s", world, seed, row["skipped"])
        return row
    from training.backtest import backtest_origin

    row.update(backtest_origin(history, oracle, as_of, pd.Timedelta(days=window_days), cfg))
    row["total_s"] = round(time.perf_counter() - t0, 1)
    logging.info("%s s%d: %s", world, seed, {k: round(v, 3) for k, v in row["ratio"].items()})
    return row


def spread(rows: list[dict]) -> dict:
    """Mean, min and max of each ratio (and of the model's ECE) over the runs that were not skipped."""
    done = [r for r in rows if "ratio" in r]
    vals = {k: [r["ratio"][k] for r in done] for k in RATIOS}
    vals["ece"] = [r["model"]["ece"] for r in done]
    return {k: {"mean": sum(v) / len(v), "min": min(v), "max": max(v)} for k, v in vals.items() if v}


def table(rows: list[dict], summary: dict) -> str:
    """Markdown: one line per run (model, oracle, ratio per metric), then the spread of the ratios."""
    head = ["world", "seed", "as_of", "train matured n/pos", "window n/pos"]
    for k in KEYS:
        head += [f"{k} model", f"{k} oracle"] + ([f"{k} ratio"] if k in RATIOS else [])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "ratio" not in r:
            out.append(f"| {r['world']} | {r['seed']} | {r['as_of']} | skipped: {r['skipped']} |")
            continue
        line = [
            r["world"],
            str(r["seed"]),
            r["as_of"],
            f"{r['train_matured_claims']:,}/{r['train_matured_positives']:,}",
            f"{r['window_claims']:,}/{r['window_positives']:,}",
            *metric_cells(r),
        ]
        out.append("| " + " | ".join(line) + " |")
    out += ["", "| ratio model/oracle (ECE: model) | mean | min | max |", "|---|---|---|---|"]
    out += [f"| {k} | {v['mean']:.3f} | {v['min']:.3f} | {v['max']:.3f} |" for k, v in summary.items()]
    return "\n".join(out)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> int:
    from features.sources.synthetic.worlds import WORLDS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", type=int, default=150_000, help="claims per history (10,000-2,000,000)")
    ap.add_argument("--worlds", default="baseline,drift,audit-program,ncci-churn,new-providers,cause-mix,mixed")
    ap.add_argument("--seeds", default="11", help="comma-separated seeds, each run in every world")
    ap.add_argument("--years", type=float, help="history length of every world but short (default: the world's)")
    ap.add_argument("--as-of-days-before-end", type=int, default=581, help="train as of the history end minus this")
    ap.add_argument("--window-days", type=int, default=182, help="score the claims submitted in the next N days")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--name", help="result file stem (default: worlds_<claims>k)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    worlds = list(WORLDS) if args.worlds == "all" else [w.strip() for w in args.worlds.split(",") if w.strip()]
    if bad := [w for w in worlds if w not in WORLDS]:
        ap.error(f"--worlds: unknown {bad}; worlds: {', '.join(WORLDS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if not 10_000 <= args.claims <= 2_000_000:
        ap.error("--claims must be within [10000, 2000000]")
    if args.years is not None and not 1.0 <= args.years <= 15.0:
        ap.error("--years must be within [1, 15]")
    if not 30 <= args.window_days <= 730 or not args.window_days < args.as_of_days_before_end <= 3650:
        ap.error("--window-days must be 30-730 and below --as-of-days-before-end (at most 3650)")

    from training.config import load_config

    cfg = load_config()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    rows = []
    for i, (world, seed) in enumerate((w, s) for w in worlds for s in seeds):
        logging.info(
            "run %d/%d: world %s, seed %d, %d claims", i + 1, len(worlds) * len(seeds), world, seed, args.claims
        )
        rows.append(run(world, seed, args.claims, args.as_of_days_before_end, args.window_days, cfg, args.years))
    summary = spread(rows)
    name = args.name or f"worlds_{args.claims // 1000}k" + (f"_{args.years:g}y" if args.years else "")
    result = {
        "command": " ".join(["bench/bench_worlds.py", *sys.argv[1:]]),
        "date": pd.Timestamp.now().isoformat(timespec="seconds"),
        "claims": args.claims,
        "window_days": args.window_days,
        "as_of_days_before_end": args.as_of_days_before_end,
        "years": args.years,
        "load_avg_before_after": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
        "cpus": os.cpu_count(),
        "total_s": round(time.perf_counter() - t0, 1),
        "runs": rows,
        "spread": summary,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    _atomic_write(args.out / f"{name}.json", json.dumps(result, indent=2) + "\n")
    md = (
        f"# Forward evaluation across worlds: {args.claims:,} claims per history\n\n"
        f"`{result['command']}` on {result['date']} ({result['cpus']} CPUs, load "
        f"{result['load_avg_before_after'][0]} -> {result['load_avg_before_after'][1]}, {result['total_s']} s)\n\n"
        f"Each run trains as of {args.as_of_days_before_end} days before its history's end and scores the claims "
        f"submitted in the next {args.window_days} days (matured claims only), next to that world's oracle. "
        "train matured n/pos = claims with a known label at the as-of date / positives; window n/pos = scored "
        "claims / recouped within the horizon; dollars at 5% = recouped dollars in the top 5% by expected dollars.\n\n"
        + table(rows, summary)
        + "\n"
    )
    _atomic_write(args.out / f"{name}.md", md)
    print(table(rows, summary))
    print(f"wrote {args.out / name}.json and .md ({result['total_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
