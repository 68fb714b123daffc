"""Behavioural tests per feature family, on hand-built claims through the public path: the family's signal
fires and its reason sentence says so (minimum functionality), and its feature moves the right way when
one fact of the claim or of the history changes (directional). Per-rule tests: test_rules.py."""

from __future__ import annotations

import pandas as pd
import pytest

from features.engine.lines import EM_LEVEL
from features.engine.state import HistoryState
from features.families import family, registry
from features.families.base import hit_dicts
from features.model.bundle import feature_reference
from features.pipeline import compute_features
from tests.helpers.handmade import NPI, OTHER_NPI, PAYER, claim_rows, tiny_history, typed

#: peer claims of the same procedure and diagnosis (enough for the support shares: MIN_SUPPORT_COUNT)
N_PEERS = 25


def _peer_history(codes: dict):
    """tiny_history (H0-H3 recouped) plus N_PEERS claims of another provider, each with prior
    authorization and an attachment, all of the plain code with the usual diagnosis at place of service 11."""
    extra = []
    for i in range(N_PEERS):
        day = str((pd.Timestamp("2024-03-01") + pd.Timedelta(days=i)).date())
        c, ls = claim_rows(
            f"PEER{i}",
            [(codes["plain"], 1, [])],
            patient=f"Q{i}",
            npi=OTHER_NPI,
            service=day,
            submitted=day,
            codes=codes,
        )
        extra.append(({**c, "prior_auth_number": "PA1", "has_attachment": True}, ls))
    return tiny_history(codes, recouped=["H0", "H1", "H2", "H3"], extra=extra)


@pytest.fixture(scope="module")
def peers(codes, rb) -> HistoryState:
    return HistoryState.from_history(_peer_history(codes), rb)


@pytest.fixture(scope="module")
def clean(codes, rb) -> HistoryState:
    return HistoryState.from_history(tiny_history(codes), rb)


def _claim(codes, lines=None, cid="NEW", claim: dict | None = None, **kw):
    c, rows = claim_rows(cid, lines or [(codes["plain"], 1, [])], codes=codes, **kw)
    c.update(claim or {})
    return c, rows


def _run(state, rb, c, rows) -> tuple[dict, dict, dict]:
    """(feature row as a dict, the claim's fields, its hits as the reasons read them)."""
    h = typed([c], rows)
    res = compute_features(h.claims, h.claim_lines, state, rb)
    x = res.X.iloc[0].to_dict()
    return x, h.claims.iloc[0].to_dict(), hit_dicts(res.hits) if len(res.hits) else {}


@pytest.fixture(scope="module")
def typical(codes, rb) -> dict[str, float]:
    """The reference the reasons compare with: the features of one plain claim on the clean history."""
    c, rows = _claim(codes, cid="TYPICAL")
    h = typed([c], rows)
    return feature_reference(
        compute_features(h.claims, h.claim_lines, HistoryState.from_history(tiny_history(codes), rb), rb).X
    )


def _reason(name, state, rb, c, rows, ref) -> str | None:
    x, claim, hits = _run(state, rb, c, rows)
    return family(name).reason(x, claim, hits, ref)


