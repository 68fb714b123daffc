"""`recoup demo`: the embedded default end to end — generate, train and promote, audit, serve."""

from __future__ import annotations

import json
import logging
import time

import pandas as pd

from features.outputs import write_text
from features.progress import duration
from features.settings import recoup_home

log = logging.getLogger(__name__)


def claim_json(history, claim_id: str) -> dict:
    """One claim of a history in the service's CLAIM format, re-ID'd as a resubmission."""
    from serving.schemas import frames_to_claims

    c = history.claims[history.claims["claim_id"] == claim_id]
    lines = history.claim_lines[history.claim_lines["claim_id"] == claim_id]
    claim = frames_to_claims(c, lines)[0]
    claim["claim_id"] = f"{claim_id}-RESUBMIT"
    return claim


STEPS = 4


def _step(n: int, text: str) -> float:
    """Log the start of step ``n`` (a log line like every other: progress on stderr, results on stdout)."""
    log.info("step %d/%d: %s", n, STEPS, text)
    return time.perf_counter()


def _done(n: int, t: float) -> None:
    log.info("step %d/%d done in %s", n, STEPS, duration(time.perf_counter() - t))


def run_demo(claims: int = 60_000, seed: int = 7, serve_after: bool = True, port: int = 3000) -> None:
    from features.contract import load_history
    from features.sources.synthetic.generate import generate_to_dir

    from serving.serve import check_port, check_port_free

    check_port(port)
    if serve_after:  # say it now, not after minutes of training
        check_port_free("127.0.0.1", port)
    home = recoup_home()
    demo = home / "demo"
    data = demo / "history"
    t = _step(1, f"generating a synthetic claims history of {claims:,} claims in {data}")
    print(generate_to_dir(data, n_claims=claims, seed=seed, overwrite=True))  # the demo's own folder
    _done(1, t)

    t = _step(2, "training the likelihood and cause models, logging to MLflow, promoting to champion")
    from training.train import train_cli

    train_cli(data=data, as_of=None, horizon_days=365, promote=True, config=None)
    _done(2, t)

    t = _step(3, "scoring the last 6 months of paid claims and writing the audit worklist and report")
    history = load_history(data)
    last = history.claims["submitted_date"].max()
    since = str((last - pd.Timedelta(days=182)).date())
    from serving.audit import audit_cli

    audit_dir = demo / "audit"
    audit_cli(
        data=data,
        out=audit_dir,
        since=since,
        until=None,
        capacity=500,
        budget_hours=None,
        minutes_per_review=20.0,
        overwrite=True,
    )
    # the same review on the latest window whose outcomes are known: its report has a backtest
    backtest_dir = demo / "audit-backtest"
    audit_cli(data=data, out=backtest_dir, capacity=500, overwrite=True, matured=True)
    _done(3, t)

    # a claim to try: resubmit a recent claim (the service will flag it as a duplicate)
    recent = history.claims.sort_values("submitted_date").iloc[-1]["claim_id"]
    example = demo / "example_claim.json"
    write_text(example, json.dumps({"claim": claim_json(history, recent)}, indent=2))
    print("\nClaims history: ", data.resolve())
    print("Audit report:   ", (audit_dir / "report.html").resolve())
    print("Worklist:       ", (audit_dir / "worklist.csv").resolve())
    print("Backtest report:", (backtest_dir / "report.html").resolve(), "(a window whose outcomes are known)")
    print(f"MLflow UI:       .venv/bin/mlflow ui --backend-store-uri sqlite:///{home / 'mlflow.db'}")
    print("Try the service (in another terminal once it is up):")
    print(
        f"  curl -s -X POST http://127.0.0.1:{port}/score -H 'content-type: application/json' -d @{example.resolve()}"
    )
    if serve_after:
        _step(4, f"starting the scoring service on http://127.0.0.1:{port} (Ctrl-C to stop)")
        from serving.serve import serve_cli

        serve_cli(port=port, host="127.0.0.1")
    else:
        log.info("step 4/%d skipped (--no-serve): start the service with `recoup serve`", STEPS)
