"""Generator worlds: each switch does what it says, the oracle follows it, the baseline is unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import CAUSES, load_history
from features.rulebook import load_rulebook
from features.sources.synthetic.generate import GeneratorConfig, generate_to_dir, generate_with_facts, world_config
from features.sources.synthetic.worlds import WORLDS, World

N = 30_000
#: sha256 over the CSV files of ``generate_to_dir(out, n_claims=3000, seed=7)`` written by the generator
#: before worlds existed (commit 79b1640): the baseline world must reproduce it byte for byte
# providers.csv gained the contract's empty optional `name` column (#16); every other byte is as before
BASELINE_DIGEST = "b2c79ac18d44930b806d76b0e997d94cd062f125f3720a86fbf84707f7d96054"


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.glob("*.csv")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _frame(history, oracle, facts) -> pd.DataFrame:
    """Per claim: payer, dates, oracle probability per cause, realized recoupment (also after the data end)."""
    c = history.claims
    rec = facts["recoupments"]
    rec = rec[rec["within_horizon"]].set_index("claim_id")
    out = pd.DataFrame(
        {
            "claim_id": c["claim_id"].astype(str),
            "npi": c["billing_npi"].astype(str),
            "payer": c["payer_id"].astype(str),
            "plan": c["plan_type"].astype(str),
            "submitted": c["submitted_date"],
            "paid": c["paid_date"],
            "p": oracle["true_probability"].to_numpy(),
        }
    )
    for k in CAUSES:
        out[f"p_{k}"] = oracle[f"p_{k}"].to_numpy()
    out["cause"] = out["claim_id"].map(rec["cause"])
    out["lag"] = out["claim_id"].map(rec["lag_days"])
    return out


def test_baseline_output_is_byte_identical_to_the_generator_before_worlds(tmp_path):
    generate_to_dir(tmp_path / "out", n_claims=3000, seed=7)
    assert _digest(tmp_path / "out") == BASELINE_DIGEST
    assert not (tmp_path / "out" / "world.json").exists()
    assert World().is_baseline and world_config("baseline") == GeneratorConfig()


def test_named_world_writes_its_metadata_and_loads(tmp_path):
    generate_to_dir(tmp_path / "out", n_claims=6000, seed=3, world="mixed")
    meta = json.loads((tmp_path / "out" / "world.json").read_text())
    assert meta["world"] == "mixed" and meta["generator"]["seed"] == 3
    assert {"drift_share", "audit_payer", "ncci_added", "new_provider_share"} <= set(meta["switches"])
    assert meta["drawn"]["audit_start"] and meta["drawn"]["ncci_changes"] and meta["drawn"]["providers_joining"] > 0
    history = load_history(tmp_path / "out")
    assert history.providers is not None and history.providers["npi"].is_unique
    assert set(history.claims["billing_npi"]) <= set(history.providers["npi"])


def test_world_fields_are_validated():
    with pytest.raises(ValueError, match="world.drift_share"):
        generate_with_facts(GeneratorConfig(n_claims=500, world=World(drift_share=1.5)))
    with pytest.raises(ValueError, match="world.audit_payer"):
        generate_with_facts(GeneratorConfig(n_claims=500, world=World(audit_payer="NOPE")))
    with pytest.raises(ValueError, match="unknown world"):
        world_config("utopia")


def test_short_world_is_a_short_history():
    cfg = world_config("short", end_date="2025-06-30")
    assert (pd.Timestamp(cfg.end_date) - pd.Timestamp(cfg.start_date)).days == 540
    assert world_config("short", start_date="2025-01-01").start_date == "2025-01-01"  # explicit wins
    assert set(WORLDS) >= {"baseline", "drift", "audit-program", "ncci-churn", "new-providers", "short", "cause-mix"}


def test_audit_program_raises_the_payers_recoupments_from_its_start_and_the_oracle_follows():
    cfg = world_config("audit-program", n_claims=N, seed=5)
    history, oracle, facts = generate_with_facts(cfg)
    start = pd.Timestamp(dict(zip(facts["world"]["key"], facts["world"]["value"]))["audit_start"])
    f = _frame(history, oracle, facts)
    f = f[f["paid"].notna() & (f["payer"] == cfg.world.audit_payer)]
    causes = list(cfg.world.audit_causes)
    hit = f["cause"].isin(causes)
    p = f[[f"p_{c}" for c in causes]].sum(1)
    before, after = f["paid"] < start, f["paid"] >= start
    assert p[after].mean() > 2.0 * p[before].mean()  # the oracle's jump
    assert hit[after].mean() > 2.0 * hit[before].mean()  # the realized one
    for part in (before, after):  # and the oracle is calibrated on both sides of the start
        assert hit[part].mean() == pytest.approx(p[part].mean(), rel=0.25)
    # the program's own lag: its recoupments come faster than those causes' usual ~170-200 days
    assert f.loc[after & hit, "lag"].median() < 110 < f.loc[before & hit, "lag"].median()


def test_new_providers_have_no_claims_before_onboarding():
    history, oracle, facts = generate_with_facts(world_config("new-providers", n_claims=N, seed=5))
    prov = facts["providers"]
    joined = prov[prov["onboard_date"].notna()].set_index("npi")["onboard_date"]
    assert len(joined) >= 0.2 * len(prov)
    c = history.claims.assign(npi=history.claims["billing_npi"].astype(str))
    c = c[c["npi"].isin(joined.index)]
    on = c["npi"].map(joined)
    assert (c["submitted_date"] >= on).all()
    svc = history.claim_lines.groupby("claim_id", observed=True)["service_date"].min()
    assert (c["claim_id"].map(svc) >= on).all()
    assert c["npi"].nunique() > 0.8 * len(joined)  # they do bill after joining
    assert len(history.providers) == len(prov) and history.providers["npi"].is_unique


def test_drifting_providers_change_behaviour_at_their_date_and_the_oracle_follows():
    history, oracle, facts = generate_with_facts(world_config("drift", n_claims=N, seed=5))
    prov = facts["providers"].set_index("npi")
    f = _frame(history, oracle, facts)
    err = facts["claims"][["upcoded", "bundling", "units"]].any(axis=1).to_numpy()
    f["err"] = err
    f["p_coding"] = f[["p_procedure_coding", "p_bundling", "p_units"]].sum(1)
    for kind, sign in (("start", 1), ("stop", -1)):
        who = prov.index[prov["habit_change"] == kind]
        g = f[f["npi"].isin(who)]
        after = g["submitted"] >= g["npi"].map(prov["habit_change_date"])
        for col in ("err", "p_coding"):
            a, b = g.loc[after, col].mean(), g.loc[~after, col].mean()
            assert sign * (a - b) > 0.3 * b, (kind, col, a, b)
    still = f[~f["npi"].isin(prov.index[prov["habit_change"] != ""])]
    late = still["submitted"] >= still["submitted"].median()
    assert still.loc[late, "err"].mean() == pytest.approx(still.loc[~late, "err"].mean(), rel=0.25)


def test_ncci_churn_edits_apply_from_their_quarter_and_the_shipped_rulebook_lacks_the_new_ones():
    cfg = world_config("ncci-churn", n_claims=N, seed=5)
    history, oracle, facts = generate_with_facts(cfg)
    ch = facts["ncci_changes"]
    assert (ch["change"] == "added").sum() == cfg.world.ncci_added
    assert (ch["change"] == "deleted").sum() == cfg.world.ncci_removed
    assert (ch["effective_date"].dt.day == 1).all() and ch["effective_date"].dt.month.isin([1, 4, 7, 10]).all()
    # erroneous pairs of the generator's facts, with their codes and service date
    lines = history.claim_lines.assign(code=history.claim_lines["procedure_code"].astype(str))
    key = lines.set_index(["claim_id", "line_number"])
    pairs = facts["ptp_pairs"]
    c1 = key.loc[list(zip(pairs["claim_id"], pairs["column_1_line"])), ["code", "service_date"]].to_numpy()
    c2 = key.loc[list(zip(pairs["claim_id"], pairs["column_2_line"])), "code"].to_numpy()
    hits = pd.DataFrame({"c1": c1[:, 0], "c2": c2, "date": pd.to_datetime(c1[:, 1])})
    added = ch[(ch["change"] == "added") & (ch["modifier_indicator"] == 0)]
    seen_added = 0
    for _, e in added.iterrows():
        on = (hits["c1"] == e["column_1"]) & (hits["c2"] == e["column_2"])
        assert (hits.loc[on, "date"] >= e["effective_date"]).all()
        seen_added += int(on.sum())
    assert seen_added > 0  # the new edits are hit: bundling errors the shipped rulebook cannot see
    for _, e in ch[ch["change"] == "deleted"].iterrows():
        on = (hits["c1"] == e["column_1"]) & (hits["c2"] == e["column_2"])
        assert (hits.loc[on, "date"] < e["effective_date"]).all()
    rb = load_rulebook()
    new = ch[ch["change"] == "added"]
    shipped = rb.ptp_lookup(new["column_1"].to_numpy(), new["column_2"].to_numpy(), new["effective_date"].to_numpy())
    assert (np.asarray(shipped) < 0).all()


def test_cause_mix_world_shifts_causes_and_lags_by_payer():
    cfg = world_config("cause-mix", n_claims=N, seed=5)
    history, oracle, facts = generate_with_facts(cfg)
    share = oracle[[f"p_{c}" for c in CAUSES]].sum()
    share = share / share.sum()
    for c, w in cfg.cause_mix.items():
        assert share[f"p_{c}"] == pytest.approx(w, abs=0.01)
    f = _frame(history, oracle, facts)
    lag = f.groupby("plan")["lag"].median()
    assert lag["medicaid"] > 1.4 * lag["commercial"]
    b = f[f["paid"].notna()].groupby("plan")["p_bundling"].mean()
    assert b["commercial"] > 1.5 * b["medicare"]
    paid = f[f["paid"].notna()]
    assert paid["cause"].notna().mean() == pytest.approx(paid["p"].mean(), rel=0.1)  # calibrated overall


def test_short_world_records_itself(tmp_path):
    generate_to_dir(tmp_path / "out", n_claims=1500, seed=3, world="short")
    meta = json.loads((tmp_path / "out" / "world.json").read_text())
    assert meta["world"] == "short" and meta["switches"] == []
    assert (pd.Timestamp(meta["generator"]["end_date"]) - pd.Timestamp(meta["generator"]["start_date"])).days == 540
