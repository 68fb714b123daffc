"""Benchmark: NCCI PTP + MUE lookups over 1M lines and ``load_history`` on a large fabricated history.

    python bench/bench_rulebook.py [--lines 1000000] [--claims 1000000] [--keep DIR]

Prints the measured figures (seconds). The history is fabricated with numpy (no generator needed):
~2.5 lines per claim, every column of the contract filled.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.contract import load_history  # noqa: E402
from features.engine.arrays import ymd_of_days  # noqa: E402
from features.rulebook import load_rulebook  # noqa: E402


def _codes(rng: np.random.Generator, letters: str, n: int, width: int) -> np.ndarray:
    nums = rng.integers(0, 10**width, n)
    return np.char.add(rng.choice(list(letters), n), np.char.zfill(nums.astype(str), width))


def fabricate_history(directory: str | Path, n_claims: int, seed: int = 0) -> Path:
    """Write claims.csv, claim_lines.csv, recoupments.csv (~2.5 lines per claim) quickly with numpy."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rb = load_rulebook()
    proc_vocab = rb.table("mue_professional")["code"].to_numpy(dtype=str)
    icd = rb.table("icd10cm")
    icd_vocab = icd.loc[icd["billable"], "code"].to_numpy(dtype=str)[:5000]
    claim_id = np.char.add("C", np.arange(n_claims).astype(str))
    start = np.datetime64("2022-01-01")
    submitted = start + rng.integers(0, 900, n_claims).astype("timedelta64[D]")
    paid = submitted + rng.integers(5, 60, n_claims).astype("timedelta64[D]")
    paid_s = np.where(rng.random(n_claims) < 0.9, paid.astype(str), "")
    n_lines = rng.integers(1, 5, n_claims)  # 1..4, mean 2.5
    n_dx = rng.integers(1, 4, n_claims)
    dx = icd_vocab[rng.integers(0, len(icd_vocab), (n_claims, 3))]
    dx_txt = np.where(
        n_dx == 1,
        dx[:, 0],
        np.where(
            n_dx == 2,
            np.char.add(np.char.add(dx[:, 0], ";"), dx[:, 1]),
            np.char.add(np.char.add(np.char.add(np.char.add(dx[:, 0], ";"), dx[:, 1]), ";"), dx[:, 2]),
        ),
    )
    npis = np.char.add("1", np.char.zfill(rng.integers(0, 10**9, 2000).astype(str), 9))
    claims = pd.DataFrame(
        {
            "claim_id": claim_id,
            "patient_id": np.char.add("P", rng.integers(0, n_claims // 5 + 1, n_claims).astype(str)),
            "billing_npi": npis[rng.integers(0, len(npis), n_claims)],
            "rendering_npi": np.where(rng.random(n_claims) < 0.5, npis[rng.integers(0, len(npis), n_claims)], ""),
            "payer_id": np.char.add("PAYER", rng.integers(0, 30, n_claims).astype(str)),
            "plan_type": rng.choice(["medicare", "medicare_advantage", "medicaid", "commercial"], n_claims),
            "claim_type": rng.choice(["professional", "institutional"], n_claims, p=[0.8, 0.2]),
            "place_of_service": rng.choice(["11", "22", "21", "02", "23"], n_claims),
            "frequency_code": rng.choice(["1", "7", "8"], n_claims, p=[0.95, 0.04, 0.01]),
            "submitted_date": submitted.astype(str),
            "total_charge": np.round(rng.gamma(2, 150, n_claims), 2),
            "diagnosis_codes": dx_txt,
            "prior_auth_number": np.where(
                rng.random(n_claims) < 0.1, np.char.add("PA", np.arange(n_claims).astype(str)), ""
            ),
            "has_attachment": rng.choice(["true", "false"], n_claims, p=[0.05, 0.95]),
            "paid_date": paid_s,
            "paid_amount": np.where(paid_s != "", np.round(rng.gamma(2, 100, n_claims), 2).astype(str), ""),
        }
    )
    claims.to_csv(directory / "claims.csv", index=False)
    owner = np.repeat(np.arange(n_claims), n_lines)
    m = len(owner)
    first = np.concatenate([[0], np.cumsum(n_lines)[:-1]])
    line_number = np.arange(m) - np.repeat(first, n_lines) + 1
    mods = np.array(["", "", "", "", "25", "59", "RT;LT", "26", "XU"])
    lines = pd.DataFrame(
        {
            "claim_id": claim_id[owner],
            "line_number": line_number,
            "service_date": (submitted[owner] - rng.integers(0, 10, m).astype("timedelta64[D]")).astype(str),
            "procedure_code": proc_vocab[rng.integers(0, len(proc_vocab), m)],
            "modifiers": mods[rng.integers(0, len(mods), m)],
            "units": rng.integers(1, 5, m),
            "line_charge": np.round(rng.gamma(2, 60, m), 2),
            "diagnosis_pointers": np.array(["1", "1;2", "2", ""])[rng.integers(0, 4, m)],
            "line_paid": np.where(rng.random(m) < 0.8, np.round(rng.gamma(2, 40, m), 2).astype(str), ""),
        }
    )
    lines.to_csv(directory / "claim_lines.csv", index=False)
    k = n_claims // 20
    rc = rng.choice(n_claims, k, replace=False)
    rec = pd.DataFrame(
        {
            "claim_id": claim_id[rc],
            "recouped_date": (paid[rc] + rng.integers(10, 300, k).astype("timedelta64[D]")).astype(str),
            "recouped_amount": np.round(rng.gamma(2, 50, k) + 0.01, 2),
            "carc": rng.choice(["CO-18", "CO-97", "CO-151", "CO-16", "CO-50", "CO-45", ""], k),
            "cause": "",
        }
    )
    rec.to_csv(directory / "recoupments.csv", index=False)
    return directory


def _timed(label: str, fn, figures: dict):
    t0 = time.perf_counter()
    out = fn()
    figures[label] = time.perf_counter() - t0
    print(f"{label:<48} {figures[label]:8.2f} s", flush=True)
    return out


def bench_lookups(n_lines: int, seed: int = 0) -> dict:
    """PTP over n random real pairs (half professional, half institutional) and MUE over n lines."""
    figures: dict = {}
    rb = _timed("load rulebook tables + build PTP indexes", lambda: _warm(), figures)
    rng = np.random.default_rng(seed)
    t = rb.table("ptp_professional")
    i = rng.integers(0, len(t), n_lines)
    c1 = t["column_1"].to_numpy(dtype=object)[i]
    c2 = t["column_2"].to_numpy(dtype=object)[i]
    swap = rng.random(n_lines) < 0.2  # some pairs in the wrong order / not an edit
    c1[swap], c2[swap] = c2[swap], c1[swap]
    dates = (np.datetime64("2018-01-01") + rng.integers(0, 2400, n_lines).astype("timedelta64[D]")).astype(
        "datetime64[s]"
    )
    ctype = np.where(rng.random(n_lines) < 0.5, "professional", "institutional")
    ind = _timed(f"ptp_lookup, {n_lines:,} pairs", lambda: rb.ptp_lookup(c1, c2, dates, ctype), figures)
    codes = rb.table("mue_professional")["code"].to_numpy(dtype=object)[rng.integers(0, 14_000, n_lines)]
    units, mai = _timed(f"mue_lookup, {n_lines:,} lines", lambda: rb.mue_lookup(codes, ctype), figures)
    # the feature families' path: the rulebook's index on code ids and YYYYMMDD dates
    ri = rb.index
    ymd = ymd_of_days(dates.astype("datetime64[D]").astype(np.int64))
    i1, i2, ic = ri.code_ids(c1), ri.code_ids(c2), ri.code_ids(codes)
    _timed(f"RuleIndex.ptp on code ids, {n_lines:,} pairs", lambda: ri.ptp(i1, i2, ymd, ctype), figures)
    _timed(f"RuleIndex.mue on code ids, {n_lines:,} lines", lambda: ri.mue(ic, ctype), figures)
    print(f"  PTP edits in force: {np.mean(ind >= 0):.1%}; MUE found: {np.mean(~np.isnan(units)):.1%}")
    return figures


def _warm():
    rb = load_rulebook()
    rb.ptp_lookup(["99213"], ["36415"], ["2024-08-01"])  # builds the rulebook's index (rb.index)
    rb.mue_lookup(["99213"], "institutional")
    return rb


def bench_load(n_claims: int, keep: str | None = None) -> dict:
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(keep or tmp)
        _timed(f"fabricate history, {n_claims:,} claims (CSV)", lambda: fabricate_history(d, n_claims), figures)
        n_lines = sum(1 for _ in open(d / "claim_lines.csv")) - 1
        size = sum(p.stat().st_size for p in d.glob("*.csv")) / 1e6
        print(f"  {n_claims:,} claims, {n_lines:,} lines, {size:,.0f} MB of CSV")
        h = _timed(f"load_history CSV, {n_claims:,} claims / {n_lines:,} lines", lambda: load_history(d), figures)
        from features.contract import write_history

        pq = Path(tmp) / "pq"
        write_history(h, pq, fmt="parquet")
        _timed(f"load_history Parquet, {n_claims:,} claims", lambda: load_history(pq), figures)
        sd = h.claim_lines["service_date"].to_numpy()
        pc = h.claim_lines["procedure_code"].to_numpy(dtype=object)
        rb = load_rulebook()
        _timed(f"mue_lookup on the loaded lines ({n_lines:,})", lambda: rb.mue_lookup(pc), figures)
        _timed(
            f"ptp_lookup consecutive line pairs ({n_lines - 1:,})",
            lambda: rb.ptp_lookup(pc[:-1], pc[1:], sd[1:]),
            figures,
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--claims", type=int, default=1_000_000)
    ap.add_argument("--keep", default=None, help="write the fabricated history here (kept)")
    args = ap.parse_args(argv)
    print(f"python {sys.version.split()[0]}, pandas {pd.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    bench_lookups(args.lines)
    bench_load(args.claims, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