def _case(codes, name):
    """(claim and lines whose fact raises family ``name``'s risk, words its reason must say)."""
    a, b = codes["ptp_never"]
    em5 = max(EM_LEVEL, key=lambda c: (EM_LEVEL[c], c))
    return {
        "ncci": (_claim(codes, [(a, 1, []), (b, 1, [])]), f"{a} and {b} billed the same day"),
        "mue": (_claim(codes, [(codes["mue6"], 8, [])]), f"8 units of {codes['mue6']} exceed the Medicare limit of 6"),
        "duplicate": (_claim(codes, patient="P1", service="2024-02-01"), "same patient, code and date as claim H0"),
        "coverage": (
            _claim(codes, service="2025-03-01", submitted="2025-03-05"),
            f"outside the patient's coverage with payer {PAYER}",
        ),
        "em_coding": (_claim(codes, [(em5, 1, [])]), "E/M level 5 with 1 diagnosis code(s)"),
        "diagnosis": (_claim(codes, dx=[codes["dx_invalid"]]), f"diagnosis {codes['dx_invalid']} is not a valid"),
        "dx_support": (
            _claim(codes, dx=[codes["dx_invalid"]]),
            f"the principal diagnosis {codes['dx_invalid']} rarely goes with these procedures",
        ),
        "paperwork": (_claim(codes), "no prior authorization number, though peers send one with"),
        "claim_size": (
            _claim(codes, [(codes["plain"], 1, []), (codes["primary"], 1, [])]),
            "2 service lines on the claim (a typical claim has 1)",
        ),
        "procedure": (_claim(codes), f"procedure {codes['plain']} was recouped on"),
        "addon": (_claim(codes, [(codes["addon"], 1, [])]), f"add-on code {codes['addon']} billed without"),
        "modifiers": (_claim(codes, [(em5, 1, ["25"])]), "modifier 25 on an E/M visit with no other procedure"),
        "provider_history": (_claim(codes), "this provider's claims were recouped for"),
        "provider_pattern": (_claim(codes, submitted="2024-04-10"), "this provider's claim volume grew"),
        "charges": (
            _claim(codes, [(codes["plain"], 1, [])] * 3, claim={"total_charge": 3000.0}),
            "is 30.0x this provider's average claim",
        ),
        "units": (_claim(codes, [(codes["mue6"], 4, [])]), "4 units billed in total"),
        "patient_history": (_claim(codes, patient="P4"), "this patient already had 1 recouped claim(s)"),
        "payer": (_claim(codes), f"payer {PAYER} recouped"),
        "specialty": (_claim(codes), "claims of this specialty ("),
        "place_of_service": (
            _claim(codes, claim={"place_of_service": "22"}),
            "place of service 22 is rare for these procedures",
        ),
        "timing": (_claim(codes, service="2024-03-01", submitted="2024-04-15"), "submitted 45 days after the service"),
    }[name]


FAMILIES = sorted(f.NAME for f in registry())


@pytest.mark.parametrize("name", FAMILIES)
def test_the_familys_signal_fires_and_its_reason_says_it(name, peers, rb, codes, typical):
    (c, rows), words = _case(codes, name)
    text = _reason(name, peers, rb, c, rows, typical)
    assert text is not None and words in text, text


# ------------------------------------------------------------------------------------------------ directional
def _directional(codes, name):
    """(feature, claim with less of the fact, claim with more of it) for family ``name``."""
    a, b = codes["ptp_never"]
    em3 = min((c for c, lvl in EM_LEVEL.items() if lvl == 3))
    em5 = max(EM_LEVEL, key=lambda c: (EM_LEVEL[c], c))
    plain, unseen = codes["plain"], codes["primary"]
    return {
        "ncci": ("ptp_pairs", _claim(codes, [(a, 1, [])]), _claim(codes, [(a, 1, []), (b, 1, [])])),
        "mue": ("max_mue_ratio", _claim(codes, [(codes["mue6"], 3, [])]), _claim(codes, [(codes["mue6"], 6, [])])),
        "duplicate": (
            "dup_lines_matched",
            _claim(codes, patient="P1", service="2024-02-02"),
            _claim(codes, patient="P1", service="2024-02-01"),
        ),
        "coverage": (
            "days_outside_coverage",
            _claim(codes, service="2025-01-10", submitted="2025-04-01"),
            _claim(codes, service="2025-03-10", submitted="2025-04-01"),
        ),
        "em_coding": ("em_level", _claim(codes, [(em3, 1, [])]), _claim(codes, [(em5, 1, [])])),
        "diagnosis": ("n_dx", _claim(codes), _claim(codes, dx=[codes["dx"], codes["dx_truncated"]])),
        "dx_support": (
            "dx_principal_support_min",
            _claim(codes, dx=[codes["dx_invalid"]]),
            _claim(codes),
        ),
        "paperwork": (
            "prior_auth_missing_expected",
            _claim(codes, claim={"prior_auth_number": "PA9"}),
            _claim(codes),
        ),
        "claim_size": ("n_lines", _claim(codes), _claim(codes, [(plain, 1, []), (unseen, 1, [])])),
        "procedure": ("procedure_history_min", _claim(codes, [(unseen, 1, [])]), _claim(codes)),
        "addon": (
            "n_addon_without_primary",
            _claim(codes, [(codes["addon"], 1, []), (codes["primary"], 1, [])]),
            _claim(codes, [(codes["addon"], 1, [])]),
        ),
        "modifiers": ("n_modifiers", _claim(codes), _claim(codes, [(plain, 1, ["59"])])),
        "provider_history": ("provider_recoup_rate", _claim(codes, npi=OTHER_NPI), _claim(codes, npi=NPI)),
        "provider_pattern": (
            "provider_claims_90d",
            _claim(codes, submitted="2024-08-10"),
            _claim(codes, submitted="2024-04-10"),
        ),
        "charges": (
            "charge_vs_provider_avg",
            _claim(codes),
            _claim(codes, [(plain, 1, [])] * 3),
        ),
        "units": ("total_units", _claim(codes), _claim(codes, [(plain, 2, [])])),
        "patient_history": ("patient_n_recouped", _claim(codes, patient="P5"), _claim(codes, patient="P1")),
        "payer": ("payer_recoup_rate", None, _claim(codes)),
        "specialty": ("specialty_recoup_rate", None, _claim(codes)),
        "place_of_service": ("pos_support_min", _claim(codes, claim={"place_of_service": "22"}), _claim(codes)),
        "timing": ("submission_lag_days", _claim(codes), _claim(codes, submitted="2024-09-10")),
    }[name]


