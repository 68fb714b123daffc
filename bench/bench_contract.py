"""Benchmark: contract validation of one claim (the scoring service) and of a large CSV history.

    python bench/bench_contract.py [--calls 1000] [--lines 5] [--claims 1000000] [--skip-load]
                                   [--check-only [--repeat 3]] [--sizes]

- ``validate_frames`` of one claim with N lines, built as the service builds it
  (``serving.schemas.raw_frames``: object columns, JSON values): p50 / p99 over ``--calls`` calls, with
  the row-wise checker of small tables and with it switched off (the vectorized path every table took
  before);
- the same for a claim given as text (a CSV-like frame of pandas ``str`` columns);
- ``load_history`` of a fabricated CSV history of ``--claims`` claims (bench_rulebook's fabricator),
  to show that batch loading did not get slower;
- ``--check-only``: the contract check alone of that history (``validate_table`` of every file and the
  cross-table rules, the CSV reads excluded), ``--repeat`` times, with the load average of each run;
- ``--sizes``: ``validate_frames`` of 1, 50 and 2,000 text claims of one line each (min and p50), the sizes
  a request can have (docs/contract.md, "Where the rules live").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import features.contract.load as contract  # noqa: E402
from features.contract import load_history, validate_frames  # noqa: E402
from tests.helpers.claims import service_claim  # noqa: E402


def service_frames(n_lines: int) -> dict[str, pd.DataFrame]:
    from serving.schemas import Claim, raw_frames

    claim = Claim.model_validate(service_claim(n_lines))
    rc, rl, _, _ = raw_frames([claim])
    return {"claims": rc, "claim_lines": rl}


def text_frames(n_lines: int) -> dict[str, pd.DataFrame]:
    claims = pd.DataFrame(
        {
            "claim_id": ["C-1"],
            "patient_id": ["P-1"],
            "billing_npi": ["1234567890"],
            "rendering_npi": [""],
            "payer_id": ["MCR"],
            "plan_type": ["medicare"],
            "claim_type": ["professional"],
            "place_of_service": ["11"],
            "frequency_code": ["1"],
            "submitted_date": ["2025-03-04"],
            "total_charge": ["250"],
            "diagnosis_codes": ["E119;I10"],
            "prior_auth_number": [""],
            "has_attachment": ["false"],
            "paid_date": [""],
            "paid_amount": [""],
        }
    )
    lines = pd.DataFrame(
        {
            "claim_id": ["C-1"] * n_lines,
            "line_number": [str(i) for i in range(1, n_lines + 1)],
            "service_date": ["2025-03-01"] * n_lines,
            "procedure_code": ["99214"] * n_lines,
            "modifiers": ["25"] + [""] * (n_lines - 1),
            "units": ["1"] * n_lines,
            "line_charge": ["50"] * n_lines,
            "diagnosis_pointers": ["1;2"] * n_lines,
            "line_paid": [""] * n_lines,
        }
    )
    return {"claims": claims, "claim_lines": lines}


def latency(tables: dict, calls: int) -> tuple[float, float]:
    for _ in range(min(50, calls)):
        validate_frames(tables)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        validate_frames(tables)
        times.append(time.perf_counter() - t0)
    times.sort()
    return statistics.median(times) * 1e3, times[min(len(times) - 1, int(len(times) * 0.99))] * 1e3


def bench_small(calls: int, n_lines: int) -> dict:
    figures = {}
    for label, tables in (("service claim", service_frames(n_lines)), ("text claim", text_frames(n_lines))):
        for path in ("row-wise", "vectorized"):
            keep = contract.FAST_PATH_MAX_ROWS
            if path == "vectorized":
                contract.FAST_PATH_MAX_ROWS = 0
            try:
                n = calls if path == "row-wise" else max(50, calls // 5)
                p50, p99 = latency(tables, n)
            finally:
                contract.FAST_PATH_MAX_ROWS = keep
            key = f"validate_frames, {label}, 1 claim / {n_lines} lines, {path}"
            figures[key] = (p50, p99)
            print(f"{key:<72} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  ({n} calls)", flush=True)
    return figures


def bench_load(n_claims: int) -> dict:
    from bench_rulebook import fabricate_history

    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = fabricate_history(Path(tmp), n_claims)
        n_lines = sum(1 for _ in open(d / "claim_lines.csv")) - 1
        t0 = time.perf_counter()
        load_history(d)
        figures["load_history CSV"] = time.perf_counter() - t0
        print(
            f"load_history CSV, {n_claims:,} claims / {n_lines:,} lines: {figures['load_history CSV']:.2f} s",
            flush=True,
        )
    return figures


def bench_check(n_claims: int, repeat: int) -> dict:
    """The contract check of a fabricated CSV history, reads excluded (what the bounds add to a load)."""
    import warnings

    from bench_rulebook import fabricate_history

    from features.contract import check_relations, read_table_file, validate_table

    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = fabricate_history(Path(tmp), n_claims)
        raw = {p.name.split(".")[0]: read_table_file(p) for p in sorted(d.glob("*.csv"))}
    rows = ", ".join(f"{len(df):,} {name}" for name, df in raw.items())
    for i in range(repeat):
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        typed = {}
        with warnings.catch_warnings(action="ignore"):
            for name, df in raw.items():
                typed[name], problems, _ = validate_table(df, name, name)
                assert not problems, problems[:3]
        check_relations(typed)
        figures[f"contract check {i + 1}"] = time.perf_counter() - t0
        print(
            f"contract check ({rows}): {figures[f'contract check {i + 1}']:.2f} s (load average {load:.1f})", flush=True
        )
    return figures


def bench_sizes(sizes: tuple[int, ...] = (1, 50, 2000)) -> dict:
    """``validate_frames`` of N text claims with one line each (object columns, as the service hands them)."""
    figures = {}
    one = text_frames(1)
    for n in sizes:
        claims = pd.concat([one["claims"]] * n, ignore_index=True)
        claims["claim_id"] = [f"C-{i}" for i in range(n)]
        lines = pd.concat([one["claim_lines"]] * n, ignore_index=True)
        lines["claim_id"] = claims["claim_id"]
        tables = {"claims": claims.astype(object), "claim_lines": lines.astype(object)}
        calls = max(20, 400 // max(1, n // 10))
        for _ in range(5):
            validate_frames(tables)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            validate_frames(tables)
            times.append(time.perf_counter() - t0)
        figures[n] = (min(times) * 1e3, statistics.median(times) * 1e3)
        print(f"validate_frames, {n:5d} text claims + lines: min {figures[n][0]:8.3f} ms  p50 {figures[n][1]:8.3f} ms")
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--lines", type=int, default=5)
    ap.add_argument("--claims", type=int, default=1_000_000)
    ap.add_argument("--skip-load", action="store_true", help="only the small-frame latencies")
    ap.add_argument("--check-only", action="store_true", help="only the contract check of a large history")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", action="store_true", help="only validate_frames at 1, 50 and 2,000 claims")
    args = ap.parse_args(argv)
    if args.sizes:
        bench_sizes()
        return 0
    if args.check_only:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        bench_check(args.claims, args.repeat)
        return 0
    print(f"python {sys.version.split()[0]}, pandas {pd.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    bench_small(args.calls, args.lines)
    if not args.skip_load:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        bench_load(args.claims)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
