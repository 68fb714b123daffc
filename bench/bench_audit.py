"""Benchmark: batch scoring of 1M claims (no reasons) and the audit worklist of the top 1% with reasons.

Targets (docs/audit.md): 1M claims scored without reasons in <= 2 min on 2 cores; the worklist of the
top 1% with reasons adds <= 1 min.

    .venv/bin/python bench/bench_audit.py --claims 1000000 [--threads 2] [--keep DIR]

The history comes from ``features.sources.synthetic.generate.generate_history`` when it exists, else it is fabricated
with numpy (realistic shapes: ~2.2 lines per claim, 40k patients, 800 providers, 6 payers, MUE/NCCI-
relevant codes, recoupments ~5%). A small model is trained on the first 30k claims (not timed) and used
through ``RECOUP_BUNDLE_DIR``. Timed: loading the directory (Parquet), features, model, rule hits,
output writing; then the audit (amounts at risk, ranking, reasons for the worklist, report).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from features.model.bundle import bundle_problem  # noqa: E402

CODES = [
    "99213",
    "99214",
    "99215",
    "99203",
    "36415",
    "97110",
    "97140",
    "29880",
    "29881",
    "93000",
    "93005",
    "20610",
    "80053",
    "85025",
    "71046",
    "J1100",
    "G0439",
    "11042",
    "17110",
    "96372",
]
CODE_P = np.array([18, 14, 6, 4, 10, 8, 6, 2, 2, 4, 3, 4, 5, 5, 3, 2, 2, 3, 2, 6], dtype=float)
DXS = ["E119", "I10", "M1711", "S83241A", "Z0000", "R0789", "M545", "J449", "E785", "N390", "F329", "K219"]


def fabricate(n: int, seed: int = 11) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n_pat, n_prov = max(100, n // 25), max(20, n // 1250)
    start = np.datetime64("2022-01-01")
    sub = start + rng.integers(0, 1000, n).astype("timedelta64[D]")
    payers = np.array(["MCR", "MCD", "BCBS", "AETNA", "UHC", "CIGNA"])
    plan_of = {
        "MCR": "medicare",
        "MCD": "medicaid",
        "BCBS": "commercial",
        "AETNA": "commercial",
        "UHC": "medicare_advantage",
        "CIGNA": "commercial",
    }
    pat = rng.integers(0, n_pat, n)
    payer = payers[pat % len(payers)]
    n_lines = rng.choice([1, 2, 3, 4], n, p=[0.35, 0.3, 0.25, 0.1])
    ci = np.repeat(np.arange(n), n_lines)
    ln = np.arange(len(ci)) - np.repeat(np.cumsum(n_lines) - n_lines, n_lines) + 1
    codes = np.array(CODES)[rng.choice(len(CODES), len(ci), p=CODE_P / CODE_P.sum())]
    units = np.where(rng.random(len(ci)) < 0.08, rng.integers(2, 9, len(ci)), 1).astype(float)
    charge = np.round(rng.lognormal(4.5, 0.7, len(ci)) * units, 2)
    mods = np.where(rng.random(len(ci)) < 0.06, "59", np.where(rng.random(len(ci)) < 0.05, "25", ""))
    svc = sub[ci] - rng.integers(1, 30, len(ci)).astype("timedelta64[D]")
    lines = pd.DataFrame(
        {
            "claim_id": np.char.add("C", ci.astype(str)),
            "line_number": ln,
            "service_date": svc.astype(str),
            "procedure_code": codes,
            "modifiers": mods,
            "units": units,
            "line_charge": charge,
            "diagnosis_pointers": "1",
        }
    )
    total = np.bincount(ci, weights=charge, minlength=n)
    paid_ratio = rng.uniform(0.45, 0.8, n)
    paid = rng.random(n) < 0.93
    pay_date = sub + rng.integers(10, 60, n).astype("timedelta64[D]")
    line_paid = np.round(charge * paid_ratio[ci] * paid[ci], 2)
    lines["line_paid"] = np.where(paid[ci], line_paid, np.nan)
    ndx = rng.integers(1, 4, n)
    dx = np.array(DXS)
    dx_txt = np.where(
        ndx == 1,
        dx[rng.integers(0, 12, n)],
        np.char.add(np.char.add(dx[rng.integers(0, 12, n)], ";"), dx[rng.integers(0, 12, n)]),
    )
    claims = pd.DataFrame(
        {
            "claim_id": np.char.add("C", np.arange(n).astype(str)),
            "patient_id": np.char.add("P", pat.astype(str)),
            "billing_npi": (1_000_000_000 + rng.integers(0, n_prov, n)).astype(str),
            "payer_id": payer,
            "plan_type": pd.Series(payer).map(plan_of).to_numpy(),
            "claim_type": "professional",
            "place_of_service": rng.choice(["11", "22", "21"], n, p=[0.8, 0.15, 0.05]),
            "frequency_code": rng.choice(["1", "7"], n, p=[0.97, 0.03]),
            "submitted_date": sub.astype(str),
            "total_charge": np.round(total, 2),
            "diagnosis_codes": dx_txt,
            "prior_auth_number": np.where(rng.random(n) < 0.2, "PA1", ""),
            "has_attachment": np.where(rng.random(n) < 0.1, "true", "false"),
            "paid_date": np.where(paid, pay_date.astype(str), ""),
            "paid_amount": np.where(paid, np.bincount(ci, weights=np.nan_to_num(line_paid), minlength=n), np.nan),
        }
    )
    max_units = np.zeros(n)
    np.maximum.at(max_units, ci, units)
    p = np.clip(0.02 + 0.12 * (max_units >= 4) + 0.05 * (claims["frequency_code"] == "7").to_numpy(), 0, 1)
    hit = paid & (rng.random(n) < p)
    causes = np.where(max_units[hit] >= 4, "CO-151", rng.choice(["CO-16", "CO-97", "CO-50", "CO-18"], hit.sum()))
    rec = pd.DataFrame(
        {
            "claim_id": claims["claim_id"].to_numpy()[hit],
            "recouped_date": (pay_date[hit] + rng.integers(30, 300, hit.sum()).astype("timedelta64[D]")).astype(str),
            "recouped_amount": np.round(np.maximum(claims["paid_amount"].to_numpy()[hit] * 0.5, 1.0), 2),
            "carc": causes,
        }
    )
    providers = pd.DataFrame(
        {
            "npi": (1_000_000_000 + np.arange(n_prov)).astype(str),
            "taxonomy_code": rng.choice(["207Q00000X", "225100000X", "207X00000X"], n_prov),
        }
    )
    coverage = pd.DataFrame(
        {
            "patient_id": np.char.add("P", np.arange(n_pat).astype(str)),
            "payer_id": payers[np.arange(n_pat) % len(payers)],
            "plan_type": pd.Series(payers[np.arange(n_pat) % len(payers)]).map(plan_of).to_numpy(),
            "coverage_start": "2021-01-01",
            "coverage_end": "",
        }
    )
    return {"claims": claims, "claim_lines": lines, "recoupments": rec, "providers": providers, "coverage": coverage}


def make_history_dir(n: int, d: Path) -> None:
    from features.contract import validate_frames, write_history

    try:
        from features.sources.synthetic.generate import GeneratorConfig, generate_history  # type: ignore

        history, oracle = generate_history(GeneratorConfig(n_claims=n))
        src = "features.sources.synthetic.generate.generate_history"
    except ImportError:
        history, oracle = validate_frames(fabricate(n)), None
        src = "fabricated (numpy)"
    try:
        write_history(history, d, fmt="parquet")
    except TypeError:
        write_history(history, d)
    if oracle is not None:
        oracle.to_csv(d / "oracle.csv", index=False)
    print(f"history: {n} claims, {len(history.claim_lines)} lines, source {src}", flush=True)


def train_bundle(data: Path, out: Path, n_train: int = 30_000) -> Path:
    from features.contract import History, load_history
    from training.config import load_config
    from training.train import train_model

    h = load_history(data)
    c = h.claims.sort_values("submitted_date").head(n_train)
    ids = c["claim_id"]
    sub = History(
        claims=c.reset_index(drop=True),
        claim_lines=h.claim_lines[h.claim_lines["claim_id"].isin(ids)].reset_index(drop=True),
        coverage=h.coverage,
        providers=h.providers,
        recoupments=h.recoupments[h.recoupments["claim_id"].isin(ids)].reset_index(drop=True),
    )
    cfg = load_config(overrides={})
    res = train_model(sub, config=cfg)
    res.bundle.meta["model_version"] = "bench"
    res.bundle.save(out)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, default=None, help="reuse/keep the data and bundle in this folder")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_audit_"))
    data, bundle = root / f"history_{args.claims}", root / "bundle"
    if not (data / "claims.parquet").exists() and not (data / "claims.csv").exists():
        data.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        make_history_dir(args.claims, data)
        print(f"  generated in {time.perf_counter() - t:.0f} s (not timed)", flush=True)
    if bundle_problem(bundle) is not None:
        t = time.perf_counter()
        train_bundle(data, bundle)
        print(f"  trained the bench model in {time.perf_counter() - t:.0f} s (not timed)", flush=True)
    os.environ["RECOUP_BUNDLE_DIR"] = str(bundle)

    from serving.audit import audit_cli
    from serving.batch import score_cli

    results = {"claims": args.claims, "cpus": os.cpu_count()}
    t = time.perf_counter()
    summary = score_cli(data, root / "scores.parquet", explain="none")
    results["score_no_reasons_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    cap = max(1, args.claims // 100)
    audit_summary = audit_cli(data, root / "audit", capacity=cap)
    results["audit_top1pct_with_reasons_s"] = round(time.perf_counter() - t, 1)
    results["audit_timings"] = audit_summary.get("timings")
    results["score_summary"] = summary
    print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