@pytest.mark.parametrize("name", FAMILIES)
def test_the_familys_feature_moves_with_its_fact(name, peers, clean, rb, codes):
    feature, low, high = _directional(codes, name)
    assert feature in family(name).COLUMNS
    hi = _run(peers, rb, *high)[0][feature]
    # low None: the same claim against a history without recoupments
    lo = _run(clean, rb, *high)[0][feature] if low is None else _run(peers, rb, *low)[0][feature]
    assert hi > lo, (lo, hi)


@pytest.mark.parametrize("name", FAMILIES)
def test_renaming_the_claim_changes_none_of_the_familys_features(name, peers, rb, codes):
    (c, rows), _ = _case(codes, name)
    cols = [k for k in family(name).COLUMNS]
    x = _run(peers, rb, c, rows)[0]
    c2, rows2 = dict(c, claim_id="RENAMED"), [dict(r, claim_id="RENAMED") for r in rows]
    y = _run(peers, rb, c2, rows2)[0]
    assert pd.Series({k: x[k] for k in cols}).equals(pd.Series({k: y[k] for k in cols}))


# ------------------------------------------------------------------------------------- sentences vs features
@pytest.mark.parametrize(
    ("name", "x"),
    [
        # "this provider bills level 4-5 in 32% vs 35% for peers": the provider's clause only when above peers
        (
            "em_coding",
            {"em_level": 4.0, "n_dx": 2.0, "provider_em_high_share": 0.32, "provider_em_high_vs_peers": -0.03},
        ),
        # "this patient had 0 claim(s) in the last 30 days"
        ("patient_history", {"patient_n_recouped": 0.0, "patient_claims_30d": 0.0}),
        ("patient_history", {"patient_n_recouped": 0.0, "patient_claims_30d": 1.0}),
        # "rarely goes with these procedures (peers: 34%)"
        ("dx_support", {"dx_principal_support_min": 0.34, "dx_support_min": 0.34}),
        ("place_of_service", {"pos_support_min": 0.4}),
        ("charges", {"charge_vs_provider_avg": 1.1, "charge_vs_specialty_avg": 0.9}),
        ("timing", {"submission_lag_days": 12.0}),
        ("units", {"total_units": 1.0}),
        ("claim_size", {"n_lines": 1.0}),
        ("procedure", {"procedure_recoup_rate": 0.01, "main_procedure": "99213"}),
        ("specialty", {"specialty_recoup_rate": 0.01, "specialty": "207Q00000X"}),
        ("payer", {"payer_rate_duplicate": 0.001, "payer_recoup_rate": 0.01}),
        ("provider_pattern", {"provider_growth_90d": 1.0}),
    ],
)
def test_a_fact_that_does_not_raise_the_risk_is_not_said(name, x):
    typical = {
        "patient_claims_30d": 1.0,
        "submission_lag_days": 10.0,
        "total_units": 1.0,
        "n_lines": 1.0,
        "procedure_recoup_rate": 0.02,
        "specialty_recoup_rate": 0.02,
        "payer_rate_duplicate": 0.002,
    }
    claim = {"claim_id": "C1", "payer_id": "P", "place_of_service": "11", "total_charge": 100.0, "diagnosis_codes": []}
    text = family(name).reason(x, claim, {}, typical)
    assert text is None or "this provider bills" not in text, text
    if name != "em_coding":
        assert text is None, text


def test_an_em_provider_above_its_peers_is_said():
    x = {"em_level": 5.0, "n_dx": 1.0, "provider_em_high_share": 0.6, "provider_em_high_vs_peers": 0.25}
    assert family("em_coding").reason(x, {}, {}, {}) == (
        "E/M level 5 with 1 diagnosis code(s); this provider bills level 4-5 in 60% of visits vs 35% for peers"
    )
