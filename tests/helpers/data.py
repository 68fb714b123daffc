"""Small claims histories for tests: the synthetic generator when built, else a fabricated one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import History, validate_frames


def small_history(n_claims: int = 4000, seed: int = 3) -> tuple[History, pd.DataFrame | None]:
    """(history, oracle or None)."""
    try:
        from features.sources.synthetic.generate import GeneratorConfig, generate_history
    except ImportError:
        return fabricated_history(n_claims, seed), None
    return generate_history(GeneratorConfig(n_claims=n_claims, seed=seed))


def fabricated_history(n: int = 3000, seed: int = 1) -> History:
    """A crude random history (no realism) used only until the generator exists."""
    rng = np.random.default_rng(seed)
    codes = ["99213", "99214", "99215", "36415", "97110", "97140", "29880", "29881", "93000", "93005", "20610"]
    dxs = ["E119", "I10", "M1711", "S83241A", "Z0000", "R0789", "M545"]
    sub = pd.to_datetime("2023-01-01") + pd.to_timedelta(rng.integers(0, 900, n), "D")
    claims = pd.DataFrame(
        {
            "claim_id": [f"C{i}" for i in range(n)],
            "patient_id": [f"P{i % 300}" for i in range(n)],
            "billing_npi": [f"{1000000000 + i % 20}" for i in range(n)],
            "payer_id": rng.choice(["MCR1", "MCD", "BCBS"], n),
            "plan_type": rng.choice(["medicare", "medicaid", "commercial"], n),
            "claim_type": "professional",
            "place_of_service": "11",
            "frequency_code": rng.choice(["1", "7"], n, p=[0.95, 0.05]),
            "submitted_date": sub.strftime("%Y-%m-%d"),
            "diagnosis_codes": [";".join(rng.choice(dxs, rng.integers(1, 4), replace=False)) for _ in range(n)],
            "paid_date": (sub + pd.Timedelta(days=20)).strftime("%Y-%m-%d"),
        }
    )
    rows = []
    for i in range(n):
        for j in range(int(rng.integers(1, 4))):
            rows.append(
                (
                    f"C{i}",
                    j + 1,
                    (sub[i] - pd.Timedelta(days=3)).strftime("%Y-%m-%d"),
                    rng.choice(codes),
                    rng.choice(["", "59", "25"]),
                    float(rng.integers(1, 9)),
                    100.0,
                    "1",
                )
            )
    lines = pd.DataFrame(
        rows,
        columns=[
            "claim_id",
            "line_number",
            "service_date",
            "procedure_code",
            "modifiers",
            "units",
            "line_charge",
            "diagnosis_pointers",
        ],
    )
    claims["total_charge"] = lines.groupby("claim_id")["line_charge"].sum().reindex(claims["claim_id"]).to_numpy()
    claims["paid_amount"] = claims["total_charge"] * 0.6
    # recoupments driven by features so that a model can learn something
    risky = lines.groupby("claim_id")["units"].max().reindex(claims["claim_id"]).to_numpy() >= 7
    p = np.where(risky, 0.15, 0.02)
    hit = rng.random(n) < p
    rec = claims.loc[hit, ["claim_id", "paid_date"]].copy()
    rec["recouped_date"] = (pd.to_datetime(rec["paid_date"]) + pd.Timedelta(days=90)).dt.strftime("%Y-%m-%d")
    rec["recouped_amount"] = 50.0
    rec["carc"] = np.where(risky[hit], "CO-151", "CO-16")
    rec = rec.drop(columns="paid_date")
    providers = pd.DataFrame(
        {"npi": [f"{1000000000 + i}" for i in range(20)], "taxonomy_code": rng.choice(["207Q00000X", "225100000X"], 20)}
    )
    coverage = pd.DataFrame(
        {
            "patient_id": [f"P{i}" for i in range(300)],
            "payer_id": "MCR1",
            "plan_type": "medicare",
            "coverage_start": "2022-06-01",
            "coverage_end": "2025-06-30",
        }
    )
    return validate_frames(
        {"claims": claims, "claim_lines": lines, "recoupments": rec, "providers": providers, "coverage": coverage}
    )
