"""X12 codes in the contract: plan types from filing indicators and payer names, places of service from facility
types."""

from __future__ import annotations


from features.sources.x12.codes import institutional_pos, plan_type


def test_heuristics() -> None:
    assert plan_type("MB") == "medicare" and plan_type("MA") == "medicare"
    assert plan_type("16") == "medicare_advantage"
    assert plan_type("HM", "ACME MEDICARE ADVANTAGE") == "medicare_advantage"
    assert plan_type("HM", "ACME HEALTH PLAN") == "commercial"
    assert plan_type("HM", "STATE MEDICAID HMO") == "medicaid" and plan_type("MC") == "medicaid"
    assert plan_type("CI") == "commercial" and plan_type("") == "commercial"
    assert institutional_pos("11") == "21" and institutional_pos("13") == "22"
    assert institutional_pos("83") == "24" and institutional_pos("99") == "22"
