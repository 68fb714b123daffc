"""Loading an audit run into the workbench's database: the worklist (``worklist.parquet`` of a ``recoup audit``
output folder) and, per claim, the details the claim page shows, read once from the claims store.

Which run: ``--audit DIR``, else the newest ``recoup audit`` output folder (by its marker file's time) under
``RECOUP_HOME`` (default ``work/``), searched :data:`SEARCH_DEPTH` folders deep. A run is known by the SHA-256 of
its ``worklist.parquet``: loading the same run again changes nothing (idempotent); the pages show the latest run
loaded. Reviews are per claim, so they carry over from one run to the next."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine

from features.errors import RecoupError
from serving.workbench.db import WORKLIST_FLAT, audit_runs, providers, worklist

log = logging.getLogger(__name__)
SEARCH_DEPTH = 4
INSERT_CHUNK = 5_000
MONTHS_SHOWN = 24


def find_latest_audit(root: Path | None = None) -> Path | None:
    """The newest ``recoup audit`` output folder under ``root`` (default ``RECOUP_HOME``), or None."""
    from features.outputs import MARKER
    from features.settings import recoup_home

    root = Path(root) if root is not None else recoup_home()
    best: tuple[float, Path] | None = None
    base = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        if len(Path(dirpath).parts) - base >= SEARCH_DEPTH:
            dirnames[:] = []
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("mlartifacts", "bentoml")]
        if MARKER in filenames and "worklist.parquet" in filenames:
            try:
                marker = json.loads((Path(dirpath) / MARKER).read_text(encoding="utf-8"))
                if marker.get("command") != "audit":
                    continue
                t = (Path(dirpath) / "worklist.parquet").stat().st_mtime
            except (OSError, ValueError, AttributeError):
                continue
            if best is None or t > best[0]:
                best = (t, Path(dirpath))
    return best[1] if best else None


def resolve_audit(audit: Path | None) -> Path:
    """``audit`` (checked), else :func:`find_latest_audit`; a RecoupError line when there is none."""
    if audit is None:
        found = find_latest_audit()
        if found is None:
            raise RecoupError(
                "no `recoup audit` output found under RECOUP_HOME; run `recoup audit --data STORE --out DIR` "
                "or give --audit DIR"
            )
        return found
    audit = Path(audit)
    if not (audit / "worklist.parquet").is_file():
        raise RecoupError(f"--audit {audit}: no worklist.parquet there (an output folder of `recoup audit`)")
    return audit


def fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _clean(v: Any) -> Any:
    """A JSON-able value: NaN/NaT -> None, numpy scalars -> Python, timestamps -> YYYY-MM-DD."""
    if v is None:
        return None
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return None if pd.isna(v) else str(pd.Timestamp(v).date())
    if isinstance(v, np.ndarray):
        return [_clean(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _records(df: pd.DataFrame) -> list[dict]:
    cols = list(df.columns)
    return [{c: _clean(x) for c, x in zip(cols, row)} for row in zip(*[df[c].tolist() for c in cols])]


def _grouped(df: pd.DataFrame | None, ids: set[str], key: str = "claim_id") -> dict[str, list[dict]]:
    if df is None or not len(df):
        return {}
    sub = df[df[key].astype(str).isin(ids)]
    out: dict[str, list[dict]] = {}
    for rec in _records(sub):
        out.setdefault(str(rec[key]), []).append(rec)
    return out


def _remittances(store: Path, ids: set[str]) -> pd.DataFrame | None:
    """The 835 payments/reversals of ``ids`` on file in a store (None for a contract folder)."""
    if not (store / "manifest.sqlite").is_file():
        return None
    from features.store.read import read_parts

    t = read_parts(store).tables.get("remittances")
    if t is None:
        return None
    df = t.to_pandas()
    keep = [c for c in ("claim_id", "remittance_date", "status", "charge", "paid", "carc", "trace_number") if c in df]
    return df.loc[df["claim_id"].astype(str).isin(ids), keep].sort_values(keep[:2])


def claim_details(store: Path, wl: pd.DataFrame) -> tuple[dict[str, dict], dict[str, dict]]:
    """(claim id -> details, billing NPI -> provider details) of the worklist's claims, from the store."""
    from features.contract import load_history

    history = load_history(store)
    ids = set(wl["claim_id"].astype(str))
    c = history.claims
    cid = c["claim_id"].astype(str)
    mine = c[cid.isin(ids)]
    rec = history.recoupments if history.recoupments is not None else pd.DataFrame(columns=["claim_id"])
    # per patient and per provider: claims and recoupments on file
    pat = c[["claim_id", "patient_id", "billing_npi", "submitted_date"]].copy()
    pat["claim_id"] = pat["claim_id"].astype(str)
    r = rec[["claim_id", "recouped_date", "recouped_amount", "cause"]].copy() if len(rec) else None
    if r is not None:
        r["claim_id"] = r["claim_id"].astype(str)
        r = r.merge(pat[["claim_id", "patient_id", "billing_npi"]], on="claim_id", how="left")
    p_claims = pat.groupby("patient_id", observed=True).size()
    p_rec = r.groupby("patient_id", observed=True)["recouped_amount"].agg(["size", "sum"]) if r is not None else None
    lines = history.claim_lines
    line_cols = [
        x
        for x in ("claim_id", "line_number", "service_date", "procedure_code", "modifiers", "units", "line_charge")
        + ("line_paid",)
        if x in lines
    ]
    by_lines = _grouped(lines[line_cols], ids)
    by_rec = _grouped(rec, ids)
    remits = _remittances(Path(store), ids)
    by_remit = _grouped(remits, ids)
    claim_cols = [
        x
        for x in (
            "claim_id",
            "patient_id",
            "rendering_npi",
            "claim_type",
            "place_of_service",
            "frequency_code",
            "total_charge",
            "diagnosis_codes",
            "prior_auth_number",
            "has_attachment",
        )
        if x in mine
    ]
    details: dict[str, dict] = {}
    for rec_ in _records(mine[claim_cols]):
        k = str(rec_["claim_id"])
        patient = rec_.get("patient_id")
        ph = {"claims": int(p_claims.get(patient, 0)), "recoupments": 0, "recouped_amount": 0.0}
        if p_rec is not None and patient in p_rec.index:
            ph["recoupments"], ph["recouped_amount"] = int(p_rec.at[patient, "size"]), float(p_rec.at[patient, "sum"])
        details[k] = {
            "claim": rec_,
            "lines": sorted(by_lines.get(k, []), key=lambda x: x.get("line_number") or 0),
            "recoupments": by_rec.get(k, []),
            "remittances": by_remit.get(k, []),
            "patient_history": ph,
        }
    return details, provider_details(pat, r, set(wl["billing_npi"].astype(str)))


