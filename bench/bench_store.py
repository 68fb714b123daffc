"""The claims store at scale (docs/store.md, "Figures"): appending a day's claims to a big store, and reading the
store for training against today's single-folder Parquet history, back to back in one run.

Usage::

    python bench/bench_store.py [--claims 1000000] [--day 10000] [--seed 11] [--repeats 3] [--out FILE.json]

Steps: the synthetic generator's history of ``--claims`` claims (cached as a Parquet history folder under
work/bench/, generation takes minutes at 1M) is split into a base (all but the ``--day`` latest claims, with their
lines and recoupments; coverage and providers) and a day (the latest claims and their lines and recoupments),
each written as contract Parquet files. The base is ingested into a new store (timed), then the day is appended
(timed; the target is <= 5 s at 1M claims) and every part file of the base is checked unchanged (same inode, size
and mtime: no old partition rewritten). Then, ``--repeats`` times, alternating: ``load_history`` of the
single-folder Parquet history and ``load_history`` of the store (same claims), and a store read of one year
(``read_store(since, until)``, partition pruning). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from features.contract import History, load_history, write_history  # noqa: E402

CACHE = ROOT / "work" / "bench"


def history_folder(n: int, seed: int) -> Path:
    """The generator's history of ``n`` claims as a Parquet folder (cached)."""
    folder = CACHE / f"history_{n}_s{seed}"
    if (folder / "claims.parquet").exists():
        return folder
    from features.sources.synthetic.generate import GeneratorConfig, generate_history

    t0 = time.perf_counter()
    history, _ = generate_history(GeneratorConfig(n_claims=n, seed=seed))
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_history(history, tmp, fmt="parquet")
    os.replace(tmp, folder)
    print(f"generated {n:,} claims in {time.perf_counter() - t0:.0f} s -> {folder}", file=sys.stderr)
    return folder


def split(history: History, day: int, out: Path) -> tuple[Path, Path]:
    """(base folder, day folder): the ``day`` latest claims (by submitted_date) apart."""
    claims = history.claims.sort_values(["submitted_date", "claim_id"], kind="stable")
    day_ids = set(claims["claim_id"].iloc[-day:])

    def tables(in_day: bool) -> dict:
        pick = {
            name: df[df["claim_id"].isin(day_ids) == in_day]
            for name, df in (
                ("claims", history.claims),
                ("claim_lines", history.claim_lines),
                ("recoupments", history.recoupments),
            )
            if df is not None
        }
        if not in_day:
            pick.update(coverage=history.coverage, providers=history.providers)
        return {k: v for k, v in pick.items() if v is not None}

    base, today = out / "base", out / "day"
    write_history(tables(False), base, fmt="parquet")
    write_history(tables(True), today, fmt="parquet")
    return base, today


def snapshot(store: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_size, p.stat().st_mtime_ns) for p in store.rglob("*.parquet")}


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, default=1_000_000)
    ap.add_argument("--day", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from features.store.ingest import ingest
    from features.store.read import read_store

    folder = history_folder(args.claims, args.seed)
    history = load_history(folder)
    work = CACHE / f"store_{args.claims}_s{args.seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    base, today = split(history, args.day, work)
    store = work / "store"
    t_base, s_base = timed(lambda: ingest([base], store))
    before = snapshot(store)
    t_day, s_day = timed(lambda: ingest([today], store))
    after = snapshot(store)
    rewritten = [p for p, v in before.items() if after.get(p) != v]

    last = pd.Timestamp(history.claims["submitted_date"].max())
    since, until = f"{last.year - 1:04d}-{last.month:02d}", f"{last.year:04d}-{last.month:02d}"
    reads: dict[str, list[float]] = {"folder": [], "store": [], "store_one_year": []}
    n = {}
    for _ in range(args.repeats):
        t, h = timed(lambda: load_history(folder))
        reads["folder"].append(t)
        n["folder"] = len(h.claims)  # type: ignore[attr-defined]
        t, h = timed(lambda: load_history(store))
        reads["store"].append(t)
        n["store"] = len(h.claims)  # type: ignore[attr-defined]
        t, h = timed(lambda: read_store(store, since=since, until=until))
        reads["store_one_year"].append(t)
        n["store_one_year"] = len(h.claims)  # type: ignore[attr-defined]
        del h
    result = {
        "claims": args.claims,
        "day": args.day,
        "seed": args.seed,
        "base_ingest_s": round(t_base, 2),
        "base_claims_added": s_base.claims_added,  # type: ignore[attr-defined]
        "append_day_s": round(t_day, 2),
        "append_claims_added": s_day.claims_added,  # type: ignore[attr-defined]
        "parts_before_append": len(before),
        "parts_after_append": len(after),
        "old_parts_rewritten": len(rewritten),
        "one_year": [since, until],
        "read_s": {k: [round(x, 2) for x in v] for k, v in reads.items()},
        "read_median_s": {k: round(statistics.median(v), 2) for k, v in reads.items()},
        "read_claims": n,
        "store_mb": round(sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 1e6, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
