"""The workbench's worklist page with a 100k-row worklist (docs/workbench.md, "Figures"): the first page, filters,
a claim-id search, a sort, the claim page, through a real uvicorn server on loopback.

Usage::

    python bench/bench_workbench.py [--rows 100000] [--repeats 9] [--database-url URL] [--out FILE.json]

The worklist is made up (``--rows`` rows with the columns of ``recoup audit``'s worklist: 400 providers in 12
specialties, 8 payers, the 8 causes, three reasons and rule hits of realistic length, no claim details) and loaded
with ``serving.workbench.load.insert_run`` into a new SQLite database under work/bench/ (or ``--database-url``),
with 2,000 reviews (some assigned) so the status/assignee join has rows. A lead and a reviewer log in; each request
is repeated ``--repeats`` times (after one warm-up); for each we report the server-side time (the app's
``Server-Timing: app`` header: routing, session, queries, template, until the response starts) and the HTTP round
trip seen by the client (httpx, keep-alive), as min / median / max in milliseconds. Targets: first page <= 300 ms,
a filter <= 500 ms. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CAUSES = ["duplicate", "bundling", "units", "procedure_coding", "medical_necessity", "documentation", "eligibility"]
PASSWORD = "bench password 123"


def make_worklist(n: int, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    specialties = [f"Specialty {i}" for i in range(12)]
    npis = np.array([f"1{rng.integers(10**8, 10**9)}" for _ in range(400)])
    spec_of = {npi: specialties[i % 12] for i, npi in enumerate(npis)}
    prov = rng.integers(0, len(npis), n)
    dollars = np.round(rng.lognormal(3, 1.2, n), 2)
    order = np.argsort(-dollars, kind="stable")
    dollars = dollars[order]
    reason = "procedure 99214 was recouped on 6.3% of earlier claims (a typical claim's procedure: 2.2%)"
    hit = "possible duplicate of claim C0001234 (same patient, provider, date and code 99214)"
    df = pd.DataFrame(
        {
            "rank": np.arange(1, n + 1),
            "claim_id": [f"C{i:08d}" for i in rng.permutation(n)],
            "billing_npi": npis[prov],
            "provider_name": [f"Provider {p}" for p in prov],
            "specialty": [spec_of[x] for x in npis[prov]],
            "specialty_code": "207Q00000X",
            "payer_id": np.array([f"PAYER-{i}" for i in range(8)])[rng.integers(0, 8, n)],
            "plan_type": "commercial",
            "submitted_date": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 180, n), "D"),
            "paid_date": pd.Timestamp("2025-02-01") + pd.to_timedelta(rng.integers(0, 180, n), "D"),
            "paid_amount": np.round(dollars * rng.uniform(3, 20, n), 2),
            "recoupment_probability": np.round(rng.uniform(0.01, 0.9, n), 6),
            "risk_band": np.array(["low", "medium", "high"])[rng.integers(0, 3, n)],
            "top_cause": np.array(CAUSES)[rng.integers(0, len(CAUSES), n)],
            "top_cause_probability": np.round(rng.uniform(0.2, 0.9, n), 6),
            "amount_at_risk": dollars * 3,
            "expected_recoupment_dollars": dollars,
            "reason_1": reason,
            "reason_2": reason,
            "reason_3": reason,
            "rule_hit_1": np.where(rng.uniform(size=n) < 0.2, hit, ""),
            "rule_hit_count": rng.integers(0, 3, n),
            "model_version": "7",
            "causes": json.dumps([{"cause": c, "probability": 1 / 7} for c in CAUSES]),
            "reasons": json.dumps([{"code": "x", "text": reason, "contribution": 0.05}] * 3),
            "rule_hits": "[]",
        }
    )
    return df


def timed(client, url: str, repeats: int) -> dict:
    client.get(url)  # warm-up
    server, trip = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = client.get(url)
        trip.append((time.perf_counter() - t0) * 1e3)
        assert r.status_code == 200, (url, r.status_code)
        m = re.search(r"app;dur=([\d.]+)", r.headers.get("server-timing", ""))
        server.append(float(m.group(1)) if m else float("nan"))

    def rng(x: list[float]) -> list[float]:
        return [round(min(x), 1), round(statistics.median(x), 1), round(max(x), 1)]

    return {"server_ms": rng(server), "round_trip_ms": rng(trip), "bytes": len(r.content)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    import datetime as dt

    import httpx
    import uvicorn
    from sqlalchemy import insert

    from serving.workbench.app import Config, create_app
    from serving.workbench.auth import User, add_user
    from serving.workbench.db import make_engine, reviews, upgrade
    from serving.workbench.load import insert_run

    work = ROOT / "work" / "bench" / "workbench"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    engine = make_engine(a.database_url or f"sqlite:///{work / 'wb.sqlite'}")
    upgrade(engine)
    wl = make_worklist(a.rows)
    t0 = time.perf_counter()
    insert_run(engine, wl, "bench" + str(time.time_ns()), str(work), None)
    load_s = time.perf_counter() - t0
    lead = User(add_user(engine, "lead", "lead", PASSWORD), "lead", "lead")
    rev = User(add_user(engine, "rev", "reviewer", PASSWORD), "rev", "reviewer")
    now = dt.datetime.now().replace(microsecond=0)
    picks = wl["claim_id"].sample(2000, random_state=1).tolist()
    with engine.begin() as conn:
        conn.execute(
            insert(reviews),
            [
                {
                    "claim_id": c,
                    "status": "in_review" if i % 3 else "no_issue",
                    "assignee_id": (lead.id if i % 2 else rev.id) if i % 3 else None,
                    "updated_at": now,
                    "updated_by": lead.id,
                }
                for i, c in enumerate(picks)
            ],
        )
    app = create_app(Config(engine=engine, hosts=["127.0.0.1"]))
    port = 18000 + int(time.time()) % 1000
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    cases = {
        "first page": "/",
        "filter: cause": "/?cause=units",
        "filter: cause + payer + risk + dollars": "/?cause=bundling&payer=PAYER-3&band=high"
        "&min_dollars=20&max_dollars=500",
        "filter: specialty, sort by probability": "/?specialty=Specialty+4&sort=probability&order=asc",
        "filter: status in review": "/?status=in_review",
        "search: claim id": f"/?q={wl['claim_id'].iloc[777]}",
        "page 500": "/?page=500",
        "claim page": f"/claim/{wl['claim_id'].iloc[3]}",
    }
    out: dict = {
        "rows": a.rows,
        "repeats": a.repeats,
        "load_s": round(load_s, 2),
        "database": str(engine.url.drivername),
    }
    try:
        for who in ("lead", "rev"):
            with httpx.Client(base_url=base) as c:
                page = c.get("/login").text
                token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
                r = c.post("/login", data={"name": who, "password": PASSWORD, "csrf": token})
                assert r.status_code in (200, 303), r.status_code
                out[who] = {name: timed(c, url, a.repeats) for name, url in cases.items()}
    finally:
        server.should_exit = True
        th.join(timeout=10)
    print(json.dumps(out, indent=1))
    if a.out:
        a.out.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