def provider_details(claims: pd.DataFrame, rec: pd.DataFrame | None, npis: set[str]) -> dict[str, dict]:
    """Per provider: claims and recoupments on file, by month (the last :data:`MONTHS_SHOWN`), and causes."""
    c = claims[claims["billing_npi"].astype(str).isin(npis)].copy()
    c["npi"] = c["billing_npi"].astype(str)
    c["month"] = pd.to_datetime(c["submitted_date"]).dt.strftime("%Y-%m")
    vol = c.groupby(["npi", "month"]).size()
    out: dict[str, dict] = {}
    for npi in npis:
        out[npi] = {"claims": 0, "recoupments": 0, "recouped_amount": 0.0, "months": {}, "causes": {}}
    for (npi, month), n in vol.items():
        out[npi]["months"].setdefault(month, {"claims": 0, "recoupments": 0})["claims"] = int(n)
        out[npi]["claims"] += int(n)
    if rec is not None and len(rec):
        r = rec[rec["billing_npi"].astype(str).isin(npis)].copy()
        r["npi"] = r["billing_npi"].astype(str)
        r["month"] = pd.to_datetime(r["recouped_date"]).dt.strftime("%Y-%m")
        for (npi, month), n in r.groupby(["npi", "month"]).size().items():
            out[npi]["months"].setdefault(month, {"claims": 0, "recoupments": 0})["recoupments"] = int(n)
        for npi, g in r.groupby("npi"):
            out[str(npi)]["recoupments"] = int(len(g))
            out[str(npi)]["recouped_amount"] = round(float(g["recouped_amount"].sum()), 2)
            out[str(npi)]["causes"] = {str(k): int(v) for k, v in g["cause"].astype(str).value_counts().items()}
    for d in out.values():
        months = sorted(d["months"])[-MONTHS_SHOWN:]
        d["months"] = {m: d["months"][m] for m in months}
    return out


