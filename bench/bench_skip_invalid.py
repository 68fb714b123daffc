"""Benchmark: loading a history directory strictly, and with ``skip_invalid`` when rows break the contract.

    .venv/bin/python bench/bench_skip_invalid.py [--claims 100000] [--bad 1] [--repeat 3]

Generates a synthetic history (CSV), writes a copy where ``--bad`` claims have a negative
``total_charge``, then times ``load_history(DIR)`` on the valid copy and
``load_history(DIR, skip_invalid=True)`` (what ``recoup score/audit --skip-invalid`` call) on both.
Figures in docs/audit.md ("Invalid data").
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from features.contract import load_history  # noqa: E402
from features.sources.synthetic.generate import generate_to_dir  # noqa: E402


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(round(time.perf_counter() - t, 2))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--claims", type=int, default=100_000)
    ap.add_argument("--bad", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = Path(tmp) / "good", Path(tmp) / "bad"
        generate_to_dir(good, n_claims=a.claims, seed=3)
        generate_to_dir(bad, n_claims=a.claims, seed=3)
        claims = pd.read_csv(bad / "claims.csv", dtype=str, keep_default_na=False)
        claims.loc[claims.index[: a.bad], "total_charge"] = "-1"
        claims.to_csv(bad / "claims.csv", index=False)
        _, rejected = load_history(bad, skip_invalid=True)
        assert len(rejected) == a.bad
        print(f"{a.claims:,} claims, {a.bad} invalid; seconds per load, {a.repeat} runs")
        print("strict, valid:        ", timed(lambda: load_history(good), a.repeat))
        print("skip_invalid, valid:  ", timed(lambda: load_history(good, skip_invalid=True), a.repeat))
        print("skip_invalid, invalid:", timed(lambda: load_history(bad, skip_invalid=True), a.repeat))


if __name__ == "__main__":
    main()
