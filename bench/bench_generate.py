"""Benchmark: the synthetic generator, end to end (generate + write parquet + oracle.csv).

    python bench/bench_generate.py [--claims 100000 1000000] [--fmt parquet] [--seed 7]

Each size runs in a fresh subprocess, so its peak RSS (``resource.getrusage``) is its own. Prints
one line per size: seconds to generate, seconds to write, total, peak RSS, and the summary.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_one(n_claims: int, fmt: str, seed: int) -> dict:
    from features.contract import write_history
    from features.sources.synthetic.generate import GeneratorConfig, generate_history, summarize

    t0 = time.perf_counter()
    history, oracle = generate_history(GeneratorConfig(n_claims=n_claims, seed=seed))
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        write_history(history, out, fmt=fmt)
        oracle.to_csv(Path(out) / "oracle.csv", index=False, float_format="%.6g")
        t2 = time.perf_counter()
        size_mb = sum(p.stat().st_size for p in Path(out).iterdir()) / 1e6
    return {
        "claims": n_claims,
        "lines": len(history.claim_lines),
        "generate_s": round(t1 - t0, 2),
        "write_s": round(t2 - t1, 2),
        "total_s": round(t2 - t0, 2),
        "size_mb": round(size_mb, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
        "cpu_s": round(sum(getattr(resource.getrusage(resource.RUSAGE_SELF), k) for k in ("ru_utime", "ru_stime")), 1),
        "summary": summarize(history, oracle),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--fmt", default="parquet", choices=["csv", "parquet"])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size, print JSON
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.fmt, args.seed)))
        return
    for n in args.claims:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--fmt", args.fmt, "--seed", str(args.seed)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"{r['claims']:>9,} claims ({r['lines']:,} lines): generate {r['generate_s']:.1f} s, "
            f"write {args.fmt} {r['write_s']:.1f} s, total {r['total_s']:.1f} s (process CPU {r['cpu_s']:.1f} s), "
            f"peak RSS {r['peak_rss_mb']:,.0f} MB, {r['size_mb']:.0f} MB on disk"
        )
        print("  " + r["summary"].replace("\n", "\n  "))


if __name__ == "__main__":
    main()