def _row(rec: dict, run_id: int, details: dict[str, dict]) -> dict:
    out: dict[str, Any] = {"run_id": run_id, "claim_id": str(rec["claim_id"])}
    for name, kind in WORKLIST_FLAT.items():
        v = _clean(rec.get(name))
        if v is not None and kind == "date":
            v = pd.Timestamp(v).date()
        elif v is not None and kind in ("str", "text"):
            v = str(v)
        out[name] = v
    for name in ("causes", "reasons", "rule_hits"):
        v = rec.get(name)
        out[name] = v if isinstance(v, str) and v else None
    d = details.get(out["claim_id"])
    out["details"] = json.dumps(d, separators=(",", ":"), default=str) if d is not None else None
    return out


def load_audit(engine: Engine, audit: Path, store: Path | None) -> tuple[int, bool]:
    """Load the audit output folder ``audit`` (its ``worklist.parquet``) with details from ``store``; returns
    (run id, whether it was new). The same run again: nothing is written."""
    path = Path(audit) / "worklist.parquet"
    fp = fingerprint(path)
    with engine.connect() as conn:
        known = conn.execute(select(audit_runs.c.id).where(audit_runs.c.fingerprint == fp)).first()
    if known is not None:
        return int(known.id), False
    try:
        wl = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - a damaged file: one line
        raise RecoupError(f"{path}: cannot read the worklist ({type(exc).__name__})") from None
    if "claim_id" not in wl or "expected_recoupment_dollars" not in wl:
        raise RecoupError(f"{path}: not a `recoup audit` worklist (no claim_id / expected_recoupment_dollars)")
    details: dict[str, dict] = {}
    prov: dict[str, dict] = {}
    if store is not None:
        details, prov = claim_details(Path(store), wl)
        log.info("claim details read from the store for %d of %d worklist claims", len(details), len(wl))
    return insert_run(engine, wl, fp, str(Path(audit).resolve()), str(store) if store else None, details, prov), True


def insert_run(
    engine: Engine,
    wl: pd.DataFrame,
    fp: str,
    path: str,
    store: str | None,
    details: dict[str, dict] | None = None,
    prov: dict[str, dict] | None = None,
) -> int:
    """Write one run (its worklist rows and providers) in one transaction; returns its id."""
    from serving.workbench.auth import now

    details, prov = details or {}, prov or {}
    version = str(wl["model_version"].iloc[0]) if "model_version" in wl and len(wl) else None
    recs = _records(wl)
    with engine.begin() as conn:
        run_id = int(
            conn.execute(
                insert(audit_runs).values(
                    fingerprint=fp, path=path, store=store, model_version=version, rows=len(wl), loaded_at=now()
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        )
        for i in range(0, len(recs), INSERT_CHUNK):
            conn.execute(insert(worklist), [_row(r, run_id, details) for r in recs[i : i + INSERT_CHUNK]])
        pcols = [c for c in ("billing_npi", "provider_name", "specialty", "specialty_code") if c in wl]
        first = wl[pcols].drop_duplicates("billing_npi") if "billing_npi" in wl else wl.iloc[:0]
        prows = [
            {
                "run_id": run_id,
                "npi": str(r["billing_npi"]),
                "name": r.get("provider_name") or None,
                "specialty": r.get("specialty") or None,
                "specialty_code": r.get("specialty_code") or None,
                "details": json.dumps(prov.get(str(r["billing_npi"])), default=str)
                if str(r["billing_npi"]) in prov
                else None,
            }
            for r in _records(first)
        ]
        if prows:
            conn.execute(insert(providers), prows)
    log.info("audit run %d loaded: %d worklist rows", run_id, len(wl))
    return run_id


def latest_run(engine: Engine) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(func.max(audit_runs.c.id))).scalar()
